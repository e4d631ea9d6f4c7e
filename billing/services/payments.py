"""Money coming in from consumers and where it goes: payments, allocations to invoices, credit balances, refunds
and write-offs, the exceptions finance must look at, and locking a reconciled month.

How the ledger sees it (each movement one entry with a deterministic key, ARCHITECTURE.md §6.4):
- a received payment (`payment:<id>`): Dr cash (bank transfer) or Stripe balance, Cr the consumer's credit
  balance — every yuan received first belongs to the consumer;
- an allocation (`allocation:<id>`): Dr consumer credit, Cr receivable — part of that credit pays an invoice;
- a refund (`refund:<id>`): Dr consumer credit, Cr cash or Stripe balance;
- a write-off (`write_off:<id>`): Dr write-off, Cr receivable (an invoice's small remainder), or the reverse
  against consumer credit (a small overpayment kept).
So an invoice is paid when its allocations cover what is left of it after credit notes and write-offs; an
overpayment is simply credit no allocation used; an underpayment leaves the invoice open with the remainder shown.

Every row dated into a month carries that month's period, or the first later month not locked: a locked month's
books never change (a database trigger refuses it, migration 0007), and corrections land in the open period.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, InvalidInput, NotFound
from accounts.models import Organization
from accounts.services import audit_record
from billing.models import (
    AccountRole,
    BillingPeriod,
    CreditNote,
    ExceptionKind,
    ExceptionResolution,
    ExceptionStatus,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentStatus,
    PeriodStatus,
    ReconciliationException,
    Refund,
    RefundStatus,
    WriteOff,
)
from billing.periods_calendar import label, month_start, next_month
from billing.services.invoices import require_platform_finance
from billing.services.ledger import credit, debit, journal_post
from billing.services.periods import period_for
from marketplace.money import format_money, round_money
from marketplace.realtime import send_to_organizations

logger = logging.getLogger(__name__)
ZERO = Decimal(0)

# Where received money sits: a bank transfer lands in the platform's bank account, a card payment in its Stripe
# balance until Stripe pays it out.
CASH_ROLE = {PaymentMethod.BANK_TRANSFER: AccountRole.CASH, PaymentMethod.STRIPE: AccountRole.STRIPE_BALANCE}


def amount_tolerance(currency: str) -> Decimal:
    """How far a payment may differ from what it pays and still count as that payment (bank charges, rounding):
    `RECONCILIATION_TOLERANCE` in the currency's units; also the most a clerk may write off."""
    return round_money(Decimal(settings.RECONCILIATION_TOLERANCE), currency)


# --- periods ------------------------------------------------------------------------------------------------------


def posting_period(at: datetime) -> BillingPeriod:
    """The period a movement dated `at` is booked in: its own month, or the first later month that is not locked."""
    start = month_start(at)
    while True:
        period = period_for(start)
        if period.locked_at is None:
            return period
        start = next_month(start)


# --- reading what is owed -----------------------------------------------------------------------------------------


def invoice_outstanding(invoice: Invoice) -> Decimal:
    """What the consumer still owes on an invoice: its total less credit notes, payments applied and write-offs
    (never below zero: a credit note on a paid invoice becomes the consumer's credit balance instead)."""
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
        return ZERO
    return invoices_outstanding([invoice])[invoice.pk].due


class InvoiceBalance(NamedTuple):
    """What was paid on an invoice (allocations, net of credit given back), what credit notes took off it, and what
    is still owed (`invoice_outstanding`'s rule)."""

    paid: Decimal
    due: Decimal
    credited: Decimal


def _grouped(queryset, field: str, ids: list[Any]) -> dict[Any, Decimal]:
    rows = queryset.filter(invoice_id__in=ids).values("invoice_id").annotate(total=Sum(field)).order_by()
    return {row["invoice_id"]: row["total"] or ZERO for row in rows}


