"""Payment settings pages: a consumer's saved card (saved with a Stripe SetupIntent confirmed in the browser) and
autopay; a center's payout account. Any member reads; owners, admins and finance staff change (the services refuse
the others). Everything is the acting organization's own: there is no id in these URLs to reach another's.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from accounts.errors import DomainError
from accounts.forms import apply_domain_error
from accounts.views import actor_required
from billing import stripe_gateway as gateway
from billing.models import PaymentProfile
from billing.services import payment_profiles as services


class PayoutForm(forms.Form):
    payout_method = forms.ChoiceField(label=gettext_lazy("Payout method"), choices=PaymentProfile.PayoutMethod.choices)
    bank_account_name = forms.CharField(label=gettext_lazy("Account holder"), required=False, max_length=200)
    bank_name = forms.CharField(label=gettext_lazy("Bank"), required=False, max_length=200)
    bank_account_number = forms.CharField(label=gettext_lazy("Account number"), required=False, max_length=64)
    bank_code = forms.CharField(label=gettext_lazy("Bank code (CNAPS / SWIFT)"), required=False, max_length=32)


def _card_context(request: HttpRequest) -> dict:
    profile = services.profile_of(request.actor.organization)
    enabled = gateway.enabled() and bool(settings.STRIPE_PUBLISHABLE_KEY)
    card, card_error = None, ""
    if enabled and profile.default_payment_method:
        try:
            card = services.saved_card(profile)
        except DomainError as error:
            card_error = str(error.detail)
    return {
        "profile": profile,
        "card": card,
        "card_error": card_error,
        "stripe": {
            "enabled": enabled,
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "js_url": settings.STRIPE_JS_URL,
        },
        "can_change": services.can_change(request.actor),
        "bank": {
            "beneficiary": settings.PLATFORM_LEGAL_NAME,
            "bank": settings.PLATFORM_BANK_NAME,
            "account": settings.PLATFORM_BANK_ACCOUNT,
        },
    }


@actor_required
@require_http_methods(["GET", "POST"])
def payment_settings(request: HttpRequest) -> HttpResponse:
    organization = request.actor.organization
    if organization.is_consumer:
        if request.method == "POST":
            return _consumer_post(request)
        return render(request, "billing/payment_settings/consumer.html", _card_context(request))
    if organization.is_center:
        return _center_page(request)
    raise PermissionDenied(_("Payment settings belong to consumers and computing centers."))


def _consumer_post(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action")
    now = timezone.now()
    try:
        if action == "autopay_on":
            services.autopay_set(actor=request.actor, enabled=True, now=now)
            messages.success(request, _("Autopay is on: finalized invoices are charged to the saved card."))
        elif action == "autopay_off":
            services.autopay_set(actor=request.actor, enabled=False, now=now)
            messages.success(request, _("Autopay is off."))
        elif action == "remove_card":
            services.card_remove(actor=request.actor, now=now)
            messages.success(request, _("The saved card was removed and autopay turned off."))
        else:
            messages.error(request, _("Unknown action."))
    except DomainError as error:
        messages.error(request, error.detail)
    return redirect("billing:payment_settings")


def _center_page(request: HttpRequest) -> HttpResponse:
    profile = services.profile_of(request.actor.organization)
    stripe_possible = services.stripe_payouts_possible(profile)
    if request.method == "POST":
        form = PayoutForm(request.POST)
        if form.is_valid():
            try:
                services.payout_settings_update(actor=request.actor, now=timezone.now(), **form.cleaned_data)
            except DomainError as error:
                apply_domain_error(form, error)
            else:
                messages.success(request, _("Payout settings saved."))
                return redirect("billing:payment_settings")
        status = 400
    else:
        form = PayoutForm(
            initial={
                "payout_method": profile.payout_method,
                "bank_account_name": profile.bank_account_name,
                "bank_name": profile.bank_name,
                "bank_account_number": profile.bank_account_number,
                "bank_code": profile.bank_code,
            }
        )
        status = 200
    if not stripe_possible:
        form.fields["payout_method"].choices = [
            choice for choice in PaymentProfile.PayoutMethod.choices if choice[0] == services.BANK
        ] + ([(services.STRIPE, PaymentProfile.PayoutMethod.STRIPE.label)] if profile.payout_method == "stripe" else [])
    context = {
        "profile": profile,
        "form": form,
        "stripe_possible": stripe_possible,
        "can_change": services.can_change(request.actor),
    }
    return render(request, "billing/payment_settings/center.html", context, status=status)


@actor_required
@require_POST
def card_setup(request: HttpRequest) -> JsonResponse:
    """The SetupIntent the page's script confirms with stripe.js (JSON: its client secret)."""
    if not request.actor.organization.is_consumer:
        raise PermissionDenied(_("Cards are saved by consumers."))
    try:
        client_secret = services.card_setup_start(actor=request.actor)
    except DomainError as error:
        return JsonResponse(error.as_dict(), status=error.status_code)
    return JsonResponse({"client_secret": client_secret})


@actor_required
@require_POST
def card_setup_done(request: HttpRequest) -> JsonResponse:
    """After the browser confirmed: the server asks Stripe and records the card (the webhook would too)."""
    if not request.actor.organization.is_consumer:
        raise PermissionDenied(_("Cards are saved by consumers."))
    try:
        profile = services.card_setup_check(
            actor=request.actor, setup_intent_id=request.POST.get("setup_intent", ""), now=timezone.now()
        )
    except DomainError as error:
        return JsonResponse(error.as_dict(), status=error.status_code)
    saved = profile is not None and bool(profile.default_payment_method)
    if saved:
        messages.success(request, _("Your card was saved."))
    return JsonResponse({"saved": saved})


urlpatterns: list = [
    path("billing/payment-settings/", payment_settings, name="payment_settings"),
    path("billing/payment-settings/card/setup/", card_setup, name="payment_settings_card_setup"),
    path("billing/payment-settings/card/done/", card_setup_done, name="payment_settings_card_done"),
]
