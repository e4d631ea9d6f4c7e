"""Scenario 2, period close: seconds to close October 2026 (`billing.services.periods.period_close`) with 100,000
or 1,000,000 usage records in it, compared with one bare SQL `GROUP BY` that sums the same records per booking.

The market: 20 centers (two of them pricing in USD) with two offerings each, 200 consumers, 2,000 bookings in
October 2026. A tenth of the bookings cross into November (their records run past midnight on the 1st, so the
month-boundary split is exercised), a third of the offerings carry a minimum commitment (bookings using less than
it get a commitment line), 40 bookings are cancelled late (a cancellation line when short of the commitment) and
10 early (no charge). A sponsor runs a CNY voucher program restricted to three of the four Chinese regions; a third
of the consumers hold an active grant, some of them small enough to be used up, and one consumer is a related
party of a center (its lines there are not eligible). Organizations, the program and the grants are made through
the services; sites, offerings and bookings through the models, as scenario 1 does.

The usage records are written by PostgreSQL itself (`INSERT … SELECT … generate_series`, in time order, as agents
would have sent them; the ingestion is scenario 1), every one received before the close's cutoff, with the
bookings' running totals (`billing_bookingusage`) to match. Each booking's records are equal intervals of whole
seconds from its start, so what the close must bill is known exactly from the plan, independently of the product.

Each record count gets a fresh database (a close bills everything in the month, so nothing else may be in it).
"""

from __future__ import annotations

import logging
import math
import os
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.bench.harness import Bench, BenchError, CpuSeconds, Result, cpu_seconds

NAME = "period_close"
DESCRIPTION = "seconds to close a month of usage (period_close) vs one bare SQL GROUP BY of the same records"
TARGET = 5.0  # the close may take at most five times the bare aggregation

# Record counts measured per scale; at `default` the 100k run gives the growth factor of the 1M run.
RECORDS = {"small": (100_000,), "default": (100_000, 1_000_000)}
GROUP_BY_REPEATS = 3  # timed runs of the bare aggregation, after one untimed warm-up; the median is the limit
CENTERS = 20
USD_CENTERS = 2  # the last centers price in USD: their consumers get a second invoice
CONSUMERS = 200
BOOKINGS = 2_000
GRANT_EVERY = 3  # every third consumer holds a grant
SMALL_GRANT_EVERY = 9  # every ninth consumer (every third holder) gets a grant small enough to be used up
RELATED = (6, 2)  # consumer 6 shares its credit code with center 2: a related party
REGIONS = ("cn-north", "cn-east", "cn-south", "cn-west")
VOUCHER_REGIONS = ["cn-north", "cn-east", "cn-south"]
ACCELERATORS = ("nvidia-h100-sxm", "huawei-ascend-910b", "nvidia-a800-80g", "cambricon-mlu370-x8", "nvidia-h20")
COMMIT_FRACTIONS = (Decimal("0"), Decimal("0.300"), Decimal("0.500"))
NOTICE_HOURS = 24

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
GRANTED_AT = datetime(2026, 9, 1, tzinfo=UTC)

log = logging.getLogger("bench")


# --- the plan: every booking and its records, decided from the seed before anything is written ------------------


@dataclass(frozen=True)
class PlannedOffering:
    center: int
    accelerator: str
    price: Decimal
    currency: str
    commit_fraction: Decimal
    voucher_eligible: bool


@dataclass
class PlannedBooking:
    id: uuid.UUID
    consumer: int
    offering: int
    devices: int
    start: datetime
    end: datetime
    cancelled_at: datetime | None  # set: cancelled (late when after start − notice)
    usage_seconds: int  # the span its records may cover, from its start
    records: int = 0
    step: int = 0  # every record lasts `step` seconds; records follow each other from the booking's start

    @property
    def cancelled_early(self) -> bool:
        return self.cancelled_at is not None and self.cancelled_at <= self.start - timedelta(hours=NOTICE_HOURS)

    @property
    def cancelled_late(self) -> bool:
        return self.cancelled_at is not None and not self.cancelled_early

    @property
    def usage_end(self) -> datetime:
        return self.start + timedelta(seconds=self.records * self.step)

    @property
    def records_in_october(self) -> int:
        """Records with start < 1 November (every record ends after 1 October): those the bare GROUP BY sums."""
        return min(self.records, math.ceil((NOV - self.start).total_seconds() / self.step)) if self.records else 0

    @property
    def october_device_seconds(self) -> int:
        """Rule 1: the part of its usage before midnight on 1 November."""
        return self.devices * int((min(self.usage_end, NOV) - self.start).total_seconds())

    @property
    def metered_device_seconds(self) -> int:
        return self.devices * self.records * self.step


