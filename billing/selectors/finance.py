"""Reads of the platform operator's finance workbench: every billing period with its documents and billing rule 7's
totals, the invoices under review with what each line may still be credited, balances per organization, and the
journal. Only the operator reads these (every organization's money); anyone else is refused."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Prefetch, QuerySet, Sum
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Forbidden, InvalidInput, NotFound
from accounts.models import Organization
from billing.models import (
    AccountRole,
    BillingPeriod,
    CreditNote,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    PeriodStatus,
    Statement,
    VoucherClaim,
)
from billing.periods_calendar import label, month_start, next_month, parse_label
from billing.selectors.settlement import account_balances, invoice_list, is_operator
from billing.services.finance import close_is_stale, close_requests
from billing.services.invoices import credited_so_far
from billing.services.periods import close_refusal, first_billable_month

ZERO = Decimal(0)


def _require_operator(actor: Actor) -> None:
    if not is_operator(actor):
        raise Forbidden(_("Only the platform operator reads every organization's books."), code="operator_only")


# --- periods ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurrencyTotals:
    """Billing rule 7's sums for one closed period and currency."""

    currency: str
    subtotal: Decimal = ZERO
    total: Decimal = ZERO
    voucher_claims: Decimal = ZERO
    gross: Decimal = ZERO
    fee: Decimal = ZERO
    payout: Decimal = ZERO

    @property
    def subtotals_match_gross(self) -> bool:
        return self.subtotal == self.gross

    @property
    def totals_and_claims_match_subtotals(self) -> bool:
        return self.total + self.voucher_claims == self.subtotal

    @property
    def fees_and_payouts_match_gross(self) -> bool:
        return self.fee + self.payout == self.gross

    @property
    def reconciles(self) -> bool:
        return (
            self.subtotals_match_gross and self.totals_and_claims_match_subtotals and self.fees_and_payouts_match_gross
        )


@dataclass
class PeriodRow:
    """One month as the operator sees it: its stored period (None until anything touched it), its documents,
    and whether and why it can be closed now."""

    start: datetime
    period: BillingPeriod | None
    invoices: int = 0
    statements: int = 0
    claims: int = 0
    credit_notes: int = 0
    totals: list[CurrencyTotals] = field(default_factory=list)
    close_requested: dict[str, Any] | None = None
    refusal: str | None = None
    stale: bool = False

    @property
    def label(self) -> str:
        return label(self.start)

    @property
    def end(self) -> datetime:
        return next_month(self.start)

    @property
    def stored_status(self) -> str:
        return self.period.status if self.period is not None else PeriodStatus.OPEN

    @property
    def status(self) -> str:
        """open, closing or closed; a queued close already shows as closing."""
        if self.stored_status == PeriodStatus.OPEN and self.close_requested:
            return PeriodStatus.CLOSING
        return self.stored_status

    @property
    def queued(self) -> bool:
        """Requested from the page, not yet started by the worker."""
        return self.stored_status == PeriodStatus.OPEN and bool(self.close_requested)

    @property
    def can_close(self) -> bool:
        if self.refusal is not None:
            return False
        if self.status == PeriodStatus.CLOSING:
            return self.stale
        return self.status == PeriodStatus.OPEN

    @property
    def totals_rows(self) -> list[CurrencyTotals | None]:
        """The totals per currency, or one empty row for a month without documents (a table row per item)."""
        return list(self.totals) or [None]

    @property
    def reconciles(self) -> bool | None:
        if self.stored_status != PeriodStatus.CLOSED:
            return None
        return all(totals.reconciles for totals in self.totals)


def _months(first: datetime, last: datetime) -> list[datetime]:
    months, month = [], first
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def _grouped(queryset: QuerySet, *values: str, **sums: Any) -> list[dict[str, Any]]:
    return list(queryset.values(*values).annotate(**sums).order_by())


