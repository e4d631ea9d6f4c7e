"""The platform operator's finance pages: billing periods with rule 7's totals and the Close button, the invoice
review (finalize, hold, release, credit notes, void) with its effects on the database and the ledger, the trial
balance, balances and journal; any operator member reads, only owners, admins and finance act, nobody else enters.

October 2026 is built through the real services (tests/billing/settlement.py): one center, Lakeside, sells H100
hours at 12.50 CNY; Blue Heron Robotics meters 8 devices × 2 h = 16 device-hours = 200.00 (a voucher of the
Provincial Compute Fund pays half: 100.00), Qingluo Biotech 4 devices × 3 h = 12 device-hours = 150.00. So for
October in CNY: Σ subtotals 350.00, Σ totals 250.00, Σ voucher claims 100.00, Σ gross 350.00, Σ fees 35.00 (10 %),
Σ payouts 315.00. The clock stands at 2026-11-03 08:00 UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import unescape

import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from accounts.actor import Actor
from accounts.errors import Forbidden
from accounts.models import AuditEvent, Organization, OrganizationKind, Role
from billing.models import (
    AccountRole,
    BillingPeriod,
    CreditNote,
    Invoice,
    InvoiceStatus,
    JournalEntry,
    JournalLine,
    LedgerAccount,
    PeriodStatus,
    Statement,
    UsageRecord,
)
from billing.selectors.finance import (
    finance_balances,
    finance_invoice_list,
    finance_journal,
    finance_period,
    finance_periods,
    period_invoices,
)
from billing.services.invoices import invoice_finalize
from marketplace.models import Booking, Offering
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.billing.settlement import NOV, OCT, balance, book, close, invoice_of, market, meter
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import OrganizationFactory, member_of

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
CLOSED_AT = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # tests.billing.settlement.close: the day after the month


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def operator():
    return OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")


@pytest.fixture
def clerk(operator):
    return member_of(operator, Role.FINANCE, email="clerk@ops.test")


@pytest.fixture
def viewer(operator):
    return member_of(operator, Role.VIEWER, email="viewer@ops.test")


@dataclass
class October:
    center: Organization
    offering: Offering
    heron: Organization
    qingluo: Organization
    sponsor: Organization
    heron_booking: Booking
    qingluo_booking: Booking


@pytest.fixture
def october() -> October:
    center, offering, heron = market(fraction="0")
    qingluo = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    sponsor = OrganizationFactory(kind=OrganizationKind.SPONSOR, name="Provincial Compute Fund")
    grant(heron, amount="1000.00", of=program(sponsor_actor(sponsor), rate="0.50"))
    heron_booking = book(offering, heron, "2026-10-05 10:00", "2026-10-05 14:00", 8)
    meter(heron_booking, "2026-10-05 10:00", "2026-10-05 12:00", 8)  # 16 dh × 12.50 = 200.00
    qingluo_booking = book(offering, qingluo, "2026-10-10 00:00", "2026-10-10 03:00", 4)
    meter(qingluo_booking, "2026-10-10 00:00", "2026-10-10 03:00", 4)  # 12 dh × 12.50 = 150.00
    return October(center, offering, heron, qingluo, sponsor, heron_booking, qingluo_booking)


@pytest.fixture
def closed(october) -> October:
    close(OCT)
    return october


def visible(html: str) -> str:
    """Text as a person reads it: tags stripped, whitespace collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def inner(html: str, tag: str, attribute: str) -> str:
    """The visible text of the first `<tag …attribute…>` element (one whose tag does not nest in itself)."""
    match = re.search(rf"<{tag}\b[^>]*{re.escape(attribute)}[^>]*>(.*?)</{tag}>", html, re.S)
    assert match is not None, f"no <{tag} {attribute}> in the page"
    return visible(match.group(1))


def finalized(invoice: Invoice) -> Invoice:
    return invoice_finalize(invoice_id=invoice.pk, now=NOW)


def line_of(invoice: Invoice):
    return invoice.lines.get()


# --- billing periods ----------------------------------------------------------------------------------------------


def test_the_periods_page_shows_each_month_with_its_documents_and_rule_7_totals(closed, viewer, operator):
    response = browser_as(viewer, operator).get("/billing/finance/")

    assert response.status_code == 200
    html = response.content.decode()
    # Newest first: November (the current month), then October; nothing before the first booking's month.
    assert re.findall(r'<tbody data-period="([\d-]+)"', html) == ["2026-11", "2026-10"]
    october = inner(html, "tbody", 'data-period="2026-10"')
    cutoff = BillingPeriod.objects.get(start=OCT).usage_cutoff
    assert october == (
        f"2026-10 Closed 2026-11-02 00:00 · test usage cutoff {cutoff:%Y-%m-%d %H:%M:%S} 2 1 1 "
        "CNY 350.00 250.00 100.00 350.00 35.00 315.00 ✓ reconciles"
    )
    november = inner(html, "tbody", 'data-period="2026-11"')
    assert november == (
        "2026-11 Open — 0 0 0 — 2026-11 has not ended yet: it can be closed from 2026-12-01 00:00 (UTC)."
    )
    assert 'data-action="close"' not in html  # a viewer reads and never sees a button
    assert 'data-live-reload="period.closing period.closed"' in html
    assert '<script src="/static/js/live.js" defer>' in html


