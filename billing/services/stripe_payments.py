"""Collecting from consumers through Stripe: a Stripe Customer per consumer organization, a PaymentIntent per
invoice (paid in the browser through the Payment Element, or charged off-session to the saved payment method when
the consumer chose autopay), and refunds of what credit notes give back on invoices paid by card.

Every Stripe call goes through `billing.stripe_gateway` and runs outside any transaction or row lock (STYLE.md
rule 3): we ask Stripe first, with a deterministic idempotency key derived from our own rows, then record its answer
with the idempotent services of `billing.services.payments` (a Payment keyed `stripe_pi:<PaymentIntent id>`, a
Refund keyed by its credit note). So a retried task, a double click or a webhook racing our own call finds the row
the first one wrote, and Stripe returns the object the first request created.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict
from accounts.models import Organization
from accounts.services import audit_record
from billing import stripe_gateway as gateway
from billing.models import (
    CreditNote,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
    PaymentMethod,
    PaymentProfile,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from billing.services.payments import (
    invoice_outstanding,
    payment_failed,
    payment_record,
    payment_succeeded,
    payment_unapplied,
    refund_create,
    refund_post,
)

logger = logging.getLogger(__name__)

# PaymentIntent states in which the consumer can still complete the payment in the browser.
PAYABLE_STATES = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})
AUTOPAY = "stripe:autopay"
INVOICE_PAGE = "stripe:invoice_page"


def payment_key(payment_intent_id: str) -> str:
    return f"stripe_pi:{payment_intent_id}"


# --- customers ----------------------------------------------------------------------------------------------------


def customer_ensure(*, consumer: Organization) -> str:
    """The consumer's Stripe Customer id, created on first need. Two callers racing both ask Stripe with the same
    idempotency key (so Stripe answers both with one customer) and the first conditional update wins; the other
    reads the winner's id."""
    PaymentProfile.objects.get_or_create(organization=consumer)
    existing = PaymentProfile.objects.filter(organization=consumer).values_list("stripe_customer_id", flat=True).first()
    if existing:
        return existing
    customer_id = gateway.customer_create(
        organization_id=str(consumer.pk),
        name=consumer.legal_name or consumer.name,
        idempotency_key=f"organization-{consumer.pk}-customer",
    )
    PaymentProfile.objects.filter(organization=consumer, stripe_customer_id__isnull=True).update(
        stripe_customer_id=customer_id
    )
    winner = PaymentProfile.objects.values_list("stripe_customer_id", flat=True).get(organization=consumer)
    if winner != customer_id:
        logger.info("stripe.customer_race_lost", extra={"organization": str(consumer.pk), "orphan": customer_id})
    return winner


# --- recording what Stripe did --------------------------------------------------------------------------------------


def _metadata(invoice: Invoice, source: str) -> dict[str, str]:
    return {
        "invoice_number": invoice.number or "",
        "invoice_id": str(invoice.pk),
        "consumer_id": str(invoice.consumer_id),
        "source": source,
    }


def intent_payment(
    *,
    consumer: Organization,
    payment_intent_id: str,
    amount: Decimal,
    currency: str,
    invoice: Invoice | None,
    now: datetime,
    recorded_by: str,
) -> Payment:
    """The pending Payment of a PaymentIntent, created once: our own call and a webhook about the same
    PaymentIntent may race to create it; the loser of the unique key reads the winner's row."""
    key = payment_key(payment_intent_id)
    try:
        with transaction.atomic():
            return payment_record(
                consumer=consumer,
                method=PaymentMethod.STRIPE,
                currency=currency,
                amount=amount,
                key=key,
                received_at=None,
                now=now,
                invoice=invoice,
                reference=invoice.number if invoice is not None else "",
                recorded_by=recorded_by,
                stripe_payment_intent=payment_intent_id,
                status=PaymentStatus.PENDING,
            ).payment
    except IntegrityError:
        return Payment.objects.get(key=key)


