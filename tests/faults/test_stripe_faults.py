"""Stripe timeouts and server errors, injected under the real SDK (tests/faults/flaky_stripe.py): autopay, card
refunds and Connect transfers are retried — by the SDK, then by the task — with the same idempotency key every
time, so however the attempts fail (before Stripe saw them, or after Stripe acted and the answer was lost) exactly
one charge, refund or transfer exists and our books record it once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from celery.exceptions import Retry
from django.utils import timezone

from billing import stripe_gateway
from billing.models import (
    Invoice,
    InvoiceStatus,
    JournalEntry,
    Payment,
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
)
from billing.services.invoices import CreditRequest, credit_note_issue, invoice_finalize
from billing.services.payouts import payouts_create
from billing.services.stripe_payments import customer_ensure
from billing.stripe_connect import TransferUnknown
from billing.tasks import credit_note_refund_task, invoice_autopay_task, payout_send_stripe_task
from tests.billing.payments import finance_clerk
from tests.billing.payouts import october_two_centers
from tests.billing.settlement import OCT, book, close, invoice_of, market, meter, trial_balance
from tests.billing.stripe_server import SECRET_KEY
from tests.faults.flaky_stripe import FlakyStripe

pytestmark = pytest.mark.django_db

FINALIZED_AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
PI, REFUNDS, TRANSFERS = "/v1/payment_intents", "/v1/refunds", "/v1/transfers"


@pytest.fixture
def flaky(localstripe, monkeypatch):
    client = FlakyStripe()
    monkeypatch.setattr(stripe_gateway, "HTTP_CLIENT", client)
    return client


def _autopay_consumer(localstripe):
    """October closed: 1,000.00 CNY for Blue Heron Robotics, which saved a card and chose autopay."""
    from billing.models import PaymentProfile

    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)
    customer = customer_ensure(consumer=consumer)
    method = localstripe.card()
    localstripe.client.v1.payment_methods.attach(method, {"customer": customer})
    PaymentProfile.objects.filter(organization=consumer).update(autopay=True, default_payment_method=method)
    return consumer, customer


def _intents_of(localstripe, customer: str) -> list:
    """The customer's PaymentIntents on Stripe (localstripe lists them all, unfiltered)."""
    listed = localstripe.client.v1.payment_intents.list({"limit": 100})
    return [intent for intent in listed.auto_paging_iter() if intent.customer == customer]


def _after_commit(callbacks) -> int:
    """Run the tasks queued by the commit in-process; a task that asks to be retried (Stripe unreachable) is left
    for its retry, which the test runs itself, as a worker would later. Returns how many asked."""
    retried = 0
    for callback in callbacks:
        try:
            callback()
        except Retry:
            retried += 1
    return retried


def _finalize(consumer, django_capture_on_commit_callbacks) -> tuple[Invoice, int]:
    """Finalize the invoice; its autopay task runs after the commit."""
    with django_capture_on_commit_callbacks() as callbacks:
        invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=FINALIZED_AT)
    retried = _after_commit(callbacks)
    return invoice_of(consumer, OCT), retried


@pytest.mark.parametrize(
    "faults",
    [
        ["timeout", "500"],  # the SDK's own retries get through
        ["lost", "timeout", "500"],  # Stripe charged, every answer lost: the task's retry finds the charge
    ],
    ids=["sdk-retries", "task-retry-after-a-lost-answer"],
)
def test_autopay_retried_through_timeouts_and_errors_charges_once(
    localstripe, flaky, django_capture_on_commit_callbacks, faults
):
    consumer, customer = _autopay_consumer(localstripe)
    flaky.faults[PI] = list(faults)

    invoice, retried = _finalize(consumer, django_capture_on_commit_callbacks)
    if retried:  # the SDK's three attempts all failed: the task's retry
        assert (Payment.objects.count(), invoice.status) == (0, InvoiceStatus.FINALIZED)
        invoice_autopay_task.apply(args=[str(invoice.pk)])
        invoice.refresh_from_db()

    keys = flaky.keys(PI)
    assert keys == [f"invoice-{invoice.pk}-autopay"] * len(keys)
    assert len(keys) == len(faults) + 1
    assert flaky.reached(PI) == 1
    intents = _intents_of(localstripe, customer)
    assert [(intent.status, intent.amount) for intent in intents] == [("succeeded", 100000)]
    payment = Payment.objects.get()
    assert (payment.stripe_payment_intent, payment.status, payment.amount) == (
        intents[0].id,
        PaymentStatus.SUCCEEDED,
        Decimal("1000.0000"),
    )
    assert invoice.status == InvoiceStatus.PAID
    assert JournalEntry.objects.filter(key=f"payment:{payment.pk}").count() == 1
    # Queued again (a redelivered task): nothing more reaches Stripe.
    invoice_autopay_task.apply(args=[str(invoice.pk)])
    assert (flaky.reached(PI), Payment.objects.count()) == (1, 1)