def test_a_month_without_a_stored_period_is_listed_open_with_its_close_button(october, clerk, operator):
    response = browser_as(clerk, operator).get("/billing/finance/")

    html = response.content.decode()
    october_row = inner(html, "tbody", 'data-period="2026-10"')
    assert october_row == "2026-10 Open — 0 0 0 — Close 2026-10"
    assert 'action="/billing/finance/periods/2026-10/close/"' in html
    assert 'hx-post="/billing/finance/periods/2026-10/close/"' in html
    assert "Close 2026-11" not in html


def test_the_close_button_queues_the_close_shows_closing_and_the_task_closes_the_month(
    october, clerk, operator, django_capture_on_commit_callbacks
):
    browser = browser_as(clerk, operator)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = browser.post("/billing/finance/periods/2026-10/close/", {"region": "periods"})

    # Queued, not run: the period is still open and nothing is issued, but the page already says "closing…".
    assert response.status_code == 302
    assert response["Location"] == "/billing/finance/"
    assert len(queued) == 1
    assert BillingPeriod.objects.get(start=OCT).status == PeriodStatus.OPEN
    assert Invoice.objects.count() == 0
    page = browser.get("/billing/finance/")
    october_row = inner(page.content.decode(), "tbody", 'data-period="2026-10"')
    assert october_row == "2026-10 Closing… — 0 0 0 — Requested by clerk@ops.test; waiting for the worker."
    assert "Closing 2026-10: its invoices, statements and voucher claims are being issued." in text_of(page)
    event = AuditEvent.objects.get(action="period.close_requested")
    assert (event.organization, event.actor_label, event.after) == (operator, "clerk@ops.test", {"period": "2026-10"})

    # A second click while it is queued queues nothing more.
    with django_capture_on_commit_callbacks(execute=False) as again:
        second = browser.post("/billing/finance/periods/2026-10/close/", {"region": "periods"}, follow=True)
    assert again == []
    assert "2026-10 is already being closed." in text_of(second)

    # The task runs (in-process here): the month closes, and the page shows it closed with its totals.
    with django_capture_on_commit_callbacks(execute=True):
        queued[0]()
    period = BillingPeriod.objects.get(start=OCT)
    assert (period.status, period.closed_by) == (PeriodStatus.CLOSED, "clerk@ops.test")
    assert Invoice.objects.filter(period=period).count() == 2
    october_row = inner(browser.get("/billing/finance/").content.decode(), "tbody", 'data-period="2026-10"')
    cutoff = period.usage_cutoff
    assert october_row == (
        f"2026-10 Closed {NOW:%Y-%m-%d %H:%M} · clerk@ops.test usage cutoff {cutoff:%Y-%m-%d %H:%M:%S} 2 1 1 "
        "CNY 350.00 250.00 100.00 350.00 35.00 315.00 ✓ reconciles"
    )


