"""Paying centers (issue 6, "Paying centers"): a closed period's statements become payouts, once; a bank payment file
lists the bank ones exactly and downloads again byte for byte; marking a payout paid posts the ledger once (the
center's payable goes to zero after the fee and the payout) in the first unlocked month; failures queue an exception
and are retried; Stripe Connect transfers go through the real SDK with the network recorded. And voucher claims
received from sponsors, recorded the same way.

The scenario (tests/billing/payouts.py): October 2026 closed with Lakeside (net payout 900.00 CNY, by bank) and
Yangtze (360.00 CNY, by bank or Stripe Connect)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from accounts.errors import Conflict, Forbidden, InvalidInput, NotFound
from accounts.models import AuditEvent, OrganizationKind, Role
from billing.models import (
    AccountRole,
    ExceptionKind,
    ExceptionResolution,
    ExceptionStatus,
    JournalEntry,
    Payout,
    PayoutBatch,
    PayoutStatus,
    ReconciliationException,
    StatementStatus,
    VoucherClaim,
    VoucherClaimStatus,
)
from billing.selectors.payouts import payout_period
from billing.services.invoices import CreditRequest, credit_note_issue, invoice_finalize
from billing.services.payments import period_lock
from billing.services.payouts import (
    claim_reference,
    payout_batch_content,
    payout_batch_create,
    payout_find_by_reference,
    payout_mark_failed,
    payout_mark_paid,
    payout_reference,
    payout_retry,
    payout_send_stripe,
    payouts_create,
    voucher_claim_find_by_reference,
    voucher_claim_mark_paid,
)
from billing.services.vouchers import voucher_claim_pay
from tests.billing.payments import finance_clerk
from tests.billing.payouts import YANGTZE_ACCOUNT, october_two_centers
from tests.billing.settlement import DEC, NOV, OCT, balance, book, close, invoice_of, market, meter, statement_of
from tests.billing.settlement import trial_balance as ledger_total
from tests.billing.stripe_recorded import SECRET_KEY, RecordedStripe, error_response, transfer_response
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import OrganizationFactory, member_of

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)
PAID_AT = datetime(2026, 11, 6, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def clerk():
    return finance_clerk()


def payout_of(center) -> Payout:
    return Payout.objects.get(center=center)


# --- creating payouts ---------------------------------------------------------------------------------------------


def test_a_closed_periods_statements_become_one_payout_each_by_the_centers_method(clerk):
    october = october_two_centers()

    result = payouts_create(period="2026-10", now=NOW, actor=clerk)

    assert [(p.center.name, p.amount, p.currency, p.method, p.status) for p in result.created] == [
        ("Lakeside AI Computing Center", D("900.0000"), "CNY", "bank", PayoutStatus.PENDING),
        ("Yangtze GPU Cloud", D("360.0000"), "CNY", "bank", PayoutStatus.PENDING),
    ]
    lakeside = payout_of(october.lakeside)
    assert lakeside.statement == statement_of(october.lakeside, OCT)
    assert (lakeside.transfer_group, lakeside.created_at, lakeside.period, lakeside.batch) == (
        "period-2026-10",
        NOW,
        None,
        None,
    )
    assert result.skipped == [] and result.existing == []
    event = AuditEvent.objects.get(action="payouts.created")
    assert event.after == {"period": "2026-10", "payouts": 2, "totals": {"CNY": "1260.00"}}
    # Nothing is posted until a payout is paid.
    assert not JournalEntry.objects.filter(kind="payout").exists()


def test_creating_payouts_again_creates_nothing_more(clerk):
    october_two_centers()
    first = payouts_create(period="2026-10", now=NOW, actor=clerk)

    again = payouts_create(period="2026-10", now=NOW, actor=clerk)

    assert again.created == []
    assert sorted(p.pk for p in again.existing) == sorted(p.pk for p in first.created)
    assert Payout.objects.count() == 2
    assert AuditEvent.objects.filter(action="payouts.created").count() == 1


def test_a_center_with_a_connect_account_is_paid_by_stripe_only_while_stripe_is_configured(clerk, settings):
    settings.STRIPE_SECRET_KEY = ""
    october = october_two_centers(yangtze_by_stripe=True)
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    assert payout_of(october.yangtze).method == "bank"

    Payout.objects.all().delete()
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    assert payout_of(october.yangtze).method == "stripe"
    assert payout_of(october.lakeside).method == "bank"


def test_a_statement_with_nothing_to_pay_gets_no_payout(clerk):
    """A credit note in November on October's invoice takes back all Lakeside earned: November's statement nets to
    -900.00, and no payout is made of it."""
    center, offering, consumer = market(fraction="0")
    meter(
        book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8), "2026-10-05 00:00", "2026-10-05 10:00", 8
    )
    close(OCT)
    invoice = invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=NOW)
    credit_note_issue(
        actor=clerk,
        invoice_id=invoice.pk,
        lines=[CreditRequest(line_id=invoice.lines.get().pk, amount=D("1000.00"))],
        reason="Node failure",
        now=NOW,
    )
    close(NOV)
    november = statement_of(center, NOV)
    assert november.net_payout == D("-900.0000")

    result = payouts_create(period="2026-11", now=datetime(2026, 12, 3, tzinfo=UTC), actor=clerk)

    assert (result.created, result.skipped) == ([], [november])
    assert not Payout.objects.filter(statement=november).exists()


def test_payouts_need_a_closed_period_and_the_operators_finance_staff(clerk):
    center, offering, consumer = market(fraction="0")
    meter(
        book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8), "2026-10-05 00:00", "2026-10-05 10:00", 8
    )

    with pytest.raises((Conflict, NotFound)) as refused:
        payouts_create(period="2026-10", now=NOW, actor=clerk)
    assert refused.value.code in {"period_not_closed", "not_found"}

    close(OCT)
    viewer = finance_clerk("viewer@platform.example")
    viewer = type(viewer).for_member(user=viewer.user, organization=viewer.organization, role=Role.VIEWER)
    center_admin = type(viewer).for_member(user=member_of(center, Role.OWNER), organization=center, role=Role.OWNER)
    for actor in (viewer, center_admin):
        with pytest.raises(Forbidden):
            payouts_create(period="2026-10", now=NOW, actor=actor)
    assert Payout.objects.count() == 0
    with pytest.raises(InvalidInput):
        payouts_create(period="2026-13", now=NOW, actor=clerk)


# --- bank payment files -------------------------------------------------------------------------------------------


def test_the_bank_file_lists_each_bank_payout_exactly_and_downloads_again_identically(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    lakeside, yangtze = payout_of(october.lakeside), payout_of(october.yangtze)

    made = payout_batch_create(period="2026-10", now=NOW, actor=clerk)

    assert made.missing_details == []
    [batch] = made.batches
    content = payout_batch_content(batch)
    assert content.decode("utf-8") == (
        "\ufeffbeneficiary_name,account_number,bank,bank_code,amount,currency,reference\r\n"
        f'"Lakeside AI Computing Center Co., Ltd.",3301040160000123456,Bank of Hangzhou,313331000014,900.00,CNY,'
        f"PO-2026-10-{lakeside.pk.hex[:8].upper()}\r\n"
        f"'=Yangtze GPU Cloud,6222000011112222,China Merchants Bank,308584000013,360.00,CNY,"
        f"PO-2026-10-{yangtze.pk.hex[:8].upper()}\r\n"
    )
    assert (batch.number, batch.currency, batch.total, batch.count, batch.created_by) == (
        "PB-2026-10-000001",
        "CNY",
        D("1260.0000"),
        2,
        "clerk@platform.example",
    )
    assert batch.content_hash == hashlib.sha256(content).hexdigest()
    assert {(p.batch_id, p.status) for p in Payout.objects.all()} == {(batch.pk, PayoutStatus.IN_TRANSIT)}
    # The centers' bank details change later: the file handed to the bank still downloads as it was.
    october.lakeside.payment_profile.bank_account_number = "999"
    october.lakeside.payment_profile.save()
    assert payout_batch_content(PayoutBatch.objects.get()) == content
    # A second file has nothing left to list.
    assert payout_batch_create(period="2026-10", now=NOW, actor=clerk).batches == []
    assert PayoutBatch.objects.count() == 1


def test_a_center_without_bank_details_is_left_out_of_the_file_and_named(clerk):
    october = october_two_centers()
    october.yangtze.payment_profile.delete()
    payouts_create(period="2026-10", now=NOW, actor=clerk)

    made = payout_batch_create(period="2026-10", now=NOW, actor=clerk)

    assert [p.center for p in made.missing_details] == [october.yangtze]
    assert made.batches[0].count == 1
    assert payout_of(october.yangtze).status == PayoutStatus.PENDING


def test_a_tampered_stored_file_is_refused(clerk, media):
    october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    [batch] = payout_batch_create(period="2026-10", now=NOW, actor=clerk).batches
    (media / "payout-batches" / f"{batch.pk}.csv").write_bytes(b"changed")

    with pytest.raises(Conflict) as refused:
        payout_batch_content(batch)
    assert refused.value.code == "batch_file_changed"


# --- marking paid -------------------------------------------------------------------------------------------------


def test_marking_a_payout_paid_posts_the_ledger_once_and_pays_the_statement_out(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    payout_batch_create(period="2026-10", now=NOW, actor=clerk)
    lakeside = payout_of(october.lakeside)
    assert balance(october.lakeside, AccountRole.CENTER_PAYABLE) == D("-900.0000")

    paid = payout_mark_paid(
        payout_id=lakeside.pk, bank_reference="HZB20261106-0001", paid_at=PAID_AT, now=NOW, actor_label=clerk.label
    )

    assert (paid.status, paid.paid_at, paid.bank_reference, paid.paid_by, paid.period.label) == (
        PayoutStatus.PAID,
        PAID_AT,
        "HZB20261106-0001",
        "clerk@platform.example",
        "2026-11",
    )
    entry = JournalEntry.objects.get(key=f"payout:{lakeside.pk}")
    assert (entry.kind, entry.period.label) == ("payout", "2026-11")
    assert sorted((line.account.role, line.amount) for line in entry.lines.all()) == [
        (AccountRole.CASH, D("-900.0000")),
        (AccountRole.CENTER_PAYABLE, D("900.0000")),
    ]
    # After the close's fee and the payout, the platform owes Lakeside nothing for October.
    assert balance(october.lakeside, AccountRole.CENTER_PAYABLE) == D("0")
    assert ledger_total() == {"CNY": D("0")}
    statement = statement_of(october.lakeside, OCT)
    assert (statement.status, statement.paid_at) == (StatementStatus.PAID, PAID_AT)
    assert statement_of(october.yangtze, OCT).status == StatementStatus.ISSUED


def test_marking_a_paid_payout_paid_again_changes_nothing(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    lakeside = payout_of(october.lakeside)
    payout_mark_paid(payout_id=lakeside.pk, bank_reference="REF-1", paid_at=PAID_AT, now=NOW, actor_label="a")

    again = payout_mark_paid(
        payout_id=lakeside.pk, bank_reference="REF-2", paid_at=NOW, now=NOW, actor_label="somebody else"
    )

    assert (again.bank_reference, again.paid_at, again.paid_by) == ("REF-1", PAID_AT, "a")
    assert JournalEntry.objects.filter(kind="payout").count() == 1
    assert AuditEvent.objects.filter(action="payout.paid").count() == 1
    assert balance(october.lakeside, AccountRole.CENTER_PAYABLE) == D("0")


def test_marking_paid_needs_a_reference_and_a_date_not_in_the_future(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    payout = payout_of(october.lakeside)

    with pytest.raises(InvalidInput) as no_reference:
        payout_mark_paid(payout_id=payout.pk, bank_reference="  ", paid_at=PAID_AT, now=NOW, actor_label="a")
    with pytest.raises(InvalidInput) as future:
        payout_mark_paid(
            payout_id=payout.pk, bank_reference="R", paid_at=datetime(2026, 12, 1, tzinfo=UTC), now=NOW, actor_label="a"
        )

    assert list(no_reference.value.errors) == ["bank_reference"]
    assert list(future.value.errors) == ["paid_at"]
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PENDING
    assert not JournalEntry.objects.filter(kind="payout").exists()


def test_a_payout_paid_in_a_locked_month_is_booked_in_the_first_open_one(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    close(NOV)
    later = datetime(2026, 12, 3, tzinfo=UTC)
    period_lock(actor=clerk, period_label="2026-10", now=later)
    period_lock(actor=clerk, period_label="2026-11", now=later)
    payout = payout_of(october.lakeside)

    paid = payout_mark_paid(payout_id=payout.pk, bank_reference="R", paid_at=PAID_AT, now=later, actor_label="a")

    # The money left on 6 November, but November's books are locked: the payout lands in December.
    assert paid.period.start == DEC
    assert JournalEntry.objects.get(key=f"payout:{payout.pk}").period.start == DEC
    assert ledger_total() == {"CNY": D("0")}
    # And PostgreSQL itself refuses a payout written into the locked month.
    with pytest.raises(IntegrityError, match="period 2026-11 is locked"), transaction.atomic():
        Payout.objects.filter(pk=payout.pk).update(period=paid.period.__class__.objects.get(start=NOV))


# --- failures and retries -----------------------------------------------------------------------------------------


def test_a_failed_payout_opens_an_exception_and_finance_retries_it_in_the_next_file(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    [first_file] = payout_batch_create(period="2026-10", now=NOW, actor=clerk).batches
    yangtze = payout_of(october.yangtze)

    failed = payout_mark_failed(
        payout_id=yangtze.pk, message="Returned by the bank: account closed", now=NOW, actor_label=clerk.label
    )

    assert (failed.status, failed.failure_message) == (PayoutStatus.FAILED, "Returned by the bank: account closed")
    exception = ReconciliationException.objects.get(kind=ExceptionKind.PAYOUT_FAILED)
    assert (exception.subject, exception.payout, exception.amount, exception.status) == (
        f"payout:{yangtze.pk}",
        yangtze,
        D("360.0000"),
        ExceptionStatus.OPEN,
    )
    assert exception.detail == (
        f"Payout {payout_reference(yangtze)} of 360.00 CNY to Yangtze GPU Cloud failed: "
        "Returned by the bank: account closed"
    )
    assert not JournalEntry.objects.filter(kind="payout").exists()
    # Failing it again changes nothing.
    payout_mark_failed(payout_id=yangtze.pk, message="again", now=NOW, actor_label="x")
    assert ReconciliationException.objects.filter(kind=ExceptionKind.PAYOUT_FAILED).count() == 1

    retried = payout_retry(payout_id=yangtze.pk, now=NOW, actor=clerk)

    assert (retried.status, retried.batch) == (PayoutStatus.PENDING, None)
    exception.refresh_from_db()
    assert (exception.status, exception.resolution, exception.resolved_by) == (
        ExceptionStatus.RESOLVED,
        ExceptionResolution.RETRIED,
        "clerk@platform.example",
    )
    [second_file] = payout_batch_create(period="2026-10", now=NOW, actor=clerk).batches
    assert (second_file.number, second_file.count) == ("PB-2026-10-000002", 1)
    assert payout_reference(yangtze) in payout_batch_content(second_file).decode()
    assert payout_batch_content(first_file).decode().count("PO-2026-10-") == 2  # the first file is unchanged
    assert [batch.number for batch in payout_period(clerk, "2026-10").batches] == [
        "PB-2026-10-000002",
        "PB-2026-10-000001",
    ]

    # A second failure queues a second exception of its own.
    payout_mark_failed(payout_id=yangtze.pk, message="Returned again", now=NOW, actor_label="x")
    assert list(
        ReconciliationException.objects.filter(kind=ExceptionKind.PAYOUT_FAILED).values_list("subject", "status")
    ) == [(f"payout:{yangtze.pk}", "resolved"), (f"payout:{yangtze.pk}:2", "open")]


def test_only_a_failed_payout_can_be_retried(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    with pytest.raises(Conflict):
        payout_retry(payout_id=payout_of(october.lakeside).pk, now=NOW, actor=clerk)


def test_references_find_their_payout_and_claim_in_remittance_text(clerk):
    october = october_two_centers()
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    payout = payout_of(october.lakeside)

    assert payout_find_by_reference(f"SALARY? no: payout {payout_reference(payout).lower()} thanks") == payout
    assert payout_find_by_reference("PO-2026-13-ABCDEF12 nothing") is None
    assert payout_find_by_reference(f"PO-2026-09-{payout.pk.hex[:8]}") is None
    assert voucher_claim_find_by_reference("VC-2026-10-00000000") is None


# --- Stripe Connect transfers -------------------------------------------------------------------------------------


def _stripe_october(settings, clerk, *answers):
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = None
    recorder = RecordedStripe(*answers)
    settings.STRIPE_CONNECT_HTTP_CLIENT = recorder
    october = october_two_centers(yangtze_by_stripe=True)
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    return october, payout_of(october.yangtze), recorder


def _transfer(payout, id="tr_1QYangtze0001"):
    return transfer_response(
        id=id,
        amount=36000,
        currency="cny",
        destination=YANGTZE_ACCOUNT,
        transfer_group="period-2026-10",
        created=int(PAID_AT.timestamp()),
        metadata={"payout": str(payout.pk)},
    )


@pytest.mark.django_db(transaction=True)
def test_a_connect_transfer_is_sent_outside_any_transaction_and_pays_the_payout(settings, clerk):
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = None
    october = october_two_centers(yangtze_by_stripe=True)
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    payout = payout_of(october.yangtze)
    recorder = RecordedStripe((200, _transfer(payout)))
    settings.STRIPE_CONNECT_HTTP_CLIENT = recorder

    paid = payout_send_stripe(payout_id=payout.pk, now=NOW, actor_label="clerk@platform.example")

    [sent] = recorder.sent
    assert (sent.method, sent.path, sent.in_transaction) == ("POST", "/v1/transfers", False)
    assert sent.form == {
        "amount": "36000",
        "currency": "cny",
        "destination": YANGTZE_ACCOUNT,
        "transfer_group": "period-2026-10",
        "metadata[payout]": str(payout.pk),
        "metadata[statement]": str(payout.statement_id),
        "metadata[center]": october.yangtze.slug,
        "metadata[reference]": payout_reference(payout),
        "description": f"{payout_reference(payout)} Yangtze GPU Cloud",
    }
    assert sent.headers["Idempotency-Key"] == f"payout-{payout.pk}-transfer"
    assert sent.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert (paid.status, paid.stripe_transfer, paid.bank_reference, paid.paid_at, paid.method) == (
        PayoutStatus.PAID,
        "tr_1QYangtze0001",
        "tr_1QYangtze0001",
        PAID_AT,
        "stripe",
    )
    entry = JournalEntry.objects.get(key=f"payout:{payout.pk}")
    assert sorted((line.account.role, line.amount) for line in entry.lines.all()) == [
        (AccountRole.CENTER_PAYABLE, D("360.0000")),
        (AccountRole.STRIPE_BALANCE, D("-360.0000")),
    ]
    assert balance(october.yangtze, AccountRole.CENTER_PAYABLE) == D("0")
    # Sending it again sends nothing (the recorder has no second answer and would fail the test).
    assert payout_send_stripe(payout_id=payout.pk, now=NOW).status == PayoutStatus.PAID
    assert len(recorder.sent) == 1


def test_a_refused_transfer_fails_the_payout_and_the_retry_sends_a_new_key(settings, clerk):
    _october, payout, recorder = _stripe_october(
        settings,
        clerk,
        (400, error_response(code="account_invalid", message="The destination account is not active.")),
    )

    failed = payout_send_stripe(payout_id=payout.pk, now=NOW)

    assert (failed.status, failed.stripe_transfer) == (PayoutStatus.FAILED, None)
    assert failed.failure_message == "The destination account is not active. (account_invalid)"
    exception = ReconciliationException.objects.get(kind=ExceptionKind.PAYOUT_FAILED, payout=payout)
    assert exception.status == ExceptionStatus.OPEN
    assert not JournalEntry.objects.filter(kind="payout").exists()

    payout_retry(payout_id=payout.pk, now=NOW, actor=clerk)
    recorder.answers.append((200, _transfer(payout, id="tr_1QYangtze0002")))
    paid = payout_send_stripe(payout_id=payout.pk, now=NOW)

    assert [s.headers["Idempotency-Key"] for s in recorder.sent] == [
        f"payout-{payout.pk}-transfer",
        f"payout-{payout.pk}-transfer-2",
    ]
    assert (paid.status, paid.stripe_transfer) == (PayoutStatus.PAID, "tr_1QYangtze0002")
    exception.refresh_from_db()
    assert exception.resolution == ExceptionResolution.RETRIED
    assert ledger_total() == {"CNY": D("0")}


def test_a_stripe_server_error_leaves_the_payout_in_transit_for_a_retry_with_the_same_key(settings, clerk):
    server_error = (500, error_response(type="api_error", code="", message="Something went wrong"))
    _october, payout, recorder = _stripe_october(settings, clerk, server_error, server_error, server_error)
    from billing.stripe_connect import TransferUnknown

    settings.STRIPE_CONNECT_HTTP_CLIENT._sleep_time_seconds = lambda n: 0  # the SDK's backoff, not ours
    with pytest.raises(TransferUnknown):
        payout_send_stripe(payout_id=payout.pk, now=NOW)

    payout.refresh_from_db()
    assert (payout.status, payout.stripe_transfer) == (PayoutStatus.IN_TRANSIT, None)
    assert not ReconciliationException.objects.exists()
    recorder.answers.append((200, _transfer(payout)))
    assert payout_send_stripe(payout_id=payout.pk, now=NOW).status == PayoutStatus.PAID
    assert {s.headers["Idempotency-Key"] for s in recorder.sent} == {f"payout-{payout.pk}-transfer"}
    assert len(recorder.sent) == 4  # three tries by the SDK, then the task's retry


def test_a_failed_stripe_payout_can_be_retried_by_bank_and_marked_paid_from_cash(settings, clerk):
    _october, payout, _recorder = _stripe_october(
        settings, clerk, (400, error_response(code="account_invalid", message="Closed."))
    )
    payout_send_stripe(payout_id=payout.pk, now=NOW)

    payout_retry(payout_id=payout.pk, now=NOW, actor=clerk, method="bank")
    [batch] = payout_batch_create(period="2026-10", now=NOW, actor=clerk).batches
    paid = payout_mark_paid(payout_id=payout.pk, bank_reference="CMB-1", paid_at=PAID_AT, now=NOW, actor_label="a")

    assert batch.count == 2
    assert (paid.method, paid.status) == ("bank", PayoutStatus.PAID)
    entry = JournalEntry.objects.get(key=f"payout:{payout.pk}")
    assert {line.account.role for line in entry.lines.all()} == {AccountRole.CENTER_PAYABLE, AccountRole.CASH}


# --- voucher claims -----------------------------------------------------------------------------------------------


def _claim():
    _center, offering, consumer = market(fraction="0")
    sponsor = OrganizationFactory(kind=OrganizationKind.SPONSOR, name="Provincial Compute Fund")
    grant(consumer, amount="1000.00", of=program(sponsor_actor(sponsor), rate="0.50"))
    meter(
        book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8), "2026-10-05 00:00", "2026-10-05 10:00", 8
    )
    close(OCT)
    return VoucherClaim.objects.get(sponsor=sponsor), sponsor


def test_finance_records_a_sponsors_payment_of_a_claim_once(clerk):
    claim, sponsor = _claim()
    assert claim.amount == D("500.0000")
    assert balance(sponsor, AccountRole.VOUCHER_RECEIVABLE) == D("500.0000")

    paid = voucher_claim_mark_paid(
        claim_id=claim.pk, bank_reference="PCF-2026-118", paid_at=PAID_AT, now=NOW, actor_label=clerk.label, actor=clerk
    )
    again = voucher_claim_mark_paid(claim_id=claim.pk, bank_reference="X", paid_at=NOW, now=NOW, actor_label="b")
    # The sponsor recording its own payment afterwards posts nothing more either.
    voucher_claim_pay(actor=sponsor_actor(sponsor), claim_id=claim.pk, reference="mine", now=NOW)

    assert (paid.status, paid.paid_at, paid.payment_reference, paid.paid_by) == (
        VoucherClaimStatus.PAID,
        PAID_AT,
        "PCF-2026-118",
        "clerk@platform.example",
    )
    assert again.payment_reference == "PCF-2026-118"
    entry = JournalEntry.objects.get(kind="voucher_claim_payment")
    assert (entry.key, entry.period.label) == (f"voucher_claim_payment:{claim.pk}", "2026-11")
    assert balance(sponsor, AccountRole.VOUCHER_RECEIVABLE) == D("0")
    assert ledger_total() == {"CNY": D("0")}
    assert voucher_claim_find_by_reference(f"transfer {claim_reference(claim)}") == claim
    assert claim_reference(claim) == f"VC-2026-10-{claim.pk.hex[:8].upper()}"


# --- at the same time ---------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_clerks_creating_payouts_and_marking_one_paid_at_once_do_each_thing_once(clerk):
    from tests.concurrency import run_at_once

    october = october_two_centers()
    created = run_at_once(
        lambda: payouts_create(period="2026-10", now=NOW, actor=clerk),
        lambda: payouts_create(period="2026-10", now=NOW, actor=clerk),
    )
    assert sorted(len(result.created) for result in created) == [0, 2]
    payout = payout_of(october.lakeside)

    paid = run_at_once(
        lambda: payout_mark_paid(payout_id=payout.pk, bank_reference="A", paid_at=PAID_AT, now=NOW, actor_label="a"),
        lambda: payout_mark_paid(payout_id=payout.pk, bank_reference="B", paid_at=PAID_AT, now=NOW, actor_label="b"),
    )

    assert {result.status for result in paid} == {PayoutStatus.PAID}
    assert JournalEntry.objects.filter(kind="payout").count() == 1
    assert AuditEvent.objects.filter(action="payout.paid").count() == 1
    assert balance(october.lakeside, AccountRole.CENTER_PAYABLE) == D("0")