def invoices_outstanding(invoices: Iterable[Invoice]) -> dict[Any, InvoiceBalance]:
    """Paid and still owed of many invoices at once (a page of a list) in three grouped queries, whatever their
    number: the one place the rule is written. Owed: total − credit notes − payments applied − write-offs, never
    below zero, and nothing on a draft or a void invoice."""
    invoices = list(invoices)
    ids = [invoice.pk for invoice in invoices]
    if not ids:
        return {}
    paid = _grouped(PaymentAllocation.objects, "amount", ids)
    credited = _grouped(CreditNote.objects, "total", ids)
    written_off = _grouped(WriteOff.objects, "amount", ids)
    balances = {}
    for invoice in invoices:
        paid_on = paid.get(invoice.pk, ZERO)
        credited_on = credited.get(invoice.pk, ZERO)
        due = ZERO
        if invoice.status in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
            due = max(invoice.total - credited_on - paid_on - written_off.get(invoice.pk, ZERO), ZERO)
        balances[invoice.pk] = InvoiceBalance(paid=paid_on, due=due, credited=credited_on)
    return balances


def _grouped_by_payment(queryset, ids: list[Any]) -> dict[Any, Decimal]:
    rows = queryset.filter(payment_id__in=ids).values("payment_id").annotate(total=Sum("amount")).order_by()
    return {row["payment_id"]: row["total"] or ZERO for row in rows}


def payments_unapplied(payments: Iterable[Payment]) -> dict[Any, Decimal]:
    """What of each received payment is still the consumer's credit — not applied to an invoice, refunded (or being
    refunded) or kept by a write-off — for many payments in three grouped queries: the one place the rule is
    written."""
    payments = list(payments)
    ids = [payment.pk for payment in payments if payment.status == PaymentStatus.SUCCEEDED]
    applied = _grouped_by_payment(PaymentAllocation.objects, ids) if ids else {}
    refunded = _grouped_by_payment(Refund.objects.exclude(status=RefundStatus.FAILED), ids) if ids else {}
    kept = _grouped_by_payment(WriteOff.objects, ids) if ids else {}  # a kept overpayment is a negative write-off
    return {
        payment.pk: (
            payment.amount - applied.get(payment.pk, ZERO) - refunded.get(payment.pk, ZERO) + kept.get(payment.pk, ZERO)
            if payment.status == PaymentStatus.SUCCEEDED
            else ZERO
        )
        for payment in payments
    }


def payment_unapplied(payment: Payment) -> Decimal:
    return payments_unapplied([payment])[payment.pk]


def credit_balance(consumer: Organization | Any, currency: str) -> Decimal:
    """The consumer's credit: received money not yet applied to an invoice nor refunded."""
    consumer_id = getattr(consumer, "pk", consumer)
    payments = Payment.objects.filter(consumer_id=consumer_id, currency=currency, status=PaymentStatus.SUCCEEDED)
    return sum(payments_unapplied(payments).values(), ZERO)


# --- exceptions ---------------------------------------------------------------------------------------------------


def exception_open(
    *,
    kind: str,
    subject: str,
    detail: str,
    now: datetime,
    period: BillingPeriod | None = None,
    currency: str = "",
    amount: Decimal | None = None,
    **links: Any,
) -> ReconciliationException:
    """Queue something for finance, once per kind and subject: finding the same problem again returns the
    exception already queued (open or resolved) and queues nothing."""
    exception, created = ReconciliationException.objects.get_or_create(
        kind=kind,
        subject=subject,
        defaults={
            "detail": detail[:500],
            "period": period or posting_period(now),
            "currency": currency,
            "amount": amount,
            "opened_at": now,
            **links,
        },
    )
    if created:
        logger.info("reconciliation.exception_opened", extra={"kind": kind, "subject": subject})
    return exception


def exception_resolve(
    *, exception: ReconciliationException, resolution: str, note: str, actor_label: str, now: datetime
) -> ReconciliationException:
    """Mark an exception resolved (inside the caller's transaction, with the row locked by the caller)."""
    if exception.status != ExceptionStatus.OPEN:
        raise Conflict(_("This exception was already resolved."), code="already_resolved")
    exception.status = ExceptionStatus.RESOLVED
    exception.resolution = resolution
    exception.resolution_note = note[:500]
    exception.resolved_at = now
    exception.resolved_by = actor_label
    exception.save(update_fields=["status", "resolution", "resolution_note", "resolved_at", "resolved_by"])
    return exception


