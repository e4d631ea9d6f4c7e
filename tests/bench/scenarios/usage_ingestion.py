"""Scenario 1, usage ingestion: records per second through `POST /api/v1/agent/usage` against a Daphne process,
compared with bare `COPY` of the same rows into a table with the same indexes and constraints.

The workload is what a center's agents send once they are caught up: every record is new and acceptable, so the
figure is the cost of judging and storing, not of rejecting. 100 completed bookings of 8 devices share one
offering of 10,000 devices (capacity never limits); each booking reports one record per 5 minutes, so records of a
booking never overlap. A batch is 1,000 records: 100 consecutive intervals of 10 bookings, sent by the agent that
runs those bookings' nodes. Four uploaders take batches from one queue over keep-alive connections, with every
body encoded before the clock starts.

The limit runs the same batches (same rows, same values, one transaction per batch, four connections) as `COPY`
into `bench_usage_copy`, made `LIKE billing_usagerecord INCLUDING ALL` plus its foreign keys: what PostgreSQL
needs to store these rows with their indexes and constraints, and nothing else.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import queue
import random
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.bench.harness import Bench, BenchError, CpuSeconds, Result, cpu_seconds, percentile

NAME = "usage_ingestion"
DESCRIPTION = "records/s through POST /api/v1/agent/usage vs COPY of the same rows"
TARGET = 0.25  # the API must reach a quarter of what bare COPY does

RECORDS = {"small": 100_000, "default": 1_000_000}
REPEATS = {"small": 3, "default": 1}  # --repeat overrides
BATCH = 1_000
UPLOADERS = 4
BOOKINGS = 100
BOOKINGS_PER_BATCH = 10
DEVICES = 8
OFFERING_DEVICES = 10_000
INTERVAL = timedelta(minutes=5)
WINDOW = timedelta(days=60)
INTERVALS_PER_WINDOW = WINDOW // INTERVAL
PATH = "/api/v1/agent/usage"
REQUEST_TIMEOUT = 300

COLUMNS = (
    "center_id",
    "record_id",
    "booking_id",
    "agent_id",
    "start",
    '"end"',
    "devices",
    "device_seconds",
    "utilization",
    "energy_kwh",
    "received_at",
    "payload_hash",
)
# Every column the API stores from the request, i.e. all but the serial id and the time of receipt.
COMPARED = ", ".join(column for column in COLUMNS if column != "received_at")

log = logging.getLogger("bench")


@dataclass
class World:
    """The data the workload refers to."""

    center_id: uuid.UUID
    token: str
    anchor: datetime
    bookings: list[uuid.UUID]
    agents: dict[str, uuid.UUID]
    offering_id: uuid.UUID
    consumer_id: uuid.UUID
    history: list[uuid.UUID] = field(default_factory=list)  # bookings whose records fill the table for --stored


@dataclass
class Batch:
    body: bytes  # the JSON the agent posts
    copy: bytes  # the same rows in COPY text format
    records: int


@dataclass
class Upload:
    seconds: float
    latencies: list[float]
    accepted: int
    duplicates: int
    rejected: int
    http_errors: list[str]  # answers other than 200
    samples: list[str]  # the first rejections, to show what went wrong


def run(bench: Bench) -> Iterator[Result]:
    records = RECORDS[bench.scale]
    intervals = records // BOOKINGS
    if records % (BOOKINGS * BATCH // BOOKINGS_PER_BATCH) or intervals > INTERVALS_PER_WINDOW:
        raise BenchError(f"{records} records do not split into whole batches inside the bookings' window")
    started = time.perf_counter()
    world = _create_world(bench)
    _create_copy_table(bench)
    batches = _encode(world, intervals, bench.seed)
    log.info(
        "%s: %d records in %d batches generated and encoded in %.1f s",
        NAME,
        records,
        len(batches),
        time.perf_counter() - started,
    )
    for stored in bench.stored:
        result = Result(
            name=NAME,
            parameters={
                "scale": bench.scale,
                "records": records,
                "batch": BATCH,
                "uploaders": UPLOADERS,
                "bookings": BOOKINGS,
                "bookings_per_batch": BOOKINGS_PER_BATCH,
                "stored": stored,
                "seed": bench.seed,
                "server_db_options": bench.server_db_options,
            },
            target=TARGET,
            environment=bench.environment,
        )
        try:
            _measure(bench, world, batches, stored, result)
        except BenchError as error:
            result.error = str(error)
        yield result


# --- data -----------------------------------------------------------------------------------------------------------


def _create_world(bench: Bench) -> World:
    """The center, its agent token and agents, a site, an offering and the bookings, through the project's own
    services and models."""
    from django.utils import timezone

    from accounts.models import OrganizationKind, Scope
    from accounts.services import api_token_issue, organization_create
    from marketplace.models import AcceleratorModel, Agent, Offering, OfferingStatus, Site

    rng = random.Random(bench.seed)
    now = timezone.now()
    # Whole days back from today's midnight: the bookings have ended, and the records' ids and timestamps only
    # shift with the day the bench runs.
    anchor = now.replace(hour=0, minute=0, second=0, microsecond=0) - WINDOW
    center = organization_create(
        kind=OrganizationKind.CENTER,
        name="Bench Computing Center",
        slug="bench-center",
        region="cn-north",
        verified=True,
    )
    consumer = organization_create(kind=OrganizationKind.ENTERPRISE, name="Bench Consumer", slug="bench-consumer")
    token = api_token_issue(organization=center, name="bench agents", scopes=[Scope.AGENT], now=now).secret
    site = Site.objects.create(
        center=center,
        external_id="bench-site",
        name="Bench Site",
        region="cn-north",
        pue=Decimal("1.25"),
        carbon_intensity_g_per_kwh=Decimal("550.0"),
        green_power_share=Decimal("0.300"),
    )
    offering = Offering.objects.create(
        center=center,
        site=site,
        external_id="bench-pool",
        accelerator=AcceleratorModel.objects.order_by("code").first(),
        devices=OFFERING_DEVICES,
        devices_per_node=DEVICES,
        price_per_device_hour=Decimal("12.5000"),
        currency="CNY",
        max_hours=WINDOW // timedelta(hours=1),
        status=OfferingStatus.PUBLISHED,
    )
    agents = {}
    for group in range(BOOKINGS // BOOKINGS_PER_BATCH):
        name = f"node{group:02d}"
        agents[name] = Agent.objects.create(
            center=center, name=name, version="bench", first_seen_at=now, last_seen_at=now
        ).pk
    world = World(
        center_id=center.pk,
        token=token,
        anchor=anchor,
        bookings=[],
        agents=agents,
        offering_id=offering.pk,
        consumer_id=consumer.pk,
    )
    world.bookings = _create_bookings(world, BOOKINGS, rng)
    return world


def _create_bookings(world: World, count: int, rng: random.Random) -> list[uuid.UUID]:
    from marketplace.models import Booking, BookingStatus

    bookings = [
        Booking(
            # Ids from the seed, so that the request bodies are the same bytes run after run.
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            consumer_id=world.consumer_id,
            offering_id=world.offering_id,
            devices=DEVICES,
            start=world.anchor,
            end=world.anchor + WINDOW,
            status=BookingStatus.COMPLETED,
            unit_price=Decimal("12.5000"),
            currency="CNY",
            min_commit_fraction=Decimal("0"),
            cancel_notice_hours=24,
            confirmed_at=world.anchor - timedelta(days=1),
        )
        for _ in range(count)
    ]
    Booking.objects.bulk_create(bookings)
    return [booking.id for booking in bookings]


def _create_copy_table(bench: Bench) -> None:
    """`bench_usage_copy`: the usage table's columns, defaults, checks, unique constraints and indexes (LIKE …
    INCLUDING ALL), plus its foreign keys, which LIKE leaves out. The append-only trigger fires on UPDATE and
    DELETE only, so it costs an insert nothing and is left out."""
    from psycopg import sql

    with bench.connect() as conn:
        conn.execute("CREATE TABLE bench_usage_copy (LIKE billing_usagerecord INCLUDING ALL)")
        # Vacuumed by the bench between phases instead: autovacuum would otherwise work through the rows COPY just
        # wrote while the API phase runs, and bill its CPU to the API.
        conn.execute("ALTER TABLE bench_usage_copy SET (autovacuum_enabled = false)")
        foreign_keys = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'billing_usagerecord'::regclass AND contype = 'f'"
        ).fetchall()
        for number, (_name, definition) in enumerate(foreign_keys, start=1):
            conn.execute(
                sql.SQL("ALTER TABLE bench_usage_copy ADD CONSTRAINT {} ").format(
                    sql.Identifier(f"bench_usage_copy_fk{number}")
                )
                + sql.SQL(definition)
            )


def _encode(world: World, intervals: int, seed: int) -> list[Batch]:
    """Every batch, as the JSON body an agent posts and as COPY rows with the values the API stores."""
    from billing.services.usage import payload_hash

    rng = random.Random(seed + 1)
    per_booking = BATCH // BOOKINGS_PER_BATCH
    moments = [world.anchor + k * INTERVAL for k in range(intervals + 1)]
    stamps = [moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in moments]
    short = [moment.strftime("%Y-%m-%dT%H:%MZ") for moment in moments]
    copy_stamps = [moment.isoformat() for moment in moments]
    booking_ids = [str(booking) for booking in world.bookings]
    agent_names = list(world.agents)
    center = str(world.center_id)
    received = datetime.now(UTC).isoformat()
    device_seconds = str((Decimal(DEVICES) * Decimal(INTERVAL.total_seconds())).quantize(Decimal("0.000001")))
    batches = []
    for chunk in range(intervals // per_booking):
        for group, agent in enumerate(agent_names):
            agent_id = str(world.agents[agent])
            records: list[dict[str, Any]] = []
            lines: list[str] = []
            for k in range(chunk * per_booking, (chunk + 1) * per_booking):
                for b in range(group * BOOKINGS_PER_BATCH, (group + 1) * BOOKINGS_PER_BATCH):
                    utilization = f"0.{rng.randint(3000, 9999):04d}"
                    energy = f"0.{rng.randint(200_000, 600_000):06d}"
                    record_id = f"{agent}-{short[k]}-b{b:03d}"
                    records.append(
                        {
                            "id": record_id,
                            "booking": booking_ids[b],
                            "start": stamps[k],
                            "end": stamps[k + 1],
                            "devices": DEVICES,
                            "utilization": utilization,
                            "energy_kwh": energy,
                        }
                    )
                    digest = payload_hash(
                        world.bookings[b],
                        moments[k].isoformat(),
                        moments[k + 1].isoformat(),
                        DEVICES,
                        Decimal(utilization),
                        Decimal(energy),
                    )
                    lines.append(
                        f"{center}\t{record_id}\t{booking_ids[b]}\t{agent_id}\t{copy_stamps[k]}\t"
                        f"{copy_stamps[k + 1]}\t{DEVICES}\t{device_seconds}\t{utilization}\t{energy}\t{received}\t"
                        f"{digest}\n"
                    )
            body = json.dumps({"agent": agent, "records": records}, separators=(",", ":")).encode()
            batches.append(Batch(body=body, copy="".join(lines).encode(), records=len(records)))
    return batches


def _preload(bench: Bench, world: World, stored: int) -> None:
    """Fill both tables with `stored` records of other bookings of the same center (same id shape, same window),
    so that the API and COPY insert into indexes of that size. Generated by PostgreSQL itself: the preload is
    not measured."""
    if stored <= 0:
        return
    started = time.perf_counter()
    needed = math.ceil(stored / INTERVALS_PER_WINDOW)
    if len(world.history) < needed:
        rng = random.Random(bench.seed + 2 + len(world.history))
        world.history += _create_bookings(world, needed - len(world.history), rng)
    with bench.connect() as conn:
        conn.execute(
            f"""
            INSERT INTO billing_usagerecord ({", ".join(COLUMNS)})
            SELECT %(center)s,
                   'hist-' || to_char(%(anchor)s + i * interval '5 minutes', 'YYYY-MM-DD"T"HH24:MI"Z"')
                       || '-b' || lpad(h.n::text, 3, '0'),
                   h.id, NULL, %(anchor)s + i * interval '5 minutes', %(anchor)s + (i + 1) * interval '5 minutes',
                   %(devices)s, %(devices)s * 300, 0.5, 0.4, now(),
                   encode(sha256((h.id::text || i::text)::bytea), 'hex')
            FROM unnest(%(history)s::uuid[]) WITH ORDINALITY AS h(id, n),
                 generate_series(0, LEAST(%(per)s, %(stored)s - (h.n - 1) * %(per)s) - 1) AS i
            """,  # noqa: S608 (only the fixed column list is formatted in)
            {
                "center": world.center_id,
                "anchor": world.anchor,
                "devices": DEVICES,
                "stored": stored,
                "per": INTERVALS_PER_WINDOW,
                "history": world.history[:needed],
            },
        )
        # Not the ids: LIKE … INCLUDING ALL gave the copy table an identity sequence of its own.
        columns = ", ".join(COLUMNS)
        conn.execute(f"INSERT INTO bench_usage_copy ({columns}) SELECT {columns} FROM billing_usagerecord")  # noqa: S608 (fixed columns)
        conn.execute(
            """
            INSERT INTO billing_bookingusage
                (booking_id, records, device_seconds, first_start, last_end, longest, updated_at)
            SELECT booking_id, count(*), sum(device_seconds), min(start), max("end"), max("end" - start), now()
            FROM billing_usagerecord GROUP BY booking_id
            """
        )
        conn.execute("VACUUM ANALYZE billing_usagerecord")
        conn.execute("VACUUM ANALYZE bench_usage_copy")
        conn.execute("VACUUM ANALYZE billing_bookingusage")
    log.info("%s: preloaded %d stored records in %.1f s", NAME, stored, time.perf_counter() - started)


# --- the measurement --------------------------------------------------------------------------------------------


@dataclass
class Run:
    copy_seconds: float
    copy_cpu: CpuSeconds
    upload: Upload
    api_cpu: CpuSeconds


def _measure(bench: Bench, world: World, batches: list[Batch], stored: int, result: Result) -> None:
    """Measure `repeats` times (each from the same starting table) and report the medians: on a shared machine
    one run can meet a neighbour's load that the next one does not."""
    sent = sum(batch.records for batch in batches)
    repeats = bench.repeat or REPEATS[bench.scale]
    result.parameters["repeats"] = repeats
    runs: list[Run] = []
    for attempt in range(1, repeats + 1):
        runs.append(_run_once(bench, world, batches, stored, f"{NAME}-stored{stored}-run{attempt}"))
        _report(result, runs, sent, len(batches))
        _check(bench, world, runs[-1].upload, sent, stored, result)


