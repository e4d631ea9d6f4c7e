"""The Stripe webhook inbox (STYLE.md rule 8): a verified event is stored once under Stripe's event id, then handled
by a task, idempotently and in any order.

- `payment_intent.succeeded`: the PaymentIntent's Payment is received (booked and applied to its invoice). When the
  PaymentIntent was created elsewhere, or the event overtakes our own record of it, the Payment is created from the
  PaymentIntent's metadata (invoice id, consumer id) first.
- `payment_intent.payment_failed`: the Payment failed (finance sees an exception); after a success it changes
  nothing.
- `charge.refunded` (and `refund.*`): each succeeded refund posts our Refund; a refund made in Stripe's dashboard
  becomes a Refund of that payment's credit first.
- `payout.paid` / `payout.failed`: the StripePayout row (reconciled elsewhere) is created or updated; a failed
  payout opens an exception.
- `setup_intent.succeeded`: the card a consumer saved on its payment settings page becomes its default payment
  method (billing.services.payment_profiles.card_setup_succeeded).
- anything else is stored and marked ignored.

Every step goes through keyed, idempotent services, so an event handled twice (a replay, a retry after a crash
half-way, two workers) changes nothing the second time.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils.translation import gettext as _

from accounts.errors import Conflict
from accounts.models import Organization
from accounts.selectors import as_uuid
from billing import stripe_gateway as gateway
from billing.models import (
    ExceptionKind,
    Invoice,
    Payment,
    PaymentProfile,
    Refund,
    StripeEvent,
    StripeEventStatus,
)
from billing.services.payments import exception_open, payment_failed, payment_succeeded, refund_create
from billing.services.stripe_payments import _refund_sent, intent_payment
from billing.services.stripe_reconcile import stripe_payout_settle, stripe_payout_store
from marketplace.money import format_money
from marketplace.outbox import enqueue_on_commit

logger = logging.getLogger(__name__)

PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
PAYMENT_INTENT_FAILED = "payment_intent.payment_failed"
REFUND_EVENTS = frozenset({"charge.refunded", "charge.refund.updated", "refund.created", "refund.updated"})
PAYOUT_EVENTS = frozenset({"payout.paid", "payout.failed"})
SETUP_INTENT_SUCCEEDED = "setup_intent.succeeded"
HANDLED = frozenset(
    {PAYMENT_INTENT_SUCCEEDED, PAYMENT_INTENT_FAILED, SETUP_INTENT_SUCCEEDED, *REFUND_EVENTS, *PAYOUT_EVENTS}
)


class EventUnusable(Exception):
    """The event cannot be applied (no consumer to book it to): retrying will not help."""


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int | float) and value > 0:
        try:
            return datetime.fromtimestamp(int(value), tz=UTC)
        except (OverflowError, OSError, ValueError):  # beyond year 9999 (or infinite): not a time Stripe sends
            return None
    return None


# --- the inbox ----------------------------------------------------------------------------------------------------


def stripe_event_receive(*, event: dict[str, Any], now: datetime) -> tuple[StripeEvent, bool]:
    """Store a verified event once (unique on its id) and queue its handling after commit. The same event again
    returns the stored row and queues nothing."""
    existing = StripeEvent.objects.filter(event_id=event["id"]).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            stored = StripeEvent.objects.create(
                event_id=event["id"][:100],
                type=str(event["type"])[:100],
                livemode=bool(event.get("livemode", False)),
                payload=event,
                stripe_created=_timestamp(event.get("created")),
                received_at=now,
            )
            from billing.tasks import stripe_event_process

            stored_id = stored.pk
            enqueue_on_commit(stripe_event_process, stored_id)
    except IntegrityError:
        # Stripe delivered it twice at once: the other request stored it.
        return StripeEvent.objects.get(event_id=event["id"]), False
    logger.info("stripe.event_received", extra={"event": stored.event_id, "type": stored.type})
    return stored, True


def stripe_event_handle(*, stripe_event_id: int, now: datetime) -> StripeEvent | None:
    """Handle one stored event; a processed or ignored one is left alone. Raises what went wrong (after recording it
    on the row as `failed` with the error) so the task can retry."""
    event = StripeEvent.objects.filter(pk=stripe_event_id).first()
    if event is None or event.status in (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED):
        return event
    if event.type not in HANDLED:
        _finish(event, StripeEventStatus.IGNORED, now)
        return event
    StripeEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    try:
        _dispatch(event, now)
    except EventUnusable as error:
        _finish(event, StripeEventStatus.FAILED, now, error=str(error))
        logger.warning("stripe.event_unusable", extra={"event": event.event_id, "error": str(error)})
        return event
    except Exception as error:
        _finish(event, StripeEventStatus.FAILED, now, error=f"{type(error).__name__}: {error}")
        raise
    _finish(event, StripeEventStatus.PROCESSED, now)
    return event


def stripe_events_redeliver(*, now: datetime, older_than: timedelta = timedelta(minutes=5), limit: int = 500) -> int:
    """Queue again the events whose task was lost (still `received` a while after arriving: the broker was down,
    a worker died) and the failed ones not yet out of attempts (the beat task). Handling is idempotent, so an
    event queued twice changes nothing the second time."""
    from billing.tasks import stripe_event_process

    cutoff = now - older_than
    waiting = list(
        StripeEvent.objects.filter(
            Q(status=StripeEventStatus.RECEIVED, received_at__lt=cutoff)
            | Q(
                status=StripeEventStatus.FAILED,
                attempts__lt=settings.STRIPE_EVENT_MAX_ATTEMPTS,
                processed_at__lt=cutoff,
            )
        )
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    for stripe_event_id in waiting:
        stripe_event_process.delay(stripe_event_id)
    return len(waiting)


def _finish(event: StripeEvent, status: str, now: datetime, error: str = "") -> None:
    # Never move a processed event back: a late failing retry of an event another worker already handled.
    StripeEvent.objects.filter(pk=event.pk).exclude(status=StripeEventStatus.PROCESSED).update(
        status=status, last_error=error, processed_at=now
    )
    event.refresh_from_db()


def _dispatch(event: StripeEvent, now: datetime) -> None:
    obj = (event.payload.get("data") or {}).get("object") or {}
    at = event.stripe_created or now
    if event.type == PAYMENT_INTENT_SUCCEEDED:
        _intent_succeeded(obj, at, now)
    elif event.type == PAYMENT_INTENT_FAILED:
        _intent_failed(obj, now)
    elif event.type in REFUND_EVENTS:
        refunds = _refunds_of(obj)
        for refund in refunds:
            _refund_seen(refund, now)
    elif event.type in PAYOUT_EVENTS:
        _payout_seen(obj, event.type, now)
    elif event.type == SETUP_INTENT_SUCCEEDED:
        # A consumer saved a card on its payment settings page: it becomes the default payment method (once).
        from billing.services.payment_profiles import card_setup_succeeded

        card_setup_succeeded(setup_intent=obj, now=now)


# --- payment intents ----------------------------------------------------------------------------------------------


def _intent_payment(intent: dict[str, Any], now: datetime) -> Payment:
    """Our Payment for a PaymentIntent, created from its metadata when we have none yet."""
    payment = Payment.objects.filter(stripe_payment_intent=intent["id"]).first()
    if payment is not None:
        return payment
    metadata = intent.get("metadata") or {}
    consumer = None
    consumer_id = metadata.get("consumer_id")
    if consumer_id:
        consumer = Organization.objects.filter(pk=_uuid_or_none(consumer_id)).first()
    if consumer is None and intent.get("customer"):
        profile = (
            PaymentProfile.objects.select_related("organization")
            .filter(stripe_customer_id=gateway.id_of(intent["customer"]))
            .first()
        )
        consumer = profile.organization if profile is not None else None
    if consumer is None:
        raise EventUnusable(f"PaymentIntent {intent['id']} names no consumer of this platform.")
    currency = str(intent.get("currency") or "").upper()
    invoice = None
    if metadata.get("invoice_id"):
        invoice = Invoice.objects.filter(
            pk=_uuid_or_none(metadata["invoice_id"]), consumer=consumer, currency=currency
        ).first()
    minor = intent.get("amount_received") or intent.get("amount") or 0
    source = metadata.get("source") or "stripe"
    return intent_payment(
        consumer=consumer,
        payment_intent_id=intent["id"],
        amount=gateway.from_minor(minor, currency),
        currency=currency,
        invoice=invoice,
        now=now,
        recorded_by=source if source.startswith("stripe:") else f"stripe:{source}",
    )


def _uuid_or_none(value: Any) -> Any:
    try:
        return as_uuid(value)
    except Exception:
        return None


def _intent_succeeded(intent: dict[str, Any], at: datetime, now: datetime) -> None:
    payment = _intent_payment(intent, now)
    payment_succeeded(
        payment_id=payment.pk, received_at=at, now=now, stripe_charge=gateway.payment_intent_charge(intent)
    )


def _intent_failed(intent: dict[str, Any], now: datetime) -> None:
    payment = _intent_payment(intent, now)
    error = intent.get("last_payment_error") or {}
    message = error.get("message") or _("The payment was declined.")
    payment_failed(payment_id=payment.pk, message=message, now=now)


# --- refunds ------------------------------------------------------------------------------------------------------


def _refunds_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    if obj.get("object") == "refund":
        return [obj]
    listed = obj.get("refunds")
    if isinstance(listed, dict) and isinstance(listed.get("data"), list):
        refunds = listed["data"]
        if len(refunds) >= int(listed.get("total_count") or 0) and not listed.get("has_more"):
            return refunds
    # Recent API versions no longer embed a charge's refunds: ask Stripe (outside any transaction).
    return gateway.charge_refunds(obj["id"])


def _refund_seen(stripe_refund: dict[str, Any], now: datetime) -> None:
    """Post our Refund for a Stripe refund; a refund made in Stripe's dashboard becomes one first."""
    stripe_id = stripe_refund["id"]
    refund = Refund.objects.filter(stripe_refund=stripe_id).first()
    if refund is None:
        ours = (stripe_refund.get("metadata") or {}).get("refund_id")
        if ours:
            refund = Refund.objects.filter(pk=_uuid_or_none(ours)).first()
    if refund is None:
        refund = _dashboard_refund(stripe_refund, now)
        if refund is None:
            return
    _refund_sent(refund=refund, stripe_refund=stripe_refund, now=now)


