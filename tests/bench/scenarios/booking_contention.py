"""Scenario 3, booking under contention: successful bookings per second through `POST /api/v1/bookings` when 32
clients book at once against a Daphne process, compared with the same workload as bare psycopg transactions.

The market is one center with 10 offerings of 64 devices. Every attempt asks for 1–8 devices of one offering over
a window of 1–24 hours starting within the next few days (72 hours at `small`, 288 by default), drawn from the seed
so that about half the attempts find too little capacity left (409 `insufficient_capacity`: an expected answer).
Each of the 32 clients is a consumer organization with its own `booking` token (the per-organization throttle then
never limits) and its own keep-alive connection; they take attempts from one queue in the seeded order.

The limit runs the same attempts in the same order over 32 psycopg connections, each attempt one transaction: lock
the offering's row (`SELECT … FOR UPDATE`), the capacity sweep over the window (the holding bookings overlapping
it, +devices at their start and −devices at their end, the running sum's maximum), and the booking's `INSERT` when
it fits (else a rollback): the logical work of a booking, with nothing else.

After each phase the checked peak is computed in SQL over every holding booking of the 10 offerings: at no instant
may an offering hold more than its 64 devices. A violation is an error (the run exits 1), as is any answer other
than 201 or 409 `insufficient_capacity`, or a 201 count that differs from the rows stored.

The API phase runs twice on the same attempts (the bookings cleared between): against one web process (the
target's figure) and against two, client k talking to process k mod 2 as an L4 load balancer would spread them,
both compared with the one bare run. Two JSON lines, `web_processes` 1 and 2.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.bench.client import Client, run_threads
from tests.bench.harness import Bench, BenchError, CpuSeconds, Result, cpu_seconds, percentile
from tests.bench.market import HOLDING

NAME = "booking_contention"
DESCRIPTION = "successful bookings/s of 32 clients on 10 offerings of 64 devices vs bare psycopg transactions"
TARGET = 0.3

CLIENTS = 32
OFFERINGS = 10
DEVICES = 64
ATTEMPTS = {"small": 1_600, "default": 6_400}
# One web process (the target's figure), then two behind a notional load balancer: "Beyond one machine".
PROCESSES = (1, 2)
# The cheapest requests the product answers, measured on the same servers after the bookings: the health check
# (Django's middleware, one `SELECT 1`, a JSON answer) and a token-authenticated API read (DRF, the token lookup,
# the organization): the most requests/s the web processes can answer here, whatever a booking costs.
FLOOR_PATHS = ("/healthz", "/api/v1/me")
HORIZON_HOURS = {"small": 72, "default": 288}
PRICE = Decimal("9.5000")
PATH = "/api/v1/bookings"

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Attempt:
    offering: uuid.UUID
    devices: int
    start: datetime
    end: datetime


@dataclass
class World:
    offerings: list[uuid.UUID]
    consumers: list[uuid.UUID]
    tokens: list[str]


@dataclass
class Phase:
    seconds: float
    booked: int
    refused: int
    latencies: list[float]
    cpu: CpuSeconds
    floor: dict[str, float] = field(default_factory=dict)  # requests/s of FLOOR_PATHS on the same servers


def run(bench: Bench) -> Iterator[Result]:
    world = _create_world()
    attempts = _attempts(world, ATTEMPTS[bench.scale], HORIZON_HOURS[bench.scale], bench.seed)
    limit = limit_peak = None
    api_one = None
    for processes in PROCESSES:
        result = Result(
            name=NAME,
            parameters={
                "scale": bench.scale,
                "clients": CLIENTS,
                "offerings": OFFERINGS,
                "devices_per_offering": DEVICES,
                "attempts": len(attempts),
                "horizon_hours": HORIZON_HOURS[bench.scale],
                "web_processes": processes,
                "seed": bench.seed,
            },
            target=TARGET,
            environment=bench.environment,
        )
        try:
            if limit is None:
                bench.checkpoint()
                limit = _bare(bench, world, attempts)
                limit_peak = _checked_peak(bench, world)
                _check(bench, world, limit, limit_peak, "bare")
            _clear(bench, world)
            bench.checkpoint()
            api = _api_phase(bench, world, attempts, processes)
            api_peak = _checked_peak(bench, world)
            _report(result, api, limit, api_peak, limit_peak, len(attempts), processes)
            _check(bench, world, api, api_peak, "api")
            if processes == 1:
                api_one = api
            elif api_one is not None:
                result.figures["bookings_vs_one_process"] = round(
                    (api.booked / api.seconds) / (api_one.booked / api_one.seconds), 2
                )
        except BenchError as error:
            result.error = str(error)
        yield result


def _api_phase(bench: Bench, world: World, attempts: list[Attempt], processes: int) -> Phase:
    """The attempts over HTTP against `processes` web processes on the same database, client k talking to process
    k mod `processes` (as an L4 load balancer would spread them); the CPU of all of them is added up."""
    with ExitStack() as stack:
        label = NAME if processes == 1 else f"{NAME}-{processes}p"
        servers = [stack.enter_context(bench.asgi_server(f"{label}-{n}")) for n in range(processes)]
        clients = []
        for number, token in enumerate(world.tokens):
            server = servers[number % processes]
            clients.append(Client(server.host, server.port, token))
        _warm_up(clients, attempts[0])
        with ExitStack() as measuring:
            usages = [measuring.enter_context(cpu_seconds(bench, server.pid)) for server in servers]
            measuring.enter_context(bench.profiled(servers[0].pid, label))
            api = _api(clients, attempts)
        api.floor = {path: _floor(clients, path, len(attempts)) for path in FLOOR_PATHS}
        for client in clients:
            client.close()
    api.cpu = usages[0]
    if processes > 1:
        api.cpu.server = None if any(usage.server is None for usage in usages) else sum(u.server for u in usages)
    return api


def _floor(clients: list[Client], path: str, requests: int) -> float:
    """Requests/s of the same clients on the same servers asking for `path` `requests` times in all: what the
    web processes answer at best on this machine, with no booking work at all."""
    work: queue.SimpleQueue[int] = queue.SimpleQueue()
    for number in range(requests):
        work.put(number)
    failures: list[str] = []

    def worker(client: Client):
        def work_loop() -> None:
            while True:
                try:
                    work.get_nowait()
                except queue.Empty:
                    return
                status, body, _seconds = client.request("GET", path)
                if status != 200:
                    failures.append(f"GET {path}: HTTP {status}: {body[:200]!r}")

        return work_loop

    seconds, errors = run_threads([worker(client) for client in clients])
    if errors or failures:
        raise BenchError(f"floor requests failed: {(errors or failures)[0]}")
    return requests / seconds


# --- data -----------------------------------------------------------------------------------------------------------


def _create_world() -> World:
    from accounts.models import OrganizationKind, Scope
    from accounts.services import api_token_issue, organization_create
    from marketplace.models import AcceleratorModel, Offering, OfferingStatus, Site

    center = organization_create(
        kind=OrganizationKind.CENTER, name="Contention Bench Center", slug="contention-bench-center", verified=True
    )
    site = Site.objects.create(
        center=center,
        external_id="contention-site",
        name="Contention site",
        region="cn-east",
        pue=Decimal("1.30"),
        carbon_intensity_g_per_kwh=Decimal("550"),
        green_power_share=Decimal("0.20"),
    )
    chip = AcceleratorModel.objects.order_by("code").first()
    offerings = [
        Offering.objects.create(
            center=center,
            site=site,
            external_id=f"contention-pool-{number}",
            accelerator=chip,
            devices=DEVICES,
            devices_per_node=8,
            price_per_device_hour=PRICE,
            currency="CNY",
            max_hours=720,
            status=OfferingStatus.PUBLISHED,
        ).pk
        for number in range(OFFERINGS)
    ]
    consumers, tokens = [], []
    for number in range(CLIENTS):
        consumer = organization_create(
            kind=OrganizationKind.ENTERPRISE,
            name=f"Contention Bench Consumer {number:02d}",
            slug=f"contention-bench-consumer-{number:02d}",
        )
        consumers.append(consumer.pk)
        tokens.append(api_token_issue(organization=consumer, name="bench", scopes=[Scope.BOOKING]).secret)
    return World(offerings=offerings, consumers=consumers, tokens=tokens)


def _attempts(world: World, count: int, horizon_hours: int, seed: int) -> list[Attempt]:
    rng = random.Random(seed + 30)
    # Whole hours from the next hour on: every window lies in the future when it is booked.
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
    attempts = []
    for _ in range(count):
        start = base + timedelta(hours=rng.randrange(horizon_hours))
        attempts.append(
            Attempt(
                offering=rng.choice(world.offerings),
                devices=rng.randint(1, 8),
                start=start,
                end=start + timedelta(hours=rng.randint(1, 24)),
            )
        )
    return attempts


def _clear(bench: Bench, world: World) -> None:
    with bench.connect() as conn:
        conn.execute(
            "DELETE FROM marketplace_bookingevent WHERE booking_id IN "
            "(SELECT id FROM marketplace_booking WHERE offering_id = ANY(%s))",
            [world.offerings],
        )
        conn.execute("DELETE FROM marketplace_booking WHERE offering_id = ANY(%s)", [world.offerings])
        conn.execute("VACUUM ANALYZE marketplace_booking")


# --- the two phases ---------------------------------------------------------------------------------------------

_LOCK = "SELECT devices FROM marketplace_offering WHERE id = %(offering)s FOR UPDATE"
_PEAK = """
    SELECT COALESCE(max(running), 0) FROM (
        SELECT sum(delta) OVER (ORDER BY t, delta) AS running FROM (
            SELECT GREATEST(start, %(start)s) AS t, devices AS delta FROM overlapping
            UNION ALL
            SELECT LEAST("end", %(end)s), -devices FROM overlapping
        ) AS events
    ) AS sweep
