"""The demo's finance clerk, exactly as issue 6's "done when" walks it: on the seeded demo, open the workbench,
import the bundled sample bank statement, see its auto-matches and exceptions, resolve one, and lock last month."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from accounts.demo import DEMO_PASSWORD
from billing.models import BillingPeriod, ExceptionStatus, ReconciliationException
from billing.periods_calendar import label, month_start, previous_month
from tests.billing.settlement import chip
from tests.e2e.test_finance_flow import off_the_event_loop


@pytest.fixture
def demo_media(settings, tmp_path):
    """The sample statement `seed_demo` renders goes under MEDIA_ROOT: a directory of this test's own, set before
    the live server starts so that its process finds the file there too."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def test_the_demo_clerk_imports_the_sample_statement_resolves_an_exception_and_locks_last_month(
    demo_media, live_server_url, page
):
    from django.utils import timezone

    # A browser test before this one flushed the database, the seeded chip catalog included: the demo needs it.
    off_the_event_loop(lambda: (chip("nvidia-h100-sxm"), call_command("seed_demo", verbosity=0)))
    assert (demo_media / "demo").is_dir()
    last_month = label(previous_month(month_start(timezone.now())))
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto("/accounts/login/")
    page.fill("#id_username", "finance@northstar.demo")
    page.fill("#id_password", DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
    page.locator("#nav-billing").click()
    page.get_by_role("link", name="Reconciliation").first.click()
    page.wait_for_url(re.compile(r"/billing/finance/reconciliation/"))

    page.locator("#import-sample").click()
    expect(page.locator("#messages")).to_contain_text("4 matched, 1 proposed, 2 unmatched")
    open_before = ReconciliationException.objects.filter(status=ExceptionStatus.OPEN).count()
    assert open_before == 3

    page.goto("/billing/finance/reconciliation/exceptions/")
    rows = page.locator("#exceptions-table tbody tr")
    expect(rows).to_have_count(3)
    fee = ReconciliationException.objects.get(status=ExceptionStatus.OPEN, amount__lt=0)
    page.goto(f"/billing/finance/reconciliation/exceptions/{fee.pk}/")
    page.fill("#id_dismiss-reason", "Bank account fee")
    page.locator("#dismiss-form").get_by_role("button", name="Dismiss").click()
    expect(page.locator("#messages")).to_contain_text("Dismissed: the exception is resolved.")
    assert ReconciliationException.objects.filter(status=ExceptionStatus.OPEN).count() == 2

    page.goto(f"/billing/finance/reconciliation/?period={last_month}")
    page.get_by_role("button", name=f"Lock {last_month}").click()
    expect(page.locator('[data-testid="locked-by"]')).to_contain_text("by finance@northstar.demo")
    assert BillingPeriod.objects.get(start=previous_month(month_start(timezone.now()))).locked_at is not None
