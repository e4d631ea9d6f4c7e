"""Scenario 5, mixed load: 16 clients for 60 s (12 s at `small`) against the ASGI server, each looping over a
seeded mix of what a busy network asks of it, on the market of the catalog scenario (2,000 offerings and 200,000
bookings by default):

- 30 % catalog searches through the API (`GET /api/v1/catalog` with a window and filters),
- 10 % the browser catalog page (`GET /catalog/`, anonymous, same filters),
- 25 % quotes (`POST /api/v1/quotes`) and 20 % bookings (`POST /api/v1/bookings`) of a random published offering
  over a random window: 201, or 409 `insufficient_capacity` (an expected answer, counted apart),
- 15 % usage uploads (`POST /api/v1/agent/usage`): batches of 20 one-minute records of a confirmed booking that
  started ten days ago, each client reporting its own booking onwards, with an `agent` token of that center.

Each client is a consumer organization of its own (its own token: the per-organization throttle never limits) with
one keep-alive connection. Figures: requests per second, p50/p95 per endpoint, expected refusals, and errors: any
other answer, or a usage record not accepted, is an error, and the run must have none (the "ratio" is the
fraction of requests that erred, target at most 0).

The same load then runs against **two** web processes on the same database, clients spread over them as an L4
load balancer would (client k to process k mod 2): the measured part of "Beyond one machine"
(docs/performance.md). The two results are two JSON lines, `web_processes` 1 and 2.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.bench.client import Client, run_threads
from tests.bench.harness import Bench, BenchError, Result, cpu_seconds, percentile
from tests.bench.market import Market, market_ensure
from tests.bench.scenarios.catalog_search import _api_query, _page_query, _searches

NAME = "mixed_load"
DESCRIPTION = "16 clients mixing catalog, quotes, bookings and usage uploads: throughput, p95 per endpoint, errors"
TARGET = 0.0  # the fraction of requests that erred

CLIENTS = 16
SECONDS = {"small": 12, "default": 60}
PROCESSES = (1, 2)
MIX = (("catalog_api", 30), ("catalog_page", 10), ("quote", 25), ("booking", 20), ("usage", 15))
RECORDS_PER_BATCH = 20
USAGE_DEVICES = 8

log = logging.getLogger("bench")


@dataclass
class World:
    market: Market
    consumer_tokens: list[str]
    agent_token: str
    usage_bookings: list[uuid.UUID]
    usage_start: datetime
    next_minute: list[int] = field(default_factory=list)  # per client: the next minute its agent reports


def run(bench: Bench) -> Iterator[Result]:
    market = market_ensure(bench)
    world = _create_world(market)
    seconds = SECONDS[bench.scale]
    throughput_one = None
    for processes in PROCESSES:
        result = Result(
            name=NAME,
            parameters={
                "scale": bench.scale,
                "clients": CLIENTS,
                "seconds": seconds,
                "web_processes": processes,
                "mix_percent": dict(MIX),
                "offerings": market.offerings,
                "bookings": market.bookings,
                "seed": bench.seed,
            },
            target=TARGET,
            target_is_maximum=True,
            environment=bench.environment,
        )
        try:
            throughput = _measure(bench, world, processes, seconds, result)
            if processes == 1:
                throughput_one = throughput
            elif throughput_one:
                result.figures["throughput_vs_one_process"] = round(throughput / throughput_one, 2)
        except BenchError as error:
            result.error = str(error)
        yield result


def _create_world(market: Market) -> World:
    from accounts.models import OrganizationKind, Scope
    from accounts.services import api_token_issue, organization_create
    from marketplace.models import AcceleratorModel, Agent, Booking, BookingStatus, Offering, OfferingStatus, Site

    now = datetime.now(UTC)
    tokens = []
    for number in range(CLIENTS):
        consumer = organization_create(
            kind=OrganizationKind.ENTERPRISE,
            name=f"Mixed Bench Consumer {number:02d}",
            slug=f"mixed-consumer-{number:02d}",
        )
        tokens.append(api_token_issue(organization=consumer, name="bench", scopes=[Scope.BOOKING]).secret)
    center = organization_create(
        kind=OrganizationKind.CENTER, name="Mixed Bench Center", slug="mixed-bench-center", verified=True
    )
    agent_token = api_token_issue(organization=center, name="agents", scopes=[Scope.AGENT]).secret
    site = Site.objects.create(
        center=center,
        external_id="mixed-site",
        name="Mixed site",
        region="cn-north",
        pue=Decimal("1.25"),
        carbon_intensity_g_per_kwh=Decimal("550"),
        green_power_share=Decimal("0.30"),
    )
    offering = Offering.objects.create(
        center=center,
        site=site,
        external_id="mixed-usage-pool",
        accelerator=AcceleratorModel.objects.order_by("code").first(),
        devices=CLIENTS * USAGE_DEVICES,
        devices_per_node=USAGE_DEVICES,
        price_per_device_hour=Decimal("11.0000"),
        currency="CNY",
        max_hours=720,
        status=OfferingStatus.PUBLISHED,
    )
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=10)
    for number in range(CLIENTS):
        Agent.objects.create(
            center=center, name=f"mixed-node{number:02d}", version="bench", first_seen_at=now, last_seen_at=now
        )
    bookings = Booking.objects.bulk_create(
        Booking(
            consumer_id=market.consumer_ids[number % len(market.consumer_ids)],
            offering=offering,
            devices=USAGE_DEVICES,
            start=start,
            end=start + timedelta(days=30),
            status=BookingStatus.CONFIRMED,
            unit_price=offering.price_per_device_hour,
            currency="CNY",
            min_commit_fraction=Decimal("0"),
            cancel_notice_hours=24,
            confirmed_at=start - timedelta(days=1),
        )
        for number in range(CLIENTS)
    )
    return World(
        market=market,
        consumer_tokens=tokens,
        agent_token=agent_token,
        usage_bookings=[booking.pk for booking in bookings],
        usage_start=start,
        next_minute=[0] * CLIENTS,
    )


def _usage_body(world: World, client: int) -> bytes:
    first = world.next_minute[client]
    world.next_minute[client] += RECORDS_PER_BATCH
    records = []
    for minute in range(first, first + RECORDS_PER_BATCH):
        start = world.usage_start + timedelta(minutes=minute)
        records.append(
            {
                "id": f"mixed{client:02d}-{minute:06d}",
                "booking": str(world.usage_bookings[client]),
                "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "end": (start + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "devices": USAGE_DEVICES,
                "utilization": "0.75",
                "energy_kwh": "0.08",
            }
        )
    return json.dumps({"agent": f"mixed-node{client:02d}", "records": records}, separators=(",", ":")).encode()


def _window_body(rng: random.Random, world: World) -> bytes:
    offering, devices = rng.choice(world.market.published)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=rng.randint(2, 20 * 24))
    return json.dumps(
        {
            "offering": str(offering),
            "devices": rng.randint(1, min(8, devices)),
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + timedelta(hours=rng.randint(1, 24))).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        separators=(",", ":"),
    ).encode()


def _measure(bench: Bench, world: World, processes: int, seconds: float, result: Result) -> float:
    rng = random.Random(bench.seed + 50 + processes)
    searches = _searches(world.market, 400, bench.seed + processes)
    names = [name for name, _weight in MIX]
    weights = [weight for _name, weight in MIX]
    latencies: dict[str, list[float]] = defaultdict(list)
    outcomes: Counter = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    with ExitStack() as stack:
        servers = [stack.enter_context(bench.asgi_server(f"{NAME}-{processes}p-{n}")) for n in range(processes)]
        plans = []
        for number in range(CLIENTS):
            server = servers[number % processes]
            plans.append(
                (
                    number,
                    Client(server.host, server.port, world.consumer_tokens[number]),
                    Client(server.host, server.port, world.agent_token),
                    Client(server.host, server.port),
                    random.Random(rng.getrandbits(64)),
                )
            )
        for _number, consumer, _agent, anonymous, _rng in plans[:processes]:  # every process warmed up once
            for client, path in ((consumer, "/api/v1/catalog?" + _api_query(searches[0])), (anonymous, "/catalog/")):
                status, body, _s = client.request("GET", path)
                if status != 200:
                    raise BenchError(f"warm-up GET {path} answered HTTP {status}: {body[:300]!r}")
        deadline_box: list[float] = []

        def worker(plan):
            number, consumer, agent, anonymous, own_rng = plan

            def loop() -> None:
                while time.perf_counter() < deadline_box[0]:
                    kind = own_rng.choices(names, weights)[0]
                    if kind == "catalog_api":
                        status, body, took = consumer.request(
                            "GET", "/api/v1/catalog?" + _api_query(own_rng.choice(searches))
                        )
                        ok = status == 200
                    elif kind == "catalog_page":
                        status, body, took = anonymous.request(
                            "GET", "/catalog/?" + _page_query(own_rng.choice(searches))
                        )
                        ok = status == 200
                    elif kind == "quote":
                        status, body, took = consumer.request("POST", "/api/v1/quotes", _window_body(own_rng, world))
                        ok = status == 200
                    elif kind == "booking":
                        status, body, took = consumer.request("POST", "/api/v1/bookings", _window_body(own_rng, world))
                        ok = status == 201
                        if status == 409 and json.loads(body).get("code") == "insufficient_capacity":
                            with lock:
                                outcomes["booking_refused_409"] += 1
                                latencies[kind].append(took)
                            continue
                    else:
                        status, body, took = agent.request("POST", "/api/v1/agent/usage", _usage_body(world, number))
                        ok = status == 200 and json.loads(body).get("accepted") == RECORDS_PER_BATCH
                    with lock:
                        latencies[kind].append(took)
                        outcomes[f"{kind}_ok" if ok else f"{kind}_error"] += 1
                        if not ok and len(errors) < 5:
                            errors.append(f"{kind}: HTTP {status}: {body[:200]!r}")

            return loop

        pid = servers[0].pid
        with ExitStack() as measuring:
            # One CPU account per web process (each also counts PostgreSQL and the machine: read from the first).
            usages = [measuring.enter_context(cpu_seconds(bench, server.pid)) for server in servers]
            measuring.enter_context(bench.profiled(pid, f"{NAME}-{processes}p"))
            deadline_box.append(time.perf_counter() + seconds)
            elapsed, crashed = run_threads([worker(plan) for plan in plans])
        cpu = usages[0]
        web_cpu = None if any(usage.server is None for usage in usages) else sum(usage.server for usage in usages)
        for _number, *clients, _rng in plans:
            for client in clients:
                client.close()
    if crashed:
        raise BenchError(f"a client failed: {crashed[0]}")

    requests = sum(len(values) for values in latencies.values())
    failed = sum(count for key, count in outcomes.items() if key.endswith("_error"))
    throughput = requests / elapsed
    result.figures = {
        "requests": requests,
        "requests_per_s": round(throughput, 1),
        "errors": failed,
        "booking_refused_409": outcomes["booking_refused_409"],
        "by_endpoint": {
            kind: {
                "requests": len(latencies[kind]),
                "p50_ms": round(percentile([v * 1000 for v in latencies[kind]], 0.5), 1),
                "p95_ms": round(percentile([v * 1000 for v in latencies[kind]], 0.95), 1),
            }
            for kind in names
            if latencies[kind]
        },
        "usage_records_accepted": outcomes["usage_ok"] * RECORDS_PER_BATCH,
        # Where the cores went: every web process together, PostgreSQL, the bench's clients, the whole machine.
        "cpu_seconds": {
            "web": None if web_cpu is None else round(web_cpu, 1),
            "postgres": None if cpu.postgres is None else round(cpu.postgres, 1),
            "bench": None if cpu.bench is None else round(cpu.bench, 1),
            "machine": None if cpu.machine is None else round(cpu.machine, 1),
        },
        "cpu_ms_per_request": {
            "web": None if web_cpu is None or not requests else round(web_cpu * 1000 / requests, 1),
            "postgres": None if cpu.postgres is None or not requests else round(cpu.postgres * 1000 / requests, 1),
        },
    }
    result.checks = {"errors": failed, "error_samples": errors}
    result.ratio = round(failed / requests, 4) if requests else None
    p95 = {kind: figures["p95_ms"] for kind, figures in result.figures["by_endpoint"].items()}
    result.headline = (
        f"{processes} web: {throughput:,.0f} req/s, {failed} errors, {outcomes['booking_refused_409']} refused; p95 ms "
        + " ".join(f"{kind} {value:.0f}" for kind, value in p95.items())
    )
    if failed:
        result.error = f"{failed} requests erred, for example: {errors[0]}"
    log.info("%s: %s", NAME, result.headline)
    return throughput