def _period_rows(starts: list[datetime], periods: dict[datetime, BillingPeriod], now: datetime) -> list[PeriodRow]:
    ids = [period.pk for period in periods.values()]
    counts: dict[str, dict[Any, int]] = {}
    for name, model in (
        ("invoices", Invoice),
        ("statements", Statement),
        ("claims", VoucherClaim),
        ("credit_notes", CreditNote),
    ):
        counts[name] = {
            row["period_id"]: row["n"]
            for row in _grouped(model.objects.filter(period_id__in=ids), "period_id", n=Count("pk"))
        }
    sums: dict[tuple[Any, str], dict[str, Decimal]] = defaultdict(dict)
    for row in _grouped(
        Invoice.objects.filter(period_id__in=ids),
        "period_id",
        "currency",
        subtotal=Sum("subtotal"),
        total=Sum("total"),
    ):
        sums[(row["period_id"], row["currency"])].update(subtotal=row["subtotal"], total=row["total"])
    for row in _grouped(
        Statement.objects.filter(period_id__in=ids),
        "period_id",
        "currency",
        gross=Sum("gross"),
        fee=Sum("fee"),
        payout=Sum("payout"),
    ):
        sums[(row["period_id"], row["currency"])].update(gross=row["gross"], fee=row["fee"], payout=row["payout"])
    for row in _grouped(VoucherClaim.objects.filter(period_id__in=ids), "period_id", "currency", amount=Sum("amount")):
        sums[(row["period_id"], row["currency"])]["voucher_claims"] = row["amount"]
    requested = close_requests([label(start) for start in starts])

    rows = []
    for start in starts:
        period = periods.get(start)
        row = PeriodRow(start=start, period=period, close_requested=requested.get(label(start)))
        if period is not None:
            for name, by_period in counts.items():
                setattr(row, name, by_period.get(period.pk, 0))
            row.totals = [
                CurrencyTotals(currency=currency, **values)
                for (period_id, currency), values in sorted(sums.items(), key=lambda item: item[0][1])
                if period_id == period.pk
            ]
            row.stale = close_is_stale(period, now)
        if row.stored_status != PeriodStatus.CLOSED and (row.status == PeriodStatus.OPEN or row.stale):
            refusal = close_refusal(start, now)
            row.refusal = refusal.detail if refusal is not None else None
        rows.append(row)
    return rows


def finance_periods(actor: Actor, *, now: datetime) -> list[PeriodRow]:
    """Every month from the first billable one (or the first stored period, if earlier) to the current one, newest
    first, with its documents, rule 7's totals per currency, and whether it can be closed now."""
    _require_operator(actor)
    current = month_start(now)
    periods = {period.start: period for period in BillingPeriod.objects.filter(start__lte=current)}
    first = min([current, *periods.keys(), *filter(None, [first_billable_month()])])
    return _period_rows(list(reversed(_months(first, current))), periods, now)


def finance_period(actor: Actor, period_label: str, *, now: datetime) -> PeriodRow:
    """One month of the periods page; a month outside it (not started, or before anything was billed) is 404."""
    _require_operator(actor)
    try:
        start = parse_label(period_label)
    except InvalidInput as exc:
        raise NotFound(_("No such billing period.")) from exc
    if start > month_start(now):
        raise NotFound(_("No such billing period."))
    period = BillingPeriod.objects.filter(start=start).first()
    if period is None:
        first = first_billable_month()
        if first is None or start < first:
            raise NotFound(_("No such billing period."))
    return _period_rows([start], {start: period} if period else {}, now)[0]


def period_invoices(actor: Actor, period: BillingPeriod | None) -> QuerySet[Invoice]:
    _require_operator(actor)
    if period is None:
        return Invoice.objects.none()
    return (
        Invoice.objects.filter(period=period)
        .select_related("consumer", "period")
        .order_by("consumer__name", "currency")
    )


def period_statements(actor: Actor, period: BillingPeriod | None) -> QuerySet[Statement]:
    _require_operator(actor)
    if period is None:
        return Statement.objects.none()
    return Statement.objects.filter(period=period).select_related("center").order_by("center__name", "currency")


def period_claims(actor: Actor, period: BillingPeriod | None) -> QuerySet[VoucherClaim]:
    _require_operator(actor)
    if period is None:
        return VoucherClaim.objects.none()
    return VoucherClaim.objects.filter(period=period).select_related("sponsor").order_by("sponsor__name", "currency")


def period_credit_notes(actor: Actor, period: BillingPeriod | None) -> QuerySet[CreditNote]:
    _require_operator(actor)
    if period is None:
        return CreditNote.objects.none()
    return CreditNote.objects.filter(period=period).select_related("invoice", "consumer").order_by("issued_at")


# --- invoices under review --------------------------------------------------------------------------------------


