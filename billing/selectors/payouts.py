"""Reads of payouts and voucher claims, scoped to the acting organization: a center sees its own payouts, a sponsor
its own claims, the platform operator everything (its finance pages); anyone else nothing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Forbidden, NotFound
from accounts.models import OrganizationKind
from accounts.selectors import as_uuid
from billing.models import (
    BillingPeriod,
    ExceptionKind,
    ExceptionStatus,
    PaymentProfile,
    Payout,
    PayoutBatch,
    PayoutStatus,
    PeriodStatus,
    ReconciliationException,
    Statement,
    VoucherClaim,
    VoucherClaimStatus,
)
from billing.periods_calendar import parse_label
from billing.services.payouts import BANK, STRIPE, claim_reference, payout_reference
from marketplace.money import format_money

ZERO = Decimal(0)


def _kind(actor: Actor) -> str:
    return actor.organization.kind


def payout_list(actor: Actor, *, period: str | None = None, status: str | None = None) -> QuerySet[Payout]:
    """A center's payouts (the operator: every center's), newest period first."""
    queryset = Payout.objects.select_related("center", "statement__period", "batch", "period")
    kind = _kind(actor)
    if kind == OrganizationKind.CENTER:
        queryset = queryset.filter(center=actor.organization)
    elif kind != OrganizationKind.OPERATOR:
        return queryset.none()
    if period:
        queryset = queryset.filter(statement__period__start=parse_label(period))
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-statement__period__start", "center__name", "currency", "pk")


def payout_get(actor: Actor, payout_id: Any) -> Payout:
    payout = payout_list(actor).filter(pk=as_uuid(payout_id)).first()
    if payout is None:
        raise NotFound(_("No such payout."))
    return payout


def payout_of_statement(statement: Statement) -> Payout | None:
    return Payout.objects.filter(statement=statement).select_related("batch").first()


def _require_operator(actor: Actor) -> None:
    if _kind(actor) != OrganizationKind.OPERATOR:
        raise Forbidden(_("Only the platform operator sees every center's payouts."), code="wrong_organization_kind")


# --- the operator's payouts pages ---------------------------------------------------------------------------------


@dataclass
class Amounts:
    """Money per currency (due, paid, ...), shown side by side."""

    by_currency: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, currency: str, amount: Decimal) -> None:
        self.by_currency[currency] += amount

    @property
    def items(self) -> list[tuple[str, Decimal]]:
        return sorted(self.by_currency.items())


@dataclass
class PeriodSummary:
    period: BillingPeriod
    statements: int = 0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    due: Amounts = field(default_factory=Amounts)
    paid: Amounts = field(default_factory=Amounts)
    without_payout: int = 0
    claims_outstanding: Amounts = field(default_factory=Amounts)

    @property
    def label(self) -> str:
        return self.period.label


def payout_periods(actor: Actor) -> list[PeriodSummary]:
    """Every closed period, newest first, with what its statements owe centers and what was paid of it."""
    _require_operator(actor)
    periods = list(BillingPeriod.objects.filter(status=PeriodStatus.CLOSED).order_by("-start"))
    summaries = {p.pk: PeriodSummary(period=p) for p in periods}
    paid_statements = set()
    for payout in Payout.objects.filter(statement__period__in=periods).values(
        "statement_id", "statement__period_id", "status", "currency", "amount"
    ):
        summary = summaries[payout["statement__period_id"]]
        summary.counts[payout["status"]] += 1
        if payout["status"] == PayoutStatus.PAID:
            summary.paid.add(payout["currency"], payout["amount"])
        paid_statements.add(payout["statement_id"])
    for statement in Statement.objects.filter(period__in=periods).values("pk", "period_id", "currency", "net_payout"):
        summary = summaries[statement["period_id"]]
        summary.statements += 1
        if statement["net_payout"] > 0:
            summary.due.add(statement["currency"], statement["net_payout"])
            if statement["pk"] not in paid_statements:
                summary.without_payout += 1
    for claim in VoucherClaim.objects.filter(period__in=periods, status=VoucherClaimStatus.OPEN).values(
        "period_id", "currency", "amount"
    ):
        summaries[claim["period_id"]].claims_outstanding.add(claim["currency"], claim["amount"])
    return [summaries[p.pk] for p in periods]


@dataclass
class StatementRow:
    statement: Statement
    payout: Payout | None
    reference: str = ""
    # Why a statement has no payout (nothing to pay), or why a payout waits (no bank details).
    note: str = ""
    exception: ReconciliationException | None = None


@dataclass
class PeriodPayouts:
    period: BillingPeriod
    rows: list[StatementRow]
    batches: list[PayoutBatch]
    claims: list[tuple[VoucherClaim, str]]
    to_create: int = 0
    stripe_to_send: int = 0
    bank_ready: int = 0
    bank_missing: int = 0


def payout_period(actor: Actor, label: str) -> PeriodPayouts:
    """One period's statements with their payouts (or why none), bank files and voucher claims."""
    _require_operator(actor)
    period = BillingPeriod.objects.filter(start=parse_label(label)).first()
    if period is None:
        raise NotFound(_("No such billing period."))
    statements = list(
        Statement.objects.filter(period=period).select_related("center", "period").order_by("center__name", "currency")
    )
    payouts = {
        p.statement_id: p
        for p in Payout.objects.filter(statement__in=statements).select_related("batch", "period", "center")
    }
    profiles = {
        p.organization_id: p
        for p in PaymentProfile.objects.filter(organization_id__in={s.center_id for s in statements})
    }
    open_failures = {
        e.payout_id: e
        for e in ReconciliationException.objects.filter(
            kind=ExceptionKind.PAYOUT_FAILED, status=ExceptionStatus.OPEN, payout__in=list(payouts.values())
        )
    }
    result = PeriodPayouts(period=period, rows=[], batches=[], claims=[])
    for statement in statements:
        payout = payouts.get(statement.pk)
        row = StatementRow(statement=statement, payout=payout)
        if payout is None:
            if statement.net_payout <= 0:
                row.note = _(
                    "Nothing to pay: credit notes took back as much as the center earned (net payout %(net)s)."
                ) % {"net": f"{format_money(statement.net_payout, statement.currency)} {statement.currency}"}
            elif statement.status != "issued":
                row.note = _("Already paid out.")
            else:
                result.to_create += 1
        else:
            row.reference = payout_reference(payout)
            row.exception = open_failures.get(payout.pk)
            profile = profiles.get(statement.center_id)
            if payout.method == STRIPE and payout.status in (PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT):
                if not payout.stripe_transfer:
                    result.stripe_to_send += 1
            elif payout.method == BANK and payout.status == PayoutStatus.PENDING and payout.batch_id is None:
                if profile is None or not profile.bank_account_number.strip():
                    row.note = _("Waiting for the center's bank account details.")
                    result.bank_missing += 1
                else:
                    result.bank_ready += 1
        result.rows.append(row)
    # By number (`PB-<period>-…`), not through its payouts: a payout retried after failing leaves its file, which
    # stays listed as it was handed to the bank.
    result.batches = list(
        PayoutBatch.objects.filter(number__startswith=f"PB-{period.label}-").order_by("-created_at", "-number")
    )
    result.claims = [
        (claim, claim_reference(claim))
        for claim in VoucherClaim.objects.filter(period=period)
        .select_related("sponsor", "period")
        .order_by("sponsor__name", "currency")
    ]
    return result