def exceptions_resolve_for(*, subject: str, resolution: str, note: str, actor_label: str, now: datetime) -> int:
    """Resolve every open exception about `subject` (a payment that failed and then succeeded, a payout retried)."""
    count = 0
    for exception in ReconciliationException.objects.select_for_update().filter(
        subject=subject, status=ExceptionStatus.OPEN
    ):
        exception_resolve(exception=exception, resolution=resolution, note=note, actor_label=actor_label, now=now)
        count += 1
    return count


# --- payments -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    payment: Payment
    created: bool


def _check_amount(amount: Decimal, currency: str, field: str = "amount") -> None:
    if amount <= 0 or round_money(amount, currency) != amount:
        raise InvalidInput(
            _("Enter a positive amount in whole %(currency)s minor units.") % {"currency": currency},
            errors={field: [_("Must be positive, with at most the currency's decimals.")]},
        )


def _locked_payment(payment_id: Any) -> Payment:
    payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(_("No such payment."))
    return payment


def _post_receipt(payment: Payment, now: datetime) -> None:
    journal_post(
        key=f"payment:{payment.pk}",
        kind="payment",
        memo=f"{PaymentMethod(payment.method).label} from {payment.consumer.name}"
        + (f" ({payment.reference})" if payment.reference else ""),
        postings=[
            debit(None, CASH_ROLE[payment.method], payment.currency, payment.amount),
            credit(payment.consumer_id, AccountRole.CUSTOMER_CREDIT, payment.currency, payment.amount),
        ],
        now=now,
        period=payment.period,
    )


def payment_record(
    *,
    consumer: Organization,
    method: str,
    currency: str,
    amount: Decimal,
    key: str,
    received_at: datetime | None,
    now: datetime,
    invoice: Invoice | None = None,
    reference: str = "",
    payer_name: str = "",
    recorded_by: str = "",
    bank_line: Any = None,
    stripe_payment_intent: str | None = None,
    stripe_charge: str | None = None,
    status: str = PaymentStatus.SUCCEEDED,
) -> Receipt:
    """Record a payment once per `key` (a rerun, a replayed webhook, a double click find the first). A received
    payment is posted and applied: to `invoice` when the payer named one, otherwise it waits as credit with an
    exception for finance. A pending one (a PaymentIntent not yet confirmed) posts nothing until
    `payment_succeeded`."""
    _check_amount(amount, currency)
    if invoice is not None and (invoice.consumer_id != consumer.pk or invoice.currency != currency):
        raise InvalidInput(
            _("Invoice %(number)s is %(consumer)s's, in %(currency)s; this payment is not.")
            % {"number": invoice.number, "consumer": invoice.consumer.name, "currency": invoice.currency},
            errors={"invoice": [_("Not an invoice of this payer in this currency.")]},
        )
    with transaction.atomic():
        existing = Payment.objects.filter(key=key).first()
        if existing is not None:
            return Receipt(existing, False)
        payment = Payment.objects.create(
            consumer=consumer,
            method=method,
            status=PaymentStatus.PENDING,
            currency=currency,
            amount=amount,
            invoice=invoice,
            reference=reference[:200],
            payer_name=payer_name[:200],
            key=key,
            stripe_payment_intent=stripe_payment_intent,
            stripe_charge=stripe_charge,
            bank_line=bank_line,
            recorded_by=recorded_by,
            created_at=now,
            updated_at=now,
        )
        if status == PaymentStatus.SUCCEEDED:
            payment = payment_succeeded(payment_id=payment.pk, received_at=received_at or now, now=now)
    return Receipt(payment, True)


def payment_succeeded(
    *, payment_id: Any, received_at: datetime, now: datetime, stripe_charge: str | None = None
) -> Payment:
    """pending (or failed: a retried card) → succeeded: book the money and apply it. Repeating it changes
    nothing."""
    with transaction.atomic():
        payment = _locked_payment(payment_id)
        if payment.status == PaymentStatus.SUCCEEDED:
            return payment
        payment.status = PaymentStatus.SUCCEEDED
        payment.received_at = received_at
        payment.period = posting_period(received_at)
        payment.failure_message = ""
        if stripe_charge and not payment.stripe_charge:
            payment.stripe_charge = stripe_charge
        payment.updated_at = now
        payment.save(
            update_fields=["status", "received_at", "period", "failure_message", "stripe_charge", "updated_at"]
        )
        _post_receipt(payment, now)
        exceptions_resolve_for(
            subject=f"payment:{payment.pk}",
            resolution=ExceptionResolution.RETRIED,
            note="The payment succeeded later.",
            actor_label="system",
            now=now,
        )
        _apply_received(payment, now)
        send_to_organizations(
            [payment.consumer_id],
            {"event": "payment.received", "payment": str(payment.pk), "amount": str(payment.amount)},
        )
    logger.info("payment.succeeded", extra={"payment": str(payment.pk), "method": payment.method})
    return payment


