"""Reads of settlement data, scoped to the acting organization: a consumer sees its own invoices and credit notes,
a center its own statements (and the invoice lines behind them), the platform operator everything. Another
organization's object is a 404, exactly like a missing one. The upcoming invoice is computed on read: nothing is
stored."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Prefetch, QuerySet, Sum
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import InvalidInput, NotFound
from accounts.models import Organization, OrganizationKind
from accounts.selectors import as_uuid
from billing.models import (
    BillingPeriod,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LedgerAccount,
    PeriodStatus,
    Statement,
)
from billing.periods_calendar import label, month_start, next_month, parse_label, previous_month
from billing.services.rating import BookingFacts, Charge, rate_period
from billing.services.vouchers import grant_for_invoice, program_admits, related_party_ids, voucher_share
from marketplace.money import round_money

ZERO = Decimal(0)


def is_operator(actor: Actor) -> bool:
    return actor.organization.kind == OrganizationKind.OPERATOR


def _period_filter(queryset: QuerySet, period: str | None, field_name: str = "period__start") -> QuerySet:
    if period:
        return queryset.filter(**{field_name: parse_label(period)})
    return queryset


# --- periods ----------------------------------------------------------------------------------------------------


def period_list() -> QuerySet[BillingPeriod]:
    return BillingPeriod.objects.order_by("-start")


def period_get(period: str) -> BillingPeriod:
    found = BillingPeriod.objects.filter(start=parse_label(period)).first()
    if found is None:
        raise NotFound(_("No such billing period."))
    return found


# --- invoices ---------------------------------------------------------------------------------------------------


def _invoices() -> QuerySet[Invoice]:
    return Invoice.objects.select_related("consumer", "period", "redemption__grant__program__sponsor")


def invoice_list(actor: Actor, *, period: str | None = None, status: str | None = None) -> QuerySet[Invoice]:
    """A consumer's invoices (the operator: everyone's), newest period first."""
    queryset = _invoices() if is_operator(actor) else _invoices().filter(consumer=actor.organization)
    if status:
        if status not in InvoiceStatus.values:
            raise InvalidInput(
                _("Unknown invoice status “%(s)s”.") % {"s": status},
                errors={"status": [_("Choose from: %(all)s.") % {"all": ", ".join(InvoiceStatus.values)}]},
            )
        queryset = queryset.filter(status=status)
    return _period_filter(queryset, period).order_by("-period__start", "consumer__name", "currency")


def invoice_get(actor: Actor, invoice_id: Any) -> Invoice:
    queryset = _invoices() if is_operator(actor) else _invoices().filter(consumer=actor.organization)
    invoice = (
        queryset.prefetch_related(
            Prefetch(
                "lines",
                queryset=InvoiceLine.objects.select_related(
                    "booking__offering__accelerator", "center", "usage_period"
                ).order_by("id"),
            )
        )
        .filter(pk=as_uuid(invoice_id))
        .first()
    )
    if invoice is None:
        raise NotFound(_("No such invoice."))
    return invoice


def credit_notes_of(invoice: Invoice) -> QuerySet[CreditNote]:
    return invoice.credit_notes.prefetch_related("lines").order_by("issued_at")


def credited_total(invoice: Invoice) -> Decimal:
    return invoice.credit_notes.aggregate(total=Sum("total"))["total"] or ZERO


def credit_note_list(actor: Actor) -> QuerySet[CreditNote]:
    queryset = CreditNote.objects.select_related("invoice", "consumer", "period")
    if not is_operator(actor):
        queryset = queryset.filter(consumer=actor.organization)
    return queryset.order_by("-issued_at")


# --- the upcoming invoice ---------------------------------------------------------------------------------------


@dataclass
class UpcomingLine:
    charge: Charge
    amount: Decimal
    voucher_eligible: bool


@dataclass
class UpcomingInvoice:
    """The open period so far, as its invoice would be if the period closed now (computed on read)."""

    period: str
    currency: str
    lines: list[UpcomingLine] = field(default_factory=list)
    voucher_amount: Decimal = ZERO
    voucher_program: str | None = None
    as_of: datetime | None = None

    @property
    def subtotal(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.voucher_amount


def upcoming_period_start(now: datetime, period: str | None = None) -> datetime:
    """The month the upcoming invoice covers: the current one, or a named month that is not closed yet."""
    if period is None:
        return month_start(now)
    start = parse_label(period)
    if start > month_start(now):
        raise InvalidInput(_("That month has not started yet."), code="invalid_period", errors={"period": [period]})
    if BillingPeriod.objects.filter(start=start, status=PeriodStatus.CLOSED).exists():
        raise InvalidInput(
            _("%(period)s is closed: its invoice is issued.") % {"period": label(start)},
            code="period_closed",
            errors={"period": [period]},
        )
    return start


def upcoming_invoices(actor: Actor, *, now: datetime, period: str | None = None) -> list[UpcomingInvoice]:
    """What the acting consumer's invoices for the open period would hold if it closed now, one per currency."""
    start = upcoming_period_start(now, period)
    end = next_month(start)
    previous = BillingPeriod.objects.filter(start=previous_month(start), status=PeriodStatus.CLOSED).first()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        cutoff = cursor.fetchone()[0]
    rating = rate_period(
        start=start,
        end=end,
        cutoff=cutoff,
        previous_cutoff=previous.usage_cutoff if previous else None,
        completes_until=now,
        consumer_id=actor.organization.pk,
    )
    by_currency: dict[str, list[Charge]] = defaultdict(list)
    for charge in rating.sorted():
        by_currency[charge.currency].append(charge)
    related = related_party_ids(actor.organization) if by_currency else set()
    result = []
    for currency, charges in sorted(by_currency.items()):
        upcoming = UpcomingInvoice(period=label(start), currency=currency, as_of=now)
        priced = [(charge, charge.amount) for charge in charges]
        grant = grant_for_invoice(
            consumer_id=actor.organization.pk, currency=currency, start=start, end=end, lock=False
        )
        share = None
        if grant is not None:
            share = voucher_share(
                grant=grant, lines=[(c.booking, amount) for c, amount in priced], related=related, currency=currency
            )
        for charge, amount in priced:
            eligible = grant is not None and program_admits(grant.program, charge.booking, related)
            upcoming.lines.append(UpcomingLine(charge=charge, amount=amount, voucher_eligible=eligible))
        if share is not None:
            upcoming.voucher_amount = share.amount
            upcoming.voucher_program = grant.program.name
        result.append(upcoming)
    return result


