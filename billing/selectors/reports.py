"""Finance reports of the platform operator: accounts receivable aging, cash received against what was invoiced
per month, payouts due against paid per center, and voucher claims outstanding per sponsor.

Each report is read as of a day (UTC): what the books said at the end of that day, from the dated rows the books
are made of (an allocation's and a write-off's `created_at`, a credit note's `issued_at`, a payout's `paid_at`),
so last month's aging reads the same today as it did then. Each report is declared once, as rows of
`billing.csv_export.Cell`, and `table()` gives them to both downloads (CSV and XLSX) and the page.
Only the operator reads these (every organization's money); anyone else is refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from accounts.actor import Actor
from billing.csv_export import Cell, Money
from billing.models import (
    CreditNote,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentAllocation,
    PaymentStatus,
    Payout,
    PayoutStatus,
    Refund,
    RefundStatus,
    Statement,
    VoucherClaim,
    VoucherClaimStatus,
    WriteOff,
)
from billing.periods_calendar import label, month_start, next_month
from billing.selectors.finance import _require_operator
from billing.xlsx_export import Table
from marketplace.money import format_money

ZERO = Decimal(0)
AMOUNT = DecimalField(max_digits=18, decimal_places=4)
# Invoices that were ever owed: a void invoice was owed until its credit note, so an earlier day still ages it.
OWED_STATUSES = (InvoiceStatus.FINALIZED, InvoiceStatus.PAID, InvoiceStatus.VOID)


def day_end(day: date) -> datetime:
    """The first instant after `day` (UTC): what happened before it happened by the end of that day."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)


def _sum_before(model: Any, amount: str, at: str, cutoff: datetime, **filters: Any) -> Coalesce:
    """A per-invoice subquery: the sum of `amount` over `model`'s rows of that invoice dated before `cutoff`."""
    rows = (
        model.objects.filter(invoice=OuterRef("pk"), **{f"{at}__lt": cutoff}, **filters)
        .order_by()
        .values("invoice")
        .annotate(total=Sum(amount))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=AMOUNT), Value(ZERO, output_field=AMOUNT))


# --- AR aging -----------------------------------------------------------------------------------------------------

AGING_BUCKETS = ("current", "days_1_30", "days_31_60", "days_61_90", "over_90")


def aging_bucket(days_past_due: int) -> str:
    """Which column an amount `days_past_due` days past its due date goes in (0 or less: not due yet)."""
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "days_1_30"
    if days_past_due <= 60:
        return "days_31_60"
    if days_past_due <= 90:
        return "days_61_90"
    return "over_90"


def aging_labels() -> dict[str, str]:
    return {
        "current": _("Current"),
        "days_1_30": _("1–30 days"),
        "days_31_60": _("31–60 days"),
        "days_61_90": _("61–90 days"),
        "over_90": _("Over 90 days"),
    }


@dataclass
class AgingRow:
    """What one consumer owed in one currency on the day, by how long past due."""

    consumer_id: Any
    consumer: str
    currency: str
    buckets: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(AGING_BUCKETS, ZERO))
    invoices: int = 0
    oldest_due: datetime | None = None

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)

    @property
    def past_due(self) -> Decimal:
        return self.total - self.buckets["current"]

    @property
    def amounts(self) -> list[Decimal]:
        return [self.buckets[name] for name in AGING_BUCKETS]


@dataclass
class AgingReport:
    as_of: date
    currency: str | None
    rows: list[AgingRow]

    def totals(self) -> list[AgingRow]:
        """One row per currency adding up its consumers."""
        by_currency: dict[str, AgingRow] = {}
        for row in self.rows:
            total = by_currency.setdefault(row.currency, AgingRow(None, _("Total"), row.currency))
            for name in AGING_BUCKETS:
                total.buckets[name] += row.buckets[name]
            total.invoices += row.invoices
        return [by_currency[currency] for currency in sorted(by_currency)]

    def table(self) -> Table:
        labels = aging_labels()
        header = [
            _("Consumer"),
            _("Currency"),
            *(labels[name] for name in AGING_BUCKETS),
            _("Total"),
            _("Open invoices"),
            _("Oldest due date"),
        ]
        rows: list[list[Cell]] = [
            [
                row.consumer,
                row.currency,
                *(Money(amount, row.currency) for amount in row.amounts),
                Money(row.total, row.currency),
                row.invoices,
                row.oldest_due.date() if row.oldest_due else None,
            ]
            for row in self.rows
        ]
        return Table(title=_("AR aging %(day)s") % {"day": self.as_of.isoformat()}, header=header, rows=rows)

    def chart(self) -> list[dict[str, Any]]:
        """Per currency: the consumers and what each owes per bucket, for a stacked bar chart."""
        charts = []
        labels = aging_labels()
        for currency in sorted({row.currency for row in self.rows}):
            rows = [row for row in self.rows if row.currency == currency]
            charts.append(
                {
                    "currency": currency,
                    "labels": [row.consumer for row in rows],
                    "datasets": [
                        {
                            "key": name,
                            "label": labels[name],
                            "data": [format_money(row.buckets[name], currency) for row in rows],
                        }
                        for name in AGING_BUCKETS
                    ],
                }
            )
        return charts