def test_the_close_button_answers_htmx_with_the_region_and_the_task_runs_on_commit(
    october, clerk, operator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = browser_as(clerk, operator).post(
            "/billing/finance/periods/2026-10/close/", {"region": "periods"}, HTTP_HX_REQUEST="true"
        )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert "Closing 2026-10: its invoices, statements and voucher claims are being issued." in text_of(response)
    # The region was read before the task ran (on commit): it shows "closing…"; the live event reloads it.
    assert inner(html, "tbody", 'data-period="2026-10"').startswith("2026-10 Closing…")
    assert BillingPeriod.objects.get(start=OCT).status == PeriodStatus.CLOSED
    assert Invoice.objects.filter(period__start=OCT).count() == 2


def test_a_close_already_running_is_not_queued_again_unless_its_task_died(
    october, clerk, operator, django_capture_on_commit_callbacks
):
    # The worker started closing October a minute ago: the period is "closing" in the database, with the cutoff it
    # took (on the database's clock, after the usage was received).
    cutoff = UsageRecord.objects.aggregate(last=Max("received_at"))["last"]
    period = BillingPeriod.objects.create(
        start=OCT,
        end=NOV,
        status=PeriodStatus.CLOSING,
        usage_cutoff=cutoff,
        closing_started_at=NOW - timedelta(minutes=1),
    )
    browser = browser_as(clerk, operator)

    running = browser.get("/billing/finance/").content.decode()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        again = browser.post("/billing/finance/periods/2026-10/close/", {"region": "periods"}, follow=True)

    assert (
        inner(running, "tbody", 'data-period="2026-10"')
        == f"2026-10 Closing… — usage cutoff {cutoff:%Y-%m-%d %H:%M:%S} 0 0 0 —"
    )
    assert queued == []
    assert "2026-10 is already being closed." in text_of(again)

    # Closing for longer than the task may run: it died, and the button offers to finish the close.
    BillingPeriod.objects.filter(pk=period.pk).update(closing_started_at=NOW - timedelta(hours=1))
    stale = browser.get("/billing/finance/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        finished = browser.post("/billing/finance/periods/2026-10/close/", {"region": "periods"})

    assert inner(stale, "tbody", 'data-period="2026-10"').endswith("Close 2026-10 again")
    assert finished.status_code == 302
    period.refresh_from_db()
    assert (period.status, period.usage_cutoff) == (PeriodStatus.CLOSED, cutoff)  # the first cutoff is kept
    assert Invoice.objects.filter(period=period).count() == 2


def test_the_close_button_on_a_period_page_answers_into_that_page(
    october, clerk, operator, django_capture_on_commit_callbacks
):
    browser = browser_as(clerk, operator)

    page = browser.get("/billing/finance/periods/2026-10/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        htmx = browser.post("/billing/finance/periods/2026-10/close/", {"region": "period"}, HTTP_HX_REQUEST="true")
    plain = browser.post("/billing/finance/periods/2026-10/close/", {"region": "period"})

    assert 'hx-target="#period-body"' in page
    assert '<input type="hidden" name="region" value="period">' in page
    assert 'data-live-reload="period.closing period.closed"' in page
    assert "<html" not in htmx.content.decode()
    assert 'id="period-status"' in htmx.content.decode()
    assert "Closing 2026-10: its invoices, statements and voucher claims are being issued." in text_of(htmx)
    assert plain.status_code == 302
    assert plain["Location"] == "/billing/finance/periods/2026-10/"
    closed = browser.get(plain["Location"])
    assert "2026-10 is already closed." in text_of(closed)
    assert inner(closed.content.decode(), "span", "data-period-status") == "Closed"


def test_the_period_region_reloads_as_a_partial(closed, viewer, operator):
    browser = browser_as(viewer, operator)

    periods = browser.get("/billing/finance/", HTTP_HX_REQUEST="true")
    period = browser.get("/billing/finance/periods/2026-10/", HTTP_HX_REQUEST="true")

    assert "<html" not in periods.content.decode()
    assert '<tbody data-period="2026-10">' in periods.content.decode()
    assert "<html" not in period.content.decode()
    assert 'id="period-status"' in period.content.decode()


def test_a_month_that_has_not_ended_is_refused_before_anything_is_queued(
    closed, clerk, operator, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = browser_as(clerk, operator).post("/billing/finance/periods/2026-11/close/", {"region": "periods"})

    assert response.status_code == 422
    assert "2026-11 has not ended yet: it can be closed from 2026-12-01 00:00 (UTC)." in inner(
        response.content.decode(), "div", 'data-testid="notice"'
    )
    assert queued == []
    assert not BillingPeriod.objects.filter(start=NOV).exclude(status=PeriodStatus.OPEN).exists()
    assert not AuditEvent.objects.filter(action="period.close_requested").exists()


def test_months_close_in_order_and_the_page_says_which_one_first(
    october, clerk, operator, django_capture_on_commit_callbacks
):
    _center, offering, _consumer = october.center, october.offering, october.heron
    earlier = book(offering, october.qingluo, "2026-09-28 00:00", "2026-09-28 02:00", 2)
    meter(earlier, "2026-09-28 00:00", "2026-09-28 02:00", 2)
    browser = browser_as(clerk, operator)

    page = browser.get("/billing/finance/").content.decode()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        refused = browser.post("/billing/finance/periods/2026-10/close/", {"region": "periods"}, HTTP_HX_REQUEST="true")

    assert inner(page, "tbody", 'data-period="2026-10"').endswith("Close 2026-09 first: periods close in order.")
    assert inner(page, "tbody", 'data-period="2026-09"').endswith("Close 2026-09")
    # htmx swaps only a 200: the refusal replaces the region, in an alert.
    assert refused.status_code == 200
    assert (
        inner(refused.content.decode(), "div", 'data-testid="notice"') == "Close 2026-09 first: periods close in order."
    )
    assert queued == []
    assert not BillingPeriod.objects.filter(start=OCT, status=PeriodStatus.CLOSED).exists()


def test_the_period_page_lists_its_invoices_statements_and_voucher_claims(closed, viewer, operator):
    response = browser_as(viewer, operator).get("/billing/finance/periods/2026-10/")

    assert response.status_code == 200
    html = response.content.decode()
    heron, qingluo = invoice_of(closed.heron, OCT), invoice_of(closed.qingluo, OCT)
    assert (
        inner(html, "tr", f'data-invoice-id="{heron.pk}"') == "draft Blue Heron Robotics Draft CNY 200.00 100.00 100.00"
    )
    assert inner(html, "tr", f'data-invoice-id="{qingluo.pk}"') == "draft Qingluo Biotech Draft CNY 150.00 0.00 150.00"
    statement = Statement.objects.get(period__start=OCT)
    assert inner(html, "tr", f'data-statement-id="{statement.pk}"') == (
        "Lakeside AI Computing Center CNY 350.00 0.1 35.00 315.00 0.00 0.00 315.00 Issued"
    )
    assert inner(html, "section", 'id="period-claims"') == "Voucher claims Sponsor Currency Amount Status " + (
        "Provincial Compute Fund CNY 100.00 Open"
    )
    assert inner(html, "dd", 'data-testid="counts"') == (
        "2 invoices, 1 statements, 1 voucher claims, 0 credit notes issued in the month"
    )
    assert inner(html, "tr", 'data-currency="CNY"') == "CNY 350.00 250.00 100.00 350.00 35.00 315.00 ✓ reconciles"


@pytest.mark.parametrize("label", ["2026-12", "2026-09", "2026-13", "october"])
def test_a_month_outside_the_books_is_not_found(closed, viewer, operator, label):
    assert browser_as(viewer, operator).get(f"/billing/finance/periods/{label}/").status_code == 404


# --- who may enter and act ----------------------------------------------------------------------------------------

FINANCE_PAGES = [
    "/billing/finance/",
    "/billing/finance/periods/2026-10/",
    "/billing/finance/invoices/",
    "/billing/finance/ledger/",
    "/billing/finance/ledger.csv",
    "/billing/finance/balances/",
    "/billing/finance/journal/",
]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_every_member_of_the_operator_reads_the_finance_pages(closed, operator, role):
    browser = browser_as(member_of(operator, role), operator)
    invoice = invoice_of(closed.heron, OCT)

    for url in [*FINANCE_PAGES, f"/billing/finance/invoices/{invoice.pk}/"]:
        assert browser.get(url).status_code == 200, url


@pytest.mark.parametrize(
    "kind",
    [OrganizationKind.ENTERPRISE, OrganizationKind.CENTER, OrganizationKind.SPONSOR, OrganizationKind.UNIVERSITY],
)
def test_nobody_outside_the_operator_enters_even_as_owner(closed, client, kind):
    outsider = OrganizationFactory(kind=kind)
    browser = browser_as(member_of(outsider, Role.OWNER), outsider)
    invoice = invoice_of(closed.heron, OCT)

    for url in [*FINANCE_PAGES, f"/billing/finance/invoices/{invoice.pk}/"]:
        assert browser.get(url).status_code == 403, url
        assert client.get(url).status_code == 302, url  # signed out: the login page
    assert browser.post(f"/billing/finance/invoices/{invoice.pk}/finalize/").status_code == 403
    assert browser.post("/billing/finance/periods/2026-11/close/").status_code == 403
    assert row(invoice)["status"] == InvoiceStatus.DRAFT


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_operator_members_without_a_finance_role_read_but_cannot_act(
    october, operator, role, django_capture_on_commit_callbacks
):
    browser = browser_as(member_of(operator, role), operator)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert browser.post("/billing/finance/periods/2026-10/close/").status_code == 403
    close(OCT)
    heron = invoice_of(october.heron, OCT)
    qingluo = finalized(invoice_of(october.qingluo, OCT))
    before = (row(heron), row(qingluo), CreditNote.objects.count(), JournalEntry.objects.count())
    line = line_of(qingluo)

    assert browser.post(f"/billing/finance/invoices/{heron.pk}/finalize/").status_code == 403
    assert browser.post(f"/billing/finance/invoices/{heron.pk}/hold/", {"hold-reason": "check"}).status_code == 403
    assert browser.post(f"/billing/finance/invoices/{heron.pk}/release/").status_code == 403
    credit = {f"credit-line_{line.pk}": "10.00", "credit-reason": "goodwill"}
    assert browser.post(f"/billing/finance/invoices/{qingluo.pk}/credit-note/", credit).status_code == 403
    assert browser.post(f"/billing/finance/invoices/{qingluo.pk}/void/", {"void-reason": "wrong"}).status_code == 403
    assert queued == []
    assert (row(heron), row(qingluo), CreditNote.objects.count(), JournalEntry.objects.count()) == before
    page = browser.get(f"/billing/finance/invoices/{qingluo.pk}/").content.decode()
    assert "<form" not in page.split('id="invoice-title"')[1].split("</main>")[0]


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_of_the_operator_act_like_finance(closed, operator, role):
    invoice = invoice_of(closed.qingluo, OCT)

    response = browser_as(member_of(operator, role), operator).post(f"/billing/finance/invoices/{invoice.pk}/finalize/")

    assert response.status_code == 302
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.FINALIZED


def test_an_unknown_invoice_is_not_found(closed, clerk, operator):
    browser = browser_as(clerk, operator)

    assert browser.get("/billing/finance/invoices/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert browser.get("/billing/finance/invoices/not-an-id/").status_code == 404
    assert browser.post("/billing/finance/invoices/not-an-id/finalize/").status_code == 404


# --- invoice review -----------------------------------------------------------------------------------------------


def test_the_invoice_list_filters_by_period_status_consumer_and_hold(closed, clerk, operator):
    heron, qingluo = invoice_of(closed.heron, OCT), invoice_of(closed.qingluo, OCT)
    finalized(qingluo)
    Invoice.objects.filter(pk=heron.pk).update(held=True, hold_reason="usage dispute")
    browser = browser_as(clerk, operator)

    def listed(query: str) -> list[str]:
        return re.findall(
            r'<tr data-invoice-id="([0-9a-f-]+)"', browser.get(f"/billing/finance/invoices/{query}").content.decode()
        )

    assert set(listed("")) == {str(heron.pk), str(qingluo.pk)}
    assert set(listed("?period=2026-10")) == {str(heron.pk), str(qingluo.pk)}
    assert listed("?status=finalized") == [str(qingluo.pk)]
    assert listed(f"?consumer={closed.heron.pk}") == [str(heron.pk)]
    assert listed("?held=yes") == [str(heron.pk)]
    assert listed("?held=no") == [str(qingluo.pk)]
    assert listed("?status=draft&held=no") == []
    table = browser.get("/billing/finance/invoices/").content.decode()
    assert inner(table, "tr", f'data-invoice-id="{qingluo.pk}"') == (
        "INV-2026-10-000001 2026-10 Qingluo Biotech Finalized — CNY 150.00 0.00 150.00"
    )
    finalize_after = heron.finalize_after
    assert inner(table, "tr", f'data-invoice-id="{heron.pk}"') == (
        f"draft 2026-10 Blue Heron Robotics Draft Held {finalize_after:%Y-%m-%d %H:%M} CNY 200.00 100.00 100.00"
    )


def test_an_unknown_filter_value_is_a_clear_error(closed, clerk, operator):
    response = browser_as(clerk, operator).get("/billing/finance/invoices/?status=lost&period=1999-01")

    assert response.status_code == 400
    text = text_of(response)
    assert "Status: Select a valid choice. lost is not one of the available choices." in text
    assert "Period: Select a valid choice. 1999-01 is not one of the available choices." in text


def test_the_invoice_page_shows_lines_vouchers_and_ledger_entries(closed, clerk, operator):
    invoice = invoice_of(closed.heron, OCT)
    line = line_of(invoice)

    response = browser_as(clerk, operator).get(f"/billing/finance/invoices/{invoice.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert inner(html, "dl", 'id="invoice-amounts"') == (
        "Subtotal 200.00 CNY Vouchers Compute voucher 2026 · Provincial Compute Fund − 100.00 CNY Total 100.00 CNY "
        f"VAT included (rate {settings.INVOICE_VAT_RATE.normalize():f}) {invoice.vat_amount:.2f} CNY "
        "Credited so far 0.00 CNY Still creditable 100.00 CNY"
    )
    assert inner(html, "tr", f'data-line-id="{line.pk}"') == (
        f"{line.pk} Usage {line.description} Lakeside AI Computing Center · "
        f"{str(closed.heron_booking.pk)[:8]} 16 12.50 200.00 eligible 0.00 200.00"
    )
    assert inner(html, "article", f'data-entry-key="invoice:{invoice.pk}"').startswith("Invoice for 2026-10 (CNY)")
    assert f'data-entry-key="redemption:{invoice.pk}"' in html
    # A draft: finalize or hold; no credit note or void before it is finalized.
    assert 'data-action="finalize"' in html
    assert 'data-action="hold"' in html
    assert 'id="credit-note-form"' not in html
    assert 'id="void-form"' not in html


def test_finalizing_now_numbers_the_draft_and_a_second_post_does_nothing(closed, clerk, operator):
    invoice = invoice_of(closed.qingluo, OCT)
    browser = browser_as(clerk, operator)
    form = {"submission": "one-form"}

    response = browser.post(f"/billing/finance/invoices/{invoice.pk}/finalize/", form, follow=True)
    again = browser.post(f"/billing/finance/invoices/{invoice.pk}/finalize/", form, follow=True)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.number, invoice.finalized_at) == (
        InvoiceStatus.FINALIZED,
        "INV-2026-10-000001",
        NOW,
    )
    assert invoice.due_at == NOW + timedelta(days=settings.INVOICE_PAYMENT_TERMS_DAYS)
    assert "Invoice INV-2026-10-000001 is finalized and sent to the consumer." in text_of(response)
    assert "This form was already submitted: nothing was done a second time." in text_of(again)
    assert AuditEvent.objects.filter(action="invoice.finalized").count() == 1


def test_finalizing_an_invoice_that_is_no_longer_a_draft_is_refused(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.qingluo, OCT))

    response = browser_as(clerk, operator).post(f"/billing/finance/invoices/{invoice.pk}/finalize/")

    assert response.status_code == 409
    assert "Only a draft invoice can be finalized; this one is Finalized." in text_of(response)
    assert row(invoice)["number"] == "INV-2026-10-000001"


def test_holding_needs_a_reason_and_keeps_the_draft_until_it_is_released(closed, clerk, operator):
    invoice = invoice_of(closed.heron, OCT)
    browser = browser_as(clerk, operator)

    refused = browser.post(f"/billing/finance/invoices/{invoice.pk}/hold/", {"hold-reason": "  "})
    assert refused.status_code == 400
    assert "This field is required." in inner(refused.content.decode(), "form", 'id="hold-form"')
    assert row(invoice)["held"] is False

    held = browser.post(
        f"/billing/finance/invoices/{invoice.pk}/hold/", {"hold-reason": "Usage disputed by the center"}, follow=True
    )
    assert (row(invoice)["held"], row(invoice)["hold_reason"]) == (True, "Usage disputed by the center")
    assert "The invoice is held: it is not finalized until you release it." in text_of(held)
    assert inner(held.content.decode(), "dd", 'data-testid="hold-reason"') == "Usage disputed by the center"
    assert 'data-action="release"' in held.content.decode()

    released = browser.post(f"/billing/finance/invoices/{invoice.pk}/release/", follow=True)
    assert row(invoice)["held"] is False
    assert row(invoice)["status"] == InvoiceStatus.DRAFT
    assert "The invoice is released: it is finalized when its review window ends." in text_of(released)
    assert sorted(AuditEvent.objects.filter(action__startswith="invoice.").values_list("action", flat=True)) == [
        "invoice.held",
        "invoice.released",
    ]


def test_a_credit_note_credits_the_consumer_and_takes_the_amount_back_from_the_center(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.qingluo, OCT))
    line = line_of(invoice)
    browser = browser_as(clerk, operator)

    page = browser.get(f"/billing/finance/invoices/{invoice.pk}/").content.decode()
    response = browser.post(
        f"/billing/finance/invoices/{invoice.pk}/credit-note/",
        {f"credit-line_{line.pk}": "40.00", "credit-reason": "Two hours lost to a node failure", "submission": "s1"},
        follow=True,
    )

    assert 'id="credit-note-form"' in page
    assert f'name="credit-line_{line.pk}"' in page
    note = CreditNote.objects.get()
    assert (note.invoice, note.number, note.total, note.period.label, note.reason, note.issued_by) == (
        invoice,
        "CN-2026-11-000001",
        D("40.00"),
        "2026-11",
        "Two hours lost to a node failure",
        "clerk@ops.test",
    )
    assert list(note.lines.values_list("invoice_line", "center", "amount")) == [(line.pk, closed.center.pk, D("40.00"))]
    # The ledger: the consumer owes 40.00 less, and so is the center owed.
    entry = JournalEntry.objects.get(key=f"credit_note:{note.pk}")
    assert sorted((line.account.role, line.amount) for line in entry.lines.select_related("account")) == [
        (AccountRole.CENTER_PAYABLE, D("40.0000")),
        (AccountRole.RECEIVABLE, D("-40.0000")),
    ]
    assert balance(closed.qingluo, AccountRole.RECEIVABLE) == D("110.00")
    assert balance(closed.center, AccountRole.CENTER_PAYABLE) == D("-275.00")  # 315.00 − 40.00, a credit balance
    html = response.content.decode()
    assert "Credit note CN-2026-11-000001 for 40.00 CNY is issued." in text_of(response)
    assert inner(html, "tr", 'data-credit-note="CN-2026-11-000001"') == (
        f"CN-2026-11-000001 {NOW:%Y-%m-%d %H:%M} clerk@ops.test line {line.pk}: 40.00 40.00 CNY "
        "Two hours lost to a node failure"
    )
    assert inner(html, "dd", 'data-testid="creditable"') == "110.00 CNY"
    assert inner(html, "td", 'data-testid="line-room"') == "110.00"


def test_a_double_submitted_credit_note_form_creates_one_note(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.qingluo, OCT))
    line = line_of(invoice)
    browser = browser_as(clerk, operator)
    page = browser.get(f"/billing/finance/invoices/{invoice.pk}/").content.decode()
    token = re.search(r'id="credit-note-form"[^>]*>.*?name="submission" value="([^"]+)"', page, re.S).group(1)
    form = {f"credit-line_{line.pk}": "25.00", "credit-reason": "Goodwill", "submission": token}

    first = browser.post(f"/billing/finance/invoices/{invoice.pk}/credit-note/", form)
    second = browser.post(f"/billing/finance/invoices/{invoice.pk}/credit-note/", form, follow=True)

    assert first.status_code == 302
    assert CreditNote.objects.count() == 1
    assert JournalEntry.objects.filter(kind="credit_note").count() == 1
    assert balance(closed.qingluo, AccountRole.RECEIVABLE) == D("125.00")
    assert "This form was already submitted: nothing was done a second time." in text_of(second)


@pytest.mark.parametrize(
    ("amount", "error"),
    [
        ("150.01", "At most 150.00 CNY can still be credited on this line."),
        ("12.345", "Credit whole CNY minor units (12.35)."),
        ("-5", "Ensure this value is greater than or equal to 0."),
        ("ten", "Enter a number."),
    ],
)
def test_a_credit_note_refused_on_a_line_says_so_on_that_line(closed, clerk, operator, amount, error):
    invoice = finalized(invoice_of(closed.qingluo, OCT))
    line = line_of(invoice)

    response = browser_as(clerk, operator).post(
        f"/billing/finance/invoices/{invoice.pk}/credit-note/",
        {f"credit-line_{line.pk}": amount, "credit-reason": "Correction", "submission": "s1"},
    )

    assert response.status_code == 400
    assert inner(response.content.decode(), "tr", f'data-line-id="{line.pk}"').endswith(error)
    assert CreditNote.objects.count() == 0
    assert JournalEntry.objects.filter(kind="credit_note").count() == 0


def test_a_credit_note_needs_an_amount_and_a_reason_and_a_corrected_form_goes_through(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.qingluo, OCT))
    line = line_of(invoice)
    browser = browser_as(clerk, operator)
    url = f"/billing/finance/invoices/{invoice.pk}/credit-note/"

    empty = browser.post(url, {f"credit-line_{line.pk}": "", "credit-reason": "Correction", "submission": "s1"})
    no_reason = browser.post(url, {f"credit-line_{line.pk}": "10.00", "credit-reason": "", "submission": "s1"})
    corrected = browser.post(
        url, {f"credit-line_{line.pk}": "10.00", "credit-reason": "Correction", "submission": "s1"}
    )

    assert empty.status_code == 400
    assert inner(empty.content.decode(), "div", 'data-testid="form-errors"') == "Enter an amount on at least one line."
    assert no_reason.status_code == 400
    assert "This field is required." in inner(no_reason.content.decode(), "section", 'id="invoice-lines"')
    assert corrected.status_code == 302  # the refused submissions gave the form's token back
    assert list(CreditNote.objects.values_list("total", flat=True)) == [D("10.00")]


