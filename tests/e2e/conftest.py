"""Browser tests: a real Daphne server (ASGI, WebSockets included) on the test database, driven by Playwright
through Debian's Chromium. Chromium is found at $CHROMIUM_PATH or on PATH; without it the tests skip (an error
in CI, see tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from functools import partial

import pytest
from channels.testing.live import make_application
from daphne.testing import DaphneProcess
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machine has no internet: without these Chromium keeps trying to reach Google's hosts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture
def live_server_url(transactional_db, settings) -> Iterator[str]:
    """A Daphne process forked from the test process: it inherits the settings pytest-django already pointed at
    the test database (channels' own setup hook would prefix the name a second time)."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1", "localhost"]
    process = DaphneProcess(
        "127.0.0.1",
        partial(make_application, static_wrapper=ASGIStaticFilesHandler),
    )
    process.start()
    if not process.ready.wait(timeout=30):
        process.terminate()
        error = process.errors.get(timeout=1)[1] if not process.errors.empty() else "no error reported"
        raise RuntimeError(f"the live server did not start: {error}")
    try:
        yield f"http://127.0.0.1:{process.port.value}"
    finally:
        process.terminate()
        process.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (make system-deps installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in the test thread; the test's own ORM calls are still plain
    # synchronous code, so Django's async guard must not refuse them while a browser is open.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server_url):
    context = browser.new_context(base_url=live_server_url, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
