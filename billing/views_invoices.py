"""A consumer's invoices (list, page, PDF and CSV) and upcoming invoice, and a center's statements (list, page,
CSV).

Read-only pages: every role of a consumer organization reads its invoices and every role of a center its
statements (`consumer_required`, `center_required`). Invoices and statements are loaded through
`billing.selectors.settlement` for the acting organization, so another organization's is a 404, exactly like a
missing one. The figures shown are the stored ones (billing rules 2–6, API.md); nothing here computes money.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from accounts.errors import DomainError, InvalidInput, NotFound
from accounts.forms import BootstrapMixin
from accounts.models import Scope
from accounts.views import scoped_object
from billing import csv_export
from billing.csv_export import Money, csv_response
from billing.documents import hours_shown, invoice_document, kind_label, party_of, percent, upcoming_lines
from billing.models import Invoice, Statement
from billing.pdf import pdf_filename, render_invoice_pdf
from billing.periods_calendar import label, month_start, parse_label, previous_month
from billing.selectors.consumer_payments import invoice_payments
from billing.selectors.settlement import (
    invoice_get,
    invoice_list,
    period_get,
    period_list,
    statement_credit_lines,
    statement_get,
    statement_lines,
    statement_list,
    upcoming_invoices,
)
from billing.stripe_gateway import enabled as stripe_enabled
from marketplace.views_support import center_required, consumer_required, vary_on_htmx, wants_partial

PAGE_SIZE = 25


class PeriodFilterForm(BootstrapMixin, forms.Form):
    period = forms.CharField(
        label=gettext_lazy("Period"),
        required=False,
        max_length=7,
        widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM", "pattern": r"\d{4}-\d{2}"}),
    )

    def clean_period(self) -> str:
        value = (self.cleaned_data["period"] or "").strip()
        if value:
            try:
                parse_label(value)
            except InvalidInput as exc:
                raise ValidationError(exc.detail, code="invalid_period") from exc
        return value


def _period_filter(request: HttpRequest) -> tuple[PeriodFilterForm, str | None]:
    form = PeriodFilterForm(request.GET)
    # A malformed period shows the form's error and the unfiltered list, never a server error.
    period = (form.cleaned_data["period"] or None) if form.is_valid() else None
    return form, period


def _page(request: HttpRequest, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


# --- invoices ---------------------------------------------------------------------------------------------------


@consumer_required
@require_GET
def invoices(request: HttpRequest) -> HttpResponse:
    form, period = _period_filter(request)
    context = {"form": form, "period": period, "page": _page(request, invoice_list(request.actor, period=period))}
    template = "billing/invoices/_table.html" if wants_partial(request) else "billing/invoices/list.html"
    return vary_on_htmx(render(request, template, context))


@consumer_required
@require_GET
def invoices_csv(request: HttpRequest) -> HttpResponse:
    _form, period = _period_filter(request)
    header = [
        _("Number"),
        _("Period"),
        _("Status"),
        _("Currency"),
        _("Subtotal"),
        _("Voucher"),
        _("Total"),
        _("VAT included"),
        _("Issued"),
        _("Due"),
        _("Paid"),
    ]
    rows = (
        [
            invoice.number or _("Draft"),
            invoice.period.label,
            invoice.get_status_display(),
            invoice.currency,
            Money(invoice.subtotal, invoice.currency),
            Money(invoice.voucher_amount, invoice.currency),
            Money(invoice.total, invoice.currency),
            Money(invoice.vat_amount, invoice.currency),
            invoice.issued_at,
            invoice.due_at,
            invoice.paid_at,
        ]
        for invoice in invoice_list(request.actor, period=period)
    )
    filename = f"invoices-{period}.csv" if period else "invoices.csv"
    return csv_response(filename=filename, header=header, rows=rows)


@consumer_required
@require_GET
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
def invoice_detail(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    context = {
        "doc": invoice_document(invoice),
        # Paying it: what is paid and still owed, the payments and refunds, bank details, the card form.
        "pay": invoice_payments(invoice),
        "card": {
            # The browser needs the publishable key too: without it the page offers bank transfer only.
            "enabled": stripe_enabled() and bool(settings.STRIPE_PUBLISHABLE_KEY),
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "js_url": settings.STRIPE_JS_URL,
            "allowed": request.actor.allows(Scope.BILLING, read_only=False),
        },
        "bank": {
            "beneficiary": settings.PLATFORM_LEGAL_NAME,
            "bank": settings.PLATFORM_BANK_NAME,
            "account": settings.PLATFORM_BANK_ACCOUNT,
        },
    }
    # The payment section reloads itself (htmx) when a payment arrives or the invoice is paid or credited.
    template = "billing/invoices/_payment.html" if wants_partial(request) else "billing/invoices/detail.html"
    return vary_on_htmx(render(request, template, context))


@consumer_required
@require_GET
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
def invoice_pdf(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    response = HttpResponse(render_invoice_pdf(invoice, language=request.LANGUAGE_CODE), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{pdf_filename(invoice)}"'
    response["Cache-Control"] = "private, no-store"
    return response


@consumer_required
@require_GET
@scoped_object(invoice_get, kwarg="invoice_id", to="invoice")
def invoice_csv(request: HttpRequest, invoice: Invoice) -> HttpResponse:
    document = invoice_document(invoice)
    currency = invoice.currency
    header = [
        _("Booking"),
        _("Description"),
        _("Kind"),
        _("Late"),
        _("Usage period"),
        _("Device-hours"),
        _("Unit price"),
        _("Amount"),
        _("Currency"),
    ]
    rows = [
        [
            str(line.booking_id) if line.booking_id else "",
            line.description,
            line.kind_label,
            line.late,
            line.usage_period,
            line.device_hours,
            Money(line.unit_price, currency),
            Money(line.amount, currency),
            currency,
        ]
        for line in document.lines
    ]
    name = invoice.number or f"draft-{invoice.period.label}-{currency}"
    return csv_response(filename=f"invoice-{name}-lines.csv", header=header, rows=rows)


# --- the upcoming invoice ---------------------------------------------------------------------------------------


def _late_period_labels(upcomings) -> dict[int, str]:
    ids = {line.charge.usage_period_id for upcoming in upcomings for line in upcoming.lines if line.charge.late}
    return {period.pk: period.label for period in period_list().filter(pk__in=ids)} if ids else {}


def _month_still_open(start) -> bool:
    try:
        return not period_get(label(start)).is_closed
    except NotFound:
        return True


@consumer_required
@require_GET
def upcoming(request: HttpRequest) -> HttpResponse:
    """The open period so far, computed on read (nothing is stored); `?period=` names an ended month not yet
    closed."""
    now = timezone.now()
    form, period = _period_filter(request)
    try:
        blocks = upcoming_invoices(request.actor, now=now, period=period)
    except DomainError as exc:
        # A month that has not started or is closed already: say so, and show the current month instead.
        form.add_error("period", exc.detail)
        period = None
        blocks = upcoming_invoices(request.actor, now=now)
    labels = _late_period_labels(blocks)
    shown = period or label(month_start(now))
    last_month = previous_month(month_start(now))
    context = {
        "form": form,
        "period": shown,
        "is_current": shown == label(month_start(now)),
        "current": label(month_start(now)),
        "last_month": label(last_month) if shown != label(last_month) and _month_still_open(last_month) else None,
        "as_of": now,
        "blocks": [{"invoice": block, "lines": upcoming_lines(block, labels)} for block in blocks],
    }
    return render(request, "billing/invoices/upcoming.html", context)


# --- statements -------------------------------------------------------------------------------------------------


@center_required
@require_GET
def statements(request: HttpRequest) -> HttpResponse:
    form, period = _period_filter(request)
    page = _page(request, statement_list(request.actor, period=period))
    rows = [(statement, percent(statement.fee_rate)) for statement in page.object_list]
    return render(request, "billing/statements/list.html", {"form": form, "period": period, "page": page, "rows": rows})


@center_required
@require_GET
def statements_csv(request: HttpRequest) -> HttpResponse:
    _form, period = _period_filter(request)
    header = [
        _("Period"),
        _("Currency"),
        _("Gross"),
        _("Fee rate"),
        _("Fee"),
        _("Payout"),
        _("Credit adjustments"),
        _("Fee adjustment"),
        _("Net payout"),
        _("Status"),
        _("Issued"),
        _("Paid"),
    ]
    rows = (
        [
            statement.period.label,
            statement.currency,
            Money(statement.gross, statement.currency),
            statement.fee_rate.normalize(),
            Money(statement.fee, statement.currency),
            Money(statement.payout, statement.currency),
            Money(statement.credit_adjustment, statement.currency),
            Money(statement.fee_adjustment, statement.currency),
            Money(statement.net_payout, statement.currency),
            statement.get_status_display(),
            statement.issued_at,
            statement.paid_at,
        ]
        for statement in statement_list(request.actor, period=period)
    )
    filename = f"statements-{period}.csv" if period else "statements.csv"
    return csv_response(filename=filename, header=header, rows=rows)


def _statement_rows(statement: Statement) -> tuple[list, list]:
    lines = [
        {
            "consumer": party_of(line.invoice.consumer).name,
            "invoice": line.invoice.number or _("Draft"),
            "booking_id": line.booking_id,
            "kind": line.kind,
            "kind_label": kind_label(line.kind),
            "late": line.late,
            "usage_period": line.usage_period.label if line.late and line.usage_period else "",
            "device_hours": hours_shown(line.device_hours),
            "unit_price": line.unit_price,
            "amount": line.amount,
        }
        for line in statement_lines(statement)
    ]
    credits = [
        {
            "consumer": party_of(credit.credit_note.consumer).name,
            "credit_note": credit.credit_note.number,
            "invoice": credit.credit_note.invoice.number,
            "booking_id": credit.invoice_line.booking_id,
            "reason": credit.credit_note.reason,
            "issued_at": credit.credit_note.issued_at,
            "amount": -credit.amount,
        }
        for credit in statement_credit_lines(statement)
    ]
    return lines, credits


@center_required
@require_GET
@scoped_object(statement_get, kwarg="statement_id", to="statement")
def statement_detail(request: HttpRequest, statement: Statement) -> HttpResponse:
    lines, credits = _statement_rows(statement)
    context = {
        "statement": statement,
        "currency": statement.currency,
        "fee_percent": percent(statement.fee_rate),
        "lines": lines,
        "credits": credits,
    }
    return render(request, "billing/statements/detail.html", context)


@center_required
@require_GET
@scoped_object(statement_get, kwarg="statement_id", to="statement")
def statement_csv(request: HttpRequest, statement: Statement) -> HttpResponse:
    """The statement's invoice lines, then its credit lines as negative amounts: the amounts add up to gross plus
    credit adjustments."""
    lines, credits = _statement_rows(statement)
    currency = statement.currency
    header = [
        _("Consumer"),
        _("Invoice"),
        _("Booking"),
        _("Kind"),
        _("Late"),
        _("Usage period"),
        _("Device-hours"),
        _("Unit price"),
        _("Amount"),
        _("Currency"),
    ]
    rows: list[list[csv_export.Cell]] = [
        [
            line["consumer"],
            line["invoice"],
            str(line["booking_id"]) if line["booking_id"] else "",
            line["kind_label"],
            line["late"],
            line["usage_period"],
            line["device_hours"],
            Money(line["unit_price"], currency),
            Money(line["amount"], currency),
            currency,
        ]
        for line in lines
    ]
    rows += [
        [
            credit["consumer"],
            credit["invoice"],
            str(credit["booking_id"]) if credit["booking_id"] else "",
            _("Credit note %(number)s") % {"number": credit["credit_note"]},
            None,
            "",
            None,
            None,
            Money(credit["amount"], currency),
            currency,
        ]
        for credit in credits
    ]
    filename = f"statement-{statement.period.label}-{currency}.csv"
    return csv_response(filename=filename, header=header, rows=rows)


urlpatterns = [
    path("billing/invoices/", invoices, name="invoices"),
    path("billing/invoices.csv", invoices_csv, name="invoices_csv"),
    path("billing/invoices/<str:invoice_id>/", invoice_detail, name="invoice"),
    path("billing/invoices/<str:invoice_id>/pdf/", invoice_pdf, name="invoice_pdf"),
    path("billing/invoices/<str:invoice_id>/lines.csv", invoice_csv, name="invoice_csv"),
    path("billing/upcoming/", upcoming, name="upcoming"),
    path("billing/statements/", statements, name="statements"),
    path("billing/statements.csv", statements_csv, name="statements_csv"),
    path("billing/statements/<str:statement_id>/", statement_detail, name="statement"),
    path("billing/statements/<str:statement_id>/lines.csv", statement_csv, name="statement_csv"),
]