def invoices_outstanding_as_of(cutoff: datetime, *, currency: str | None = None, consumer: Any = None) -> list[dict]:
    """Every invoice owed before `cutoff` with what was still owed on it then (`outstanding` > 0 only): its total
    less the credit notes issued, the payments applied and the write-offs made before `cutoff`, never below zero
    (as `billing.services.payments.invoice_outstanding` reads it now). A void invoice owes nothing once voided."""
    invoices = Invoice.objects.filter(status__in=OWED_STATUSES, finalized_at__lt=cutoff).exclude(voided_at__lt=cutoff)
    if currency:
        invoices = invoices.filter(currency=currency)
    if consumer is not None:
        invoices = invoices.filter(consumer=consumer)
    rows = invoices.annotate(
        credited=_sum_before(CreditNote, "total", "issued_at", cutoff),
        paid=_sum_before(PaymentAllocation, "amount", "created_at", cutoff),
        written_off=_sum_before(WriteOff, "amount", "created_at", cutoff),
    ).values(
        "pk",
        "number",
        "consumer_id",
        "consumer__name",
        "currency",
        "total",
        "due_at",
        "credited",
        "paid",
        "written_off",
    )
    owed = []
    for row in rows:
        outstanding = max(row["total"] - row["credited"] - row["paid"] - row["written_off"], ZERO)
        if outstanding > 0:
            owed.append({**row, "outstanding": outstanding})
    return owed


def report_aging(actor: Actor, *, as_of: date, currency: str | None = None) -> AgingReport:
    """What each consumer owed at the end of `as_of`, per currency, by days past due: current (not yet due),
    1–30, 31–60, 61–90 and over 90 days. Consumers owing nothing are left out."""
    _require_operator(actor)
    by_key: dict[tuple[Any, str], AgingRow] = {}
    for invoice in invoices_outstanding_as_of(day_end(as_of), currency=currency):
        key = (invoice["consumer_id"], invoice["currency"])
        row = by_key.setdefault(key, AgingRow(invoice["consumer_id"], invoice["consumer__name"], invoice["currency"]))
        due: datetime | None = invoice["due_at"]
        days = (as_of - due.astimezone(UTC).date()).days if due else 0
        row.buckets[aging_bucket(days)] += invoice["outstanding"]
        row.invoices += 1
        if due is not None and (row.oldest_due is None or due < row.oldest_due):
            row.oldest_due = due
    rows = sorted(by_key.values(), key=lambda row: (row.currency, -row.past_due, -row.total, row.consumer))
    return AgingReport(as_of=as_of, currency=currency, rows=rows)


# --- cash received vs invoiced per month ------------------------------------------------------------------------


@dataclass
class CashRow:
    month: str
    currency: str
    invoiced: Decimal = ZERO
    credited: Decimal = ZERO
    received: Decimal = ZERO
    refunded: Decimal = ZERO

    @property
    def net_invoiced(self) -> Decimal:
        return self.invoiced - self.credited

    @property
    def net_received(self) -> Decimal:
        return self.received - self.refunded