@dataclass
class Plan:
    offerings: list[PlannedOffering]
    bookings: list[PlannedBooking]
    records: int  # in October: what the close bills

    @property
    def stored(self) -> int:
        """Records in the table: October's and the crossing bookings' November ones."""
        return sum(booking.records for booking in self.bookings)

    def offering_of(self, booking: PlannedBooking) -> PlannedOffering:
        return self.offerings[booking.offering]


def _plan(seed: int, records: int) -> Plan:
    """The market, the bookings and how many records each gets: the same for every record count but the records."""
    rng = random.Random(seed)
    offerings = []
    for center in range(CENTERS):
        usd = center >= CENTERS - USD_CENTERS
        for slot in range(2):
            number = len(offerings)
            offerings.append(
                PlannedOffering(
                    center=center,
                    accelerator=ACCELERATORS[(center + slot * 3) % len(ACCELERATORS)],
                    # Four decimals, so that amounts need rounding.
                    price=Decimal(rng.randint(15_000, 40_000) if usd else rng.randint(80_000, 250_000))
                    / Decimal(10_000),
                    currency="USD" if usd else "CNY",
                    commit_fraction=COMMIT_FRACTIONS[number % len(COMMIT_FRACTIONS)],
                    voucher_eligible=number % 5 != 4,
                )
            )
    committing = [number for number, offering in enumerate(offerings) if offering.commit_fraction > 0]
    consumers = [number % CONSUMERS for number in range(BOOKINGS)]
    rng.shuffle(consumers)  # ten bookings each, of every kind
    bookings = []
    for number in range(BOOKINGS):
        crossing = number % 10 == 3
        late_cancel = number % 50 == 7
        early_cancel = number % 200 == 19
        offering = rng.choice(committing) if late_cancel else rng.randrange(len(offerings))
        if crossing:
            start = OCT + timedelta(hours=rng.randrange(23 * 24, 31 * 24 - 4))
            end = max(start + timedelta(hours=rng.randint(24, 240)), NOV + timedelta(hours=6))
        else:
            start = OCT + timedelta(hours=rng.randrange(0, 28 * 24))
            end = min(start + timedelta(hours=rng.randint(6, 168)), NOV)
        cancelled_at = None
        if late_cancel:
            window = (end - start).total_seconds()
            cancelled_at = start + timedelta(minutes=int(window * rng.uniform(0.2, 0.8)) // 60)
        elif early_cancel:
            cancelled_at = start - timedelta(hours=NOTICE_HOURS, days=1)
        usable = ((cancelled_at if late_cancel else end) - start).total_seconds()
        if early_cancel:
            coverage = 0.0
        elif crossing:
            coverage = 1.0
        elif offerings[offering].commit_fraction > 0:
            coverage = rng.uniform(0.3, 1.0)  # often short of the commitment
        else:
            coverage = rng.uniform(0.6, 1.0)
        bookings.append(
            PlannedBooking(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                consumer=consumers[number],
                offering=offering,
                devices=rng.choice((1, 2, 4, 8, 8, 16)),
                start=start,
                end=end,
                cancelled_at=cancelled_at,
                usage_seconds=int(usable * coverage),
            )
        )
    _share_records(bookings, records)
    return Plan(offerings=offerings, bookings=bookings, records=records)


def _share_records(bookings: list[PlannedBooking], total: int) -> None:
    """Records in proportion to each booking's usage span in October (so that records last about as long
    everywhere), at least one per booking with usage, exactly `total` in October. A booking crossing into November
    keeps reporting at the same pace after midnight: those records are in the table but not in the period."""
    used = [booking for booking in bookings if booking.usage_seconds > 0]
    if total < len(used):
        raise BenchError(f"{total} records cannot cover {len(used)} bookings")

    def in_october(booking: PlannedBooking) -> int:
        return min(booking.usage_seconds, int((NOV - booking.start).total_seconds()))

    span = sum(in_october(booking) for booking in used)
    crossing = [booking for booking in used if booking.usage_seconds > in_october(booking)]
    # Crossing bookings first: their pace decides how many of their records start in October (the one spanning
    # midnight included), and the others make up the rest exactly.
    for booking in crossing:
        wanted = max(1, round(total * in_october(booking) / span))
        booking.step = max(1, round(in_october(booking) / wanted))
        booking.records = booking.usage_seconds // booking.step
    others = [booking for booking in used if booking not in crossing]
    rest = total - sum(booking.records_in_october for booking in crossing)
    others_span = sum(booking.usage_seconds for booking in others)
    for booking in others:
        booking.records = max(1, rest * booking.usage_seconds // others_span)
    by_size = sorted(others, key=lambda booking: booking.records, reverse=True)
    missing = rest - sum(booking.records for booking in others)
    for index in range(abs(missing)):
        by_size[index % len(by_size)].records += 1 if missing > 0 else -1
    for booking in others:
        if not 1 <= booking.records <= booking.usage_seconds:
            raise BenchError(f"cannot give booking {booking.id} {booking.records} records")
        booking.step = booking.usage_seconds // booking.records
    if sum(booking.records_in_october for booking in used) != total:
        raise BenchError(f"the plan puts {sum(b.records_in_october for b in used)} records in October, not {total}")


# --- the expected books, from the plan alone ---------------------------------------------------------------------


@dataclass
class Expected:
    usage: dict[uuid.UUID, Decimal]  # booking → October device-seconds (one usage line each)
    shortfall: dict[uuid.UUID, tuple[str, Decimal]]  # booking → (commitment | cancellation, device-seconds)
    invoices: set[tuple[int, str]]  # (consumer number, currency)
    statements: set[tuple[int, str]]  # (center number, currency)
    group_by_device_seconds: Decimal  # what the bare GROUP BY sums: whole records starting before November
    november_part: Decimal  # the part of those records after midnight on the 1st
    records_in_period: int


def _expected(plan: Plan) -> Expected:
    """Rules 1, 3 and 4 applied to the plan (API.md): what the close must bill."""
    usage: dict[uuid.UUID, Decimal] = {}
    shortfall: dict[uuid.UUID, tuple[str, Decimal]] = {}
    invoices: set[tuple[int, str]] = set()
    statements: set[tuple[int, str]] = set()
    whole = part = Decimal(0)
    in_period = 0
    for booking in plan.bookings:
        offering = plan.offering_of(booking)
        charged = False
        if booking.records:
            usage[booking.id] = Decimal(booking.october_device_seconds)
            records = booking.records_in_october
            in_period += records
            seconds = Decimal(booking.devices * booking.step * records)
            whole += seconds
            part += seconds - usage[booking.id]
            charged = True
        ends = booking.cancelled_at if booking.cancelled_late else booking.end
        if offering.commit_fraction > 0 and not booking.cancelled_early and OCT < ends <= NOV:
            committed = offering.commit_fraction * booking.devices * int((booking.end - booking.start).total_seconds())
            short = committed - booking.metered_device_seconds
            if short > 0:
                shortfall[booking.id] = ("cancellation" if booking.cancelled_late else "commitment", short)
                charged = True
        if charged:
            invoices.add((booking.consumer, offering.currency))
            statements.add((offering.center, offering.currency))
    return Expected(usage, shortfall, invoices, statements, whole, part, in_period)


# --- the world in the database ---------------------------------------------------------------------------------


@dataclass
class World:
    consumers: list[uuid.UUID]
    centers: list[uuid.UUID]
    offerings: list[uuid.UUID]
    grants: int = 0
    consumer_number: dict[uuid.UUID, int] = field(default_factory=dict)
    center_number: dict[uuid.UUID, int] = field(default_factory=dict)


def _create_world(plan: Plan) -> World:
    from accounts.actor import Actor
    from accounts.models import Organization, OrganizationKind, Scope
    from accounts.services import api_token_issue, organization_create
    from marketplace.models import AcceleratorModel, Offering, OfferingStatus, Site

    related_center, related_consumer = RELATED[1], RELATED[0]
    centers = []
    for number in range(CENTERS):
        usd = number >= CENTERS - USD_CENTERS
        centers.append(
            organization_create(
                kind=OrganizationKind.CENTER,
                name=f"Close Bench Center {number:02d}",
                slug=f"close-bench-center-{number:02d}",
                currency="USD" if usd else "CNY",
                region="ap-southeast" if usd else REGIONS[number % len(REGIONS)],
                tax_id="91BENCHCLOSE0002" if number == related_center else "",
                verified=True,
            )
        )
    # Two centers negotiated a lower platform fee (rule 6's per-center override).
    Organization.objects.filter(pk__in=[centers[0].pk, centers[1].pk]).update(platform_fee_rate=Decimal("0.08"))
    kinds = (OrganizationKind.ENTERPRISE, OrganizationKind.UNIVERSITY, OrganizationKind.INSTITUTE)
    consumers = [
        organization_create(
            kind=kinds[number % len(kinds)],
            name=f"Close Bench Consumer {number:03d}",
            slug=f"close-bench-consumer-{number:03d}",
            tax_id="91BENCHCLOSE0002" if number == related_consumer else "",
        )
        for number in range(CONSUMERS)
    ]
    accelerators = {model.code: model for model in AcceleratorModel.objects.filter(code__in=ACCELERATORS)}
    sites = [
        Site.objects.create(
            center=center,
            external_id="close-bench-site",
            name=f"{center.name} site",
            region=center.region,
            pue=Decimal("1.25"),
            carbon_intensity_g_per_kwh=Decimal("550.0"),
            green_power_share=Decimal("0.300"),
        )
        for center in centers
    ]
    offerings = []
    for number, planned in enumerate(plan.offerings):
        offerings.append(
            Offering.objects.create(
                center=centers[planned.center],
                site=sites[planned.center],
                external_id=f"close-bench-pool-{number:02d}",
                accelerator=accelerators[planned.accelerator],
                devices=10_000,
                devices_per_node=8,
                price_per_device_hour=planned.price,
                currency=planned.currency,
                max_hours=720,
                cancel_notice_hours=NOTICE_HOURS,
                min_commit_fraction=planned.commit_fraction,
                voucher_eligible=planned.voucher_eligible,
                status=OfferingStatus.PUBLISHED,
            )
        )
    world = World(
        consumers=[consumer.pk for consumer in consumers],
        centers=[center.pk for center in centers],
        offerings=[offering.pk for offering in offerings],
    )
    world.consumer_number = {pk: number for number, pk in enumerate(world.consumers)}
    world.center_number = {pk: number for number, pk in enumerate(world.centers)}
    _create_bookings(plan, world)

    sponsor = organization_create(kind=OrganizationKind.SPONSOR, name="Close Bench Sponsor", slug="close-bench-sponsor")
    sponsor_actor = Actor.for_token(
        api_token_issue(organization=sponsor, name="finance", scopes=[Scope.BILLING], now=GRANTED_AT).token
    )
    holders = [consumer for number, consumer in enumerate(consumers) if number % GRANT_EVERY == 0]
    world.grants = _create_vouchers(sponsor_actor, holders)
    return world


def _create_bookings(plan: Plan, world: World) -> None:
    from marketplace.models import Booking, BookingStatus

    Booking.objects.bulk_create(
        [
            Booking(
                id=booking.id,
                consumer_id=world.consumers[booking.consumer],
                offering_id=world.offerings[booking.offering],
                devices=booking.devices,
                start=booking.start,
                end=booking.end,
                status=BookingStatus.CANCELLED if booking.cancelled_at else BookingStatus.COMPLETED,
                # The offering's terms, snapshotted as when the booking was confirmed.
                unit_price=plan.offering_of(booking).price,
                currency=plan.offering_of(booking).currency,
                min_commit_fraction=plan.offering_of(booking).commit_fraction,
                cancel_notice_hours=NOTICE_HOURS,
                confirmed_at=booking.start - timedelta(days=2),
                cancelled_at=booking.cancelled_at,
            )
            for booking in plan.bookings
        ],
        batch_size=500,
    )


def _create_vouchers(sponsor_actor, holders) -> int:
    """A CNY program and an approved grant for each holder, through the voucher services."""
    from accounts.actor import Actor
    from accounts.models import Scope
    from accounts.services import api_token_issue
    from billing.services.vouchers import voucher_grant_apply, voucher_grant_approve, voucher_program_save

    program = voucher_program_save(
        actor=sponsor_actor,
        values={
            "name": "Close bench compute voucher",
            "currency": "CNY",
            "rate": Decimal("0.50"),
            "budget": Decimal("20000000.00"),
            "cap_per_grant": Decimal("200000.00"),
            "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
            "valid_until": datetime(2027, 12, 31, tzinfo=UTC),
            "eligible_kinds": ["enterprise", "university", "institute"],
            "regions": VOUCHER_REGIONS,
            "flow": "deduct",
            "status": "active",
        },
        now=GRANTED_AT,
    )
    for index, consumer in enumerate(holders):
        token = api_token_issue(organization=consumer, name="finance", scopes=[Scope.BILLING], now=GRANTED_AT).token
        amount = Decimal("2000.00") if index % (SMALL_GRANT_EVERY // GRANT_EVERY) == 0 else Decimal("200000.00")
        applied = voucher_grant_apply(
            actor=Actor.for_token(token),
            program_id=program.pk,
            requested_amount=amount,
            purpose="model training",
            now=GRANTED_AT,
        )
        voucher_grant_approve(actor=sponsor_actor, grant_id=applied.pk, amount=amount, now=GRANTED_AT)
    return len(holders)


_INSERT_USAGE = """
INSERT INTO billing_usagerecord (center_id, record_id, booking_id, agent_id, start, "end", devices, device_seconds,
                                 utilization, energy_kwh, received_at, payload_hash)
SELECT p.center, 'close-' || p.n || '-' || k, p.booking, NULL,
       p.start + k * p.step * interval '1 second', p.start + (k + 1) * p.step * interval '1 second',
       p.devices, p.devices * p.step, ((k * 37 + p.n) %% 100) / 100.0, p.devices * p.step / 3600.0 * 0.4,
       -- Received shortly after each record ends, and never after now: before the close's cutoff.
       least(p.start + (k + 1) * p.step * interval '1 second' + interval '90 seconds', statement_timestamp()),
       encode(sha256((p.booking::text || ':' || k)::bytea), 'hex')
FROM unnest(%(booking)s::uuid[], %(center)s::uuid[], %(start)s::timestamptz[], %(step)s::int[], %(records)s::int[],
            %(devices)s::int[]) WITH ORDINALITY AS p(booking, center, start, step, records, devices, n),
     generate_series(0, p.records - 1) AS k
-- In the order agents would have sent them, as the table fills in production (its BRIN indexes rely on it).
ORDER BY 11, 1, 2
"""

_INSERT_TOTALS = """
INSERT INTO billing_bookingusage (booking_id, records, device_seconds, first_start, last_end, longest, updated_at)
SELECT booking_id, count(*), sum(device_seconds), min(start), max("end"), max("end" - start), max(received_at)
FROM billing_usagerecord GROUP BY booking_id
"""


def _insert_usage(bench: Bench, plan: Plan, world: World) -> None:
    used = [booking for booking in plan.bookings if booking.records]
    started = time.perf_counter()
    with bench.connect() as conn:
        conn.execute(
            _INSERT_USAGE,
            {
                "booking": [booking.id for booking in used],
                "center": [world.centers[plan.offering_of(booking).center] for booking in used],
                "start": [booking.start for booking in used],
                "step": [booking.step for booking in used],
                "records": [booking.records for booking in used],
                "devices": [booking.devices for booking in used],
            },
        )
        conn.execute(_INSERT_TOTALS)
        stored = conn.execute("SELECT count(*) FROM billing_usagerecord").fetchone()[0]
        if stored != plan.stored:
            raise BenchError(f"{stored} usage records written, {plan.stored} planned")
        for table in ("billing_usagerecord", "billing_bookingusage", "marketplace_booking"):
            conn.execute(f"VACUUM ANALYZE {table}")
    log.info("%s: %d usage records written and vacuumed in %.1f s", NAME, stored, time.perf_counter() - started)


# --- the measurement ---------------------------------------------------------------------------------------------

GROUP_BY = """
SELECT booking_id, sum(device_seconds) FROM billing_usagerecord
WHERE start < %(end)s AND "end" > %(start)s
GROUP BY booking_id
"""


def run(bench: Bench) -> Iterator[Result]:
    measured: list[Result] = []
    for records in RECORDS[bench.scale]:
        result = Result(
            name=NAME,
            parameters={
                "scale": bench.scale,
                "records": records,
                "bookings": BOOKINGS,
                "consumers": CONSUMERS,
                "centers": CENTERS,
                "period": "2026-10",
                "group_by_repeats": GROUP_BY_REPEATS,
                "repeats": bench.repeat or 1,
                "seed": bench.seed,
            },
            target=TARGET,
            target_is_maximum=True,
            environment=bench.environment,
        )
        try:
            _measure(bench, records, result)
            measured.append(result)
            if len(measured) > 1:
                _growth(measured[0], result)
        except BenchError as error:
            result.error = str(error)
        yield result


@dataclass
class Run:
    close_seconds: float
    group_by_seconds: float  # the median of the timed runs
    group_by_runs: list[float]
    reclose_seconds: float
    rating_seconds: float
    cpu: CpuSeconds
    invoices: int
    statements: int
    claims: int
    redemptions: int
    books: dict[str, Any]


def _measure(bench: Bench, records: int, result: Result) -> None:
    """`--repeat N` closes the month N times, each time in a fresh database with the same data, and reports the
    medians (default: once; a close can only run once per database)."""
    runs: list[Run] = []
    for attempt in range(1, (bench.repeat or 1) + 1):
        runs.append(_run_once(bench, records, result, f"{NAME}-{records}-run{attempt}"))
        _report(result, records, runs)


def _run_once(bench: Bench, records: int, result: Result, label: str) -> Run:
    from django.utils import timezone

    from billing.services.periods import period_close

    started = time.perf_counter()
    bench.fresh_database()
    plan = _plan(bench.seed, records)
    expected = _expected(plan)
    world = _create_world(plan)
    log.info(
        "%s: %d organizations, %d bookings and %d grants in %.1f s",
        label,
        CENTERS + CONSUMERS + 1,
        BOOKINGS,
        world.grants,
        time.perf_counter() - started,
    )
    _insert_usage(bench, plan, world)
    result.figures["records_in_period"] = expected.records_in_period
    # With the crossing bookings' November records, which the close must skip.
    result.figures["records_in_table"] = plan.stored

    bench.checkpoint()
    group_by = _time_group_by(bench)
    group_by_seconds = statistics.median(run.seconds for run in group_by)
    log.info("%s: bare GROUP BY %.3f s (median of %d, after a warm-up)", label, group_by_seconds, len(group_by))

    bench.checkpoint()
    # The close runs in this process, as the Celery task runs it in a worker. `now` is the day after the month (or
    # the clock, when later); the usage cutoff is the database's clock.
    now = max(timezone.now(), NOV + timedelta(days=1))
    with cpu_seconds(bench) as close_cpu, bench.profiled(os.getpid(), label):
        began = time.perf_counter()
        closed = period_close(start=OCT, now=now, actor_label="bench")
        close_seconds = time.perf_counter() - began
    log.info("%s: period_close %.2f s (%.1f× the GROUP BY)", label, close_seconds, close_seconds / group_by_seconds)
    if closed.already_closed:
        raise BenchError("the period was already closed before the measured close")
    books = _books(bench)

    began = time.perf_counter()
    again = period_close(start=OCT, now=now, actor_label="bench")
    reclose_seconds = time.perf_counter() - began
    rating_seconds = _time_rating(closed.period)
    _check(bench, plan, expected, world, closed, again, books, group_by[0].rows, result)
    return Run(
        close_seconds=close_seconds,
        group_by_seconds=group_by_seconds,
        group_by_runs=[run.seconds for run in group_by],
        reclose_seconds=reclose_seconds,
        rating_seconds=rating_seconds,
        cpu=close_cpu,
        invoices=closed.invoices,
        statements=closed.statements,
        claims=closed.claims,
        redemptions=closed.redemptions,
        books=books,
    )


def _report(result: Result, records: int, runs: list[Run]) -> None:
    close_seconds = statistics.median(run.close_seconds for run in runs)
    group_by_seconds = statistics.median(run.group_by_seconds for run in runs)
    last = runs[-1]
    result.figures.update(
        {
            "close_seconds": round(close_seconds, 3),
            "group_by_seconds": round(group_by_seconds, 4),
            "records_per_s": round(result.figures["records_in_period"] / close_seconds),
            "invoices": last.invoices,
            "lines": last.books["lines"],
            "lines_by_kind": last.books["lines_by_kind"],
            "statements": last.statements,
            "voucher_claims": last.claims,
            "redemptions": last.redemptions,
            "reclose_seconds": round(statistics.median(run.reclose_seconds for run in runs), 4),
            # rate_period alone (read-only, after the close, with its cutoff): the record-level part of the close.
            "rating_seconds": round(statistics.median(run.rating_seconds for run in runs), 3),
            # CPU seconds during the close: PostgreSQL (every session of the server), this process (the close's
            # Python), the whole machine (well above the sum of the other two: a neighbour was busy too).
            "cpu_seconds_close": _cpu(sum((run.cpu for run in runs), CpuSeconds(0, 0, 0, 0)), len(runs)),
            "runs": [
                {
                    "close_seconds": round(run.close_seconds, 3),
                    "group_by_seconds": round(run.group_by_seconds, 4),
                    "group_by_runs_seconds": [round(seconds, 4) for seconds in run.group_by_runs],
                    "ratio": round(run.close_seconds / run.group_by_seconds, 3),
                    "reclose_seconds": round(run.reclose_seconds, 4),
                    "rating_seconds": round(run.rating_seconds, 3),
                }
                for run in runs
            ],
        }
    )
    result.ratio = round(close_seconds / group_by_seconds, 3)
    result.headline = (
        f"{records:,} records: close {close_seconds:.2f} s, group by {group_by_seconds:.3f} s, "
        f"{last.invoices} invoices, {last.books['lines']} lines"
    )


@dataclass
class GroupBy:
    seconds: float
    rows: dict[uuid.UUID, Decimal]


def _time_group_by(bench: Bench) -> list[GroupBy]:
    """The limit: one bare aggregation of the month's records per booking, warm (one untimed run first), rows
    fetched to the client as the close fetches its own."""
    params = {"start": OCT, "end": NOV}
    runs = []
    with bench.connect() as conn:
        conn.execute(GROUP_BY, params).fetchall()
        for _ in range(GROUP_BY_REPEATS):
            began = time.perf_counter()
            rows = conn.execute(GROUP_BY, params).fetchall()
            runs.append(GroupBy(time.perf_counter() - began, dict(rows)))
    return runs


def _time_rating(period) -> float:
    from billing.services.rating import rate_period

    began = time.perf_counter()
    rate_period(start=period.start, end=period.end, cutoff=period.usage_cutoff, previous_cutoff=None)
    return time.perf_counter() - began


def _cpu(usage: CpuSeconds, runs: int) -> dict[str, float | None]:
    """Per close (the mean over the runs)."""
    return {
        part: None if (value := getattr(usage, part)) is None else round(value / runs, 2)
        for part in ("postgres", "bench", "machine")
    }


def _growth(first: Result, last: Result) -> None:
    """How the close's time grows from the smallest to the largest record count: linear is the records' factor."""
    records = last.parameters["records"] / first.parameters["records"]
    close = last.figures["close_seconds"] / first.figures["close_seconds"]
    group_by = last.figures["group_by_seconds"] / first.figures["group_by_seconds"]
    rating = last.figures["rating_seconds"] / first.figures["rating_seconds"]
    marginal = (last.figures["close_seconds"] - first.figures["close_seconds"]) / (
        last.parameters["records"] - first.parameters["records"]
    )
    last.figures["growth"] = {
        "from_records": first.parameters["records"],
        "to_records": last.parameters["records"],
        "from_close_seconds": first.figures["close_seconds"],
        "close_factor": round(close, 2),
        "group_by_factor": round(group_by, 2),
        "rating_factor": round(rating, 2),  # the record-level part alone
        "linear": records,
        "linear_or_better": close <= records,
        # The close as fixed + per-record cost, from the two points: what a larger month would take.
        "seconds_per_million_records": round(marginal * 1_000_000, 3),
        "fixed_seconds": round(first.figures["close_seconds"] - marginal * first.parameters["records"], 3),
    }
    last.headline += f", growth ×{close:.1f} for ×{records:g} records"


# --- the checks --------------------------------------------------------------------------------------------------


def _books(bench: Bench) -> dict[str, Any]:
    """Row counts of everything a close writes: a second close must leave them all as they are."""
    with bench.connect() as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 (fixed table names)
            for table in (
                "billing_invoice",
                "billing_invoiceline",
                "billing_statement",
                "billing_voucherclaim",
                "billing_voucherredemption",
                "billing_journalentry",
                "billing_journalline",
            )
        }
        by_kind = dict(conn.execute("SELECT kind, count(*) FROM billing_invoiceline GROUP BY kind ORDER BY kind"))
    return {"counts": counts, "lines": counts["billing_invoiceline"], "lines_by_kind": by_kind}


def _check(
    bench: Bench,
    plan: Plan,
    expected: Expected,
    world: World,
    closed,
    again,
    books: dict[str, Any],
    group_by: dict[uuid.UUID, Decimal],
    result: Result,
) -> None:
    period_id = closed.period.pk
    with bench.connect() as conn:
        status = conn.execute("SELECT status FROM billing_billingperiod WHERE id = %s", [period_id]).fetchone()[0]
        invoices = conn.execute(
            "SELECT consumer_id, currency, count(*) FROM billing_invoice WHERE period_id = %s GROUP BY 1, 2",
            [period_id],
        ).fetchall()
        lines = conn.execute(
            """
            SELECT l.booking_id, l.kind, l.late, l.device_seconds
            FROM billing_invoiceline l JOIN billing_invoice i ON i.id = l.invoice_id
            WHERE i.period_id = %s
            """,
            [period_id],
        ).fetchall()
        mispriced = conn.execute(
            """
            SELECT count(*) FROM billing_invoiceline l JOIN billing_invoice i ON i.id = l.invoice_id
            WHERE i.period_id = %s AND l.amount <> round(l.device_seconds * l.unit_price / 3600, 2)
            """,
            [period_id],
        ).fetchone()[0]
        statements = conn.execute(
            "SELECT center_id, currency FROM billing_statement WHERE period_id = %s", [period_id]
        ).fetchall()
        totals = conn.execute(
            """
            WITH invoices AS (
                SELECT currency, sum(subtotal) AS subtotal, sum(total) AS total, sum(voucher_amount) AS voucher
                FROM billing_invoice WHERE period_id = %(p)s GROUP BY currency
            ), statements AS (
                SELECT currency, sum(gross) AS gross, sum(fee) + sum(payout) AS fee_and_payout
                FROM billing_statement WHERE period_id = %(p)s GROUP BY currency
            ), claims AS (
                SELECT currency, sum(amount) AS amount FROM billing_voucherclaim WHERE period_id = %(p)s
                GROUP BY currency
            ), redemptions AS (
                SELECT i.currency, sum(r.amount) AS amount
                FROM billing_voucherredemption r JOIN billing_invoice i ON i.id = r.invoice_id
                WHERE i.period_id = %(p)s GROUP BY i.currency
            )
            SELECT currency, COALESCE(i.subtotal, 0), COALESCE(i.total, 0), COALESCE(i.voucher, 0),
                   COALESCE(s.gross, 0), COALESCE(s.fee_and_payout, 0), COALESCE(c.amount, 0),
                   COALESCE(r.amount, 0)
            FROM invoices i FULL JOIN statements s USING (currency) FULL JOIN claims c USING (currency)
                 FULL JOIN redemptions r USING (currency)
            ORDER BY currency
            """,
            {"p": period_id},
        ).fetchall()
        off_balance = conn.execute(
            "SELECT currency, sum(amount) FROM billing_journalline GROUP BY currency HAVING sum(amount) <> 0"
        ).fetchall()
        exhausted = conn.execute("SELECT count(*) FROM billing_vouchergrant WHERE status = 'exhausted'").fetchone()[0]
        booking_totals = conn.execute("SELECT COALESCE(sum(records), 0) FROM billing_bookingusage").fetchone()[0]
    after = _books(bench)

    usage_lines: dict[uuid.UUID, list[Decimal]] = {}
    shortfall_lines: dict[uuid.UUID, list[tuple[str, Decimal]]] = {}
    late_lines = 0
    for booking_id, kind, late, seconds in lines:
        if late:
            late_lines += 1
        elif kind == "usage":
            usage_lines.setdefault(booking_id, []).append(seconds)
        else:
            shortfall_lines.setdefault(booking_id, []).append((kind, seconds))
    usage_seconds = sum((sum(values) for values in usage_lines.values()), Decimal(0))
    group_by_seconds = sum(group_by.values(), Decimal(0))
    invoice_keys = {(world.consumer_number[consumer], currency) for consumer, currency, _count in invoices}
    statement_keys = {(world.center_number[center], currency) for center, currency in statements}

    result.checks = {
        "period_status": status,
        "invoices": len(invoices),
        "invoices_expected": len(expected.invoices),
        "invoice_keys_unexpected": len(invoice_keys - expected.invoices),
        "invoice_keys_missing": len(expected.invoices - invoice_keys),
        "invoices_per_consumer_and_currency_max": max((count for *_key, count in invoices), default=0),
        "statements_missing_or_unexpected": len(statement_keys ^ expected.statements),
        "bookings_with_usage": len(expected.usage),
        "usage_lines_missing": len(expected.usage.keys() - usage_lines.keys()),
        "usage_lines_unexpected": len(usage_lines.keys() - expected.usage.keys()),
        "usage_lines_doubled": sum(len(values) > 1 for values in usage_lines.values()),
        "usage_lines_wrong_seconds": sum(
            sum(values) != expected.usage[booking]
            for booking, values in usage_lines.items()
            if booking in expected.usage
        ),
        "shortfall_lines": sum(len(values) for values in shortfall_lines.values()),
        "shortfall_lines_expected": len(expected.shortfall),
        "shortfall_lines_wrong": sum(
            values != [expected.shortfall.get(booking)] for booking, values in shortfall_lines.items()
        )
        + len(expected.shortfall.keys() - shortfall_lines.keys()),
        "late_lines": late_lines,
        "lines_mispriced": mispriced,
        "usage_line_device_seconds": str(usage_seconds),
        "group_by_device_seconds": str(group_by_seconds),
        "group_by_device_seconds_as_planned": group_by_seconds == expected.group_by_device_seconds,
        "november_part_of_crossing_records": str(expected.november_part),
        "usage_lines_equal_group_by_less_november_part": usage_seconds == group_by_seconds - expected.november_part,
        "totals_reconcile": [],
        "trial_balance_off": [f"{currency} {amount}" for currency, amount in off_balance],
        "redemptions": closed.redemptions,
        "grants_exhausted": exhausted,
        "booking_totals_records": booking_totals,
        "reclose_already_closed": again.already_closed,
        "reclose_changed_rows": {
            table: after["counts"][table] - count
            for table, count in books["counts"].items()
            if after["counts"][table] != count
        },
    }
    problems = []
    for currency, subtotal, total, voucher, gross, fee_and_payout, claims, redeemed in totals:
        if subtotal != gross:
            problems.append(f"{currency}: Σ subtotals {subtotal} ≠ Σ statement gross {gross}")
        if total + claims != subtotal:
            problems.append(f"{currency}: Σ totals {total} + Σ claims {claims} ≠ Σ subtotals {subtotal}")
        if fee_and_payout != gross:
            problems.append(f"{currency}: Σ fees + Σ payouts {fee_and_payout} ≠ Σ gross {gross}")
        if not voucher == redeemed == claims:
            problems.append(f"{currency}: Σ voucher amounts {voucher}, Σ redemptions {redeemed}, Σ claims {claims}")
    result.checks["totals_reconcile"] = problems

    wanted: dict[str, Any] = {
        "period_status": "closed",
        "invoices": len(expected.invoices),
        "invoice_keys_unexpected": 0,
        "invoice_keys_missing": 0,
        "invoices_per_consumer_and_currency_max": 1,
        "statements_missing_or_unexpected": 0,
        "usage_lines_missing": 0,
        "usage_lines_unexpected": 0,
        "usage_lines_doubled": 0,
        "usage_lines_wrong_seconds": 0,
        "shortfall_lines": len(expected.shortfall),
        "shortfall_lines_wrong": 0,
        "late_lines": 0,
        "lines_mispriced": 0,
        "group_by_device_seconds_as_planned": True,
        "usage_lines_equal_group_by_less_november_part": True,
        "totals_reconcile": [],
        "trial_balance_off": [],
        "booking_totals_records": plan.stored,
        "reclose_already_closed": True,
        "reclose_changed_rows": {},
    }
    wrong = [
        f"{name} = {result.checks[name]!r}, expected {value!r}"
        for name, value in wanted.items()
        if result.checks[name] != value
    ]
    # The plan must exercise what the scenario claims to: vouchers drawn, some used up, commitments short.
    if closed.redemptions == 0 or exhausted == 0 or not expected.shortfall or expected.november_part <= 0:
        wrong.append("the data did not exercise vouchers, exhausted grants, commitments and the month boundary")
    if wrong:
        raise BenchError("correctness check failed: " + "; ".join(wrong))
