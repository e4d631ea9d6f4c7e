"""Suite-wide wiring: real PostgreSQL, fast password hashing, and no silent skips in CI."""

from __future__ import annotations

import os
import uuid

import pytest
from rest_framework.test import APIClient

from accounts.models import OrganizationKind, Role
from tests.factories import OrganizationFactory, member_of

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config, items):
    # Every test that touches the database runs on PostgreSQL (the only database): mark it so.
    for item in items:
        if {"db", "transactional_db", "django_db_setup"} & set(
            getattr(item, "fixturenames", ())
        ) or item.get_closest_marker("django_db"):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _needs_redis(request):
    if request.node.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        pytest.skip("needs a Redis server: set REDIS_URL (CI does)")


@pytest.fixture(autouse=True)
def _tasks_run_in_process(request):
    """Tasks run in the test's process unless the test asks for the real worker (marker `worker`), so a test
    of a page or service sees its task's effect deterministically; worker tests prove the broker path."""
    from marketplace.celery import app

    if request.node.get_closest_marker("worker"):
        yield
        return
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # In CI a skipped service or browser test would hide a missing install step: count it as a failure.
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"Skipped in CI, which must run every test: {reason}"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    # A fresh key prefix per test isolates throttle counters without flushing a shared Redis database.
    settings.CACHES = {
        name: {**config, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"} for name, config in settings.CACHES.items()
    }


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def enterprise(db):
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")


@pytest.fixture
def other_enterprise(db):
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")


@pytest.fixture
def center(db):
    return OrganizationFactory(kind=OrganizationKind.CENTER, name="Lakeside AI Computing Center")


@pytest.fixture
def enterprise_admin(enterprise):
    return member_of(enterprise, Role.ADMIN, email="admin@blueheron.test", name="Ada Admin")


@pytest.fixture
def enterprise_owner(enterprise):
    return member_of(enterprise, Role.OWNER, email="owner@blueheron.test", name="Olga Owner")
