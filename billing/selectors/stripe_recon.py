"""Reads of the Stripe reconciliation page: the import runs, the Stripe payouts with what each contains (gross,
fees, net), the bank line it arrived as and its reconciliation state, and the fees booked. Only the platform
operator reads these (its own Stripe account); anyone else is refused."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

from accounts.actor import Actor
from accounts.errors import Forbidden, NotFound
from billing.models import (
    AccountRole,
    ExceptionStatus,
    JournalLine,
    ReconciliationException,
    StripeBalanceTransaction,
    StripeImportRun,
    StripePayout,
)
from billing.selectors.settlement import is_operator
from billing.services.stripe_reconcile import PAYMENT_TYPES, PAYOUT_TYPES, import_running

ZERO = Decimal(0)
RUNS_SHOWN = 10
# Stripe's payout states, as finance reads them (Stripe's own word is shown for any state not listed).
PAYOUT_STATUS_LABELS = {
    "pending": pgettext_lazy("payout status", "Pending"),
    "in_transit": gettext_lazy("In transit"),
    "paid": gettext_lazy("Paid"),
    "failed": gettext_lazy("Failed"),
    "canceled": gettext_lazy("Canceled"),
}
PAYOUTS_SHOWN = 50


def _require_operator(actor: Actor) -> None:
    if not is_operator(actor):
        raise Forbidden(_("Only the platform operator reads its Stripe account."), code="operator_only")


@dataclass(frozen=True)
class ImportState:
    runs: list[StripeImportRun]
    # An import holds the lock right now (the latest run is then the one running).
    running: bool

    @property
    def latest(self) -> StripeImportRun | None:
        return self.runs[0] if self.runs else None


def stripe_import_state(actor: Actor) -> ImportState:
    _require_operator(actor)
    return ImportState(
        runs=list(StripeImportRun.objects.order_by("-started_at", "-id")[:RUNS_SHOWN]), running=import_running()
    )


@dataclass(frozen=True)
class PayoutRow:
    payout: StripePayout
    gross: Decimal
    fees: Decimal
    net: Decimal
    transactions: int
    unlinked: int
    open_exceptions: int

    @property
    def status_label(self) -> str:
        return str(PAYOUT_STATUS_LABELS.get(self.payout.status, self.payout.status))

    @property
    def difference(self) -> Decimal:
        return self.payout.amount - self.net

    @property
    def state(self) -> str:
        """One word for the page: reconciled, failed, waiting (not paid yet), to_check (an open exception), or
        unchecked (paid, its contents not imported yet)."""
        if self.payout.reconciled_at is not None:
            return "reconciled"
        if self.payout.status == "failed":
            return "failed"
        if self.payout.status != "paid":
            return "waiting"
        if self.open_exceptions or self.transactions:
            return "to_check"
        return "unchecked"


def _payout_rows(payouts: QuerySet[StripePayout]) -> list[PayoutRow]:
    """Rows for these payouts: their contents summed per payout in one grouped query (the payout's own balance
    transactions left out), and their open exceptions counted in another."""
    payouts_list = list(payouts.select_related("bank_line", "bank_line__statement"))
    ids = [p.pk for p in payouts_list]
    sums = {
        row["payout_id"]: row
        for row in StripeBalanceTransaction.objects.filter(payout_id__in=ids)
        .exclude(type__in=PAYOUT_TYPES)
        .values("payout_id")
        .annotate(
            gross=Sum("amount"),
            fees=Sum("fee"),
            net=Sum("net"),
            count=Count("id"),
            unlinked=Count("id", filter=Q(type__in=PAYMENT_TYPES, payment__isnull=True)),
        )
    }
    open_by_subject: dict[str, int] = {}
    for subject in ReconciliationException.objects.filter(
        status=ExceptionStatus.OPEN, subject__in=[f"stripe_payout:{pk}" for pk in ids]
    ).values_list("subject", flat=True):
        open_by_subject[subject] = open_by_subject.get(subject, 0) + 1
    empty = {"gross": ZERO, "fees": ZERO, "net": ZERO, "count": 0, "unlinked": 0}
    rows = []
    for payout in payouts_list:
        found = sums.get(payout.pk, empty)
        rows.append(
            PayoutRow(
                payout=payout,
                gross=found["gross"] or ZERO,
                fees=found["fees"] or ZERO,
                net=found["net"] or ZERO,
                transactions=found["count"],
                unlinked=found["unlinked"],
                open_exceptions=open_by_subject.get(f"stripe_payout:{payout.pk}", 0) + found["unlinked"],
            )
        )
    return rows


def stripe_payout_rows(actor: Actor) -> list[PayoutRow]:
    """The latest payouts, newest arrival first, each with its sums and state."""
    _require_operator(actor)
    return _payout_rows(StripePayout.objects.order_by("-arrival_date", "-id")[:PAYOUTS_SHOWN])


def stripe_payout_get(actor: Actor, payout_id: str) -> PayoutRow:
    _require_operator(actor)
    rows = _payout_rows(StripePayout.objects.filter(pk=payout_id))
    if not rows:
        raise NotFound(_("No such Stripe payout."))
    return rows[0]


def stripe_payout_transactions(actor: Actor, payout: StripePayout) -> list[StripeBalanceTransaction]:
    _require_operator(actor)
    return list(
        payout.balance_transactions.select_related("payment", "payment__consumer", "payment__invoice").order_by(
            "-created", "-id"
        )
    )


def stripe_payout_exceptions(actor: Actor, row: PayoutRow) -> list[ReconciliationException]:
    """The exceptions about a payout and about the charges in it (open or resolved)."""
    _require_operator(actor)
    sources = [
        f"stripe_charge:{source}"
        for source in row.payout.balance_transactions.filter(type__in=PAYMENT_TYPES).values_list("source", flat=True)
    ]
    return list(
        ReconciliationException.objects.filter(subject__in=[f"stripe_payout:{row.payout.pk}", *sources]).order_by(
            "opened_at", "id"
        )
    )


@dataclass(frozen=True)
class FeesPosted:
    currency: str
    entries: int
    total: Decimal


def stripe_fees_posted(actor: Actor) -> list[FeesPosted]:
    """Stripe's fees booked so far, per currency: how many balance transactions and their total."""
    _require_operator(actor)
    rows = (
        JournalLine.objects.filter(entry__kind="stripe_fee", account__role=AccountRole.PROCESSING_FEES)
        .values("currency")
        .annotate(entries=Count("entry", distinct=True), total=Sum("amount"))
        .order_by("currency")
    )
    return [FeesPosted(row["currency"], row["entries"], row["total"] or ZERO) for row in rows]
