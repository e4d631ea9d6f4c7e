"""Payment settings (issue 6): a consumer saves a card with a Stripe SetupIntent (against a real localstripe), turns
autopay on and off and removes the card; a center sets its payout account; members read, owners/admins/finance
change, every change audited; the operator sets a center's Stripe Connect account in the admin."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput
from accounts.models import AuditEvent, OrganizationKind, Role, Scope
from billing.models import PaymentProfile, StripeEvent, StripeEventStatus
from billing.services import payment_profiles as services
from billing.services.stripe_events import stripe_event_handle
from billing.services.stripe_payments import customer_ensure
from tests.accounts.api_helpers import with_token
from tests.accounts.page_helpers import browser_as, text_of
from tests.billing.stripe_server import event_body, sign
from tests.factories import OrganizationFactory, member_of, token_for

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
PAGE = "/billing/payment-settings/"


def consumer():
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")


def center():
    return OrganizationFactory(kind=OrganizationKind.CENTER, name="Lakeside AI Computing Center")


def actor(organization, role=Role.FINANCE) -> Actor:
    return Actor.for_member(user=member_of(organization, role), organization=organization, role=role)


def save_card_in_browser(localstripe, organization, card_number: str = "4242424242424242") -> str:
    """What stripe.js does on the page: confirm the page's SetupIntent with the card; returns the SetupIntent id."""
    secret = services.card_setup_start(actor=actor(organization))
    setup_id = secret.split("_secret_")[0]
    method = localstripe.card(card_number)
    localstripe.client.v1.setup_intents.confirm(setup_id, {"payment_method": method})
    return setup_id


# --- the consumer's card --------------------------------------------------------------------------------------------


def test_a_saved_card_becomes_the_default_and_shows_as_stripe_reports_it(localstripe):
    org = consumer()
    setup_id = save_card_in_browser(localstripe, org)

    services.card_setup_check(actor=actor(org), setup_intent_id=setup_id, now=NOW)
    again = services.card_setup_check(actor=actor(org), setup_intent_id=setup_id, now=NOW)

    profile = PaymentProfile.objects.get(organization=org)
    intent = localstripe.client.v1.setup_intents.retrieve(setup_id)
    method = localstripe.client.v1.payment_methods.retrieve(profile.default_payment_method)
    assert (intent.status, intent.usage, intent.customer) == ("succeeded", "off_session", profile.stripe_customer_id)
    assert again.default_payment_method == intent.payment_method
    assert method.customer == profile.stripe_customer_id  # attached: chargeable off-session
    card = services.saved_card(profile)
    assert (card.brand, card.last4) == ("visa", "4242")
    assert list(AuditEvent.objects.filter(action="payment_profile.card_saved").values_list("after", flat=True)) == [
        {"default_payment_method": intent.payment_method}
    ]

    page = text_of(browser_as(member_of(org, Role.MEMBER), org).get(PAGE))
    assert "Visa ending in 4242" in page
    assert "Autopay is off" in page
    assert "can change the saved card and autopay" in page


def test_the_setup_intent_succeeded_webhook_saves_the_card_once(localstripe, client):
    org = consumer()
    setup_id = save_card_in_browser(localstripe, org)
    intent = localstripe.client.v1.setup_intents.retrieve(setup_id).to_dict()
    body = event_body("evt_setup_1", "setup_intent.succeeded", intent)

    response = client.generic(
        "POST", "/api/v1/stripe/webhook", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )
    event = StripeEvent.objects.get(event_id="evt_setup_1")
    stripe_event_handle(stripe_event_id=event.pk, now=NOW)
    StripeEvent.objects.filter(pk=event.pk).update(status=StripeEventStatus.RECEIVED)
    stripe_event_handle(stripe_event_id=event.pk, now=NOW)

    event.refresh_from_db()
    assert response.status_code == 200
    assert event.status == StripeEventStatus.PROCESSED
    assert PaymentProfile.objects.get(organization=org).default_payment_method == intent["payment_method"]
    assert AuditEvent.objects.filter(action="payment_profile.card_saved").count() == 1


def test_a_setup_intent_of_another_customer_is_refused(localstripe):
    org, other = consumer(), OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    customer_ensure(consumer=org)
    theirs = save_card_in_browser(localstripe, other)

    with pytest.raises(InvalidInput):
        services.card_setup_check(actor=actor(org), setup_intent_id=theirs, now=NOW)

    assert PaymentProfile.objects.get(organization=org).default_payment_method == ""


def test_autopay_needs_a_saved_card(localstripe):
    org = consumer()
    with pytest.raises(Conflict) as refused:
        services.autopay_set(actor=actor(org), enabled=True, now=NOW)
    assert refused.value.code == "no_saved_card"
    assert not PaymentProfile.objects.filter(organization=org, autopay=True).exists()

    response = browser_as(member_of(org, Role.OWNER), org).post(PAGE, {"action": "autopay_on"}, follow=True)
    assert "Save a card first: autopay charges the saved card when an invoice is finalized." in text_of(response)


