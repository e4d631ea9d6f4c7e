"""The runtime wiring: settings helpers, the embedded defaults, and Redis when REDIS_URL is set."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from marketplace.env import env_bool, env_decimal, env_int, env_list, env_url


def test_env_helpers_read_typed_values(monkeypatch):
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_INT", "42")
    monkeypatch.setenv("X_DEC", "0.125")
    monkeypatch.setenv("X_LIST", "a.example, b.example ,,")

    assert env_bool("X_BOOL", default=False) is True
    assert env_int("X_INT", 1) == 42
    assert env_decimal("X_DEC", "0") == Decimal("0.125")
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    assert env_url("X_UNSET_URL", schemes=("redis",)) is None


@pytest.mark.parametrize(
    ("name", "value", "reader", "message"),
    [
        ("X_BOOL", "maybe", lambda: env_bool("X_BOOL", default=False), "X_BOOL must be a boolean"),
        ("X_INT", "4.5", lambda: env_int("X_INT", 1), "X_INT must be an integer, got '4.5'"),
        ("X_DEC", "NaN", lambda: env_decimal("X_DEC", "0"), "X_DEC must be a finite decimal number"),
        ("X_DEC", "1.5", lambda: env_decimal("X_DEC", "0", maximum="1"), "X_DEC must be at most 1, got 1.5"),
        ("X_URL", "http://x", lambda: env_url("X_URL", schemes=("redis",)), "X_URL must start with one of redis://"),
    ],
)
def test_env_helpers_fail_loudly(monkeypatch, name, value, reader, message):
    monkeypatch.setenv(name, value)

    with pytest.raises(ImproperlyConfigured, match=message):
        reader()


@pytest.mark.django_db
def test_the_database_is_postgresql():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        assert int(cursor.fetchone()[0]) >= 150000


@pytest.mark.redis
def test_redis_backs_the_channel_layer_and_cache():
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert settings.CELERY_TASK_ALWAYS_EAGER is False
    layer = get_channel_layer()
    group = f"test-{uuid.uuid4().hex}"

    async def roundtrip():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        await layer.group_send(group, {"type": "booking.status", "status": "confirmed"})
        message = await layer.receive(channel)
        await layer.group_discard(group, channel)
        return message

    assert async_to_sync(roundtrip)() == {"type": "booking.status", "status": "confirmed"}
    cache.set("runtime-check", "ok", 10)
    assert cache.get("runtime-check") == "ok"


def test_the_api_settings_load_when_a_worker_imports_them_first():
    """A Celery worker runs Django's checks before anything imported DRF's views; the API's own classes named in
    REST_FRAMEWORK must load in that order too (a circular import once broke every worker at start)."""
    script = (
        "import django; django.setup()\n"
        "from rest_framework.checks import pagination_system_check\n"
        "print(pagination_system_check(None))\n"
    )
    result = subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "marketplace.settings", "PYTHONPATH": "."},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr[-2000:]
