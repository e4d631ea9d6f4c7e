"""The operator's Stripe reconciliation page: the Import button queues the import task (run here in-process on
commit, over the recorded Stripe account of tests/billing/stripe_balance.py), and the page then shows the run, each
Stripe payout with its gross, fees, net, bank deposit and reconciliation state, a payout's contents and exceptions,
and the fees booked. Any operator member reads; only owners, admins and finance import; nobody else enters.

The account: Blue Heron paid its 1,000.00 CNY invoice by card (ch_a, fee 29.30); Stripe paid 970.70 out in po_1,
which arrived on the bank statement; po_2 says 500.00 but contains one 300.00 charge (fee 9.00) of no payment of
ours; po_3 failed; po_4 is in transit. The clock stands at 2026-11-21 08:00 UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from html import unescape

import psycopg
import pytest
import time_machine

from accounts.models import AuditEvent, OrganizationKind, Role
from billing import stripe_api
from billing.models import (
    BankStatement,
    BankStatementLine,
    ImportStatus,
    PaymentMethod,
    StripeBalanceTransaction,
    StripeImportRun,
    StripePayout,
)
from billing.services.payments import payment_record
from billing.services.stripe_reconcile import IMPORT_LOCK_KEY
from tests.accounts.page_helpers import browser_as, text_of
from tests.billing.payments import finance_clerk, october_invoice
from tests.billing.stripe_balance import (
    API_BASE,
    SECRET_KEY,
    RecordedStripeAccount,
    balance_transaction,
    charge,
    payout,
    record_list,
    ts,
)
from tests.factories import OrganizationFactory, member_of
from tests.worker import test_database_url as database_url

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
TXNS = "/v1/balance_transactions"
PAGE = "/billing/finance/stripe/"


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def clerk():
    return finance_clerk("clerk@ops.test")


@pytest.fixture
def operator(clerk):
    return clerk.organization


@pytest.fixture
def viewer(operator):
    return member_of(operator, Role.VIEWER, email="viewer@ops.test")


@pytest.fixture
def account(settings, monkeypatch) -> RecordedStripeAccount:
    """The platform's Stripe account as described above, and Blue Heron's card payment of ch_a."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = API_BASE
    recorded = RecordedStripeAccount()
    monkeypatch.setattr(stripe_api, "HTTP_CLIENT", recorded)

    invoice, _center, _consumer = october_invoice()
    payment_record(
        consumer=invoice.consumer,
        method=PaymentMethod.STRIPE,
        currency="CNY",
        amount=D("1000.00"),
        key="stripe_pi:pi_a",
        received_at=datetime(2026, 11, 18, 9, 0, tzinfo=UTC),
        now=datetime(2026, 11, 18, 9, 0, tzinfo=UTC),
        invoice=invoice,
        stripe_payment_intent="pi_a",
        stripe_charge="ch_a",
    )
    charge_a = balance_transaction("txn_a", amount=100_000, fee=2_930, created=ts("2026-11-18 09:00"), source="ch_a")
    charge_c = balance_transaction("txn_c", amount=30_000, fee=900, created=ts("2026-11-18 10:00"), source="ch_c")
    out_1 = balance_transaction("txn_po_1", type="payout", amount=-97_070, fee=0, created=ts("2026-11-19 00:00"))
    out_2 = balance_transaction("txn_po_2", type="payout", amount=-50_000, fee=0, created=ts("2026-11-20 00:00"))
    record_list(recorded, TXNS, [out_2, out_1, charge_c, charge_a])
    record_list(
        recorded,
        "/v1/payouts",
        [
            payout("po_4", amount=5_000, arrival_date=ts("2026-11-25 00:00"), status="in_transit"),
            payout("po_2", amount=50_000, arrival_date=ts("2026-11-21 00:00")),
            payout("po_1", amount=97_070, arrival_date=ts("2026-11-20 00:00")),
            payout(
                "po_3",
                amount=12_000,
                arrival_date=ts("2026-11-19 00:00"),
                status="failed",
                failure_message="The bank account has been closed.",
            ),
        ],
    )
    record_list(recorded, TXNS, [out_1, charge_a], query={"payout": "po_1"})
    record_list(recorded, TXNS, [out_2, charge_c], query={"payout": "po_2"})
    recorded.answer("/v1/charges/ch_c", {}, charge("ch_c", amount=30_000, payment_intent="pi_c"))
    return recorded


