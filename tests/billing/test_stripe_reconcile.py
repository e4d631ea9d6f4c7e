"""Stripe balance transactions and payouts, imported and reconciled (issue 6, "Reconciliation workbench"): the
import pages through Stripe's API and resumes from its cursor after a failure or a killed worker, one import runs
at a time, Stripe's fees are booked once, each payout is proven to be the net of the transactions it contains (or
finance gets an exception), and each committed page is announced live to the operator's finance staff.

Stripe is the real `stripe` SDK over tests/billing/stripe_balance.py's recorded account. The tests commit for real
(`transaction=True`): each page is its own transaction, and no Stripe request may run inside one.
"""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
import stripe
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.errors import Conflict
from billing import stripe_api
from billing.models import (
    AccountRole,
    ExceptionKind,
    ExceptionStatus,
    ImportStatus,
    JournalEntry,
    PaymentMethod,
    ReconciliationException,
    StripeBalanceTransaction,
    StripeImportRun,
    StripePayout,
)
from billing.services.payments import payment_record
from billing.services.stripe_reconcile import (
    IMPORT_LOCK_KEY,
    StripeImportFailed,
    from_minor_units,
    import_running,
    stripe_import_run,
    stripe_payout_settle,
    stripe_payout_store,
)
from marketplace.realtime import organization_group
from tests.billing.payments import finance_clerk, october_invoice
from tests.billing.settlement import balance, trial_balance
from tests.billing.stripe_balance import (
    API_BASE,
    SECRET_KEY,
    RecordedStripeAccount,
    WorkerKilled,
    balance_transaction,
    charge,
    payout,
    record_list,
    ts,
)
from tests.worker import test_database_url as database_url

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
TXNS = "/v1/balance_transactions"
PAYOUTS = "/v1/payouts"
NEWEST = ts("2026-11-20 12:00")


@pytest.fixture
def account(settings, monkeypatch) -> RecordedStripeAccount:
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = API_BASE
    recorded = RecordedStripeAccount()
    monkeypatch.setattr(stripe_api, "HTTP_CLIENT", recorded)
    return recorded


@pytest.fixture
def operator():
    return finance_clerk().organization


def history(count: int) -> list[dict]:
    """`count` card charges, newest first, a minute apart: txn_0001 is the newest (123.46 CNY, fee 3.61)."""
    return [
        balance_transaction(
            f"txn_{i:04d}",
            amount=12_345 + i,
            fee=358 + 3 * i,
            created=NEWEST - 60 * (i - 1),
            source=f"ch_{i:04d}",
            description=f"Invoice charge {i}",
        )
        for i in range(1, count + 1)
    ]


def fee_total(txns: list[dict]) -> Decimal:
    return sum((from_minor_units(t["fee"], "CNY") for t in txns), D(0))


# --- paging ---------------------------------------------------------------------------------------------------------


def test_250_transactions_arrive_in_three_pages_of_100_and_are_stored_exactly_once(account, operator):
    txns = history(250)
    pages = record_list(account, TXNS, txns)
    record_list(account, PAYOUTS, [])

    run = stripe_import_run(actor_label="clerk@platform.example", now=NOW)

    assert pages == [
        {"limit": "100"},
        {"limit": "100", "starting_after": "txn_0100"},
        {"limit": "100", "starting_after": "txn_0200"},
    ]
    assert account.calls() == [("GET", TXNS, q) for q in pages] + [("GET", PAYOUTS, {"limit": "100"})]
    assert {sent.host for sent in account.sent} == {API_BASE}
    assert {sent.authorization for sent in account.sent} == {f"Bearer {SECRET_KEY}"}
    assert not any(sent.in_transaction for sent in account.sent)

    run.refresh_from_db()
    assert (run.status, run.imported, run.cursor, run.started_by, run.finished_at, run.error) == (
        ImportStatus.DONE,
        250,
        "txn_0250",
        "clerk@platform.example",
        NOW,
        "",
    )
    assert StripeBalanceTransaction.objects.count() == 250
    assert set(StripeBalanceTransaction.objects.values_list("id", flat=True)) == {t["id"] for t in txns}
    newest = StripeBalanceTransaction.objects.values().get(pk="txn_0001")
    assert newest == {
        "id": "txn_0001",
        "type": "charge",
        "amount": D("123.4600"),
        "fee": D("3.6100"),
        "net": D("119.8500"),
        "currency": "CNY",
        "created": datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        "available_on": datetime(2026, 11, 22, 12, 0, tzinfo=UTC),
        "source": "ch_0001",
        "description": "Invoice charge 1",
        "payout_id": None,
        "payment_id": None,
        "imported_at": NOW,
    }
    oldest = StripeBalanceTransaction.objects.get(pk="txn_0250")
    assert (oldest.amount, oldest.fee, oldest.created) == (
        D("125.95"),
        D("11.08"),
        datetime(2026, 11, 20, 7, 51, tzinfo=UTC),
    )


