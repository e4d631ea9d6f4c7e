"""Real processes for the fault-injection suite and the agent's end-to-end test: a Daphne web server and a private
redis-server, each on a free local port, and the reference agent, started and stopped (or killed) by the test
itself."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.worker import ROOT, wait_for
from tests.worker import test_database_url as database_url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def daphne(port: int, log: Path, **env: str) -> Iterator[subprocess.Popen]:
    """`daphne` serving the project on the test database (as `make run` starts it, debug off); its output goes to
    `log` (appended, so a restarted server keeps one log). Extra environment (REDIS_URL…) from `env`."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 (fixed argv)
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "marketplace.asgi:application"],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for(lambda: listening(port) or process.poll() is not None, timeout=30), "daphne did not start"
        assert process.poll() is None, log.read_text()[-3000:]
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


@contextmanager
def redis_server(port: int) -> Iterator[subprocess.Popen]:
    """A private, memory-only redis-server on `port` (so stopping it leaves the shared Redis alone)."""
    binary = redis_server_path()
    assert binary, "redis-server is not installed"
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: listening(port), timeout=10), "redis-server did not start"
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def agent_config(
    path: Path, *, port: int, token: str, state_dir: Path, backoff_cap: int, backfill_hours: int, **options: int
) -> Path:
    """The reference agent's TOML config: node `lakeside-node1` with the simulated collector (8 devices, one-minute
    slots, `backfill_hours` of history) reporting every second to the server on `port`; `options` are further
    top-level settings (batch_size, timeout)."""
    lines = [
        f'server_url = "http://127.0.0.1:{port}"',
        f'token = "{token}"',
        'name = "lakeside-node1"',
        'collector = "simulated"',
        "interval = 1",
        f"backoff_cap = {backoff_cap}",
        *(f"{name} = {value}" for name, value in options.items()),
        f'state_dir = "{state_dir}"',
        "[simulated]",
        "devices = 8",
        "slot_minutes = 1",
        f"backfill_hours = {backfill_hours}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


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
