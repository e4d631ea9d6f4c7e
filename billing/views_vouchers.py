"""Vouchers (算力券) in the browser: sponsors' programs, applications, claims and reimbursements; consumers' open
programs, grants, deductions and reimbursement claims.

Access: a sponsor's pages need a sponsor organization and a consumer's pages a consumer one (anything else is a
403). Every role reads; owners, admins and finance staff act (apply, decide, record payments), as the services
require too. Objects named in a URL are loaded for the acting organization before any role check, so another
organization's program, application, claim or reimbursement is a 404 for everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.actor import Actor
from accounts.errors import DomainError
from accounts.forms import apply_domain_error
from accounts.models import OrganizationKind
from accounts.views import actor_required, scoped_object
from billing.forms_vouchers import (
    ApplyForm,
    ApprovalNoteForm,
    ApproveForm,
    PaymentForm,
    ProgramForm,
    ReimbursementForm,
    RejectForm,
)
from billing.models import (
    GrantStatus,
    ReimbursementClaim,
    ReimbursementStatus,
    VoucherClaim,
    VoucherClaimStatus,
    VoucherFlow,
    VoucherGrant,
    VoucherProgram,
)
from billing.selectors import vouchers as selectors
from billing.selectors.payouts import voucher_claims_summary
from billing.services import reimbursements as reimbursement_services
from billing.services import vouchers as voucher_services
from billing.services.payouts import claim_reference
from billing.services.vouchers import MANAGER_ROLES
from marketplace.money import format_money

View = Callable[..., HttpResponse]


# --- who may see and do what -------------------------------------------------------------------------------


def can_manage_programs(actor: Actor | None) -> bool:
    return actor is not None and selectors.is_sponsor(actor) and actor.role in MANAGER_ROLES


def can_apply(actor: Actor | None) -> bool:
    return actor is not None and actor.organization.is_consumer and actor.role in MANAGER_ROLES


def _kind_required(check: Callable[[Actor], bool], refusal: Callable[[], str]) -> Callable[[View], View]:
    def decorator(view: View) -> View:
        @actor_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.actor):
                raise PermissionDenied(refusal())
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


sponsor_required = _kind_required(
    selectors.is_sponsor, lambda: _("These pages belong to sponsors that run voucher programs.")
)
consumer_required = _kind_required(
    lambda actor: actor.organization.is_consumer,
    lambda: _("These pages belong to enterprises, universities and institutes that use vouchers."),
)
sponsor_or_consumer_required = _kind_required(
    lambda actor: selectors.is_sponsor(actor) or actor.organization.is_consumer,
    lambda: _("Reimbursement claims belong to sponsors and the consumers that make them."),
)


def _write_required(check: Callable[[Actor], bool], refusal: Callable[[], str]) -> Callable[[View], View]:
    """Inside a kind check, after the URL's object is loaded: the role may act."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.actor):
                raise PermissionDenied(refusal())
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


sponsor_write_required = _write_required(
    can_manage_programs,
    lambda: _("Only the sponsor's owners, admins and finance staff manage voucher programs and claims."),
)
consumer_write_required = _write_required(
    can_apply, lambda: _("Only your organization's owners, admins and finance staff apply for and claim vouchers.")
)


def _show_error(form: Any, exc: DomainError, field_map: dict[str, str] | None = None) -> None:
    apply_domain_error(form, exc, field_map)
    if exc.errors and exc.code != "invalid":
        # A refusal such as budget_in_use explains itself in a sentence the field error alone would lose.
        form.add_error(None, exc.detail)


# --- sponsors: programs --------------------------------------------------------------------------------------


def _sponsor_context(request: HttpRequest, **context: Any) -> dict[str, Any]:
    actor = request.actor
    return {
        "can_manage": can_manage_programs(actor),
        "applications_waiting": selectors.applications_to_review(actor).count(),
        **context,
    }