def test_a_credit_note_cannot_exceed_what_the_consumer_owes_after_the_voucher(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.heron, OCT))  # subtotal 200.00, voucher 100.00, total 100.00
    line = line_of(invoice)

    response = browser_as(clerk, operator).post(
        f"/billing/finance/invoices/{invoice.pk}/credit-note/",
        {f"credit-line_{line.pk}": "150.00", "credit-reason": "Correction", "submission": "s1"},
    )

    assert response.status_code == 400
    assert inner(response.content.decode(), "div", 'data-testid="form-errors"') == (
        "At most 100.00 CNY of this invoice can still be credited; these lines add up to 150.00."
    )
    assert CreditNote.objects.count() == 0


def test_voiding_credits_what_the_invoice_still_owes_and_needs_a_reason(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.qingluo, OCT))
    browser = browser_as(clerk, operator)
    url = f"/billing/finance/invoices/{invoice.pk}/void/"

    refused = browser.post(url, {"void-reason": ""})
    assert refused.status_code == 400
    assert "This field is required." in inner(refused.content.decode(), "form", 'id="void-form"')
    assert row(invoice)["status"] == InvoiceStatus.FINALIZED

    response = browser.post(url, {"void-reason": "Issued to the wrong organization", "submission": "v1"}, follow=True)
    again = browser.post(url, {"void-reason": "Issued to the wrong organization", "submission": "v1"}, follow=True)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.voided_at) == (InvoiceStatus.VOID, NOW)
    note = CreditNote.objects.get()
    assert (note.total, note.reason) == (D("150.00"), "Issued to the wrong organization")
    assert balance(closed.qingluo, AccountRole.RECEIVABLE) == D("0")
    assert "Invoice INV-2026-10-000001 is void; a credit note cancels what it still owed." in text_of(response)
    assert "This form was already submitted: nothing was done a second time." in text_of(again)
    assert CreditNote.objects.count() == 1


