"""An organization's payment settings: a consumer's saved card and autopay, a center's payout account.

A card is saved with a Stripe SetupIntent (usage `off_session`) the consumer confirms in the browser; Stripe's
`setup_intent.succeeded` webhook, or the page's own check right after confirming, records it as the default payment
method through one idempotent service (`card_setup_succeeded`). Stripe calls run outside any transaction
(STYLE.md rule 3); every change is audited, account numbers masked to their last four digits.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput
from accounts.models import Organization, Scope
from accounts.services import audit_record
from billing import stripe_gateway as gateway
from billing.models import PaymentProfile

logger = logging.getLogger(__name__)

BANK = PaymentProfile.PayoutMethod.BANK
STRIPE = PaymentProfile.PayoutMethod.STRIPE
BANK_FIELDS = ("bank_account_name", "bank_name", "bank_account_number", "bank_code")
ACCOUNT_NUMBER = re.compile(r"^[0-9A-Z]{6,34}$")  # digits (CN) or an IBAN
BANK_CODE = re.compile(r"^[0-9A-Z]{8,12}$")  # a CNAPS code (12 digits) or a SWIFT/BIC (8 or 11)


def can_change(actor: Actor) -> bool:
    """Owners, admins and finance staff change payment settings; other members read them."""
    return actor.allows(Scope.BILLING, read_only=False)


def _require_change(actor: Actor) -> None:
    if not can_change(actor):
        raise Forbidden(_("Only owners, admins and finance staff can change payment settings."), code="role_required")


def profile_of(organization: Organization) -> PaymentProfile:
    """The organization's profile, or an unsaved blank one (reading never creates a row)."""
    return PaymentProfile.objects.filter(organization=organization).first() or PaymentProfile(organization=organization)


def mask(number: str) -> str:
    """An account number as the audit log keeps it: its last four characters."""
    return f"••••{number[-4:]}" if number else ""


# --- a consumer's card ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedCard:
    payment_method: str
    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None


def saved_card(profile: PaymentProfile) -> SavedCard | None:
    """The saved card as Stripe reports it (brand, last four digits), or None when there is none or Stripe is off."""
    if not profile.default_payment_method or not gateway.enabled():
        return None
    method = gateway.payment_method_retrieve(profile.default_payment_method).to_dict()
    card = method.get("card") or {}
    return SavedCard(
        payment_method=method["id"],
        brand=str(card.get("brand") or ""),
        last4=str(card.get("last4") or ""),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
    )


def card_setup_start(*, actor: Actor) -> str:
    """A SetupIntent for the consumer to save (or replace) its card in the browser; returns its client secret.
    The idempotency key comes from the profile's state, so a double click asks Stripe for one SetupIntent, and a
    new one is made once a card was saved or removed."""
    _require_change(actor)
    if not gateway.enabled():
        raise gateway.StripeDisabled(_("Card payments are not available on this platform; pay by bank transfer."))
    from billing.services.stripe_payments import customer_ensure

    consumer = actor.organization
    customer_id = customer_ensure(consumer=consumer)
    profile = PaymentProfile.objects.get(organization=consumer)
    intent = gateway.setup_intent_create(
        customer_id=customer_id,
        metadata={"organization_id": str(consumer.pk), "source": "payment_settings"},
        idempotency_key=f"organization-{consumer.pk}-setup-{profile.updated_at:%Y%m%d%H%M%S%f}",
    )
    return intent.client_secret


def card_setup_succeeded(*, setup_intent: Any, now: datetime, actor: Actor | None = None) -> PaymentProfile | None:
    """Record the card a succeeded SetupIntent saved as the consumer's default payment method (the webhook and the
    page both call this; the same SetupIntent twice changes nothing). A SetupIntent of no customer of ours, or
    not succeeded, is ignored. The audit names the person when the page's check (`actor`) records it, else
    "stripe"."""
    data = setup_intent if isinstance(setup_intent, dict) else setup_intent.to_dict()
    customer_id = gateway.id_of(data.get("customer"))
    method = gateway.id_of(data.get("payment_method"))
    if data.get("status") != "succeeded" or not customer_id or not method:
        return None
    profile = PaymentProfile.objects.filter(stripe_customer_id=customer_id).first()
    if profile is None:
        return None
    if profile.default_payment_method == method:
        return profile
    attached = gateway.payment_method_retrieve(method).to_dict()
    if not gateway.id_of(attached.get("customer")):
        # Stripe attaches it on confirmation; attach it ourselves when that did not happen (it must be the
        # customer's to be charged off-session).
        gateway.payment_method_attach(payment_method=method, customer_id=customer_id)
    with transaction.atomic():
        profile = PaymentProfile.objects.select_for_update().get(pk=profile.pk)
        before = profile.default_payment_method
        if before == method:
            return profile
        profile.default_payment_method = method
        profile.save(update_fields=["default_payment_method", "updated_at"])
        audit_record(
            action="payment_profile.card_saved",
            organization=profile.organization,
            actor=actor,
            actor_label="" if actor is not None else "stripe",
            target=profile,
            before={"default_payment_method": before},
            after={"default_payment_method": method},
            now=now,
        )
    logger.info("payment_profile.card_saved", extra={"organization": str(profile.pk)})
    return profile


def card_setup_check(*, actor: Actor, setup_intent_id: str, now: datetime) -> PaymentProfile | None:
    """The page's check after the browser confirmed a SetupIntent: asks Stripe (never trusts the browser) and
    records the card when the SetupIntent is the acting consumer's and succeeded."""
    _require_change(actor)
    intent = gateway.setup_intent_retrieve(setup_intent_id).to_dict()
    profile = profile_of(actor.organization)
    if not profile.stripe_customer_id or gateway.id_of(intent.get("customer")) != profile.stripe_customer_id:
        raise InvalidInput(_("That card setup is not yours."), code="invalid_setup_intent")
    return card_setup_succeeded(setup_intent=intent, now=now, actor=actor)