def test_minor_units_follow_the_currency():
    assert from_minor_units(12_345, "CNY") == D("123.45")
    assert from_minor_units(12_345, "JPY") == D("12345")
    assert from_minor_units(-5, "USD") == D("-0.05")


# --- resuming -------------------------------------------------------------------------------------------------------


def test_a_run_that_failed_on_page_2_resumes_from_its_cursor_without_duplicates_or_gaps(account, operator):
    txns = history(250)
    pages = record_list(account, TXNS, txns)
    record_list(account, PAYOUTS, [])
    account.break_on(TXNS, pages[1], stripe.APIConnectionError("Connection reset by peer"))

    with pytest.raises(StripeImportFailed) as failed:
        stripe_import_run(actor_label="clerk@platform.example", now=NOW)

    assert failed.value.detail == "Stripe could not be read: Connection reset by peer"
    run = StripeImportRun.objects.get()
    assert (run.status, run.imported, run.cursor, run.finished_at, run.error) == (
        ImportStatus.FAILED,
        100,
        "txn_0100",
        NOW,
        "Stripe could not be read: Connection reset by peer",
    )
    # Page 1 is committed with its fees; nothing of page 2.
    assert StripeBalanceTransaction.objects.count() == 100
    assert JournalEntry.objects.filter(kind="stripe_fee").count() == 100
    assert not import_running()  # the failed run let go of the lock

    account.repair()
    account.sent.clear()
    resumed = stripe_import_run(actor_label="system", now=LATER)

    assert resumed.pk == run.pk
    assert account.calls() == [("GET", TXNS, pages[1]), ("GET", TXNS, pages[2]), ("GET", PAYOUTS, {"limit": "100"})]
    resumed.refresh_from_db()
    assert (resumed.status, resumed.imported, resumed.cursor, resumed.error, resumed.finished_at) == (
        ImportStatus.DONE,
        250,
        "txn_0250",
        "",
        LATER,
    )
    assert StripeBalanceTransaction.objects.count() == 250
    assert set(StripeBalanceTransaction.objects.values_list("id", flat=True)) == {t["id"] for t in txns}
    assert JournalEntry.objects.filter(kind="stripe_fee").count() == 250
    assert balance(None, AccountRole.PROCESSING_FEES) == fee_total(txns)
    assert trial_balance() == {"CNY": D("0")}


def test_a_run_whose_worker_was_killed_is_continued_from_its_cursor(account, operator):
    txns = history(250)
    pages = record_list(account, TXNS, txns)
    record_list(account, PAYOUTS, [])
    account.break_on(TXNS, pages[2], WorkerKilled())

    with pytest.raises(WorkerKilled):
        stripe_import_run(actor_label="system", now=NOW)

    # Killed, it had no chance to say so: the run still reads "running", with two pages committed.
    run = StripeImportRun.objects.get()
    assert (run.status, run.imported, run.cursor, run.finished_at) == (ImportStatus.RUNNING, 200, "txn_0200", None)

    account.repair()
    account.sent.clear()
    stripe_import_run(actor_label="system", now=LATER)

    assert account.calls() == [("GET", TXNS, pages[2]), ("GET", PAYOUTS, {"limit": "100"})]
    run.refresh_from_db()
    assert (run.status, run.imported, run.cursor) == (ImportStatus.DONE, 250, "txn_0250")
    assert StripeImportRun.objects.count() == 1
    assert StripeBalanceTransaction.objects.count() == 250