"""
_OVERLAPPING = """
    WITH overlapping AS (
        SELECT start, "end", devices FROM marketplace_booking
         WHERE offering_id = %(offering)s AND status = ANY(%(holding)s) AND start < %(end)s AND "end" > %(start)s
    )
"""
_INSERT = """
    INSERT INTO marketplace_booking
        (id, consumer_id, offering_id, devices, start, "end", status, unit_price, currency, min_commit_fraction,
         cancel_notice_hours, created_at, updated_at, confirmed_at)
    VALUES (gen_random_uuid(), %(consumer)s, %(offering)s, %(devices)s, %(start)s, %(end)s, 'confirmed',
            %(price)s, 'CNY', 0, 24, now(), now(), now())
"""


def _bare(bench: Bench, world: World, attempts: list[Attempt]) -> Phase:
    work = _queue(attempts)
    tally = {"booked": 0, "refused": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    connections = [bench.connect(autocommit=False) for _ in range(CLIENTS)]

    def worker(number: int):
        conn = connections[number]

        def work_loop() -> None:
            while True:
                try:
                    attempt = work.get_nowait()
                except queue.Empty:
                    return
                params = {
                    "offering": attempt.offering,
                    "devices": attempt.devices,
                    "start": attempt.start,
                    "end": attempt.end,
                    "holding": HOLDING,
                    "consumer": world.consumers[number],
                    "price": PRICE,
                }
                began = time.perf_counter()
                devices = conn.execute(_LOCK, params).fetchone()[0]
                peak = conn.execute(_OVERLAPPING + _PEAK, params).fetchone()[0]
                fits = attempt.devices <= devices - peak
                if fits:
                    conn.execute(_INSERT, params)
                    conn.commit()
                else:
                    conn.rollback()
                with lock:
                    latencies.append(time.perf_counter() - began)
                    tally["booked" if fits else "refused"] += 1

        return work_loop

    try:
        with cpu_seconds(bench) as cpu:
            seconds, errors = run_threads([worker(number) for number in range(CLIENTS)])
    finally:
        for conn in connections:
            conn.close()
    if errors:
        raise BenchError(f"bare transactions failed: {errors[0]}")
    log.info("%s: bare: %d booked, %d refused in %.1f s", NAME, tally["booked"], tally["refused"], seconds)
    return Phase(seconds=seconds, latencies=latencies, cpu=cpu, **tally)


def _body(attempt: Attempt) -> bytes:
    return json.dumps(
        {
            "offering": str(attempt.offering),
            "devices": attempt.devices,
            "start": attempt.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": attempt.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        separators=(",", ":"),
    ).encode()


def _warm_up(clients: list[Client], attempt: Attempt) -> None:
    """Each connection opened and the server's first-request work done with a quote (which reserves nothing)."""
    for client in clients:
        status, body, _seconds = client.request("POST", "/api/v1/quotes", _body(attempt))
        if status != 200:
            raise BenchError(f"warm-up quote answered HTTP {status}: {body[:300]!r}")