def test_an_invoice_a_voucher_paid_part_of_cannot_be_voided(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.heron, OCT))
    browser = browser_as(clerk, operator)

    page = browser.get(f"/billing/finance/invoices/{invoice.pk}/")
    response = browser.post(f"/billing/finance/invoices/{invoice.pk}/void/", {"void-reason": "Wrong"})

    assert 'id="void-form"' not in page.content.decode()
    assert "A voucher paid part of this invoice, so it cannot be voided: correct it with a credit note." in text_of(
        page
    )
    assert response.status_code == 409
    assert "A voucher paid part of this invoice; correct it with a credit note instead of voiding it." in text_of(
        response
    )
    assert row(invoice)["status"] == InvoiceStatus.FINALIZED
    assert CreditNote.objects.count() == 0


# --- the ledger ---------------------------------------------------------------------------------------------------


def test_the_trial_balance_lists_every_account_with_totals_and_says_it_balances(closed, viewer, operator):
    response = browser_as(viewer, operator).get("/billing/finance/ledger/")

    html = response.content.decode()
    assert response.status_code == 200
    rows = [
        inner(html, "tr", f'data-account="{account.pk}"')
        for account in LedgerAccount.objects.order_by("organization__name", "role")
    ]
    assert sorted(rows) == sorted(
        [
            "Blue Heron Robotics Receivable from consumer 200.00 100.00 100.00",
            "Qingluo Biotech Receivable from consumer 150.00 0.00 150.00",
            "Lakeside AI Computing Center Payable to center 35.00 350.00 -315.00",
            "Provincial Compute Fund Voucher receivable from sponsor 100.00 0.00 100.00",
            "Platform Platform fee revenue 0.00 35.00 -35.00",
        ]
    )
    assert inner(html, "tr", 'data-testid="totals"') == "Total 485.00 485.00 0.00"
    assert inner(html, "span", 'data-testid="balanced"') == "balanced"