def voucher_estimate(
    *, consumer: Organization | None, offering, amount: Decimal, currency: str, start: datetime
) -> Decimal:
    """What the consumer's applicable voucher would cover of a quote's amount (rule 5, this booking alone)."""
    zero = round_money(ZERO, currency)
    if consumer is None or not consumer.is_consumer or amount <= 0:
        return zero
    month = month_start(start)
    grant = grant_for_invoice(
        consumer_id=consumer.pk, currency=currency, start=month, end=next_month(month), lock=False
    )
    if grant is None:
        return zero
    facts = BookingFacts(
        id=uuid.uuid4(),
        consumer_id=consumer.pk,
        center_id=offering.center_id,
        devices=0,
        start=start,
        end=start,
        status="confirmed",
        cancelled_at=None,
        unit_price=offering.price_per_device_hour,
        currency=currency,
        min_commit_fraction=ZERO,
        booked_seconds=ZERO,
        voucher_eligible=offering.voucher_eligible,
        vendor=offering.accelerator.vendor,
        domestic=offering.accelerator.domestic,
        accelerator=offering.accelerator.model,
        region=offering.site.region,
        center_name="",
    )
    share = voucher_share(grant=grant, lines=[(facts, amount)], related=related_party_ids(consumer), currency=currency)
    return share.amount if share else zero


# --- statements -------------------------------------------------------------------------------------------------


def _statements() -> QuerySet[Statement]:
    return Statement.objects.select_related("center", "period")


def statement_list(actor: Actor, *, period: str | None = None) -> QuerySet[Statement]:
    """A center's statements (the operator: every center's), newest period first."""
    queryset = _statements() if is_operator(actor) else _statements().filter(center=actor.organization)
    return _period_filter(queryset, period).order_by("-period__start", "center__name", "currency")


def statement_get(actor: Actor, statement_id: Any) -> Statement:
    queryset = _statements() if is_operator(actor) else _statements().filter(center=actor.organization)
    statement = queryset.filter(pk=as_uuid(statement_id)).first()
    if statement is None:
        raise NotFound(_("No such statement."))
    return statement


