"""`python -m marketplace.agent` as a center runs it: exit codes, signals, several agents in one process, and an
import that never pulls in Django or Celery."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from marketplace.agent.spool import StateDirLock
from tests.marketplace.agent.conftest import REPO
from tests.marketplace.agent.fake_center import TOKEN, FakeCenter


@pytest.fixture
def live_center():
    """The fake marketplace on the real clock, since the agent runs in another process."""
    center = FakeCenter().start()
    yield center
    center.stop()


def _environ() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("AGENT_")}


def _agent(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 (this interpreter running the agent)
        [sys.executable, "-m", "marketplace.agent", *args],
        cwd=REPO,
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 (this interpreter running the agent)
        [sys.executable, "-m", "marketplace.agent", *args],
        cwd=REPO,
        env=_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _config(tmp_path: Path, server_url: str, name: str = "node3", **extra: object) -> Path:
    lines = [f'server_url = "{server_url}"', f'token = "{TOKEN}"', f'name = "{name}"', f'state_dir = "{name}-state"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(condition, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_importing_the_agent_loads_neither_django_nor_celery():
    modules = "marketplace.agent, marketplace.agent.cli, marketplace.agent.runner, marketplace.agent.collectors"
    code = f"import {modules}, sys; assert 'django' not in sys.modules and 'celery' not in sys.modules"

    completed = subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )

    assert completed.returncode == 0, completed.stderr
    plain = "import marketplace.agent, sys; assert 'django' not in sys.modules and 'celery' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", plain], cwd=REPO, timeout=60).returncode == 0  # noqa: S603


def test_help_documents_configuration_state_and_exit_codes():
    completed = _agent("--help")

    assert completed.returncode == 0
    for fragment in ["--config", "--once", "AGENT_TOKEN", "AGENT_BATCH_SIZE", "rejected.jsonl", "exit status"]:
        assert fragment in completed.stdout


def test_a_bad_config_exits_2_with_one_clear_line(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('server_url = "http://127.0.0.1:8000"\n')

    completed = _agent("--config", str(path))

    assert completed.returncode == 2
    assert completed.stderr.splitlines() == [
        f"marketplace-agent: configuration error: {path}: token is missing: set token or AGENT_TOKEN to the "
        "center's agent token"
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"collector": "k8s"}, "collector 'k8s' is unknown"),
        ({"interval": -5}, "interval must be a positive number of seconds"),
    ],
)
def test_other_config_mistakes_exit_2_without_a_traceback(tmp_path, extra, message):
    completed = _agent("--config", str(_config(tmp_path, "http://127.0.0.1:8000", **extra)))

    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert len(completed.stderr.splitlines()) == 1


def test_no_config_at_all_exits_2():
    completed = _agent()

    assert completed.returncode == 2
    assert "server_url is missing" in completed.stderr


def test_two_agents_with_one_name_exit_2(tmp_path):
    first = _config(tmp_path, "http://127.0.0.1:8000", name="node3")
    second = tmp_path / "copy.toml"
    second.write_text(first.read_text().replace("node3-state", "other-state"))

    completed = _agent("--config", str(first), "--config", str(second))

    assert completed.returncode == 2
    assert "agent name 'node3' is also used by" in completed.stderr


def test_once_exits_1_when_the_server_cannot_be_reached(tmp_path):
    completed = _agent("--once", "--config", str(_config(tmp_path, f"http://127.0.0.1:{_closed_port()}")))

    assert completed.returncode == 1
    assert "connection refused" in completed.stderr
    assert (tmp_path / "node3-state" / "state.json").exists()


def test_once_runs_every_configured_agent_in_one_process(tmp_path, live_center):
    first = _config(tmp_path, live_center.url, name="lakeside-sim")
    second = _config(tmp_path, live_center.url, name="harbor-sim")

    completed = _agent("--once", "--config", str(first), "--config", str(second))

    assert completed.returncode == 0, completed.stderr
    assert sorted(heartbeat["agent"] for heartbeat in live_center.heartbeats) == ["harbor-sim", "lakeside-sim"]
    assert "[lakeside-sim] heartbeat ok devices=8" in completed.stderr
    assert "[harbor-sim] heartbeat ok devices=8" in completed.stderr


def test_once_provisions_and_meters_a_live_booking(tmp_path, live_center):
    now = datetime.now(UTC)
    booking = live_center.add_booking(devices=2, start=now - timedelta(minutes=20), end=now + timedelta(hours=2))

    completed = _agent("--once", "--config", str(_config(tmp_path, live_center.url)))

    assert completed.returncode == 0, completed.stderr
    assert live_center.bookings[booking].state == "provisioned"
    assert len(live_center.usage) in {4, 5}  # one per 5-minute boundary since the start (one more if crossed)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_agent_cleanly_with_exit_0(tmp_path, live_center, signum):
    process = _start("--config", str(_config(tmp_path, live_center.url, interval=60)))
    try:
        _wait_for(lambda: live_center.heartbeats)
        started = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()

    assert process.returncode == 0
    assert time.monotonic() - started < 5
    assert f"stopping on {signal.Signals(signum).name}" in stderr
    assert "[node3] agent stopped spooled=0" in stderr
    StateDirLock(tmp_path / "node3-state").release()  # the lock went with the process


def test_a_signal_during_a_hanging_request_still_exits_0_within_seconds(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        process = _start("--config", str(_config(tmp_path, url, timeout=60)))
        try:
            _wait_for(lambda: (tmp_path / "node3-state" / "state.json").exists())
            time.sleep(0.5)  # the heartbeat request is now in flight
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=15)
        finally:
            process.kill()

    assert process.returncode == 0
    assert time.monotonic() - started < 8
    assert "abandoning a step in flight" in stderr
