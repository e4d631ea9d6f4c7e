"""The operator's finance reports: AR aging, cash received vs invoiced, payouts due vs paid, voucher claims
outstanding. Each page shows a report for its filters (with a chart where a picture reads faster than a table)
and downloads exactly the rows it shows as CSV or XLSX. Any operator member reads them; anyone else gets a 403.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from billing.csv_export import Cell, Money, cell
from billing.forms_reports import AsOfFilterForm, MonthRangeFilterForm
from billing.selectors.reports import report_aging, report_cash, report_claims, report_payouts
from billing.views_finance import operator_required
from billing.xlsx_export import FORMATS, table_response


@dataclass(frozen=True)
class ReportSpec:
    """One report: its filter form, the selector reading it, its page and its download's file name."""

    name: str
    title: Any
    form: Callable[[Any], Any]
    read: Callable[..., Any]
    template: str
    url: str

    @property
    def export_url(self) -> str:
        return f"{self.url}_export"

    def filename(self, filters: dict[str, Any]) -> str:
        """ASCII: the report's name, its day or months, and its currency when one was chosen."""
        if "as_of" in filters:
            parts = [self.name, filters["as_of"].isoformat()]
        else:
            parts = [self.name, f"{filters['first']:%Y-%m}", f"{filters['last']:%Y-%m}"]
        if filters.get("currency"):
            parts.append(filters["currency"])
        return "-".join(parts)


def _as_of_form(data: Any) -> AsOfFilterForm:
    return AsOfFilterForm(data, today=timezone.now().date())


REPORTS: dict[str, ReportSpec] = {
    spec.name: spec
    for spec in (
        ReportSpec(
            "ar-aging",
            gettext_lazy("AR aging"),
            _as_of_form,
            report_aging,
            "billing/reports/aging.html",
            "billing:report_aging",
        ),
        ReportSpec(
            "cash-vs-invoiced",
            gettext_lazy("Cash vs invoiced"),
            MonthRangeFilterForm,
            report_cash,
            "billing/reports/cash.html",
            "billing:report_cash",
        ),
        ReportSpec(
            "payouts",
            gettext_lazy("Payouts due vs paid"),
            _as_of_form,
            report_payouts,
            "billing/reports/payouts.html",
            "billing:report_payouts",
        ),
        ReportSpec(
            "voucher-claims",
            gettext_lazy("Voucher claims outstanding"),
            _as_of_form,
            report_claims,
            "billing/reports/claims.html",
            "billing:report_claims",
        ),
    )
}


@dataclass(frozen=True)
class ShownCell:
    text: str
    numeric: bool


def shown(value: Cell) -> ShownCell:
    """A cell as the page shows it: the CSV's text (money with its currency's digits), numbers to the right,
    instants in UTC like everywhere else on the site."""
    if isinstance(value, datetime):
        return ShownCell(f"{value.astimezone(UTC):%Y-%m-%d %H:%M}", False)
    numeric = isinstance(value, Money | Decimal | int) and not isinstance(value, bool)
    text = cell(value)
    # The CSV protects text with a leading quote against spreadsheets; a page needs no such protection.
    if isinstance(value, str):
        text = value
    return ShownCell(text, numeric)


def _read(request: HttpRequest, spec: ReportSpec) -> tuple[Any, Any]:
    """The filter form and the report it asks for (None when the filters are refused)."""
    form = spec.form(request.GET)
    if not form.is_valid():
        return form, None
    return form, spec.read(request.actor, **form.filters())


def _page(request: HttpRequest, spec: ReportSpec) -> HttpResponse:
    form, report = _read(request, spec)
    table = report.table() if report is not None else None
    rows = [[shown(value) for value in row] for row in table.rows] if table is not None else []
    chart = report.chart() if report is not None and hasattr(report, "chart") else None
    for index, item in enumerate(chart or [], start=1):
        item["id"] = f"report-chart-{index}"
    context = {
        "spec": spec,
        "reports": REPORTS.values(),
        "form": form,
        "report": report,
        "table": table,
        "rows": rows,
        # A column is right-aligned when its values are numbers (the first row tells; all rows agree).
        "header": [(name, bool(rows) and rows[0][index].numeric) for index, name in enumerate(table.header)]
        if table is not None
        else [],
        "chart": chart,
        "query": request.GET.urlencode(),
    }
    return render(request, spec.template, context, status=200 if report is not None else 400)


def _export(request: HttpRequest, spec: ReportSpec, fmt: str) -> HttpResponse:
    if fmt not in FORMATS:
        raise Http404("No such download format.")
    form, report = _read(request, spec)
    if report is None:
        # A refused filter downloads nothing: the page says what is wrong with it.
        return _page(request, spec)
    return table_response(report.table(), stem=spec.filename(form.filters()), fmt=fmt)


@require_GET
@operator_required
def reports(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/reports/index.html", {"reports": REPORTS.values()})


def _report_views(name: str) -> tuple[Callable[..., HttpResponse], Callable[..., HttpResponse]]:
    spec = REPORTS[name]

    @require_GET
    @operator_required
    def page(request: HttpRequest) -> HttpResponse:
        return _page(request, spec)

    @require_GET
    @operator_required
    def export(request: HttpRequest, fmt: str) -> HttpResponse:
        return _export(request, spec, fmt)

    return page, export


aging_page, aging_export = _report_views("ar-aging")
cash_page, cash_export = _report_views("cash-vs-invoiced")
payouts_page, payouts_export = _report_views("payouts")
claims_page, claims_export = _report_views("voucher-claims")

urlpatterns = [
    path("billing/finance/reports/", reports, name="reports"),
    path("billing/finance/reports/ar-aging/", aging_page, name="report_aging"),
    path("billing/finance/reports/ar-aging.<str:fmt>", aging_export, name="report_aging_export"),
    path("billing/finance/reports/cash-vs-invoiced/", cash_page, name="report_cash"),
    path("billing/finance/reports/cash-vs-invoiced.<str:fmt>", cash_export, name="report_cash_export"),
    path("billing/finance/reports/payouts/", payouts_page, name="report_payouts"),
    path("billing/finance/reports/payouts.<str:fmt>", payouts_export, name="report_payouts_export"),
    path("billing/finance/reports/voucher-claims/", claims_page, name="report_claims"),
    path("billing/finance/reports/voucher-claims.<str:fmt>", claims_export, name="report_claims_export"),
]