def _run_once(bench: Bench, world: World, batches: list[Batch], stored: int, label: str) -> Run:
    sent = sum(batch.records for batch in batches)
    with bench.connect() as conn:
        conn.execute("TRUNCATE billing_usagerecord, billing_bookingusage, bench_usage_copy")
    _preload(bench, world, stored)

    bench.checkpoint()
    with cpu_seconds(bench) as copy_cpu:
        copy_seconds = _copy_all(bench, batches)
    log.info("%s: COPY stored %d records in %.1f s (%.0f records/s)", label, sent, copy_seconds, sent / copy_seconds)
    with bench.connect() as conn:
        conn.execute("VACUUM ANALYZE bench_usage_copy")

    bench.checkpoint()
    with bench.asgi_server(label) as server:
        connections = _connect(server.host, server.port, world.token)
        with cpu_seconds(bench, server.pid) as api_cpu, bench.profiled(server.pid, label):
            upload = _upload_all(connections, world.token, batches)
    log.info("%s: API stored %d records in %.1f s (%.0f records/s)", label, sent, upload.seconds, sent / upload.seconds)
    return Run(copy_seconds=copy_seconds, copy_cpu=copy_cpu, upload=upload, api_cpu=api_cpu)


def _report(result: Result, runs: list[Run], sent: int, batches: int) -> None:
    api_rates = [sent / run.upload.seconds for run in runs]
    copy_rates = [sent / run.copy_seconds for run in runs]
    api_rate, copy_rate = statistics.median(api_rates), statistics.median(copy_rates)
    latencies_ms = [seconds * 1000 for run in runs for seconds in run.upload.latencies]
    latency = {
        "p50": round(percentile(latencies_ms, 0.50), 1),
        "p95": round(percentile(latencies_ms, 0.95), 1),
        "max": round(max(latencies_ms, default=math.nan), 1),
    }
    result.figures = {
        "api_records_per_s": round(api_rate),
        "copy_records_per_s": round(copy_rate),
        "batch_latency_ms": latency,
        "batches_per_run": batches,
        "runs": [
            {
                "api_records_per_s": round(api),
                "copy_records_per_s": round(copy),
                "ratio": round(api / copy, 4),
                "api_seconds": round(run.upload.seconds, 2),
                "copy_seconds": round(run.copy_seconds, 2),
            }
            for api, copy, run in zip(api_rates, copy_rates, runs, strict=True)
        ],
        # Where the cores went, in CPU milliseconds per 1,000 records: the web process, PostgreSQL, the bench's own
        # client, and the whole machine (well above the sum of the others: a neighbour was busy too).
        "cpu_ms_per_1000_records": {
            "api": sum((run.api_cpu for run in runs), CpuSeconds(0, 0, 0, 0)).per_thousand(sent * len(runs)),
            "copy": sum((run.copy_cpu for run in runs), CpuSeconds(0, 0, 0, 0)).per_thousand(sent * len(runs)),
        },
    }
    result.ratio = round(api_rate / copy_rate, 4)
    result.headline = (
        f"api {api_rate:,.0f} rec/s, copy {copy_rate:,.0f} rec/s, batch p50 {latency['p50']:.0f} ms "
        f"p95 {latency['p95']:.0f} ms"
    )


