"""The Stripe webhook (API.md, `POST /api/v1/stripe/webhook`; issue 6, "Collecting from consumers"): against a real
localstripe server and the real stripe SDK, a card payment's signed webhook reaches a live server and marks the
invoice paid with its ledger entries; a replay changes nothing; events in any order; an unsigned, stale, tampered or
wrongly signed request is a 400 that stores nothing."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from billing.models import (
    AccountRole,
    ExceptionKind,
    InvoiceStatus,
    JournalEntry,
    JournalLine,
    Payment,
    PaymentAllocation,
    PaymentStatus,
    ReconciliationException,
    Refund,
    StripeEvent,
    StripeEventStatus,
    StripePayout,
)
from billing.services.stripe_payments import invoice_payment_intent
from tests.billing.payments import october_invoice
from tests.billing.settlement import balance
from tests.billing.stripe_server import WEBHOOK_SECRET, event_body, sign
from tests.worker import wait_for

WEBHOOK = "/api/v1/stripe/webhook"
pytestmark = pytest.mark.django_db(transaction=True)


def post_event(client, body: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.generic("POST", WEBHOOK, body, content_type="application/json", **headers)


def entry_lines(key: str) -> list[tuple[str, Decimal]]:
    entry = JournalEntry.objects.get(key=key)
    return sorted(
        (line.account.role, line.amount) for line in JournalLine.objects.filter(entry=entry).select_related("account")
    )


def books() -> tuple[int, int, int, int]:
    """What a replay must not change."""
    return (
        JournalEntry.objects.count(),
        PaymentAllocation.objects.count(),
        Payment.objects.count(),
        StripeEvent.objects.count(),
    )


# --- the whole path -------------------------------------------------------------------------------------------------


def test_a_card_payment_marks_the_invoice_paid_through_the_signed_webhook_and_a_replay_changes_nothing(
    localstripe, live_server, client
):
    invoice, _center, consumer = october_invoice()
    localstripe.deliver_webhooks_to(live_server.url)

    card = invoice_payment_intent(invoice=invoice, now=timezone.now())
    intent = localstripe.client.v1.payment_intents.retrieve(card.payment_intent_id)
    pending = Payment.objects.get()
    # The PaymentIntent is for the outstanding amount in minor units, with the invoice in its metadata.
    assert (intent.amount, intent.currency, intent.status) == (100000, "cny", "requires_payment_method")
    assert intent.metadata.to_dict() == {
        "invoice_number": "INV-2026-10-000001",
        "invoice_id": str(invoice.pk),
        "consumer_id": str(consumer.pk),
        "source": "stripe:invoice_page",
    }
    assert (pending.status, pending.key, pending.stripe_payment_intent, pending.invoice_id, pending.amount) == (
        PaymentStatus.PENDING,
        f"stripe_pi:{intent.id}",
        intent.id,
        invoice.pk,
        Decimal("1000.0000"),
    )
    # Asking again (a reload, a double click) returns the same PaymentIntent.
    assert invoice_payment_intent(invoice=invoice, now=timezone.now()).payment_intent_id == intent.id

    confirmed = localstripe.pay_in_browser(intent.id)
    assert confirmed.status == "succeeded"
    assert wait_for(lambda: StripeEvent.objects.filter(status=StripeEventStatus.PROCESSED).exists(), timeout=20)

    invoice.refresh_from_db()
    payment = Payment.objects.get()
    event = StripeEvent.objects.get()
    assert invoice.status == InvoiceStatus.PAID
    assert (payment.pk, payment.status, payment.amount, payment.stripe_charge) == (
        pending.pk,
        PaymentStatus.SUCCEEDED,
        Decimal("1000.0000"),
        confirmed.latest_charge.id,
    )
    assert (event.type, event.event_id.startswith("evt_"), event.attempts, event.last_error) == (
        "payment_intent.succeeded",
        True,
        1,
        "",
    )
    assert entry_lines(f"payment:{payment.pk}") == [
        (AccountRole.CUSTOMER_CREDIT, Decimal("-1000.0000")),
        (AccountRole.STRIPE_BALANCE, Decimal("1000.0000")),
    ]
    allocation = PaymentAllocation.objects.get()
    assert (allocation.payment_id, allocation.invoice_id, allocation.amount) == (
        payment.pk,
        invoice.pk,
        Decimal("1000.0000"),
    )
    assert entry_lines(f"allocation:{allocation.pk}") == [
        (AccountRole.CUSTOMER_CREDIT, Decimal("1000.0000")),
        (AccountRole.RECEIVABLE, Decimal("-1000.0000")),
    ]
    assert (balance(consumer, AccountRole.RECEIVABLE), balance(consumer, AccountRole.CUSTOMER_CREDIT)) == (0, 0)

    # Stripe delivers the very same event again (signed anew, as a redelivery is): 200, and nothing changes.
    before = books()
    body = json.dumps(event.payload).encode()
    replay = requests.post(
        f"{live_server.url}{WEBHOOK}",
        data=body,
        headers={"Stripe-Signature": sign(body), "Content-Type": "application/json"},
        timeout=10,
    )
    assert (replay.status_code, replay.json()) == (200, {"received": True, "duplicate": True})
    # The same news in another event (Stripe may send one twice under two ids): stored, handled, no new money.
    again = post_event(
        client,
        event_body("evt_again_1", "payment_intent.succeeded", event.payload["data"]["object"]),
        sign(event_body("evt_again_1", "payment_intent.succeeded", event.payload["data"]["object"])),
    )
    assert again.status_code == 200
    assert books() == (before[0], before[1], before[2], before[3] + 1)
    assert StripeEvent.objects.get(event_id="evt_again_1").status == StripeEventStatus.PROCESSED
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED


def test_a_success_before_our_payment_row_exists_creates_it_from_the_metadata_and_a_later_failure_changes_nothing(
    localstripe, live_server, client
):
    invoice, _center, consumer = october_invoice()
    localstripe.deliver_webhooks_to(live_server.url)
    # A PaymentIntent created elsewhere (another integration, or our row lost to a crash), paid at once.
    intent = localstripe.client.v1.payment_intents.create(
        {
            "amount": 100000,
            "currency": "cny",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"invoice_id": str(invoice.pk), "consumer_id": str(consumer.pk), "invoice_number": "x"},
        }
    )
    assert Payment.objects.count() == 0
    assert wait_for(lambda: StripeEvent.objects.filter(status=StripeEventStatus.PROCESSED).exists(), timeout=20)

    payment = Payment.objects.get()
    invoice.refresh_from_db()
    assert (payment.key, payment.status, payment.invoice_id, payment.amount, payment.recorded_by) == (
        f"stripe_pi:{intent.id}",
        PaymentStatus.SUCCEEDED,
        invoice.pk,
        Decimal("1000.0000"),
        "stripe:stripe",
    )
    assert invoice.status == InvoiceStatus.PAID

    # A failure event about the same PaymentIntent arrives late: the payment stays received, nothing is opened.
    stored = StripeEvent.objects.get().payload["data"]["object"]
    failed = {**stored, "status": "requires_payment_method", "last_payment_error": {"message": "Card declined"}}
    body = event_body("evt_late_failure", "payment_intent.payment_failed", failed)
    before = JournalEntry.objects.count()
    assert post_event(client, body, sign(body)).status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.failure_message) == (PaymentStatus.SUCCEEDED, "")
    assert StripeEvent.objects.get(event_id="evt_late_failure").status == StripeEventStatus.PROCESSED
    assert not ReconciliationException.objects.filter(kind=ExceptionKind.PAYMENT_FAILED).exists()
    assert JournalEntry.objects.count() == before


def test_a_declined_payment_is_recorded_failed_for_finance_and_a_later_success_books_it(localstripe, client):
    invoice, _center, _consumer = october_invoice()
    card = invoice_payment_intent(invoice=invoice, now=timezone.now())
    intent = localstripe.client.v1.payment_intents.retrieve(card.payment_intent_id).to_dict()
    declined = {**intent, "status": "requires_payment_method", "last_payment_error": {"message": "Card declined"}}
    succeeded = {**intent, "status": "succeeded", "latest_charge": "ch_later"}

    failure = event_body("evt_fail_1", "payment_intent.payment_failed", declined, created=int(time.time()) - 60)
    success = event_body("evt_ok_1", "payment_intent.succeeded", succeeded)
    assert post_event(client, failure, sign(failure)).status_code == 200
    payment = Payment.objects.get()
    exception = ReconciliationException.objects.get(kind=ExceptionKind.PAYMENT_FAILED)
    assert (payment.status, payment.failure_message) == (PaymentStatus.FAILED, "Card declined")
    assert (exception.subject, exception.status) == (f"payment:{payment.pk}", "open")

    assert post_event(client, success, sign(success)).status_code == 200
    payment.refresh_from_db()
    exception.refresh_from_db()
    invoice.refresh_from_db()
    assert (payment.status, payment.stripe_charge, invoice.status) == (
        PaymentStatus.SUCCEEDED,
        "ch_later",
        InvoiceStatus.PAID,
    )
    assert (exception.status, exception.resolution) == ("resolved", "retried")


# --- what is refused ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signature", "code"),
    [
        (None, "missing_signature"),
        ("", "missing_signature"),
        ("t=1,v1=abc", "invalid_signature"),  # malformed and stale
        ("stale", "invalid_signature"),
        ("wrong_secret", "invalid_signature"),
        ("tampered", "invalid_signature"),
    ],
)
def test_an_unsigned_stale_wrong_or_tampered_request_is_a_400_and_stores_nothing(localstripe, client, signature, code):
    body = event_body("evt_forged", "payment_intent.succeeded", {"id": "pi_forged", "object": "payment_intent"})
    if signature == "stale":
        signature = sign(body, timestamp=int(time.time()) - 600)
    elif signature == "wrong_secret":
        signature = sign(body, secret="whsec_someone_else")
    elif signature == "tampered":
        signature = sign(body)
        body = body.replace(b"pi_forged", b"pi_fOrged")
    response = post_event(client, body, signature)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert set(response.json()) == {"detail", "code"}
    assert StripeEvent.objects.count() == 0


def test_without_a_webhook_secret_nothing_is_accepted(localstripe, client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    body = event_body("evt_1", "payment_intent.succeeded", {"id": "pi_1"})
    response = post_event(client, body, sign(body, secret=WEBHOOK_SECRET))
    assert (response.status_code, response.json()["code"]) == (400, "webhook_not_configured")
    assert StripeEvent.objects.count() == 0


def test_a_signed_body_that_is_not_an_event_is_a_400(localstripe, client):
    body = b'{"hello": "world"}'
    response = post_event(client, body, sign(body))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_event")
    assert StripeEvent.objects.count() == 0


# --- other events ---------------------------------------------------------------------------------------------------


def test_unknown_event_types_are_stored_and_ignored(localstripe, client):
    body = event_body("evt_customer", "customer.created", {"id": "cus_1", "object": "customer"})
    response = post_event(client, body, sign(body))
    event = StripeEvent.objects.get()
    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": False})
    assert (event.event_id, event.type, event.status, event.attempts) == (
        "evt_customer",
        "customer.created",
        StripeEventStatus.IGNORED,
        0,
    )


def test_an_event_that_names_no_consumer_fails_with_its_reason_and_books_nothing(localstripe, client):
    body = event_body(
        "evt_orphan", "payment_intent.succeeded", {"id": "pi_orphan", "amount": 500, "currency": "cny", "metadata": {}}
    )
    assert post_event(client, body, sign(body)).status_code == 200
    event = StripeEvent.objects.get()
    assert (event.status, event.last_error, event.attempts) == (
        StripeEventStatus.FAILED,
        "PaymentIntent pi_orphan names no consumer of this platform.",
        1,
    )
    assert (Payment.objects.count(), JournalEntry.objects.count()) == (0, 0)


def test_stripe_payouts_are_recorded_and_a_failed_one_opens_an_exception(localstripe, live_server):
    localstripe.deliver_webhooks_to(live_server.url)
    paid = localstripe.client.v1.payouts.create({"amount": 250000, "currency": "eur", "status": "paid"})
    failed = localstripe.client.v1.payouts.create({"amount": 1000, "currency": "eur", "status": "failed"})
    assert wait_for(lambda: StripePayout.objects.count() == 2, timeout=20)

    rows = {payout.id: payout for payout in StripePayout.objects.all()}
    assert (rows[paid.id].amount, rows[paid.id].currency, rows[paid.id].status) == (Decimal("2500.0000"), "EUR", "paid")
    assert (rows[failed.id].status, rows[failed.id].failure_message) == (
        "failed",
        "The bank could not process this payout.",
    )
    exception = ReconciliationException.objects.get(kind=ExceptionKind.PAYOUT_FAILED)
    assert (exception.subject, exception.amount, exception.status) == (
        f"stripe_payout:{failed.id}",
        Decimal("10.0000"),
        "open",
    )
    # The paid one moved its amount from the Stripe balance to the bank, once; the failed one booked nothing.
    booked = JournalEntry.objects.get(key=f"stripe_payout:{paid.id}")
    assert sorted((line.account.role, line.amount) for line in booked.lines.all()) == [
        ("cash", Decimal("2500.0000")),
        ("stripe_balance", Decimal("-2500.0000")),
    ]
    assert not JournalEntry.objects.filter(key__contains=failed.id).exists()


def test_an_event_whose_handling_fails_is_retried_with_its_error_then_left_failed(localstripe, client, settings):
    settings.STRIPE_EVENT_MAX_ATTEMPTS = 3
    # A refund event about a charge Stripe does not know: asking Stripe for its refunds fails every time.
    body = event_body("evt_unknown_charge", "charge.refunded", {"id": "ch_unknown", "object": "charge"})

    response = post_event(client, body, sign(body))

    event = StripeEvent.objects.get()
    assert response.status_code == 200
    assert (event.status, event.attempts) == (StripeEventStatus.FAILED, 3)
    assert event.last_error.startswith("StripeRequestFailed: Stripe refused the request")
    assert Refund.objects.count() == 0


@pytest.mark.redis
@pytest.mark.worker
def test_the_webhook_answers_at_once_and_a_real_worker_handles_the_event(localstripe, client):
    from marketplace.celery import app
    from tests.worker import celery_worker

    invoice, _center, _consumer = october_invoice()
    card = invoice_payment_intent(invoice=invoice, now=timezone.now())
    intent = localstripe.client.v1.payment_intents.retrieve(card.payment_intent_id).to_dict()
    body = event_body("evt_via_worker", "payment_intent.succeeded", {**intent, "status": "succeeded"})

    with celery_worker() as queue:
        previous, app.conf.task_default_queue = app.conf.task_default_queue, queue
        try:
            response = post_event(client, body, sign(body))
            stored_status = StripeEvent.objects.get().status
            handled = wait_for(lambda: StripeEvent.objects.get().status == StripeEventStatus.PROCESSED)
        finally:
            app.conf.task_default_queue = previous

    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": False})
    assert stored_status in (StripeEventStatus.RECEIVED, StripeEventStatus.PROCESSED)
    assert handled
    invoice.refresh_from_db()
    assert (invoice.status, Payment.objects.get().status) == (InvoiceStatus.PAID, PaymentStatus.SUCCEEDED)


def test_an_event_whose_task_was_lost_is_handled_by_the_redelivery_sweep(localstripe):
    from datetime import timedelta

    from billing.tasks import stripe_events_redeliver_task

    invoice, _center, _consumer = october_invoice()
    card = invoice_payment_intent(invoice=invoice, now=timezone.now())
    intent = localstripe.client.v1.payment_intents.retrieve(card.payment_intent_id).to_dict()
    now = timezone.now()
    # Stored, but the broker lost its task: still `received` ten minutes later. Another just arrived.
    StripeEvent.objects.create(
        event_id="evt_lost",
        type="payment_intent.succeeded",
        payload=json.loads(event_body("evt_lost", "payment_intent.succeeded", {**intent, "status": "succeeded"})),
        received_at=now - timedelta(minutes=10),
    )
    StripeEvent.objects.create(
        event_id="evt_just_now", type="customer.created", payload={"id": "evt_just_now"}, received_at=now
    )

    assert stripe_events_redeliver_task() == 1

    invoice.refresh_from_db()
    statuses = dict(StripeEvent.objects.values_list("event_id", "status"))
    assert statuses == {"evt_lost": StripeEventStatus.PROCESSED, "evt_just_now": StripeEventStatus.RECEIVED}
    assert invoice.status == InvoiceStatus.PAID
    assert stripe_events_redeliver_task() == 0
