"""The reconciliation workbench (operator finance): per month, the bank statements imported, what auto-match did,
the proposed matches and open exceptions, and the month's lock; the upload with its column-mapping step; a
statement's lines; the exceptions queue and the actions on an exception.

Same house rules as the finance workbench (billing/views_finance.py): any operator member reads, its owners,
admins and finance staff act, anyone else gets a 403; each action is one POST calling one service, carrying a
one-time submission token so a double click does nothing twice; a refusal is shown on the page, saying why.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.errors import DomainError, NotFound
from accounts.forms import apply_domain_error
from accounts.views import scoped_object
from billing.bank_import import BankFileError, bank_file_header, bank_file_read, is_standard
from billing.forms_reconcile import (
    ActionForm,
    ExceptionFilterForm,
    KeepCreditForm,
    MappingForm,
    MatchForm,
    RefundForm,
    SplitForm,
    UploadForm,
)
from billing.models import BankStatement, ExceptionStatus, ReconciliationException
from billing.selectors.reconcile import (
    consumer_choices,
    default_period,
    exception_candidates,
    exception_get,
    exception_list,
    exception_proposals,
    period_by_label,
    period_reconciliation,
    proposed_matches,
    reconcile_periods,
    small_remainders,
    statement_get,
    statement_lines,
    statement_list,
)
from billing.selectors.settlement import invoice_get
from billing.services.bank_statements import problems_error, statement_upload
from billing.services.payments import invoice_outstanding, payment_unapplied, period_lock, write_off_create
from billing.services.reconcile import (
    auto_match_run,
    exception_credit_note,
    exception_dismiss,
    exception_keep_credit,
    exception_match,
    exception_refund,
    exception_split,
    exception_write_off,
    match_confirm,
    match_reject,
)
from billing.views_finance import Submission, can_act, finance_write_required, operator_required
from marketplace.money import format_money
from marketplace.views_support import vary_on_htmx, wants_partial

EXCEPTIONS_PAGE_SIZE = 50
# A file waiting for its column mapping is kept this long in the cache (the upload's bytes, never on disk).
MAPPING_TTL_SECONDS = 3600
SAMPLE_NAME = "sample-bank-statement.csv"


def sample_statement_path() -> Path:
    """Where `seed_demo` writes the demo's sample statement, rendered with the demo's invoice numbers."""
    return Path(settings.MEDIA_ROOT) / "demo" / SAMPLE_NAME


def sample_available() -> bool:
    return not settings.PRODUCTION and sample_statement_path().is_file()


def _already_submitted(request: HttpRequest, to: str) -> HttpResponse:
    messages.info(request, _("This form was already submitted: nothing was done a second time."))
    return redirect(to)


# --- the workbench --------------------------------------------------------------------------------------------------


def _workbench_context(request: HttpRequest, period_label: str | None) -> dict[str, Any]:
    actor, now = request.actor, timezone.now()
    try:
        period = period_by_label(actor, period_label) if period_label else default_period(actor, now=now)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    return {
        "row": period_reconciliation(actor, period),
        "periods": reconcile_periods(actor, now=now),
        "statements": statement_list(actor),
        "proposals": proposed_matches(actor),
        "remainders": small_remainders(actor),
        "open_exceptions": exception_list(actor).count(),
        "can_act": can_act(actor),
        "sample": sample_available(),
        "submission": secrets.token_urlsafe(24),
    }


@require_GET
@operator_required
def workbench(request: HttpRequest) -> HttpResponse:
    context = _workbench_context(request, request.GET.get("period") or None)
    template = (
        "billing/reconcile/_workbench_body.html" if wants_partial(request) else "billing/reconcile/workbench.html"
    )
    return vary_on_htmx(render(request, template, context))


@require_POST
@operator_required
@finance_write_required
def run_auto_match(request: HttpRequest) -> HttpResponse:
    submission = Submission(request, "auto-match", "all")
    if not submission.claim():
        return _already_submitted(request, reverse("billing:reconcile"))
    summary = auto_match_run(actor=request.actor, now=timezone.now())
    messages.success(
        request,
        _("Auto-match ran: %(matched)s matched, %(proposed)s proposed, %(unmatched)s still unmatched.")
        % summary.as_dict(),
    )
    return redirect("billing:reconcile")


@require_POST
@operator_required
@finance_write_required
def lock(request: HttpRequest, period: str) -> HttpResponse:
    submission = Submission(request, "lock", period)
    target = f"{reverse('billing:reconcile')}?period={period}"
    if not submission.claim():
        return _already_submitted(request, target)
    try:
        locked = period_lock(actor=request.actor, period_label=period, now=timezone.now())
    except DomainError as exc:
        submission.release()
        context = _workbench_context(request, period)
        context["notice"] = ("danger", exc.detail)
        return render(request, "billing/reconcile/workbench.html", context, status=exc.status_code)
    messages.success(
        request,
        _("%(period)s is locked: its books no longer change; later corrections go into the open month.")
        % {"period": locked.label},
    )
    return redirect(target)


@require_POST
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
@finance_write_required
def remainder_write_off(request: HttpRequest, invoice) -> HttpResponse:
    """Write off what an invoice still owes when it is within the tolerance (a payer's bank charges)."""
    submission = Submission(request, "remainder", invoice.pk)
    if not submission.claim():
        return _already_submitted(request, reverse("billing:reconcile"))
    try:
        write_off = write_off_create(
            actor=request.actor,
            amount=invoice_outstanding(invoice),
            reason=request.POST.get("reason", "")[:500],
            now=timezone.now(),
            invoice=invoice,
        )
    except DomainError as exc:
        submission.release()
        messages.error(request, exc.detail)
        return redirect("billing:reconcile")
    messages.success(
        request,
        _("%(amount)s %(currency)s of invoice %(number)s written off: it is paid.")
        % {
            "amount": format_money(write_off.amount, write_off.currency),
            "currency": write_off.currency,
            "number": invoice.number,
        },
    )
    return redirect("billing:reconcile")


# --- upload and mapping ---------------------------------------------------------------------------------------------


def _imported(request: HttpRequest, upload) -> HttpResponse:
    statement = upload.statement
    if upload.queued:
        messages.info(
            request,
            _("%(filename)s: %(count)s lines are being imported; this page follows the progress.")
            % {"filename": statement.filename, "count": statement.line_count},
        )
    else:
        messages.success(
            request,
            _(
                "%(filename)s: %(count)s lines imported — %(matched)s matched, %(proposed)s proposed, "
                "%(unmatched)s unmatched."
            )
            % {"filename": statement.filename, "count": statement.line_count, **upload.summary.as_dict()},
        )
    return redirect("billing:reconcile_statement", statement_id=statement.pk)


def _upload_page(request: HttpRequest, form: UploadForm, *, status: int = 200, problems=None) -> HttpResponse:
    context = {"form": form, "problems": problems, "submission": secrets.token_urlsafe(24)}
    return render(request, "billing/reconcile/upload.html", context, status=status)


def _refused_upload(request: HttpRequest, form, exc: DomainError, template: str, **context: Any) -> HttpResponse:
    """A refused file: the sentence on top, and each malformed line by its number."""
    form.add_error(None, exc.detail)
    problems = (exc.errors or {}).get("file", [])
    context.update({"form": form, "problems": problems, "submission": secrets.token_urlsafe(24)})
    return render(request, template, context, status=exc.status_code)


@require_http_methods(["GET", "POST"])
@operator_required
@finance_write_required
def upload(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _upload_page(request, UploadForm())
    form = UploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _upload_page(request, form, status=400)
    submission = Submission(request, "upload", "statement")
    if not submission.claim():
        return _already_submitted(request, reverse("billing:reconcile"))
    uploaded = form.cleaned_data["file"]
    try:
        content = bank_file_read(uploaded)
        header, delimiter = bank_file_header(content)
    except BankFileError as error:
        submission.release()
        return _refused_upload(request, form, problems_error(error), "billing/reconcile/upload.html")
    if not is_standard(header):
        # Another bank's export: keep the bytes for the mapping step (an hour), and ask which column is which.
        token = secrets.token_urlsafe(24)
        cache.set(
            f"bank-upload:{request.user.pk}:{token}",
            {"content": content, "filename": uploaded.name, "account": form.cleaned_data["account"]},
            timeout=MAPPING_TTL_SECONDS,
        )
        mapping_form = MappingForm(
            initial={"token": token, "delimiter": delimiter, "date_format": "%Y-%m-%d", "sign": "signed"},
            header=header,
        )
        return _mapping_page(request, mapping_form, header, uploaded.name)
    try:
        result = statement_upload(
            actor=request.actor,
            filename=uploaded.name,
            content=content,
            now=timezone.now(),
            account=form.cleaned_data["account"],
        )
    except DomainError as exc:
        submission.release()
        return _refused_upload(request, form, exc, "billing/reconcile/upload.html")
    return _imported(request, result)


def _mapping_page(
    request: HttpRequest, form: MappingForm, header: list[str], filename: str, *, status: int = 200, problems=None
) -> HttpResponse:
    context = {
        "form": form,
        "header": header,
        "filename": filename,
        "problems": problems,
        "submission": secrets.token_urlsafe(24),
    }
    return render(request, "billing/reconcile/mapping.html", context, status=status)


@require_POST
@operator_required
@finance_write_required
def upload_mapping(request: HttpRequest) -> HttpResponse:
    token = request.POST.get("token", "")[:64]
    key = f"bank-upload:{request.user.pk}:{token}"
    held = cache.get(key) if token else None
    if held is None:
        messages.error(request, _("The uploaded file is no longer held (after an hour): upload it again."))
        return redirect("billing:reconcile_upload")
    header, _delimiter = bank_file_header(held["content"], request.POST.get("delimiter") or None)
    form = MappingForm(request.POST, header=header)
    if not form.is_valid():
        return _mapping_page(request, form, header, held["filename"], status=400)
    mapping = form.mapping()
    wrong = mapping.problems(header)
    if wrong:
        for problem in wrong:
            form.add_error(None, problem)
        return _mapping_page(request, form, header, held["filename"], status=400)
    submission = Submission(request, "mapping", token)
    if not submission.claim():
        return _already_submitted(request, reverse("billing:reconcile"))
    try:
        result = statement_upload(
            actor=request.actor,
            filename=held["filename"],
            content=held["content"],
            mapping=mapping,
            now=timezone.now(),
            account=held["account"],
        )
    except DomainError as exc:
        submission.release()
        form.add_error(None, exc.detail)
        problems = (exc.errors or {}).get("file", [])
        return _mapping_page(request, form, header, held["filename"], status=exc.status_code, problems=problems)
    cache.delete(key)
    return _imported(request, result)


@require_POST
@operator_required
@finance_write_required
def import_sample(request: HttpRequest) -> HttpResponse:
    """The demo's "Import the sample statement": the very upload path, with the file `seed_demo` rendered."""
    if not sample_available():
        raise Http404(_("No sample statement in this deployment."))
    submission = Submission(request, "sample", "statement")
    if not submission.claim():
        return _already_submitted(request, reverse("billing:reconcile"))
    try:
        result = statement_upload(
            actor=request.actor, filename=SAMPLE_NAME, content=sample_statement_path().read_bytes(), now=timezone.now()
        )
    except DomainError as exc:
        submission.release()
        messages.error(request, exc.detail)
        return redirect("billing:reconcile")
    return _imported(request, result)


# --- a statement's lines --------------------------------------------------------------------------------------------


@require_GET
@operator_required
@scoped_object(statement_get, kwarg="statement_id", to="statement")
def statement_detail(request: HttpRequest, statement: BankStatement) -> HttpResponse:
    context = {"statement": statement, "lines": statement_lines(request.actor, statement)}
    template = (
        "billing/reconcile/_statement_body.html" if wants_partial(request) else "billing/reconcile/statement.html"
    )
    return vary_on_htmx(render(request, template, context))


# --- the exceptions queue -------------------------------------------------------------------------------------------


@require_GET
@operator_required
def exceptions(request: HttpRequest) -> HttpResponse:
    actor = request.actor
    periods = [period.label for period in reconcile_periods(actor, now=timezone.now(), count=24)]
    data = request.GET if request.GET else {"status": ExceptionStatus.OPEN}
    form = ExceptionFilterForm(data, periods=periods)
    page, status = None, 200
    if form.is_valid():
        period = None
        if form.cleaned_data["period"]:
            period = period_by_label(actor, form.cleaned_data["period"])
        found = exception_list(actor, status=form.cleaned_data["status"], kind=form.cleaned_data["kind"], period=period)
        page = Paginator(found, EXCEPTIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    else:
        status = 400
    template = "billing/reconcile/_exceptions.html" if wants_partial(request) else "billing/reconcile/exceptions.html"
    return vary_on_htmx(render(request, template, {"form": form, "page": page}, status=status))


def _exception_page(
    request: HttpRequest,
    exception: ReconciliationException,
    *,
    status: int = 200,
    notice: tuple[str, str] | None = None,
    **forms: Any,
) -> HttpResponse:
    actor = request.actor
    consumers = consumer_choices(actor)
    amount = exception.amount
    context = {
        "exception": exception,
        "line": exception.bank_line,
        "proposals": exception_proposals(actor, exception),
        "candidates": exception_candidates(actor, exception) if exception.status == ExceptionStatus.OPEN else [],
        "can_act": can_act(actor) and exception.status == ExceptionStatus.OPEN,
        "takes_invoice": exception.kind not in ("payout_failed", "payment_failed")
        and (exception.payment_id is not None or (exception.bank_line is not None and exception.bank_line.amount > 0)),
        "unknown_payer": exception.payment_id is None
        and exception.bank_line is not None
        and exception.bank_line.amount > 0,
        "amount": amount,
        "notice": notice,
        "match_form": forms.get("match_form") or MatchForm(prefix="match"),
        "split_form": forms.get("split_form") or SplitForm(prefix="split"),
        "write_off_form": forms.get("write_off_form") or ActionForm(prefix="write_off"),
        "credit_note_form": forms.get("credit_note_form") or ActionForm(prefix="credit_note"),
        "keep_form": forms.get("keep_form") or KeepCreditForm(prefix="keep", consumers=consumers),
        "dismiss_form": forms.get("dismiss_form") or ActionForm(prefix="dismiss"),
        "refund_form": forms.get("refund_form") or RefundForm(prefix="refund"),
        "refundable": exception.payment is not None and payment_unapplied(exception.payment) > 0,
        "reject_form": forms.get("reject_form") or ActionForm(prefix="reject"),
        "submission": secrets.token_urlsafe(24),
    }
    return render(request, "billing/reconcile/exception.html", context, status=status)


@require_GET
@operator_required
@scoped_object(exception_get, kwarg="exception_id", to="exception")
def exception_detail(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    return _exception_page(request, exception)


def _act(
    request: HttpRequest,
    exception: ReconciliationException,
    *,
    action: str,
    form,
    form_name: str,
    run,
    success: str,
) -> HttpResponse:
    """Validate the action's form, claim its one-time token, run the service; a refusal goes back on the form (field
    errors) or on top of the page (a sentence), and gives the token back for a corrected retry."""
    submission = Submission(request, action, exception.pk)
    if not submission.claim():
        return _already_submitted(request, reverse("billing:reconcile_exception", args=[exception.pk]))
    if not form.is_valid():
        submission.release()
        return _exception_page(request, exception, status=400, **{form_name: form})
    try:
        run(form.cleaned_data)
    except DomainError as exc:
        submission.release()
        apply_domain_error(form, exc, {"parts": "__all__", "invoice": "invoice", "consumer": "consumer"})
        return _exception_page(
            request, exception, status=exc.status_code, notice=("danger", exc.detail), **{form_name: form}
        )
    messages.success(request, success)
    return redirect("billing:reconcile_exception", exception_id=exception.pk)


def _post_action(view):
    """The decorators every action on an exception shares: a POST, by operator finance, on an exception it sees."""
    scoped = scoped_object(exception_get, kwarg="exception_id", to="exception")
    return require_POST(operator_required(scoped(finance_write_required(view))))


@_post_action
def exception_match_view(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    form = MatchForm(request.POST, prefix="match")
    return _act(
        request,
        exception,
        action="match",
        form=form,
        form_name="match_form",
        run=lambda data: exception_match(
            actor=request.actor,
            exception_id=exception.pk,
            invoice_number=data["invoice"],
            reason=data["reason"],
            now=timezone.now(),
        ),
        success=_("Matched to invoice %(number)s: the exception is resolved.")
        % {"number": request.POST.get("match-invoice", "").strip().upper()},
    )


@_post_action
def exception_split_view(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    form = SplitForm(request.POST, prefix="split")
    return _act(
        request,
        exception,
        action="split",
        form=form,
        form_name="split_form",
        run=lambda data: exception_split(
            actor=request.actor,
            exception_id=exception.pk,
            parts=data["parts"],
            reason=data["reason"],
            now=timezone.now(),
        ),
        success=_("Split across the invoices: the exception is resolved."),
    )


@_post_action
def exception_write_off_view(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    form = ActionForm(request.POST, prefix="write_off")
    return _act(
        request,
        exception,
        action="write_off",
        form=form,
        form_name="write_off_form",
        run=lambda data: exception_write_off(
            actor=request.actor, exception_id=exception.pk, reason=data["reason"], now=timezone.now()
        ),
        success=_("The difference is written off: the exception is resolved."),
    )


@_post_action
def exception_credit_note_view(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    form = ActionForm(request.POST, prefix="credit_note")
    return _act(
        request,
        exception,
        action="credit_note",
        form=form,
        form_name="credit_note_form",
        run=lambda data: exception_credit_note(
            actor=request.actor, exception_id=exception.pk, reason=data["reason"], now=timezone.now()
        ),
        success=_("Resolved by the credit note."),
    )


@_post_action
def exception_keep_view(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    form = KeepCreditForm(request.POST, prefix="keep", consumers=consumer_choices(request.actor))
    return _act(
        request,
        exception,
        action="keep",
        form=form,
        form_name="keep_form",
        run=lambda data: exception_keep_credit(
            actor=request.actor,
            exception_id=exception.pk,
            reason=data["reason"],
            consumer_id=data.get("consumer") or None,
            now=timezone.now(),
        ),
        success=_("Kept as the consumer's credit (applied to its open invoices): the exception is resolved."),
    )


@_post_action
def exception_refund_view(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    form = RefundForm(request.POST, prefix="refund")
    return _act(
        request,
        exception,
        action="refund",
        form=form,
        form_name="refund_form",
        run=lambda data: exception_refund(
            actor=request.actor,
            exception_id=exception.pk,
            reason=data["reason"],
            reference=data.get("reference") or "",
            now=timezone.now(),
        ),
        success=_("Refunded to the payer: the exception is resolved."),
    )


@_post_action
def exception_dismiss_view(request: HttpRequest, exception: ReconciliationException) -> HttpResponse:
    form = ActionForm(request.POST, prefix="dismiss")
    return _act(
        request,
        exception,
        action="dismiss",
        form=form,
        form_name="dismiss_form",
        run=lambda data: exception_dismiss(
            actor=request.actor, exception_id=exception.pk, reason=data["reason"], now=timezone.now()
        ),
        success=_("Dismissed: the exception is resolved."),
    )


# --- proposed matches -----------------------------------------------------------------------------------------------


def _back(request: HttpRequest) -> str:
    """Back where the decision was taken (the workbench or an exception), never off the site."""
    target = request.POST.get("next", "")
    return target if target.startswith("/billing/finance/reconciliation/") else reverse("billing:reconcile")


@require_POST
@operator_required
@finance_write_required
def match_confirm_view(request: HttpRequest, match_id: int) -> HttpResponse:
    submission = Submission(request, "confirm", match_id)
    if not submission.claim():
        return _already_submitted(request, _back(request))
    try:
        match = match_confirm(
            actor=request.actor, match_id=match_id, reason=request.POST.get("reason", "")[:500], now=timezone.now()
        )
    except DomainError as exc:
        submission.release()
        if isinstance(exc, NotFound):
            raise Http404(exc.detail) from exc
        messages.error(request, exc.detail)
        return redirect(_back(request))
    what = match.invoice.number if match.invoice_id else match.stripe_payout_id
    messages.success(request, _("Match to %(what)s confirmed.") % {"what": what})
    return redirect(_back(request))


@require_POST
@operator_required
@finance_write_required
def match_reject_view(request: HttpRequest, match_id: int) -> HttpResponse:
    submission = Submission(request, "reject", match_id)
    if not submission.claim():
        return _already_submitted(request, _back(request))
    try:
        match_reject(
            actor=request.actor, match_id=match_id, reason=request.POST.get("reject-reason", ""), now=timezone.now()
        )
    except DomainError as exc:
        submission.release()
        if isinstance(exc, NotFound):
            raise Http404(exc.detail) from exc
        messages.error(request, exc.detail if not exc.errors else _("Say why the match is rejected."))
        return redirect(_back(request))
    messages.success(request, _("The proposed match is rejected."))
    return redirect(_back(request))


urlpatterns = [
    path("billing/finance/reconciliation/", workbench, name="reconcile"),
    path("billing/finance/reconciliation/run/", run_auto_match, name="reconcile_run"),
    path("billing/finance/reconciliation/lock/<str:period>/", lock, name="reconcile_lock"),
    path(
        "billing/finance/reconciliation/remainders/<str:invoice_id>/write-off/",
        remainder_write_off,
        name="reconcile_remainder_write_off",
    ),
    path("billing/finance/reconciliation/upload/", upload, name="reconcile_upload"),
    path("billing/finance/reconciliation/upload/mapping/", upload_mapping, name="reconcile_upload_mapping"),
    path("billing/finance/reconciliation/sample/", import_sample, name="reconcile_sample"),
    path("billing/finance/reconciliation/statements/<str:statement_id>/", statement_detail, name="reconcile_statement"),
    path("billing/finance/reconciliation/exceptions/", exceptions, name="reconcile_exceptions"),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/",
        exception_detail,
        name="reconcile_exception",
    ),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/match/",
        exception_match_view,
        name="reconcile_exception_match",
    ),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/split/",
        exception_split_view,
        name="reconcile_exception_split",
    ),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/write-off/",
        exception_write_off_view,
        name="reconcile_exception_write_off",
    ),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/credit-note/",
        exception_credit_note_view,
        name="reconcile_exception_credit_note",
    ),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/keep-credit/",
        exception_keep_view,
        name="reconcile_exception_keep",
    ),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/dismiss/",
        exception_dismiss_view,
        name="reconcile_exception_dismiss",
    ),
    path(
        "billing/finance/reconciliation/exceptions/<str:exception_id>/refund/",
        exception_refund_view,
        name="reconcile_exception_refund",
    ),
    path(
        "billing/finance/reconciliation/matches/<int:match_id>/confirm/", match_confirm_view, name="reconcile_confirm"
    ),
    path("billing/finance/reconciliation/matches/<int:match_id>/reject/", match_reject_view, name="reconcile_reject"),
]