def visible(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def inner(html: str, tag: str, attribute: str) -> str:
    match = re.search(rf"<{tag}\b[^>]*{re.escape(attribute)}[^>]*>(.*?)</{tag}>", html, re.S)
    assert match is not None, f"no <{tag} {attribute}> in the page"
    return visible(match.group(1))


def imported(browser, django_capture_on_commit_callbacks):
    """Press Import and let the queued task run (in-process, on commit)."""
    form = browser.get(PAGE).content.decode()
    submission = re.search(r'name="submission" value="([^"]+)"', form).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(f"{PAGE}import/", {"submission": submission}, follow=True)
    return response


def test_the_import_button_queues_the_task_and_the_page_shows_what_it_imported(
    account, clerk, operator, django_capture_on_commit_callbacks
):
    browser = browser_as(clerk.user, operator)
    first = browser.get(PAGE)
    assert "Nothing has been imported from Stripe yet." in text_of(first)
    submission = re.search(r'name="submission" value="([^"]+)"', first.content.decode()).group(1)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = browser.post(f"{PAGE}import/", {"submission": submission})

    # Queued, not run: the run waits for the worker, and the page says so.
    assert (response.status_code, response["Location"]) == (302, PAGE)
    assert len(queued) == 1
    assert account.sent == []
    run = StripeImportRun.objects.get()
    assert (run.status, run.started_by, run.started_at, run.imported) == (
        ImportStatus.RUNNING,
        "clerk@ops.test",
        NOW,
        0,
    )
    event = AuditEvent.objects.get(action="stripe.import_requested")
    assert (event.organization, event.actor_label, event.after) == (
        operator,
        "clerk@ops.test",
        {"run": run.pk, "cursor": ""},
    )
    waiting = browser.get(PAGE)
    assert "The import has started; its progress shows below." in text_of(waiting)
    assert inner(waiting.content.decode(), "span", "data-stripe-progress-text") == (
        "Requested by clerk@ops.test; waiting for the worker."
    )
    # The same form sent again does nothing.
    with django_capture_on_commit_callbacks(execute=False) as again:
        repeated = browser.post(f"{PAGE}import/", {"submission": submission}, follow=True)
    assert again == []
    assert "This form was already submitted: nothing was done a second time." in text_of(repeated)

    # The worker runs it.
    with django_capture_on_commit_callbacks(execute=True):
        queued[0]()

    run.refresh_from_db()
    assert (run.status, run.imported, run.cursor) == (ImportStatus.DONE, 4, "txn_a")
    html = browser.get(PAGE).content.decode()
    assert (
        inner(html, "tr", f'data-run="{run.pk}"') == "2026-11-21 08:00 clerk@ops.test Imported 4 2026-11-21 08:00 txn_a"
    )
    assert "data-stripe-progress" not in html
    assert 'data-action="stripe-import"' in html


def test_the_page_shows_each_payout_with_its_sums_deposit_and_state_and_the_fees_booked(
    account, clerk, operator, viewer, django_capture_on_commit_callbacks
):
    imported(browser_as(clerk.user, operator), django_capture_on_commit_callbacks)
    statement = BankStatement.objects.create(
        filename="icbc-2026-11.csv", content_hash="a" * 64, uploaded_at=NOW, uploaded_by="clerk@ops.test"
    )
    line = BankStatementLine.objects.create(
        statement=statement,
        line_number=7,
        booked_on=date(2026, 11, 20),
        amount=D("970.70"),
        currency="CNY",
        bank_reference="STRIPE PO 1",
    )
    StripePayout.objects.filter(pk="po_1").update(bank_line=line)  # as the bank statement's matching links it

    response = browser_as(viewer, operator).get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<tr data-payout="(\w+)"', html) == ["po_4", "po_2", "po_1", "po_3"]
    assert inner(html, "tr", 'data-payout="po_1"') == (
        "po_1 2026-11-20 Paid CNY 1000.00 29.30 970.70 970.70 2026-11-20 · 970.70 · STRIPE PO 1 "
        "Reconciled 2026-11-21 08:00"
    )
    assert inner(html, "tr", 'data-payout="po_2"') == (
        "po_2 2026-11-21 Paid CNY 300.00 9.00 291.00 500.00 not matched yet "
        "To check off by 209.00 1 charge without a payment"
    )
    assert inner(html, "tr", 'data-payout="po_3"') == (
        "po_3 2026-11-19 Failed CNY — — — 120.00 not matched yet Failed The bank account has been closed."
    )
    assert (
        inner(html, "tr", 'data-payout="po_4"')
        == "po_4 2026-11-25 In transit CNY — — — 50.00 not matched yet Not paid yet"
    )
    assert inner(html, "tr", 'data-currency="CNY"') == "CNY 2 38.30"
    assert 'data-action="stripe-import"' not in html  # a viewer reads and never sees the button
    assert 'data-live-reload="stripe_import.finished"' in html
    assert '<script src="/static/js/live.js" defer>' in html
    assert '<script src="/static/js/stripe_import.js" defer>' in html


def test_a_payout_page_lists_its_transactions_with_their_payments_and_its_exceptions(
    account, clerk, operator, django_capture_on_commit_callbacks
):
    browser = browser_as(clerk.user, operator)
    imported(browser, django_capture_on_commit_callbacks)

    reconciled = browser.get(f"{PAGE}payouts/po_1/").content.decode()
    assert inner(reconciled, "dd", 'data-testid="net"') == "970.70 CNY"
    assert inner(reconciled, "dd", 'data-testid="state"') == "Reconciled 2026-11-21 08:00"
    invoice_number = StripeBalanceTransaction.objects.get(pk="txn_a").payment.invoice.number
    assert inner(reconciled, "tr", 'data-txn="txn_a"') == (
        f"txn_a 2026-11-18 09:00 charge ch_a 1000.00 29.30 970.70 Blue Heron Robotics · {invoice_number}"
    )
    assert inner(reconciled, "tr", 'data-txn="txn_po_1"') == "txn_po_1 2026-11-19 00:00 payout — -970.70 0.00 -970.70 —"
    assert 'id="payout-exceptions"' not in reconciled

    off = browser.get(f"{PAGE}payouts/po_2/").content.decode()
    assert (
        inner(off, "tr", 'data-txn="txn_c"')
        == "txn_c 2026-11-18 10:00 charge ch_c 300.00 9.00 291.00 no payment recorded"
    )
    assert re.findall(r'<li data-kind="(\w+)"', off) == ["payment_without_invoice", "amount_mismatch"]
    assert inner(off, "li", 'data-kind="amount_mismatch"') == (
        "Amount off by more than the tolerance (Open): Stripe payout po_2 of 500.00 CNY contains 1 transaction(s) "
        "netting 291.00 (gross 300.00, fees 9.00)."
    )
    assert browser.get(f"{PAGE}payouts/po_nope/").status_code == 404


def test_the_htmx_import_answers_with_the_region_and_an_import_already_running_is_not_queued(
    account, clerk, operator, django_capture_on_commit_callbacks
):
    StripeImportRun.objects.create(status=ImportStatus.RUNNING, started_at=NOW, started_by="system", imported=300)
    other = psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [IMPORT_LOCK_KEY])  # a worker is importing
        browser = browser_as(clerk.user, operator)
        page = browser.get(PAGE).content.decode()
        with django_capture_on_commit_callbacks(execute=False) as queued:
            response = browser.post(f"{PAGE}import/", {"submission": "x1"}, HTTP_HX_REQUEST="true")
    finally:
        other.close()

    assert 'data-action="stripe-import"' not in page
    assert inner(page, "span", "data-stripe-progress-text") == "Importing: 300 transactions stored so far."
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "An import is already running; its progress shows below." in text_of(response)
    assert queued == []
    assert StripeImportRun.objects.count() == 1
    assert not AuditEvent.objects.filter(action="stripe.import_requested").exists()