def payment_failed(*, payment_id: Any, message: str, now: datetime) -> Payment:
    """A payment attempt failed (a declined card): nothing is booked; finance sees it in the exceptions queue and
    the consumer on the invoice. A payment that already succeeded is not undone by a late failure event."""
    with transaction.atomic():
        payment = _locked_payment(payment_id)
        if payment.status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
            return payment
        payment.status = PaymentStatus.FAILED
        payment.failure_message = message[:500]
        payment.updated_at = now
        payment.save(update_fields=["status", "failure_message", "updated_at"])
        exception_open(
            kind=ExceptionKind.PAYMENT_FAILED,
            subject=f"payment:{payment.pk}",
            detail=_("Payment of %(amount)s %(currency)s by %(consumer)s failed: %(message)s")
            % {
                "amount": format_money(payment.amount, payment.currency),
                "currency": payment.currency,
                "consumer": payment.consumer.name,
                "message": message,
            },
            now=now,
            currency=payment.currency,
            amount=payment.amount,
            consumer=payment.consumer,
            payment=payment,
            invoice=payment.invoice,
        )
    return payment


def _apply_received(payment: Payment, now: datetime) -> None:
    """Apply a just-received payment: to the invoice it names (raising an exception when that invoice was already
    paid, or when the amount is off by more than the tolerance), else queue it as a payment without an invoice."""
    invoice = payment.invoice
    tolerance = amount_tolerance(payment.currency)
    subject = f"payment:{payment.pk}"
    common = {"now": now, "currency": payment.currency, "consumer": payment.consumer, "payment": payment}
    if invoice is None:
        exception_open(
            kind=ExceptionKind.PAYMENT_WITHOUT_INVOICE,
            subject=subject,
            detail=_("%(amount)s %(currency)s from %(consumer)s names no invoice; it is kept as credit.")
            % {
                "amount": format_money(payment.amount, payment.currency),
                "currency": payment.currency,
                "consumer": payment.consumer.name,
            },
            amount=payment.amount,
            period=payment.period,
            **common,
        )
        return
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    outstanding = invoice_outstanding(invoice)
    if outstanding <= 0:
        exception_open(
            kind=ExceptionKind.INVOICE_PAID_TWICE,
            subject=subject,
            detail=_("Invoice %(number)s was already paid; %(amount)s %(currency)s more arrived and is kept as credit.")
            % {
                "number": invoice.number,
                "amount": format_money(payment.amount, payment.currency),
                "currency": payment.currency,
            },
            amount=payment.amount,
            period=payment.period,
            invoice=invoice,
            **common,
        )
        return
    allocation_create(payment=payment, invoice=invoice, amount=min(outstanding, payment.amount), now=now)
    difference = payment.amount - outstanding
    if abs(difference) > tolerance:
        exception_open(
            kind=ExceptionKind.AMOUNT_MISMATCH,
            subject=subject,
            detail=(
                _("%(amount)s %(currency)s paid for invoice %(number)s, which owed %(owed)s: %(rest)s kept as credit.")
                if difference > 0
                else _("%(amount)s %(currency)s paid for invoice %(number)s, which owed %(owed)s: %(rest)s still open.")
            )
            % {
                "amount": format_money(payment.amount, payment.currency),
                "currency": payment.currency,
                "number": invoice.number,
                "owed": format_money(outstanding, payment.currency),
                "rest": format_money(abs(difference), payment.currency),
            },
            amount=difference,
            period=payment.period,
            invoice=invoice,
            **common,
        )


# --- allocations --------------------------------------------------------------------------------------------------