def _api(clients: list[Client], attempts: list[Attempt]) -> Phase:
    bodies = {attempt: _body(attempt) for attempt in attempts}
    work = _queue(attempts)
    tally = {"booked": 0, "refused": 0}
    latencies: list[float] = []
    unexpected: list[str] = []
    lock = threading.Lock()

    def worker(client: Client):
        def work_loop() -> None:
            while True:
                try:
                    attempt = work.get_nowait()
                except queue.Empty:
                    return
                status, body, seconds = client.request("POST", PATH, bodies[attempt])
                with lock:
                    latencies.append(seconds)
                    if status == 201:
                        tally["booked"] += 1
                    elif status == 409 and json.loads(body).get("code") == "insufficient_capacity":
                        tally["refused"] += 1
                    else:
                        unexpected.append(f"HTTP {status}: {body[:300]!r}")

        return work_loop

    seconds, errors = run_threads([worker(client) for client in clients])
    if errors:
        raise BenchError(f"booking requests failed: {errors[0]}")
    if unexpected:
        raise BenchError(f"{len(unexpected)} unexpected answers, for example: {unexpected[0]}")
    log.info("%s: api: %d booked, %d refused in %.1f s", NAME, tally["booked"], tally["refused"], seconds)
    return Phase(seconds=seconds, latencies=latencies, cpu=CpuSeconds(), **tally)


