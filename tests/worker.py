"""A real Celery worker process for tests marked `worker`: it consumes a private queue through Redis and uses the
test database, so a test proves the path a production task takes (broker, separate process, commit visibility)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    s = connection.settings_dict
    host = quote(s["HOST"] or "", safe="") if (s["HOST"] or "").startswith("/") else (s["HOST"] or "")
    auth = quote(s["USER"] or "", safe="") + (f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else "")
    port = f":{s['PORT']}" if s["PORT"] else ""
    return f"postgres://{auth}@{host}{port}/{s['NAME']}"


def worker_command(queue: str, name: str | None = None) -> list[str]:
    """A production worker (`celery -A marketplace.celery worker`) on one queue, one task at a time (`solo`), without
    the cluster chatter a single test or bench worker does not need."""
    command = [sys.executable, "-m", "celery", "-A", "marketplace.celery", "worker", "--pool", "solo", "-Q", queue]
    if name:
        command += ["-n", name]
    return [*command, "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "WARNING"]


@contextmanager
def celery_worker() -> Iterator[str]:
    """Start a worker on a fresh queue; yield the queue name; stop the worker."""
    with celery_worker_process() as (queue, _process):
        yield queue


@contextmanager
def celery_worker_process(queue: str | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start a worker on a queue (a fresh one by default); yield the queue and the process (a test may kill it);
    stop the worker if it still runs."""
    queue = queue or f"test-{uuid.uuid4().hex[:12]}"
    env = {**os.environ, "DATABASE_URL": test_database_url()}
    process = subprocess.Popen(worker_command(queue), cwd=ROOT, env=env)  # noqa: S603 (fixed argv)
    try:
        time.sleep(0.5)
        if process.poll() is not None:
            raise RuntimeError(f"the Celery worker exited at start with code {process.returncode}")
        yield queue, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def waiting_on_a_lock(observer: psycopg.Connection) -> bool:
    """Some other session of the test database is waiting for a lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()"
    )
    return observer.execute(query).fetchone()[0] > 0


def worker_killed_at_a_lock(lock_sql: str, params: Sequence = (), *, start: Callable[[str], object], what: str):
    """A worker dying in the middle of a task's transaction: another session takes a lock with `lock_sql`, a
    worker starts and `start(queue)` sends the task to it; once the task waits on the lock the worker gets SIGKILL,
    then the lock is released. Returns what `start` returned."""
    url = test_database_url().replace("postgres://", "postgresql://")
    blocker = psycopg.connect(url, autocommit=False)
    observer = psycopg.connect(url, autocommit=True)
    try:
        blocker.execute(lock_sql, params)
        with celery_worker_process() as (queue, worker):
            started = start(queue)
            assert wait_for(lambda: waiting_on_a_lock(observer), timeout=60), f"{what} never reached the lock"
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        blocker.rollback()
        assert wait_for(lambda: not waiting_on_a_lock(observer), timeout=30)
    finally:
        blocker.close()
        observer.close()
    return started


def mailed_subjects(directory: Path) -> list[str]:
    """The subject lines of every message Django's file e-mail backend (`EMAIL_URL=file:///…`) wrote into
    `directory`, sorted. Counted by message, not by file: the backend names a file by the second and an object id,
    so two mails sent within one second can share a file."""
    if not directory.exists():
        return []
    return sorted(
        line
        for path in directory.iterdir()
        if path.is_file()
        for line in path.read_text().splitlines()
        if line.startswith("Subject: ")
    )