@dataclass
class CashReport:
    first: datetime
    last: datetime
    currency: str | None
    rows: list[CashRow]

    def table(self) -> Table:
        header = [
            _("Month"),
            _("Currency"),
            _("Invoiced"),
            _("Credit notes"),
            _("Net invoiced"),
            _("Received"),
            _("Refunded"),
            _("Net received"),
        ]
        rows: list[list[Cell]] = [
            [
                row.month,
                row.currency,
                Money(row.invoiced, row.currency),
                Money(row.credited, row.currency),
                Money(row.net_invoiced, row.currency),
                Money(row.received, row.currency),
                Money(row.refunded, row.currency),
                Money(row.net_received, row.currency),
            ]
            for row in self.rows
        ]
        return Table(title=_("Cash vs invoiced"), header=header, rows=rows)

    def chart(self) -> list[dict[str, Any]]:
        charts = []
        for currency in sorted({row.currency for row in self.rows}):
            rows = [row for row in self.rows if row.currency == currency]
            charts.append(
                {
                    "currency": currency,
                    "labels": [row.month for row in rows],
                    "datasets": [
                        {
                            "key": "invoiced",
                            "label": _("Net invoiced"),
                            "data": [format_money(r.net_invoiced, currency) for r in rows],
                        },
                        {
                            "key": "received",
                            "label": _("Net received"),
                            "data": [format_money(r.net_received, currency) for r in rows],
                        },
                    ],
                }
            )
        return charts


def _months(first: datetime, last: datetime) -> list[datetime]:
    months, start = [], first
    while start <= last:
        months.append(start)
        start = next_month(start)
    return months


def _by_month(rows: Iterable[tuple[datetime, str, Decimal]]) -> dict[tuple[str, str], Decimal]:
    sums: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for at, currency, amount in rows:
        sums[(label(month_start(at)), currency)] += amount
    return sums


def report_cash(actor: Actor, *, first: datetime, last: datetime, currency: str | None = None) -> CashReport:
    """Per month from `first` to `last` (month starts, UTC) and currency: what was invoiced (the totals of the
    invoices of that billing period, once finalized), the credit notes issued in it, the payments received in it
    (by `received_at`) and the refunds sent. Every month of the range is listed for each currency with any figure,
    so the chart has no gaps."""
    _require_operator(actor)
    end = next_month(last)
    currency_filter = Q(currency=currency) if currency else Q()
    invoiced = _by_month(
        Invoice.objects.filter(currency_filter, status__in=OWED_STATUSES, period__start__gte=first)
        .filter(period__start__lt=end)
        .values_list("period__start", "currency", "total")
    )
    credited = _by_month(
        CreditNote.objects.filter(currency_filter, issued_at__gte=first, issued_at__lt=end).values_list(
            "issued_at", "currency", "total"
        )
    )
    received = _by_month(
        Payment.objects.filter(
            currency_filter, status=PaymentStatus.SUCCEEDED, received_at__gte=first, received_at__lt=end
        ).values_list("received_at", "currency", "amount")
    )
    refunded = _by_month(
        Refund.objects.filter(
            currency_filter, status=RefundStatus.SUCCEEDED, succeeded_at__gte=first, succeeded_at__lt=end
        ).values_list("succeeded_at", "currency", "amount")
    )
    currencies = sorted({key[1] for sums in (invoiced, credited, received, refunded) for key in sums})
    rows = [
        CashRow(
            month=label(month),
            currency=code,
            invoiced=invoiced.get((label(month), code), ZERO),
            credited=credited.get((label(month), code), ZERO),
            received=received.get((label(month), code), ZERO),
            refunded=refunded.get((label(month), code), ZERO),
        )
        for code in currencies
        for month in _months(first, last)
    ]
    return CashReport(first=first, last=last, currency=currency, rows=rows)


# --- payouts due vs paid per center -----------------------------------------------------------------------------


@dataclass
class PayoutRow:
    center: str
    currency: str
    statements: int = 0
    due: Decimal = ZERO
    paid: Decimal = ZERO
    in_progress: Decimal = ZERO
    last_paid_at: datetime | None = None

    @property
    def unpaid(self) -> Decimal:
        return self.due - self.paid


@dataclass
class PayoutReport:
    as_of: date
    currency: str | None
    rows: list[PayoutRow]

    def table(self) -> Table:
        header = [
            _("Center"),
            _("Currency"),
            _("Statements"),
            _("Net payouts due"),
            _("Paid"),
            _("In progress"),
            _("Not yet paid"),
            _("Last paid (UTC)"),
        ]
        rows: list[list[Cell]] = [
            [
                row.center,
                row.currency,
                row.statements,
                Money(row.due, row.currency),
                Money(row.paid, row.currency),
                Money(row.in_progress, row.currency),
                Money(row.unpaid, row.currency),
                row.last_paid_at,
            ]
            for row in self.rows
        ]
        return Table(title=_("Payouts %(day)s") % {"day": self.as_of.isoformat()}, header=header, rows=rows)