# --- a sponsor's claims -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimSummaryRow:
    period: str
    currency: str
    owed: Decimal
    paid: Decimal
    outstanding: Decimal


@dataclass
class ClaimSummary:
    rows: list[ClaimSummaryRow]
    totals: list[ClaimSummaryRow]


def voucher_claims_summary(actor: Actor) -> ClaimSummary:
    """Per period and currency, what the acting sponsor owes the platform, what it paid and what is outstanding,
    newest period first; with totals per currency."""
    if _kind(actor) != OrganizationKind.SPONSOR:
        raise Forbidden(_("Voucher claims belong to sponsors."), code="wrong_organization_kind")
    rows = []
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    for claim in (
        VoucherClaim.objects.filter(sponsor=actor.organization)
        .select_related("period")
        .order_by("-period__start", "currency")
    ):
        paid = claim.amount if claim.status == VoucherClaimStatus.PAID else ZERO
        rows.append(ClaimSummaryRow(claim.period.label, claim.currency, claim.amount, paid, claim.amount - paid))
        totals[claim.currency][0] += claim.amount
        totals[claim.currency][1] += paid
    return ClaimSummary(
        rows=rows,
        totals=[
            ClaimSummaryRow("", currency, owed, paid, owed - paid) for currency, (owed, paid) in sorted(totals.items())
        ],
    )