@sponsor_required
@require_GET
def programs(request: HttpRequest) -> HttpResponse:
    rows = list(selectors.voucher_programs_for(request.actor, now=timezone.now()))
    waiting: dict[Any, int] = {}
    for grant in selectors.applications_to_review(request.actor):
        waiting[grant.program_id] = waiting.get(grant.program_id, 0) + 1
    for program in rows:
        program.left_to_grant = program.budget - program.granted
        program.waiting = waiting.get(program.pk, 0)
    return render(request, "billing/vouchers/programs.html", _sponsor_context(request, programs=rows))


def _program_form_page(request: HttpRequest, form: ProgramForm, status: int = 200) -> HttpResponse:
    context = _sponsor_context(request, form=form, program=form.program)
    return render(request, "billing/vouchers/program_form.html", context, status=status)


def _program_save(request: HttpRequest, form: ProgramForm) -> HttpResponse:
    program = form.program
    try:
        saved = voucher_services.voucher_program_save(
            actor=request.actor,
            values=form.values,
            now=timezone.now(),
            program_id=program.pk if program is not None else None,
        )
    except DomainError as exc:
        field_map = {"budget_in_use": "budget"}
        if exc.code in field_map and not exc.errors:
            form.add_error(field_map[exc.code], exc.detail)
        else:
            _show_error(form, exc)
        return _program_form_page(request, form, status=exc.status_code)
    if program is None:
        messages.success(request, _("The program “%(name)s” was created.") % {"name": saved.name})
    else:
        messages.success(request, _("The program “%(name)s” was saved.") % {"name": saved.name})
    return redirect("billing:program", program_id=saved.pk)


@require_http_methods(["GET", "POST"])
@sponsor_required
@sponsor_write_required
def program_create(request: HttpRequest) -> HttpResponse:
    form = ProgramForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            return _program_save(request, form)
        return _program_form_page(request, form, status=400)
    return _program_form_page(request, form)


def _sponsor_program(actor: Actor, program_id: Any) -> VoucherProgram:
    # Sponsor pages only: voucher_program_get answers each kind with what it may see.
    return selectors.voucher_program_get(actor, program_id, now=timezone.now())


@require_http_methods(["GET", "POST"])
@sponsor_required
@scoped_object(_sponsor_program, kwarg="program_id", to="program")
@sponsor_write_required
def program_edit(request: HttpRequest, program: VoucherProgram) -> HttpResponse:
    form = ProgramForm(request.POST or None, program=program)
    if request.method == "POST":
        if form.is_valid():
            return _program_save(request, form)
        return _program_form_page(request, form, status=400)
    return _program_form_page(request, form)


@sponsor_required
@scoped_object(_sponsor_program, kwarg="program_id", to="program")
@require_GET
def program_detail(request: HttpRequest, program: VoucherProgram) -> HttpResponse:
    context = _sponsor_context(
        request,
        program=program,
        left_to_grant=program.budget - program.granted,
        eligible_kinds=[OrganizationKind(kind).label for kind in program.eligible_kinds],
        burn=selectors.burn_chart(program),
        grants=list(selectors.program_grants(program)),
        applications=list(selectors.applications_to_review(request.actor, program=program)),
    )
    return render(request, "billing/vouchers/program.html", context)


# --- sponsors: applications ----------------------------------------------------------------------------------


def _applications_page(
    request: HttpRequest, bound: dict[Any, tuple[ApproveForm, RejectForm]] | None = None, status: int = 200
) -> HttpResponse:
    bound = bound or {}
    rows = []
    for grant in selectors.applications_to_review(request.actor):
        approve, reject = bound.get(grant.pk) or (ApproveForm(grant=grant), RejectForm(prefix_for=grant))
        left = grant.program.budget - grant.program.granted
        rows.append({"grant": grant, "approve": approve, "reject": reject, "left": left})
    # A decision on an application that is no longer waiting (decided in another tab) has no form left to show
    # its refusal on: it is shown above the list instead.
    shown = {row["grant"].pk for row in rows}
    stray = [
        error
        for grant_id, forms in bound.items()
        if grant_id not in shown
        for form in forms
        for error in form.non_field_errors()
    ]
    decided = (
        selectors.voucher_grants_for(request.actor)
        .exclude(status=GrantStatus.APPLIED)
        .select_related("program", "consumer")
        .order_by("-decided_at", "pk")[:20]
    )
    context = _sponsor_context(request, rows=rows, decided=list(decided), stray_errors=stray)
    return render(request, "billing/vouchers/applications.html", context, status=status)