def autopay_set(*, actor: Actor, enabled: bool, now: datetime) -> PaymentProfile:
    """Turn autopay on or off. On needs a saved card: refused otherwise."""
    _require_change(actor)
    with transaction.atomic():
        profile, _created = PaymentProfile.objects.select_for_update().get_or_create(organization=actor.organization)
        if enabled and not profile.default_payment_method:
            raise Conflict(
                _("Save a card first: autopay charges the saved card when an invoice is finalized."),
                code="no_saved_card",
            )
        if profile.autopay == enabled:
            return profile
        profile.autopay = enabled
        profile.save(update_fields=["autopay", "updated_at"])
        audit_record(
            action="payment_profile.autopay",
            organization=actor.organization,
            actor=actor,
            target=profile,
            before={"autopay": not enabled},
            after={"autopay": enabled},
            now=now,
        )
    return profile


def card_remove(*, actor: Actor, now: datetime) -> PaymentProfile:
    """Remove the saved card: detached in Stripe (no longer chargeable), then cleared here with autopay off."""
    _require_change(actor)
    profile = profile_of(actor.organization)
    method = profile.default_payment_method
    if not method:
        raise Conflict(_("There is no saved card to remove."), code="no_saved_card")
    if gateway.enabled():
        gateway.payment_method_detach(method)
    with transaction.atomic():
        profile = PaymentProfile.objects.select_for_update().get(pk=profile.pk)
        before = {"default_payment_method": profile.default_payment_method, "autopay": profile.autopay}
        profile.default_payment_method = ""
        profile.autopay = False
        profile.save(update_fields=["default_payment_method", "autopay", "updated_at"])
        audit_record(
            action="payment_profile.card_removed",
            organization=actor.organization,
            actor=actor,
            target=profile,
            before=before,
            after={"default_payment_method": "", "autopay": False},
            now=now,
        )
    return profile


# --- a center's payout account --------------------------------------------------------------------------------------


def stripe_payouts_possible(profile: PaymentProfile) -> bool:
    """Stripe payouts need Stripe configured and a Connect account the operator set for the center."""
    return bool(profile.stripe_account_id) and gateway.enabled()


def _payout_snapshot(profile: PaymentProfile) -> dict[str, str]:
    return {
        "payout_method": profile.payout_method,
        "bank_account_name": profile.bank_account_name,
        "bank_name": profile.bank_name,
        "bank_account_number": mask(profile.bank_account_number),
        "bank_code": profile.bank_code,
    }


def payout_settings_update(
    *,
    actor: Actor,
    payout_method: str,
    bank_account_name: str,
    bank_name: str,
    bank_account_number: str,
    bank_code: str,
    now: datetime,
) -> PaymentProfile:
    """Change a center's payout account. The bank fields go together (all or none; all for bank payouts), the
    account number is 6–34 letters or digits, the bank code a CNAPS or SWIFT code; Stripe only where possible.
    Invalid input changes nothing (`InvalidInput` with per-field errors)."""
    _require_change(actor)
    values = {
        "bank_account_name": " ".join((bank_account_name or "").split()),
        "bank_name": " ".join((bank_name or "").split()),
        "bank_account_number": re.sub(r"[\s-]", "", bank_account_number or "").upper(),
        "bank_code": re.sub(r"\s", "", bank_code or "").upper(),
    }
    errors: dict[str, list[str]] = {}
    if payout_method not in PaymentProfile.PayoutMethod.values:
        errors["payout_method"] = [_("Choose bank transfer or Stripe.")]
    if len(values["bank_account_name"]) > 200:
        errors["bank_account_name"] = [_("At most 200 characters.")]
    if len(values["bank_name"]) > 200:
        errors["bank_name"] = [_("At most 200 characters.")]
    if values["bank_account_number"] and not ACCOUNT_NUMBER.match(values["bank_account_number"]):
        errors["bank_account_number"] = [_("6 to 34 letters or digits.")]
    if values["bank_code"] and not BANK_CODE.match(values["bank_code"]):
        errors["bank_code"] = [_("A CNAPS code (12 digits) or a SWIFT code (8 or 11 letters and digits).")]
    given = [name for name in BANK_FIELDS if values[name]]
    if (payout_method == BANK or given) and len(given) < len(BANK_FIELDS):
        for name in BANK_FIELDS:
            if not values[name]:
                errors.setdefault(name, []).append(
                    _("Required: the account holder, bank, account number and bank code go together.")
                )
    with transaction.atomic():
        profile, _created = PaymentProfile.objects.select_for_update().get_or_create(organization=actor.organization)
        if payout_method == STRIPE and not stripe_payouts_possible(profile):
            errors["payout_method"] = [
                _("Stripe payouts need a Stripe Connect account set up by the platform; choose bank transfer.")
            ]
        if errors:
            raise InvalidInput(_("Check the payout settings."), errors=errors)
        before = _payout_snapshot(profile)
        profile.payout_method = payout_method
        for name, value in values.items():
            setattr(profile, name, value)
        after = _payout_snapshot(profile)
        profile.save(update_fields=["payout_method", *BANK_FIELDS, "updated_at"])
        audit_record(
            action="payment_profile.payout_settings",
            organization=actor.organization,
            actor=actor,
            target=profile,
            before=before,
            after=after,
            now=now,
        )
    return profile
