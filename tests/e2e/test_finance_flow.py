"""The operator's finance clerk in a real browser: opens the billing periods, closes last month with the Close button
and sees it closed without a reload (while a colleague's open page follows over the WebSocket), then opens the
month's invoice, finalizes it and issues a credit note.

Last month is built around the real clock: Blue Heron Robotics metered 8 devices × 2 h = 16 device-hours at 12.50
CNY = 200.00; no voucher, so the invoice's total is 200.00, and Lakeside's statement has a fee of 20.00 (10 %) and a
payout of 180.00. The close runs as the `billing.period_close` task, in the live server's process (tasks run eagerly
in tests), and its events reach the browsers through the server's channel layer.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from django.db import connection
from playwright.sync_api import expect

from accounts.models import OrganizationKind, Role
from billing.models import AccountRole, BillingPeriod, CreditNote, Invoice, InvoiceStatus, PeriodStatus
from billing.periods_calendar import label, month_start, previous_month
from tests.billing.settlement import balance, book, market, meter
from tests.factories import PASSWORD, OrganizationFactory, member_of
from tests.marketplace.factories import AcceleratorModelFactory

T = TypeVar("T")


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


def stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def off_the_event_loop(work: Callable[[], T]) -> T:
    """Run `work` in a thread of its own: ingestion sends live events through async_to_sync, which refuses the
    thread where Playwright's event loop runs (the test's). The thread's database connection commits like the
    test's (a browser test's database is not wrapped in a transaction) and is closed after."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed to the test's thread, which raises it
            outcome["error"] = error
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def last_month_usage(last_month: datetime):
    """Blue Heron Robotics' booking in last month, 16 device-hours metered through the real ingestion."""
    # Spelled out: a browser test flushes the tables afterwards, so the seeded chip catalog may be gone.
    h100 = AcceleratorModelFactory(
        code="nvidia-h100-sxm", vendor="NVIDIA", model="H100 SXM 80GB", memory_gb=80, fp16_tflops=Decimal("989.4")
    )
    _center, offering, consumer = market(fraction="0", accelerator=h100)
    day = last_month + timedelta(days=4, hours=10)
    booking = book(offering, consumer, stamp(day), stamp(day + timedelta(hours=4)), 8)
    meter(booking, stamp(day), stamp(day + timedelta(hours=2)), 8)
    return consumer


def test_a_clerk_closes_last_month_live_and_credits_its_invoice(browser, page, live_server_url):
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")
    member_of(operator, Role.FINANCE, email="clerk@ops.test")
    member_of(operator, Role.ADMIN, email="admin@ops.test")
    this_month = month_start(datetime.now(UTC))
    last_month = previous_month(this_month)
    consumer = off_the_event_loop(lambda: last_month_usage(last_month))
    last, current = label(last_month), label(this_month)

    # A colleague has the periods open in another browser; it must follow the close without reloading.
    colleague_context = browser.new_context(base_url=live_server_url, locale="en-US")
    colleague = colleague_context.new_page()
    colleague.set_default_timeout(15_000)
    log_in(colleague, "admin@ops.test")
    colleague.goto("/billing/finance/")
    expect(colleague.locator("html")).to_have_attribute("data-live", "connected")
    colleague.evaluate("window.notReloaded = true")
    expect(colleague.locator(f'tbody[data-period="{last}"] [data-period-status]')).to_have_text("Open")

    # The clerk opens the billing periods from the Finance menu.
    log_in(page, "clerk@ops.test")
    page.locator("#nav-billing").click()
    page.get_by_role("link", name="Billing periods").click()
    page.wait_for_url(re.compile(r"/billing/finance/$"))
    expect(page.locator("html")).to_have_attribute("data-live", "connected")
    row = page.locator(f'tbody[data-period="{last}"]')
    expect(row.locator("[data-period-status]")).to_have_text("Open")
    expect(page.locator(f'tbody[data-period="{current}"] [data-testid="close-refusal"]')).to_contain_text(
        f"{current} has not ended yet"
    )
    page.evaluate("window.notReloaded = true")

    # Close: confirmed in the dialog, answered in place.
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Close {last}").click()
    expect(row.locator("[data-period-status]")).to_have_text("Closed")
    expect(row.locator('[data-testid="subtotal"]')).to_have_text("200.00")
    expect(row.locator('[data-testid="fee"]')).to_have_text("20.00")
    expect(row.locator('[data-testid="payout"]')).to_have_text("180.00")
    expect(row.locator('[data-testid="reconciled"]')).to_have_attribute("data-reconciles", "yes")
    expect(row.locator('[data-testid="invoices"]')).to_have_text("1")
    assert page.evaluate("window.notReloaded") is True
    assert BillingPeriod.objects.get(start=last_month).status == PeriodStatus.CLOSED
    assert BillingPeriod.objects.get(start=last_month).closed_by == "clerk@ops.test"

    # The colleague's page followed over the WebSocket.
    colleague_row = colleague.locator(f'tbody[data-period="{last}"]')
    expect(colleague_row.locator("[data-period-status]")).to_have_text("Closed")
    expect(colleague_row.locator('[data-testid="total"]')).to_have_text("200.00")
    assert colleague.evaluate("window.notReloaded") is True
    colleague_context.close()

    # The month's invoice: finalize it, then credit 50.00 of its line.
    invoice = Invoice.objects.get(consumer=consumer, period__start=last_month)
    page.get_by_role("link", name=last, exact=True).click()
    page.wait_for_url(re.compile(rf"/billing/finance/periods/{last}/$"))
    page.locator(f'tr[data-invoice-id="{invoice.pk}"] a').click()
    page.wait_for_url(re.compile(rf"/billing/finance/invoices/{invoice.pk}/$"))
    expect(page.locator('[data-testid="total"]')).to_have_text("200.00 CNY")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Finalize now").click()
    number = f"INV-{last}-000001"
    expect(page.locator("#messages")).to_contain_text(f"Invoice {number} is finalized and sent to the consumer.")
    expect(page.locator("#invoice-title")).to_have_text(f"Invoice {number}")

    line = invoice.lines.get()
    page.fill(f"#id_credit-line_{line.pk}", "50.00")
    page.fill("#id_credit-reason", "Two hours lost to a node failure")
    page.get_by_role("button", name="Issue credit note").click()
    note_number = f"CN-{current}-000001"
    expect(page.locator("#messages")).to_contain_text(f"Credit note {note_number} for 50.00 CNY is issued.")
    expect(page.locator(f'tr[data-credit-note="{note_number}"] [data-testid="note-total"]')).to_have_text("50.00 CNY")
    expect(page.locator('[data-testid="creditable"]')).to_have_text("150.00 CNY")

    invoice.refresh_from_db()
    assert (invoice.status, invoice.number) == (InvoiceStatus.FINALIZED, number)
    note = CreditNote.objects.get()
    assert (note.invoice_id, note.total, note.reason) == (
        invoice.pk,
        Decimal("50.00"),
        "Two hours lost to a node failure",
    )
    assert balance(consumer, AccountRole.RECEIVABLE) == Decimal("150.00")