def test_autopay_on_then_remove_card_detaches_it_and_turns_autopay_off(localstripe):
    org = consumer()
    services.card_setup_check(actor=actor(org), setup_intent_id=save_card_in_browser(localstripe, org), now=NOW)
    owner = browser_as(member_of(org, Role.OWNER), org)

    on = owner.post(PAGE, {"action": "autopay_on"}, follow=True)
    assert PaymentProfile.objects.get(organization=org).autopay is True
    assert "Autopay is on" in text_of(on)
    method = PaymentProfile.objects.get(organization=org).default_payment_method

    removed = owner.post(PAGE, {"action": "remove_card"}, follow=True)

    profile = PaymentProfile.objects.get(organization=org)
    assert (profile.default_payment_method, profile.autopay) == ("", False)
    assert localstripe.client.v1.payment_methods.retrieve(method).customer is None
    assert "No card is saved." in text_of(removed)
    assert list(AuditEvent.objects.filter(organization=org).order_by("id").values_list("action", flat=True)) == [
        "payment_profile.card_saved",
        "payment_profile.autopay",
        "payment_profile.card_removed",
    ]


def test_a_member_cannot_change_the_card_or_autopay(localstripe):
    org = consumer()
    services.card_setup_check(actor=actor(org), setup_intent_id=save_card_in_browser(localstripe, org), now=NOW)
    member = browser_as(member_of(org, Role.MEMBER), org)

    refused = member.post(PAGE, {"action": "autopay_on"}, follow=True)
    setup = member.post("/billing/payment-settings/card/setup/")

    assert "Only owners, admins and finance staff can change payment settings." in text_of(refused)
    assert (setup.status_code, setup.json()["code"]) == (403, "role_required")
    assert PaymentProfile.objects.get(organization=org).autopay is False
    with pytest.raises(Forbidden):
        services.card_remove(actor=actor(org, Role.MEMBER), now=NOW)


def test_without_stripe_the_page_offers_bank_transfer_only(settings):
    settings.STRIPE_ENABLED = False
    org = consumer()

    response = browser_as(member_of(org, Role.OWNER), org).get(PAGE)

    text = text_of(response)
    assert "Card payments are not available on this platform. Pay your invoices by bank transfer." in text
    assert f"Account {settings.PLATFORM_BANK_ACCOUNT}" in text
    assert "Save a card" not in text
    assert "js.stripe.com" not in response.content.decode()


# --- the center's payout account ------------------------------------------------------------------------------------

BANK_DETAILS = {
    "payout_method": "bank",
    "bank_account_name": "Lakeside AI Computing Co., Ltd.",
    "bank_name": "Bank of Hangzhou",
    "bank_account_number": "6222 0212 3456 7890",
    "bank_code": "313331000014",
}


def test_a_center_saves_its_bank_account_and_the_audit_masks_the_number():
    org = center()
    owner = browser_as(member_of(org, Role.ADMIN), org)

    response = owner.post(PAGE, BANK_DETAILS, follow=True)

    profile = PaymentProfile.objects.get(organization=org)
    assert (profile.payout_method, profile.bank_account_number, profile.bank_code) == (
        "bank",
        "6222021234567890",
        "313331000014",
    )
    assert "Payout settings saved." in text_of(response)
    event = AuditEvent.objects.get(action="payment_profile.payout_settings")
    assert event.before == {
        "payout_method": "bank",
        "bank_account_name": "",
        "bank_name": "",
        "bank_account_number": "",
        "bank_code": "",
    }
    assert event.after == {
        "payout_method": "bank",
        "bank_account_name": "Lakeside AI Computing Co., Ltd.",
        "bank_name": "Bank of Hangzhou",
        "bank_account_number": "••••7890",
        "bank_code": "313331000014",
    }


def test_invalid_payout_settings_are_shown_and_change_nothing():
    org = center()
    owner = browser_as(member_of(org, Role.OWNER), org)

    response = owner.post(PAGE, {**BANK_DETAILS, "bank_account_number": "12-34", "bank_code": "", "bank_name": ""})

    text = text_of(response)
    assert response.status_code == 400
    assert "6 to 34 letters or digits." in text
    assert "Required: the account holder, bank, account number and bank code go together." in text
    assert not PaymentProfile.objects.filter(organization=org).exclude(bank_account_number="").exists()
    assert not AuditEvent.objects.filter(action="payment_profile.payout_settings").exists()


def test_stripe_payouts_need_a_connect_account_set_by_the_operator(localstripe):
    org = center()
    admin = actor(org, Role.OWNER)
    with pytest.raises(InvalidInput) as refused:
        services.payout_settings_update(actor=admin, now=NOW, **{**BANK_DETAILS, "payout_method": "stripe"})
    assert refused.value.errors["payout_method"] == [
        "Stripe payouts need a Stripe Connect account set up by the platform; choose bank transfer."
    ]
    page = browser_as(member_of(org, Role.OWNER), org).get(PAGE).content.decode()
    assert 'value="stripe"' not in page

    PaymentProfile.objects.update_or_create(organization=org, defaults={"stripe_account_id": "acct_lakeside"})
    profile = services.payout_settings_update(actor=admin, now=NOW, **{**BANK_DETAILS, "payout_method": "stripe"})

    assert profile.payout_method == "stripe"
    assert 'value="stripe"' in browser_as(member_of(org, Role.OWNER), org).get(PAGE).content.decode()


