"""Paying centers (issue 6, "Paying centers"): a closed period's statements become payouts, sent as Stripe Connect
transfers or listed in a bank payment file, and marked paid with the bank's reference. And the other way round,
sponsors' voucher claims recorded as received the same way.

How a payout moves (PAYOUT_TRANSITIONS): pending → in transit (a Stripe transfer is being made, or the payout is in
a bank file handed to the bank) → paid; any unpaid payout may fail (Stripe refused the transfer, the bank returned
it), which queues a "payout failed" exception; finance retries it (failed → pending), by the same or another method.

The ledger (one entry per payout, key `payout:<id>`, dated into the first unlocked month of the payment):
Dr the center's payable, Cr cash (a bank transfer) or the Stripe balance (a Connect transfer). After the close's
fee entry and the payout, what the platform owes the center for the period is zero.

Stripe is never called inside a transaction or with a row lock held (STYLE.md rule 3): `payout_send_stripe` claims
the payout with a conditional UPDATE and commits, calls Stripe, then records the answer in a new transaction. The
idempotency key is deterministic per attempt, so a crash between the call and the record, or two senders racing,
make one transfer.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import stripe
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import CharField
from django.db.models.functions import Cast
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, InvalidInput, NotFound
from accounts.selectors import as_uuid
from accounts.services import audit_record
from billing import stripe_connect
from billing.csv_export import Money, csv_bytes
from billing.models import (
    AccountRole,
    BillingPeriod,
    ExceptionKind,
    ExceptionResolution,
    ExceptionStatus,
    PaymentProfile,
    Payout,
    PayoutBatch,
    PayoutStatus,
    ReconciliationException,
    Statement,
    StatementStatus,
    VoucherClaim,
    VoucherClaimStatus,
)
from billing.periods_calendar import parse_label
from billing.services.invoices import next_number, require_platform_finance
from billing.services.ledger import credit, debit, journal_post
from billing.services.payments import exception_open, exception_resolve, posting_period
from marketplace.money import format_money
from marketplace.outbox import enqueue_on_commit
from marketplace.realtime import send_to_organizations

logger = logging.getLogger(__name__)

BANK = PaymentProfile.PayoutMethod.BANK
STRIPE = PaymentProfile.PayoutMethod.STRIPE

PAYOUT_TRANSITIONS: dict[str, frozenset[str]] = {
    PayoutStatus.PENDING: frozenset({PayoutStatus.IN_TRANSIT, PayoutStatus.PAID, PayoutStatus.FAILED}),
    PayoutStatus.IN_TRANSIT: frozenset({PayoutStatus.PAID, PayoutStatus.FAILED}),
    # A failed payout is retried (back to pending), or turns out paid after all (the bank line shows it left).
    PayoutStatus.FAILED: frozenset({PayoutStatus.PENDING, PayoutStatus.PAID}),
    PayoutStatus.PAID: frozenset(),
}

# A bank's booking date is a day; a payment dated a little after `now` is clock skew, further is a typo.
FUTURE_SKEW = timedelta(days=1)

BANK_FILE_HEADER = ["beneficiary_name", "account_number", "bank", "bank_code", "amount", "currency", "reference"]

_PAYOUT_REFERENCE = re.compile(r"\bPO-(\d{4}-\d{2})-([0-9A-F]{8})\b", re.IGNORECASE)
_CLAIM_REFERENCE = re.compile(r"\bVC-(\d{4}-\d{2})-([0-9A-F]{8})\b", re.IGNORECASE)


# --- references ---------------------------------------------------------------------------------------------------


def payout_reference(payout: Payout) -> str:
    """What the bank transfer to the center carries, and what finds the payout again in the platform's bank
    statement: `PO-<period>-<first 8 hex digits of the payout id>`, e.g. `PO-2026-10-3F2A9C1B`."""
    return f"PO-{payout.transfer_group.removeprefix('period-')}-{payout.pk.hex[:8].upper()}"


def claim_reference(claim: VoucherClaim) -> str:
    """What the sponsor writes on its transfer: `VC-<period>-<first 8 hex digits of the claim id>`."""
    return f"VC-{claim.period.label}-{claim.pk.hex[:8].upper()}"


def _by_reference(model, pattern: re.Pattern, text: str, period_filter: str) -> Any:
    for label, prefix in pattern.findall(text or ""):
        try:
            start = parse_label(label)
        except InvalidInput:  # a reference-shaped typo in remittance text (month 13) is simply no match
            continue
        found = list(
            model.objects.annotate(id_text=Cast("id", CharField()))
            .filter(id_text__startswith=prefix.lower(), **{period_filter: start})
            .order_by("pk")[:2]
        )
        if len(found) == 1:
            return found[0]
    return None


def payout_find_by_reference(text: str) -> Payout | None:
    """The payout whose reference (`payout_reference`) appears in `text` (a bank line's remittance), if exactly
    one does."""
    return _by_reference(Payout, _PAYOUT_REFERENCE, text, "statement__period__start")


def voucher_claim_find_by_reference(text: str) -> VoucherClaim | None:
    """The voucher claim whose reference (`claim_reference`) appears in `text`, if exactly one does."""
    return _by_reference(VoucherClaim, _CLAIM_REFERENCE, text, "period__start")


# --- creating payouts ---------------------------------------------------------------------------------------------


@dataclass
class PayoutsCreated:
    period: BillingPeriod
    created: list[Payout] = field(default_factory=list)
    existing: list[Payout] = field(default_factory=list)
    # Statements with nothing to pay (net payout zero or negative: credit notes took back more than was earned).
    skipped: list[Statement] = field(default_factory=list)


def method_for(profile: PaymentProfile | None) -> str:
    """Stripe Connect for a center that chose it and has a connected account, while Stripe is configured; bank
    transfer otherwise (it always works)."""
    if (
        profile is not None
        and profile.payout_method == STRIPE
        and profile.stripe_account_id
        and stripe_connect.connect_enabled()
    ):
        return STRIPE
    return BANK


def _period(period: str | BillingPeriod, *, lock: bool = False) -> BillingPeriod:
    start = period.start if isinstance(period, BillingPeriod) else parse_label(period)
    queryset = BillingPeriod.objects.select_for_update() if lock else BillingPeriod.objects
    found = queryset.filter(start=start).first()
    if found is None:
        raise NotFound(_("No such billing period."))
    return found


def payouts_create(*, period: str | BillingPeriod, now: datetime, actor: Actor) -> PayoutsCreated:
    """One payout per issued statement of a closed period with a positive net payout, by the center's payout
    method. Running it again creates only what is missing (the period row lock serializes two clerks; a payout is
    also unique per statement)."""
    require_platform_finance(actor)
    with transaction.atomic():
        found = _period(period, lock=True)
        if not found.is_closed:
            raise Conflict(
                _("%(period)s is not closed yet: its statements are issued when it closes.") % {"period": found.label},
                code="period_not_closed",
            )
        result = PayoutsCreated(period=found)
        statements = list(
            Statement.objects.filter(period=found).select_related("center").order_by("center__name", "currency")
        )
        existing = {p.statement_id: p for p in Payout.objects.filter(statement__in=statements)}
        profiles = {
            p.organization_id: p
            for p in PaymentProfile.objects.filter(organization_id__in={s.center_id for s in statements})
        }
        for statement in statements:
            if statement.pk in existing:
                result.existing.append(existing[statement.pk])
            elif statement.net_payout <= 0 or statement.status != StatementStatus.ISSUED:
                result.skipped.append(statement)
            else:
                result.created.append(
                    Payout.objects.create(
                        statement=statement,
                        center=statement.center,
                        currency=statement.currency,
                        amount=statement.net_payout,
                        method=method_for(profiles.get(statement.center_id)),
                        transfer_group=f"period-{found.label}",
                        created_at=now,
                    )
                )
        if result.created:
            audit_record(
                action="payouts.created",
                organization=actor.organization,
                actor=actor,
                target=found,
                after={
                    "period": found.label,
                    "payouts": len(result.created),
                    "totals": _totals(result.created),
                },
                now=now,
            )
    logger.info("payouts.created", extra={"period": found.label, "payouts": len(result.created)})
    return result


def _totals(payouts: list[Payout]) -> dict[str, str]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for payout in payouts:
        sums[payout.currency] += payout.amount
    return {currency: format_money(total, currency) for currency, total in sorted(sums.items())}


# --- moving a payout ----------------------------------------------------------------------------------------------


def _locked(payout_id: Any) -> Payout:
    payout = (
        Payout.objects.select_for_update(of=("self",))
        .select_related("center", "statement")
        .filter(pk=as_uuid(payout_id))
        .first()
    )
    if payout is None:
        raise NotFound(_("No such payout."))
    return payout


def _move(payout: Payout, to_status: str) -> None:
    if to_status not in PAYOUT_TRANSITIONS[payout.status]:
        raise Conflict(
            _("A payout that is %(from)s cannot become %(to)s.")
            % {"from": PayoutStatus(payout.status).label, "to": PayoutStatus(to_status).label},
            code="invalid_transition",
        )
    payout.status = to_status


def _failures(payout: Payout) -> int:
    return ReconciliationException.objects.filter(kind=ExceptionKind.PAYOUT_FAILED, payout=payout).count()


def transfer_idempotency_key(payout: Payout) -> str:
    """The Stripe idempotency key of the payout's current attempt: `payout-<id>-transfer`, then `…-transfer-2`
    after finance retried one failure, and so on. Stripe keeps a refused request's answer under its key, so a retry
    needs a new one; everything else (a crash, a second worker) reuses the attempt's key."""
    failures = _failures(payout)
    suffix = f"-{failures + 1}" if failures else ""
    return f"payout-{payout.pk}-transfer{suffix}"


def _bank_transfer_checked(bank_reference: str, paid_at: datetime, now: datetime, *, future: tuple[str, str]) -> str:
    """A bank transfer recorded as done: its reference is required and its day cannot lie ahead (`future`: the
    refusal's sentence and its field message). Returns the reference, trimmed."""
    bank_reference = (bank_reference or "").strip()
    if not bank_reference:
        raise InvalidInput(
            _("Give the bank's reference of the transfer."), errors={"bank_reference": [_("This field is required.")]}
        )
    if paid_at > now + FUTURE_SKEW:
        raise InvalidInput(future[0], errors={"paid_at": [future[1]]})
    return bank_reference


def payout_mark_paid(
    *,
    payout_id: Any,
    bank_reference: str,
    paid_at: datetime,
    now: datetime,
    actor_label: str,
    actor: Actor | None = None,
) -> Payout:
    """The money reached the center: post Dr center payable, Cr cash (bank) or Stripe balance (a Connect transfer
    was made), once (key `payout:<id>`), in the first unlocked month of `paid_at`; the statement is paid out.
    Marking a paid payout paid again changes nothing. Finance's pages and the reconciliation of an outgoing bank
    line both call this."""
    bank_reference = _bank_transfer_checked(
        bank_reference,
        paid_at,
        now,
        future=(_("A payout cannot be paid in the future."), _("Give the day the money left.")),
    )
    with transaction.atomic():
        payout = _locked(payout_id)
        if payout.status == PayoutStatus.PAID:
            return payout
        before = payout.status
        _move(payout, PayoutStatus.PAID)
        if payout.method == STRIPE and not payout.stripe_transfer:
            # No Connect transfer was made: finance paid it from the bank instead.
            payout.method = BANK
        payout.paid_at = paid_at
        payout.period = posting_period(paid_at)
        payout.bank_reference = bank_reference[:200]
        payout.paid_by = actor_label[:254]
        payout.failure_message = ""
        payout.save(
            update_fields=["status", "method", "paid_at", "period", "bank_reference", "paid_by", "failure_message"]
        )
        source = AccountRole.STRIPE_BALANCE if payout.stripe_transfer else AccountRole.CASH
        journal_post(
            key=f"payout:{payout.pk}",
            kind="payout",
            memo=f"Payout to {payout.center.name} for {payout.transfer_group.removeprefix('period-')} "
            f"({bank_reference[:80]})",
            postings=[
                debit(payout.center_id, AccountRole.CENTER_PAYABLE, payout.currency, payout.amount),
                credit(None, source, payout.currency, payout.amount),
            ],
            now=now,
            period=payout.period,
        )
        Statement.objects.filter(pk=payout.statement_id).update(status=StatementStatus.PAID, paid_at=paid_at)
        for exception in ReconciliationException.objects.select_for_update().filter(
            kind=ExceptionKind.PAYOUT_FAILED, payout=payout, status=ExceptionStatus.OPEN
        ):
            exception_resolve(
                exception=exception,
                resolution=ExceptionResolution.MATCHED,
                note=f"Paid after all ({bank_reference[:100]}).",
                actor_label=actor_label,
                now=now,
            )
        audit_record(
            action="payout.paid",
            organization=actor.organization if actor is not None else None,
            actor=actor,
            actor_label=actor_label,
            target=payout,
            before={"status": before},
            after={
                "status": payout.status,
                "amount": format_money(payout.amount, payout.currency),
                "currency": payout.currency,
                "bank_reference": payout.bank_reference,
                "paid_at": paid_at.isoformat(),
                "period": payout.period.label,
            },
            now=now,
        )
        send_to_organizations(
            [payout.center_id], {"event": "payout.paid", "payout": str(payout.pk), "amount": str(payout.amount)}
        )
    logger.info("payout.paid", extra={"payout": str(payout.pk), "method": payout.method})
    return payout


def payout_mark_failed(
    *, payout_id: Any, message: str, now: datetime, actor_label: str, actor: Actor | None = None
) -> Payout:
    """The payout did not reach the center (Stripe refused the transfer, the bank returned it): nothing is posted,
    and a "payout failed" exception asks finance to retry. Failing a failed payout again changes nothing."""
    message = (message or "").strip()
    if not message:
        raise InvalidInput(_("Say why the payout failed."), errors={"message": [_("This field is required.")]})
    with transaction.atomic():
        payout = _locked(payout_id)
        if payout.status == PayoutStatus.FAILED:
            return payout
        before = payout.status
        _move(payout, PayoutStatus.FAILED)
        payout.failure_message = message[:500]
        payout.save(update_fields=["status", "failure_message"])
        attempt = _failures(payout) + 1
        exception_open(
            kind=ExceptionKind.PAYOUT_FAILED,
            subject=f"payout:{payout.pk}" if attempt == 1 else f"payout:{payout.pk}:{attempt}",
            detail=_("Payout %(reference)s of %(amount)s %(currency)s to %(center)s failed: %(message)s")
            % {
                "reference": payout_reference(payout),
                "amount": format_money(payout.amount, payout.currency),
                "currency": payout.currency,
                "center": payout.center.name,
                "message": message,
            },
            now=now,
            currency=payout.currency,
            amount=payout.amount,
            payout=payout,
        )
        audit_record(
            action="payout.failed",
            organization=actor.organization if actor is not None else None,
            actor=actor,
            actor_label=actor_label,
            target=payout,
            before={"status": before},
            after={"status": payout.status, "message": payout.failure_message},
            now=now,
        )
    logger.info("payout.failed", extra={"payout": str(payout.pk), "method": payout.method})
    return payout


def payout_retry(*, payout_id: Any, now: datetime, actor: Actor, method: str | None = None) -> Payout:
    """failed → pending, by the same method or another one (a closed Connect account is paid by bank): its
    open "payout failed" exception is resolved as retried. A bank payout leaves the file it failed in, so that the
    next bank file lists it again; the old file stays as it was handed to the bank."""
    require_platform_finance(actor)
    with transaction.atomic():
        payout = _locked(payout_id)
        if payout.status != PayoutStatus.FAILED:
            raise Conflict(
                _("Only a failed payout can be retried; this one is %(status)s.")
                % {"status": payout.get_status_display()},
                code="invalid_transition",
            )
        before = {"status": payout.status, "method": payout.method}
        if method and method != payout.method:
            if method not in PaymentProfile.PayoutMethod.values:
                raise InvalidInput(_("Unknown payout method."), errors={"method": [_("Choose bank or Stripe.")]})
            profile = PaymentProfile.objects.filter(organization=payout.center).first()
            if method == STRIPE and method_for(profile) != STRIPE:
                raise Conflict(
                    _("%(center)s has no Stripe Connect account to pay into.") % {"center": payout.center.name},
                    code="no_connect_account",
                )
            payout.method = method
        _move(payout, PayoutStatus.PENDING)
        payout.batch = None
        payout.save(update_fields=["status", "method", "batch"])
        for exception in ReconciliationException.objects.select_for_update().filter(
            kind=ExceptionKind.PAYOUT_FAILED, payout=payout, status=ExceptionStatus.OPEN
        ):
            exception_resolve(
                exception=exception,
                resolution=ExceptionResolution.RETRIED,
                note=f"Retried by {PaymentProfile.PayoutMethod(payout.method).label}.",
                actor_label=actor.label,
                now=now,
            )
        audit_record(
            action="payout.retried",
            organization=actor.organization,
            actor=actor,
            target=payout,
            before=before,
            after={"status": payout.status, "method": payout.method},
            now=now,
        )
    return payout


# --- Stripe Connect -----------------------------------------------------------------------------------------------


def _claim_for_stripe(payout_id: Any) -> tuple[Payout, str, str] | Payout:
    """Claim a pending Stripe payout for sending (pending → in transit, a conditional UPDATE that must touch one
    row), or take up an in-transit one whose transfer was never recorded (a crash, an unknown outcome): the same
    key is sent again. Returns the payout with its destination and key, or the payout alone when there is nothing
    to send."""
    with transaction.atomic():
        claimed = Payout.objects.filter(
            pk=as_uuid(payout_id), status=PayoutStatus.PENDING, method=STRIPE, stripe_transfer__isnull=True
        ).update(status=PayoutStatus.IN_TRANSIT)
        payout = Payout.objects.select_related("center").filter(pk=as_uuid(payout_id)).first()
        if payout is None:
            raise NotFound(_("No such payout."))
        if not claimed:
            resumable = (
                payout.status == PayoutStatus.IN_TRANSIT and payout.method == STRIPE and not payout.stripe_transfer
            )
            if not resumable:
                if payout.method != STRIPE:
                    raise Conflict(_("This payout is paid by bank transfer, not Stripe."), code="not_stripe")
                return payout  # already sent, paid or failed: nothing to do
        profile = PaymentProfile.objects.filter(organization_id=payout.center_id).first()
        destination = profile.stripe_account_id if profile is not None else None
        return payout, destination or "", transfer_idempotency_key(payout)


def payout_send_stripe(*, payout_id: Any, now: datetime, actor_label: str = "system") -> Payout:
    """Pay a Stripe payout by a Connect transfer to the center's connected account. Sending a payout already sent
    changes nothing. Raises `stripe_connect.TransferUnknown` when Stripe could not be reached (the payout stays in
    transit and the task retries it with the same key); a refusal fails the payout for finance to look at."""
    claimed = _claim_for_stripe(payout_id)
    if isinstance(claimed, Payout):
        return claimed
    payout, destination, key = claimed
    if not destination:
        return payout_mark_failed(
            payout_id=payout.pk,
            message=_("%(center)s has no Stripe Connect account.") % {"center": payout.center.name},
            now=now,
            actor_label=actor_label,
        )
    # Outside any transaction: the payout is claimed and committed; the call holds no lock (STYLE.md rule 3).
    try:
        transfer = stripe_connect.transfer_create(
            amount=payout.amount,
            currency=payout.currency,
            destination=destination,
            transfer_group=payout.transfer_group,
            idempotency_key=key,
            metadata={
                "payout": str(payout.pk),
                "statement": str(payout.statement_id),
                "center": payout.center.slug,
                "reference": payout_reference(payout),
            },
            description=f"{payout_reference(payout)} {payout.center.name}",
        )
    except stripe.StripeError as exc:
        return payout_mark_failed(
            payout_id=payout.pk, message=stripe_connect.error_message(exc), now=now, actor_label=actor_label
        )
    with transaction.atomic():
        Payout.objects.filter(pk=payout.pk, stripe_transfer__isnull=True).update(stripe_transfer=transfer.id)
        return payout_mark_paid(
            payout_id=payout.pk, bank_reference=transfer.id, paid_at=transfer.created, now=now, actor_label=actor_label
        )


def stripe_payouts_to_send(*, period: str | BillingPeriod, now: datetime, actor: Actor) -> list[Any]:
    """The ids of a period's Stripe payouts waiting to be sent (pending, or in transit with no transfer recorded),
    with the sending queued for after commit, one task per payout."""
    require_platform_finance(actor)
    from billing.tasks import payout_send_stripe_task

    found = _period(period)
    ids = list(
        Payout.objects.filter(
            statement__period=found,
            method=STRIPE,
            status__in=[PayoutStatus.PENDING, PayoutStatus.IN_TRANSIT],
            stripe_transfer__isnull=True,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        if ids:
            audit_record(
                action="payouts.stripe_sent",
                organization=actor.organization,
                actor=actor,
                target=found,
                after={"period": found.label, "payouts": [str(pk) for pk in ids]},
                now=now,
            )
        for pk in ids:
            enqueue_on_commit(payout_send_stripe_task, str(pk), actor.label)
    return ids


# --- bank payment files -------------------------------------------------------------------------------------------


@dataclass
class BatchesMade:
    batches: list[PayoutBatch] = field(default_factory=list)
    # Bank payouts left out because the center has given no bank account yet.
    missing_details: list[Payout] = field(default_factory=list)


def batch_file_name(batch: PayoutBatch) -> str:
    return f"payout-batches/{batch.pk}.csv"


def _bank_rows(payouts: list[Payout], profiles: dict[Any, PaymentProfile]) -> list[list[Any]]:
    rows = []
    for payout in payouts:
        profile = profiles[payout.center_id]
        rows.append(
            [
                profile.bank_account_name or payout.center.legal_name or payout.center.name,
                profile.bank_account_number,
                profile.bank_name,
                profile.bank_code,
                Money(payout.amount, payout.currency),
                payout.currency,
                payout_reference(payout),
            ]
        )
    return rows


def payout_batch_create(
    *, period: str | BillingPeriod, now: datetime, actor: Actor, currency: str | None = None
) -> BatchesMade:
    """A bank payment file per currency of the period's pending bank payouts (those whose center gave a bank
    account): numbered (`PB-<period>-NNNNNN`, gapless), its bytes stored and their SHA-256 kept, so that the file
    downloads again byte for byte as it was handed to the bank. Its payouts are in transit until marked paid."""
    require_platform_finance(actor)
    made = BatchesMade()
    with transaction.atomic():
        found = _period(period, lock=True)
        queryset = Payout.objects.select_for_update(of=("self",)).filter(
            statement__period=found, method=BANK, status=PayoutStatus.PENDING, batch__isnull=True
        )
        if currency:
            queryset = queryset.filter(currency=currency)
        payouts = list(queryset.select_related("center").order_by("pk"))
        profiles = {
            p.organization_id: p
            for p in PaymentProfile.objects.filter(organization_id__in={p.center_id for p in payouts})
        }
        ready: dict[str, list[Payout]] = defaultdict(list)
        for payout in payouts:
            profile = profiles.get(payout.center_id)
            if profile is None or not profile.bank_account_number.strip():
                made.missing_details.append(payout)
            else:
                ready[payout.currency].append(payout)
        for code in sorted(ready):
            listed = sorted(ready[code], key=lambda p: (p.center.name, str(p.pk)))
            content = csv_bytes(BANK_FILE_HEADER, _bank_rows(listed, profiles))
            batch = PayoutBatch.objects.create(
                number=next_number("payout_batch", f"PB-{found.label}"),
                currency=code,
                total=sum((p.amount for p in listed), Decimal(0)),
                count=len(listed),
                content_hash=hashlib.sha256(content).hexdigest(),
                created_at=now,
                created_by=actor.label,
            )
            # Written before commit: a failed write rolls the batch back (an orphan file of a rolled-back batch,
            # named by its never-reused id, is harmless).
            default_storage.save(batch_file_name(batch), ContentFile(content))
            Payout.objects.filter(pk__in=[p.pk for p in listed]).update(batch=batch, status=PayoutStatus.IN_TRANSIT)
            audit_record(
                action="payout_batch.created",
                organization=actor.organization,
                actor=actor,
                target=batch,
                after={
                    "number": batch.number,
                    "period": found.label,
                    "currency": code,
                    "count": batch.count,
                    "total": format_money(batch.total, code),
                    "sha256": batch.content_hash,
                },
                now=now,
            )
            made.batches.append(batch)
    return made


def payout_batch_content(batch: PayoutBatch) -> bytes:
    """The batch's file exactly as it was made; refuses to serve bytes whose hash is not the one recorded."""
    name = batch_file_name(batch)
    if not default_storage.exists(name):
        raise Conflict(
            _("The file of %(number)s is missing from storage.") % {"number": batch.number}, code="batch_file_missing"
        )
    with default_storage.open(name, "rb") as handle:
        content = handle.read()
    if hashlib.sha256(content).hexdigest() != batch.content_hash:
        raise Conflict(
            _("The stored file of %(number)s does not match its recorded hash.") % {"number": batch.number},
            code="batch_file_changed",
        )
    return content


# --- voucher claims, received from sponsors -----------------------------------------------------------------------


def voucher_claim_mark_paid(
    *,
    claim_id: Any,
    bank_reference: str,
    paid_at: datetime,
    now: datetime,
    actor_label: str,
    actor: Actor | None = None,
) -> VoucherClaim:
    """The platform received a sponsor's payment of a voucher claim (finance recording it, or reconciliation of an
    incoming bank line): Dr cash, Cr the sponsor's voucher receivable, once (the same key as the sponsor's own
    record, `voucher_claim_payment:<id>`, so the two never both post), in the first unlocked month of `paid_at`.
    A paid claim changes nothing."""
    bank_reference = _bank_transfer_checked(
        bank_reference,
        paid_at,
        now,
        future=(_("A payment cannot be received in the future."), _("Give the day it arrived.")),
    )
    with transaction.atomic():
        claim = (
            VoucherClaim.objects.select_for_update(of=("self",))
            .select_related("period", "sponsor")
            .filter(pk=as_uuid(claim_id))
            .first()
        )
        if claim is None:
            raise NotFound(_("No such voucher claim."))
        if claim.status == VoucherClaimStatus.PAID:
            return claim
        claim.status, claim.paid_at = VoucherClaimStatus.PAID, paid_at
        claim.payment_reference, claim.paid_by = bank_reference[:200], actor_label[:254]
        claim.save(update_fields=["status", "paid_at", "payment_reference", "paid_by"])
        journal_post(
            key=f"voucher_claim_payment:{claim.pk}",
            kind="voucher_claim_payment",
            memo=f"Voucher claim {claim.period.label} of {claim.sponsor.name} received ({bank_reference[:100]})",
            postings=[
                debit(None, AccountRole.CASH, claim.currency, claim.amount),
                credit(claim.sponsor_id, AccountRole.VOUCHER_RECEIVABLE, claim.currency, claim.amount),
            ],
            now=now,
            period=posting_period(paid_at),
        )
        audit_record(
            action="voucher_claim.received",
            organization=actor.organization if actor is not None else None,
            actor=actor,
            actor_label=actor_label,
            target=claim,
            after={
                "amount": format_money(claim.amount, claim.currency),
                "currency": claim.currency,
                "reference": claim.payment_reference,
                "paid_at": paid_at.isoformat(),
            },
            now=now,
        )
        send_to_organizations([claim.sponsor_id], {"event": "voucher_claim.paid", "claim": str(claim.pk)})
    return claim
