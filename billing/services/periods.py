"""Closing a billing period: rate its usage, issue invoices, apply vouchers, issue center statements and voucher
claims, post the ledger, and check that the totals reconcile (billing rules 1–7) — all in one transaction.

`period_close` is idempotent and safe under concurrency and crashes:
- its first, short transaction moves the period open → closing and takes the usage cutoff (billing.gate);
- its second transaction locks the period row, does everything else and marks it closed. A second close waits on
  the lock and then finds it closed (no effect); a close killed halfway rolls back to "closing" with its cutoff
  kept, and a rerun completes it with the same cutoff, so the books it writes are the same.
Rule 7 is checked before the commit: a mismatch rolls everything back.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Sum
from django.utils.translation import gettext as _

from accounts.errors import RuleViolation
from accounts.models import Organization, OrganizationKind
from accounts.services import audit_record
from billing.gate import usage_gate_cutoff
from billing.models import (
    AccountRole,
    BillingPeriod,
    CreditNoteLine,
    GrantStatus,
    Invoice,
    InvoiceLine,
    PeriodStatus,
    Statement,
    VoucherClaim,
    VoucherProgram,
    VoucherRedemption,
)
from billing.periods_calendar import label, month_start, next_month, previous_month
from billing.services.ledger import Entry, credit, debit, journal_post_many
from billing.services.rating import Charge, rate_period
from billing.services.vouchers import grants_for_invoices, program_admits, related_parties_of, voucher_share
from billing.sql import array_literal, text_array_literal
from marketplace.models import Booking
from marketplace.money import format_money, round_money
from marketplace.realtime import send_to_organizations

logger = logging.getLogger(__name__)
ZERO = Decimal(0)


class PeriodNotEnded(RuleViolation):
    default_code = "period_open"


class EarlierPeriodOpen(RuleViolation):
    default_code = "earlier_period_open"


class TotalsDoNotReconcile(RuntimeError):
    """Rule 7 failed: a programming error; the close is rolled back."""


def period_for(start: datetime) -> BillingPeriod:
    """The period of the month starting at `start`, created (open) on first use."""
    start = month_start(start)
    period, _created = BillingPeriod.objects.get_or_create(start=start, defaults={"end": next_month(start)})
    return period


def current_period(now: datetime) -> BillingPeriod:
    return period_for(month_start(now))


def first_billable_month() -> datetime | None:
    """The first month anything can be billed in: that of the earliest confirmed booking's start."""
    first = Booking.objects.filter(confirmed_at__isnull=False).aggregate(first=Min("start"))["first"]
    return month_start(first) if first else None


def unclosed_before(start: datetime) -> datetime | None:
    """The earliest month before `start` that has billable activity and is not closed, if any."""
    first = first_billable_month()
    if first is None or first >= start:
        return None
    closed = set(
        BillingPeriod.objects.filter(start__gte=first, start__lt=start, status=PeriodStatus.CLOSED).values_list(
            "start", flat=True
        )
    )
    month = first
    while month < start:
        if month not in closed:
            return month
        month = next_month(month)
    return None


def fee_rate_for(center: Organization) -> Decimal:
    return center.platform_fee_rate if center.platform_fee_rate is not None else settings.PLATFORM_FEE_RATE


def vat_portion(amount: Decimal, currency: str) -> Decimal:
    """The VAT contained in a tax-inclusive amount at the issuer's rate: round(amount × rate / (1 + rate))."""
    rate = settings.INVOICE_VAT_RATE
    return round_money(amount * rate / (1 + rate), currency)


@dataclass
class CloseResult:
    period: BillingPeriod
    already_closed: bool = False
    invoices: int = 0
    statements: int = 0
    claims: int = 0
    redemptions: int = 0
    totals: dict[str, dict[str, str]] = field(default_factory=dict)