def _check(bench: Bench, world: World, upload: Upload, sent: int, stored: int, result: Result) -> None:
    """Every record accepted once and stored exactly as COPY stored it; anything else fails the run."""
    with bench.connect() as conn:
        stored_rows = conn.execute(
            "SELECT count(*) FROM billing_usagerecord WHERE booking_id = ANY(%s)", [world.bookings]
        ).fetchone()[0]
        totals = conn.execute(
            "SELECT COALESCE(sum(records), 0) FROM billing_bookingusage WHERE booking_id = ANY(%s)", [world.bookings]
        ).fetchone()[0]
        copy_rows = conn.execute("SELECT count(*) FROM bench_usage_copy").fetchone()[0]
        all_rows = conn.execute("SELECT count(*) FROM billing_usagerecord").fetchone()[0]
        differing = conn.execute(
            f"""
            SELECT (SELECT count(*) FROM (SELECT {COMPARED} FROM billing_usagerecord
                                          EXCEPT ALL SELECT {COMPARED} FROM bench_usage_copy) AS api_only),
                   (SELECT count(*) FROM (SELECT {COMPARED} FROM bench_usage_copy
                                          EXCEPT ALL SELECT {COMPARED} FROM billing_usagerecord) AS copy_only)
            """  # noqa: S608 (a fixed column list)
        ).fetchone()
    result.checks = {
        "http_errors": len(upload.http_errors),
        "sent": sent,
        "accepted": upload.accepted,
        "duplicates": upload.duplicates,
        "rejected": upload.rejected,
        "stored_rows": stored_rows,
        "booking_totals": totals,
        "table_rows": all_rows,
        "copy_rows": copy_rows,
        "rows_only_in_api_table": differing[0],
        "rows_only_in_copy_table": differing[1],
    }
    expected = {
        "http_errors": 0,
        "accepted": sent,
        "duplicates": 0,
        "rejected": 0,
        "stored_rows": sent,
        "booking_totals": sent,
        "table_rows": sent + stored,
        "copy_rows": sent + stored,
        "rows_only_in_api_table": 0,
        "rows_only_in_copy_table": 0,
    }
    wrong = [
        f"{name} = {result.checks[name]}, expected {value}"
        for name, value in expected.items()
        if result.checks[name] != value
    ]
    if wrong:
        detail = "; ".join(wrong)
        shown = (upload.http_errors + upload.samples)[:3]
        if shown:
            detail += f"; for example: {' | '.join(shown)}"
        raise BenchError(f"correctness check failed: {detail}")


