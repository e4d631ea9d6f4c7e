"""Usage ingest under database and server faults: the reference agent (a real `python -m marketplace.agent`
process with the simulated collector) uploads a backlog to a real Daphne server while the test terminates the
server's database connection in the middle of an upload (`pg_terminate_backend` on a backend that has inserted
its records and waits for a lock), and later SIGKILLs the server in the middle of an upload and starts a new one.
Every record the agent generated lands exactly once: a batch whose transaction died is resent from the spool and
stored then; nothing is stored twice."""

from __future__ import annotations

import re
import signal
from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone

from billing.models import BookingUsage, UsageRecord
from marketplace.models import BookingStatus
from tests.factories import token_for
from tests.faults.processes import AgentProcess, agent_config, daphne, free_port
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory
from tests.worker import test_database_url as database_url
from tests.worker import wait_for

pytestmark = [pytest.mark.django_db(transaction=True)]

# An ingest transaction that has stored its records and now waits for the usage totals table (held by the test).
WAITING_INGEST = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND wait_event_type = 'Lock' AND query ILIKE '%%billing_bookingusage%%'
"""


def _connect() -> psycopg.Connection:
    return psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True)


def _waiting_ingest(observer: psycopg.Connection) -> list[int]:
    return [row[0] for row in observer.execute(WAITING_INGEST).fetchall()]


def _generated(agent: AgentProcess) -> int:
    """How many usage records the agent's collector produced, from its own log."""
    return sum(int(m.group(1)) for line in agent.lines() if (m := re.search(r"usage collected records=(\d+)", line)))


def test_every_record_lands_once_through_killed_connections_and_a_killed_server(tmp_path):
    center = CenterFactory(name="Lakeside AI Computing Center")
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=90)
    booking = BookingFactory(
        offering=OfferingFactory(center=center, devices=16),
        devices=8,
        start=start,
        end=start + timedelta(hours=4),
        status=BookingStatus.ACTIVE,
    )
    port = free_port()
    config = agent_config(
        tmp_path / "agent.toml",
        port=port,
        token=token_for(center, "agent"),
        state_dir=tmp_path / "state",
        backoff_cap=1,
        backfill_hours=2,
        batch_size=10,
        timeout=10,
    )
    server_log = tmp_path / "daphne.log"
    observer = _connect()
    blocker = psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=False)
    terminated: list[int] = []
    agent: AgentProcess | None = None
    try:
        with daphne(port, server_log) as server:
            # The totals table is held: the first upload stores its 10 records, then waits; its connection is
            # terminated there, twice (the agent's retry meets the same lock).
            blocker.execute("LOCK TABLE billing_bookingusage IN ACCESS EXCLUSIVE MODE")
            agent = AgentProcess(config, tmp_path / "agent.log")
            for _ in range(2):
                assert wait_for(lambda: _waiting_ingest(observer), timeout=60), agent.lines()
                for pid in _waiting_ingest(observer):
                    observer.execute("SELECT pg_terminate_backend(%s)", [pid])
                    terminated.append(pid)
                assert wait_for(lambda: not set(_waiting_ingest(observer)) & set(terminated), timeout=10)
            assert UsageRecord.objects.count() == 0  # the terminated transactions left nothing
            blocker.rollback()
            assert wait_for(lambda: UsageRecord.objects.count() >= 30, timeout=60), agent.lines()

            # An upload waits again; the server is killed under it: its transaction never gets its COMMIT and is
            # rolled back, the agent hears no answer and resends the batch to the next server.
            blocker.execute("LOCK TABLE billing_bookingusage IN ACCESS EXCLUSIVE MODE")
            assert wait_for(lambda: _waiting_ingest(observer), timeout=60), agent.lines()
            before_kill = UsageRecord.objects.count()
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
        blocker.rollback()
        assert wait_for(lambda: not _waiting_ingest(observer), timeout=30)
        assert UsageRecord.objects.count() == before_kill
        assert wait_for(lambda: agent.logged("server unreachable"), timeout=30), agent.lines()

        with daphne(port, server_log):
            assert wait_for(lambda: agent.lines() and "spooled=0" in agent.lines()[-1], timeout=90), agent.lines()
            assert agent.stop() == 0
    finally:
        if agent is not None and agent.process.poll() is None:
            agent.process.kill()
        blocker.close()
        observer.close()

    assert len(terminated) == 2
    records = list(UsageRecord.objects.filter(booking=booking).order_by("start").values_list("start", "end", "devices"))
    # One 1-minute record per slot from the booking's start, contiguous: nothing lost, nothing twice.
    assert len(records) == _generated(agent) == UsageRecord.objects.count()
    assert [record[0] for record in records] == [start + timedelta(minutes=i) for i in range(len(records))]
    assert all(end - begin == timedelta(minutes=1) and devices == 8 for begin, end, devices in records)
    total = BookingUsage.objects.get(booking=booking)
    assert (total.records, total.device_seconds) == (len(records), 8 * 60 * len(records))
    rejected = tmp_path / "state" / "rejected.jsonl"
    assert not rejected.exists() or not rejected.read_text()
