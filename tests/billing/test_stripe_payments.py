"""Collecting from consumers through Stripe (issue 6), against a real localstripe server and the real stripe SDK:
the Stripe Customer, autopay charging the saved card off-session when an invoice is finalized, card refunds of what a
credit note gives back (and refunds made in Stripe's dashboard), the Pay-by-card view, the invoice page, and the
payments API."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import OrganizationKind, Role, Scope
from billing.models import (
    AccountRole,
    ExceptionKind,
    Invoice,
    InvoiceStatus,
    JournalEntry,
    JournalLine,
    Payment,
    PaymentMethod,
    PaymentProfile,
    PaymentStatus,
    ReconciliationException,
    Refund,
    RefundStatus,
    StripeEvent,
    StripeEventStatus,
)
from billing.services.invoices import CreditRequest, credit_note_issue, invoice_finalize
from billing.services.payments import credit_balance, payment_record
from billing.services.stripe_payments import credit_note_refund, customer_ensure, invoice_autopay
from marketplace.timestamps import rfc3339
from tests.accounts.api_helpers import with_token
from tests.accounts.page_helpers import browser_as, text_of
from tests.billing.payments import FINALIZED_AT, finance_clerk, october_invoice
from tests.billing.settlement import OCT, book, close, invoice_of, market, meter
from tests.billing.stripe_server import event_body, sign
from tests.factories import OrganizationFactory, member_of, token_for

pytestmark = pytest.mark.django_db

CREDITED_AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def entry_lines(key: str) -> list[tuple[str, Decimal]]:
    return sorted(
        (line.account.role, line.amount)
        for line in JournalLine.objects.filter(entry__key=key).select_related("account")
    )


def with_autopay(localstripe, consumer, card_number: str = "4242424242424242") -> str:
    """The consumer saved a card (attached to its Stripe Customer) and chose autopay."""
    customer = customer_ensure(consumer=consumer)
    method = localstripe.card(card_number)
    localstripe.client.v1.payment_methods.attach(method, {"customer": customer})
    PaymentProfile.objects.filter(organization=consumer).update(autopay=True, default_payment_method=method)
    return method


def autopaid_invoice(localstripe, django_capture_on_commit_callbacks, card_number: str = "4242424242424242"):
    """October closed (1,000.00 CNY for Blue Heron Robotics, which has autopay), then the invoice finalized."""
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)
    with_autopay(localstripe, consumer, card_number)
    with django_capture_on_commit_callbacks(execute=True):
        invoice = invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=FINALIZED_AT)
    invoice.refresh_from_db()
    return invoice, consumer


def post_event(client, body: bytes):
    return client.generic(
        "POST", "/api/v1/stripe/webhook", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )


# --- the customer ---------------------------------------------------------------------------------------------------


def test_a_consumer_gets_one_stripe_customer(localstripe):
    _invoice, _center, consumer = october_invoice()

    first = customer_ensure(consumer=consumer)
    again = customer_ensure(consumer=consumer)

    customer = localstripe.client.v1.customers.retrieve(first)
    assert (first, again) == (customer.id, customer.id)
    assert first.startswith("cus_")
    assert (customer.name, customer.metadata.to_dict()) == (consumer.name, {"organization_id": str(consumer.pk)})
    assert PaymentProfile.objects.get(organization=consumer).stripe_customer_id == first


# --- autopay --------------------------------------------------------------------------------------------------------


def test_autopay_charges_the_saved_card_off_session_when_the_invoice_is_finalized(
    localstripe, django_capture_on_commit_callbacks
):
    invoice, consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks)

    payment = Payment.objects.get()
    intent = localstripe.client.v1.payment_intents.retrieve(payment.stripe_payment_intent)
    assert invoice.status == InvoiceStatus.PAID
    assert (payment.method, payment.status, payment.amount, payment.recorded_by, payment.invoice_id) == (
        PaymentMethod.STRIPE,
        PaymentStatus.SUCCEEDED,
        Decimal("1000.0000"),
        "stripe:autopay",
        invoice.pk,
    )
    assert (intent.status, intent.amount, intent.customer, intent.metadata["source"]) == (
        "succeeded",
        100000,
        PaymentProfile.objects.get(organization=consumer).stripe_customer_id,
        "stripe:autopay",
    )
    assert payment.stripe_charge == intent.latest_charge.id
    assert entry_lines(f"payment:{payment.pk}") == [
        (AccountRole.CUSTOMER_CREDIT, Decimal("-1000.0000")),
        (AccountRole.STRIPE_BALANCE, Decimal("1000.0000")),
    ]
    # The task queued again (a retry, a second finalize) charges nothing more.
    assert invoice_autopay(invoice_id=invoice.pk, now=timezone.now()) is None
    assert Payment.objects.count() == 1


def test_autopay_does_nothing_without_consent_or_a_saved_card(localstripe, django_capture_on_commit_callbacks):
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)
    method = with_autopay(localstripe, consumer)
    PaymentProfile.objects.filter(organization=consumer).update(autopay=False)

    with django_capture_on_commit_callbacks(execute=True):
        invoice = invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=FINALIZED_AT)
    PaymentProfile.objects.filter(organization=consumer).update(autopay=True, default_payment_method="")
    invoice_autopay(invoice_id=invoice.pk, now=timezone.now())

    invoice.refresh_from_db()
    assert method.startswith("pm_")
    assert (invoice.status, Payment.objects.count()) == (InvoiceStatus.FINALIZED, 0)


def test_a_declined_autopay_charge_books_nothing_and_leaves_the_invoice_open(
    localstripe, django_capture_on_commit_callbacks
):
    invoice, _consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks, "4000000000000341")

    assert invoice.status == InvoiceStatus.FINALIZED
    assert (Payment.objects.count(), JournalEntry.objects.filter(kind="payment").count()) == (0, 0)
    # Stripe has the declined PaymentIntent; its payment_failed webhook records the failure (next test file).
    declined = [
        intent
        for intent in localstripe.client.v1.payment_intents.list({"limit": 100}).data
        if intent.metadata.to_dict().get("invoice_id") == str(invoice.pk)
    ]
    assert [(intent.status, intent.last_payment_error.code) for intent in declined] == [
        ("requires_payment_method", "card_declined")
    ]


@pytest.mark.django_db(transaction=True)
def test_the_declined_autopay_charge_reaches_finance_through_the_webhook(
    localstripe, live_server, django_capture_on_commit_callbacks
):
    localstripe.deliver_webhooks_to(live_server.url)
    from tests.worker import wait_for

    invoice, _consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks, "4000000000000341")
    assert wait_for(lambda: Payment.objects.filter(status=PaymentStatus.FAILED).exists(), timeout=20)

    payment = Payment.objects.get()
    exception = ReconciliationException.objects.get()
    assert (payment.recorded_by, payment.invoice_id, payment.failure_message) == (
        "stripe:autopay",
        invoice.pk,
        "Your card was declined.",
    )
    assert (exception.kind, exception.subject, exception.status) == (
        ExceptionKind.PAYMENT_FAILED,
        f"payment:{payment.pk}",
        "open",
    )
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.FINALIZED


# --- refunds --------------------------------------------------------------------------------------------------------


def test_a_credit_note_on_an_invoice_paid_by_card_is_refunded_to_the_card_once(
    localstripe, django_capture_on_commit_callbacks, client
):
    invoice, consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks)
    payment = Payment.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_issue(
            actor=finance_clerk(),
            invoice_id=invoice.pk,
            lines=[CreditRequest(line_id=invoice.lines.get().pk, amount=Decimal("200.00"))],
            reason="Node outage on Oct 5",
            now=CREDITED_AT,
        )

    refund = Refund.objects.get()
    on_stripe = localstripe.client.v1.refunds.retrieve(refund.stripe_refund)
    assert (refund.payment_id, refund.credit_note_id, refund.amount, refund.status, refund.key) == (
        payment.pk,
        note.pk,
        Decimal("200.0000"),
        RefundStatus.SUCCEEDED,
        f"credit_note:{note.pk}:payment:{payment.pk}",
    )
    assert (on_stripe.amount, on_stripe.charge, on_stripe.metadata["refund_id"]) == (
        20000,
        payment.stripe_charge,
        str(refund.pk),
    )
    assert entry_lines(f"refund:{refund.pk}") == [
        (AccountRole.CUSTOMER_CREDIT, Decimal("200.0000")),
        (AccountRole.STRIPE_BALANCE, Decimal("-200.0000")),
    ]
    assert credit_balance(consumer, "CNY") == 0

    # The task again, then Stripe's charge.refunded about it: nothing more is refunded or posted.
    entries = JournalEntry.objects.count()
    assert [r.pk for r in credit_note_refund(credit_note_id=note.pk, now=timezone.now())] == [refund.pk]
    charge = localstripe.client.v1.charges.retrieve(payment.stripe_charge).to_dict()
    body = event_body("evt_refunded_1", "charge.refunded", charge)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_event(client, body).status_code == 200
    assert StripeEvent.objects.get().status == StripeEventStatus.PROCESSED
    assert (Refund.objects.count(), JournalEntry.objects.count()) == (1, entries)
    assert len(localstripe.client.v1.refunds.list({"charge": payment.stripe_charge}).data) == 1


def test_a_refund_made_in_the_stripe_dashboard_is_booked_from_its_webhook(
    localstripe, django_capture_on_commit_callbacks, client, settings
):
    invoice, consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks)
    payment = Payment.objects.get()
    # A credit note while card refunds were off: 200.00 waits as credit; finance then refunds 50.00 in Stripe.
    settings.STRIPE_ENABLED = False
    credit_note_issue(
        actor=finance_clerk(),
        invoice_id=invoice.pk,
        lines=[CreditRequest(line_id=invoice.lines.get().pk, amount=Decimal("200.00"))],
        reason="Goodwill",
        now=CREDITED_AT,
    )
    settings.STRIPE_ENABLED = True
    stripe_refund = localstripe.client.v1.refunds.create(
        {"payment_intent": payment.stripe_payment_intent, "amount": 5000}
    )
    charge = localstripe.client.v1.charges.retrieve(payment.stripe_charge).to_dict()

    body = event_body("evt_dashboard_refund", "charge.refunded", charge)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_event(client, body).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        post_event(client, body)  # the same event again

    refund = Refund.objects.get()
    assert (refund.stripe_refund, refund.amount, refund.status, refund.created_by, refund.key) == (
        stripe_refund.id,
        Decimal("50.0000"),
        RefundStatus.SUCCEEDED,
        "stripe",
        f"stripe_refund:{stripe_refund.id}",
    )
    assert credit_balance(consumer, "CNY") == Decimal("150.0000")
    assert entry_lines(f"refund:{refund.pk}") == [
        (AccountRole.CUSTOMER_CREDIT, Decimal("50.0000")),
        (AccountRole.STRIPE_BALANCE, Decimal("-50.0000")),
    ]


def test_a_dashboard_refund_of_money_that_already_paid_an_invoice_goes_to_finance(
    localstripe, django_capture_on_commit_callbacks, client
):
    _invoice, _consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks)
    payment = Payment.objects.get()
    stripe_refund = localstripe.client.v1.refunds.create(
        {"payment_intent": payment.stripe_payment_intent, "amount": 30000}
    )
    charge = localstripe.client.v1.charges.retrieve(payment.stripe_charge).to_dict()

    with django_capture_on_commit_callbacks(execute=True):
        assert post_event(client, event_body("evt_refund_applied", "charge.refunded", charge)).status_code == 200

    exception = ReconciliationException.objects.get()
    assert Refund.objects.count() == 0
    assert (exception.kind, exception.subject, exception.amount, exception.payment_id) == (
        ExceptionKind.AMOUNT_MISMATCH,
        f"stripe_refund:{stripe_refund.id}",
        Decimal("-300.0000"),
        payment.pk,
    )
    assert StripeEvent.objects.get().status == StripeEventStatus.PROCESSED


# --- paying on the invoice page -------------------------------------------------------------------------------------


def test_the_pay_by_card_view_returns_one_payment_intent_for_the_consumers_own_invoice_only(localstripe):
    invoice, _center, consumer = october_invoice()
    finance = browser_as(member_of(consumer, Role.FINANCE), consumer)
    url = f"/billing/invoices/{invoice.pk}/pay/card/"

    first = finance.post(url)
    again = finance.post(url)

    body = first.json()
    assert first.status_code == 200
    assert (
        body["amount"],
        body["currency"],
        body["client_secret"].startswith(f"{body['payment_intent']}_secret_"),
    ) == (
        "1000.00",
        "CNY",
        True,
    )
    assert again.json() == body
    assert Payment.objects.get().stripe_payment_intent == body["payment_intent"]

    other = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    assert browser_as(member_of(other, Role.OWNER), other).post(url).status_code == 404
    viewer = browser_as(member_of(consumer, Role.VIEWER), consumer).post(url)
    assert (viewer.status_code, viewer.json()["code"]) == (403, "role_required")
    assert finance.get(url).status_code == 405
    assert Payment.objects.count() == 1


def test_a_paid_invoice_or_stripe_switched_off_starts_no_card_payment(localstripe, settings):
    invoice, _center, consumer = october_invoice()
    finance = browser_as(member_of(consumer, Role.FINANCE), consumer)
    url = f"/billing/invoices/{invoice.pk}/pay/card/"

    settings.STRIPE_ENABLED = False
    off = finance.post(url)
    settings.STRIPE_ENABLED = True
    payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal("1000.00"),
        key="bank:1",
        received_at=CREDITED_AT,
        now=CREDITED_AT,
        invoice=invoice,
    )
    paid = finance.post(url)

    assert (off.status_code, off.json()["code"]) == (409, "stripe_disabled")
    assert (paid.status_code, paid.json()) == (
        409,
        {"detail": "Invoice INV-2026-10-000001 has nothing left to pay.", "code": "nothing_to_pay"},
    )
    assert Payment.objects.count() == 1


def test_the_invoice_page_shows_paid_remainder_history_bank_details_and_the_card_form(localstripe):
    invoice, _center, consumer = october_invoice()
    payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal("400.00"),
        key="bank:partial",
        received_at=CREDITED_AT,
        now=CREDITED_AT,
        invoice=invoice,
    )

    finance = browser_as(member_of(consumer, Role.FINANCE), consumer)
    # A card payment started but not completed is no payment yet: the history does not list it.
    assert finance.post(f"/billing/invoices/{invoice.pk}/pay/card/").status_code == 200

    response = finance.get(f"/billing/invoices/{invoice.pk}/")

    text, html = text_of(response), response.content.decode()
    assert "Total 1000.00 CNY Paid 400.00 CNY Remainder to pay 600.00 CNY" in text
    assert (
        "How to pay by bank transfer Beneficiary AI Computing Network Platform Co., Ltd. "
        "Bank Bank of Hangzhou, Xixi branch Account 3301 0401 6000 0000 000 Amount 600.00 CNY "
        "Payment reference INV-2026-10-000001" in text
    )
    assert "Pay by card Pay 600.00 CNY by card" in text
    assert (
        "Payment history Date (UTC) What Method Status Amount "
        "2026-11-20 10:00 Payment Bank transfer Received 400.00 CNY "
        "2026-11-20 10:00 Applied to this invoice Bank transfer — 400.00 CNY" in text
    )
    assert "Pending" not in text
    assert f'<script src="{localstripe.url}/js.stripe.com/v3/"></script>' in html
    assert f'data-intent-url="/billing/invoices/{invoice.pk}/pay/card/"' in html
    assert 'data-publishable-key="pk_test_localstripe_computenet"' in html


@pytest.mark.parametrize("missing", ["STRIPE_ENABLED", "STRIPE_PUBLISHABLE_KEY"])
def test_without_stripe_the_invoice_page_offers_bank_transfer_only(localstripe, settings, missing):
    setattr(settings, missing, False if missing == "STRIPE_ENABLED" else "")
    invoice, _center, consumer = october_invoice()

    response = browser_as(member_of(consumer, Role.FINANCE), consumer).get(f"/billing/invoices/{invoice.pk}/")

    text = text_of(response)
    assert "Remainder to pay 1000.00 CNY" in text
    assert "Payment reference INV-2026-10-000001" in text
    assert "Pay by card" not in text
    assert "js.stripe.com" not in response.content.decode()


def test_a_member_who_cannot_act_on_billing_is_told_who_can_pay_by_card(localstripe):
    invoice, _center, consumer = october_invoice()

    response = browser_as(member_of(consumer, Role.VIEWER), consumer).get(f"/billing/invoices/{invoice.pk}/")

    text = text_of(response)
    assert "Pay by card Your organization's owners, admins and finance staff can pay this invoice by card." in text
    assert "js.stripe.com" not in response.content.decode()


# --- the API --------------------------------------------------------------------------------------------------------


def test_the_payments_api_lists_the_consumers_own_payments_and_the_invoice_shows_paid_and_due(
    localstripe, django_capture_on_commit_callbacks
):
    invoice, consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks)
    payment = Payment.objects.get()
    api = with_token(token_for(consumer, Scope.BILLING))
    other = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")

    mine = api.get("/api/v1/payments")
    theirs = with_token(token_for(other, Scope.BILLING)).get("/api/v1/payments")
    bad = api.get("/api/v1/payments?status=lost")
    one = api.get(f"/api/v1/invoices/{invoice.pk}")

    allocation = payment.allocations.get()
    assert mine.status_code == 200
    assert mine.json() == {
        "count": 1,
        "next": None,
        "previous": None,
        "results": [
            {
                "id": str(payment.pk),
                "consumer": consumer.slug,
                "method": "stripe",
                "status": "succeeded",
                "currency": "CNY",
                "amount": "1000.00",
                "invoice": str(invoice.pk),
                "invoice_number": "INV-2026-10-000001",
                "reference": "INV-2026-10-000001",
                "received_at": rfc3339(payment.received_at),
                "failure_message": "",
                "unapplied": "0.00",
                "allocations": [
                    {
                        "invoice": str(invoice.pk),
                        "invoice_number": "INV-2026-10-000001",
                        "amount": "1000.00",
                        "created_at": rfc3339(allocation.created_at),
                    }
                ],
                "refunds": [],
                "created_at": rfc3339(payment.created_at),
            }
        ],
    }
    assert allocation.amount == Decimal("1000.0000")
    assert theirs.json()["count"] == 0
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid")
    assert (one.json()["amount_paid"], one.json()["amount_due"], one.json()["status"]) == ("1000.00", "0.00", "paid")


def test_after_a_bank_transfer_the_card_form_pays_only_the_remainder_and_the_old_payment_intent_is_canceled(
    localstripe,
):
    invoice, _center, consumer = october_invoice()
    finance = browser_as(member_of(consumer, Role.FINANCE), consumer)
    url = f"/billing/invoices/{invoice.pk}/pay/card/"
    before = finance.post(url).json()
    payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal("400.00"),
        key="bank:partial",
        received_at=CREDITED_AT,
        now=CREDITED_AT,
        invoice=invoice,
    )

    after = finance.post(url).json()

    old = Payment.objects.get(stripe_payment_intent=before["payment_intent"])
    assert (before["amount"], after["amount"]) == ("1000.00", "600.00")
    assert after["payment_intent"] != before["payment_intent"]
    assert old.status == PaymentStatus.CANCELED
    assert localstripe.client.v1.payment_intents.retrieve(before["payment_intent"]).status == "canceled"
    assert localstripe.client.v1.payment_intents.retrieve(after["payment_intent"]).amount == 60000


@pytest.mark.django_db(transaction=True)
def test_two_requests_racing_for_the_customer_both_get_the_one_stored(localstripe):
    import threading

    from django.db import connection

    _invoice, _center, consumer = october_invoice()
    barrier = threading.Barrier(2)
    got: list[str] = []

    def ensure() -> None:
        try:
            barrier.wait(timeout=10)
            got.append(customer_ensure(consumer=consumer))
        finally:
            connection.close()

    threads = [threading.Thread(target=ensure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    stored = PaymentProfile.objects.get(organization=consumer).stripe_customer_id
    assert got == [stored, stored]
    assert PaymentProfile.objects.filter(organization=consumer).count() == 1


def test_the_payment_section_reloads_alone_when_a_payment_arrives(localstripe):
    invoice, _center, consumer = october_invoice()
    finance = browser_as(member_of(consumer, Role.FINANCE), consumer)
    page = finance.get(f"/billing/invoices/{invoice.pk}/").content.decode()
    payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal("1000.00"),
        key="bank:full",
        received_at=CREDITED_AT,
        now=CREDITED_AT,
        invoice=invoice,
    )

    # What live.js asks for (through htmx) when the consumer's `payment.received` or `invoice.paid` event arrives.
    section = finance.get(f"/billing/invoices/{invoice.pk}/", HTTP_HX_REQUEST="true")

    assert 'data-live-reload="payment.received invoice.paid credit_note.issued"' in page
    assert section.content.decode().lstrip().startswith('<section class="mt-4" id="invoice-payment"')
    assert "Paid 1000.00 CNY Remainder to pay 0.00 CNY" in text_of(section)
    assert "How to pay by bank transfer" not in text_of(section)
    assert "HX-Request" in section["Vary"]


def test_finance_refunds_a_card_payments_credit_from_its_exception_through_stripe(
    localstripe, django_capture_on_commit_callbacks, settings
):
    from billing.models import ExceptionKind, ExceptionResolution
    from billing.services.payments import exception_open
    from billing.services.reconcile import exception_refund

    invoice, consumer = autopaid_invoice(localstripe, django_capture_on_commit_callbacks)
    payment = Payment.objects.get()
    # A credit note while card refunds were switched off leaves 150.00 of the card payment as credit…
    settings.STRIPE_ENABLED = False
    credit_note_issue(
        actor=finance_clerk(),
        invoice_id=invoice.pk,
        lines=[CreditRequest(line_id=invoice.lines.get().pk, amount=Decimal("150.00"))],
        reason="Goodwill",
        now=CREDITED_AT,
    )
    settings.STRIPE_ENABLED = True
    exception = exception_open(
        kind=ExceptionKind.INVOICE_PAID_TWICE,
        subject=f"payment:{payment.pk}",
        detail="credit to return",
        now=CREDITED_AT,
        payment=payment,
        consumer=consumer,
        currency="CNY",
        amount=Decimal("150.00"),
    )

    # …which finance refunds from the exception: Stripe refunds the charge after the commit.
    with django_capture_on_commit_callbacks(execute=True):
        exception_refund(
            actor=finance_clerk("clerk2@platform.example"),
            exception_id=exception.pk,
            reason="Customer asked for the money back",
            now=CREDITED_AT,
        )

    refund = Refund.objects.get()
    on_stripe = localstripe.client.v1.refunds.retrieve(refund.stripe_refund)
    assert (refund.amount, refund.status, on_stripe.amount, on_stripe.charge) == (
        Decimal("150.0000"),
        RefundStatus.SUCCEEDED,
        15000,
        payment.stripe_charge,
    )
    exception.refresh_from_db()
    assert exception.resolution == ExceptionResolution.REFUNDED
    assert credit_balance(consumer, "CNY") == 0
    assert entry_lines(f"refund:{refund.pk}") == [
        (AccountRole.CUSTOMER_CREDIT, Decimal("150.0000")),
        (AccountRole.STRIPE_BALANCE, Decimal("-150.0000")),
    ]
