"""Two of the operator's finance staff on the Stripe reconciliation page in real browsers: an import was requested
and waits for the worker; the clerk continues it, and both pages follow its progress page by page over the WebSocket
without a reload, then show the finished run.

The import runs as the `billing.stripe_import` task in the live server's process (tasks run eagerly in tests), over
the recorded Stripe account of tests/billing/stripe_balance.py (forked into that process with it): 250 balance
transactions in pages of 100, each answer taking a second, as Stripe over the internet might.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from accounts.models import OrganizationKind, Role
from billing import stripe_api
from billing.models import ImportStatus, StripeBalanceTransaction, StripeImportRun
from tests.billing.stripe_balance import API_BASE, SECRET_KEY, RecordedStripeAccount, balance_transaction, record_list
from tests.factories import PASSWORD, OrganizationFactory, member_of


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


@pytest.fixture
def slow_stripe(settings, monkeypatch) -> RecordedStripeAccount:
    """Set up before the live server forks, so that its process answers Stripe's calls from this account."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = API_BASE
    account = RecordedStripeAccount(delay_seconds=1.0)
    newest = int(datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp())
    txns = [
        balance_transaction(f"txn_{i:04d}", amount=10_000, fee=320, created=newest - 60 * i, source=f"ch_{i:04d}")
        for i in range(1, 251)
    ]
    record_list(account, "/v1/balance_transactions", txns)
    record_list(account, "/v1/payouts", [])
    monkeypatch.setattr(stripe_api, "HTTP_CLIENT", account)
    return account


def test_both_pages_follow_the_import_page_by_page_without_a_reload(slow_stripe, browser, page, live_server_url):
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")
    member_of(operator, Role.FINANCE, email="clerk@ops.test")
    member_of(operator, Role.ADMIN, email="admin@ops.test")
    run = StripeImportRun.objects.create(
        status=ImportStatus.RUNNING, started_at=datetime.now(UTC), started_by="clerk@ops.test"
    )

    colleague_context = browser.new_context(base_url=live_server_url, locale="en-US")
    colleague = colleague_context.new_page()
    colleague.set_default_timeout(15_000)
    log_in(colleague, "admin@ops.test")
    colleague.goto("/billing/finance/stripe/")
    expect(colleague.locator("html")).to_have_attribute("data-live", "connected")
    colleague.evaluate("window.notReloaded = true")
    watching = colleague.locator("[data-stripe-progress-text]")
    expect(watching).to_have_text("Requested by clerk@ops.test; waiting for the worker.")

    log_in(page, "clerk@ops.test")
    page.goto("/billing/finance/stripe/")
    expect(page.locator("html")).to_have_attribute("data-live", "connected")
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Continue the import").click()

    # Each committed page is announced: the progress line changes in place on both pages (each text stays up for
    # the second the next answer takes; the clerk's page is looked at a moment later).
    expect(watching).to_have_text("Importing balance transactions: 2 page(s) read, 200 transaction(s) stored.")
    expect(page.locator("[data-stripe-progress-text]")).to_have_text(
        re.compile(r"^Importing balance transactions: (2 page\(s\) read, 200|3 page\(s\) read, 250) transaction")
    )
    # The end reloads the region: the run is listed as imported, and the button is back.
    for seen in (colleague, page):
        row = seen.locator(f'#stripe-runs tr[data-run="{run.pk}"]')
        expect(row).to_contain_text("Imported", timeout=15_000)
        expect(row.locator("td").nth(3)).to_have_text("250")
        expect(seen.locator("[data-stripe-progress]")).to_have_count(0)
        expect(seen.get_by_role("button", name="Import from Stripe")).to_be_visible()
        assert seen.evaluate("window.notReloaded") is True
    colleague_context.close()

    run.refresh_from_db()
    assert (run.status, run.imported, run.cursor) == (ImportStatus.DONE, 250, "txn_0250")
    assert StripeBalanceTransaction.objects.count() == 250