def report_payouts(actor: Actor, *, as_of: date, currency: str | None = None) -> PayoutReport:
    """Per center and currency at the end of `as_of`: the net payouts of its statements issued by then, what was
    paid out by then, what is on its way (a payout created but not yet paid), and what is left to pay."""
    _require_operator(actor)
    cutoff = day_end(as_of)
    currency_filter = Q(currency=currency) if currency else Q()
    by_key: dict[tuple[Any, str], PayoutRow] = {}
    statements = (
        Statement.objects.filter(currency_filter, issued_at__lt=cutoff)
        .values("center_id", "center__name", "currency")
        .order_by()
        .annotate(due=Sum("net_payout"), count=Count("pk"))
    )
    for row in statements:
        by_key[(row["center_id"], row["currency"])] = PayoutRow(
            center=row["center__name"], currency=row["currency"], statements=row["count"], due=row["due"]
        )
    payouts = Payout.objects.filter(currency_filter, created_at__lt=cutoff).values(
        "center_id", "center__name", "currency", "amount", "status", "paid_at"
    )
    for payout in payouts:
        key = (payout["center_id"], payout["currency"])
        row = by_key.setdefault(key, PayoutRow(center=payout["center__name"], currency=payout["currency"]))
        if payout["status"] == PayoutStatus.PAID and payout["paid_at"] is not None and payout["paid_at"] < cutoff:
            row.paid += payout["amount"]
            if row.last_paid_at is None or payout["paid_at"] > row.last_paid_at:
                row.last_paid_at = payout["paid_at"]
        elif payout["status"] != PayoutStatus.FAILED:
            row.in_progress += payout["amount"]
    rows = sorted(by_key.values(), key=lambda row: (row.currency, -row.unpaid, row.center))
    return PayoutReport(as_of=as_of, currency=currency, rows=rows)


# --- voucher claims outstanding per sponsor ---------------------------------------------------------------------


@dataclass
class ClaimRow:
    sponsor: str
    currency: str
    claims: int = 0
    claimed: Decimal = ZERO
    paid: Decimal = ZERO
    open_claims: int = 0
    oldest_open: str = ""

    @property
    def outstanding(self) -> Decimal:
        return self.claimed - self.paid


@dataclass
class ClaimReport:
    as_of: date
    currency: str | None
    rows: list[ClaimRow]

    def table(self) -> Table:
        header = [
            _("Sponsor"),
            _("Currency"),
            _("Claims"),
            _("Claimed"),
            _("Paid"),
            _("Outstanding"),
            _("Open claims"),
            _("Oldest open period"),
        ]
        rows: list[list[Cell]] = [
            [
                row.sponsor,
                row.currency,
                row.claims,
                Money(row.claimed, row.currency),
                Money(row.paid, row.currency),
                Money(row.outstanding, row.currency),
                row.open_claims,
                row.oldest_open,
            ]
            for row in self.rows
        ]
        return Table(title=_("Voucher claims %(day)s") % {"day": self.as_of.isoformat()}, header=header, rows=rows)


def report_claims(actor: Actor, *, as_of: date, currency: str | None = None) -> ClaimReport:
    """Per sponsor and currency at the end of `as_of`: its voucher claims issued by then, what it had paid of
    them by then, and what it still owed (with its oldest open claim's period)."""
    _require_operator(actor)
    cutoff = day_end(as_of)
    claims = VoucherClaim.objects.filter(issued_at__lt=cutoff)
    if currency:
        claims = claims.filter(currency=currency)
    by_key: dict[tuple[Any, str], ClaimRow] = {}
    for claim in claims.values(
        "sponsor_id", "sponsor__name", "currency", "amount", "status", "paid_at", "period__start"
    ).order_by("period__start"):
        key = (claim["sponsor_id"], claim["currency"])
        row = by_key.setdefault(key, ClaimRow(sponsor=claim["sponsor__name"], currency=claim["currency"]))
        row.claims += 1
        row.claimed += claim["amount"]
        paid = claim["status"] == VoucherClaimStatus.PAID and claim["paid_at"] is not None and claim["paid_at"] < cutoff
        if paid:
            row.paid += claim["amount"]
        else:
            row.open_claims += 1
            row.oldest_open = row.oldest_open or label(claim["period__start"])
    rows = sorted(by_key.values(), key=lambda row: (row.currency, -row.outstanding, row.sponsor))
    return ClaimReport(as_of=as_of, currency=currency, rows=rows)