def _copy_all(bench: Bench, batches: list[Batch]) -> float:
    statement = f"COPY bench_usage_copy ({', '.join(COLUMNS)}) FROM STDIN"

    def send(conn, batch: Batch) -> None:
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.write(batch.copy)
        conn.commit()

    connections = [bench.connect(autocommit=False) for _ in range(UPLOADERS)]
    try:
        seconds, _latencies, errors = _run_concurrently(connections, batches, send)
    finally:
        for conn in connections:
            conn.close()
    if errors:
        raise BenchError(f"COPY failed: {errors[0]}")
    return seconds


def _post(conn: http.client.HTTPConnection, token: str, body: bytes) -> tuple[int, bytes]:
    conn.request(
        "POST", PATH, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    response = conn.getresponse()
    return response.status, response.read()


def _connect(host: str, port: int, token: str) -> list[http.client.HTTPConnection]:
    """One keep-alive connection per uploader, each warmed up with an empty batch before the clock starts: the
    connection is open and the server has loaded everything a first request loads."""
    connections = []
    for _ in range(UPLOADERS):
        conn = http.client.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT)
        status, payload = _post(conn, token, json.dumps({"records": []}).encode())
        if status != 200:
            raise BenchError(f"warm-up request answered HTTP {status}: {payload[:300]!r}")
        connections.append(conn)
    return connections