def _queue(attempts: list[Attempt]) -> queue.SimpleQueue[Attempt]:
    work: queue.SimpleQueue[Attempt] = queue.SimpleQueue()
    for attempt in attempts:
        work.put(attempt)
    return work


# --- checks and figures ------------------------------------------------------------------------------------------


def checked_peak_sql() -> str:
    """Each offering's devices and the most its holding bookings hold at any instant, over all time."""
    return """
        SELECT o.id, o.devices, COALESCE(max(sweep.running), 0)
          FROM marketplace_offering o
          LEFT JOIN (
              SELECT offering_id, sum(delta) OVER (PARTITION BY offering_id ORDER BY t, delta) AS running FROM (
                  SELECT offering_id, start AS t, devices AS delta FROM marketplace_booking
                   WHERE offering_id = ANY(%(offerings)s) AND status = ANY(%(holding)s)
                  UNION ALL
                  SELECT offering_id, "end", -devices FROM marketplace_booking
                   WHERE offering_id = ANY(%(offerings)s) AND status = ANY(%(holding)s)
              ) AS events
          ) AS sweep ON sweep.offering_id = o.id
         WHERE o.id = ANY(%(offerings)s)
         GROUP BY o.id, o.devices
    """


def _checked_peak(bench: Bench, world: World) -> dict[str, int]:
    with bench.connect() as conn:
        rows = conn.execute(checked_peak_sql(), {"offerings": world.offerings, "holding": HOLDING}).fetchall()
    over = [f"{offering} holds {peak} of {devices}" for offering, devices, peak in rows if peak > devices]
    if over:
        raise BenchError(f"capacity exceeded: {'; '.join(over)}")
    return {
        "max_peak": max(row[2] for row in rows),
        "devices": DEVICES,
        "offerings_full": sum(row[2] == row[1] for row in rows),
    }


def _check(bench: Bench, world: World, phase: Phase, peak: dict[str, int], label: str) -> None:
    with bench.connect() as conn:
        stored = conn.execute(
            "SELECT count(*) FROM marketplace_booking WHERE offering_id = ANY(%s)", [world.offerings]
        ).fetchone()[0]
    if stored != phase.booked:
        raise BenchError(f"{label}: {phase.booked} bookings answered as made but {stored} stored")
    if peak["max_peak"] > DEVICES:
        raise BenchError(f"{label}: capacity exceeded ({peak['max_peak']} of {DEVICES})")


def _report(
    result: Result, api: Phase, bare: Phase, api_peak: dict, bare_peak: dict, attempts: int, processes: int
) -> None:
    def latency(values: list[float]) -> dict[str, float]:
        ms = [value * 1000 for value in values]
        return {"p50": round(percentile(ms, 0.5), 1), "p95": round(percentile(ms, 0.95), 1), "max": round(max(ms), 1)}

    api_rate, bare_rate = api.booked / api.seconds, bare.booked / bare.seconds
    result.figures = {
        "api_bookings_per_s": round(api_rate, 1),
        "bare_bookings_per_s": round(bare_rate, 1),
        "api_attempts_per_s": round(attempts / api.seconds, 1),
        "bare_attempts_per_s": round(attempts / bare.seconds, 1),
        "api_booked": api.booked,
        "api_rejections": api.refused,
        "bare_booked": bare.booked,
        "bare_rejections": bare.refused,
        "api_seconds": round(api.seconds, 2),
        "bare_seconds": round(bare.seconds, 2),
        "api_latency_ms": latency(api.latencies),
        "bare_latency_ms": latency(bare.latencies),
        "checked_peak": {"api": api_peak, "bare": bare_peak},
        # What the target asks of the API at this refusal rate, next to the most trivial requests/s served here.
        "attempts_per_s_for_target": round(TARGET * bare_rate * attempts / max(api.booked, 1), 1),
        "floor_requests_per_s": {path: round(rate, 1) for path, rate in api.floor.items()},
        "cpu_ms_per_attempt": {
            "api": {k: None if v is None else round(v * 1000 / attempts, 2) for k, v in vars(api.cpu).items()},
            "bare": {k: None if v is None else round(v * 1000 / attempts, 2) for k, v in vars(bare.cpu).items()},
        },
    }
    result.checks = {"api_max_peak": api_peak["max_peak"], "bare_max_peak": bare_peak["max_peak"], "capacity": DEVICES}
    result.ratio = round(api_rate / bare_rate, 4)
    result.headline = (
        f"{processes} web: api {api_rate:,.0f} bookings/s ({api.refused} refused), "
        f"bare {bare_rate:,.0f}/s ({bare.refused} refused); peak {api_peak['max_peak']}/{DEVICES}"
    )
