"""Payments against invoices (issue 6, "Collecting from consumers"): each payment posts once to the ledger, an
invoice is paid when its payments cover it, an overpayment becomes a credit balance, an underpayment leaves the
remainder open; credit notes on paid invoices give credit back; write-offs within the tolerance; the period lock."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, transaction

from accounts.errors import Conflict
from billing.models import (
    AccountRole,
    ExceptionKind,
    InvoiceStatus,
    JournalEntry,
    PaymentAllocation,
    PaymentMethod,
    ReconciliationException,
)
from billing.services.invoices import CreditRequest, credit_note_issue
from billing.services.payments import (
    credit_balance,
    invoice_outstanding,
    payment_record,
    period_lock,
    write_off_create,
)
from tests.billing.payments import finance_clerk, october_invoice
from tests.billing.settlement import NOV, OCT, balance, period, trial_balance

pytestmark = pytest.mark.django_db

PAID_AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def pay(invoice, amount: str, key: str = "t1", **fields):
    return payment_record(
        consumer=invoice.consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal(amount),
        key=key,
        received_at=PAID_AT,
        now=PAID_AT,
        invoice=fields.pop("invoice", invoice),
        **fields,
    ).payment


def test_full_payment_marks_the_invoice_paid_and_posts_twice_once():
    invoice, _center, consumer = october_invoice()
    payment = pay(invoice, "1000.00")
    again = payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal("1000.00"),
        key="t1",
        received_at=PAID_AT,
        now=PAID_AT,
        invoice=invoice,
    )
    invoice.refresh_from_db()
    assert (invoice.status, invoice.paid_at) == (InvoiceStatus.PAID, PAID_AT)
    assert again.created is False and again.payment.pk == payment.pk
    assert JournalEntry.objects.filter(kind="payment").count() == 1
    assert JournalEntry.objects.filter(kind="allocation").count() == 1
    assert balance(consumer, AccountRole.RECEIVABLE) == Decimal("0")
    assert balance(None, AccountRole.CASH) == Decimal("1000.00")
    assert payment.period.label == "2026-11"
    assert trial_balance() == {"CNY": Decimal("0")}


def test_underpayment_leaves_the_remainder_open_and_overpayment_becomes_credit():
    invoice, _center, consumer = october_invoice()
    pay(invoice, "999.50", key="a")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED
    assert invoice_outstanding(invoice) == Decimal("0.50")
    assert not ReconciliationException.objects.exists()  # 0.50 is within the 1.00 tolerance

    pay(invoice, "20.00", key="b")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert credit_balance(consumer, "CNY") == Decimal("19.50")
    assert -balance(consumer, AccountRole.CUSTOMER_CREDIT) == Decimal("19.50")
    exception = ReconciliationException.objects.get()
    assert (exception.kind, exception.amount) == (ExceptionKind.AMOUNT_MISMATCH, Decimal("19.50"))


def test_a_second_payment_of_a_paid_invoice_is_queued_as_paid_twice():
    invoice, _center, consumer = october_invoice()
    pay(invoice, "1000.00", key="a")
    pay(invoice, "1000.00", key="b")
    assert ReconciliationException.objects.get().kind == ExceptionKind.INVOICE_PAID_TWICE
    assert credit_balance(consumer, "CNY") == Decimal("1000.00")


def test_a_credit_note_on_a_paid_invoice_turns_into_credit():
    invoice, _center, consumer = october_invoice()
    pay(invoice, "1000.00")
    line = invoice.lines.get()
    credit_note_issue(
        actor=finance_clerk(),
        invoice_id=invoice.pk,
        lines=[CreditRequest(line.pk, Decimal("100.00"))],
        reason="Node down for an hour",
        now=PAID_AT,
    )
    invoice.refresh_from_db()
    assert invoice_outstanding(invoice) == Decimal("0")
    assert credit_balance(consumer, "CNY") == Decimal("100.00")
    assert balance(consumer, AccountRole.RECEIVABLE) == Decimal("0")
    assert [a.amount for a in PaymentAllocation.objects.order_by("id")] == [Decimal("1000.0000"), Decimal("-100.0000")]
    assert trial_balance() == {"CNY": Decimal("0")}


def test_write_off_within_tolerance_settles_and_beyond_is_refused():
    invoice, _center, _consumer = october_invoice()
    pay(invoice, "999.40")
    clerk = finance_clerk()
    with pytest.raises(Conflict) as refused:
        write_off_create(actor=clerk, amount=Decimal("1.50"), reason="bank fee", now=PAID_AT, invoice=invoice)
    assert refused.value.code == "exceeds_tolerance"
    write_off_create(actor=clerk, amount=Decimal("0.60"), reason="bank fee", now=PAID_AT, invoice=invoice)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert balance(None, AccountRole.WRITE_OFF) == Decimal("0.60")


def test_a_locked_period_refuses_movements_into_it_and_later_ones_go_to_the_open_month():
    invoice, _center, consumer = october_invoice()
    clerk = finance_clerk()
    locked = period_lock(actor=clerk, period_label="2026-10", now=PAID_AT)
    assert locked.locked_by == clerk.label
    with pytest.raises(Conflict) as again:
        period_lock(actor=clerk, period_label="2026-10", now=PAID_AT)
    assert again.value.code == "period_not_lockable"
    # A bank transfer dated into October is booked in November, the first month not locked.
    payment = payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal("1000.00"),
        key="x",
        received_at=datetime(2026, 10, 30, tzinfo=UTC),
        now=PAID_AT,
        invoice=invoice,
    ).payment
    assert payment.period.label == "2026-11"
    # And PostgreSQL itself refuses anything written into October.
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        JournalEntry.objects.create(key="sneaky", kind="x", memo="x", period=period(OCT), posted_at=PAID_AT)
    assert period(NOV).locked_at is None


def test_credit_on_hand_pays_the_next_invoice_when_it_is_finalized():
    invoice, _center, consumer = october_invoice()
    payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal("300.00"),
        key="advance",
        received_at=datetime(2026, 11, 1, tzinfo=UTC),
        now=PAID_AT,
        invoice=None,
    )
    assert ReconciliationException.objects.get().kind == ExceptionKind.PAYMENT_WITHOUT_INVOICE
    # Finance applies the credit on hand (finalizing an invoice does the same for it).
    from billing.services.payments import credit_apply

    credit_apply(consumer=consumer, currency="CNY", now=PAID_AT)
    invoice.refresh_from_db()
    assert invoice_outstanding(invoice) == Decimal("700.00")
    assert credit_balance(consumer, "CNY") == Decimal("0")


def test_locked_is_forever_and_allocations_are_append_only():
    invoice, _center, _consumer = october_invoice()
    pay(invoice, "1000.00")
    period_lock(actor=finance_clerk(), period_label="2026-10", now=PAID_AT)
    october = period(OCT)
    october.locked_at = None
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        october.save(update_fields=["locked_at"])
    allocation = PaymentAllocation.objects.get()
    with pytest.raises((IntegrityError, InternalError)), transaction.atomic():
        PaymentAllocation.objects.filter(pk=allocation.pk).update(amount=Decimal("1"))
    assert period(OCT).locked_at == PAID_AT
