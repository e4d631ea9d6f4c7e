"""Paying centers in the browser: the operator's finance staff turn a closed period's statements into payouts, send
Stripe Connect transfers, make and download bank payment files, mark payouts paid with the bank's reference, retry
failed ones, and record sponsors' voucher claim payments received; a center reads its own payouts.

Access as on the finance workbench (`billing.views_finance`): the operator's pages need the operator organization
(any member reads; owners, admins and finance staff act), the center's page a center organization. Objects named in
a URL are loaded through scoped selectors first, so a foreign or missing id is a 404. Every action form carries a
one-time submission token: a double click or a resent form does nothing twice.
"""

from __future__ import annotations

import secrets
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from accounts.errors import DomainError, InvalidInput, NotFound
from accounts.forms import apply_domain_error
from accounts.models import OrganizationKind
from accounts.views import actor_required, scoped_object
from billing.forms_payouts import ClaimReceivedForm, FailedForm, ReceivedForm, RetryForm
from billing.models import Payout, PayoutBatch, PayoutStatus, VoucherClaim, VoucherClaimStatus
from billing.selectors.payouts import payout_get, payout_list, payout_period, payout_periods
from billing.selectors.vouchers import voucher_claim_get
from billing.services import payouts as services
from billing.views_finance import Submission, View, can_act, finance_write_required, operator_required
from marketplace.money import format_money

PAGE_SIZE = 50


def center_required(view: View) -> View:
    @actor_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.actor.organization.kind != OrganizationKind.CENTER:
            raise PermissionDenied(_("Payouts are paid to computing centers."))
        return view(request, *args, **kwargs)

    return wrapper


def _already_submitted(request: HttpRequest, period: str) -> HttpResponse:
    messages.info(request, _("This form was already submitted: nothing was done a second time."))
    return redirect("billing:payouts_period", period=period)


def _label_of(payout: Payout) -> str:
    return payout.transfer_group.removeprefix("period-")


# --- the operator: periods ----------------------------------------------------------------------------------------


