"""A finance clerk reconciles in a real browser: imports a bank statement on the workbench, opens the exception of a
transfer auto-match could not place, matches it to the invoice it pays, and sees it resolved — the invoice paid. And
a large statement, imported by a real Celery worker, whose page follows the import's progress over the WebSocket.

Last month is built around the real clock as in test_finance_flow: Blue Heron Robotics' invoice of 200.00 CNY,
finalized now. The statement has two lines: Blue Heron's parent company paid 200.00 ten days ago with no invoice
number (outside the date window, so auto-match finds no candidate), and the bank took a 12.00 fee.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import OrganizationKind, Role
from billing.models import (
    BankLineStatus,
    BankStatementLine,
    ExceptionKind,
    ExceptionResolution,
    Invoice,
    InvoiceStatus,
    Payment,
    ReconciliationException,
)
from billing.periods_calendar import month_start, previous_month
from billing.services.invoices import invoice_finalize
from billing.services.periods import period_close
from tests.billing.bank import statement_csv
from tests.e2e.test_finance_flow import last_month_usage, log_in, off_the_event_loop
from tests.factories import OrganizationFactory, member_of
from tests.worker import celery_worker


def closed_and_finalized(last_month: datetime) -> Invoice:
    consumer = last_month_usage(last_month)
    period_close(start=last_month, now=timezone.now(), actor_label="test")
    invoice = Invoice.objects.get(consumer=consumer, period__start=last_month)
    return invoice_finalize(invoice_id=invoice.pk, now=timezone.now())


def test_a_clerk_imports_a_statement_and_matches_an_exception_by_hand(page, live_server_url, tmp_path):
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")
    member_of(operator, Role.FINANCE, email="clerk@ops.test")
    last_month = previous_month(month_start(datetime.now(UTC)))
    invoice = off_the_event_loop(lambda: closed_and_finalized(last_month))
    early = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
    today = datetime.now(UTC).date().isoformat()
    statement = tmp_path / "cmb-statement.csv"
    statement.write_bytes(
        statement_csv(
            (early, "200.00", "Heron Holdings Ltd.", "compute services", "CMB-0001"),
            (today, "-12.00", "China Merchants Bank", "Account fee", "CMB-0002"),
            bom=True,
        )
    )

    # The clerk opens the workbench and imports the statement.
    log_in(page, "clerk@ops.test")
    page.goto("/billing/finance/reconciliation/")
    expect(page.locator("#no-statements")).to_be_visible()
    page.locator("#upload-link").click()
    page.wait_for_url(re.compile(r"/billing/finance/reconciliation/upload/$"))
    page.set_input_files("#id_file", str(statement))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/billing/finance/reconciliation/statements/[0-9a-f-]+/$"))
    expect(page.locator("#messages")).to_contain_text(
        "cmb-statement.csv: 2 lines imported — 0 matched, 0 proposed, 2 unmatched."
    )
    expect(page.locator('tr[data-line="2"] [data-testid="line-status"]')).to_have_text("Unmatched")

    # The exceptions queue lists both lines; the clerk opens the 200.00 one.
    page.locator("#reconcile-tabs").get_by_role("link", name="Exceptions queue").click()
    page.wait_for_url(re.compile(r"/billing/finance/reconciliation/exceptions/$"))
    exception = ReconciliationException.objects.get(kind=ExceptionKind.UNMATCHED_BANK_LINE, amount=200)
    row = page.locator(f'tr[data-exception="{exception.pk}"]')
    expect(row).to_contain_text("200.00 CNY from Heron Holdings Ltd.")
    expect(page.locator("#exceptions-table tbody tr")).to_have_count(2)
    row.get_by_role("link", name="Unmatched bank line").click()
    page.wait_for_url(re.compile(rf"/billing/finance/reconciliation/exceptions/{exception.pk}/$"))
    expect(page.locator(f'#candidates tr[data-candidate="{invoice.number}"]')).to_contain_text("200.00 CNY")

    # A wrong number is refused, saying why; the right one matches.
    page.fill("#id_match-invoice", "INV-1999-01-000009")
    page.locator("#match-form").get_by_role("button", name="Match").click()
    expect(page.locator('[data-testid="notice"]')).to_have_text("No invoice is numbered “INV-1999-01-000009”.")
    page.fill("#id_match-invoice", invoice.number)
    page.fill("#id_match-reason", "Heron Holdings pays for its subsidiary")
    page.locator("#match-form").get_by_role("button", name="Match").click()

    expect(page.locator("#messages")).to_contain_text(
        f"Matched to invoice {invoice.number}: the exception is resolved."
    )
    expect(page.locator('[data-testid="exception-status"]')).to_have_text("Resolved · Matched")
    expect(page.locator('[data-testid="resolved-by"]')).to_contain_text("clerk@ops.test")
    expect(page.locator("#match-form")).to_have_count(0)

    # The queue now shows only the bank fee.
    page.locator("#reconcile-tabs").get_by_role("link", name="Exceptions queue").click()
    expect(page.locator("#exceptions-table tbody tr")).to_have_count(1)

    exception.refresh_from_db()
    assert (exception.resolution, exception.resolved_by) == (ExceptionResolution.MATCHED, "clerk@ops.test")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    payment = Payment.objects.get()
    assert (payment.invoice_id, payment.amount, payment.recorded_by) == (invoice.pk, 200, "clerk@ops.test")
    assert BankStatementLine.objects.get(line_number=2).status == BankLineStatus.MATCHED


@pytest.fixture
def import_queue(transactional_db):
    """A real Celery worker for the bank statement import, on a queue of its own: the import task is routed there
    (as a deployment would route it with `task_routes`) before the live server starts, so the server queues it
    through Redis and the worker's progress events reach the browser over the WebSocket."""
    from marketplace.celery import app

    previous = app.conf.task_routes
    with celery_worker() as queue:
        app.conf.task_routes = {"billing.bank_statement_import": {"queue": queue}}
        app.amqp.flush_routes()
        app.amqp.__dict__.pop("router", None)  # the router keeps the routes it was built with
        try:
            yield queue
        finally:
            app.conf.task_routes = previous
            app.amqp.flush_routes()
            app.amqp.__dict__.pop("router", None)