@sponsor_required
@require_GET
def applications(request: HttpRequest) -> HttpResponse:
    return _applications_page(request)


@require_POST
@sponsor_required
@scoped_object(selectors.voucher_grant_get, kwarg="grant_id", to="grant")
@sponsor_write_required
def application_approve(request: HttpRequest, grant: VoucherGrant) -> HttpResponse:
    form = ApproveForm(request.POST, grant=grant)
    if form.is_valid():
        try:
            voucher_services.voucher_grant_approve(
                actor=request.actor,
                grant_id=grant.pk,
                amount=form.cleaned_data["amount"],
                expires_at=form.cleaned_data["expires_at"],
                note=form.cleaned_data["note"],
                now=timezone.now(),
            )
        except DomainError as exc:
            _show_error(form, exc)
            return _applications_page(request, {grant.pk: (form, RejectForm(prefix_for=grant))}, exc.status_code)
        messages.success(
            request,
            _("%(consumer)s was granted %(amount)s %(currency)s under “%(program)s”.")
            % {
                "consumer": grant.consumer.name,
                "amount": format_money(form.cleaned_data["amount"], grant.program.currency),
                "currency": grant.program.currency,
                "program": grant.program.name,
            },
        )
        return redirect("billing:applications")
    return _applications_page(request, {grant.pk: (form, RejectForm(prefix_for=grant))}, 400)


@require_POST
@sponsor_required
@scoped_object(selectors.voucher_grant_get, kwarg="grant_id", to="grant")
@sponsor_write_required
def application_reject(request: HttpRequest, grant: VoucherGrant) -> HttpResponse:
    form = RejectForm(request.POST, prefix_for=grant)
    if form.is_valid():
        try:
            voucher_services.voucher_grant_reject(
                actor=request.actor, grant_id=grant.pk, note=form.cleaned_data["note"], now=timezone.now()
            )
        except DomainError as exc:
            _show_error(form, exc)
            return _applications_page(request, {grant.pk: (ApproveForm(grant=grant), form)}, exc.status_code)
        messages.success(
            request, _("The application of %(consumer)s was rejected.") % {"consumer": grant.consumer.name}
        )
        return redirect("billing:applications")
    return _applications_page(request, {grant.pk: (ApproveForm(grant=grant), form)}, 400)


# --- sponsors: claims ----------------------------------------------------------------------------------------


def _claims_page(request: HttpRequest, bound: dict[Any, PaymentForm] | None = None, status: int = 200) -> HttpResponse:
    bound = bound or {}
    rows = []
    for claim in selectors.voucher_claims_with_redemptions(request.actor):
        form = None
        if claim.status == VoucherClaimStatus.OPEN:
            form = bound.get(claim.pk) or PaymentForm(prefix_for=claim)
        rows.append({"claim": claim, "form": form, "reference": claim_reference(claim)})
    context = _sponsor_context(
        request,
        rows=rows,
        summary=voucher_claims_summary(request.actor),
        # Where to send the money: the platform's account, with the claim's reference on the transfer so that
        # finance (or the bank statement import) recognizes it.
        platform_bank={
            "beneficiary": settings.PLATFORM_LEGAL_NAME,
            "bank": settings.PLATFORM_BANK_NAME,
            "account": settings.PLATFORM_BANK_ACCOUNT,
        },
    )
    return render(request, "billing/vouchers/claims.html", context, status=status)


@sponsor_required
@require_GET
def claims(request: HttpRequest) -> HttpResponse:
    return _claims_page(request)


