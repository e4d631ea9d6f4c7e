"""Payment settings API: `GET/PATCH /api/v1/payment-settings`, the acting organization's own (no id in the URL, so
nobody else's is reachable). A consumer reads its saved card (as Stripe reports it) and autopay, and PATCHes
`autopay`; a center reads and PATCHes its payout account. `billing` scope; reads also allowed to `read`. Saving a card
needs the browser (stripe.js), so it is the payment settings page's, not the API's.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.actor import Actor
from accounts.errors import InvalidInput
from accounts.models import CONSUMER_KINDS, OrganizationKind, Scope
from accounts.schema import error_responses
from accounts.serializers import StrictInputSerializer
from billing import stripe_gateway as gateway
from billing.models import PaymentProfile
from billing.services import payment_profiles as services


class SavedCardSerializer(serializers.Serializer):
    brand = serializers.CharField()
    last4 = serializers.CharField()
    exp_month = serializers.IntegerField(allow_null=True)
    exp_year = serializers.IntegerField(allow_null=True)


class PayoutAccountSerializer(serializers.Serializer):
    payout_method = serializers.ChoiceField(choices=PaymentProfile.PayoutMethod.values)
    bank_account_name = serializers.CharField(allow_blank=True)
    bank_name = serializers.CharField(allow_blank=True)
    bank_account_number = serializers.CharField(allow_blank=True)
    bank_code = serializers.CharField(allow_blank=True)
    stripe_account_id = serializers.CharField(allow_null=True, help_text="Set by the platform operator.")
    stripe_payouts_available = serializers.BooleanField()


class PaymentSettingsSerializer(serializers.Serializer):
    card_payments_available = serializers.BooleanField(help_text="Consumers: whether Stripe is configured.")
    card = SavedCardSerializer(allow_null=True, help_text="Consumers: the saved card, or null.")
    autopay = serializers.BooleanField(help_text="Consumers: charge the saved card when an invoice is finalized.")
    payout = PayoutAccountSerializer(allow_null=True, help_text="Centers: where payouts are sent; null otherwise.")


class PaymentSettingsPatchSerializer(StrictInputSerializer):
    autopay = serializers.BooleanField(required=False, help_text="Consumers only; needs a saved card.")
    payout_method = serializers.ChoiceField(choices=PaymentProfile.PayoutMethod.values, required=False)
    bank_account_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    bank_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    bank_account_number = serializers.CharField(required=False, allow_blank=True, max_length=64)
    bank_code = serializers.CharField(required=False, allow_blank=True, max_length=32)


PAYOUT_FIELDS = ("payout_method", *services.BANK_FIELDS)


def _settings(actor: Actor) -> dict[str, Any]:
    organization = actor.organization
    profile = services.profile_of(organization)
    if organization.is_center:
        return {
            "card_payments_available": False,
            "card": None,
            "autopay": False,
            "payout": {
                **{name: getattr(profile, name) for name in PAYOUT_FIELDS},
                "stripe_account_id": profile.stripe_account_id,
                "stripe_payouts_available": services.stripe_payouts_possible(profile),
            },
        }
    card = services.saved_card(profile)
    return {
        "card_payments_available": gateway.enabled(),
        "card": None
        if card is None
        else {"brand": card.brand, "last4": card.last4, "exp_month": card.exp_month, "exp_year": card.exp_year},
        "autopay": profile.autopay,
        "payout": None,
    }


class PaymentSettingsView(APIView):
    required_scope = Scope.BILLING
    allowed_kinds = CONSUMER_KINDS | {OrganizationKind.CENTER}

    @extend_schema(
        operation_id="payment_settings_get",
        summary="The acting organization's payment settings",
        responses={200: PaymentSettingsSerializer, **error_responses(403)},
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        return Response(_settings(request.auth))

    @extend_schema(
        operation_id="payment_settings_update",
        summary="Change autopay (consumers) or the payout account (centers)",
        description="Only the fields sent change. Autopay needs a saved card (409 `no_saved_card`); the bank fields "
        "go together; `stripe` payouts need a Stripe Connect account set by the operator (400 with per-field errors).",
        request=PaymentSettingsPatchSerializer,
        responses={200: PaymentSettingsSerializer, **error_responses(400, 403, 409)},
        tags=["billing"],
    )
    def patch(self, request: Request) -> Response:
        actor: Actor = request.auth
        serializer = PaymentSettingsPatchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        now = timezone.now()
        if actor.organization.is_center:
            if "autopay" in data:
                raise InvalidInput(_no_such_setting(), errors={"autopay": [_no_such_setting()]}, code="unknown_field")
            profile = services.profile_of(actor.organization)
            current = {name: getattr(profile, name) for name in PAYOUT_FIELDS}
            services.payout_settings_update(actor=actor, now=now, **{**current, **data})
        else:
            wrong = sorted(set(data) - {"autopay"})
            if wrong:
                raise InvalidInput(
                    _no_such_setting(), errors={name: [_no_such_setting()] for name in wrong}, code="unknown_field"
                )
            if "autopay" in data:
                services.autopay_set(actor=actor, enabled=data["autopay"], now=now)
        return Response(_settings(actor))


def _no_such_setting() -> str:
    return _("This setting does not apply to your organization.")


urlpatterns = [path("payment-settings", PaymentSettingsView.as_view(), name="api-payment-settings")]
