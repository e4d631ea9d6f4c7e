"""A consumer's finance clerk pays an invoice by card in a real browser, against a real localstripe server: the
invoice page shows the bank details and the Pay by card button; the button asks our server for the invoice's
PaymentIntent and mounts the payment form from stripe.js (localstripe's stand-in, loaded from STRIPE_JS_URL); the
payment is confirmed on Stripe; Stripe's signed webhook reaches the live server; the page then shows the invoice
paid with its payment history.

localstripe's stand-in for stripe.js mounts the form but cannot confirm a Payment Element payment
(`stripe.confirmPayment` is not part of it), so the test does that one step as Stripe.js does: it sets the card on
the PaymentIntent and confirms it through the API.
"""

from __future__ import annotations

from decimal import Decimal

from playwright.sync_api import expect

from accounts.models import Role
from billing.models import InvoiceStatus, Payment, PaymentStatus
from tests.billing.payments import october_invoice
from tests.billing.stripe_server import localstripe, localstripe_url  # noqa: F401 (fixtures)
from tests.e2e.test_finance_flow import log_in, off_the_event_loop
from tests.factories import member_of
from tests.worker import wait_for


def test_a_consumer_pays_an_invoice_by_card_and_sees_it_paid(localstripe, page, live_server_url):  # noqa: F811
    localstripe.deliver_webhooks_to(live_server_url)
    invoice, _center, consumer = off_the_event_loop(october_invoice)
    member_of(consumer, Role.FINANCE, email="finance@blueheron.test")

    log_in(page, "finance@blueheron.test")
    page.goto(f"/billing/invoices/{invoice.pk}/")
    expect(page.locator("#invoice-outstanding")).to_have_text("1000.00 CNY")
    expect(page.locator("#payment-reference")).to_have_text("INV-2026-10-000001")
    page.get_by_role("button", name="Pay 1000.00 CNY by card").click()

    # stripe.js mounted the payment form once our server created the PaymentIntent.
    expect(page.locator("#payment-element input").first).to_be_visible()
    expect(page.locator("#card-submit")).to_have_text("Pay 1000.00 CNY")
    payment = Payment.objects.get()
    assert (payment.status, payment.amount, payment.invoice_id) == (
        PaymentStatus.PENDING,
        Decimal("1000.0000"),
        invoice.pk,
    )

    assert localstripe.pay_in_browser(payment.stripe_payment_intent).status == "succeeded"

    # Stripe's webhook reaches the live server, which books the payment.
    assert wait_for(lambda: Payment.objects.get().status == PaymentStatus.SUCCEEDED, timeout=20)

    # Back from Stripe's redirect, the page says paid, with the payment in its history.
    page.goto(
        f"/billing/invoices/{invoice.pk}/?payment_intent={payment.stripe_payment_intent}&redirect_status=succeeded"
    )
    expect(page.locator("[data-invoice-status]").first).to_have_attribute("data-invoice-status", InvoiceStatus.PAID)
    expect(page.locator("#invoice-paid")).to_have_text("1000.00 CNY")
    expect(page.locator("#invoice-outstanding")).to_have_text("0.00 CNY")
    expect(page.locator("#bank-transfer")).to_have_count(0)
    expect(page.locator("#payment-history tr[data-payment-status=succeeded]")).to_contain_text("Stripe")
    expect(page.locator("#card-payment-returned")).to_contain_text("your card payment is being confirmed")
