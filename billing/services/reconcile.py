"""Reconciling the platform's bank account: tying each imported bank line to what it is, and the actions finance takes
on what could not be tied automatically.

Auto-match (after every import, and on demand) looks at each line once it is unmatched:
- money in, by identifier first: invoice numbers (the payment reference on a transfer) in the remittance text
  become one payment applied to them, oldest first; a voucher claim reference marks the sponsor's claim paid; a
  deposit from Stripe is tied to the Stripe payout of the same amount;
- then by amount and date: an open invoice whose outstanding amount is within `RECONCILIATION_TOLERANCE` of the
  line and whose life (finalized … due) is within `RECONCILIATION_DATE_WINDOW_DAYS` of its booking date. One such
  invoice whose consumer's name is the payer's is a confirmed match; otherwise the candidates are only *proposed*
  for finance to confirm (several: with an "ambiguous" exception) — an ambiguous line is never decided here;
- money out: a center's payout by its payout reference (PO-…) or the bank's reference, marked paid;
- nothing found: an "unmatched bank line" exception.
Rerunning it changes nothing: a line already matched, proposed or ignored is skipped, payments are keyed by the
line (`bank_line:<id>`), exceptions are one per kind and line, and a proposal finance rejected is not made again.

Every action of finance (match, split, confirm, reject, write off, credit note, keep as credit, dismiss) is one
service here: it checks the role, does the work in one transaction with the rows locked, resolves the exception
and writes an audit event with who did it and why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from difflib import SequenceMatcher
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, DomainError, InvalidInput, NotFound
from accounts.models import Organization, OrganizationKind
from accounts.services import audit_record
from billing.models import (
    BankLineStatus,
    BankStatementLine,
    CreditNote,
    ExceptionKind,
    ExceptionResolution,
    ExceptionStatus,
    Invoice,
    InvoiceStatus,
    MatchMethod,
    MatchStatus,
    Payment,
    PaymentMethod,
    PayoutStatus,
    ReconciliationException,
    ReconciliationMatch,
    StripePayout,
    VoucherClaim,
    VoucherClaimStatus,
)
from billing.services.invoices import require_platform_finance
from billing.services.payments import (
    allocation_create,
    amount_tolerance,
    credit_apply,
    exception_open,
    exception_resolve,
    invoice_outstanding,
    invoice_settle,
    payment_record,
    payment_unapplied,
    posting_period,
    recorded_transfer_for,
    refund_create,
    refund_post,
    write_off_create,
)
from marketplace.money import format_money
from marketplace.outbox import enqueue_on_commit

logger = logging.getLogger(__name__)
ZERO = Decimal(0)
AUTO = "auto-match"

INVOICE_NUMBER = re.compile(r"INV-\d{4}-\d{2}-\d{6}", re.IGNORECASE)
STRIPE_PAYER = re.compile(r"stripe", re.IGNORECASE)
# Words that say what kind of company a payer is, not which one.
_LEGAL_FORMS = re.compile(
    r"\b(co|company|corp|corporation|inc|ltd|limited|llc|gmbh|plc|the|of|and)\b|有限公司|股份|集团|公司", re.IGNORECASE
)


def claim_reference(claim: VoucherClaim) -> str:
    """The reference a sponsor writes on the transfer paying a voucher claim (billing.services.payouts')."""
    from billing.services.payouts import claim_reference as reference

    return reference(claim)


def _booked_at(line: BankStatementLine) -> datetime:
    return datetime.combine(line.booked_on, time(0), tzinfo=UTC)


def _money(amount: Decimal, currency: str) -> str:
    return f"{format_money(amount, currency)} {currency}"


def _normalized(name: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", _LEGAL_FORMS.sub(" ", name.lower())).split())


def names_alike(payer: str, organization: Organization) -> bool:
    """Whether a bank line's counterparty is plausibly this organization (its name or legal name, ignoring legal
    forms, punctuation and case)."""
    payer = _normalized(payer)
    if len(payer) < 3:
        return False
    for name in {organization.name, organization.legal_name}:
        known = _normalized(name or "")
        if len(known) < 3:
            continue
        if payer == known or payer in known or known in payer:
            return True
        if SequenceMatcher(None, payer, known).ratio() >= 0.8:
            return True
    return False


# --- auto-match ---------------------------------------------------------------------------------------------------


@dataclass
class MatchSummary:
    """What one auto-match run did, per outcome."""

    matched: int = 0
    proposed: int = 0
    unmatched: int = 0
    skipped: int = 0

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict[str, int]:
        return {
            "matched": self.matched,
            "proposed": self.proposed,
            "unmatched": self.unmatched,
            "skipped": self.skipped,
        }


def _match(line: BankStatementLine, now: datetime, *, status: str, method: str, explanation: str, **links: Any):
    decided = status == MatchStatus.CONFIRMED
    return ReconciliationMatch.objects.create(
        bank_line=line,
        amount=abs(line.amount),
        method=method,
        status=status,
        explanation=explanation[:500],
        created_at=now,
        decided_at=now if decided else None,
        decided_by=AUTO if decided else "",
        **links,
    )


def _set_status(line: BankStatementLine, status: str) -> None:
    if line.status != status:
        line.status = status
        line.save(update_fields=["status"])


def _auto_confirmed(
    line: BankStatementLine, now: datetime, *, method: str, explanation: str, note: str, **links
) -> str:
    """Auto-match's confident outcome: a confirmed match, the line's open exceptions resolved, the line matched."""
    _match(line, now, status=MatchStatus.CONFIRMED, method=method, explanation=explanation, **links)
    _resolve_line_exceptions(line, resolution=ExceptionResolution.MATCHED, note=note, actor_label=AUTO, now=now)
    _set_status(line, BankLineStatus.MATCHED)
    return "matched"


def _resolve_line_exceptions(
    line: BankStatementLine, *, resolution: str, note: str, actor_label: str, now: datetime, keep: Any = None
) -> None:
    """The line is explained: its open unmatched/ambiguous exceptions are resolved (all but `keep`, which the
    caller resolves itself)."""
    for exception in ReconciliationException.objects.select_for_update().filter(
        bank_line=line,
        status=ExceptionStatus.OPEN,
        kind__in=[ExceptionKind.UNMATCHED_BANK_LINE, ExceptionKind.AMBIGUOUS_MATCH],
    ):
        if keep is not None and exception.pk == keep.pk:
            continue
        exception_resolve(exception=exception, resolution=resolution, note=note, actor_label=actor_label, now=now)


def _open_unmatched(line: BankStatementLine, now: datetime, detail: str) -> ReconciliationException:
    """Queue an unmatched line; if finance resolved its unmatched exception before (a proposal rejected since), the
    same exception opens again rather than a second one (one per kind and line)."""
    exception = exception_open(
        kind=ExceptionKind.UNMATCHED_BANK_LINE,
        subject=f"bank_line:{line.pk}",
        detail=detail,
        now=now,
        period=posting_period(_booked_at(line)),
        currency=line.currency,
        amount=line.amount,
        bank_line=line,
    )
    if exception.status == ExceptionStatus.RESOLVED:
        exception.status, exception.resolution, exception.resolved_at, exception.resolved_by = "open", "", None, ""
        exception.resolution_note = ""
        exception.detail = detail[:500]
        exception.save(
            update_fields=["status", "resolution", "resolved_at", "resolved_by", "resolution_note", "detail"]
        )
    return exception


def _record_payment(
    line: BankStatementLine, consumer: Organization, invoice: Invoice | None, now: datetime, recorded_by: str
) -> Payment:
    return payment_record(
        consumer=consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency=line.currency,
        amount=line.amount,
        key=f"bank_line:{line.pk}",
        received_at=_booked_at(line),
        now=now,
        invoice=invoice,
        reference=(line.remittance or line.bank_reference)[:200],
        payer_name=line.counterparty,
        recorded_by=recorded_by,
        bank_line=line,
    ).payment


def _split_payment(
    line: BankStatementLine,
    parts: list[tuple[Invoice, Decimal]],
    now: datetime,
    *,
    actor_label: str,
    note: str,
) -> Payment:
    """One payment for the line, applied to several invoices. Recorded without an invoice (so it first waits as
    credit, with the usual "payment without an invoice" exception), then allocated part by part; that exception is
    resolved at once as split, saying what stays credit."""
    consumer = parts[0][0].consumer
    payment = _record_payment(line, consumer, None, now, actor_label)
    for invoice, amount in parts:
        allocation_create(payment=payment, invoice=invoice, amount=amount, now=now, actor_label=actor_label, note=note)
    left = payment_unapplied(payment)
    numbers = ", ".join(invoice.number for invoice, _amount in parts)
    for exception in ReconciliationException.objects.select_for_update().filter(
        payment=payment, kind=ExceptionKind.PAYMENT_WITHOUT_INVOICE, status=ExceptionStatus.OPEN
    ):
        exception_resolve(
            exception=exception,
            resolution=ExceptionResolution.SPLIT,
            note=(
                f"Split over {numbers}"
                + (f"; {format_money(left, line.currency)} {line.currency} stays credit" if left else "")
            ),
            actor_label=actor_label,
            now=now,
        )
    return payment


def _invoices_named(line: BankStatementLine) -> list[Invoice]:
    numbers = list(dict.fromkeys(number.upper() for number in INVOICE_NUMBER.findall(line.remittance or "")))
    if not numbers:
        return []
    found = Invoice.objects.filter(
        number__in=numbers, currency=line.currency, status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID]
    ).select_related("consumer")
    return sorted(found, key=lambda invoice: (invoice.finalized_at or invoice.issued_at, invoice.number))


def _match_by_invoice_numbers(line: BankStatementLine, invoices: list[Invoice], now: datetime) -> str:
    consumers = {invoice.consumer_id for invoice in invoices}
    if len(consumers) > 1:
        # Invoices of different consumers in one transfer: which one paid is finance's call.
        for invoice in invoices:
            _match(
                line,
                now,
                status=MatchStatus.PROPOSED,
                method=MatchMethod.IDENTIFIER,
                explanation=f"The remittance names {invoice.number} ({invoice.consumer.name}).",
                invoice=invoice,
            )
        exception_open(
            kind=ExceptionKind.AMBIGUOUS_MATCH,
            subject=f"bank_line:{line.pk}",
            detail=_("%(amount)s on %(date)s names invoices of several consumers: %(numbers)s.")
            % {
                "amount": _money(line.amount, line.currency),
                "date": line.booked_on.isoformat(),
                "numbers": ", ".join(invoice.number for invoice in invoices),
            },
            now=now,
            period=posting_period(_booked_at(line)),
            currency=line.currency,
            amount=line.amount,
            bank_line=line,
        )
        _set_status(line, BankLineStatus.PROPOSED)
        return "proposed"
    if len(invoices) == 1:
        payment = _record_payment(line, invoices[0].consumer, invoices[0], now, AUTO)
        _match(
            line,
            now,
            status=MatchStatus.CONFIRMED,
            method=MatchMethod.IDENTIFIER,
            explanation=f"The remittance names {invoices[0].number}.",
            invoice=invoices[0],
            payment=payment,
        )
    else:
        # Several invoices of one consumer: one payment split over them, oldest first, each up to what it owes.
        parts: list[tuple[Invoice, Decimal]] = []
        left = line.amount
        owed = sum((invoice_outstanding(invoice) for invoice in invoices), ZERO)
        for invoice in invoices:
            take = min(left, invoice_outstanding(invoice))
            if take > 0:
                parts.append((invoice, take))
                left -= take
        if not parts:
            # Every one of them is paid already: the payment stays credit, and finance sees "paid twice".
            payment = _record_payment(line, invoices[0].consumer, invoices[0], now, AUTO)
            parts_made: list[tuple[Invoice, Decimal]] = [(invoices[0], line.amount)]
        else:
            payment = _split_payment(
                line, parts, now, actor_label=AUTO, note=f"Bank transfer {line.bank_reference}".strip()
            )
            parts_made = parts
            difference = line.amount - owed
            if abs(difference) > amount_tolerance(line.currency):
                exception_open(
                    kind=ExceptionKind.AMOUNT_MISMATCH,
                    subject=f"payment:{payment.pk}",
                    detail=_("%(amount)s paid for %(numbers)s, which owed %(owed)s: %(rest)s %(what)s.")
                    % {
                        "amount": _money(line.amount, line.currency),
                        "numbers": ", ".join(invoice.number for invoice in invoices),
                        "owed": _money(owed, line.currency),
                        "rest": _money(abs(difference), line.currency),
                        "what": _("kept as credit") if difference > 0 else _("still open"),
                    },
                    now=now,
                    period=payment.period,
                    currency=line.currency,
                    amount=difference,
                    consumer=payment.consumer,
                    payment=payment,
                )
        for invoice, _amount in parts_made:
            _match(
                line,
                now,
                status=MatchStatus.CONFIRMED,
                method=MatchMethod.IDENTIFIER,
                explanation=f"The remittance names {', '.join(i.number for i in invoices)}.",
                invoice=invoice,
                payment=payment,
            )
    _resolve_line_exceptions(
        line, resolution=ExceptionResolution.MATCHED, note="Matched by invoice number.", actor_label=AUTO, now=now
    )
    _set_status(line, BankLineStatus.MATCHED)
    return "matched"


def _claim_named(line: BankStatementLine) -> VoucherClaim | None:
    from billing.services.payouts import voucher_claim_find_by_reference

    return voucher_claim_find_by_reference(f"{line.remittance} {line.bank_reference}")


def _match_claim(line: BankStatementLine, claim: VoucherClaim, now: datetime) -> str | None:
    """A sponsor's transfer naming its voucher claim, of the claim's amount (within the tolerance): the claim is
    received. Another amount is left to the amount rules and, failing those, to finance."""
    from billing.services.payouts import voucher_claim_mark_paid

    if (
        claim.status == VoucherClaimStatus.PAID
        or claim.currency != line.currency
        or abs(claim.amount - line.amount) > amount_tolerance(line.currency)
    ):
        return None
    voucher_claim_mark_paid(
        claim_id=claim.pk,
        bank_reference=(line.bank_reference or line.remittance or claim_reference(claim))[:200],
        paid_at=_booked_at(line),
        now=now,
        actor_label=AUTO,
    )
    return _auto_confirmed(
        line,
        now,
        method=MatchMethod.IDENTIFIER,
        explanation=f"The remittance names voucher claim {claim_reference(claim)}.",
        note="Voucher claim received.",
        voucher_claim=claim,
    )


def _window() -> timedelta:
    return timedelta(days=settings.RECONCILIATION_DATE_WINDOW_DAYS)


def _match_stripe(line: BankStatementLine, now: datetime) -> str:
    booked = _booked_at(line)
    rejected = ReconciliationMatch.objects.filter(bank_line=line, status=MatchStatus.REJECTED).values("stripe_payout")
    candidates = list(
        StripePayout.objects.filter(
            amount=line.amount,
            currency=line.currency,
            bank_line__isnull=True,
            arrival_date__gte=booked - _window(),
            arrival_date__lt=booked + timedelta(days=1) + _window(),
        )
        .exclude(pk__in=rejected)
        .order_by("arrival_date", "pk")
    )
    if len(candidates) == 1:
        stripe_payout = candidates[0]
        stripe_payout.bank_line = line
        stripe_payout.updated_at = now
        stripe_payout.save(update_fields=["bank_line", "updated_at"])
        return _auto_confirmed(
            line,
            now,
            method=MatchMethod.AMOUNT_DATE,
            explanation=f"Stripe payout {stripe_payout.pk} of the same amount arrived then.",
            note="Stripe payout.",
            stripe_payout=stripe_payout,
        )
    if len(candidates) > 1:
        for stripe_payout in candidates:
            _match(
                line,
                now,
                status=MatchStatus.PROPOSED,
                method=MatchMethod.AMOUNT_DATE,
                explanation=f"Stripe payout {stripe_payout.pk} of the same amount.",
                stripe_payout=stripe_payout,
            )
        _ambiguous(line, now, len(candidates))
        return "proposed"
    _open_unmatched(
        line,
        now,
        _("%(amount)s from Stripe on %(date)s: no Stripe payout of that amount is imported yet.")
        % {"amount": _money(line.amount, line.currency), "date": line.booked_on.isoformat()},
    )
    return "unmatched"


def _ambiguous(line: BankStatementLine, now: datetime, count: int) -> None:
    exception_open(
        kind=ExceptionKind.AMBIGUOUS_MATCH,
        subject=f"bank_line:{line.pk}",
        detail=_("%(amount)s from %(payer)s on %(date)s fits %(count)s candidates; confirm the right one.")
        % {
            "amount": _money(line.amount, line.currency),
            "payer": line.counterparty or _("an unknown payer"),
            "date": line.booked_on.isoformat(),
            "count": count,
        },
        now=now,
        period=posting_period(_booked_at(line)),
        currency=line.currency,
        amount=line.amount,
        bank_line=line,
    )
    _set_status(line, BankLineStatus.PROPOSED)


def amount_candidates(line: BankStatementLine) -> list[Invoice]:
    """Open invoices this incoming line could pay: what is left of them within the tolerance of its amount, and the
    line booked between their finalization and their due date, give or take the date window."""
    tolerance = amount_tolerance(line.currency)
    booked = _booked_at(line)
    rejected = ReconciliationMatch.objects.filter(bank_line=line, status=MatchStatus.REJECTED).values("invoice")
    found = (
        Invoice.objects.filter(
            status=InvoiceStatus.FINALIZED,
            currency=line.currency,
            total__gte=line.amount - tolerance,
            finalized_at__lt=booked + timedelta(days=1) + _window(),
        )
        .filter(Q(due_at__isnull=True) | Q(due_at__gte=booked - _window()))
        .exclude(pk__in=rejected)
        .select_related("consumer")
        .order_by("finalized_at", "number")
    )
    return [invoice for invoice in found if abs(invoice_outstanding(invoice) - line.amount) <= tolerance]


def _match_by_amount(line: BankStatementLine, now: datetime) -> str:
    candidates = amount_candidates(line)
    named = [invoice for invoice in candidates if names_alike(line.counterparty, invoice.consumer)]
    if len(named) == 1:
        invoice = named[0]
        payment = _record_payment(line, invoice.consumer, invoice, now, AUTO)
        return _auto_confirmed(
            line,
            now,
            method=MatchMethod.AMOUNT_DATE,
            explanation=f"Amount and date fit {invoice.number}, and the payer is {invoice.consumer.name}.",
            note="Matched by amount and payer.",
            invoice=invoice,
            payment=payment,
        )
    if candidates:
        for invoice in candidates:
            _match(
                line,
                now,
                status=MatchStatus.PROPOSED,
                method=MatchMethod.AMOUNT_DATE,
                score=Decimal("0.6"),
                explanation=f"Amount and date fit {invoice.number} of {invoice.consumer.name}.",
                invoice=invoice,
            )
        if len(candidates) > 1:
            _ambiguous(line, now, len(candidates))
        else:
            _set_status(line, BankLineStatus.PROPOSED)
        return "proposed"
    _open_unmatched(
        line,
        now,
        _("%(amount)s from %(payer)s on %(date)s (“%(remittance)s”) matches no invoice.")
        % {
            "amount": _money(line.amount, line.currency),
            "payer": line.counterparty or _("an unknown payer"),
            "date": line.booked_on.isoformat(),
            "remittance": line.remittance[:80],
        },
    )
    return "unmatched"


def _outgoing_payout(line: BankStatementLine):
    """The center's payout this outgoing line is: by its payout reference in the remittance text (what the bank
    payment file gave the bank), or by the bank's reference finance recorded on it."""
    from billing.models import Payout
    from billing.services.payouts import payout_find_by_reference

    found = payout_find_by_reference(f"{line.remittance} {line.bank_reference}")
    if found is None and line.bank_reference:
        same = list(Payout.objects.filter(bank_reference=line.bank_reference)[:2])
        found = same[0] if len(same) == 1 else None
    return found


def _match_outgoing(line: BankStatementLine, now: datetime) -> str:
    from billing.services.payouts import payout_mark_paid, payout_reference

    payout = _outgoing_payout(line)
    if payout is not None and (payout.currency, payout.amount) == (line.currency, -line.amount):
        if payout.status != PayoutStatus.PAID:
            payout = payout_mark_paid(
                payout_id=payout.pk,
                bank_reference=line.bank_reference or payout_reference(payout),
                paid_at=_booked_at(line),
                now=now,
                actor_label=AUTO,
            )
        return _auto_confirmed(
            line,
            now,
            method=MatchMethod.IDENTIFIER,
            explanation=f"Payout {payout_reference(payout)} to {payout.center.name}.",
            note="Payout paid.",
            payout=payout,
        )
    if payout is not None:
        detail = _("%(amount)s paid out on %(date)s names payout %(reference)s, which is %(expected)s.") % {
            "amount": _money(-line.amount, line.currency),
            "date": line.booked_on.isoformat(),
            "reference": payout_reference(payout),
            "expected": _money(payout.amount, payout.currency),
        }
    else:
        detail = _("%(amount)s paid out to %(payee)s on %(date)s (“%(remittance)s”) matches no payout.") % {
            "amount": _money(-line.amount, line.currency),
            "payee": line.counterparty or _("an unknown payee"),
            "date": line.booked_on.isoformat(),
            "remittance": line.remittance[:80],
        }
    _open_unmatched(line, now, detail)
    return "unmatched"


def _match_recorded(line: BankStatementLine, payment: Payment, now: datetime) -> str:
    """The line is a transfer finance already recorded by hand: tie them, so the invoice is not paid twice."""
    Payment.objects.filter(pk=payment.pk, bank_line__isnull=True).update(bank_line=line, updated_at=now)
    return _auto_confirmed(
        line,
        now,
        method=MatchMethod.IDENTIFIER,
        explanation=f"The transfer recorded by hand on {payment.created_at:%Y-%m-%d} ({payment.reference}).",
        note="The transfer recorded by hand.",
        payment=payment,
        invoice=payment.invoice,
    )


def _auto_match(line: BankStatementLine, now: datetime) -> str:
    if line.amount < 0:
        return _match_outgoing(line, now)
    recorded = recorded_transfer_for(
        currency=line.currency, amount=line.amount, bank_reference=line.bank_reference, remittance=line.remittance
    )
    if recorded is not None:
        return _match_recorded(line, recorded, now)
    invoices = _invoices_named(line)
    if invoices:
        return _match_by_invoice_numbers(line, invoices, now)
    claim = _claim_named(line)
    if claim is not None:
        outcome = _match_claim(line, claim, now)
        if outcome:
            return outcome
    if STRIPE_PAYER.search(line.counterparty or ""):
        return _match_stripe(line, now)
    return _match_by_amount(line, now)


def bank_line_auto_match(*, line_id: int, now: datetime) -> str:
    """Match one line if it is still unmatched: "matched", "proposed", "unmatched" or "skipped" (already done).
    A match a service refuses (a payout paid "in the future" by a line's date, …) leaves the line to finance with
    the refusal as the exception's detail: one odd line never stops the rest of a statement."""
    try:
        with transaction.atomic():
            line = BankStatementLine.objects.select_for_update().filter(pk=line_id).first()
            if line is None or line.status != BankLineStatus.UNMATCHED:
                return "skipped"
            return _auto_match(line, now)
    except DomainError as error:
        logger.warning("reconciliation.auto_match_refused", extra={"line": line_id, "code": error.code})
        with transaction.atomic():
            line = BankStatementLine.objects.select_for_update().get(pk=line_id)
            _open_unmatched(
                line,
                now,
                _("%(amount)s on %(date)s could not be matched automatically: %(reason)s")
                % {
                    "amount": _money(line.amount, line.currency),
                    "date": line.booked_on.isoformat(),
                    "reason": error.detail,
                },
            )
        return "unmatched"


def lines_auto_match(
    *, line_ids: Iterable[int], now: datetime, progress: Callable[[int, int], None] | None = None
) -> MatchSummary:
    """Auto-match these lines one by one (each its own transaction, so a long run keeps what it did and a rerun
    resumes), telling `progress(done, total)` as it goes."""
    ids = list(line_ids)
    summary = MatchSummary()
    for done, line_id in enumerate(ids, start=1):
        summary.add(bank_line_auto_match(line_id=line_id, now=now))
        if progress is not None and (done % 50 == 0 or done == len(ids)):
            progress(done, len(ids))
    return summary


def statement_auto_match(
    *, statement_id: Any, now: datetime, progress: Callable[[int, int], None] | None = None
) -> MatchSummary:
    ids = (
        BankStatementLine.objects.filter(statement_id=statement_id).order_by("line_number").values_list("pk", flat=True)
    )
    return lines_auto_match(line_ids=ids, now=now, progress=progress)


def auto_match_run(*, actor: Actor, now: datetime) -> MatchSummary:
    """Finance's "Run auto-match": every unmatched line again (an invoice finalized since, a Stripe payout
    imported since may explain it now)."""
    require_platform_finance(actor)
    ids = BankStatementLine.objects.filter(status=BankLineStatus.UNMATCHED).order_by("booked_on", "pk")
    summary = lines_auto_match(line_ids=ids.values_list("pk", flat=True), now=now)
    with transaction.atomic():
        audit_record(
            action="reconciliation.auto_match_run",
            organization=actor.organization,
            actor=actor,
            after=summary.as_dict(),
            now=now,
        )
    return summary


# --- finance's actions ----------------------------------------------------------------------------------------------


def _locked_exception(exception_id: Any) -> ReconciliationException:
    exception = (
        ReconciliationException.objects.select_for_update(of=("self",))
        .filter(pk=exception_id)
        .select_related("bank_line", "payment", "invoice")
        .first()
    )
    if exception is None:
        raise NotFound(_("No such exception."))
    if exception.status != ExceptionStatus.OPEN:
        raise Conflict(_("This exception was already resolved."), code="already_resolved")
    return exception


def _locked_line(line_id: Any) -> BankStatementLine:
    return BankStatementLine.objects.select_for_update().get(pk=line_id)


def _invoice_by_number(number: str) -> Invoice:
    invoice = Invoice.objects.filter(number=(number or "").strip().upper()).select_related("consumer").first()
    if invoice is None:
        raise InvalidInput(
            _("No invoice is numbered “%(number)s”.") % {"number": number}, errors={"invoice": [_("No such invoice.")]}
        )
    return invoice


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why."), errors={"reason": [_("This field is required.")]})
    return reason


def _audit(actor: Actor, action: str, exception: ReconciliationException, now: datetime, **after: Any) -> None:
    audit_record(
        action=f"reconciliation.{action}",
        organization=actor.organization,
        actor=actor,
        target=exception,
        after={"kind": exception.kind, "subject": exception.subject, **after},
        now=now,
    )


def _incoming_line(exception: ReconciliationException) -> BankStatementLine:
    line = exception.bank_line
    if line is None or exception.payment_id is not None:
        raise Conflict(_("This exception is not about an unexplained bank line."), code="not_a_bank_line")
    line = _locked_line(line.pk)
    if line.amount <= 0:
        raise Conflict(_("Money paid out cannot pay an invoice."), code="outgoing_line")
    if line.status in (BankLineStatus.MATCHED, BankLineStatus.IGNORED) or hasattr(line, "payment"):
        raise Conflict(_("This bank line is already explained."), code="already_matched")
    return line


def _reject_open_proposals(line: BankStatementLine, actor_label: str, now: datetime, note: str) -> None:
    ReconciliationMatch.objects.filter(bank_line=line, status=MatchStatus.PROPOSED).update(
        status=MatchStatus.REJECTED, decided_at=now, decided_by=actor_label, explanation=note[:500]
    )


def exception_match(
    *, actor: Actor, exception_id: Any, invoice_number: str, reason: str, now: datetime
) -> ReconciliationException:
    """Tie the money of an exception to one invoice: an unexplained bank line becomes that invoice's payment (over-
    and underpayment handled as for any payment); a payment kept as credit is applied to it as far as it goes."""
    require_platform_finance(actor)
    invoice = _invoice_by_number(invoice_number)
    with transaction.atomic():
        exception = _locked_exception(exception_id)
        if exception.payment_id is not None:
            payment = exception.payment
            if invoice.consumer_id != payment.consumer_id or invoice.currency != payment.currency:
                raise InvalidInput(
                    _("Invoice %(number)s is not %(consumer)s's in %(currency)s.")
                    % {"number": invoice.number, "consumer": payment.consumer.name, "currency": payment.currency},
                    errors={"invoice": [_("Another payer's invoice or another currency.")]},
                )
            amount = min(payment_unapplied(payment), invoice_outstanding(invoice))
            if amount <= 0:
                raise Conflict(
                    _("Nothing is left to apply: the payment is used up or invoice %(number)s is paid.")
                    % {"number": invoice.number},
                    code="nothing_to_apply",
                )
            allocation_create(payment=payment, invoice=invoice, amount=amount, now=now, actor_label=actor.label)
            ReconciliationMatch.objects.create(
                bank_line=payment.bank_line,
                invoice=invoice,
                payment=payment,
                amount=amount,
                method=MatchMethod.MANUAL,
                status=MatchStatus.CONFIRMED,
                explanation=(reason or "Applied by hand")[:500],
                created_at=now,
                decided_at=now,
                decided_by=actor.label,
            )
        else:
            line = _incoming_line(exception)
            if invoice.currency != line.currency:
                raise InvalidInput(
                    _("Invoice %(number)s is in %(currency)s; the bank line is not.")
                    % {"number": invoice.number, "currency": invoice.currency},
                    errors={"invoice": [_("Another currency.")]},
                )
            payment = _record_payment(line, invoice.consumer, invoice, now, actor.label)
            _reject_open_proposals(line, actor.label, now, f"Matched by hand to {invoice.number}")
            ReconciliationMatch.objects.create(
                bank_line=line,
                invoice=invoice,
                payment=payment,
                amount=line.amount,
                method=MatchMethod.MANUAL,
                status=MatchStatus.CONFIRMED,
                explanation=(reason or "Matched by hand")[:500],
                created_at=now,
                decided_at=now,
                decided_by=actor.label,
            )
            _resolve_line_exceptions(
                line,
                resolution=ExceptionResolution.MATCHED,
                note=f"Matched to {invoice.number}",
                actor_label=actor.label,
                now=now,
                keep=exception,
            )
            _set_status(line, BankLineStatus.MATCHED)
        note = f"Matched to {invoice.number}" + (f": {reason}" if reason else "")
        exception_resolve(
            exception=exception, resolution=ExceptionResolution.MATCHED, note=note, actor_label=actor.label, now=now
        )
        _audit(actor, "matched", exception, now, invoice=invoice.number, payment=str(payment.pk), reason=reason)
    return exception


def exception_split(
    *, actor: Actor, exception_id: Any, parts: list[tuple[str, Decimal]], reason: str, now: datetime
) -> ReconciliationException:
    """Split one transfer over several invoices of one consumer: the parts may not add up to more than the line (or
    the payment's credit); what they leave stays the consumer's credit."""
    require_platform_finance(actor)
    if not parts:
        raise InvalidInput(_("Give at least one invoice and amount."), errors={"parts": [_("Required.")]})
    resolved = [(_invoice_by_number(number), amount) for number, amount in parts]
    if len({invoice.pk for invoice, _a in resolved}) != len(resolved):
        raise InvalidInput(_("Name each invoice once."), errors={"parts": [_("An invoice appears twice.")]})
    if len({invoice.consumer_id for invoice, _a in resolved}) != 1:
        raise InvalidInput(
            _("One transfer can only be split over one consumer's invoices."),
            errors={"parts": [_("Invoices of several consumers.")]},
        )
    total = sum((amount for _i, amount in resolved), ZERO)
    with transaction.atomic():
        exception = _locked_exception(exception_id)
        payment = exception.payment
        available = payment_unapplied(payment) if payment is not None else None
        line = None
        if payment is None:
            line = _incoming_line(exception)
            available = line.amount
        if total > available:
            raise InvalidInput(
                _("The parts add up to %(total)s, more than the %(available)s to split.")
                % {
                    "total": _money(total, resolved[0][0].currency),
                    "available": _money(available, resolved[0][0].currency),
                },
                errors={"parts": [_("The amounts add up to more than the transfer.")]},
            )
        for invoice, amount in resolved:
            left = invoice_outstanding(invoice)
            if amount > left:
                raise InvalidInput(
                    _("Invoice %(number)s has only %(left)s left to pay.")
                    % {"number": invoice.number, "left": _money(left, invoice.currency)},
                    errors={"parts": [_("More than an invoice owes.")]},
                )
        if payment is not None:
            if resolved[0][0].consumer_id != payment.consumer_id:
                raise InvalidInput(
                    _("These invoices are not %(consumer)s's.") % {"consumer": payment.consumer.name},
                    errors={"parts": [_("Another payer's invoices.")]},
                )
            for invoice, amount in resolved:
                allocation_create(
                    payment=payment, invoice=invoice, amount=amount, now=now, actor_label=actor.label, note=reason
                )
        else:
            payment = _split_payment(line, resolved, now, actor_label=actor.label, note=reason)
            _reject_open_proposals(line, actor.label, now, "Split by hand")
            _resolve_line_exceptions(
                line,
                resolution=ExceptionResolution.SPLIT,
                note="Split by hand",
                actor_label=actor.label,
                now=now,
                keep=exception,
            )
            _set_status(line, BankLineStatus.MATCHED)
        for invoice, amount in resolved:
            ReconciliationMatch.objects.create(
                bank_line=payment.bank_line,
                invoice=invoice,
                payment=payment,
                amount=amount,
                method=MatchMethod.MANUAL,
                status=MatchStatus.CONFIRMED,
                explanation=(reason or "Split by hand")[:500],
                created_at=now,
                decided_at=now,
                decided_by=actor.label,
            )
        left = payment_unapplied(payment)
        split = ", ".join(f"{invoice.number} {format_money(amount, invoice.currency)}" for invoice, amount in resolved)
        note = f"Split: {split}" + (f"; {format_money(left, payment.currency)} stays credit" if left else "")
        exception_resolve(
            exception=exception,
            resolution=ExceptionResolution.SPLIT,
            note=(note + (f" ({reason})" if reason else "")),
            actor_label=actor.label,
            now=now,
        )
        _audit(
            actor,
            "split",
            exception,
            now,
            parts=[[invoice.number, str(amount)] for invoice, amount in resolved],
            credit_left=format_money(left, payment.currency),
            reason=reason,
        )
    return exception


def match_confirm(*, actor: Actor, match_id: Any, reason: str = "", now: datetime) -> ReconciliationMatch:
    """Finance confirms a proposed match: the line becomes that invoice's payment (or that Stripe payout's deposit);
    the line's other proposals are rejected and its exceptions resolved."""
    require_platform_finance(actor)
    with transaction.atomic():
        match = (
            ReconciliationMatch.objects.select_for_update(of=("self",))
            .filter(pk=match_id)
            .select_related("invoice")
            .first()
        )
        if match is None or match.bank_line_id is None:
            raise NotFound(_("No such match."))
        if match.status != MatchStatus.PROPOSED:
            raise Conflict(
                _("This match was already %(status)s.") % {"status": match.get_status_display().lower()},
                code="already_decided",
            )
        line = _locked_line(match.bank_line_id)
        if match.invoice_id is not None:
            match.payment = _record_payment(line, match.invoice.consumer, match.invoice, now, actor.label)
        elif match.stripe_payout_id is not None:
            stripe_payout = StripePayout.objects.select_for_update().get(pk=match.stripe_payout_id)
            if stripe_payout.bank_line_id not in (None, line.pk):
                raise Conflict(_("That Stripe payout is already tied to another bank line."), code="already_matched")
            stripe_payout.bank_line = line
            stripe_payout.updated_at = now
            stripe_payout.save(update_fields=["bank_line", "updated_at"])
        match.status, match.decided_at, match.decided_by = MatchStatus.CONFIRMED, now, actor.label
        match.save(update_fields=["status", "decided_at", "decided_by", "payment"])
        ReconciliationMatch.objects.filter(bank_line=line, status=MatchStatus.PROPOSED).exclude(pk=match.pk).update(
            status=MatchStatus.REJECTED, decided_at=now, decided_by=actor.label
        )
        what = match.invoice.number if match.invoice_id else f"Stripe payout {match.stripe_payout_id}"
        for exception in ReconciliationException.objects.select_for_update().filter(
            bank_line=line, status=ExceptionStatus.OPEN
        ):
            exception_resolve(
                exception=exception,
                resolution=ExceptionResolution.MATCHED,
                note=f"Proposed match to {what} confirmed" + (f": {reason}" if reason else ""),
                actor_label=actor.label,
                now=now,
            )
        _set_status(line, BankLineStatus.MATCHED)
        audit_record(
            action="reconciliation.match_confirmed",
            organization=actor.organization,
            actor=actor,
            target=match,
            after={"bank_line": line.pk, "matched_to": what, "reason": reason},
            now=now,
        )
    return match


def match_reject(*, actor: Actor, match_id: Any, reason: str, now: datetime) -> ReconciliationMatch:
    """Finance rejects a proposed match, saying why. When none is left to choose from, the line is an unmatched
    exception again (and auto-match will not propose the rejected one a second time)."""
    require_platform_finance(actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        match = ReconciliationMatch.objects.select_for_update().filter(pk=match_id).first()
        if match is None or match.bank_line_id is None:
            raise NotFound(_("No such match."))
        if match.status != MatchStatus.PROPOSED:
            raise Conflict(
                _("This match was already %(status)s.") % {"status": match.get_status_display().lower()},
                code="already_decided",
            )
        line = _locked_line(match.bank_line_id)
        match.status, match.decided_at, match.decided_by = MatchStatus.REJECTED, now, actor.label
        match.explanation = f"{match.explanation} Rejected: {reason}"[:500]
        match.save(update_fields=["status", "decided_at", "decided_by", "explanation"])
        if not ReconciliationMatch.objects.filter(bank_line=line, status=MatchStatus.PROPOSED).exists():
            for exception in ReconciliationException.objects.select_for_update().filter(
                bank_line=line, status=ExceptionStatus.OPEN, kind=ExceptionKind.AMBIGUOUS_MATCH
            ):
                exception_resolve(
                    exception=exception,
                    resolution=ExceptionResolution.DISMISSED,
                    note="Every proposed match was rejected.",
                    actor_label=actor.label,
                    now=now,
                )
            _set_status(line, BankLineStatus.UNMATCHED)
            _open_unmatched(
                line,
                now,
                _("%(amount)s from %(payer)s on %(date)s: the proposed match was rejected (%(reason)s).")
                % {
                    "amount": _money(line.amount, line.currency),
                    "payer": line.counterparty or _("an unknown payer"),
                    "date": line.booked_on.isoformat(),
                    "reason": reason,
                },
            )
        audit_record(
            action="reconciliation.match_rejected",
            organization=actor.organization,
            actor=actor,
            target=match,
            after={
                "bank_line": line.pk,
                "invoice": match.invoice.number if match.invoice_id else None,
                "reason": reason,
            },
            now=now,
        )
    return match


def exception_write_off(*, actor: Actor, exception_id: Any, reason: str, now: datetime) -> ReconciliationException:
    """Write off the small difference an exception is about: what its invoice still owes, or what its payment left
    over. More than the tolerance is refused by `write_off_create` (a credit note or a refund instead)."""
    require_platform_finance(actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        exception = _locked_exception(exception_id)
        payment, invoice = exception.payment, exception.invoice
        if invoice is not None and invoice_outstanding(invoice) > 0:
            amount = invoice_outstanding(invoice)
            write_off = write_off_create(actor=actor, amount=amount, reason=reason, now=now, invoice=invoice)
        elif payment is not None and payment_unapplied(payment) > 0:
            amount = payment_unapplied(payment)
            write_off = write_off_create(actor=actor, amount=amount, reason=reason, now=now, payment=payment)
        else:
            raise Conflict(_("There is no difference left to write off here."), code="nothing_to_write_off")
        exception_resolve(
            exception=exception,
            resolution=ExceptionResolution.WRITTEN_OFF,
            note=f"{format_money(amount, write_off.currency)} {write_off.currency} written off: {reason}",
            actor_label=actor.label,
            now=now,
        )
        _audit(actor, "written_off", exception, now, amount=str(amount), write_off=write_off.pk, reason=reason)
    return exception


def exception_credit_note(*, actor: Actor, exception_id: Any, reason: str, now: datetime) -> ReconciliationException:
    """Resolve an exception by the credit note finance raised on its invoice (on the invoice's page): refused until
    one was issued since the exception was opened."""
    require_platform_finance(actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        exception = _locked_exception(exception_id)
        if exception.invoice_id is None:
            raise Conflict(_("This exception is about no invoice to credit."), code="no_invoice")
        note = (
            CreditNote.objects.filter(invoice_id=exception.invoice_id, issued_at__gte=exception.opened_at)
            .order_by("-issued_at")
            .first()
        )
        if note is None:
            raise Conflict(
                _("No credit note on invoice %(number)s since this exception was opened: issue it first.")
                % {"number": exception.invoice.number},
                code="no_credit_note",
            )
        # The credit may have left nothing to pay: the invoice is paid then (its payments cover what is left).
        invoice_settle(invoice=Invoice.objects.select_for_update().get(pk=exception.invoice_id), now=now)
        exception_resolve(
            exception=exception,
            resolution=ExceptionResolution.CREDIT_NOTE,
            note=f"Credit note {note.number}: {reason}",
            actor_label=actor.label,
            now=now,
        )
        _audit(actor, "credit_note", exception, now, credit_note=note.number, reason=reason)
    return exception


def exception_keep_credit(
    *, actor: Actor, exception_id: Any, reason: str, now: datetime, consumer_id: Any = None
) -> ReconciliationException:
    """Keep the money as the consumer's credit balance and apply that credit to its open invoices: an overpayment,
    a payment without an invoice, or an unexplained bank line finance knows the payer of (`consumer_id`)."""
    require_platform_finance(actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        exception = _locked_exception(exception_id)
        payment = exception.payment
        if payment is not None and payment_unapplied(payment) <= 0:
            raise Conflict(
                _("Nothing of this payment is left as credit: the invoice is underpaid, not overpaid."),
                code="nothing_to_keep",
            )
        if payment is None:
            line = _incoming_line(exception)
            consumer = (
                Organization.objects.filter(pk=consumer_id)
                .exclude(kind__in=[OrganizationKind.OPERATOR, OrganizationKind.CENTER, OrganizationKind.SPONSOR])
                .first()
                if consumer_id
                else None
            )
            if consumer is None:
                raise InvalidInput(_("Choose who paid."), errors={"consumer": [_("Choose a consumer.")]})
            payment = _record_payment(line, consumer, None, now, actor.label)
            _reject_open_proposals(line, actor.label, now, "Kept as credit")
            for other in ReconciliationException.objects.select_for_update().filter(
                payment=payment, status=ExceptionStatus.OPEN
            ):
                exception_resolve(
                    exception=other,
                    resolution=ExceptionResolution.KEPT_AS_CREDIT,
                    note=reason,
                    actor_label=actor.label,
                    now=now,
                )
            _resolve_line_exceptions(
                line,
                resolution=ExceptionResolution.KEPT_AS_CREDIT,
                note=reason,
                actor_label=actor.label,
                now=now,
                keep=exception,
            )
            _set_status(line, BankLineStatus.MATCHED)
        applied = credit_apply(consumer=payment.consumer_id, currency=payment.currency, now=now)
        exception_resolve(
            exception=exception,
            resolution=ExceptionResolution.KEPT_AS_CREDIT,
            note=reason,
            actor_label=actor.label,
            now=now,
        )
        _audit(
            actor,
            "kept_as_credit",
            exception,
            now,
            payment=str(payment.pk),
            applied=[[a.invoice.number, str(a.amount)] for a in applied],
            reason=reason,
        )
    return exception


def exception_dismiss(*, actor: Actor, exception_id: Any, reason: str, now: datetime) -> ReconciliationException:
    """Nothing to book (a bank fee, an internal transfer, a failed payment the consumer retried elsewhere): resolved
    with the reason; an unmatched bank line is marked ignored."""
    require_platform_finance(actor)
    reason = _require_reason(reason)
    with transaction.atomic():
        exception = _locked_exception(exception_id)
        if exception.bank_line_id is not None and exception.payment_id is None:
            line = _locked_line(exception.bank_line_id)
            if line.status != BankLineStatus.MATCHED:
                _reject_open_proposals(line, actor.label, now, f"Dismissed: {reason}")
                _resolve_line_exceptions(
                    line,
                    resolution=ExceptionResolution.DISMISSED,
                    note=reason,
                    actor_label=actor.label,
                    now=now,
                    keep=exception,
                )
                _set_status(line, BankLineStatus.IGNORED)
        exception_resolve(
            exception=exception, resolution=ExceptionResolution.DISMISSED, note=reason, actor_label=actor.label, now=now
        )
        _audit(actor, "dismissed", exception, now, reason=reason)
    return exception


def exception_refund(
    *, actor: Actor, exception_id: Any, reason: str, now: datetime, reference: str = ""
) -> ReconciliationException:
    """Give back what a payment left as credit (an invoice paid twice, an overpayment, money that named no
    invoice): to the card for a card payment (sent to Stripe after the commit), or — for a bank transfer — the
    transfer back that finance made, recorded with its bank reference. The exception is resolved as refunded."""
    require_platform_finance(actor)
    reason = _require_reason(reason)
    reference = (reference or "").strip()
    with transaction.atomic():
        exception = _locked_exception(exception_id)
        payment = exception.payment
        if payment is None:
            raise Conflict(_("Only money recorded as a payment can be refunded."), code="not_a_payment")
        amount = payment_unapplied(payment)
        if amount <= 0:
            raise Conflict(_("Nothing of this payment is left as credit to refund."), code="nothing_to_refund")
        by_card = payment.method == PaymentMethod.STRIPE
        if not by_card and not reference:
            raise InvalidInput(
                _("Give the bank reference of the transfer back to the payer."),
                errors={"reference": [_("This field is required for a bank transfer.")]},
            )
        refund = refund_create(
            payment=payment,
            amount=amount,
            key=f"exception:{exception.pk}:refund",
            reason=reason,
            now=now,
            created_by=actor.label,
        )
        if not by_card:
            refund_post(refund_id=refund.pk, now=now, reference=reference)
        exception_resolve(
            exception=exception, resolution=ExceptionResolution.REFUNDED, note=reason, actor_label=actor.label, now=now
        )
        _audit(
            actor,
            "refunded",
            exception,
            now,
            payment=str(payment.pk),
            amount=str(amount),
            reference=reference,
            reason=reason,
        )
        if by_card:
            from billing.tasks import refund_send_task

            refund_id = str(refund.pk)
            enqueue_on_commit(refund_send_task, refund_id)
    return exception
