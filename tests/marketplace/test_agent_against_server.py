"""The reference agent against the real server: a Daphne process on the test database, stopped for a while and
started again while the agent (a real `python -m marketplace.agent` process) keeps metering. Everything it
measured lands exactly once: one record per slot of the booking's window, none missing, none twice."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from billing.models import BookingUsage, UsageRecord
from marketplace.models import Agent, Allocation, AllocationState, BookingStatus
from tests.factories import token_for
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory
from tests.worker import ROOT, wait_for
from tests.worker import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(port: int) -> Iterator[subprocess.Popen]:
    """`daphne` serving the project on the test database, as `make run` starts it."""
    env = {**os.environ, "DATABASE_URL": database_url(), "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1"}
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "marketplace.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: _listening(port), timeout=30), "the server did not start"
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class AgentProcess:
    """The agent CLI in a subprocess; its log lines are collected from a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(  # noqa: S603 (fixed argv)
            [sys.executable, "-m", "marketplace.agent", "--config", str(config)],
            cwd=ROOT,
            env={key: value for key, value in os.environ.items() if not key.startswith("AGENT_")},
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.lines())

    def stop(self) -> int:
        self.process.terminate()
        code = self.process.wait(timeout=30)
        self._file.close()
        return code


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
    config = tmp_path / "agent.toml"
    config.write_text(
        f'server_url = "http://127.0.0.1:{port}"\n'
        f'token = "{token_for(center, "agent")}"\n'
        'name = "lakeside-node1"\n'
        'collector = "simulated"\n'
        "interval = 1\n"
        "backoff_cap = 2\n"
        f'state_dir = "{tmp_path / "state"}"\n'
        "[simulated]\ndevices = 8\nslot_minutes = 1\nbackfill_hours = 1\n"
    )

    with server(port) as first:
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

    with server(port):
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
