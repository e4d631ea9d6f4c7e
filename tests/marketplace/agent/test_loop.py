"""The agent loop against the in-thread fake marketplace: provisioning, releasing, usage that is never lost or
counted twice, and a loop that survives whatever the server or the host does."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from datetime import timedelta

import pytest

from marketplace.agent import Agent, run
from marketplace.agent.config import NvidiaSmiConfig, SlurmConfig
from marketplace.agent.runner import backoff_delay
from tests.marketplace.agent.conftest import SAMPLES, fake_command
from tests.marketplace.agent.fake_center import Fault

NVIDIA_SAMPLE = (SAMPLES / "nvidia-smi-query-gpu.csv").read_text()


@pytest.fixture
def booking(fake_center, clock):
    """Two devices booked from an hour ago for five hours: twelve complete 5-minute slots so far."""
    return fake_center.add_booking(devices=2, start=clock.now - timedelta(hours=1), end=clock.now + timedelta(hours=5))


@pytest.fixture
def agent_factory(make_config, clock):
    agents: list[Agent] = []

    def make(**overrides) -> Agent:
        agent = Agent(make_config(**overrides), clock=clock, rng=random.Random(4))
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.close()


def test_heartbeat_reports_the_devices(fake_center, agent_factory, caplog):
    caplog.set_level(logging.INFO, logger="marketplace.agent")

    result = agent_factory().run_once()

    assert result.ok and result.reached_server
    (heartbeat,) = fake_center.heartbeats
    assert (heartbeat["agent"], heartbeat["version"], heartbeat["hostname"]) == (
        "node3",
        "0.1.0",
        "node3.lakeside.example",
    )
    assert len(heartbeat["devices"]) == 8
    assert set(heartbeat["devices"][0]) == {
        "index", "uuid", "model", "utilization", "memory_used_mb", "memory_total_mb", "healthy", "booking"
    }  # fmt: skip
    assert "[node3] heartbeat ok devices=8 healthy=8 registered=true" in caplog.messages


def test_a_provision_item_is_provisioned_and_reported_once(fake_center, agent_factory, booking, clock):
    agent = agent_factory()

    result = agent.run_once()
    clock.advance(minutes=1)
    agent.run_once()

    assert result.provisioned == [booking]
    assert fake_center.reports == [
        (
            booking,
            {
                "state": "provisioned",
                "agent": "node3",
                "access": {
                    "host": "sim-node3.local",
                    "ssh": "ssh blue-heron@sim-node3.local",
                    "slurm_account": "bk-" + booking.replace("-", "")[:6],
                },
            },
        )
    ]
    assert fake_center.bookings[booking].state == "provisioned"
    devices = fake_center.heartbeats[-1]["devices"]
    assert [device["booking"] for device in devices] == [booking, booking] + [None] * 6


def test_every_page_of_allocations_is_provisioned(fake_center, agent_factory, clock):
    ids = [fake_center.add_booking(devices=1, start=clock.now, end=clock.now + timedelta(hours=1)) for _ in range(5)]

    result = agent_factory().run_once()

    assert sorted(result.provisioned) == sorted(ids)
    assert {booking_id for booking_id, _ in fake_center.reports} == set(ids)


def test_usage_is_uploaded_in_batches_of_the_configured_size(fake_center, agent_factory, booking, caplog):
    caplog.set_level(logging.INFO, logger="marketplace.agent")

    result = agent_factory(batch_size=5).run_once()

    assert fake_center.batch_sizes == [5, 5, 2]
    assert len(fake_center.usage) == 12
    assert (result.collected, result.accepted, result.duplicates, result.rejected, result.spooled) == (12, 12, 0, 0, 0)
    assert "[node3] usage uploaded accepted=12 duplicates=0 rejected=0 spooled=0 batches=3" in caplog.messages
    assert all(record["booking"] == booking and record["devices"] == 2 for record in fake_center.usage.values())


def test_a_503_keeps_the_usage_spooled_and_the_retry_sends_it_once(fake_center, agent_factory, booking, clock):
    fake_center.fail("usage", Fault(503))
    agent = agent_factory(batch_size=5)

    failed = agent.run_once()
    clock.advance(seconds=30)
    retried = agent.run_once()

    assert not failed.ok and failed.reached_server
    assert failed.spooled == 12
    assert retried.ok
    assert (retried.accepted, retried.duplicates, retried.spooled) == (12, 0, 0)
    assert len(fake_center.usage) == 12
    assert fake_center.duplicates == 0


def test_a_lost_answer_is_resent_with_the_same_ids_and_counted_once(fake_center, agent_factory, booking, clock):
    fake_center.fail("usage", Fault(503, after_processing=True))  # stored by the server, the answer lost
    agent = agent_factory()

    failed = agent.run_once()
    stored = dict(fake_center.usage)
    retried = agent.run_once()

    assert not failed.ok and failed.spooled == 12 and len(stored) == 12
    assert (retried.accepted, retried.duplicates, retried.rejected) == (0, 12, 0)
    assert fake_center.usage == stored  # same ids, same payloads: nothing doubled
    assert len(agent.spool) == 0


def test_spooled_records_survive_a_restart_and_are_resent_unchanged(fake_center, agent_factory, booking, clock):
    fake_center.fail("usage", Fault(503))
    first = agent_factory()
    first.run_once()
    spooled = first.spool.pending()
    first.close()

    second = agent_factory()
    result = second.run_once()

    assert len(spooled) == 12
    assert result.collected == 0  # the new instance regenerated nothing: its cursors came back from disk
    assert sorted(fake_center.usage.values(), key=lambda record: record["id"]) == sorted(
        spooled, key=lambda record: record["id"]
    )
    assert result.provisioned == []  # and it knew the booking was provisioned already


def test_a_cursor_lost_from_state_json_is_recovered_from_the_spool(fake_center, make_config, booking, clock, tmp_path):
    """A crash between the spool write and the state.json write must not make the agent meter an interval twice."""
    command = fake_command(tmp_path, NVIDIA_SAMPLE, name="nvidia-smi")
    config = make_config(collector="nvidia-smi", nvidia_smi=NvidiaSmiConfig(command=command))
    fake_center.fail("usage", Fault(503))
    with Agent(config, clock=clock) as first:
        first.run_once()  # provisions at 12:00
        clock.advance(minutes=10)
        first.run_once()  # meters 12:00-12:10, upload refused: spooled
    state_file = config.state_dir / "state.json"
    state = json.loads(state_file.read_text())
    del state["cursors"]  # as if the agent died right after writing the spool segment
    state_file.write_text(json.dumps(state))

    clock.advance(minutes=10)
    with Agent(config, clock=clock) as second:
        second.run_once()

    spans = sorted((record["start"], record["end"]) for record in fake_center.usage.values())
    assert spans == [
        ("2026-11-03T12:00:00Z", "2026-11-03T12:10:00Z"),
        ("2026-11-03T12:10:00Z", "2026-11-03T12:20:00Z"),
    ]
    assert all(record["devices"] == 2 and record["utilization"] == "0.96" for record in fake_center.usage.values())


def test_usage_is_collected_while_the_server_is_unreachable(fake_center, agent_factory, booking, clock):
    agent = agent_factory()
    agent.run_once()
    fake_center.fail("heartbeat", Fault(503), Fault(503))

    clock.advance(minutes=30)
    first = agent.run_once()
    clock.advance(minutes=30)
    second = agent.run_once()
    clock.advance(minutes=1)
    recovered = agent.run_once()

    assert (first.ok, first.reached_server, first.collected, first.spooled) == (False, False, 6, 6)
    assert (second.collected, second.spooled) == (6, 12)
    assert recovered.ok and recovered.accepted == 12 and recovered.spooled == 0
    assert len(fake_center.usage) == 24


def test_rejected_records_are_dropped_into_rejected_jsonl(fake_center, agent_factory, booking, clock, caplog):
    fake_center.fail("usage", Fault(503))
    agent = agent_factory()
    agent.run_once()
    del fake_center.bookings[booking]  # the server no longer knows the booking

    result = agent.run_once()

    assert (result.accepted, result.rejected, result.spooled) == (0, 12, 0)
    lines = (agent.config.state_dir / "rejected.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 12
    assert {entry["code"] for entry in entries} == {"unknown_booking"}
    assert entries[0]["detail"] == "unknown_booking (fake)"
    assert entries[0]["record"]["booking"] == booking
    assert entries[0]["rejected_at"] == "2026-11-03T12:00:00Z"
    assert any("usage record rejected" in message and "code=unknown_booking" in message for message in caplog.messages)


def test_a_cancelled_booking_is_released_and_reported(fake_center, agent_factory, booking, clock):
    agent = agent_factory()
    agent.run_once()
    clock.advance(minutes=12)
    fake_center.bookings[booking].status = "cancelled"
    fake_center.bookings[booking].end = clock.now

    result = agent.run_once()

    assert result.released == [booking]
    assert fake_center.reports[-1] == (booking, {"state": "released", "agent": "node3"})
    assert fake_center.bookings[booking].state == "released"
    # The slots up to the cancellation were metered before the capacity went away.
    assert max(record["end"] for record in fake_center.usage.values()) == "2026-11-03T12:12:00Z"
    assert agent.allocations[booking].state == "released"

    clock.advance(minutes=30)
    later = agent.run_once()
    assert later.collected == 0 and len(fake_center.reports) == 2
    assert [device["booking"] for device in fake_center.heartbeats[-1]["devices"]] == [None] * 8


def test_an_ended_booking_is_metered_up_to_its_end_then_released(fake_center, agent_factory, clock):
    booking = fake_center.add_booking(devices=4, start=clock.now, end=clock.now + timedelta(minutes=17))
    agent = agent_factory()
    agent.run_once()

    clock.advance(minutes=20)
    result = agent.run_once()

    assert result.released == [booking]
    spans = sorted((record["start"], record["end"]) for record in fake_center.usage.values())
    assert spans[0][0] == "2026-11-03T12:00:00Z"
    assert spans[-1] == ("2026-11-03T12:15:00Z", "2026-11-03T12:17:00Z")
    assert len(spans) == 4


def test_a_refused_report_is_logged_and_not_retried_forever(fake_center, agent_factory, booking, clock, caplog):
    fake_center.fail("report", Fault(503))
    agent = agent_factory()
    agent.run_once()  # provisioned here, the report lost
    fake_center.bookings[booking].status = "cancelled"  # meanwhile the consumer cancelled

    agent.run_once()  # the server answers 409 invalid_state
    reports = fake_center.count("report")
    clock.advance(minutes=5)
    agent.run_once()

    assert fake_center.count("report") == reports == 2
    assert agent.allocations[booking].refused
    assert any("allocation report refused" in message and "invalid_state" in message for message in caplog.messages)


def test_a_failed_provision_is_reported_as_failed_with_the_reason(fake_center, make_config, booking, clock, tmp_path):
    command = fake_command(tmp_path, "0, GPU-a, H100, [N/A], [N/A], 81559, [N/A]\n", name="nvidia-smi")
    config = make_config(collector="nvidia-smi", nvidia_smi=NvidiaSmiConfig(command=command))

    with Agent(config, clock=clock) as agent:
        result = agent.run_once()

    assert result.ok and result.failed == [booking]
    ((booking_id, body),) = fake_center.reports
    assert booking_id == booking and body["state"] == "failed"
    assert body["message"].startswith("provision failed: nvidia-smi: no free healthy GPU")
    assert fake_center.bookings[booking].state == "failed"


def test_a_failed_provision_is_tried_again_after_a_while(fake_center, make_config, booking, clock, tmp_path):
    command = fake_command(tmp_path, NVIDIA_SAMPLE, name="nvidia-smi")
    (tmp_path / "nvidia-smi.out").write_text("0, GPU-a, H100, [N/A], [N/A], 81559, [N/A]\n")  # no healthy GPU yet
    config = make_config(collector="nvidia-smi", nvidia_smi=NvidiaSmiConfig(command=command))

    with Agent(config, clock=clock) as agent:
        agent.run_once()
        (tmp_path / "nvidia-smi.out").write_text(NVIDIA_SAMPLE)  # the GPUs recovered
        clock.advance(minutes=1)
        too_soon = agent.run_once()
        clock.advance(minutes=5)
        retried = agent.run_once()

    assert too_soon.provisioned == [] and too_soon.failed == []
    assert retried.provisioned == [booking]
    assert [body["state"] for _, body in fake_center.reports] == ["failed", "provisioned"]
    assert fake_center.bookings[booking].access["gpus"] == "0,1"


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"0, GPU-a, H100, 97\n",
        b"0, GPU-a, H100, lots, 1, 2, 3\n",
        b"\x89PNG\r\n\x1a\n\x00\x00binary",
    ],
)
def test_junk_from_nvidia_smi_never_stops_the_loop(fake_center, make_config, clock, tmp_path, caplog, junk):
    command = fake_command(tmp_path, NVIDIA_SAMPLE, name="nvidia-smi")
    config = make_config(collector="nvidia-smi", nvidia_smi=NvidiaSmiConfig(command=command))
    with Agent(config, clock=clock) as agent:
        agent.run_once()
        (tmp_path / "nvidia-smi.out").write_bytes(junk)
        broken = agent.run_once()
        (tmp_path / "nvidia-smi.out").write_text(NVIDIA_SAMPLE)
        fixed = agent.run_once()

    assert broken.ok and broken.collector_errors
    assert "line 1" in broken.collector_errors[0]
    # The heartbeat still went out, with the devices marked unreadable rather than silently gone.
    unreadable = fake_center.heartbeats[1]["devices"]
    assert len(unreadable) == 8 and not any(device["healthy"] for device in unreadable)
    assert fixed.ok and not fixed.collector_errors
    assert sum(device["healthy"] for device in fake_center.heartbeats[2]["devices"]) == 7
    assert any(message.startswith("[node3] devices unreadable: nvidia-smi") for message in caplog.messages)


def test_a_broken_sacct_never_stops_the_loop(fake_center, make_config, booking, clock, tmp_path, caplog):
    command = fake_command(tmp_path, b"\x7fELF\x02\x01\x01\x00\x00junk", name="sacct")
    config = make_config(collector="slurm", slurm=SlurmConfig(sacct_command=command, partition="h100"))

    with Agent(config, clock=clock) as agent:
        result = agent.run_once()

    assert result.ok and result.provisioned == [booking]
    assert result.collector_errors == ["sacct line 1: output is not text (NUL byte)"]
    assert fake_center.heartbeats[0]["devices"] == []
    assert fake_center.bookings[booking].access == {
        "slurm_account": "bk-" + booking.replace("-", "")[:6],
        "partition": "h100",
    }
    assert "[node3] usage collection failed: sacct line 1: output is not text (NUL byte)" in caplog.messages


def test_a_wrong_token_is_a_failed_iteration_that_says_why(fake_center, agent_factory, caplog):
    result = agent_factory(token="not-the-token").run_once()

    assert not result.ok and result.reached_server is False
    assert "401" in result.error
    assert any("check the agent token" in message for message in caplog.messages)


def test_run_loops_until_the_stop_event_and_releases_the_state_dir(fake_center, make_config, booking):
    config = make_config(interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(config, stop))
    thread.start()
    deadline = time.monotonic() + 10
    while len(fake_center.heartbeats) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)

    stop.set()
    thread.join(5)

    assert not thread.is_alive()
    assert len(fake_center.heartbeats) >= 3
    assert fake_center.bookings[booking].state == "provisioned"
    Agent(config).close()  # the lock was released


def test_the_loop_backs_off_on_failures_and_recovers(fake_center, make_config, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="marketplace.agent")
    monkeypatch.setattr("marketplace.agent.runner.BACKOFF_BASE", 0.05)
    fake_center.fail("heartbeat", Fault(503), Fault(503))
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(make_config(interval=30), stop))
    thread.start()
    deadline = time.monotonic() + 10
    while fake_center.count("heartbeat") < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)

    retries = [message for message in caplog.messages if "server unreachable, retrying in" in message]
    assert len(retries) == 2
    assert "(spooled=0): POST /api/v1/agent/heartbeat: 503 unavailable" in retries[0]
    assert fake_center.count("heartbeat") == 3  # then the 30 s interval, interrupted by the stop event
    assert "[node3] agent stopped spooled=0" in caplog.messages


def test_backoff_is_full_jitter_capped_and_honours_retry_after():
    rng = random.Random(1)
    delays = [backoff_delay(attempt, cap=60, rng=rng, base=2) for attempt in range(1, 12) for _ in range(50)]

    assert all(0 <= delay <= 60 for delay in delays)
    assert max(delays[:50]) <= 2  # first failure: within the base
    assert max(delays[-50:]) > 30  # later failures spread up to the cap
    assert backoff_delay(1, cap=60, retry_after=120, rng=rng) == 120
    assert backoff_delay(1, cap=60, retry_after=10**6, rng=rng) == 3600


def test_a_window_with_fractions_of_a_second_is_metered_inside_it(fake_center, agent_factory, clock):
    start = clock.now - timedelta(minutes=10, microseconds=-250_000)  # 11:50:00.25
    booking = fake_center.add_booking(devices=1, start=start, end=clock.now + timedelta(hours=1))

    result = agent_factory().run_once()

    assert result.rejected == 0 and result.accepted == 2
    assert min(record["start"] for record in fake_center.usage.values()) == "2026-11-03T11:50:01Z"
    assert fake_center.bookings[booking].start.microsecond == 250_000