def period_close(*, start: datetime, now: datetime, actor_label: str = "system") -> CloseResult:
    """Close the period of the month starting at `start`. Refuses a month that has not ended, or one with an
    earlier month still open; closing a closed period changes nothing."""
    period = period_for(start)
    if period.status == PeriodStatus.CLOSED:
        return CloseResult(period=period, already_closed=True)
    refusal = close_refusal(period.start, now)
    if refusal is not None:
        raise refusal
    _begin_closing(period, now)
    with transaction.atomic():
        period = BillingPeriod.objects.select_for_update().get(pk=period.pk)
        if period.status == PeriodStatus.CLOSED:
            return CloseResult(period=period, already_closed=True)
        result = _close_locked(period, now, actor_label)
        # The close issues every invoice and statement of the month: audited under the operator, with no person
        # behind it ("system" for the beat, or the label of the finance clerk whose request the worker runs).
        audit_record(
            action="period.closed",
            organization=Organization.objects.filter(kind=OrganizationKind.OPERATOR).order_by("created_at").first(),
            actor_label=actor_label,
            target=period,
            before={"status": PeriodStatus.OPEN},
            after={
                "period": period.label,
                "invoices": result.invoices,
                "statements": result.statements,
                "claims": result.claims,
                "totals": result.totals,
            },
            now=now,
        )
    logger.info(
        "period.closed",
        extra={"period": period.label, "invoices": result.invoices, "statements": result.statements},
    )
    return result


def close_refusal(start: datetime, now: datetime) -> RuleViolation | None:
    """Why the month starting at `start` cannot be closed now, as the error `period_close` raises, or None. Callers
    that queue a close (a page, the API) check it first, so the person hears the refusal instead of a worker."""
    start = month_start(start)
    end = next_month(start)
    if now < end:
        return PeriodNotEnded(
            _("%(period)s has not ended yet: it can be closed from %(end)s (UTC).")
            % {"period": label(start), "end": f"{end:%Y-%m-%d %H:%M}"}
        )
    earlier = unclosed_before(start)
    if earlier is not None:
        return EarlierPeriodOpen(
            _("Close %(earlier)s first: periods close in order.") % {"earlier": label(earlier)},
            extra={"earlier_period": label(earlier)},
        )
    return None


def _begin_closing(period: BillingPeriod, now: datetime) -> None:
    """open → closing, with the usage cutoff taken while no upload is in flight. Short: it holds the usage gate."""
    with transaction.atomic():
        locked = BillingPeriod.objects.select_for_update().get(pk=period.pk)
        if locked.status != PeriodStatus.OPEN:
            return
        with connection.cursor() as cursor:
            cutoff = usage_gate_cutoff(cursor)
        locked.status = PeriodStatus.CLOSING
        locked.usage_cutoff = cutoff
        locked.closing_started_at = now
        locked.save(update_fields=["status", "usage_cutoff", "closing_started_at"])
    send_to_organizations(_operator_ids(), {"event": "period.closing", "period": period.label})


def _operator_ids() -> list[Any]:
    return list(Organization.objects.filter(kind="operator").values_list("pk", flat=True))


def _previous_cutoff(period: BillingPeriod) -> datetime | None:
    previous = BillingPeriod.objects.filter(start=previous_month(period.start), status=PeriodStatus.CLOSED).first()
    return previous.usage_cutoff if previous else None