def test_autopay_that_stays_unreachable_gives_up_without_charging_and_a_later_run_charges_once(
    localstripe, flaky, django_capture_on_commit_callbacks
):
    consumer, customer = _autopay_consumer(localstripe)
    # Three SDK attempts per task run: the first run and its first retry time out entirely.
    flaky.faults[PI] = ["timeout"] * 6

    invoice, retried = _finalize(consumer, django_capture_on_commit_callbacks)
    assert retried == 1
    with pytest.raises(Retry):
        invoice_autopay_task.apply(args=[str(invoice.pk)])

    assert (invoice.status, Payment.objects.count(), flaky.reached(PI)) == (InvoiceStatus.FINALIZED, 0, 0)
    assert len(flaky.keys(PI)) == 6
    invoice_autopay_task.apply(args=[str(invoice.pk)])  # the next retry, with Stripe back
    assert set(flaky.keys(PI)) == {f"invoice-{invoice.pk}-autopay"}
    assert flaky.reached(PI) == 1
    assert len(_intents_of(localstripe, customer)) == 1
    invoice.refresh_from_db()
    assert (invoice.status, Payment.objects.get().status) == (InvoiceStatus.PAID, PaymentStatus.SUCCEEDED)


def test_a_card_refund_retried_through_a_lost_answer_and_errors_refunds_once(
    localstripe, flaky, django_capture_on_commit_callbacks
):
    consumer, _customer = _autopay_consumer(localstripe)
    invoice, _retried = _finalize(consumer, django_capture_on_commit_callbacks)
    payment = Payment.objects.get()
    flaky.faults[REFUNDS] = ["lost", "500", "timeout", "500"]

    with django_capture_on_commit_callbacks() as callbacks:
        note = credit_note_issue(
            actor=finance_clerk(),
            invoice_id=invoice.pk,
            lines=[CreditRequest(line_id=invoice.lines.get().pk, amount=Decimal("200.00"))],
            reason="Node outage on Oct 5",
            now=timezone.now(),
        )
    assert _after_commit(callbacks) == 1  # Stripe refunded on the first attempt; the SDK never heard it
    refund = Refund.objects.get()
    assert (refund.status, refund.stripe_refund) == (RefundStatus.PENDING, None)
    credit_note_refund_task.apply(args=[str(note.pk)])  # the task's retry

    refund.refresh_from_db()
    assert flaky.keys(REFUNDS) == [f"refund-{refund.pk}"] * 5  # three SDK tries, then the task's retry: two more
    assert flaky.reached(REFUNDS) == 1
    on_stripe = localstripe.client.v1.refunds.list({"charge": payment.stripe_charge}).data
    assert [(r.amount, r.status) for r in on_stripe] == [(20000, "succeeded")]
    assert (refund.status, refund.stripe_refund, refund.amount) == (
        RefundStatus.SUCCEEDED,
        on_stripe[0].id,
        Decimal("200.0000"),
    )
    assert JournalEntry.objects.filter(key=f"refund:{refund.pk}").count() == 1
    credit_note_refund_task.apply(args=[str(note.pk)])
    assert (flaky.reached(REFUNDS), Refund.objects.count()) == (1, 1)
    assert trial_balance() == {"CNY": Decimal("0")}


@pytest.mark.django_db(transaction=True)
def test_a_connect_transfer_retried_through_a_lost_answer_and_errors_pays_once(settings):
    flaky = FlakyStripe(faults={TRANSFERS: ["lost", "timeout", "500", "timeout"]})
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = None
    settings.STRIPE_CONNECT_HTTP_CLIENT = flaky
    october = october_two_centers(yangtze_by_stripe=True)
    clerk = finance_clerk()
    payouts_create(period="2026-10", now=timezone.now(), actor=clerk)
    payout = Payout.objects.get(center=october.yangtze)

    # The SDK's three attempts fail (Stripe made the transfer on the first): the outcome is unknown, the payout
    # stays in transit; the task's next run asks again with the same key and Stripe answers with that transfer.
    with pytest.raises(TransferUnknown):
        from billing.services.payouts import payout_send_stripe

        payout_send_stripe(payout_id=payout.pk, now=timezone.now())
    payout.refresh_from_db()
    assert (payout.status, payout.stripe_transfer) == (PayoutStatus.IN_TRANSIT, None)
    payout_send_stripe_task.apply(args=[str(payout.pk), "test", 2])

    payout.refresh_from_db()
    assert flaky.keys(TRANSFERS) == [f"payout-{payout.pk}-transfer"] * 5
    assert (len(flaky.transfers), flaky.reached(TRANSFERS)) == (1, 1)
    assert (payout.status, payout.stripe_transfer) == (PayoutStatus.PAID, flaky.transfers[0]["id"])
    assert flaky.transfers[0]["amount"] == 36000
    assert JournalEntry.objects.filter(key=f"payout:{payout.pk}").count() == 1
    payout_send_stripe_task.apply(args=[str(payout.pk), "test", 3])
    assert len(flaky.transfers) == 1
