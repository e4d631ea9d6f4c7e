"""Invoices after a close: finalizing (with a gapless number), holding, e-mailing, and correcting them with credit
notes. An invoice's amounts never change (a database trigger guards them); only its status moves, through
INVOICE_TRANSITIONS."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput, NotFound
from accounts.models import OrganizationKind, Role
from accounts.selectors import as_uuid
from accounts.services import audit_record
from billing.models import (
    INVOICE_TRANSITIONS,
    AccountRole,
    CreditNote,
    CreditNoteLine,
    DocumentSequence,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
)
from billing.services.ledger import credit, debit, journal_post
from billing.services.periods import current_period, vat_portion
from marketplace.money import format_money, round_money
from marketplace.outbox import enqueue_on_commit
from marketplace.realtime import send_to_organizations

logger = logging.getLogger(__name__)
ZERO = Decimal(0)

FINANCE_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.FINANCE})


def require_platform_finance(actor: Actor) -> None:
    """Finalizing, holding and crediting invoices is the operator's finance staff's work."""
    if actor.organization.kind != OrganizationKind.OPERATOR or actor.role not in FINANCE_ROLES:
        raise Forbidden(_("Only the platform operator's finance staff can do this."), code="role_required")


def next_number(name: str, prefix: str) -> str:
    """The next gapless number of a sequence: the counter row is locked until the caller's transaction ends."""
    DocumentSequence.objects.get_or_create(name=name)
    sequence = DocumentSequence.objects.select_for_update().get(name=name)
    sequence.last_value += 1
    sequence.save(update_fields=["last_value"])
    return f"{prefix}-{sequence.last_value:06d}"


def _locked_invoice(invoice_id: Any) -> Invoice:
    invoice = Invoice.objects.select_for_update().filter(pk=as_uuid(invoice_id)).first()
    if invoice is None:
        raise NotFound(_("No such invoice."))
    return invoice


def _move(invoice: Invoice, to_status: str) -> None:
    if to_status not in INVOICE_TRANSITIONS[invoice.status]:
        raise Conflict(
            _("An invoice that is %(from)s cannot become %(to)s.")
            % {"from": InvoiceStatus(invoice.status).label, "to": InvoiceStatus(to_status).label},
            code="invalid_transition",
        )
    invoice.status = to_status


def invoice_finalize(*, invoice_id: Any, now: datetime, actor: Actor | None = None) -> Invoice:
    """draft → finalized: the invoice gets its number (gapless, per deployment) and due date, and is e-mailed.
    Finalizing a finalized invoice changes nothing."""
    if actor is not None:
        require_platform_finance(actor)
    with transaction.atomic():
        invoice = _locked_invoice(invoice_id)
        if invoice.status != InvoiceStatus.DRAFT:
            return invoice
        _move(invoice, InvoiceStatus.FINALIZED)
        invoice.number = next_number("invoice", f"INV-{invoice.period.label}")
        invoice.finalized_at = now
        invoice.due_at = now + timedelta(days=settings.INVOICE_PAYMENT_TERMS_DAYS)
        invoice.held = False
        invoice.save(update_fields=["status", "number", "finalized_at", "due_at", "held"])
        if actor is not None:
            audit_record(
                action="invoice.finalized",
                organization=actor.organization,
                actor=actor,
                target=invoice,
                after={"number": invoice.number},
                now=now,
            )
        _after_commit_mail(invoice)
        _after_commit_autopay(invoice)
        send_to_organizations(
            [invoice.consumer_id],
            {"event": "invoice.finalized", "invoice": str(invoice.pk), "number": invoice.number},
        )
        # Credit the consumer already has (an overpayment, a credited paid invoice) pays the new invoice first.
        from billing.services.payments import credit_apply

        credit_apply(consumer=invoice.consumer_id, currency=invoice.currency, now=now)
    logger.info("invoice.finalized", extra={"invoice": str(invoice.pk), "number": invoice.number})
    return invoice


def _after_commit_mail(invoice: Invoice) -> None:
    from billing.tasks import invoice_email

    invoice_id = str(invoice.pk)
    enqueue_on_commit(invoice_email, invoice_id)


def _after_commit_autopay(invoice: Invoice) -> None:
    # A consumer with autopay has its saved card charged once the invoice is committed (never inside this lock).
    if not settings.STRIPE_ENABLED:
        return
    from billing.tasks import invoice_autopay_task

    invoice_id = str(invoice.pk)
    enqueue_on_commit(invoice_autopay_task, invoice_id)