def _close_locked(period: BillingPeriod, now: datetime, actor_label: str) -> CloseResult:
    rating = rate_period(
        start=period.start,
        end=period.end,
        cutoff=period.usage_cutoff,
        previous_cutoff=_previous_cutoff(period),
    )
    result = CloseResult(period=period)
    by_invoice: dict[tuple[uuid.UUID, str], list[Charge]] = defaultdict(list)
    for charge in rating.sorted():
        by_invoice[(charge.consumer_id, charge.currency)].append(charge)

    grants = grants_for_invoices(invoices=by_invoice.keys(), start=period.start, end=period.end)
    related_of = related_parties_of({consumer_id for consumer_id, _currency in grants})
    review_until = now + timedelta(hours=settings.INVOICE_REVIEW_HOURS)
    pending_redemptions: list[tuple[Invoice, Any]] = []
    invoices: list[Invoice] = []
    lines: list[InvoiceLine] = []
    for (consumer_id, currency), charges in sorted(by_invoice.items(), key=lambda item: (str(item[0][0]), item[0][1])):
        priced = [(charge, charge.amount) for charge in charges]
        subtotal = sum((amount for _charge, amount in priced), ZERO)
        grant = grants.get((consumer_id, currency))
        share = None
        if grant is not None:
            related = related_of[consumer_id]
            share = voucher_share(
                grant=grant,
                lines=[(charge.booking, amount) for charge, amount in priced],
                related=related,
                currency=currency,
            )
            eligible_lines = {
                id(charge) for charge, _amount in priced if program_admits(grant.program, charge.booking, related)
            }
        else:
            eligible_lines = set()
        voucher_amount = share.amount if share else ZERO
        invoice = Invoice(
            consumer_id=consumer_id,
            period=period,
            currency=currency,
            subtotal=subtotal,
            voucher_amount=voucher_amount,
            total=subtotal - voucher_amount,
            vat_rate=settings.INVOICE_VAT_RATE,
            vat_amount=vat_portion(subtotal, currency),
            issued_at=now,
            finalize_after=review_until,
        )
        invoices.append(invoice)
        for charge, amount in priced:
            lines.append(
                InvoiceLine(
                    invoice=invoice,
                    booking_id=charge.booking.id,
                    center_id=charge.center_id,
                    kind=charge.kind,
                    late=charge.late,
                    usage_period_id=charge.usage_period_id,
                    device_seconds=charge.device_seconds,
                    unit_price=charge.unit_price,
                    amount=amount,
                    voucher_eligible=id(charge) in eligible_lines,
                    description=describe_charge(charge),
                )
            )
        if share is not None:
            pending_redemptions.append((invoice, share))
    Invoice.objects.bulk_create(invoices)
    _insert_lines(lines)
    result.invoices = len(invoices)

    claims = _redeem(period, pending_redemptions, now)
    result.claims = len(claims)
    result.redemptions = len(pending_redemptions)
    statements = _issue_statements(period, lines, now)
    result.statements = len(statements)
    _post_ledger(period, invoices, lines, pending_redemptions, statements, now)
    result.totals = _check_rule_7(period)

    period.status = PeriodStatus.CLOSED
    period.closed_at = now
    period.closed_by = actor_label[:254]
    period.save(update_fields=["status", "closed_at", "closed_by"])
    send_to_organizations(
        _operator_ids(),
        {"event": "period.closed", "period": period.label, "invoices": result.invoices},
    )
    return result


_INSERT_LINES = """
INSERT INTO billing_invoiceline
    (invoice_id, booking_id, center_id, kind, late, usage_period_id, device_seconds, unit_price, amount,
     voucher_eligible, description)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::text[], %s::boolean[], %s::bigint[], %s::numeric[],
                     %s::numeric[], %s::numeric[], %s::boolean[], %s::text[])
"""


def _insert_lines(lines: list[InvoiceLine]) -> None:
    """The period's invoice lines in one statement (thousands of rows: a model-by-model bulk insert measured as a
    third of a close). Nothing reads their ids back."""
    if not lines:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_LINES,
            [
                array_literal(line.invoice_id for line in lines),
                array_literal(line.booking_id for line in lines),
                array_literal(line.center_id for line in lines),
                array_literal(line.kind for line in lines),
                array_literal(line.late for line in lines),
                array_literal(line.usage_period_id for line in lines),
                array_literal(line.device_seconds for line in lines),
                array_literal(line.unit_price for line in lines),
                array_literal(line.amount for line in lines),
                array_literal(line.voucher_eligible for line in lines),
                text_array_literal(line.description for line in lines),
            ],
        )


def describe_charge(charge: Charge) -> str:
    """The line text of a charge: what was booked, where, when (the close writes it; the upcoming invoice shows it)."""
    booking = charge.booking
    window = f"{booking.start:%Y-%m-%d %H:%M} – {booking.end:%Y-%m-%d %H:%M} UTC"
    return f"{booking.devices} × {booking.accelerator} · {booking.center_name} · {window}"[:300]


_DRAW_GRANTS = """
UPDATE billing_vouchergrant g SET remaining = v.remaining, status = v.status
FROM unnest(%s::uuid[], %s::numeric[], %s::text[]) AS v(id, remaining, status)
WHERE g.id = v.id
"""