def test_the_trial_balance_as_of_a_day_counts_the_entries_posted_until_its_end(closed, viewer, operator):
    browser = browser_as(viewer, operator)

    before = browser.get("/billing/finance/ledger/?until=2026-11-01")
    on_the_day = browser.get("/billing/finance/ledger/?until=2026-11-02")
    malformed = browser.get("/billing/finance/ledger/?until=2026-13-40")

    assert "Nothing has been posted to the ledger yet." in text_of(before)
    assert inner(on_the_day.content.decode(), "tr", 'data-testid="totals"') == "Total 485.00 485.00 0.00"
    assert "Entries posted until the end of 2026-11-02 (UTC)." in text_of(on_the_day)
    assert malformed.status_code == 400
    assert "Enter a valid date." in text_of(malformed)


def test_the_trial_balance_says_so_when_the_books_do_not_balance(closed, viewer, operator):
    # PostgreSQL refuses an unbalanced entry at commit; inside the test's transaction, which never commits, one
    # can be written to see what the page would show if the books were ever off.
    # can be written to see what the page would show if the books were ever off (and rolled back before the
    # test's teardown checks the deferred constraints).
    with transaction.atomic():
        entry = JournalEntry.objects.create(key="test:off", kind="test", memo="off", posted_at=NOW)
        cash = LedgerAccount.objects.create(organization=None, role=AccountRole.CASH, currency="CNY")
        JournalLine.objects.create(entry=entry, account=cash, currency="CNY", amount=D("5.00"))
        response = browser_as(viewer, operator).get("/billing/finance/ledger/")
        transaction.set_rollback(True)

    assert inner(response.content.decode(), "span", 'data-testid="balanced"') == "NOT balanced: off by 5.00 CNY"
    assert inner(response.content.decode(), "tr", 'data-testid="totals"') == "Total 490.00 485.00 5.00"