def test_without_a_stripe_key_the_page_says_so_and_the_import_is_refused(settings, clerk, operator):
    settings.STRIPE_SECRET_KEY = ""
    browser = browser_as(clerk.user, operator)

    page = browser.get(PAGE)
    refused = browser.post(f"{PAGE}import/", {"submission": "x2"})

    assert "Stripe is not configured: set STRIPE_SECRET_KEY." in text_of(page)
    assert 'data-action="stripe-import"' not in page.content.decode()
    assert refused.status_code == 409
    assert "Stripe is not configured: set STRIPE_SECRET_KEY." in text_of(refused)
    assert not StripeImportRun.objects.exists()


def test_only_the_operator_enters_and_only_its_finance_staff_import(account, viewer, operator):
    enterprise = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    outsider = member_of(enterprise, Role.OWNER, email="owner@qingluo.test")
    stranger = browser_as(outsider, enterprise)
    for url in (PAGE, f"{PAGE}payouts/po_1/"):
        assert stranger.get(url).status_code == 403, url
    assert stranger.post(f"{PAGE}import/").status_code == 403

    reader = browser_as(viewer, operator)
    assert reader.get(PAGE).status_code == 200
    assert reader.post(f"{PAGE}import/", {"submission": "x3"}).status_code == 403
    assert not StripeImportRun.objects.exists()
    assert account.sent == []