def _invoice_intent_payment(
    invoice: Invoice, payment_intent_id: str, amount: Decimal, now: datetime, recorded_by: str
) -> Payment:
    """`intent_payment` of a PaymentIntent for what is owed on one of the consumer's invoices."""
    return intent_payment(
        consumer=invoice.consumer,
        payment_intent_id=payment_intent_id,
        amount=amount,
        currency=invoice.currency,
        invoice=invoice,
        now=now,
        recorded_by=recorded_by,
    )


def intent_settle(*, payment: Payment, payment_intent: Any, now: datetime) -> Payment:
    """Move our Payment to what Stripe says its PaymentIntent is: succeeded books and applies the money, a
    decline records the failure (a failure never undoes a success: `payment_failed` ignores it)."""
    status = payment_intent["status"] if isinstance(payment_intent, dict) else payment_intent.status
    if status == "succeeded":
        return payment_succeeded(
            payment_id=payment.pk,
            received_at=now,
            now=now,
            stripe_charge=gateway.payment_intent_charge(payment_intent),
        )
    error = payment_intent.get("last_payment_error") if isinstance(payment_intent, dict) else None
    if error is None and not isinstance(payment_intent, dict):
        error = getattr(payment_intent, "last_payment_error", None)
    if status == "requires_payment_method" and error:
        message = (error.get("message") if isinstance(error, dict) else getattr(error, "message", "")) or ""
        return payment_failed(payment_id=payment.pk, message=message or _("The payment was declined."), now=now)
    return payment


# --- paying an invoice ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardPayment:
    """What the invoice page's Payment Element needs to confirm the payment in the browser."""

    payment: Payment
    payment_intent_id: str
    client_secret: str
    amount: Decimal
    currency: str


def _payable(invoice: Invoice) -> Decimal:
    if invoice.status != InvoiceStatus.FINALIZED:
        raise Conflict(
            _("Invoice %(number)s has nothing left to pay.") % {"number": invoice.number or _("draft")},
            code="nothing_to_pay",
        )
    outstanding = invoice_outstanding(invoice)
    if outstanding <= 0:
        raise Conflict(
            _("Invoice %(number)s has nothing left to pay.") % {"number": invoice.number}, code="nothing_to_pay"
        )
    return outstanding


def invoice_payment_intent(*, invoice: Invoice, now: datetime, actor: Actor | None = None) -> CardPayment:
    """The PaymentIntent the consumer pays `invoice` with in the browser, for what is still outstanding: the one
    created earlier while it can still be paid and is for that amount, else a new one (idempotency key from the
    invoice and its attempt number, so a double click creates one). `invoice` comes from a scoped selector. A new
    one is audited as the person (`actor`) who started paying; the money itself is booked when Stripe reports it."""
    if not gateway.enabled():
        raise gateway.StripeDisabled(_("Card payments are not enabled on this platform; pay by bank transfer."))
    outstanding = _payable(invoice)
    earlier = (
        Payment.objects.filter(
            invoice=invoice,
            method=PaymentMethod.STRIPE,
            status=PaymentStatus.PENDING,
            recorded_by=INVOICE_PAGE,
            amount=outstanding,
            stripe_payment_intent__isnull=False,
        )
        .order_by("-created_at")
        .first()
    )
    if earlier is not None:
        intent = gateway.payment_intent_retrieve(earlier.stripe_payment_intent)
        if intent.status in PAYABLE_STATES:
            return CardPayment(earlier, intent.id, intent.client_secret, outstanding, invoice.currency)
        if intent.status in ("processing", "succeeded", "requires_capture"):
            # The webhook has not told us yet; bring our row up to date rather than charge twice.
            intent_settle(payment=earlier, payment_intent=intent, now=now)
            raise Conflict(_("A card payment of this invoice is already being processed."), code="payment_in_progress")
    _cancel_stale(invoice, outstanding, now)
    customer_id = customer_ensure(consumer=invoice.consumer)
    attempt = Payment.objects.filter(invoice=invoice, method=PaymentMethod.STRIPE).count() + 1
    intent = gateway.payment_intent_create(
        amount=outstanding,
        currency=invoice.currency,
        customer_id=customer_id,
        metadata=_metadata(invoice, INVOICE_PAGE),
        idempotency_key=f"invoice-{invoice.pk}-pi-{attempt}",
    )
    with transaction.atomic():
        payment = _invoice_intent_payment(invoice, intent.id, outstanding, now, INVOICE_PAGE)
        audit_record(
            action="payment.card_started",
            organization=invoice.consumer,
            actor=actor,
            actor_label="" if actor is not None else INVOICE_PAGE,
            target=payment,
            after={
                "invoice": invoice.number,
                "amount": str(outstanding),
                "currency": invoice.currency,
                "payment_intent": intent.id,
            },
            now=now,
        )
    logger.info("stripe.payment_intent_created", extra={"invoice": str(invoice.pk), "payment_intent": intent.id})
    return CardPayment(payment, intent.id, intent.client_secret, outstanding, invoice.currency)


