"""The platform operator's finance workbench: billing periods and their close, the invoice review (finalize, hold,
credit, void), and the ledger (trial balance, balances per organization, the journal).

Every page belongs to the operator organization: any of its members reads, and its owners, admins and finance
staff act (`require_platform_finance`, the services' own check); anyone else gets a 403. Each action is a POST to
a view that calls one service. Forms that move money carry a one-time submission token, as the market's Book
button does: a double click, a reload or the back button resubmitting the same form does nothing twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.actor import Actor
from accounts.errors import DomainError, Forbidden, NotFound
from accounts.forms import apply_domain_error
from accounts.models import OrganizationKind
from accounts.views import actor_required, scoped_object
from billing.csv_export import Cell, Money, csv_response
from billing.forms_finance import BankTransferForm, CreditNoteForm, InvoiceFilterForm, ReasonForm, TrialBalanceForm
from billing.models import Invoice, InvoiceStatus
from billing.selectors.finance import (
    PeriodRow,
    finance_balances,
    finance_invoice_list,
    finance_journal,
    finance_period,
    finance_periods,
    invoice_consumers,
    invoice_entries,
    invoice_line_credits,
    invoice_periods,
    period_claims,
    period_credit_notes,
    period_invoices,
    period_statements,
)
from billing.selectors.settlement import credit_notes_of, credited_total, invoice_get, trial_balance
from billing.services.finance import period_close_request
from billing.services.invoices import (
    FINANCE_ROLES,
    credit_note_issue,
    invoice_finalize,
    invoice_hold,
    invoice_release,
    invoice_void,
    require_platform_finance,
)
from billing.services.payments import bank_transfer_record, invoices_outstanding
from marketplace.money import format_money
from marketplace.views_support import is_htmx, vary_on_htmx, wants_partial

View = Callable[..., HttpResponse]

INVOICES_PAGE_SIZE = 50
JOURNAL_PAGE_SIZE = 25
# A rendered action form can be sent once within this time; later, a resent form is treated as new (and the
# services refuse or ignore what was already done).
SUBMISSION_TTL_SECONDS = 24 * 3600


# --- who may see and act ----------------------------------------------------------------------------------------


def operator_required(view: View) -> View:
    """Signed in and acting as the platform operator, in any role (else 403: these pages show everyone's money)."""

    @actor_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.actor.organization.kind != OrganizationKind.OPERATOR:
            raise PermissionDenied(_("These pages belong to the platform operator's finance staff."))
        return view(request, *args, **kwargs)

    return wrapper


def finance_write_required(view: View) -> View:
    """Inside `operator_required` (and after the URL's object is loaded): the role may act on the books."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            require_platform_finance(request.actor)
        except Forbidden as exc:
            raise PermissionDenied(exc.detail) from exc
        return view(request, *args, **kwargs)

    return wrapper


def can_act(actor: Actor) -> bool:
    return actor.organization.kind == OrganizationKind.OPERATOR and actor.role in FINANCE_ROLES


class Submission:
    """The one-time token of a rendered action form. The first POST carrying it claims it (atomically, in the
    cache); a second one finds it claimed and does nothing. A refused action gives it back, so a corrected retry
    of the same form goes through."""

    def __init__(self, request: HttpRequest, action: str, target: Any) -> None:
        token = request.POST.get("submission", "")[:64]
        self.key = f"finance-form:{request.user.pk}:{action}:{target}:{token}" if token else None

    def claim(self) -> bool:
        return self.key is None or cache.add(self.key, "", timeout=SUBMISSION_TTL_SECONDS)

    def release(self) -> None:
        if self.key is not None:
            cache.delete(self.key)


def _already_submitted(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    messages.info(request, _("This form was already submitted: nothing was done a second time."))
    return redirect("billing:finance_invoice", invoice_id=invoice.pk)


# --- billing periods --------------------------------------------------------------------------------------------


def _period_row(actor: Actor, period: str) -> PeriodRow:
    try:
        return finance_period(actor, period, now=timezone.now())
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _periods_context(request: HttpRequest, notice: tuple[str, str] | None = None) -> dict[str, Any]:
    return {
        "rows": finance_periods(request.actor, now=timezone.now()),
        "can_act": can_act(request.actor),
        "notice": notice,
    }


def _period_context(request: HttpRequest, row: PeriodRow, notice: tuple[str, str] | None = None) -> dict[str, Any]:
    return {
        "row": row,
        "can_act": can_act(request.actor),
        "notice": notice,
        "invoices": period_invoices(request.actor, row.period),
        "statements": period_statements(request.actor, row.period),
        "claims": period_claims(request.actor, row.period),
        "credit_notes": period_credit_notes(request.actor, row.period),
    }


@require_GET
@operator_required
def periods(request: HttpRequest) -> HttpResponse:
    template = "billing/finance/_periods.html" if wants_partial(request) else "billing/finance/periods.html"
    return vary_on_htmx(render(request, template, _periods_context(request)))


@require_GET
@operator_required
def period_detail(request: HttpRequest, period: str) -> HttpResponse:
    row = _period_row(request.actor, period)
    template = "billing/finance/_period_body.html" if wants_partial(request) else "billing/finance/period.html"
    return vary_on_htmx(render(request, template, _period_context(request, row)))


CLOSE_OUTCOMES = {
    "queued": (
        "success",
        lambda name: (
            _("Closing %(period)s: its invoices, statements and voucher claims are being issued.") % {"period": name}
        ),
    ),
    "pending": ("info", lambda name: _("%(period)s is already being closed.") % {"period": name}),
    "closed": ("info", lambda name: _("%(period)s is already closed.") % {"period": name}),
}


@require_POST
@operator_required
@finance_write_required
def period_close(request: HttpRequest, period: str) -> HttpResponse:
    """Queue the month's close. From the periods page or a period's page (`region`), by htmx or a plain POST."""
    row = _period_row(request.actor, period)
    on_period_page = request.POST.get("region") == "period"
    status = 200
    try:
        result = period_close_request(actor=request.actor, start=row.start, now=timezone.now())
    except DomainError as exc:
        notice = ("danger", exc.detail)
        status = exc.status_code
    else:
        level, sentence = CLOSE_OUTCOMES[result.outcome]
        notice = (level, sentence(result.period))
    if is_htmx(request):
        # The region is answered with 200 even for a refusal: htmx swaps only successful responses, and the
        # refusal must replace the button that led to it. The region is read again: it shows "closing…" now.
        if on_period_page:
            context = _period_context(request, _period_row(request.actor, period), notice)
            return render(request, "billing/finance/_period_body.html", context)
        return render(request, "billing/finance/_periods.html", _periods_context(request, notice))
    if status >= 400:
        if on_period_page:
            context = _period_context(request, _period_row(request.actor, period), notice)
            return render(request, "billing/finance/period.html", context, status=status)
        return render(request, "billing/finance/periods.html", _periods_context(request, notice), status=status)
    messages.add_message(request, messages.SUCCESS if notice[0] == "success" else messages.INFO, notice[1])
    if on_period_page:
        return redirect("billing:finance_period", period=row.label)
    return redirect("billing:finance")


# --- invoice review ---------------------------------------------------------------------------------------------


@require_GET
@operator_required
def invoices(request: HttpRequest) -> HttpResponse:
    actor = request.actor
    form = InvoiceFilterForm(request.GET, periods=invoice_periods(actor), consumers=invoice_consumers(actor))
    page, status = None, 200
    if form.is_valid():
        found = finance_invoice_list(actor, **form.selector_filters())
        page = Paginator(found, INVOICES_PAGE_SIZE).get_page(request.GET.get("page"))
    else:
        status = 400
    return render(request, "billing/finance/invoices.html", {"form": form, "page": page}, status=status)


def _invoice_page(
    request: HttpRequest,
    invoice: Invoice,
    *,
    credit_form: CreditNoteForm | None = None,
    hold_form: ReasonForm | None = None,
    void_form: ReasonForm | None = None,
    transfer_form: BankTransferForm | None = None,
    notice: tuple[str, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    lines = invoice_line_credits(invoice)
    credited = credited_total(invoice)
    creditable = invoice.total - credited
    if credit_form is None:
        credit_form = CreditNoteForm(invoice=invoice, lines=lines, creditable=creditable)
    balance = invoices_outstanding([invoice])[invoice.pk]
    context = {
        "invoice": invoice,
        "paid": balance.paid,
        "outstanding": balance.due,
        "allocations": invoice.allocations.select_related("payment").order_by("id"),
        "transfer_form": transfer_form or BankTransferForm(invoice=invoice),
        "can_record": invoice.status in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID),
        "lines": [(credit, credit_form.line_field(credit.line.pk)) for credit in lines],
        # A missing one-to-one raises a subclass of AttributeError, which getattr's default covers.
        "redemption": getattr(invoice, "redemption", None),
        "credit_notes": credit_notes_of(invoice),
        "entries": invoice_entries(invoice),
        "credited": credited,
        "creditable": max(creditable, Decimal(0)),
        "can_act": can_act(request.actor),
        "credit_form": credit_form,
        "hold_form": hold_form or ReasonForm(prefix="hold"),
        "void_form": void_form or ReasonForm(prefix="void"),
        "can_credit": invoice.status in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID) and creditable > 0,
        "can_void": invoice.status == InvoiceStatus.FINALIZED and not invoice.voucher_amount,
        "notice": notice,
        # One value per rendered page: each of its forms can be sent once (the action is part of the key).
        "submission": secrets.token_urlsafe(24),
    }
    return render(request, "billing/finance/invoice.html", context, status=status)


def _refused(request: HttpRequest, invoice: Invoice, exc: DomainError, **forms: ReasonForm) -> HttpResponse:
    """A service's refusal of a reason form's action: its field errors on the form, otherwise its sentence on top
    of the page (the form itself may no longer be shown, e.g. a void refused because a voucher paid part)."""
    if exc.errors:
        for form in forms.values():
            apply_domain_error(form, exc)
        return _invoice_page(request, invoice, status=exc.status_code, **forms)
    return _invoice_page(request, invoice, notice=("danger", exc.detail), status=exc.status_code, **forms)


@require_GET
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
def invoice_detail(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    return _invoice_page(request, invoice)


@require_POST
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
@finance_write_required
def invoice_finalize_view(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    submission = Submission(request, "finalize", invoice.pk)
    if not submission.claim():
        return _already_submitted(request, invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        submission.release()
        notice = (
            "danger",
            _("Only a draft invoice can be finalized; this one is %(status)s.")
            % {"status": invoice.get_status_display()},
        )
        return _invoice_page(request, invoice, notice=notice, status=409)
    try:
        finalized = invoice_finalize(invoice_id=invoice.pk, now=timezone.now(), actor=request.actor)
    except DomainError as exc:
        submission.release()
        return _invoice_page(request, invoice, notice=("danger", exc.detail), status=exc.status_code)
    messages.success(
        request, _("Invoice %(number)s is finalized and sent to the consumer.") % {"number": finalized.number}
    )
    return redirect("billing:finance_invoice", invoice_id=invoice.pk)


@require_POST
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
@finance_write_required
def invoice_hold_view(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    form = ReasonForm(request.POST, prefix="hold")
    submission = Submission(request, "hold", invoice.pk)
    if not submission.claim():
        return _already_submitted(request, invoice)
    if form.is_valid():
        try:
            invoice_hold(
                actor=request.actor, invoice_id=invoice.pk, reason=form.cleaned_data["reason"], now=timezone.now()
            )
        except DomainError as exc:
            submission.release()
            return _refused(request, invoice, exc, hold_form=form)
        messages.success(request, _("The invoice is held: it is not finalized until you release it."))
        return redirect("billing:finance_invoice", invoice_id=invoice.pk)
    submission.release()
    return _invoice_page(request, invoice, hold_form=form, status=400)


@require_POST
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
@finance_write_required
def invoice_transfer_view(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    form = BankTransferForm(request.POST, invoice=invoice)
    token = request.POST.get("submission", "")
    submission = Submission(request, "transfer", invoice.pk)
    if not submission.claim():
        return _already_submitted(request, invoice)
    if not form.is_valid():
        submission.release()
        return _invoice_page(request, invoice, transfer_form=form, status=400)
    data = form.cleaned_data
    try:
        receipt = bank_transfer_record(
            actor=request.actor,
            invoice_id=invoice.pk,
            amount=data["amount"],
            received_on=data["received_on"],
            reference=data["reference"],
            payer_name=data["payer_name"],
            submission=token or secrets.token_urlsafe(16),
            now=timezone.now(),
        )
    except DomainError as exc:
        submission.release()
        apply_domain_error(form, exc, {"received_on": "received_on", "reference": "reference", "amount": "amount"})
        return _invoice_page(
            request, invoice, transfer_form=form, status=exc.status_code, notice=("danger", exc.detail)
        )
    messages.success(
        request,
        _("Recorded %(amount)s %(currency)s received by bank transfer (%(reference)s).")
        % {
            "amount": format_money(receipt.payment.amount, receipt.payment.currency),
            "currency": receipt.payment.currency,
            "reference": receipt.payment.reference,
        },
    )
    return redirect("billing:finance_invoice", invoice_id=invoice.pk)


@require_POST
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
@finance_write_required
def invoice_release_view(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    submission = Submission(request, "release", invoice.pk)
    if not submission.claim():
        return _already_submitted(request, invoice)
    try:
        invoice_release(actor=request.actor, invoice_id=invoice.pk, now=timezone.now())
    except DomainError as exc:
        submission.release()
        return _invoice_page(request, invoice, notice=("danger", exc.detail), status=exc.status_code)
    messages.success(request, _("The invoice is released: it is finalized when its review window ends."))
    return redirect("billing:finance_invoice", invoice_id=invoice.pk)


@require_POST
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
@finance_write_required
def invoice_credit_view(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    lines = invoice_line_credits(invoice)
    form = CreditNoteForm(
        request.POST, invoice=invoice, lines=lines, creditable=invoice.total - credited_total(invoice)
    )
    submission = Submission(request, "credit", invoice.pk)
    if not submission.claim():
        return _already_submitted(request, invoice)
    status = 400
    if form.is_valid():
        try:
            note = credit_note_issue(
                actor=request.actor,
                invoice_id=invoice.pk,
                lines=form.requests(),
                reason=form.cleaned_data["reason"],
                now=timezone.now(),
            )
        except DomainError as exc:
            apply_domain_error(form, exc, {"lines": "__all__"})
            status = exc.status_code
        else:
            messages.success(
                request,
                _("Credit note %(number)s for %(total)s %(currency)s is issued.")
                % {"number": note.number, "total": format_money(note.total, note.currency), "currency": note.currency},
            )
            return redirect("billing:finance_invoice", invoice_id=invoice.pk)
    submission.release()
    return _invoice_page(request, invoice, credit_form=form, status=status)


@require_POST
@operator_required
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
@finance_write_required
def invoice_void_view(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    form = ReasonForm(request.POST, prefix="void")
    submission = Submission(request, "void", invoice.pk)
    if not submission.claim():
        return _already_submitted(request, invoice)
    if form.is_valid():
        try:
            invoice_void(
                actor=request.actor, invoice_id=invoice.pk, reason=form.cleaned_data["reason"], now=timezone.now()
            )
        except DomainError as exc:
            submission.release()
            return _refused(request, invoice, exc, void_form=form)
        messages.success(
            request,
            _("Invoice %(number)s is void; a credit note cancels what it still owed.") % {"number": invoice.number},
        )
        return redirect("billing:finance_invoice", invoice_id=invoice.pk)
    submission.release()
    return _invoice_page(request, invoice, void_form=form, status=400)


# --- the ledger -------------------------------------------------------------------------------------------------


def _trial_balance(request: HttpRequest) -> tuple[TrialBalanceForm, list | None]:
    form = TrialBalanceForm(request.GET)
    if not form.is_valid():
        return form, None
    return form, trial_balance(until=form.until_instant())


@require_GET
@operator_required
def trial_balance_view(request: HttpRequest) -> HttpResponse:
    form, books = _trial_balance(request)
    context = {"form": form, "books": books}
    return render(request, "billing/finance/trial_balance.html", context, status=200 if books is not None else 400)


@require_GET
@operator_required
def trial_balance_csv(request: HttpRequest) -> HttpResponse:
    form, books = _trial_balance(request)
    if books is None:
        return render(request, "billing/finance/trial_balance.html", {"form": form, "books": None}, status=400)
    rows: list[list[Cell]] = []
    for book in books:
        for account in book.accounts:
            owner = account.account.organization.name if account.account.organization else _("Platform")
            rows.append(
                [
                    book.currency,
                    owner,
                    account.account.role,
                    str(account.account.get_role_display()),
                    Money(account.debits, book.currency),
                    Money(account.credits, book.currency),
                    Money(account.balance, book.currency),
                ]
            )
        rows.append(
            [
                book.currency,
                _("Total"),
                "",
                _("balanced") if book.difference == 0 else _("NOT balanced"),
                Money(book.debits, book.currency),
                Money(book.credits, book.currency),
                Money(book.difference, book.currency),
            ]
        )
    until = form.cleaned_data.get("until")
    filename = f"trial-balance-{until or timezone.now().date():%Y-%m-%d}.csv"
    header = ["currency", "organization", "role", "role_label", "debits", "credits", "balance"]
    return csv_response(filename=filename, header=header, rows=rows)


@require_GET
@operator_required
def balances(request: HttpRequest) -> HttpResponse:
    organizations, platform = finance_balances(request.actor)
    return render(request, "billing/finance/balances.html", {"rows": organizations, "platform": platform})


@require_GET
@operator_required
def journal(request: HttpRequest) -> HttpResponse:
    page = Paginator(finance_journal(request.actor), JOURNAL_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "billing/finance/journal.html", {"page": page})


urlpatterns = [
    path("billing/finance/", periods, name="finance"),
    path("billing/finance/periods/<str:period>/", period_detail, name="finance_period"),
    path("billing/finance/periods/<str:period>/close/", period_close, name="finance_period_close"),
    path("billing/finance/invoices/", invoices, name="finance_invoices"),
    path("billing/finance/invoices/<str:invoice_id>/", invoice_detail, name="finance_invoice"),
    path("billing/finance/invoices/<str:invoice_id>/finalize/", invoice_finalize_view, name="finance_invoice_finalize"),
    path("billing/finance/invoices/<str:invoice_id>/hold/", invoice_hold_view, name="finance_invoice_hold"),
    path("billing/finance/invoices/<str:invoice_id>/release/", invoice_release_view, name="finance_invoice_release"),
    path("billing/finance/invoices/<str:invoice_id>/credit-note/", invoice_credit_view, name="finance_invoice_credit"),
    path("billing/finance/invoices/<str:invoice_id>/void/", invoice_void_view, name="finance_invoice_void"),
    path(
        "billing/finance/invoices/<str:invoice_id>/bank-transfer/",
        invoice_transfer_view,
        name="finance_invoice_transfer",
    ),
    path("billing/finance/ledger/", trial_balance_view, name="trial_balance"),
    path("billing/finance/ledger.csv", trial_balance_csv, name="trial_balance_csv"),
    path("billing/finance/balances/", balances, name="balances"),
    path("billing/finance/journal/", journal, name="journal"),
]