@require_POST
@sponsor_required
@scoped_object(selectors.voucher_claim_get, kwarg="claim_id", to="claim")
@sponsor_write_required
def claim_pay(request: HttpRequest, claim: VoucherClaim) -> HttpResponse:
    form = PaymentForm(request.POST, prefix_for=claim)
    if form.is_valid():
        try:
            voucher_services.voucher_claim_pay(
                actor=request.actor, claim_id=claim.pk, reference=form.cleaned_data["reference"], now=timezone.now()
            )
        except DomainError as exc:
            _show_error(form, exc)
            return _claims_page(request, {claim.pk: form}, exc.status_code)
        messages.success(request, _("The claim for %(period)s was recorded as paid.") % {"period": claim.period.label})
        return redirect("billing:claims")
    return _claims_page(request, {claim.pk: form}, 400)


# --- reimbursements (sponsors review them, consumers make them) ----------------------------------------------


@sponsor_required
@require_GET
def reimbursements(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status") or ""
    if status not in ReimbursementStatus.values:
        status = ""
    context = _sponsor_context(
        request,
        claims=list(selectors.reimbursement_list(request.actor, status=status or None)),
        status=status,
        statuses=ReimbursementStatus.choices,
    )
    return render(request, "billing/vouchers/reimbursements.html", context)


def _reimbursement_page(
    request: HttpRequest, claim: ReimbursementClaim, forms: dict[str, Any] | None = None, status: int = 200
) -> HttpResponse:
    actor = request.actor
    sponsor = selectors.is_sponsor(actor)
    forms = forms or {}
    context: dict[str, Any] = {
        "claim": claim,
        "program": claim.grant.program,
        "invoice": claim.invoice,
        "is_sponsor_view": sponsor,
        "can_manage": can_manage_programs(actor) if sponsor else False,
    }
    if context["can_manage"]:
        if claim.status == ReimbursementStatus.SUBMITTED:
            context["approve_form"] = forms.get("approve") or ApprovalNoteForm(prefix="approve")
            context["reject_form"] = forms.get("reject") or RejectForm(prefix="reject")
        elif claim.status == ReimbursementStatus.APPROVED:
            context["pay_form"] = forms.get("pay") or PaymentForm(prefix="pay")
    # A refused action whose form is no longer offered (the claim moved on meanwhile) shows its refusal on top.
    context["stray_errors"] = [
        error
        for key, form in forms.items()
        if context.get(f"{key}_form") is not form
        for error in form.non_field_errors()
    ]
    if sponsor:
        context["applications_waiting"] = selectors.applications_to_review(actor).count()
    return render(request, "billing/vouchers/reimbursement.html", context, status=status)


@sponsor_or_consumer_required
@scoped_object(selectors.reimbursement_get, kwarg="claim_id", to="claim")
@require_GET
def reimbursement_detail(request: HttpRequest, claim: ReimbursementClaim) -> HttpResponse:
    return _reimbursement_page(request, claim)


@sponsor_or_consumer_required
@scoped_object(selectors.reimbursement_get, kwarg="claim_id", to="claim")
@require_GET
def reimbursement_proof(request: HttpRequest, claim: ReimbursementClaim) -> HttpResponse:
    """The payment proof, to the sponsor and the consumer of the claim only (uploads are never served directly)."""
    extension = claim.payment_proof.name.rsplit(".", 1)[-1].lower()
    response = FileResponse(
        claim.payment_proof.open("rb"),
        as_attachment=True,
        filename=f"payment-proof-{claim.invoice.number}.{extension}",
        content_type=reimbursement_services.proof_content_type(claim),
    )
    response["Cache-Control"] = "private, no-store"
    return response


@sponsor_or_consumer_required
@scoped_object(selectors.reimbursement_get, kwarg="claim_id", to="claim")
@require_GET
def reimbursement_evidence(request: HttpRequest, claim: ReimbursementClaim) -> HttpResponse:
    bundle = reimbursement_services.evidence_bundle(claim=claim, now=timezone.now())
    response = HttpResponse(bundle.content, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{bundle.filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _reimbursement_action(
    request: HttpRequest, claim: ReimbursementClaim, *, key: str, form: Any, act: Callable[[], Any], done: str
) -> HttpResponse:
    if form.is_valid():
        try:
            act()
        except DomainError as exc:
            _show_error(form, exc)
            return _reimbursement_page(request, claim, {key: form}, exc.status_code)
        messages.success(request, done)
        return redirect("billing:reimbursement", claim_id=claim.pk)
    return _reimbursement_page(request, claim, {key: form}, 400)


@require_POST
@sponsor_required
@scoped_object(selectors.reimbursement_get, kwarg="claim_id", to="claim")
@sponsor_write_required
def reimbursement_approve(request: HttpRequest, claim: ReimbursementClaim) -> HttpResponse:
    form = ApprovalNoteForm(request.POST, prefix="approve")
    return _reimbursement_action(
        request,
        claim,
        key="approve",
        form=form,
        act=lambda: reimbursement_services.reimbursement_approve(
            actor=request.actor, claim_id=claim.pk, note=form.cleaned_data["note"], now=timezone.now()
        ),
        done=_("The claim was approved: record the payment once you have paid it."),
    )


@require_POST
@sponsor_required
@scoped_object(selectors.reimbursement_get, kwarg="claim_id", to="claim")
@sponsor_write_required
def reimbursement_reject(request: HttpRequest, claim: ReimbursementClaim) -> HttpResponse:
    form = RejectForm(request.POST, prefix="reject")
    return _reimbursement_action(
        request,
        claim,
        key="reject",
        form=form,
        act=lambda: reimbursement_services.reimbursement_reject(
            actor=request.actor, claim_id=claim.pk, note=form.cleaned_data["note"], now=timezone.now()
        ),
        done=_("The claim was rejected."),
    )


@require_POST
@sponsor_required
@scoped_object(selectors.reimbursement_get, kwarg="claim_id", to="claim")
@sponsor_write_required
def reimbursement_pay(request: HttpRequest, claim: ReimbursementClaim) -> HttpResponse:
    form = PaymentForm(request.POST, prefix="pay")
    return _reimbursement_action(
        request,
        claim,
        key="pay",
        form=form,
        act=lambda: reimbursement_services.reimbursement_pay(
            actor=request.actor, claim_id=claim.pk, reference=form.cleaned_data["reference"], now=timezone.now()
        ),
        done=_("The payment was recorded."),
    )


# --- consumers ---------------------------------------------------------------------------------------------


def _vouchers_page(request: HttpRequest, bound: ApplyForm | None = None, status: int = 200) -> HttpResponse:
    actor = request.actor
    now = timezone.now()
    manage = can_apply(actor)
    offers = []
    for offer in selectors.open_programs(actor, now=now):
        form = None
        if bound is not None and bound.program.pk == offer.program.pk:
            # Shown even when an application now exists, so that its refusal is seen where it was made.
            form = bound
        elif manage and offer.current is None:
            form = ApplyForm(program=offer.program)
        offers.append({"program": offer.program, "current": offer.current, "form": form})
    grants = list(selectors.voucher_grants_for(actor))
    for grant in grants:
        grant.can_claim = manage and grant.status == GrantStatus.ACTIVE and grant.program.flow == VoucherFlow.REIMBURSE
    context = {
        "offers": offers,
        "grants": grants,
        "redemptions": list(selectors.consumer_redemptions(actor)),
        "reimbursements": list(selectors.reimbursement_list(actor)),
        "can_apply": manage,
    }
    return render(request, "billing/vouchers/consumer.html", context, status=status)


@consumer_required
@require_GET
def vouchers(request: HttpRequest) -> HttpResponse:
    return _vouchers_page(request)


def _open_program(actor: Actor, program_id: Any) -> VoucherProgram:
    return selectors.voucher_program_get(actor, program_id, now=timezone.now())


@require_POST
@consumer_required
@scoped_object(_open_program, kwarg="program_id", to="program")
@consumer_write_required
def voucher_apply(request: HttpRequest, program: VoucherProgram) -> HttpResponse:
    form = ApplyForm(request.POST, program=program)
    if form.is_valid():
        try:
            voucher_services.voucher_grant_apply(
                actor=request.actor,
                program_id=program.pk,
                requested_amount=form.cleaned_data["requested_amount"],
                purpose=form.cleaned_data["purpose"],
                now=timezone.now(),
            )
        except DomainError as exc:
            _show_error(form, exc)
            return _vouchers_page(request, form, exc.status_code)
        messages.success(
            request,
            _("Your application to “%(program)s” was sent to %(sponsor)s.")
            % {"program": program.name, "sponsor": program.sponsor.name},
        )
        return redirect("billing:vouchers")
    return _vouchers_page(request, form, 400)


@require_http_methods(["GET", "POST"])
@consumer_required
@scoped_object(selectors.voucher_grant_get, kwarg="grant_id", to="grant")
@consumer_write_required
def reimbursement_create(request: HttpRequest, grant: VoucherGrant) -> HttpResponse:
    choices = selectors.reimbursable_invoices(grant)
    form = ReimbursementForm(request.POST or None, request.FILES or None, choices=choices)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                claim = reimbursement_services.reimbursement_submit(
                    actor=request.actor,
                    grant_id=grant.pk,
                    invoice_id=form.cleaned_data["invoice"],
                    payment_reference=form.cleaned_data["payment_reference"],
                    payment_proof=form.cleaned_data["payment_proof"],
                    now=timezone.now(),
                )
            except DomainError as exc:
                _show_error(form, exc)
                status = exc.status_code
            else:
                messages.success(
                    request,
                    _("Your claim was sent to %(sponsor)s.") % {"sponsor": grant.program.sponsor.name},
                )
                return redirect("billing:reimbursement", claim_id=claim.pk)
    context = {"grant": grant, "program": grant.program, "form": form, "choices": choices}
    return render(request, "billing/vouchers/reimbursement_form.html", context, status=status)


urlpatterns = [
    # consumers
    path("billing/vouchers/", vouchers, name="vouchers"),
    path("billing/vouchers/programs/<uuid:program_id>/apply/", voucher_apply, name="voucher_apply"),
    path("billing/vouchers/<uuid:grant_id>/reimburse/", reimbursement_create, name="reimbursement_create"),
    # sponsors
    path("billing/programs/", programs, name="programs"),
    path("billing/programs/new/", program_create, name="program_create"),
    path("billing/programs/<uuid:program_id>/", program_detail, name="program"),
    path("billing/programs/<uuid:program_id>/edit/", program_edit, name="program_edit"),
    path("billing/applications/", applications, name="applications"),
    path("billing/applications/<uuid:grant_id>/approve/", application_approve, name="application_approve"),
    path("billing/applications/<uuid:grant_id>/reject/", application_reject, name="application_reject"),
    path("billing/claims/", claims, name="claims"),
    path("billing/claims/<uuid:claim_id>/pay/", claim_pay, name="claim_pay"),
    path("billing/reimbursements/", reimbursements, name="reimbursements"),
    # both sides of a reimbursement claim
    path("billing/reimbursements/<uuid:claim_id>/", reimbursement_detail, name="reimbursement"),
    path("billing/reimbursements/<uuid:claim_id>/proof/", reimbursement_proof, name="reimbursement_proof"),
    path("billing/reimbursements/<uuid:claim_id>/evidence/", reimbursement_evidence, name="reimbursement_evidence"),
    path("billing/reimbursements/<uuid:claim_id>/approve/", reimbursement_approve, name="reimbursement_approve"),
    path("billing/reimbursements/<uuid:claim_id>/reject/", reimbursement_reject, name="reimbursement_reject"),
    path("billing/reimbursements/<uuid:claim_id>/pay/", reimbursement_pay, name="reimbursement_pay"),
]