def _dashboard_refund(stripe_refund: dict[str, Any], now: datetime) -> Refund | None:
    if stripe_refund.get("status") != "succeeded":
        return None
    intent_id = gateway.id_of(stripe_refund.get("payment_intent"))
    charge_id = gateway.id_of(stripe_refund.get("charge"))
    payment = None
    if intent_id:
        payment = Payment.objects.filter(stripe_payment_intent=intent_id).first()
    if payment is None and charge_id:
        payment = Payment.objects.filter(stripe_charge=charge_id).first()
    if payment is None:
        raise EventUnusable(f"Refund {stripe_refund['id']} is of a payment this platform has no record of.")
    amount = gateway.from_minor(stripe_refund.get("amount") or 0, payment.currency)
    try:
        return refund_create(
            payment=payment,
            amount=amount,
            key=f"stripe_refund:{stripe_refund['id']}",
            reason=_("Refunded in Stripe"),
            now=now,
            created_by="stripe",
        )
    except Conflict as error:
        # The refunded money was already applied to an invoice: finance decides (reopen it, or a credit note).
        exception_open(
            kind=ExceptionKind.AMOUNT_MISMATCH,
            subject=f"stripe_refund:{stripe_refund['id']}",
            detail=_(
                "%(amount)s %(currency)s were refunded in Stripe from a payment of %(consumer)s that already paid "
                "an invoice: %(why)s"
            )
            % {
                "amount": format_money(amount, payment.currency),
                "currency": payment.currency,
                "consumer": payment.consumer.name,
                "why": error.detail,
            },
            now=now,
            currency=payment.currency,
            amount=-amount,
            consumer=payment.consumer,
            payment=payment,
            invoice=payment.invoice,
        )
        return None


# --- payouts ------------------------------------------------------------------------------------------------------


def _payout_seen(payout: dict[str, Any], event_type: str, now: datetime) -> None:
    """Store the StripePayout and book what it did (paid: Stripe balance → bank; failed: an exception for finance),
    once, whichever of the webhook and the balance import learns of it first. `failed` is final: a late
    `payout.paid` does not undo it."""
    status = "failed" if event_type == "payout.failed" else "paid"
    with transaction.atomic():
        row = stripe_payout_store(data={**payout, "status": status}, now=now)
        stripe_payout_settle(payout_id=row.id, now=now)