def _upload_all(connections: list[http.client.HTTPConnection], token: str, batches: list[Batch]) -> Upload:
    tally = {"accepted": 0, "duplicates": 0, "rejected": 0}
    http_errors: list[str] = []
    samples: list[str] = []
    lock = threading.Lock()

    def send(conn: http.client.HTTPConnection, batch: Batch) -> None:
        status, payload = _post(conn, token, batch.body)
        if status != 200:
            with lock:
                http_errors.append(f"HTTP {status}: {payload[:300]!r}")
            return
        answer = json.loads(payload)
        with lock:
            tally["accepted"] += answer["accepted"]
            tally["duplicates"] += answer["duplicates"]
            tally["rejected"] += len(answer["rejected"])
            if answer["rejected"] and len(samples) < 3:
                samples.append(f"rejected: {answer['rejected'][:3]}")

    try:
        seconds, latencies, errors = _run_concurrently(connections, batches, send)
    finally:
        for conn in connections:
            conn.close()
    if errors:
        raise BenchError(f"upload failed: {errors[0]}")
    return Upload(seconds=seconds, latencies=latencies, http_errors=http_errors, samples=samples, **tally)


def _run_concurrently(connections: list, batches: list[Batch], send) -> tuple[float, list[float], list[str]]:
    """Send every batch, each connection taking the next one from a shared queue as soon as it is free. Returns
    the wall time from the first send to the last answer, each batch's latency, and any exceptions."""
    work: queue.SimpleQueue[Batch] = queue.SimpleQueue()
    for batch in batches:
        work.put(batch)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(connections) + 1)

    def worker(conn) -> None:
        start.wait()
        while True:
            try:
                batch = work.get_nowait()
            except queue.Empty:
                return
            began = time.perf_counter()
            try:
                send(conn, batch)
            except Exception as error:
                with lock:
                    errors.append(repr(error))
                return
            with lock:
                latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=worker, args=(conn,), daemon=True) for conn in connections]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies, errors