def _redeem(period: BillingPeriod, pending: list[tuple[Invoice, Any]], now: datetime) -> list[VoucherClaim]:
    """Redemptions for the invoices a grant covers, the grants and programs drawn down (under the locks taken by
    grant_for_invoice), and one claim per sponsor and currency."""
    if not pending:
        return []
    sums: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for invoice, share in pending:
        sums[(share.grant.program.sponsor_id, invoice.currency)] += share.amount
    claims = {
        key: VoucherClaim(sponsor_id=key[0], period=period, currency=key[1], amount=amount, issued_at=now)
        for key, amount in sums.items()
    }
    VoucherClaim.objects.bulk_create(claims.values())
    VoucherRedemption.objects.bulk_create(
        VoucherRedemption(
            grant=share.grant,
            invoice=invoice,
            claim=claims[(share.grant.program.sponsor_id, invoice.currency)],
            eligible_amount=share.eligible_amount,
            amount=share.amount,
            created_at=now,
        )
        for invoice, share in pending
    )
    # Programs are locked after grants, in primary-key order, as everywhere.
    per_program: dict[Any, Decimal] = defaultdict(Decimal)
    for _invoice, share in pending:
        per_program[share.grant.program_id] += share.amount
    list(VoucherProgram.objects.select_for_update().filter(pk__in=per_program).order_by("pk"))
    # A grant is in one currency, so it covers at most one invoice of a period: each is drawn down once.
    for _invoice, share in pending:
        grant = share.grant
        grant.remaining -= share.amount
        if grant.remaining == 0:
            grant.status = GrantStatus.EXHAUSTED
    with connection.cursor() as cursor:
        cursor.execute(
            _DRAW_GRANTS,
            [
                array_literal(share.grant.pk for _invoice, share in pending),
                array_literal(share.grant.remaining for _invoice, share in pending),
                array_literal(share.grant.status for _invoice, share in pending),
            ],
        )
    for program_id, amount in per_program.items():
        VoucherProgram.objects.filter(pk=program_id).update(redeemed=F("redeemed") + amount)
    return list(claims.values())


def _issue_statements(period: BillingPeriod, lines: list[InvoiceLine], now: datetime) -> list[Statement]:
    gross: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for line in lines:
        gross[(line.center_id, line.invoice.currency)] += line.amount
    credits: dict[tuple[Any, str], Decimal] = defaultdict(Decimal)
    for center_id, currency, amount in (
        CreditNoteLine.objects.filter(credit_note__period=period)
        .values_list("center_id", "credit_note__currency")
        .annotate(total=Sum("amount"))
    ):
        credits[(center_id, currency)] -= amount
    centers = Organization.objects.in_bulk({center_id for center_id, _currency in gross.keys() | credits.keys()})
    statements = []
    for key in sorted(gross.keys() | credits.keys(), key=lambda k: (str(k[0]), k[1])):
        center_id, currency = key
        rate = fee_rate_for(centers[center_id])
        center_gross = gross.get(key, ZERO)
        fee = round_money(center_gross * rate, currency)
        credit_adjustment = credits.get(key, ZERO)
        fee_adjustment = round_money(credit_adjustment * rate, currency)
        statements.append(
            Statement(
                center_id=center_id,
                period=period,
                currency=currency,
                gross=center_gross,
                fee_rate=rate,
                fee=fee,
                payout=center_gross - fee,
                credit_adjustment=credit_adjustment,
                fee_adjustment=fee_adjustment,
                net_payout=center_gross - fee + credit_adjustment - fee_adjustment,
                issued_at=now,
            )
        )
    Statement.objects.bulk_create(statements)
    return statements