def allocation_create(
    *, payment: Payment, invoice: Invoice, amount: Decimal, now: datetime, actor_label: str = "", note: str = ""
) -> PaymentAllocation:
    """Apply `amount` of a payment's unapplied credit to an invoice, inside the caller's transaction. Refuses more
    than either has left; marks the invoice paid when nothing is left to pay."""
    _check_amount(amount, payment.currency)
    payment = _locked_payment(payment.pk)
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.consumer_id != payment.consumer_id or invoice.currency != payment.currency:
        raise InvalidInput(
            _("Invoice %(number)s is not owed by this payment's payer in %(currency)s.")
            % {"number": invoice.number, "currency": payment.currency},
            errors={"invoice": [_("Another payer's invoice or another currency.")]},
        )
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
        raise Conflict(_("Only a finalized invoice can be paid."), code="invalid_state")
    unapplied = payment_unapplied(payment)
    outstanding = invoice_outstanding(invoice)
    if amount > unapplied:
        raise Conflict(
            _("Only %(left)s %(currency)s of this payment is left to apply.")
            % {"left": format_money(unapplied, payment.currency), "currency": payment.currency},
            code="exceeds_payment",
        )
    if amount > outstanding:
        raise Conflict(
            _("Invoice %(number)s has only %(left)s %(currency)s left to pay.")
            % {
                "number": invoice.number,
                "left": format_money(outstanding, invoice.currency),
                "currency": invoice.currency,
            },
            code="exceeds_invoice",
        )
    period = posting_period(max(payment.received_at or now, invoice.finalized_at or now))
    allocation = PaymentAllocation.objects.create(
        payment=payment,
        invoice=invoice,
        amount=amount,
        period=period,
        created_at=now,
        created_by=actor_label,
        note=note[:500],
    )
    journal_post(
        key=f"allocation:{allocation.pk}",
        kind="allocation",
        memo=f"Payment applied to {invoice.number}",
        postings=[
            debit(payment.consumer_id, AccountRole.CUSTOMER_CREDIT, payment.currency, amount),
            credit(payment.consumer_id, AccountRole.RECEIVABLE, payment.currency, amount),
        ],
        now=now,
        period=period,
    )
    invoice_settle(invoice=invoice, now=now)
    return allocation


def invoice_settle(*, invoice: Invoice, now: datetime) -> Invoice:
    """finalized → paid once nothing is left to pay (inside the caller's transaction, invoice row locked)."""
    if (
        invoice.status == InvoiceStatus.FINALIZED
        and invoice_outstanding(invoice) <= 0
        and (
            PaymentAllocation.objects.filter(invoice=invoice).exists()
            or WriteOff.objects.filter(invoice=invoice).exists()
        )
    ):
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        invoice.save(update_fields=["status", "paid_at"])
        send_to_organizations(
            [invoice.consumer_id], {"event": "invoice.paid", "invoice": str(invoice.pk), "number": invoice.number}
        )
        logger.info("invoice.paid", extra={"invoice": str(invoice.pk)})
    return invoice


def credit_apply(*, consumer: Organization | Any, currency: str, now: datetime) -> list[PaymentAllocation]:
    """Apply the consumer's credit balance to its open invoices, oldest payment to oldest due invoice first (when
    an invoice is finalized, and when finance keeps an overpayment as credit)."""
    consumer_id = getattr(consumer, "pk", consumer)
    made: list[PaymentAllocation] = []
    with transaction.atomic():
        invoices = list(
            Invoice.objects.select_for_update()
            .filter(consumer_id=consumer_id, currency=currency, status=InvoiceStatus.FINALIZED)
            .order_by("due_at", "number")
        )
        payments = list(
            Payment.objects.select_for_update()
            .filter(consumer_id=consumer_id, currency=currency, status=PaymentStatus.SUCCEEDED)
            .order_by("received_at", "pk")
        )
        # Read both sides once (a finalization runs this for every invoice): credit left per payment, owed per
        # invoice, both kept up to date here as allocations are made (allocation_create checks them again).
        credit_left = {pk: left for pk, left in payments_unapplied(payments).items() if left > 0}
        if not credit_left:
            return made
        owed = {pk: balance.due for pk, balance in invoices_outstanding(invoices).items()}
        for invoice in invoices:
            for payment in payments:
                amount = min(credit_left.get(payment.pk, ZERO), owed[invoice.pk])
                if amount > 0:
                    made.append(allocation_create(payment=payment, invoice=invoice, amount=amount, now=now))
                    credit_left[payment.pk] -= amount
                    owed[invoice.pk] -= amount
    return made