def test_an_import_while_another_runs_is_refused_and_changes_nothing(account, operator):
    record_list(account, TXNS, history(3))
    record_list(account, PAYOUTS, [])
    other = psycopg.connect(database_url().replace("postgres://", "postgresql://"), autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [IMPORT_LOCK_KEY])
        assert import_running()

        with pytest.raises(Conflict) as refused:
            stripe_import_run(actor_label="system", now=NOW)

        assert (refused.value.code, refused.value.detail) == (
            "import_running",
            "A Stripe import is already running; its progress shows on the Stripe page.",
        )
        assert account.sent == []
        assert not StripeImportRun.objects.exists()
        assert not StripeBalanceTransaction.objects.exists()

        # The other import ends: the next one goes ahead.
        other.execute("SELECT pg_advisory_unlock(%s)", [IMPORT_LOCK_KEY])
    finally:
        other.close()
    assert not import_running()
    stripe_import_run(actor_label="system", now=NOW)
    assert StripeBalanceTransaction.objects.count() == 3


# --- fees -----------------------------------------------------------------------------------------------------------


def test_fees_are_posted_once_and_a_later_run_asks_only_for_what_is_new(account, operator):
    txns = history(3)
    record_list(account, TXNS, txns)
    record_list(account, PAYOUTS, [])
    stripe_import_run(actor_label="system", now=NOW)
    fees = JournalEntry.objects.filter(kind="stripe_fee")
    assert sorted(fees.values_list("key", flat=True)) == [
        "stripe_fee:txn_0001",
        "stripe_fee:txn_0002",
        "stripe_fee:txn_0003",
    ]
    assert balance(None, AccountRole.PROCESSING_FEES) == D("3.61") + D("3.64") + D("3.67")
    assert balance(None, AccountRole.STRIPE_BALANCE) == -(D("3.61") + D("3.64") + D("3.67"))
    entry = fees.get(key="stripe_fee:txn_0001")
    assert (entry.period.label, entry.memo) == ("2026-11", "Stripe fee on charge ch_0001")

    # The next run lists back to the newest transaction it has (inclusive); Stripe answers with it and one new one.
    newer = balance_transaction("txn_0000", amount=50_000, fee=1_480, created=NEWEST + 600, source="ch_0000")
    since = {"created[gte]": str(NEWEST)}
    record_list(account, TXNS, [newer, txns[0]], query=since)
    account.sent.clear()
    second = stripe_import_run(actor_label="system", now=LATER)

    assert account.calls() == [("GET", TXNS, {**since, "limit": "100"}), ("GET", PAYOUTS, {"limit": "100"})]
    assert (second.imported, StripeImportRun.objects.count()) == (1, 2)
    assert StripeBalanceTransaction.objects.count() == 4
    assert fees.count() == 4
    assert balance(None, AccountRole.PROCESSING_FEES) == D("3.61") + D("3.64") + D("3.67") + D("14.80")
    assert trial_balance() == {"CNY": D("0")}

    # The same again: Stripe answers with the newest one only, already stored; nothing is stored or posted.
    record_list(account, TXNS, [newer], query={"created[gte]": str(NEWEST + 600)})
    third = stripe_import_run(actor_label="system", now=LATER + timedelta(hours=1))
    assert third.imported == 0
    assert (StripeBalanceTransaction.objects.count(), fees.count()) == (4, 4)


# --- payouts --------------------------------------------------------------------------------------------------------


def card_payment(invoice, amount: str, *, intent: str, charge_id: str | None):
    return payment_record(
        consumer=invoice.consumer,
        method=PaymentMethod.STRIPE,
        currency="CNY",
        amount=D(amount),
        key=f"stripe_pi:{intent}",
        received_at=datetime(2026, 11, 18, 9, 0, tzinfo=UTC),
        now=datetime(2026, 11, 18, 9, 0, tzinfo=UTC),
        invoice=invoice,
        stripe_payment_intent=intent,
        stripe_charge=charge_id,
    ).payment


