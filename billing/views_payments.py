"""Paying an invoice by card on its page: the page's script asks this view for the PaymentIntent of the consumer's
own invoice (created once for what is still outstanding) and confirms it in the browser with Stripe's Payment
Element. The invoice is loaded through the scoped selector, so another organization's invoice is a 404 exactly like a
missing one; only members who may act on billing (owners, admins, finance) may start a payment. Whether the payment
succeeded is decided by Stripe's webhook, never by the browser.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.errors import DomainError
from accounts.models import Scope
from accounts.views import scoped_object
from billing.models import Invoice
from billing.selectors.settlement import invoice_get
from billing.services.stripe_payments import invoice_payment_intent
from marketplace.money import format_money
from marketplace.views_support import consumer_required


@consumer_required
@require_POST
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
def invoice_pay_card(request: HttpRequest, invoice: Invoice) -> JsonResponse:
    if not request.actor.allows(Scope.BILLING, read_only=False):
        return JsonResponse(
            {"detail": _("Only owners, admins and finance staff can pay invoices."), "code": "role_required"},
            status=403,
        )
    try:
        card = invoice_payment_intent(invoice=invoice, now=timezone.now(), actor=request.actor)
    except DomainError as error:
        return JsonResponse(error.as_dict(), status=error.status_code)
    return JsonResponse(
        {
            "client_secret": card.client_secret,
            "payment_intent": card.payment_intent_id,
            "amount": format_money(card.amount, card.currency),
            "currency": card.currency,
        }
    )


urlpatterns: list = [
    path("billing/invoices/<str:invoice_id>/pay/card/", invoice_pay_card, name="invoice_pay_card"),
]