def test_the_trial_balance_downloads_as_csv(closed, viewer, operator):
    response = browser_as(viewer, operator).get("/billing/finance/ledger.csv?until=2026-11-02")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="trial-balance-2026-11-02.csv"'
    assert response["Cache-Control"] == "private, no-store"
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "currency,organization,role,role_label,debits,credits,balance"
    assert sorted(lines[1:-1]) == sorted(
        [
            "CNY,Blue Heron Robotics,receivable,Receivable from consumer,200.00,100.00,100.00",
            "CNY,Lakeside AI Computing Center,center_payable,Payable to center,35.00,350.00,-315.00",
            "CNY,Platform,fee_revenue,Platform fee revenue,0.00,35.00,-35.00",
            "CNY,Provincial Compute Fund,voucher_receivable,Voucher receivable from sponsor,100.00,0.00,100.00",
            "CNY,Qingluo Biotech,receivable,Receivable from consumer,150.00,0.00,150.00",
        ]
    )
    assert lines[-1] == "CNY,Total,,balanced,485.00,485.00,0.00"


def test_a_formula_in_an_organization_name_is_defused_in_the_csv(closed, viewer, operator):
    Organization.objects.filter(pk=closed.qingluo.pk).update(name="=HYPERLINK(1)")

    response = browser_as(viewer, operator).get("/billing/finance/ledger.csv")

    assert "CNY,'=HYPERLINK(1),receivable" in response.content.decode("utf-8-sig")