def test_a_paid_payout_that_is_the_net_of_its_charges_is_reconciled_and_booked(account, operator):
    invoice, _center, _consumer = october_invoice()  # 1,000.00 CNY, paid by card in two parts
    first = card_payment(invoice, "600.00", intent="pi_a", charge_id="ch_a")
    second = card_payment(invoice, "400.00", intent="pi_b", charge_id=None)  # the webhook did not name the charge
    charge_a = balance_transaction("txn_a", amount=60_000, fee=1_770, created=ts("2026-11-18 09:00"), source="ch_a")
    charge_b = balance_transaction("txn_b", amount=40_000, fee=1_190, created=ts("2026-11-18 09:05"), source="ch_b")
    paid_out = balance_transaction(
        "txn_po_1", type="payout", amount=-97_040, fee=0, created=ts("2026-11-19 00:00"), source="po_1"
    )
    record_list(account, TXNS, [paid_out, charge_b, charge_a])
    record_list(account, PAYOUTS, [payout("po_1", amount=97_040, arrival_date=ts("2026-11-20 00:00"))])
    record_list(account, TXNS, [paid_out, charge_b, charge_a], query={"payout": "po_1"})
    account.answer("/v1/charges/ch_b", {}, charge("ch_b", amount=40_000, payment_intent="pi_b"))

    stripe_import_run(actor_label="system", now=NOW)

    assert account.calls() == [
        ("GET", TXNS, {"limit": "100"}),
        ("GET", PAYOUTS, {"limit": "100"}),
        ("GET", TXNS, {"limit": "100", "payout": "po_1"}),
        ("GET", "/v1/charges/ch_b", {}),
    ]
    assert not any(sent.in_transaction for sent in account.sent)
    stored = StripePayout.objects.get()
    assert (stored.amount, stored.currency, stored.status, stored.arrival_date, stored.reconciled_at) == (
        D("970.40"),
        "CNY",
        "paid",
        datetime(2026, 11, 20, tzinfo=UTC),
        NOW,
    )
    links = dict(StripeBalanceTransaction.objects.values_list("id", "payment_id"))
    assert links == {"txn_a": first.pk, "txn_b": second.pk, "txn_po_1": None}
    assert set(StripeBalanceTransaction.objects.values_list("payout_id", flat=True)) == {"po_1"}
    assert not ReconciliationException.objects.filter(subject__startswith="stripe_").exists()
    # 1,000.00 received into the Stripe balance, 29.60 of fees, 970.40 paid out to the bank: nothing left in it.
    assert balance(None, AccountRole.PROCESSING_FEES) == D("29.60")
    assert balance(None, AccountRole.CASH) == D("970.40")
    assert balance(None, AccountRole.STRIPE_BALANCE) == D("0")
    assert sorted(JournalEntry.objects.filter(kind__startswith="stripe").values_list("key", flat=True)) == [
        "stripe_fee:txn_a",
        "stripe_fee:txn_b",
        "stripe_payout:po_1",
    ]
    assert trial_balance() == {"CNY": D("0")}

    # A reconciled payout's contents are not asked for again; its booking is not repeated.
    account.sent.clear()
    record_list(account, TXNS, [paid_out], query={"created[gte]": str(ts("2026-11-19 00:00"))})
    record_list(
        account,
        PAYOUTS,
        [payout("po_1", amount=97_040, arrival_date=ts("2026-11-20 00:00"))],
        query={"arrival_date[gte]": str(ts("2026-11-20 00:00"))},
    )
    stripe_import_run(actor_label="system", now=LATER)
    assert ("GET", TXNS, {"limit": "100", "payout": "po_1"}) not in account.calls()
    assert JournalEntry.objects.filter(key="stripe_payout:po_1").count() == 1
    assert trial_balance() == {"CNY": D("0")}