def test_a_center_member_reads_but_cannot_change_payout_settings():
    org = center()
    services.payout_settings_update(actor=actor(org, Role.OWNER), now=NOW, **BANK_DETAILS)
    member = browser_as(member_of(org, Role.MEMBER), org)

    page = member.get(PAGE)
    refused = member.post(PAGE, {**BANK_DETAILS, "bank_name": "Another Bank"})

    assert "can change the payout settings" in text_of(page)
    assert "Only owners, admins and finance staff can change payment settings." in text_of(refused)
    assert PaymentProfile.objects.get(organization=org).bank_name == "Bank of Hangzhou"


def test_another_organizations_settings_are_unreachable():
    mine, theirs = center(), OrganizationFactory(kind=OrganizationKind.CENTER, name="Westlake Compute")
    services.payout_settings_update(actor=actor(theirs, Role.OWNER), now=NOW, **BANK_DETAILS)

    page = text_of(browser_as(member_of(mine, Role.OWNER), mine).get(PAGE))

    assert "Bank of Hangzhou" not in page
    assert "6222021234567890" not in page


# --- the operator ---------------------------------------------------------------------------------------------------


def test_the_operator_sets_a_centers_stripe_connect_account_in_the_admin():
    from django.contrib.auth import get_user_model

    org = center()
    services.payout_settings_update(actor=actor(org, Role.OWNER), now=NOW, **BANK_DETAILS)
    staff = get_user_model().objects.create_superuser(email="staff@platform.test", password="x" * 12)
    browser = browser_as(staff)
    url = f"/admin/billing/paymentprofile/{org.pk}/change/"

    response = browser.post(url, {"stripe_account_id": "acct_lakeside", "payout_method": "stripe"})

    profile = PaymentProfile.objects.get(organization=org)
    assert response.status_code == 302
    assert (profile.stripe_account_id, profile.payout_method, profile.bank_name) == (
        "acct_lakeside",
        "stripe",
        "Bank of Hangzhou",
    )
    event = AuditEvent.objects.get(action="payment_profile.operator_change")
    assert (event.before, event.after) == (
        {"stripe_account_id": None, "payout_method": "bank"},
        {"stripe_account_id": "acct_lakeside", "payout_method": "stripe"},
    )


# --- the API --------------------------------------------------------------------------------------------------------


def api(organization, *scopes):
    return with_token(token_for(organization, *(scopes or (Scope.BILLING,))))


def test_a_consumer_reads_its_card_and_turns_autopay_on_through_the_api(localstripe):
    org = consumer()
    client = api(org)
    refused = client.patch("/api/v1/payment-settings", {"autopay": True}, format="json")
    services.card_setup_check(actor=actor(org), setup_intent_id=save_card_in_browser(localstripe, org), now=NOW)

    changed = client.patch("/api/v1/payment-settings", {"autopay": True}, format="json")
    read = api(org, Scope.READ).get("/api/v1/payment-settings")

    assert (refused.status_code, refused.json()["code"]) == (409, "no_saved_card")
    assert changed.status_code == 200
    assert read.json() == {
        "card_payments_available": True,
        "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        "autopay": True,
        "payout": None,
    }


def test_a_read_token_cannot_patch_and_a_consumer_cannot_set_payout_fields(localstripe):
    org = consumer()

    read_only = api(org, Scope.READ).patch("/api/v1/payment-settings", {"autopay": False}, format="json")
    wrong = api(org).patch("/api/v1/payment-settings", {"bank_name": "Bank of Hangzhou"}, format="json")

    assert read_only.status_code == 403
    assert (wrong.status_code, wrong.json()["errors"]) == (
        400,
        {"bank_name": ["This setting does not apply to your organization."]},
    )
    assert not PaymentProfile.objects.filter(organization=org).exclude(bank_name="").exists()


def test_a_center_patches_its_payout_account_through_the_api():
    org = center()
    client = api(org)

    saved = client.patch("/api/v1/payment-settings", BANK_DETAILS, format="json")
    partial = client.patch("/api/v1/payment-settings", {"bank_name": "Bank of Ningbo"}, format="json")
    invalid = client.patch("/api/v1/payment-settings", {"bank_code": "??"}, format="json")

    assert saved.status_code == 200
    assert (partial.status_code, partial.json()["payout"]) == (
        200,
        {
            "payout_method": "bank",
            "bank_account_name": "Lakeside AI Computing Co., Ltd.",
            "bank_name": "Bank of Ningbo",
            "bank_account_number": "6222021234567890",
            "bank_code": "313331000014",
            "stripe_account_id": None,
            "stripe_payouts_available": False,
        },
    )
    assert (invalid.status_code, invalid.json()["errors"]) == (
        400,
        {"bank_code": ["A CNAPS code (12 digits) or a SWIFT code (8 or 11 letters and digits)."]},
    )
    assert PaymentProfile.objects.get(organization=org).bank_code == "313331000014"
    assert AuditEvent.objects.filter(action="payment_profile.payout_settings").count() == 2