@pytest.mark.redis
@pytest.mark.worker
def test_a_large_statement_is_imported_by_the_worker_while_its_page_shows_the_progress_live(
    import_queue, page, live_server_url, tmp_path
):
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")
    member_of(operator, Role.FINANCE, email="clerk@ops.test")
    count = 1200
    today = datetime.now(UTC).date().isoformat()
    statement = tmp_path / "year.csv"
    statement.write_bytes(
        statement_csv(*[(today, f"-{n % 90 + 1}.00", "China Merchants Bank", f"Fee {n}") for n in range(count)])
    )

    log_in(page, "clerk@ops.test")
    page.goto("/billing/finance/reconciliation/upload/")
    page.set_input_files("#id_file", str(statement))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url(re.compile(r"/billing/finance/reconciliation/statements/[0-9a-f-]+/$"))
    expect(page.locator("#messages")).to_contain_text(
        f"year.csv: {count} lines are being imported; this page follows the progress."
    )
    expect(page.locator("html")).to_have_attribute("data-live", "connected")
    page.evaluate("window.notReloaded = true")

    # The bar follows the worker: it is matching, part of the way.
    expect(page.locator("#import-progress [data-testid='progress-label']")).to_contain_text(
        re.compile(rf"Matching \d+ / {count}"), timeout=60_000
    )
    # When the import is done the page's lines arrive without a reload.
    expect(page.locator('[data-testid="statement-status"]')).to_have_text("Imported", timeout=120_000)
    expect(page.locator("#statement-lines tbody tr")).to_have_count(count)
    assert page.evaluate("window.notReloaded") is True
    assert BankStatementLine.objects.filter(status=BankLineStatus.UNMATCHED).count() == count
    assert ReconciliationException.objects.filter(kind=ExceptionKind.UNMATCHED_BANK_LINE).count() == count