def _cancel_stale(invoice: Invoice, outstanding: Decimal, now: datetime) -> None:
    """Cancel the invoice page's earlier PaymentIntents for another amount (a bank transfer or a credit note
    arrived since), so that a page left open cannot pay the old amount. One that Stripe says already went through
    is brought up to date instead."""
    stale = Payment.objects.filter(
        invoice=invoice,
        method=PaymentMethod.STRIPE,
        status=PaymentStatus.PENDING,
        recorded_by=INVOICE_PAGE,
        stripe_payment_intent__isnull=False,
    ).exclude(amount=outstanding)
    for payment in stale:
        try:
            intent = gateway.payment_intent_cancel(payment.stripe_payment_intent)
        except gateway.StripeRequestFailed:
            intent = gateway.payment_intent_retrieve(payment.stripe_payment_intent)
        if intent.status == "canceled":
            Payment.objects.filter(pk=payment.pk, status=PaymentStatus.PENDING).update(
                status=PaymentStatus.CANCELED, updated_at=now
            )
        else:
            intent_settle(payment=payment, payment_intent=intent, now=now)


def invoice_autopay(*, invoice_id: Any, now: datetime) -> Payment | None:
    """Charge a just-finalized invoice to the consumer's saved payment method, off-session, when the consumer
    chose autopay. Once per invoice: a rerun finds the pending or received autopay payment (or nothing left to
    pay) and does nothing. A decline is recorded as a failed payment (finance sees it; the invoice stays open)."""
    if not gateway.enabled():
        return None
    invoice = Invoice.objects.select_related("consumer").filter(pk=invoice_id).first()
    if invoice is None or invoice.status != InvoiceStatus.FINALIZED:
        return None
    profile = PaymentProfile.objects.filter(organization_id=invoice.consumer_id).first()
    if profile is None or not profile.autopay or not profile.default_payment_method:
        return None
    outstanding = invoice_outstanding(invoice)
    if outstanding <= 0:
        return None
    tried = Payment.objects.filter(invoice=invoice, method=PaymentMethod.STRIPE, recorded_by=AUTOPAY).first()
    if tried is not None:
        return tried
    customer_id = customer_ensure(consumer=invoice.consumer)
    try:
        intent = gateway.payment_intent_create(
            amount=outstanding,
            currency=invoice.currency,
            customer_id=customer_id,
            metadata=_metadata(invoice, AUTOPAY),
            idempotency_key=f"invoice-{invoice.pk}-autopay",
            payment_method=profile.default_payment_method,
            off_session=True,
        )
    except gateway.PaymentDeclined as declined:
        logger.info("stripe.autopay_declined", extra={"invoice": str(invoice.pk)})
        if not declined.payment_intent_id:
            # Stripe's `payment_intent.payment_failed` webhook records it from the PaymentIntent's metadata.
            return None
        payment = _invoice_intent_payment(invoice, declined.payment_intent_id, outstanding, now, AUTOPAY)
        return payment_failed(payment_id=payment.pk, message=str(declined.detail), now=now)
    payment = _invoice_intent_payment(invoice, intent.id, outstanding, now, AUTOPAY)
    return intent_settle(payment=payment, payment_intent=intent, now=now)


