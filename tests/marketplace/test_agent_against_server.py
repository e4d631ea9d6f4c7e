"""The reference agent against the real server: a Daphne process on the test database, stopped for a while and
started again while the agent (a real `python -m marketplace.agent` process) keeps metering. Everything it
measured lands exactly once: one record per slot of the booking's window, none missing, none twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import BookingUsage, UsageRecord
from marketplace.models import Agent, Allocation, AllocationState, BookingStatus
from tests.factories import token_for
from tests.faults.processes import AgentProcess, agent_config, daphne, free_port
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory
from tests.worker import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_agent_meters_through_a_server_outage_and_delivers_every_record_exactly_once(tmp_path):
    center = CenterFactory(name="Lakeside AI Computing Center")
    now = timezone.now()
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=20)
    booking = BookingFactory(
        offering=OfferingFactory(center=center, devices=16),
        devices=8,
        start=start,
        end=start + timedelta(hours=3),
        status=BookingStatus.ACTIVE,
    )
    port = free_port()
    config = agent_config(
        tmp_path / "agent.toml",
        port=port,
        token=token_for(center, "agent"),
        state_dir=tmp_path / "state",
        backoff_cap=2,
        backfill_hours=1,
    )

    with daphne(port, tmp_path / "daphne.log") as first:
        agent = AgentProcess(config, tmp_path / "agent.log")
        # Provisioned, and the 20 minutes since the booking started metered and delivered.
        assert wait_for(lambda: UsageRecord.objects.filter(booking=booking).count() >= 20, timeout=60), agent.lines()
        assert Allocation.objects.get(booking=booking).state == AllocationState.PROVISIONED
        delivered_before_outage = UsageRecord.objects.count()
        first.terminate()
        first.wait(timeout=30)

    # The server is down: the agent keeps metering into its spool until at least one more slot has passed.
    assert wait_for(lambda: agent.logged("server unreachable"), timeout=30), agent.lines()
    assert wait_for(
        lambda: any("usage collected" in line and "spooled=0" not in line for line in agent.lines()[-20:]),
        timeout=90,
    ), agent.lines()
    assert UsageRecord.objects.count() == delivered_before_outage

    with daphne(port, tmp_path / "daphne.log"):
        assert wait_for(lambda: UsageRecord.objects.count() > delivered_before_outage, timeout=60), agent.lines()
        assert wait_for(lambda: agent.lines() and "spooled=0" in agent.lines()[-1], timeout=60), agent.lines()
        assert agent.stop() == 0

    records = list(UsageRecord.objects.filter(booking=booking).order_by("start").values_list("start", "end", "devices"))
    # One 1-minute record per slot from the booking's start, contiguous: nothing lost, nothing twice.
    assert [record[0] for record in records] == [start + timedelta(minutes=i) for i in range(len(records))]
    assert all(end - begin == timedelta(minutes=1) and devices == 8 for begin, end, devices in records)
    assert len(records) > delivered_before_outage
    total = BookingUsage.objects.get(booking=booking)
    assert (total.records, total.device_seconds) == (len(records), 8 * 60 * len(records))
    assert Agent.objects.get(center=center).name == "lakeside-node1"
    assert (
        not (tmp_path / "state" / "rejected.jsonl").exists() or not (tmp_path / "state" / "rejected.jsonl").read_text()
    )
