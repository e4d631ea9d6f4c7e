"""Redis down: a real Daphne server whose Redis (a private redis-server) is stopped keeps serving pages and the API;
a booking made meanwhile commits, its live update and its e-mail task fail with a logged error, and the task waits
in the transactional outbox. When Redis returns, live updates flow again and the outbox relay (the beat task)
publishes the waiting task, which a real Celery worker runs: nothing queued during the outage is lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.test import Client
from django.utils import timezone

from accounts.models import OrganizationKind, Role, Scope
from marketplace.models import Booking, OutboxMessage
from tests.factories import OrganizationFactory, member_of, token_for
from tests.faults.processes import daphne, free_port, redis_server, redis_server_path
from tests.marketplace.factories import OfferingFactory
from tests.worker import ROOT, celery_worker_process, mailed_subjects, wait_for
from tests.worker import test_database_url as database_url

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.skipif(not redis_server_path(), reason="needs redis-server to start a private Redis"),
]

# Requests while Redis is down must not hang on it.
QUICK = 3.0


def _window(offering, hours_from_now: int) -> dict:
    start = (timezone.now() + timedelta(hours=hours_from_now)).replace(minute=0, second=0, microsecond=0)
    return {
        "offering": str(offering.pk),
        "devices": 2,
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(hours=4)).isoformat().replace("+00:00", "Z"),
    }


def _relay(redis_url: str) -> str:
    """One run of the outbox relay as the beat runs it: its own process on the test database and this Redis
    (`now` a minute ahead: the relay leaves fresh rows to their own publish for 30 s)."""
    code = (
        "from datetime import timedelta; from django.utils import timezone; "
        "from marketplace.outbox import relay; print('relayed', relay(now=timezone.now() + timedelta(minutes=1)))"
    )
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": redis_url}
    done = subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pages_and_the_api_serve_without_redis_and_the_queued_task_runs_when_it_returns(tmp_path, monkeypatch):
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")
    person = member_of(consumer, Role.ADMIN, email="ops@blueheron.example")
    offering = OfferingFactory(devices=16, price_per_device_hour=Decimal("12.5000"), min_hours=1, max_hours=72)
    token = token_for(consumer, Scope.BOOKING)
    browser = Client()
    browser.force_login(person)
    session = requests.Session()
    session.cookies.set(settings.SESSION_COOKIE_NAME, browser.cookies[settings.SESSION_COOKIE_NAME].value)
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"

    redis_port, web_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    log = tmp_path / "daphne.log"
    mail = tmp_path / "mail"
    with redis_server(redis_port) as redis, daphne(web_port, log, REDIS_URL=redis_url):
        base = f"http://127.0.0.1:{web_port}"
        assert session.get(f"{base}/bookings/", timeout=10).status_code == 200
        redis.terminate()
        redis.wait(timeout=10)

        # --- Redis is down ---------------------------------------------------------------------------------
        served = {}
        for name, call in {
            "home page": lambda: session.get(f"{base}/", timeout=10),
            "bookings page": lambda: session.get(f"{base}/bookings/", timeout=10),
            "catalog API (anonymous, throttled)": lambda: requests.get(f"{base}/api/v1/catalog", timeout=10),
            "bookings API": lambda: api.get(f"{base}/api/v1/bookings", timeout=10),
            "booking created": lambda: api.post(f"{base}/api/v1/bookings", json=_window(offering, 30), timeout=10),
        }.items():
            started = time.monotonic()
            response = call()
            served[name] = (response.status_code, time.monotonic() - started < QUICK)
        assert served == {
            "home page": (200, True),
            "bookings page": (200, True),
            "catalog API (anonymous, throttled)": (200, True),
            "bookings API": (200, True),
            "booking created": (201, True),
        }
        booking = Booking.objects.get()
        # The booking committed; its e-mail task waits in the outbox, unsent, with the broker's error.
        [message] = OutboxMessage.objects.all()
        assert (message.task, message.args, message.sent_at) == (
            "marketplace.booking_status_email",
            [str(booking.pk), "confirmed"],
            None,
        )
        assert message.attempts == 1 and message.last_error
        logged = log.read_text()
        for error in ("outbox.publish_failed", "realtime.send_failed", "cache.unavailable"):
            assert error in logged, error
        assert " 500 " not in logged
        assert "relayed 0" in _relay(redis_url)  # the relay, too, only logs while Redis is down
        assert OutboxMessage.objects.get().sent_at is None

        # --- Redis returns -----------------------------------------------------------------------------------
        with redis_server(redis_port):
            # Live updates flow again: a change made now reaches the organization's group through Redis.
            async def watch_a_booking() -> dict:
                layer = RedisChannelLayer(hosts=[redis_url])
                channel = await layer.new_channel()
                await layer.group_add(f"org.{consumer.pk}", channel)
                created = await asyncio.to_thread(
                    api.post, f"{base}/api/v1/bookings", json=_window(offering, 40), timeout=10
                )
                assert created.status_code == 201
                event = await asyncio.wait_for(layer.receive(channel), timeout=10)
                await layer.flush()
                return event

            event = asyncio.run(watch_a_booking())
            second = Booking.objects.exclude(pk=booking.pk).get()
            assert (event["event"], event["booking"], event["status"]) == (
                "booking.status",
                str(second.pk),
                "confirmed",
            )
            # That booking's task was published at once; the outage's is published by the relay.
            assert OutboxMessage.objects.filter(sent_at__isnull=True).get().args[0] == str(booking.pk)
            monkeypatch.setenv("REDIS_URL", redis_url)
            monkeypatch.setenv("EMAIL_URL", f"file:///{mail}")  # dj-email-url drops one slash
            with celery_worker_process(queue="celery"):
                assert "relayed 1" in _relay(redis_url)
                assert OutboxMessage.objects.filter(sent_at__isnull=True).count() == 0
                # The worker ran both e-mail tasks: one message per booking.
                assert wait_for(lambda: len(mailed_subjects(mail)) == 2, timeout=30)
    assert mailed_subjects(mail) == sorted(
        f"Subject: Booking {str(b.pk)[:8]} is now Confirmed" for b in (booking, second)
    )