def test_balances_show_each_organization_and_currency_with_what_it_owes_or_is_owed(closed, clerk, operator):
    invoice = finalized(invoice_of(closed.qingluo, OCT))
    line = line_of(invoice)
    browser = browser_as(clerk, operator)
    browser.post(
        f"/billing/finance/invoices/{invoice.pk}/credit-note/",
        {f"credit-line_{line.pk}": "40.00", "credit-reason": "Correction"},
    )

    html = browser.get("/billing/finance/balances/").content.decode()

    assert re.findall(r'<tr data-organization="([^"]+)" data-currency="CNY">', html) == [
        closed.heron.slug,
        closed.center.slug,
        closed.sponsor.slug,
        closed.qingluo.slug,
    ]
    assert inner(html, "tr", f'data-organization="{closed.heron.slug}"') == (
        "Blue Heron Robotics Enterprise CNY 100.00 0.00 0.00"
    )
    assert inner(html, "tr", f'data-organization="{closed.qingluo.slug}"') == (
        "Qingluo Biotech Enterprise CNY 110.00 0.00 0.00"
    )
    assert inner(html, "tr", f'data-organization="{closed.center.slug}"') == (
        "Lakeside AI Computing Center Computing center CNY 0.00 275.00 0.00"
    )
    assert inner(html, "tr", f'data-organization="{closed.sponsor.slug}"') == (
        "Provincial Compute Fund Sponsor CNY 0.00 0.00 100.00"
    )
    assert inner(html, "table", 'id="platform-balances"') == "Currency Fee revenue Cash and bank CNY 35.00 0.00"


def test_the_journal_lists_entries_newest_first_with_their_lines_a_page_at_a_time(closed, viewer, operator):
    browser = browser_as(viewer, operator)

    first = browser.get("/billing/finance/journal/").content.decode()

    keys = re.findall(r'data-entry-key="([^"]+)"', first)
    # The close posted four entries at one instant: two invoices, one redemption, one fee (newest id first).
    assert keys == list(JournalEntry.objects.order_by("-posted_at", "-id").values_list("key", flat=True))
    assert len(keys) == 4
    statement = Statement.objects.get()
    fee = inner(first, "article", f'data-entry-key="fee:{statement.pk}"')
    assert fee == (
        f"Platform fee on 2026-10 (CNY) · fee · 2026-10 2026-11-02 00:00:00 UTC · fee:{statement.pk} "
        "Account Currency Debit Credit Lakeside AI Computing Center · Payable to center CNY 35.00 "
        "Platform · Platform fee revenue CNY 35.00"
    )


def test_the_journal_pages_by_twenty_five(closed, viewer, operator):
    cash = LedgerAccount.objects.create(organization=None, role=AccountRole.CASH, currency="CNY")
    revenue = LedgerAccount.objects.get(organization=None, role=AccountRole.FEE_REVENUE, currency="CNY")
    for n in range(22):
        entry = JournalEntry.objects.create(key=f"test:{n}", kind="test", memo=f"entry {n}", posted_at=NOW)
        JournalLine.objects.create(entry=entry, account=cash, currency="CNY", amount=D("1.00"))
        JournalLine.objects.create(entry=entry, account=revenue, currency="CNY", amount=D("-1.00"))
    browser = browser_as(viewer, operator)

    first = browser.get("/billing/finance/journal/").content.decode()
    second = browser.get("/billing/finance/journal/?page=2").content.decode()

    assert len(re.findall(r"data-entry-key=", first)) == 25
    assert re.findall(r'data-entry-key="([^"]+)"', first)[0] == "test:21"
    assert len(re.findall(r"data-entry-key=", second)) == 1
    assert "Page 2 of 2" in visible(second)


def test_the_finance_reads_refuse_anyone_but_the_operator(closed):
    consumer = Actor.for_member(user=member_of(closed.heron, Role.OWNER), organization=closed.heron, role=Role.OWNER)
    period = BillingPeriod.objects.get(start=OCT)

    for read in (
        lambda: finance_periods(consumer, now=NOW),
        lambda: finance_period(consumer, "2026-10", now=NOW),
        lambda: finance_invoice_list(consumer),
        lambda: period_invoices(consumer, period),
        lambda: finance_balances(consumer),
        lambda: finance_journal(consumer),
    ):
        with pytest.raises(Forbidden):
            read()