# --- refunds and write-offs ---------------------------------------------------------------------------------------


def refund_post(*, refund_id: Any, now: datetime, reference: str = "") -> Refund:
    """pending → succeeded: the money left the platform (Stripe confirmed, or finance sent the transfer)."""
    with transaction.atomic():
        refund = Refund.objects.select_for_update().select_related("payment", "payment__consumer").get(pk=refund_id)
        if refund.status == RefundStatus.SUCCEEDED:
            return refund
        refund.status = RefundStatus.SUCCEEDED
        refund.succeeded_at = now
        refund.period = posting_period(now)
        refund.reference = reference or refund.reference
        refund.save(update_fields=["status", "succeeded_at", "period", "reference"])
        payment = refund.payment
        journal_post(
            key=f"refund:{refund.pk}",
            kind="refund",
            memo=f"Refund to {payment.consumer.name}" + (f" ({refund.reference})" if refund.reference else ""),
            postings=[
                debit(payment.consumer_id, AccountRole.CUSTOMER_CREDIT, refund.currency, refund.amount),
                credit(None, CASH_ROLE[payment.method], refund.currency, refund.amount),
            ],
            now=now,
            period=refund.period,
        )
    return refund


def refund_create(
    *,
    payment: Payment,
    amount: Decimal,
    key: str,
    reason: str,
    now: datetime,
    created_by: str,
    credit_note: Any = None,
) -> Refund:
    """Reserve `amount` of a payment's unapplied credit for a refund (idempotent by `key`). The caller sends it
    (Stripe) or records it sent (bank) and then calls `refund_post`."""
    _check_amount(amount, payment.currency)
    with transaction.atomic():
        existing = Refund.objects.filter(key=key).first()
        if existing is not None:
            return existing
        payment = _locked_payment(payment.pk)
        left = payment_unapplied(payment)
        if amount > left:
            raise Conflict(
                _("Only %(left)s %(currency)s of this payment can be refunded.")
                % {"left": format_money(left, payment.currency), "currency": payment.currency},
                code="exceeds_payment",
            )
        return Refund.objects.create(
            payment=payment,
            credit_note=credit_note,
            currency=payment.currency,
            amount=amount,
            key=key,
            reason=reason[:500],
            created_at=now,
            created_by=created_by,
        )


