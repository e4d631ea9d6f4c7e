"""The demo's settled past: last month's bookings with metered usage, voucher programs with grants, and last month
closed — invoices (finalized), center statements, a voucher claim and a balanced ledger — so that every role's
billing pages have something true to show on a fresh `make run`.

Idempotent like the rest of `seed_demo`: the history of a month is only created while that month is still open and
holds no demo bookings; programs and grants are looked up by name and consumer. Usage goes through the real
ingestion service as each center's agent, and the month is closed by the real close, so the demo's books are
exactly what the product would write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from accounts.actor import ALL_SCOPES, Actor
from accounts.models import Membership, Organization, Role
from billing.models import (
    BillingPeriod,
    Invoice,
    InvoiceStatus,
    PeriodStatus,
    VoucherClaim,
    VoucherGrant,
    VoucherProgram,
)
from billing.periods_calendar import label, month_start, previous_month
from billing.services.invoices import invoice_finalize
from billing.services.periods import period_close, unclosed_before
from billing.services.usage import usage_ingest
from billing.services.vouchers import voucher_grant_apply, voucher_grant_approve, voucher_program_save
from marketplace.demo import CENTER_SLUGS
from marketplace.models import Booking, BookingEvent, BookingStatus, Offering
from marketplace.money import format_money

SPONSOR_SLUG = "municipal-ai-compute-voucher-fund"
DEMO_LABEL = "demo history"


@dataclass(frozen=True)
class PastBooking:
    consumer: str  # slug
    offering: str  # external id
    devices: int
    day: int  # day of last month it starts on, at 01:00 UTC
    hours: int
    used: Decimal  # share of the booked device-hours metered
    cancelled_after_hours: int | None = None  # cancelled this many hours after its start


PAST_BOOKINGS = (
    # Blue Heron trains on domestic Ascend chips and fine-tunes on 4090s; its H100 hours are bought from Lakeside,
    # a related party (common control), so vouchers do not pay for those.
    PastBooking("blue-heron-robotics", "ga-910b", devices=16, day=3, hours=48, used=Decimal("0.92")),
    PastBooking("blue-heron-robotics", "sz-4090", devices=8, day=9, hours=24, used=Decimal("0.75")),
    PastBooking("blue-heron-robotics", "hz-h100-a", devices=8, day=14, hours=12, used=Decimal("0.30")),
    # Eastlake University's run uses less than its minimum commitment.
    PastBooking("eastlake-university", "uq-h800", devices=16, day=6, hours=24, used=Decimal("0.35")),
    PastBooking("eastlake-university", "ga-910b", devices=32, day=18, hours=36, used=Decimal("0.85")),
    # Qingluo cancels a run after 4 hours: the commitment on the booked hours applies.
    PastBooking("qingluo-biotech", "cd-h100", devices=4, day=21, hours=10, used=Decimal("1"), cancelled_after_hours=4),
    PastBooking(
        "yangtze-institute-computational-materials", "hrb-a100", devices=8, day=11, hours=30, used=Decimal("0.8")
    ),
)


@dataclass(frozen=True)
class DemoProgram:
    name: str
    description: str
    rate: str
    budget: str
    cap: str
    kinds: tuple[str, ...]
    flow: str
    domestic_only: bool = False


PROGRAMS = (
    DemoProgram(
        "Hangzhou AI compute vouchers 2026",
        "Pays 40 % of compute bought by Hangzhou SMEs, universities and institutes on the network, up to the grant.",
        rate="0.40",
        budget="2000000.00",
        cap="200000.00",
        kinds=("enterprise", "university", "institute"),
        flow="deduct",
    ),
    DemoProgram(
        "Domestic chips research reimbursement",
        "Reimburses 60 % of research compute on domestic accelerators, claimed after paying the invoice.",
        rate="0.60",
        budget="500000.00",
        cap="80000.00",
        kinds=("university", "institute"),
        flow="reimburse",
        domestic_only=True,
    ),
)

# (consumer slug, program name, amount asked, amount granted or None to leave the application open)
GRANTS = (
    ("blue-heron-robotics", "Hangzhou AI compute vouchers 2026", "50000.00", "50000.00"),
    ("eastlake-university", "Hangzhou AI compute vouchers 2026", "120000.00", "100000.00"),
    ("qingluo-biotech", "Hangzhou AI compute vouchers 2026", "30000.00", None),
    ("yangtze-institute-computational-materials", "Domestic chips research reimbursement", "40000.00", "40000.00"),
)


def _actor(organization: Organization, roles=(Role.OWNER, Role.FINANCE, Role.ADMIN)) -> Actor:
    membership = Membership.objects.filter(organization=organization, role__in=roles).select_related("user").first()
    if membership is None:
        return Actor(organization=organization, scopes=ALL_SCOPES, role=Role.OWNER)
    return Actor.for_member(user=membership.user, organization=organization, role=membership.role)


def seed_vouchers(*, now: datetime) -> int:
    sponsor = Organization.objects.filter(slug=SPONSOR_SLUG).first()
    if sponsor is None:
        return 0
    made = 0
    officer = _actor(sponsor)
    year_start = now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    programs = {}
    for spec in PROGRAMS:
        program = VoucherProgram.objects.filter(sponsor=sponsor, name=spec.name).first()
        if program is None:
            program = voucher_program_save(
                actor=officer,
                values={
                    "name": spec.name,
                    "description": spec.description,
                    "currency": "CNY",
                    "rate": Decimal(spec.rate),
                    "budget": Decimal(spec.budget),
                    "cap_per_grant": Decimal(spec.cap),
                    "valid_from": year_start - timedelta(days=365),
                    "valid_until": year_start + timedelta(days=2 * 365),
                    "eligible_kinds": list(spec.kinds),
                    "domestic_only": spec.domestic_only,
                    "flow": spec.flow,
                    "status": "active",
                },
                now=now,
            )
            made += 1
        programs[spec.name] = program
    for slug, name, asked, granted in GRANTS:
        consumer = Organization.objects.filter(slug=slug).first()
        if consumer is None or VoucherGrant.objects.filter(program=programs[name], consumer=consumer).exists():
            continue
        applied = voucher_grant_apply(
            actor=_actor(consumer),
            program_id=programs[name].pk,
            requested_amount=Decimal(asked),
            purpose="Training and evaluation runs for this year's projects.",
            now=now - timedelta(days=60),
        )
        if granted is not None:
            voucher_grant_approve(
                actor=officer, grant_id=applied.pk, amount=Decimal(granted), now=now - timedelta(days=59)
            )
        made += 1
    return made


def _past_booking(spec: PastBooking, month: datetime) -> tuple[Booking | None, bool]:
    consumer = Organization.objects.filter(slug=spec.consumer).first()
    offering = (
        Offering.objects.filter(external_id=spec.offering, center__slug__in=CENTER_SLUGS.values())
        .select_related("center")
        .first()
    )
    if consumer is None or offering is None:
        return None, False
    start = month.replace(day=spec.day, hour=1)
    end = start + timedelta(hours=spec.hours)
    existing = Booking.objects.filter(consumer=consumer, offering=offering, start=start).first()
    if existing is not None:
        return existing, False
    confirmed = start - timedelta(days=2)
    cancelled = start + timedelta(hours=spec.cancelled_after_hours) if spec.cancelled_after_hours else None
    # The past cannot be booked through booking_create (it refuses starts in the past): the demo writes the
    # history a booking made then would have left, with its terms snapshotted from the offering.
    booking = Booking.objects.create(
        consumer=consumer,
        offering=offering,
        devices=spec.devices,
        start=start,
        end=end,
        status=BookingStatus.CANCELLED if cancelled else BookingStatus.COMPLETED,
        unit_price=offering.price_per_device_hour,
        currency=offering.currency,
        min_commit_fraction=offering.min_commit_fraction,
        cancel_notice_hours=offering.cancel_notice_hours,
        confirmed_at=confirmed,
        cancelled_at=cancelled,
    )
    moves = [("", BookingStatus.CONFIRMED, confirmed), (BookingStatus.CONFIRMED, BookingStatus.ACTIVE, start)]
    moves.append(
        (BookingStatus.ACTIVE, BookingStatus.CANCELLED, cancelled)
        if cancelled
        else (BookingStatus.ACTIVE, BookingStatus.COMPLETED, end)
    )
    BookingEvent.objects.bulk_create(
        BookingEvent(booking=booking, from_status=a, to_status=b, at=at, actor_label="system", reason=DEMO_LABEL)
        for a, b, at in moves
    )
    return booking, True


def _meter(booking: Booking, spec: PastBooking) -> None:
    """Hourly records over the part of the window that ran, at `used` of the booked devices, as the center's agent
    would have reported them (the same ids on every run: a second seeding counts them as duplicates)."""
    ran_until = booking.cancelled_at or booking.end
    devices = max(1, int((spec.devices * spec.used).to_integral_value()))
    hours = int((ran_until - booking.start).total_seconds() // 3600)
    records = []
    for hour in range(hours):
        start = booking.start + timedelta(hours=hour)
        records.append(
            {
                "id": f"demo-{str(booking.pk)[:8]}-{hour:03d}",
                "booking": str(booking.pk),
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
                "devices": devices,
                "utilization": f"{Decimal('0.55') + Decimal(hour % 7) / 20:.2f}",
                "energy_kwh": f"{devices * Decimal('0.61'):.3f}",
            }
        )
    usage_ingest(
        actor=Actor(organization=booking.offering.center, scopes=ALL_SCOPES),
        records=records,
        agent_name=None,
        now=ran_until + timedelta(minutes=10),
    )


def seed_history(*, now: datetime) -> int:
    """Last month's bookings and usage, then last month closed and its invoices finalized."""
    last_month = previous_month(month_start(now))
    period = BillingPeriod.objects.filter(start=last_month).first()
    made = 0
    if period is None or period.status == PeriodStatus.OPEN:
        for spec in PAST_BOOKINGS:
            booking, created = _past_booking(spec, last_month)
            if booking is None:
                continue
            made += created
            _meter(booking, spec)
    if unclosed_before(last_month) is None:
        result = period_close(start=last_month, now=now, actor_label=DEMO_LABEL)
        if not result.already_closed:
            for invoice in result.period.invoices.filter(status=InvoiceStatus.DRAFT):
                invoice_finalize(invoice_id=invoice.pk, now=now)
    return made