def invoices_finalize_due(*, now: datetime) -> int:
    """Finalize every draft whose review window has passed and that finance is not holding (the beat task)."""
    due = list(
        Invoice.objects.filter(status=InvoiceStatus.DRAFT, held=False, finalize_after__lte=now)
        .order_by("issued_at", "pk")
        .values_list("pk", flat=True)[:1000]
    )
    for invoice_id in due:
        invoice_finalize(invoice_id=invoice_id, now=now)
    return len(due)


def invoice_hold(*, actor: Actor, invoice_id: Any, reason: str, now: datetime) -> Invoice:
    """Keep a draft from being finalized when its review window ends, until finance releases or finalizes it."""
    require_platform_finance(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(_("Say why the invoice is held."), errors={"reason": [_("This field is required.")]})
    with transaction.atomic():
        invoice = _locked_invoice(invoice_id)
        if invoice.status != InvoiceStatus.DRAFT:
            raise Conflict(_("Only a draft invoice can be held."), code="invalid_transition")
        invoice.held, invoice.hold_reason = True, reason[:500]
        invoice.save(update_fields=["held", "hold_reason"])
        audit_record(
            action="invoice.held",
            organization=actor.organization,
            actor=actor,
            target=invoice,
            after={"reason": invoice.hold_reason},
            now=now,
        )
    return invoice


def invoice_release(*, actor: Actor, invoice_id: Any, now: datetime) -> Invoice:
    require_platform_finance(actor)
    with transaction.atomic():
        invoice = _locked_invoice(invoice_id)
        if invoice.status != InvoiceStatus.DRAFT or not invoice.held:
            return invoice
        invoice.held = False
        invoice.save(update_fields=["held"])
        audit_record(
            action="invoice.released",
            organization=actor.organization,
            actor=actor,
            target=invoice,
            before={"held": True, "hold_reason": invoice.hold_reason},
            after={"held": False},
            now=now,
        )
    return invoice


# --- credit notes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreditRequest:
    line_id: int
    amount: Decimal


def credited_so_far(invoice: Invoice) -> dict[int, Decimal]:
    return dict(
        CreditNoteLine.objects.filter(invoice_line__invoice=invoice)
        .values_list("invoice_line_id")
        .annotate(total=Sum("amount"))
    )


def creditable(invoice: Invoice) -> Decimal:
    """What may still be credited on an invoice: its total (what the consumer owes, after vouchers) less the
    credit notes already issued against it."""
    credited = CreditNote.objects.filter(invoice=invoice).aggregate(total=Sum("total"))["total"] or ZERO
    return invoice.total - credited


def credit_note_issue(
    *, actor: Actor, invoice_id: Any, lines: list[CreditRequest], reason: str, now: datetime
) -> CreditNote:
    """Correct a finalized (or paid) invoice: credit the consumer for parts of its lines, in the open period.

    The credit note is posted to the ledger (the consumer's receivable falls, and so does what the centers of
    those lines are owed) and shows on the center's next statement; the consumer's credit is netted against what
    it owes next, or refunded. At most each line's amount, and in all at most the invoice's total, is credited."""
    require_platform_finance(actor)
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if not reason:
        errors["reason"] = [_("Say why the invoice is corrected.")]
    wanted = [request for request in lines if request.amount != 0]
    if not wanted:
        errors["lines"] = [_("Credit at least one line.")]
    if errors:
        raise InvalidInput(next(iter(errors.values()))[0], errors=errors)
    with transaction.atomic():
        invoice = _locked_invoice(invoice_id)
        if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
            raise Conflict(
                _("Only a finalized or paid invoice is corrected with a credit note; this one is %(status)s.")
                % {"status": InvoiceStatus(invoice.status).label},
                code="invalid_state",
            )
        invoice_lines = {line.pk: line for line in InvoiceLine.objects.filter(invoice=invoice)}
        credited = credited_so_far(invoice)
        per_line: dict[int, Decimal] = defaultdict(Decimal)
        for request in wanted:
            line = invoice_lines.get(request.line_id)
            if line is None:
                raise InvalidInput(_("Line %(id)s is not a line of this invoice.") % {"id": request.line_id})
            amount = request.amount
            if amount < 0 or round_money(amount, invoice.currency) != amount:
                raise InvalidInput(
                    _("Credit a positive amount in whole %(currency)s minor units.") % {"currency": invoice.currency}
                )
            per_line[line.pk] += amount
        for line_id, amount in per_line.items():
            line = invoice_lines[line_id]
            room = line.amount - credited.get(line_id, ZERO)
            if amount > room:
                raise Conflict(
                    _("Line %(id)s can be credited at most %(room)s %(currency)s more.")
                    % {
                        "id": line_id,
                        "room": format_money(max(room, ZERO), invoice.currency),
                        "currency": invoice.currency,
                    },
                    code="credit_exceeds_line",
                )
        total = sum(per_line.values(), ZERO)
        room = creditable(invoice)
        if total > room:
            raise Conflict(
                _("At most %(room)s %(currency)s of this invoice can still be credited.")
                % {"room": format_money(max(room, ZERO), invoice.currency), "currency": invoice.currency},
                code="credit_exceeds_invoice",
            )
        from billing.services.payments import credit_note_settle, invoice_outstanding

        before_outstanding = invoice_outstanding(invoice)
        period = current_period(now)
        note = CreditNote.objects.create(
            invoice=invoice,
            consumer_id=invoice.consumer_id,
            period=period,
            number=next_number("credit_note", f"CN-{period.label}"),
            currency=invoice.currency,
            total=total,
            vat_amount=vat_portion(total, invoice.currency),
            reason=reason[:500],
            issued_at=now,
            issued_by=actor.label,
        )
        CreditNoteLine.objects.bulk_create(
            CreditNoteLine(
                credit_note=note, invoice_line_id=line_id, center_id=invoice_lines[line_id].center_id, amount=amount
            )
            for line_id, amount in sorted(per_line.items())
        )
        per_center: dict[Any, Decimal] = defaultdict(Decimal)
        for line_id, amount in per_line.items():
            per_center[invoice_lines[line_id].center_id] += amount
        journal_post(
            key=f"credit_note:{note.pk}",
            kind="credit_note",
            memo=f"Credit note {note.number} on {invoice.number}",
            postings=[
                *(
                    debit(center_id, AccountRole.CENTER_PAYABLE, invoice.currency, amount)
                    for center_id, amount in per_center.items()
                ),
                credit(invoice.consumer_id, AccountRole.RECEIVABLE, invoice.currency, total),
            ],
            now=now,
            period=period,
        )
        # Credit beyond what was still owed on a paid invoice becomes the consumer's credit balance again.
        given_back = credit_note_settle(
            invoice=invoice, credit_total=total, before_outstanding=before_outstanding, now=now, note=note
        )
        if given_back and settings.STRIPE_ENABLED:
            # What was paid by card goes back to the card, once the credit note is committed.
            from billing.tasks import credit_note_refund_task

            note_id = str(note.pk)
            enqueue_on_commit(credit_note_refund_task, note_id)
        audit_record(
            action="credit_note.issued",
            organization=actor.organization,
            actor=actor,
            target=note,
            after={"invoice": invoice.number, "number": note.number, "total": str(total), "reason": note.reason},
            now=now,
        )
        send_to_organizations(
            [invoice.consumer_id],
            {"event": "credit_note.issued", "invoice": str(invoice.pk), "credit_note": note.number},
        )
    return note


def invoice_void(*, actor: Actor, invoice_id: Any, reason: str, now: datetime) -> Invoice:
    """Void a finalized, unpaid invoice that no voucher paid part of: a credit note for everything not yet
    credited, then status void."""
    require_platform_finance(actor)
    with transaction.atomic():
        invoice = _locked_invoice(invoice_id)
        if invoice.status != InvoiceStatus.FINALIZED:
            raise Conflict(_("Only a finalized, unpaid invoice can be voided."), code="invalid_transition")
        if invoice.voucher_amount:
            # The sponsor's share is already claimed and the centers are owed it: correct such an invoice line by
            # line with credit notes instead.
            raise Conflict(
                _("A voucher paid part of this invoice; correct it with a credit note instead of voiding it."),
                code="invoice_has_voucher",
            )
        credited = credited_so_far(invoice)
        # Credit every positive line's uncredited rest, up to what the invoice still owes (a negative line, such as
        # a commitment adjustment, makes the lines add up to more than the total).
        budget, requests = creditable(invoice), []
        for line in InvoiceLine.objects.filter(invoice=invoice, amount__gt=0).order_by("pk"):
            take = min(line.amount - credited.get(line.pk, ZERO), budget)
            if take > 0:
                requests.append(CreditRequest(line.pk, take))
                budget -= take
        if requests:
            credit_note_issue(actor=actor, invoice_id=invoice.pk, lines=requests, reason=reason, now=now)
        invoice = _locked_invoice(invoice_id)
        _move(invoice, InvoiceStatus.VOID)
        invoice.voided_at = now
        invoice.save(update_fields=["status", "voided_at"])
        audit_record(
            action="invoice.voided",
            organization=actor.organization,
            actor=actor,
            target=invoice,
            after={"number": invoice.number, "reason": reason},
            now=now,
        )
    return invoice


def invoice_mark_emailed(*, invoice_id: Any, now: datetime) -> None:
    """Remember that the invoice was e-mailed, so a retried task does not send it again."""
    Invoice.objects.filter(pk=invoice_id, emailed_at__isnull=True).update(emailed_at=now)
