"""Reads of the reconciliation workbench (operator finance only): a period's reconciliation at a glance, imported
statements and their lines, the exceptions queue, and what an exception's money could be matched to.

Every selector takes the acting organization: these are everyone's books, so anyone but the operator gets a 404
(the pages' `operator_required` already refuses them with a 403 earlier)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet

from accounts.actor import Actor
from accounts.errors import NotFound
from accounts.models import Organization, OrganizationKind
from billing.models import (
    BankLineStatus,
    BankStatement,
    BankStatementLine,
    BillingPeriod,
    ExceptionStatus,
    Invoice,
    InvoiceStatus,
    MatchStatus,
    PeriodStatus,
    ReconciliationException,
    ReconciliationMatch,
)
from billing.periods_calendar import month_start, next_month, parse_label
from billing.services.payments import amount_tolerance, invoice_outstanding, lock_refusal
from billing.services.periods import period_for


def _operator(actor: Actor) -> None:
    if actor.organization.kind != OrganizationKind.OPERATOR:
        raise NotFound(_not_found())


def _not_found() -> str:
    from django.utils.translation import gettext as _

    return _("Not found.")


@dataclass(frozen=True)
class PeriodReconciliation:
    period: BillingPeriod
    lines: dict[str, int]  # bank lines booked in the month, by status
    proposed: int  # proposed matches waiting for finance
    open_exceptions: int
    refusal: str | None  # why it cannot be locked, or None (lockable, or locked already)

    @property
    def label(self) -> str:
        return self.period.label

    @property
    def line_total(self) -> int:
        return sum(self.lines.values())


def reconcile_periods(actor: Actor, *, now: datetime, count: int = 6) -> list[BillingPeriod]:
    """The months to choose from: the current one and those before it that have anything (closed or with bank
    lines), newest first."""
    _operator(actor)
    current = period_for(month_start(now))
    earlier = BillingPeriod.objects.filter(start__lt=current.start).filter(
        Q(status=PeriodStatus.CLOSED) | Q(invoices__isnull=False)
    )
    return [current, *earlier.distinct().order_by("-start")[: count - 1]]


def default_period(actor: Actor, *, now: datetime) -> BillingPeriod:
    """The month finance reconciles next: the oldest closed month not locked yet, else the current month."""
    _operator(actor)
    waiting = BillingPeriod.objects.filter(status=PeriodStatus.CLOSED, locked_at__isnull=True).order_by("start").first()
    return waiting or period_for(month_start(now))


def period_by_label(actor: Actor, text: str) -> BillingPeriod:
    _operator(actor)
    try:
        start = parse_label(text)
    except Exception as exc:  # an invalid label is as missing as an unknown month
        raise NotFound(_not_found()) from exc
    period = BillingPeriod.objects.filter(start=start).first()
    if period is None:
        raise NotFound(_not_found())
    return period


def period_reconciliation(actor: Actor, period: BillingPeriod) -> PeriodReconciliation:
    _operator(actor)
    start, end = period.start.date(), next_month(period.start).date()
    lines = dict(
        BankStatementLine.objects.filter(booked_on__gte=start, booked_on__lt=end)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    proposed = ReconciliationMatch.objects.filter(
        status=MatchStatus.PROPOSED, bank_line__booked_on__gte=start, bank_line__booked_on__lt=end
    ).count()
    open_exceptions = ReconciliationException.objects.filter(period=period, status=ExceptionStatus.OPEN).count()
    refusal = None if period.locked_at else lock_refusal(period)
    return PeriodReconciliation(
        period=period,
        lines={status: lines.get(status, 0) for status in BankLineStatus.values},
        proposed=proposed,
        open_exceptions=open_exceptions,
        refusal=refusal,
    )


def statement_list(actor: Actor, limit: int = 20) -> QuerySet[BankStatement]:
    _operator(actor)
    return BankStatement.objects.annotate(
        matched=Count("lines", filter=Q(lines__status=BankLineStatus.MATCHED)),
        proposed=Count("lines", filter=Q(lines__status=BankLineStatus.PROPOSED)),
        unmatched=Count("lines", filter=Q(lines__status=BankLineStatus.UNMATCHED)),
    ).order_by("-uploaded_at")[:limit]


def statement_get(actor: Actor, statement_id: Any) -> BankStatement:
    _operator(actor)
    try:
        statement = BankStatement.objects.filter(pk=statement_id).first()
    except Exception as exc:  # not a UUID
        raise NotFound(_not_found()) from exc
    if statement is None:
        raise NotFound(_not_found())
    return statement


def statement_lines(actor: Actor, statement: BankStatement) -> QuerySet[BankStatementLine]:
    _operator(actor)
    return statement.lines.order_by("line_number").prefetch_related("matches__invoice", "exceptions")


def proposed_matches(actor: Actor, limit: int = 50) -> QuerySet[ReconciliationMatch]:
    _operator(actor)
    return (
        ReconciliationMatch.objects.filter(status=MatchStatus.PROPOSED)
        .select_related("bank_line", "invoice__consumer", "stripe_payout")
        .order_by("bank_line__booked_on", "bank_line_id", "id")[:limit]
    )


def exception_list(
    actor: Actor, *, status: str = "open", kind: str = "", period: BillingPeriod | None = None
) -> QuerySet[ReconciliationException]:
    _operator(actor)
    found = ReconciliationException.objects.select_related("period", "consumer", "bank_line", "invoice", "payment")
    if status:
        found = found.filter(status=status)
    if kind:
        found = found.filter(kind=kind)
    if period is not None:
        found = found.filter(period=period)
    return found.order_by("opened_at", "id")


def exception_get(actor: Actor, exception_id: Any) -> ReconciliationException:
    _operator(actor)
    try:
        exception = (
            ReconciliationException.objects.select_related(
                "period", "consumer", "bank_line__statement", "invoice__consumer", "payment__consumer", "payout"
            )
            .filter(pk=int(exception_id))
            .first()
        )
    except (TypeError, ValueError):
        exception = None
    if exception is None:
        raise NotFound(_not_found())
    return exception


@dataclass(frozen=True)
class Candidate:
    invoice: Invoice
    outstanding: Decimal
    fits: bool  # within the tolerance of the money to place


def exception_candidates(actor: Actor, exception: ReconciliationException, limit: int = 30) -> list[Candidate]:
    """Open invoices the exception's money could pay: the payer's own when known, else everyone's in the currency;
    those whose outstanding amount fits first."""
    _operator(actor)
    currency = exception.currency or (exception.bank_line.currency if exception.bank_line else "")
    amount = abs(exception.amount or Decimal(0))
    invoices = Invoice.objects.filter(status=InvoiceStatus.FINALIZED, currency=currency).select_related("consumer")
    consumer_id = exception.consumer_id or (exception.payment.consumer_id if exception.payment else None)
    if consumer_id:
        invoices = invoices.filter(consumer_id=consumer_id)
    tolerance = amount_tolerance(currency) if currency else Decimal(0)
    found = []
    for invoice in invoices.order_by("due_at", "number")[:200]:
        outstanding = invoice_outstanding(invoice)
        if outstanding > 0:
            found.append(Candidate(invoice, outstanding, abs(outstanding - amount) <= tolerance))
    found.sort(key=lambda c: (not c.fits, c.invoice.due_at or c.invoice.issued_at))
    return found[:limit]


def exception_proposals(actor: Actor, exception: ReconciliationException) -> list[ReconciliationMatch]:
    _operator(actor)
    if exception.bank_line_id is None:
        return []
    return list(
        ReconciliationMatch.objects.filter(bank_line_id=exception.bank_line_id)
        .select_related("invoice__consumer", "stripe_payout")
        .order_by("id")
    )


def consumer_choices(actor: Actor) -> list[Organization]:
    _operator(actor)
    return list(
        Organization.objects.exclude(
            kind__in=[OrganizationKind.OPERATOR, OrganizationKind.CENTER, OrganizationKind.SPONSOR]
        ).order_by("name")
    )


def small_remainders(actor: Actor, limit: int = 50) -> list[Candidate]:
    """Finalized invoices paid all but a small remainder (within the tolerance: bank charges, rounding by the
    payer), which finance may write off. Such a payment raises no exception, so the workbench lists them."""
    _operator(actor)
    found = []
    invoices = (
        Invoice.objects.filter(status=InvoiceStatus.FINALIZED, allocations__isnull=False)
        .distinct()
        .select_related("consumer")
        .order_by("due_at", "number")
    )
    for invoice in invoices[:500]:
        outstanding = invoice_outstanding(invoice)
        if 0 < outstanding <= amount_tolerance(invoice.currency):
            found.append(Candidate(invoice, outstanding, True))
            if len(found) >= limit:
                break
    return found
