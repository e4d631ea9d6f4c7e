"""The operator's Stripe reconciliation page: import the platform's Stripe balance transactions and payouts (a
Celery task; its progress arrives live over the WebSocket), the last runs, each Stripe payout with its gross, fees,
net, bank deposit and reconciliation state, a payout's contents, and Stripe's fees booked.

Any member of the operator reads; its owners, admins and finance staff import (the service checks it too).
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.errors import DomainError, NotFound
from billing.selectors.stripe_recon import (
    stripe_fees_posted,
    stripe_import_state,
    stripe_payout_exceptions,
    stripe_payout_get,
    stripe_payout_rows,
    stripe_payout_transactions,
)
from billing.services.stripe_reconcile import stripe_import_request
from billing.stripe_api import stripe_enabled
from billing.views_finance import Submission, can_act, finance_write_required, operator_required
from marketplace.views_support import is_htmx, vary_on_htmx, wants_partial


def _context(request: HttpRequest, notice: tuple[str, str] | None = None) -> dict[str, Any]:
    return {
        "state": stripe_import_state(request.actor),
        "payouts": stripe_payout_rows(request.actor),
        "fees": stripe_fees_posted(request.actor),
        "can_act": can_act(request.actor),
        "stripe_enabled": stripe_enabled(),
        "notice": notice,
        "submission": secrets.token_urlsafe(24),
    }


@require_GET
@operator_required
def stripe_recon(request: HttpRequest) -> HttpResponse:
    template = "billing/stripe/_body.html" if wants_partial(request) else "billing/stripe/recon.html"
    return vary_on_htmx(render(request, template, _context(request)))


@require_POST
@operator_required
@finance_write_required
def stripe_import(request: HttpRequest) -> HttpResponse:
    """Queue an import (by htmx into the page's live region, or a plain POST). A form already sent does nothing
    a second time; an import already running is said so, and nothing more is queued."""
    submission = Submission(request, "stripe_import", "platform")
    status = 200
    if not submission.claim():
        notice = ("info", _("This form was already submitted: nothing was done a second time."))
    else:
        try:
            result = stripe_import_request(actor=request.actor, now=timezone.now())
        except DomainError as exc:
            submission.release()
            notice, status = ("danger", exc.detail), exc.status_code
        else:
            if result.outcome == "running":
                notice = ("info", _("An import is already running; its progress shows below."))
            else:
                notice = ("success", _("The import has started; its progress shows below."))
    if is_htmx(request):
        # 200 even for a refusal: htmx swaps only successful answers, and the refusal must replace the button.
        return render(request, "billing/stripe/_body.html", _context(request, notice))
    if status >= 400:
        return render(request, "billing/stripe/recon.html", _context(request, notice), status=status)
    messages.add_message(request, messages.SUCCESS if notice[0] == "success" else messages.INFO, notice[1])
    return redirect("billing:stripe_recon")


@require_GET
@operator_required
def stripe_payout(request: HttpRequest, payout_id: str) -> HttpResponse:
    try:
        row = stripe_payout_get(request.actor, payout_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    context = {
        "row": row,
        "transactions": stripe_payout_transactions(request.actor, row.payout),
        "exceptions": stripe_payout_exceptions(request.actor, row),
    }
    return render(request, "billing/stripe/payout.html", context)


urlpatterns = [
    path("billing/finance/stripe/", stripe_recon, name="stripe_recon"),
    path("billing/finance/stripe/import/", stripe_import, name="stripe_import"),
    path("billing/finance/stripe/payouts/<str:payout_id>/", stripe_payout, name="stripe_payout"),
]