def finance_invoice_list(
    actor: Actor,
    *,
    period: str | None = None,
    status: str | None = None,
    consumer: Organization | None = None,
    held: bool | None = None,
) -> QuerySet[Invoice]:
    _require_operator(actor)
    invoices = invoice_list(actor, period=period, status=status)
    if consumer is not None:
        invoices = invoices.filter(consumer=consumer)
    if held is not None:
        invoices = invoices.filter(held=held)
    return invoices


def invoice_consumers(actor: Actor) -> QuerySet[Organization]:
    """The organizations that have invoices, for the review's consumer filter."""
    _require_operator(actor)
    return Organization.objects.filter(invoices__isnull=False).distinct().order_by("name")


def invoice_periods(actor: Actor) -> list[str]:
    _require_operator(actor)
    starts = Invoice.objects.values_list("period__start", flat=True).distinct().order_by("-period__start")
    return [label(start) for start in starts]


@dataclass(frozen=True)
class LineCredit:
    """An invoice line with what credit notes took off it so far and what may still be credited on it."""

    line: InvoiceLine
    credited: Decimal
    room: Decimal


def invoice_line_credits(invoice: Invoice) -> list[LineCredit]:
    credited = credited_so_far(invoice)
    return [
        LineCredit(line, credited.get(line.pk, ZERO), max(line.amount - credited.get(line.pk, ZERO), ZERO))
        for line in invoice.lines.all()
    ]


def invoice_entries(invoice: Invoice) -> QuerySet[JournalEntry]:
    """The ledger entries an invoice caused: its own, its voucher redemption's, and its credit notes'."""
    keys = [f"invoice:{invoice.pk}", f"redemption:{invoice.pk}"]
    keys += [f"credit_note:{pk}" for pk in invoice.credit_notes.values_list("pk", flat=True)]
    return journal_entries().filter(key__in=keys).order_by("posted_at", "id")


# --- the ledger -------------------------------------------------------------------------------------------------


def journal_entries() -> QuerySet[JournalEntry]:
    return (
        JournalEntry.objects.select_related("period")
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=JournalLine.objects.select_related("account__organization").order_by("-amount", "id"),
            )
        )
        .order_by("-posted_at", "-id")
    )


def finance_journal(actor: Actor) -> QuerySet[JournalEntry]:
    """Every journal entry, newest first, each with its lines."""
    _require_operator(actor)
    return journal_entries()


@dataclass
class OrganizationBalance:
    """What one organization owes or is owed in one currency, from its ledger accounts' balances: receivable (it
    owes for invoices), payable (the platform owes it, as a center) and voucher receivable (it owes, as a sponsor)."""

    organization: Organization
    currency: str
    receivable: Decimal = ZERO
    payable: Decimal = ZERO
    voucher_receivable: Decimal = ZERO


@dataclass
class PlatformBalance:
    currency: str
    fee_revenue: Decimal = ZERO
    cash: Decimal = ZERO


def finance_balances(actor: Actor) -> tuple[list[OrganizationBalance], list[PlatformBalance]]:
    """One row per organization and currency with an account, and the platform's own accounts per currency.
    Each figure is signed the way its account normally runs: a receivable as debits − credits, a payable or
    revenue as credits − debits, so a positive number is what is owed."""
    _require_operator(actor)
    rows: dict[tuple[Any, str], OrganizationBalance] = {}
    platform: dict[str, PlatformBalance] = {}
    for balance in account_balances():
        account = balance.account
        if account.organization is None:
            row = platform.setdefault(account.currency, PlatformBalance(account.currency))
            if account.role == AccountRole.FEE_REVENUE:
                row.fee_revenue -= balance.balance
            elif account.role == AccountRole.CASH:
                row.cash += balance.balance
            continue
        key = (account.organization_id, account.currency)
        row = rows.setdefault(key, OrganizationBalance(account.organization, account.currency))
        if account.role == AccountRole.RECEIVABLE:
            row.receivable += balance.balance
        elif account.role == AccountRole.CENTER_PAYABLE:
            row.payable -= balance.balance
        elif account.role == AccountRole.VOUCHER_RECEIVABLE:
            row.voucher_receivable += balance.balance
    ordered = sorted(rows.values(), key=lambda row: (row.organization.name.lower(), row.currency))
    return ordered, [platform[currency] for currency in sorted(platform)]
