"""Real processes for the fault-injection suite: a Daphne web server and a private redis-server, each on a free
local port, started and stopped (or killed) by the test itself."""

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