def test_a_payout_that_does_not_add_up_opens_exceptions_and_is_not_reconciled(account, operator):
    unknown = balance_transaction("txn_c", amount=30_000, fee=900, created=ts("2026-11-18 10:00"), source="ch_unknown")
    paid_out = balance_transaction(
        "txn_po_2", type="payout", amount=-50_000, fee=0, created=ts("2026-11-19 00:00"), source="po_2"
    )
    record_list(account, TXNS, [paid_out, unknown])
    record_list(account, PAYOUTS, [payout("po_2", amount=50_000, arrival_date=ts("2026-11-20 00:00"))])
    record_list(account, TXNS, [paid_out, unknown], query={"payout": "po_2"})
    account.answer("/v1/charges/ch_unknown", {}, charge("ch_unknown", amount=30_000, payment_intent="pi_unknown"))

    stripe_import_run(actor_label="system", now=NOW)

    assert StripePayout.objects.get().reconciled_at is None
    exceptions = {
        e.kind: (e.subject, e.status, e.currency, e.amount, e.period.label, e.detail)
        for e in ReconciliationException.objects.all()
    }
    assert exceptions == {
        ExceptionKind.AMOUNT_MISMATCH: (
            "stripe_payout:po_2",
            ExceptionStatus.OPEN,
            "CNY",
            D("209.00"),
            "2026-11",
            "Stripe payout po_2 of 500.00 CNY contains 1 transaction(s) netting 291.00 (gross 300.00, fees 9.00).",
        ),
        ExceptionKind.PAYMENT_WITHOUT_INVOICE: (
            "stripe_charge:ch_unknown",
            ExceptionStatus.OPEN,
            "CNY",
            D("300.00"),
            "2026-11",
            "Stripe charge ch_unknown of 300.00 CNY (in payout po_2) is not a payment we recorded.",
        ),
    }
    # The payout still reached the bank: it is booked, and the books balance.
    assert balance(None, AccountRole.CASH) == D("500.00")
    assert trial_balance() == {"CNY": D("0")}


def test_a_payout_holding_a_transaction_newer_than_the_listing_saw_waits_for_the_next_run(account, operator):
    invoice, _center, _consumer = october_invoice()
    card_payment(invoice, "1000.00", intent="pi_a", charge_id="ch_a")
    charge_a = balance_transaction("txn_a", amount=100_000, fee=2_930, created=ts("2026-11-18 09:00"), source="ch_a")
    # Stripe created po_5 (and its own balance transaction) between the listing's page and the payouts' page.
    paid_out = balance_transaction(
        "txn_po_5", type="payout", amount=-97_070, fee=0, created=ts("2026-11-20 12:00"), source="po_5"
    )
    record_list(account, TXNS, [charge_a])
    po_5 = payout("po_5", amount=97_070, arrival_date=ts("2026-11-21 00:00"))
    record_list(account, PAYOUTS, [po_5])
    record_list(account, TXNS, [paid_out, charge_a], query={"payout": "po_5"})

    stripe_import_run(actor_label="system", now=NOW)

    # Not stored from the payout's contents (the next listing would start past it), so not reconciled yet; no
    # exception either. The payout itself reached the bank and is booked.
    assert set(StripeBalanceTransaction.objects.values_list("id", "payout_id")) == {("txn_a", "po_5")}
    assert StripePayout.objects.get().reconciled_at is None
    assert not ReconciliationException.objects.filter(subject__startswith="stripe_").exists()
    assert balance(None, AccountRole.CASH) == D("970.70")

    record_list(account, TXNS, [paid_out, charge_a], query={"created[gte]": str(ts("2026-11-18 09:00"))})
    record_list(account, PAYOUTS, [po_5], query={"arrival_date[gte]": str(ts("2026-11-21 00:00"))})
    stripe_import_run(actor_label="system", now=LATER)

    assert set(StripeBalanceTransaction.objects.values_list("id", "payout_id")) == {
        ("txn_a", "po_5"),
        ("txn_po_5", "po_5"),
    }
    assert StripePayout.objects.get().reconciled_at == LATER
    assert not ReconciliationException.objects.filter(subject__startswith="stripe_").exists()
    assert balance(None, AccountRole.STRIPE_BALANCE) == D("0")
    assert trial_balance() == {"CNY": D("0")}