def _lines_of(statements: list[Statement]) -> QuerySet[InvoiceLine]:
    return (
        InvoiceLine.objects.filter(
            center_id__in={s.center_id for s in statements},
            invoice__period_id__in={s.period_id for s in statements},
            invoice__currency__in={s.currency for s in statements},
        )
        .select_related("invoice__consumer", "booking__offering", "usage_period")
        .order_by("invoice__consumer__name", "id")
    )


def _credit_lines_of(statements: list[Statement]) -> QuerySet[CreditNoteLine]:
    return (
        CreditNoteLine.objects.filter(
            center_id__in={s.center_id for s in statements},
            credit_note__period_id__in={s.period_id for s in statements},
            credit_note__currency__in={s.currency for s in statements},
        )
        .select_related("credit_note__invoice", "credit_note__consumer", "invoice_line__booking")
        .order_by("id")
    )


def statement_lines(statement: Statement) -> QuerySet[InvoiceLine]:
    """The invoice lines a statement's gross adds up: the center's lines on the period's invoices."""
    return _lines_of([statement])


def statement_credit_lines(statement: Statement) -> QuerySet[CreditNoteLine]:
    return _credit_lines_of([statement])


@dataclass(frozen=True)
class StatementLines:
    lines: list[InvoiceLine]
    credit_lines: list[CreditNoteLine]


def statements_lines(statements: list[Statement]) -> dict[Any, StatementLines]:
    """`statement_lines` and `statement_credit_lines` of many statements (a page of a list) in two queries."""
    found = {s.pk: StatementLines([], []) for s in statements}
    if not statements:
        return found
    by_key = {(s.center_id, s.period_id, s.currency): s.pk for s in statements}
    for line in _lines_of(statements):
        key = by_key.get((line.center_id, line.invoice.period_id, line.invoice.currency))
        if key is not None:
            found[key].lines.append(line)
    for line in _credit_lines_of(statements):
        key = by_key.get((line.center_id, line.credit_note.period_id, line.credit_note.currency))
        if key is not None:
            found[key].credit_lines.append(line)
    return found


# --- the ledger -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountBalance:
    account: LedgerAccount
    debits: Decimal
    credits: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debits - self.credits


_BALANCES = """
SELECT a.id,
       coalesce(sum(l.amount) FILTER (WHERE l.amount > 0), 0) AS debits,
       coalesce(-sum(l.amount) FILTER (WHERE l.amount < 0), 0) AS credits
FROM billing_ledgeraccount a
LEFT JOIN billing_journalline l ON l.account_id = a.id
{where}
GROUP BY a.id
"""


def account_balances(
    *, organization: Organization | None = None, until: datetime | None = None
) -> list[AccountBalance]:
    """Debits, credits and balance of every account (or one organization's), optionally as of an instant."""
    where, params = [], []
    if organization is not None:
        where.append("a.organization_id = %s")
        params.append(organization.pk)
    if until is not None:
        where.append("l.entry_id IN (SELECT id FROM billing_journalentry WHERE posted_at <= %s)")
        params.append(until)
    sql = _BALANCES.format(where=("WHERE " + " AND ".join(where)) if where else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    accounts = LedgerAccount.objects.select_related("organization").in_bulk([row[0] for row in rows])
    balances = [AccountBalance(accounts[account_id], debits, credits) for account_id, debits, credits in rows]
    return sorted(
        balances,
        key=lambda b: (
            b.account.currency,
            b.account.organization.name if b.account.organization else "",
            b.account.role,
        ),
    )


@dataclass(frozen=True)
class TrialBalance:
    currency: str
    debits: Decimal
    credits: Decimal
    accounts: list[AccountBalance]

    @property
    def difference(self) -> Decimal:
        return self.debits - self.credits


def trial_balance(*, until: datetime | None = None) -> list[TrialBalance]:
    """Per currency: every account's debits and credits, and their totals (which must be equal)."""
    per_currency: dict[str, list[AccountBalance]] = defaultdict(list)
    for balance in account_balances(until=until):
        per_currency[balance.account.currency].append(balance)
    return [
        TrialBalance(
            currency=currency,
            debits=sum((b.debits for b in balances), ZERO),
            credits=sum((b.credits for b in balances), ZERO),
            accounts=balances,
        )
        for currency, balances in sorted(per_currency.items())
    ]


def organization_balances(actor: Actor) -> list[AccountBalance]:
    """The acting organization's own accounts: what it owes the platform or is owed by it."""
    return account_balances(organization=actor.organization)
