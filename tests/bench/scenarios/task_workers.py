"""Task workers, the measured part of "Beyond one machine" for Celery: booking e-mails per second sent by one and
by two worker processes consuming one Redis queue, on the one database.

The work is the product's own task, `marketplace.booking_status_email`, for bookings whose consumer and center each
have an admin: every task reads its booking and the recipients from PostgreSQL, renders the message and sends it
through Django's file e-mail backend (one file per message in the run's work directory, so the mails can be
counted). The tasks go onto a private queue as the web process's outbox would publish them (by name, through
Redis), in one burst after the workers are up; a run ends when the queue and the broker's unacknowledged set are
empty. Workers run as in production (`celery -A marketplace.celery worker`, acknowledgement after the task, one
message prefetched), each with the `solo` pool: one process, one task at a time.

The same tasks are also run in the bench process without a broker (the eager path of a web process with no
`REDIS_URL`), for the cost of the broker round trip. The `ratio` is two workers' rate over one's; the target,
×1.5, is what a second process on a machine of two cores should add when the database leaves it room.

Needs a Redis server: `REDIS_URL` (its host and port, database 15), or 127.0.0.1:6379. Checks (an error, exit 1):
every task sent exactly one mail, none failed.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.bench.harness import (
    BASE_DIR,
    REDIS_URL,
    Bench,
    BenchError,
    Result,
    cpu_seconds,
    server_env,
    stop,
)
from tests.worker import mailed_subjects, worker_command

NAME = "task_workers"
DESCRIPTION = "booking e-mails/s sent by 1 and 2 Celery worker processes through Redis (tasks scaled out)"
TARGET = 1.5
TASKS = {"small": 600, "default": 2_400}
WORKERS = (1, 2)
TASK = "marketplace.booking_status_email"
RUN_TIMEOUT = 600.0

log = logging.getLogger("bench")


def run(bench: Bench) -> Iterator[Result]:
    broker = _broker_url()
    tasks = TASKS[bench.scale]
    result = Result(
        name=NAME,
        parameters={"scale": bench.scale, "tasks": tasks, "workers": list(WORKERS), "pool": "solo", "seed": bench.seed},
        target=TARGET,
        environment=bench.environment,
    )
    try:
        _ping(broker)
        bookings = _create_bookings(tasks)
        in_process = _in_process(bookings)
        rates, runs = {}, {}
        for workers in WORKERS:
            runs[workers] = _measure(bench, broker, bookings, workers)
            rates[workers] = runs[workers]["tasks_per_s"]
        result.figures = {
            "tasks_per_s": {f"{workers}_workers": rate for workers, rate in rates.items()},
            "in_process_tasks_per_s": in_process,
            "runs": {f"{workers}_workers": figures for workers, figures in runs.items()},
        }
        result.checks = {f"{workers}_workers_mails": runs[workers]["mails"] for workers in WORKERS} | {"tasks": tasks}
        result.ratio = round(rates[2] / rates[1], 3)
        result.headline = (
            f"1 worker {rates[1]:,.0f} tasks/s, 2 workers {rates[2]:,.0f}/s; in-process (no broker) {in_process:,.0f}/s"
        )
    except BenchError as error:
        result.error = str(error)
    yield result


def _broker_url() -> str:
    """The Redis of REDIS_URL (or the local one) on database 15, which nothing else of the project uses."""
    parts = urlsplit(REDIS_URL or "redis://127.0.0.1:6379/0")
    return urlunsplit(parts._replace(path="/15"))


def _ping(broker: str) -> None:
    import redis

    try:
        redis.Redis.from_url(broker, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        raise BenchError(f"{NAME} needs a Redis server (set REDIS_URL): {broker} answered {error}") from None


# --- data -----------------------------------------------------------------------------------------------------------


def _create_bookings(count: int) -> list[str]:
    """One center and one consumer, each with an admin who gets the mails, and `count` confirmed one-hour bookings
    back to back on one offering."""
    from accounts.models import Membership, OrganizationKind, Role, User
    from accounts.services import organization_create
    from marketplace.models import AcceleratorModel, Booking, BookingStatus, Offering, OfferingStatus, Site

    tag = uuid.uuid4().hex[:8]
    center = organization_create(
        kind=OrganizationKind.CENTER, name=f"Task Bench Center {tag}", slug=f"task-bench-center-{tag}", verified=True
    )
    consumer = organization_create(
        kind=OrganizationKind.ENTERPRISE, name=f"Task Bench Consumer {tag}", slug=f"task-bench-consumer-{tag}"
    )
    for organization, who in ((center, "ops"), (consumer, "buyer")):
        user = User.objects.create_user(email=f"{who}-{tag}@bench.example", password=uuid.uuid4().hex)
        Membership.objects.create(user=user, organization=organization, role=Role.ADMIN)
    site = Site.objects.create(
        center=center,
        external_id=f"task-site-{tag}",
        name="Task bench site",
        region="cn-east",
        pue=Decimal("1.30"),
        carbon_intensity_g_per_kwh=Decimal("550"),
        green_power_share=Decimal("0.20"),
    )
    offering = Offering.objects.create(
        center=center,
        site=site,
        external_id=f"task-pool-{tag}",
        accelerator=AcceleratorModel.objects.order_by("code").first(),
        devices=8,
        devices_per_node=8,
        price_per_device_hour=Decimal("9.5000"),
        currency="CNY",
        max_hours=720,
        status=OfferingStatus.PUBLISHED,
    )
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    now = datetime.now(UTC)
    bookings = Booking.objects.bulk_create(
        Booking(
            consumer=consumer,
            offering=offering,
            devices=1,
            start=base + timedelta(hours=number),
            end=base + timedelta(hours=number + 1),
            status=BookingStatus.CONFIRMED,
            unit_price=offering.price_per_device_hour,
            currency="CNY",
            min_commit_fraction=Decimal("0"),
            cancel_notice_hours=24,
            confirmed_at=now,
        )
        for number in range(count)
    )
    return [str(booking.pk) for booking in bookings]


# --- the phases -------------------------------------------------------------------------------------------------------


def _in_process(bookings: list[str]) -> float:
    """The same task bodies called in this process (the eager path), mails kept in memory: tasks/s."""
    from django.core import mail
    from django.test.utils import override_settings

    from marketplace.tasks import booking_status_email

    with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        mail.outbox = []
        began = time.perf_counter()
        for booking in bookings:
            booking_status_email(booking, "confirmed")
        seconds = time.perf_counter() - began
        sent = len(mail.outbox)
        mail.outbox = []
    if sent != len(bookings):
        raise BenchError(f"in-process: {sent} mails for {len(bookings)} tasks")
    log.info("%s: in process: %d tasks in %.1f s", NAME, len(bookings), seconds)
    return round(len(bookings) / seconds, 1)


def _measure(bench: Bench, broker: str, bookings: list[str], workers: int) -> dict:
    import redis
    from celery import Celery

    queue = f"bench-{uuid.uuid4().hex[:12]}"
    mail_dir = bench.work_dir / f"mail-{workers}-workers"
    mail_dir.mkdir()
    connection = redis.Redis.from_url(broker)
    connection.flushdb()  # database 15 is the bench's own
    # Not the current app: the project's shared tasks must keep resolving to the project's own app.
    sender = Celery("bench-sender", broker=broker, set_as_current=False)
    with ExitStack() as stack:
        pids = [stack.enter_context(_worker(bench, broker, queue, mail_dir, number)) for number in range(workers)]
        # Redis drops what is published to a queue nobody has bound yet: wait for the workers' binding, then one
        # warm-up task per worker, answered before the clock starts.
        _wait_for(lambda: connection.exists(f"_kombu.binding.{queue}"), 60.0, f"{workers} workers' start")
        for booking in bookings[:workers]:
            sender.send_task(TASK, args=[booking, "confirmed"], queue=queue)
        _wait_for(lambda: _mails(mail_dir) == workers, 60.0, f"{workers} workers' warm-up")
        _wait_drained(connection, queue, 60.0, f"{workers} workers' warm-up")
        warmed = _mails(mail_dir)
        with ExitStack() as measuring:
            usages = [measuring.enter_context(cpu_seconds(bench, pid)) for pid in pids]
            began = time.perf_counter()
            with sender.connection_for_write() as producer_connection:
                for booking in bookings:
                    sender.send_task(TASK, args=[booking, "confirmed"], queue=queue, connection=producer_connection)
            _wait_drained(connection, queue, RUN_TIMEOUT, f"{workers} workers")
            seconds = time.perf_counter() - began
    mails = _mails(mail_dir) - warmed
    shutil.rmtree(mail_dir, ignore_errors=True)
    if mails != len(bookings):
        raise BenchError(f"{workers} workers sent {mails} mails for {len(bookings)} tasks (see the workers' logs)")
    cpu = usages[0]
    worker_cpu = None if any(usage.server is None for usage in usages) else sum(usage.server for usage in usages)
    log.info("%s: %d workers: %d tasks in %.1f s", NAME, workers, len(bookings), seconds)
    return {
        "tasks_per_s": round(len(bookings) / seconds, 1),
        "seconds": round(seconds, 2),
        "mails": mails,
        "cpu_ms_per_task": {
            "workers": None if worker_cpu is None else round(worker_cpu * 1000 / len(bookings), 2),
            "postgres": None if cpu.postgres is None else round(cpu.postgres * 1000 / len(bookings), 2),
            "machine": None if cpu.machine is None else round(cpu.machine * 1000 / len(bookings), 2),
        },
    }


@contextmanager
def _worker(bench: Bench, broker: str, queue: str, mail_dir: Path, number: int) -> Iterator[int]:
    log_path = bench.work_dir / f"worker-{queue}-{number}.log"
    # dj-email-url drops the first slash of a file URL's path: four slashes make an absolute directory.
    env = server_env(bench.database_url, REDIS_URL=broker, EMAIL_URL=f"file:///{mail_dir}")
    command = worker_command(queue, name=f"bench{number}@%h")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 (a fixed command line: this interpreter's celery)
            command, cwd=BASE_DIR, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        time.sleep(0.5)
        if process.poll() is not None:
            raise BenchError(f"a Celery worker exited at start with code {process.returncode} (log {log_path})")
        yield process.pid
    finally:
        stop(process, timeout=30)


def _wait_for(predicate, timeout: float, label: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BenchError(f"{label}: nothing after {timeout:.0f} s (see the workers' logs)")
        time.sleep(0.05)


def _wait_drained(connection, queue: str, timeout: float, label: str) -> None:
    """Until the queue is empty and no message is delivered but unacknowledged (kombu's Redis transport keeps
    those in `unacked` until the task has run: acknowledgement after the task)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pipe = connection.pipeline()
        pipe.llen(queue)
        pipe.hlen("unacked")
        waiting, unacked = pipe.execute()
        if waiting == 0 and unacked == 0:
            return
        time.sleep(0.02)
    raise BenchError(f"{label}: tasks still queued after {timeout:.0f} s")


def _mails(directory: Path) -> int:
    return len(mailed_subjects(directory))