def seed_billing(*, now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    return {"voucher records": seed_vouchers(now=now), "past bookings": seed_history(now=now)}


# --- the sample bank statement ------------------------------------------------------------------------------------

SAMPLE_TEMPLATE = Path(__file__).resolve().parent / "data" / "sample_bank_statement.csv"
SAMPLE_CONSUMERS = {
    "blue_heron": "blue-heron-robotics",
    "eastlake": "eastlake-university",
    "qingluo": "qingluo-biotech",
    "yangtze": "yangtze-institute-computational-materials",
}
# Yangtze pays its invoice and an advance: more than the tolerance over, so finance sees an exception to resolve.
YANGTZE_ADVANCE = Decimal("200.00")


def sample_statement_values(*, now: datetime) -> dict[str, str]:
    """What the sample statement's placeholders stand for in this demo: last month's invoice numbers and totals,
    the voucher claim's reference, and the day the invoices were issued (when their payments arrive)."""
    from billing.services.reconcile import claim_reference

    last_month = previous_month(month_start(now))
    values: dict[str, str] = {"period": label(last_month)}
    issued = None
    for key, slug in SAMPLE_CONSUMERS.items():
        invoice = (
            Invoice.objects.filter(consumer__slug=slug, period__start=last_month, currency="CNY")
            .exclude(number__isnull=True)
            .first()
        )
        if invoice is None or invoice.total <= 0:
            continue
        values[f"{key}_number"] = invoice.number
        values[f"{key}_total"] = format_money(invoice.total, "CNY")
        issued = max(issued or invoice.finalized_at, invoice.finalized_at)
    if "yangtze_total" in values:
        values["yangtze_overpaid"] = format_money(Decimal(values["yangtze_total"]) + YANGTZE_ADVANCE, "CNY")
    claim = (
        VoucherClaim.objects.filter(sponsor__slug=SPONSOR_SLUG, period__start=last_month, currency="CNY")
        .select_related("period")
        .first()
    )
    if claim is not None:
        values["claim_total"] = format_money(claim.amount, "CNY")
        values["claim_reference"] = claim_reference(claim)
    day = (issued or now).date()
    values["date"], values["date_compact"] = day.isoformat(), f"{day:%Y%m%d}"
    return values


def render_sample_statement(*, now: datetime) -> str:
    """The sample statement for this demo: each template line whose placeholders the demo can fill (a line about
    an invoice the demo does not have is left out)."""
    values = sample_statement_values(now=now)
    header, *lines = SAMPLE_TEMPLATE.read_text(encoding="utf-8").splitlines()
    rendered = [header]
    for line in lines:
        try:
            rendered.append(line.format(**values))
        except KeyError:
            continue
    return "\n".join(rendered) + "\n"


def seed_sample_statement(*, now: datetime | None = None, directory: Path | None = None) -> tuple[Path, bool] | None:
    """Write the rendered sample statement where the workbench's "Import the sample statement" finds it
    (MEDIA_ROOT/demo/), and say whether it changed. The same demo renders the same bytes, so importing it twice
    is refused as a duplicate, exactly as for a real file."""
    from billing.views_reconcile import SAMPLE_NAME

    now = now or timezone.now()
    if not Invoice.objects.filter(period__start=previous_month(month_start(now))).exclude(number__isnull=True).exists():
        return None
    target = (directory or Path(settings.MEDIA_ROOT) / "demo") / SAMPLE_NAME
    content = render_sample_statement(now=now)
    if target.is_file() and target.read_text(encoding="utf-8") == content:
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    return target, True
