"""The bench's scenarios with servers or workers (booking contention, catalog search, mixed load, task workers) run
end to end at a tiny size, so a change that breaks one (a renamed field, a new required parameter, a wrong answer)
fails CI instead of the next `make bench`. Timings are reported by the scenarios but never asserted: only their
correctness checks are.

Each test runs a scenario against real Daphne processes (or Celery workers through Redis) on the test database
(committed data: a transactional test), with the sizes shrunk to a few seconds.
"""

from __future__ import annotations

import pytest

from marketplace.catalog import load_catalog
from marketplace.models import AcceleratorModel
from tests.bench import market
from tests.bench.harness import Bench
from tests.bench.scenarios import booking_contention, catalog_search, mixed_load, task_workers
from tests.worker import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bench(tmp_path, monkeypatch) -> Bench:
    monkeypatch.setattr(market, "_BUILT", {})
    monkeypatch.setitem(market.SIZES, "small", (30, 600))
    if not AcceleratorModel.objects.exists():  # a transactional test before this one flushed the seeded chips
        load_catalog(AcceleratorModel)
    return Bench(scale="small", seed=7, database_url=database_url(), work_dir=tmp_path, stored=[0])


def test_booking_contention_never_oversells_and_counts_every_answer(bench, monkeypatch):
    monkeypatch.setitem(booking_contention.ATTEMPTS, "small", 160)
    monkeypatch.setitem(booking_contention.HORIZON_HOURS, "small", 6)

    one, two = booking_contention.run(bench)

    for result in (one, two):
        assert result.error is None
        figures = result.figures
        # Every phase answered every attempt, and the crowded 6-hour horizon refused some of them.
        assert figures["api_booked"] + figures["api_rejections"] == 160
        assert figures["bare_booked"] + figures["bare_rejections"] == 160
        assert figures["api_rejections"] > 0 and figures["bare_rejections"] > 0
        assert set(result.checks) == {"api_max_peak", "bare_max_peak", "capacity"}
        assert result.checks["capacity"] == 64
        # Never over capacity; and a refusal of at most 8 devices means more than 56 were held at some instant.
        assert 64 - 8 < result.checks["api_max_peak"] <= 64
        assert 64 - 8 < result.checks["bare_max_peak"] <= 64
        assert result.ratio > 0
        floor = result.figures["floor_requests_per_s"]
        assert set(floor) == {"/healthz", "/api/v1/me"} and all(rate > 0 for rate in floor.values())
    assert (one.parameters["web_processes"], two.parameters["web_processes"]) == (1, 2)
    # One bare run is the limit of both.
    assert one.figures["bare_bookings_per_s"] == two.figures["bare_bookings_per_s"]
    assert "bookings_vs_one_process" in two.figures


def test_catalog_search_answers_as_the_bare_query_does(bench, monkeypatch):
    monkeypatch.setitem(catalog_search.REQUESTS, "small", 12)

    api, page = catalog_search.run(bench)

    assert api.error is None and page.error is None
    assert api.checks == {"requests": 12, "answers_differing_from_bare_sql": 0}
    assert page.checks == {"requests": 12, "errors": 0}
    assert api.parameters["endpoint"] == "GET /api/v1/catalog"
    assert set(api.figures["latency_ms"]) == {"p50", "p95", "p99", "max"}
    assert api.target_is_maximum and api.target == 3.0


def test_mixed_load_runs_every_kind_of_request_without_errors(bench, monkeypatch):
    monkeypatch.setitem(mixed_load.SECONDS, "small", 2)

    one, two = mixed_load.run(bench)

    for result in (one, two):
        assert result.error is None, result.checks
        assert result.figures["errors"] == 0
        assert result.ratio == 0.0
        assert result.figures["usage_records_accepted"] % mixed_load.RECORDS_PER_BATCH == 0
    assert (one.parameters["web_processes"], two.parameters["web_processes"]) == (1, 2)
    assert "throughput_vs_one_process" in two.figures


@pytest.mark.redis  # the project's marker: without REDIS_URL it skips, and CI fails on a skip
def test_task_workers_send_every_mail_through_redis(bench, monkeypatch):
    monkeypatch.setitem(task_workers.TASKS, "small", 20)

    [result] = task_workers.run(bench)

    assert result.error is None
    assert result.checks == {"1_workers_mails": 20, "2_workers_mails": 20, "tasks": 20}
    assert set(result.figures["tasks_per_s"]) == {"1_workers", "2_workers"}
    assert result.figures["in_process_tasks_per_s"] > 0
    assert result.ratio > 0