def write_off_create(
    *,
    actor: Actor,
    amount: Decimal,
    reason: str,
    now: datetime,
    invoice: Invoice | None = None,
    payment: Payment | None = None,
) -> WriteOff:
    """Write off a small difference, with the reason: an invoice's remainder up to the tolerance (the invoice
    becomes paid), or a small overpayment the platform keeps. Refuses more than the tolerance: larger differences
    are a credit note or a refund."""
    require_platform_finance(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why the difference is written off."), errors={"reason": [_("Required.")]})
    if (invoice is None) == (payment is None):
        raise InvalidInput(_("Write off either an invoice's remainder or a payment's overpayment."))
    currency = (invoice or payment).currency
    _check_amount(amount, currency)
    if amount > amount_tolerance(currency):
        raise Conflict(
            _("At most %(limit)s %(currency)s can be written off; raise a credit note or a refund instead.")
            % {"limit": format_money(amount_tolerance(currency), currency), "currency": currency},
            code="exceeds_tolerance",
        )
    with transaction.atomic():
        period = posting_period(now)
        if invoice is not None:
            invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
            left = invoice_outstanding(invoice)
            if amount > left:
                raise Conflict(
                    _("Invoice %(number)s has only %(left)s %(currency)s left to pay.")
                    % {"number": invoice.number, "left": format_money(left, currency), "currency": currency},
                    code="exceeds_invoice",
                )
            write_off = WriteOff.objects.create(
                consumer_id=invoice.consumer_id,
                invoice=invoice,
                currency=currency,
                amount=amount,
                reason=reason[:500],
                period=period,
                created_at=now,
                created_by=actor.label,
            )
            postings = [
                debit(None, AccountRole.WRITE_OFF, currency, amount),
                credit(invoice.consumer_id, AccountRole.RECEIVABLE, currency, amount),
            ]
        else:
            payment = _locked_payment(payment.pk)
            left = payment_unapplied(payment)
            if amount > left:
                raise Conflict(
                    _("Only %(left)s %(currency)s of this payment is unapplied.")
                    % {"left": format_money(left, currency), "currency": currency},
                    code="exceeds_payment",
                )
            write_off = WriteOff.objects.create(
                consumer_id=payment.consumer_id,
                payment=payment,
                currency=currency,
                amount=-amount,
                reason=reason[:500],
                period=period,
                created_at=now,
                created_by=actor.label,
            )
            postings = [
                debit(payment.consumer_id, AccountRole.CUSTOMER_CREDIT, currency, amount),
                credit(None, AccountRole.WRITE_OFF, currency, amount),
            ]
        journal_post(
            key=f"write_off:{write_off.pk}",
            kind="write_off",
            memo=f"Written off: {reason}"[:300],
            postings=postings,
            now=now,
            period=period,
        )
        if invoice is not None:
            invoice_settle(invoice=invoice, now=now)
        audit_record(
            action="payment.written_off",
            organization=actor.organization,
            actor=actor,
            target=write_off,
            after={
                "amount": str(amount),
                "currency": currency,
                "reason": reason,
                "invoice": invoice.number if invoice else None,
            },
            now=now,
        )
    return write_off


# --- the period lock ----------------------------------------------------------------------------------------------


def lock_refusal(period: BillingPeriod) -> str | None:
    """Why a period cannot be locked yet, or None."""
    if period.status != PeriodStatus.CLOSED:
        return _("%(period)s is not closed yet; close it before locking it.") % {"period": period.label}
    if period.locked_at is not None:
        return _("%(period)s is already locked.") % {"period": period.label}
    earlier = (
        BillingPeriod.objects.filter(start__lt=period.start, locked_at__isnull=True)
        .filter(Q(status=PeriodStatus.CLOSED) | Q(invoices__isnull=False))
        .order_by("start")
        .first()
    )
    if earlier is not None:
        return _("Lock %(earlier)s first: months are locked in order.") % {"earlier": earlier.label}
    open_exceptions = ReconciliationException.objects.filter(period=period, status=ExceptionStatus.OPEN).count()
    if open_exceptions:
        return _("%(count)s exception(s) of %(period)s are still open; resolve them first.") % {
            "count": open_exceptions,
            "period": period.label,
        }
    return None


def period_lock(*, actor: Actor, period_label: str, now: datetime) -> BillingPeriod:
    """Lock a reconciled, closed month: from now on PostgreSQL refuses every movement dated into it."""
    require_platform_finance(actor)
    try:
        start = datetime.strptime(period_label, "%Y-%m").replace(tzinfo=month_start(now).tzinfo)
    except ValueError:
        raise InvalidInput(_("A period is written YYYY-MM."), errors={"period": [_("Use YYYY-MM.")]}) from None
    with transaction.atomic():
        period = BillingPeriod.objects.select_for_update().filter(start=start).first()
        if period is None:
            raise NotFound(_("No such period."))
        refusal = lock_refusal(period)
        if refusal:
            raise Conflict(refusal, code="period_not_lockable")
        period.locked_at = now
        period.locked_by = actor.label
        period.save(update_fields=["locked_at", "locked_by"])
        audit_record(
            action="period.locked",
            organization=actor.organization,
            actor=actor,
            target=period,
            after={"period": label(period.start)},
            now=now,
        )
    logger.info("period.locked", extra={"period": period.label})
    return period


def credit_note_settle(
    *, invoice: Invoice, credit_total: Decimal, before_outstanding: Decimal, now: datetime, note: Any = None
) -> list[PaymentAllocation]:
    """After a credit note on an invoice that was (partly) paid: what it credits beyond what was still owed goes
    back to the consumer as credit, by negative allocations of the invoice's latest payments first (inside the
    credit note's transaction). That credit then pays the next invoice, or is refunded."""
    excess = credit_total - before_outstanding
    made: list[PaymentAllocation] = []
    if excess <= 0:
        return made
    period = posting_period(now)
    paid_by: dict[Any, Decimal] = {}
    for allocation in PaymentAllocation.objects.filter(invoice=invoice).order_by("-id"):
        paid_by[allocation.payment_id] = paid_by.get(allocation.payment_id, ZERO) + allocation.amount
    for payment_id, paid in paid_by.items():
        take = min(paid, excess)
        if take <= 0:
            continue
        payment = _locked_payment(payment_id)
        allocation = PaymentAllocation.objects.create(
            payment=payment,
            invoice=invoice,
            amount=-take,
            period=period,
            created_at=now,
            created_by="system",
            note=(f"Credit note {note.number}" if note is not None else "Credit note")[:500],
        )
        journal_post(
            key=f"allocation:{allocation.pk}",
            kind="allocation",
            memo=f"Credit note on paid {invoice.number} returned as credit",
            postings=[
                debit(payment.consumer_id, AccountRole.RECEIVABLE, payment.currency, take),
                credit(payment.consumer_id, AccountRole.CUSTOMER_CREDIT, payment.currency, take),
            ],
            now=now,
            period=period,
        )
        made.append(allocation)
        excess -= take
        if excess <= 0:
            break
    return made


def bank_transfer_record(
    *,
    actor: Actor,
    invoice_id: Any,
    amount: Decimal,
    received_on: date,
    reference: str,
    payer_name: str = "",
    submission: str,
    now: datetime,
) -> Receipt:
    """Finance records by hand a bank transfer paying an invoice (seen in the bank's online banking before the
    statement is imported). `reference` is the bank's reference of the transfer: when the statement arrives, its
    line with that reference is tied to this payment instead of paying the invoice a second time. The form's
    one-time `submission` token keys it, so a double click records it once."""
    require_platform_finance(actor)
    reference = (reference or "").strip()
    errors: dict[str, list[str]] = {}
    if not reference:
        errors["reference"] = [_("Give the bank's reference of the transfer.")]
    if received_on > now.date():
        errors["received_on"] = [_("A transfer cannot have been received in the future.")]
    if errors:
        raise InvalidInput(next(iter(errors.values()))[0], errors=errors)
    invoice = Invoice.objects.select_related("consumer").filter(pk=invoice_id).first()
    if invoice is None:
        raise NotFound(_("No such invoice."))
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
        raise Conflict(_("Only a finalized invoice can be paid."), code="invalid_state")
    with transaction.atomic():
        receipt = payment_record(
            consumer=invoice.consumer,
            method=PaymentMethod.BANK_TRANSFER,
            currency=invoice.currency,
            amount=amount,
            key=f"manual:{submission}"[:120],
            received_at=datetime.combine(received_on, datetime.min.time(), tzinfo=UTC),
            now=now,
            invoice=invoice,
            reference=reference,
            payer_name=payer_name or invoice.consumer.name,
            recorded_by=actor.label,
        )
        if receipt.created:
            audit_record(
                action="payment.recorded",
                organization=actor.organization,
                actor=actor,
                target=receipt.payment,
                after={
                    "invoice": invoice.number,
                    "amount": str(amount),
                    "currency": invoice.currency,
                    "received_on": received_on.isoformat(),
                    "reference": reference,
                },
                now=now,
            )
    return receipt


def recorded_transfer_for(*, currency: str, amount: Decimal, bank_reference: str, remittance: str) -> Payment | None:
    """The bank transfer finance recorded by hand that a statement line is (same amount and currency, not yet tied
    to a line, and the same bank reference — or the line names the invoice it paid), if exactly one is."""
    candidates = list(
        Payment.objects.filter(
            method=PaymentMethod.BANK_TRANSFER,
            status=PaymentStatus.SUCCEEDED,
            bank_line__isnull=True,
            key__startswith="manual:",
            currency=currency,
            amount=amount,
        ).select_related("invoice")
    )
    text = (remittance or "").upper()
    sure = [
        payment
        for payment in candidates
        if (bank_reference and payment.reference == bank_reference)
        or (payment.reference and payment.reference.upper() in text)
        or (payment.invoice_id and payment.invoice.number and payment.invoice.number.upper() in text)
    ]
    return sure[0] if len(sure) == 1 else None
