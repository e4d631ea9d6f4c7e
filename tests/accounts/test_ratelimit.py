"""The failure budgets behind login lockout and token throttling (accounts.ratelimit): counted in a window, locked
for the lockout, and failing open, with a logged error, when the cache cannot be reached."""

from __future__ import annotations

import logging
import time

import pytest
from django.test import Client

from accounts import ratelimit
from accounts.models import Role
from accounts.ratelimit import Budget, failure_record, failures_clear, locked_for
from tests.factories import member_of

BUDGET = Budget(limit=3, window=60, lockout=120)


def test_the_budget_locks_on_the_last_failure_and_says_how_long(settings):
    now = time.time()

    tripped = [failure_record("t", "subject", BUDGET, now=now) for _ in range(3)]

    assert tripped == [False, False, True]
    assert locked_for("t", "subject", now=now) == 120
    assert locked_for("t", "subject", now=now + 119.5) == 1
    assert locked_for("t", "subject", now=now + 120) == 0
    assert locked_for("t", "someone else", now=now) == 0


def test_failures_outside_the_window_are_forgotten():
    short = Budget(limit=3, window=1, lockout=120)
    failure_record("t", "subject", short)
    failure_record("t", "subject", short)

    time.sleep(1.1)  # the cache expires the count (a real second: Redis keeps its own clock)

    assert failure_record("t", "subject", short) is False

    assert locked_for("t", "subject") == 0


def test_clearing_forgets_the_failures_but_not_a_lock():
    failure_record("t", "a", BUDGET)
    failure_record("t", "a", BUDGET)
    failures_clear("t", "a")
    assert failure_record("t", "a", BUDGET) is False

    for _ in range(2):
        failure_record("t", "a", BUDGET)
    failures_clear("t", "a")
    assert locked_for("t", "a") > 0


def test_no_subject_is_never_counted():
    assert [failure_record("t", None, BUDGET) for _ in range(5)] == [False] * 5
    assert locked_for("t", None) == 0


@pytest.fixture
def unreachable_cache(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }


@pytest.mark.django_db
def test_logins_keep_working_when_the_cache_is_down(unreachable_cache, enterprise, settings, caplog):
    settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT = 1
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    user = member_of(enterprise, Role.ADMIN, email="ada@blueheron.test")
    user.set_password("correct horse battery staple")
    user.save()
    client = Client()

    with caplog.at_level(logging.ERROR, logger="accounts.ratelimit"):
        wrong = client.post("/accounts/login/", {"username": user.email, "password": "wrong"})
        right = client.post("/accounts/login/", {"username": user.email, "password": "correct horse battery staple"})

    assert wrong.status_code == 200  # not locked: the failure could not be counted
    assert right.status_code == 302
    assert "ratelimit.cache_unavailable" in caplog.messages


def test_login_budgets_come_from_settings(settings):
    settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT = 4
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 9
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 30
    settings.LOGIN_LOCKOUT_SECONDS = 45

    assert ratelimit.login_budgets() == (Budget(4, 30, 45), Budget(9, 30, 45))