@require_GET
@operator_required
def periods(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/payouts/periods.html", {"rows": payout_periods(request.actor)})


def _period_page(
    request: HttpRequest,
    period: str,
    *,
    bound: dict[tuple[str, Any], Any] | None = None,
    notice: tuple[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    try:
        found = payout_period(request.actor, period)
    except (NotFound, InvalidInput) as exc:
        raise Http404(exc.detail) from exc
    bound = bound or {}
    actor_can_act = can_act(request.actor)
    for row in found.rows:
        payout = row.payout
        row.forms = {}
        if payout is None or not actor_can_act:
            continue
        if payout.status in (PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT, PayoutStatus.FAILED):
            row.forms["paid"] = bound.get(("paid", payout.pk)) or ReceivedForm(row=payout)
        if payout.status in (PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT):
            row.forms["failed"] = bound.get(("failed", payout.pk)) or FailedForm(row=payout)
        if payout.status == PayoutStatus.FAILED:
            row.forms["retry"] = bound.get(("retry", payout.pk)) or RetryForm(row=payout)
    claims = []
    for claim, reference in found.claims:
        form = None
        if actor_can_act and claim.status == VoucherClaimStatus.OPEN:
            form = bound.get(("received", claim.pk)) or ClaimReceivedForm(row=claim)
        claims.append({"claim": claim, "reference": reference, "form": form})
    context = {
        "data": found,
        "period": found.period,
        "claims": claims,
        "can_act": actor_can_act,
        "notice": notice,
        "submission": secrets.token_urlsafe(24),
    }
    return render(request, "billing/payouts/period.html", context, status=status)


@require_GET
@operator_required
def period_detail(request: HttpRequest, period: str) -> HttpResponse:
    return _period_page(request, period)


def _period_action(request: HttpRequest, period: str, action: str, act) -> HttpResponse:
    submission = Submission(request, f"payouts-{action}", period)
    if not submission.claim():
        return _already_submitted(request, period)
    try:
        sentence = act()
    except DomainError as exc:
        submission.release()
        if isinstance(exc, NotFound | InvalidInput):
            raise Http404(exc.detail) from exc
        return _period_page(request, period, notice=("danger", exc.detail), status=exc.status_code)
    messages.success(request, sentence)
    return redirect("billing:payouts_period", period=period)


@require_POST
@operator_required
@finance_write_required
def payouts_create(request: HttpRequest, period: str) -> HttpResponse:
    def act() -> str:
        result = services.payouts_create(period=period, now=timezone.now(), actor=request.actor)
        sentence = ngettext("%(count)s payout was created.", "%(count)s payouts were created.", len(result.created)) % {
            "count": len(result.created)
        }
        if result.skipped:
            skipped = len(result.skipped)
            sentence += " " + ngettext(
                "%(count)s statement has nothing to pay.", "%(count)s statements have nothing to pay.", skipped
            ) % {"count": skipped}
        return sentence

    return _period_action(request, period, "create", act)


@require_POST
@operator_required
@finance_write_required
def payouts_send_stripe(request: HttpRequest, period: str) -> HttpResponse:
    def act() -> str:
        sent = services.stripe_payouts_to_send(period=period, now=timezone.now(), actor=request.actor)
        return ngettext(
            "%(count)s Stripe transfer is being sent.", "%(count)s Stripe transfers are being sent.", len(sent)
        ) % {"count": len(sent)}

    return _period_action(request, period, "stripe", act)


@require_POST
@operator_required
@finance_write_required
def payout_batch_create(request: HttpRequest, period: str) -> HttpResponse:
    def act() -> str:
        made = services.payout_batch_create(period=period, now=timezone.now(), actor=request.actor)
        if not made.batches:
            sentence = _("No bank payout was waiting for a file.")
        else:
            sentence = " ".join(
                _("Bank file %(number)s: %(count)s payouts, %(total)s %(currency)s.")
                % {
                    "number": batch.number,
                    "count": batch.count,
                    "total": format_money(batch.total, batch.currency),
                    "currency": batch.currency,
                }
                for batch in made.batches
            )
        if made.missing_details:
            sentence += " " + _("Left out, no bank account given: %(centers)s.") % {
                "centers": ", ".join(sorted({p.center.name for p in made.missing_details}))
            }
        return sentence

    return _period_action(request, period, "batch", act)


def _batch_get(actor, batch_id: Any) -> PayoutBatch:
    batch = PayoutBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        raise NotFound(_("No such bank file."))
    return batch


@require_GET
@operator_required
@scoped_object(_batch_get, kwarg="batch_id", to="batch")
def payout_batch_download(request: HttpRequest, batch: PayoutBatch) -> HttpResponse:
    try:
        content = services.payout_batch_content(batch)
    except DomainError as exc:
        return render(request, "billing/payouts/batch_missing.html", {"batch": batch, "detail": exc.detail}, status=409)
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{batch.number}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- the operator: one payout -------------------------------------------------------------------------------------


def _operator_payout(actor, payout_id: Any) -> Payout:
    return payout_get(actor, payout_id)


def _payout_action(request: HttpRequest, payout: Payout, key: str, form, act, done: str) -> HttpResponse:
    period = _label_of(payout)
    submission = Submission(request, f"payout-{key}", payout.pk)
    if not submission.claim():
        return _already_submitted(request, period)
    if form.is_valid():
        try:
            act(form)
        except DomainError as exc:
            submission.release()
            apply_domain_error(form, exc, {"paid_at": "paid_on"})
            if not exc.errors:
                form.add_error(None, exc.detail)
            return _period_page(request, period, bound={(key, payout.pk): form}, status=exc.status_code)
        messages.success(request, done)
        return redirect("billing:payouts_period", period=period)
    submission.release()
    return _period_page(request, period, bound={(key, payout.pk): form}, status=400)


@require_POST
@operator_required
@scoped_object(_operator_payout, kwarg="payout_id", to="payout")
@finance_write_required
def payout_paid(request: HttpRequest, payout: Payout) -> HttpResponse:
    form = ReceivedForm(request.POST, row=payout)
    return _payout_action(
        request,
        payout,
        "paid",
        form,
        lambda f: services.payout_mark_paid(
            payout_id=payout.pk,
            bank_reference=f.cleaned_data["bank_reference"],
            paid_at=f.paid_at(),
            now=timezone.now(),
            actor_label=request.actor.label,
            actor=request.actor,
        ),
        _("The payout to %(center)s is marked paid.") % {"center": payout.center.name},
    )


@require_POST
@operator_required
@scoped_object(_operator_payout, kwarg="payout_id", to="payout")
@finance_write_required
def payout_failed(request: HttpRequest, payout: Payout) -> HttpResponse:
    form = FailedForm(request.POST, row=payout)
    return _payout_action(
        request,
        payout,
        "failed",
        form,
        lambda f: services.payout_mark_failed(
            payout_id=payout.pk,
            message=f.cleaned_data["message"],
            now=timezone.now(),
            actor_label=request.actor.label,
            actor=request.actor,
        ),
        _("The payout to %(center)s is marked failed; it is in the exceptions queue.") % {"center": payout.center.name},
    )


@require_POST
@operator_required
@scoped_object(_operator_payout, kwarg="payout_id", to="payout")
@finance_write_required
def payout_retry(request: HttpRequest, payout: Payout) -> HttpResponse:
    form = RetryForm(request.POST, row=payout)
    return _payout_action(
        request,
        payout,
        "retry",
        form,
        lambda f: services.payout_retry(
            payout_id=payout.pk, now=timezone.now(), actor=request.actor, method=f.cleaned_data["method"] or None
        ),
        _("The payout to %(center)s is pending again.") % {"center": payout.center.name},
    )


@require_POST
@operator_required
@scoped_object(voucher_claim_get, kwarg="claim_id", to="claim")
@finance_write_required
def claim_received(request: HttpRequest, claim: VoucherClaim) -> HttpResponse:
    form = ClaimReceivedForm(request.POST, row=claim)
    period = claim.period.label
    submission = Submission(request, "claim-received", claim.pk)
    if not submission.claim():
        return _already_submitted(request, period)
    if form.is_valid():
        try:
            services.voucher_claim_mark_paid(
                claim_id=claim.pk,
                bank_reference=form.cleaned_data["bank_reference"],
                paid_at=form.paid_at(),
                now=timezone.now(),
                actor_label=request.actor.label,
                actor=request.actor,
            )
        except DomainError as exc:
            submission.release()
            apply_domain_error(form, exc, {"paid_at": "paid_on"})
            if not exc.errors:
                form.add_error(None, exc.detail)
            return _period_page(request, period, bound={("received", claim.pk): form}, status=exc.status_code)
        messages.success(
            request,
            _("The payment of %(sponsor)s's claim for %(period)s is recorded.")
            % {"sponsor": claim.sponsor.name, "period": period},
        )
        return redirect("billing:payouts_period", period=period)
    submission.release()
    return _period_page(request, period, bound={("received", claim.pk): form}, status=400)


# --- a center's payouts -------------------------------------------------------------------------------------------


@require_GET
@center_required
def center_payouts(request: HttpRequest) -> HttpResponse:
    page = Paginator(payout_list(request.actor), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(payout, services.payout_reference(payout)) for payout in page.object_list]
    return render(request, "billing/payouts/center.html", {"page": page, "rows": rows})


urlpatterns = [
    path("billing/payouts/", center_payouts, name="center_payouts"),
    path("billing/finance/payouts/", periods, name="payouts"),
    path("billing/finance/payouts/<str:period>/", period_detail, name="payouts_period"),
    path("billing/finance/payouts/<str:period>/create/", payouts_create, name="payouts_create"),
    path("billing/finance/payouts/<str:period>/stripe/", payouts_send_stripe, name="payouts_send_stripe"),
    path("billing/finance/payouts/<str:period>/bank-file/", payout_batch_create, name="payout_batch_create"),
    path("billing/finance/payout-files/<uuid:batch_id>.csv", payout_batch_download, name="payout_batch_download"),
    path("billing/finance/payout/<uuid:payout_id>/paid/", payout_paid, name="payout_paid"),
    path("billing/finance/payout/<uuid:payout_id>/failed/", payout_failed, name="payout_failed"),
    path("billing/finance/payout/<uuid:payout_id>/retry/", payout_retry, name="payout_retry"),
    path("billing/finance/voucher-claims/<uuid:claim_id>/received/", claim_received, name="claim_received"),
]