def _post_ledger(
    period: BillingPeriod,
    invoices: list[Invoice],
    lines: list[InvoiceLine],
    redemptions: list[tuple[Invoice, Any]],
    statements: list[Statement],
    now: datetime,
) -> None:
    """One entry per invoice (the consumer owes, the centers are owed), per redemption (the sponsor owes what the
    consumer no longer does) and per statement (the platform's fee out of what the center is owed)."""
    center_shares: dict[uuid.UUID, dict[Any, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for line in lines:
        center_shares[line.invoice.pk][line.center_id] += line.amount
    entries = []
    for invoice in invoices:
        postings = [debit(invoice.consumer_id, AccountRole.RECEIVABLE, invoice.currency, invoice.subtotal)]
        postings += [
            credit(center_id, AccountRole.CENTER_PAYABLE, invoice.currency, amount)
            for center_id, amount in center_shares[invoice.pk].items()
        ]
        entries.append(
            Entry(f"invoice:{invoice.pk}", "invoice", f"Invoice for {period.label} ({invoice.currency})", postings)
        )
    for invoice, share in redemptions:
        sponsor = share.grant.program.sponsor_id
        entries.append(
            Entry(
                f"redemption:{invoice.pk}",
                "redemption",
                f"Voucher {share.grant.program.name} on the {period.label} invoice",
                [
                    debit(sponsor, AccountRole.VOUCHER_RECEIVABLE, invoice.currency, share.amount),
                    credit(invoice.consumer_id, AccountRole.RECEIVABLE, invoice.currency, share.amount),
                ],
            )
        )
    for statement in statements:
        fee = statement.fee + statement.fee_adjustment
        entries.append(
            Entry(
                f"fee:{statement.pk}",
                "fee",
                f"Platform fee on {period.label} ({statement.currency})",
                [
                    debit(statement.center_id, AccountRole.CENTER_PAYABLE, statement.currency, fee),
                    credit(None, AccountRole.FEE_REVENUE, statement.currency, fee),
                ],
            )
        )
    journal_post_many(entries=entries, now=now, period=period)


_TRIAL_BALANCE = "SELECT currency, sum(amount) FROM billing_journalline GROUP BY currency HAVING sum(amount) <> 0"


def _check_rule_7(period: BillingPeriod) -> dict[str, dict[str, str]]:
    """Billing rule 7 for this period, per currency, and a zero trial balance; raises on any mismatch."""
    invoices = {
        row["currency"]: row
        for row in Invoice.objects.filter(period=period)
        .values("currency")
        .annotate(subtotal=Sum("subtotal"), total=Sum("total"), voucher=Sum("voucher_amount"))
    }
    statements = {
        row["currency"]: row
        for row in Statement.objects.filter(period=period)
        .values("currency")
        .annotate(gross=Sum("gross"), fee=Sum("fee"), payout=Sum("payout"))
    }
    claims = {
        row["currency"]: row["amount"]
        for row in VoucherClaim.objects.filter(period=period).values("currency").annotate(amount=Sum("amount"))
    }
    totals: dict[str, dict[str, str]] = {}
    for currency in sorted(invoices.keys() | statements.keys() | claims.keys()):
        invoice = invoices.get(currency, {})
        statement = statements.get(currency, {})
        subtotal = invoice.get("subtotal") or ZERO
        total = invoice.get("total") or ZERO
        gross = statement.get("gross") or ZERO
        fee = statement.get("fee") or ZERO
        payout = statement.get("payout") or ZERO
        claimed = claims.get(currency) or ZERO
        problems = []
        if subtotal != gross:
            problems.append(f"Σ invoice subtotals {subtotal} ≠ Σ statement gross {gross}")
        if total + claimed != subtotal:
            problems.append(f"Σ invoice totals {total} + Σ voucher claims {claimed} ≠ Σ subtotals {subtotal}")
        if fee + payout != gross:
            problems.append(f"Σ fees {fee} + Σ payouts {payout} ≠ Σ gross {gross}")
        if problems:
            raise TotalsDoNotReconcile(f"{period.label} {currency}: " + "; ".join(problems))
        totals[currency] = {
            name: format_money(value, currency)
            for name, value in (
                ("subtotal", subtotal),
                ("total", total),
                ("voucher_claims", claimed),
                ("gross", gross),
                ("fee", fee),
                ("payout", payout),
            )
        }
    with connection.cursor() as cursor:
        cursor.execute(_TRIAL_BALANCE)
        off = cursor.fetchall()
    if off:
        raise TotalsDoNotReconcile(f"the trial balance is not zero: {off}")
    return totals


def periods_close_due(*, now: datetime) -> list[CloseResult]:
    """Close, in order, every period that ended at least the grace for late usage ago (the beat task)."""
    results = []
    grace = timedelta(hours=settings.BILLING_CLOSE_GRACE_HOURS)
    first = first_billable_month()
    if first is None:
        return results
    month = first
    while next_month(month) + grace <= now:
        results.append(period_close(start=month, now=now, actor_label="system"))
        month = next_month(month)
    return results
