"""Scenario 4, catalog search with availability: latency of `GET /api/v1/catalog` and of the browser catalog page
(`/catalog/`) with an availability window and filters, over a market of 2,000 offerings and 200,000 bookings,
compared with a bare SQL query written by hand that answers the same question.

Every request carries a window (1–72 hours starting in the next 18 days) and a seeded mix of other filters
(devices, vendor, region, chip, currency and price ceiling, chip origin, memory, PUE) and an ordering. The same
parameter sets are sent, one request at a time over one keep-alive connection, to the API (with a consumer token:
anonymous reads are throttled at 120/min), to the page (anonymous, as anyone may browse) and, through psycopg, to
the bare query; each latency is the client's, from sending to the last byte.

The bare query filters the published offerings, sweeps the holding bookings that overlap the window once for all of
them (a window function partitioned by offering), keeps those with enough devices free and returns the first page
(50 rows, the API's page) with the total count: the answer the API gives (its page and `count`). The API's page and
count are checked against it for every request.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from tests.bench.client import Client
from tests.bench.harness import Bench, BenchError, Result, cpu_seconds, percentile
from tests.bench.market import HOLDING, Market, market_ensure

NAME = "catalog_search"
DESCRIPTION = "p95 latency of GET /api/v1/catalog and /catalog/ with a window vs the bare SQL query"
TARGET = 3.0  # the API's (and the page's) p95 at most three times the bare query's

REQUESTS = {"small": 200, "default": 500}
PAGE = 50  # the API's page size (REST_FRAMEWORK PAGE_SIZE)
ORDERINGS = ("price_per_device_hour", "-price_per_device_hour", "price_per_pflop_hour")

log = logging.getLogger("bench")


def run(bench: Bench) -> Iterator[Result]:
    market = market_ensure(bench)
    count = REQUESTS[bench.scale]
    searches = _searches(market, count, bench.seed)
    parameters = {
        "scale": bench.scale,
        "offerings": market.offerings,
        "published": len(market.published),
        "bookings": market.bookings,
        "requests": count,
        "seed": bench.seed,
    }
    token = _consumer_token()

    sql_latencies, answers = _bare_sql(bench, searches)
    with bench.asgi_server(NAME) as server:
        api = Client(server.host, server.port, token)
        page = Client(server.host, server.port)
        # Warm-up, not timed: the first request of a process loads what every later one reuses.
        for client, path in ((api, "/api/v1/catalog?" + _api_query(searches[0])), (page, "/catalog/")):
            status, body, _seconds = client.request("GET", path)
            if status != 200:
                raise BenchError(f"warm-up GET {path} answered HTTP {status}: {body[:300]!r}")
        with cpu_seconds(bench, server.pid) as api_cpu, bench.profiled(server.pid, f"{NAME}-api"):
            api_latencies, mismatches = _api(api, searches, answers)
        with cpu_seconds(bench, server.pid) as page_cpu, bench.profiled(server.pid, f"{NAME}-page"):
            page_latencies, page_errors = _page(page, searches)
        api.close()
        page.close()

    sql = _latency(sql_latencies)
    for label, latencies, cpu in (("api", api_latencies, api_cpu), ("page", page_latencies, page_cpu)):
        figures = _latency(latencies)
        result = Result(
            name=NAME,
            parameters={**parameters, "endpoint": "GET /api/v1/catalog" if label == "api" else "GET /catalog/"},
            figures={
                "latency_ms": figures,
                "bare_sql_latency_ms": sql,
                "p95_over_bare_sql": round(figures["p95"] / sql["p95"], 2),
                "mean_rows_matched": round(sum(answer[1] for answer in answers) / len(answers), 1),
                "cpu_ms_per_request": {
                    part: None if value is None else round(value * 1000 / count, 2) for part, value in vars(cpu).items()
                },
            },
            ratio=round(figures["p95"] / sql["p95"], 3),
            target=TARGET,
            target_is_maximum=True,
            environment=bench.environment,
            headline=(
                f"{label} p50 {figures['p50']:.1f} p95 {figures['p95']:.1f} p99 {figures['p99']:.1f} ms; "
                f"bare SQL p95 {sql['p95']:.1f} ms"
            ),
        )
        wrong = mismatches if label == "api" else page_errors
        result.checks = {
            "requests": count,
            "answers_differing_from_bare_sql" if label == "api" else "errors": len(wrong),
        }
        if wrong:
            result.error = f"{len(wrong)} of {count} answers wrong, for example: {' | '.join(wrong[:2])}"
        yield result


# --- the searches -----------------------------------------------------------------------------------------------


def _searches(market: Market, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` seeded searches: always a window, plus devices most of the time and up to three other filters."""
    rng = random.Random(seed + 40)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    searches = []
    for _ in range(count):
        start = now + timedelta(hours=rng.randint(1, 18 * 24))
        search: dict[str, Any] = {
            "start": start,
            "end": start + timedelta(hours=rng.randint(1, 72)),
            "ordering": rng.choice(ORDERINGS),
        }
        if rng.random() < 0.7:
            search["devices"] = rng.choice((1, 2, 4, 8, 16, 32, 64))
        for name in rng.sample(
            ("vendor", "region", "accelerator", "price", "domestic", "min_memory_gb", "max_pue"), rng.randint(0, 3)
        ):
            if name == "vendor":
                search["vendor"] = rng.choice(market.vendors)
            elif name == "region":
                search["region"] = rng.choice(market.regions)
            elif name == "accelerator":
                search["accelerator"] = rng.choice(market.accelerators)
            elif name == "price":
                search["currency"] = "CNY"
                search["max_price_per_device_hour"] = Decimal(rng.randint(5, 60))
            elif name == "domestic":
                search["domestic"] = rng.random() < 0.5
            elif name == "min_memory_gb":
                search["min_memory_gb"] = rng.choice((16, 32, 64, 80))
            else:
                search["max_pue"] = Decimal(rng.choice(("1.20", "1.30", "1.45")))
        searches.append(search)
    return searches


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _api_query(search: dict[str, Any]) -> str:
    query = {name: _text(value) for name, value in search.items() if name not in ("start", "end")}
    query["start"] = search["start"].strftime("%Y-%m-%dT%H:%M:%SZ")
    query["end"] = search["end"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return urlencode(query)


def _page_query(search: dict[str, Any]) -> str:
    query = {name: _text(value) for name, value in search.items() if name not in ("start", "end")}
    # The page's window fields are UTC datetime-local values.
    query["start"] = search["start"].strftime("%Y-%m-%dT%H:%M")
    query["end"] = search["end"].strftime("%Y-%m-%dT%H:%M")
    return urlencode(query)


def _consumer_token() -> str:
    from accounts.models import OrganizationKind, Scope
    from accounts.services import api_token_issue, organization_create

    consumer = organization_create(
        kind=OrganizationKind.ENTERPRISE, name="Catalog Bench Consumer", slug="catalog-bench-consumer"
    )
    return api_token_issue(organization=consumer, name="catalog bench", scopes=[Scope.BOOKING]).secret


# --- the bare query ---------------------------------------------------------------------------------------------

_ORDER = {
    "price_per_device_hour": "c.price_per_device_hour ASC NULLS LAST",
    "-price_per_device_hour": "c.price_per_device_hour DESC NULLS LAST",
    "price_per_pflop_hour": "c.per_pflop ASC NULLS LAST",
}
_FILTERS = {
    "accelerator": "a.code = %(accelerator)s",
    "vendor": "upper(a.vendor) = upper(%(vendor)s)",
    "region": "s.region = %(region)s",
    "min_memory_gb": "a.memory_gb >= %(min_memory_gb)s",
    "max_price_per_device_hour": "o.price_per_device_hour <= %(max_price_per_device_hour)s",
    "currency": "o.currency = %(currency)s",
    "domestic": "a.domestic = %(domestic)s",
    "max_pue": "s.pue <= %(max_pue)s",
}


def bare_sql(search: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The hand-written query for one search: published offerings matching the filters, each one's peak use over
    the window from one sweep of the overlapping holding bookings, those with enough free devices, first page and
    total count."""
    where = " AND ".join(["o.status = 'published'", *(_FILTERS[name] for name in _FILTERS if name in search)])
    query = f"""
        WITH c AS (
            SELECT o.id, o.devices, o.price_per_device_hour, o.currency, o.external_id, o.center_id,
                   o.price_per_device_hour * 1000 / a.fp16_tflops AS per_pflop, a.code, s.region, s.pue
              FROM marketplace_offering o
              JOIN marketplace_acceleratormodel a ON a.id = o.accelerator_id
              JOIN marketplace_site s ON s.id = o.site_id
             WHERE {where}
        ), overlapping AS (
            SELECT b.offering_id, b.start, b."end", b.devices
              FROM marketplace_booking b JOIN c ON c.id = b.offering_id
             WHERE b.status = ANY(%(holding)s) AND b.start < %(end)s AND b."end" > %(start)s
        ), events AS (
            SELECT offering_id, GREATEST(start, %(start)s) AS t, devices AS delta FROM overlapping
            UNION ALL
            SELECT offering_id, LEAST("end", %(end)s), -devices FROM overlapping
        ), peaks AS (
            SELECT offering_id, max(running) AS peak FROM (
                SELECT offering_id, sum(delta) OVER (PARTITION BY offering_id ORDER BY t, delta) AS running
                  FROM events) AS sweep
             GROUP BY offering_id
        )
        SELECT c.id, c.devices - COALESCE(p.peak, 0) AS available, count(*) OVER () AS total,
               c.price_per_device_hour, c.currency, c.external_id, c.code, c.region, c.pue
          FROM c LEFT JOIN peaks p ON p.offering_id = c.id
         WHERE c.devices - COALESCE(p.peak, 0) >= %(devices)s
         ORDER BY {_ORDER[search["ordering"]]}, c.price_per_device_hour, c.id
         LIMIT {PAGE}
    """  # noqa: S608 (fixed fragments only; every value is a parameter)
    return query, {"holding": HOLDING, **search, "devices": search.get("devices") or 1}


def _bare_sql(bench: Bench, searches: list[dict[str, Any]]) -> tuple[list[float], list[tuple[list[str], int]]]:
    """Each search's bare query, timed on one connection (one untimed pass first, as the server's warm-up);
    returns the latencies and each answer: the page's (id, available) pairs and the total."""
    answers = []
    latencies = []
    with bench.connect() as conn:
        for warm in (True, False):
            for search in searches:
                query, params = bare_sql(search)
                began = time.perf_counter()
                rows = conn.execute(query, params).fetchall()
                if not warm:
                    latencies.append(time.perf_counter() - began)
                    answers.append(([f"{row[0]}:{row[1]}" for row in rows], rows[0][2] if rows else 0))
    return latencies, answers


# --- the server -------------------------------------------------------------------------------------------------


def _api(client: Client, searches: list[dict[str, Any]], answers) -> tuple[list[float], list[str]]:
    latencies, wrong = [], []
    for search, (expected_page, expected_count) in zip(searches, answers, strict=True):
        status, body, seconds = client.request("GET", "/api/v1/catalog?" + _api_query(search))
        latencies.append(seconds)
        if status != 200:
            wrong.append(f"HTTP {status}: {body[:200]!r}")
            continue
        answer = json.loads(body)
        page = [f"{item['id']}:{item['available_devices']}" for item in answer["results"]]
        if answer["count"] != expected_count or page != expected_page:
            wrong.append(f"{_api_query(search)}: count {answer['count']} vs {expected_count}, page differs")
    return latencies, wrong


def _page(client: Client, searches: list[dict[str, Any]]) -> tuple[list[float], list[str]]:
    latencies, wrong = [], []
    for search in searches:
        status, body, seconds = client.request("GET", "/catalog/?" + _page_query(search))
        latencies.append(seconds)
        if status != 200:
            wrong.append(f"HTTP {status}: {body[:200]!r}")
    return latencies, wrong


def _latency(seconds: list[float]) -> dict[str, float]:
    ms = [value * 1000 for value in seconds]
    return {
        "p50": round(percentile(ms, 0.50), 2),
        "p95": round(percentile(ms, 0.95), 2),
        "p99": round(percentile(ms, 0.99), 2),
        "max": round(max(ms), 2),
    }
