"""A consumer's owner saves a card for autopay in a real browser, against a real localstripe server: the payment
settings page asks our server for a SetupIntent, mounts the card form from stripe.js (localstripe's stand-in, loaded
from STRIPE_JS_URL), confirms the SetupIntent with `stripe.confirmCardSetup`, and our server checks with Stripe and
records the card; the page then shows it as Stripe reports it, and autopay can be turned on."""

from __future__ import annotations

from playwright.sync_api import expect

from accounts.models import OrganizationKind, Role
from billing.models import PaymentProfile
from tests.billing.stripe_server import localstripe, localstripe_url  # noqa: F401 (fixtures)
from tests.e2e.test_finance_flow import log_in, off_the_event_loop
from tests.factories import OrganizationFactory, member_of


def test_a_consumer_saves_a_card_and_turns_autopay_on(localstripe, page, live_server_url):  # noqa: F811
    consumer = off_the_event_loop(
        lambda: OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")
    )
    member_of(consumer, Role.OWNER, email="owner@blueheron.test")

    log_in(page, "owner@blueheron.test")
    page.goto("/")
    page.locator("#nav-billing").click()
    page.get_by_role("link", name="Payment settings").click()
    expect(page.locator("#card-summary")).to_have_text("No card is saved.")
    page.get_by_role("button", name="Save a card").click()

    form = page.locator("#setup-element")
    form.get_by_placeholder("number").fill("4242424242424242")
    form.get_by_placeholder("exp_month").fill("12")
    form.get_by_placeholder("exp_year").fill("30")
    form.get_by_placeholder("cvc").fill("123")
    form.get_by_placeholder("postal_code").fill("31000")
    page.get_by_role("button", name="Save card").click()

    expect(page.locator("#card-summary")).to_contain_text("Visa ending in 4242")
    expect(page.locator(".alert-success, .alert").first).to_contain_text("Your card was saved.")
    profile = PaymentProfile.objects.get(organization=consumer)
    method = localstripe.client.v1.payment_methods.retrieve(profile.default_payment_method)
    assert method.customer == profile.stripe_customer_id

    page.get_by_role("button", name="Charge my saved card when an invoice is finalized").click()
    expect(page.locator("#autopay-state")).to_contain_text("Autopay is on")
    assert PaymentProfile.objects.get(organization=consumer).autopay is True