def test_a_failed_payout_opens_an_exception_and_a_payout_failing_after_it_was_paid_is_reversed(account, operator):
    record_list(account, TXNS, [])
    record_list(
        account,
        PAYOUTS,
        [
            payout(
                "po_3",
                amount=12_000,
                arrival_date=ts("2026-11-20 00:00"),
                status="failed",
                failure_message="The bank account has been closed.",
            )
        ],
    )
    stripe_import_run(actor_label="system", now=NOW)
    failure = ReconciliationException.objects.get(kind=ExceptionKind.PAYOUT_FAILED)
    assert (failure.subject, failure.amount, failure.detail) == (
        "stripe_payout:po_3",
        D("120.00"),
        "Stripe payout po_3 of 120.00 CNY failed: The bank account has been closed.",
    )
    assert not JournalEntry.objects.filter(kind="stripe_payout").exists()

    # The webhook path: payout.paid, then payout.failed days later (Stripe allows it), each event twice.
    paid = payout("po_4", amount=8_000, arrival_date=ts("2026-11-20 00:00"))
    for _replay in range(2):
        stripe_payout_store(data=paid, now=NOW)
        stripe_payout_settle(payout_id="po_4", now=NOW)
    assert balance(None, AccountRole.CASH) == D("80.00")
    failed = {**paid, "status": "failed", "failure_message": "Account closed."}
    for _replay in range(2):
        stripe_payout_store(data=failed, now=LATER)
        stripe_payout_settle(payout_id="po_4", now=LATER)
    # A late "paid" event does not bring it back.
    stripe_payout_store(data=paid, now=LATER)
    late = StripePayout.objects.get(pk="po_4")
    assert (late.status, late.failure_message) == ("failed", "Account closed.")
    assert balance(None, AccountRole.CASH) == D("0")
    assert balance(None, AccountRole.STRIPE_BALANCE) == D("0")
    assert sorted(JournalEntry.objects.filter(kind="stripe_payout").values_list("key", flat=True)) == [
        "stripe_payout:po_4",
        "stripe_payout_failed:po_4",
    ]
    assert ReconciliationException.objects.filter(kind=ExceptionKind.PAYOUT_FAILED).count() == 2
    assert trial_balance() == {"CNY": D("0")}


def test_stripe_not_configured_is_a_clear_refusal(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(Conflict) as refused:
        stripe_import_run(actor_label="system", now=NOW)
    assert (refused.value.code, refused.value.detail) == (
        "stripe_disabled",
        "Stripe is not configured: set STRIPE_SECRET_KEY.",
    )
    assert not StripeImportRun.objects.exists()


# --- live progress --------------------------------------------------------------------------------------------------


@contextmanager
def live_events(organization):
    """Collect the live events sent to `organization`'s group while the block runs (commits are real here)."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(organization_group(organization.pk), channel)
    received: list[dict] = []
    try:
        yield received
    finally:
        async_to_sync(_drain)(layer, channel, received)
        async_to_sync(layer.group_discard)(organization_group(organization.pk), channel)


async def _drain(layer, channel, events):
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout=0.3)
        except TimeoutError:
            return
        events.append({key: value for key, value in message.items() if key != "type"})


@pytest.mark.redis
def test_each_committed_page_is_announced_live_to_the_operator(account, operator):
    record_list(account, TXNS, history(250))
    record_list(
        account, PAYOUTS, [payout("po_9", amount=100, arrival_date=ts("2026-11-25 00:00"), status="in_transit")]
    )

    with live_events(operator) as events:
        run = stripe_import_run(actor_label="system", now=NOW)

    progress = {"event": "stripe_import.progress", "run": run.pk, "status": "running"}
    assert events == [
        {**progress, "imported": 100, "phase": "balance_transactions", "pages": 1},
        {**progress, "imported": 200, "phase": "balance_transactions", "pages": 2},
        {**progress, "imported": 250, "phase": "balance_transactions", "pages": 3},
        {**progress, "imported": 250, "phase": "payouts", "payouts": 1},
        {
            "event": "stripe_import.finished",
            "run": run.pk,
            "status": "done",
            "imported": 250,
            "error": "",
            "pages": 3,
            "payouts": 1,
        },
    ]


def test_the_hourly_import_does_nothing_on_a_deployment_without_stripe(settings):
    from billing.models import StripeImportRun
    from billing.tasks import stripe_import_task

    settings.STRIPE_SECRET_KEY = ""
    stripe_import_task.delay()
    assert StripeImportRun.objects.count() == 0