# --- refunds ------------------------------------------------------------------------------------------------------


def _refund_sent(*, refund: Refund, stripe_refund: Any, now: datetime) -> Refund:
    """Record Stripe's refund on ours: its id once, then posted when it succeeded, released when it failed."""
    stripe_id = gateway.id_of(stripe_refund)
    Refund.objects.filter(pk=refund.pk, stripe_refund__isnull=True).update(stripe_refund=stripe_id)
    status = stripe_refund.get("status") if isinstance(stripe_refund, dict) else stripe_refund.status
    if status == "succeeded":
        return refund_post(refund_id=refund.pk, now=now, reference=stripe_id or "")
    if status in ("failed", "canceled"):
        reason = (
            stripe_refund.get("failure_reason")
            if isinstance(stripe_refund, dict)
            else getattr(stripe_refund, "failure_reason", None)
        )
        # Only a pending refund fails: the conditional update leaves a posted one alone, and a failed refund no
        # longer holds the payment's credit (payment_unapplied), so it can be refunded or applied again.
        Refund.objects.filter(pk=refund.pk, status=RefundStatus.PENDING).update(
            status=RefundStatus.FAILED, failure_message=(reason or status)[:500]
        )
    return Refund.objects.get(pk=refund.pk)


def refund_send(*, refund_id: Any, now: datetime) -> Refund:
    """Send a pending Stripe refund (idempotency key from the Refund row, so resending asks Stripe once)."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != RefundStatus.PENDING or refund.stripe_refund:
        return refund
    payment = refund.payment
    stripe_refund = gateway.refund_create(
        payment_intent_id=payment.stripe_payment_intent,
        amount=refund.amount,
        currency=refund.currency,
        metadata={
            "refund_id": str(refund.pk),
            "credit_note": refund.credit_note.number if refund.credit_note_id else "",
            "invoice_number": payment.invoice.number if payment.invoice_id else "",
        },
        idempotency_key=f"refund-{refund.pk}",
    )
    return _refund_sent(refund=refund, stripe_refund=stripe_refund, now=now)


def credit_note_refund(*, credit_note_id: Any, now: datetime) -> list[Refund]:
    """Refund to the card what a credit note gave back on an invoice paid by card: each negative allocation the
    credit note made (`credit_note_settle`) to a Stripe payment becomes a Refund keyed by the credit note and the
    payment (so a rerun reserves nothing twice), sent to Stripe after its row is committed."""
    note = CreditNote.objects.select_related("invoice").get(pk=credit_note_id)
    given_back: dict[Any, Decimal] = {}
    for allocation in PaymentAllocation.objects.filter(
        invoice=note.invoice,
        amount__lt=0,
        note=f"Credit note {note.number}",
        payment__method=PaymentMethod.STRIPE,
        payment__status=PaymentStatus.SUCCEEDED,
        payment__stripe_payment_intent__isnull=False,
    ).select_related("payment"):
        given_back[allocation.payment_id] = given_back.get(allocation.payment_id, Decimal(0)) - allocation.amount
    refunds = []
    for payment_id, amount in given_back.items():
        payment = Payment.objects.get(pk=payment_id)
        key = f"credit_note:{note.pk}:payment:{payment.pk}"
        existing = Refund.objects.filter(key=key).first()
        if existing is None:
            amount = min(amount, payment_unapplied(payment))
            if amount <= 0:
                continue  # the credit was already applied elsewhere or refunded by hand
            existing = refund_create(
                payment=payment,
                amount=amount,
                key=key,
                reason=f"Credit note {note.number} on {note.invoice.number}",
                now=now,
                created_by="system",
                credit_note=note,
            )
        refunds.append(refund_send(refund_id=existing.pk, now=now))
    return refunds
