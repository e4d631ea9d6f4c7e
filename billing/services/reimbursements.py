"""Reimbursement of vouchers whose program pays after the fact (flow `reimburse`): the consumer pays its invoice in
full, then claims the voucher's share of it from the sponsor with evidence; the sponsor reviews it and pays the
consumer directly.

The amount claimed is min(round(rate × eligible amount of the invoice), the grant's remaining amount), where a line
is eligible by the same rule as a deducted voucher (billing rule 5: `program_admits`, related parties excluded),
net of what credit notes gave back on those lines. Vouchers never stack: an invoice that a deducted voucher
already reduced cannot be claimed again, and an invoice is claimed at most once (a rejected claim may be made
again; the database's unique constraint backs this).

Approval draws the grant's remaining amount and the program's `redeemed` counter under row locks, taken in the
order used everywhere grants and programs are locked (grants before programs, primary-key order), so concurrent
approvals can never take either below zero; the database's check constraints back that too.

The platform's ledger records none of this: the money moves between the sponsor and the consumer, outside the
platform's accounts (the invoice itself was settled in full by the consumer).

States (REIMBURSEMENT_TRANSITIONS): submitted → approved → paid, or submitted → rejected.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from accounts.models import Scope
from accounts.selectors import as_uuid
from accounts.services import audit_record
from billing.models import (
    GRANT_TRANSITIONS,
    REIMBURSEMENT_TRANSITIONS,
    BillingPeriod,
    CreditNoteLine,
    GrantStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    ReimbursementClaim,
    ReimbursementStatus,
    VoucherFlow,
    VoucherGrant,
    VoucherProgram,
    VoucherRedemption,
)
from billing.services.rating import BookingFacts
from billing.services.vouchers import MANAGER_ROLES, _require_sponsor_manager, program_admits, related_party_ids
from marketplace.models import Booking
from marketplace.money import format_money, round_money
from marketplace.realtime import send_to_organizations
from marketplace.timestamps import rfc3339

ZERO = Decimal(0)
SECONDS_PER_HOUR = Decimal(3600)

MAX_PROOF_BYTES = 10 * 1024 * 1024
# What a proof's first bytes must be, whatever its name says: a renamed executable is refused.
PROOF_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF-", "pdf", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"\xff\xd8\xff", "jpg", "image/jpeg"),
)
PROOF_EXTENSIONS = frozenset({"pdf", "png", "jpg", "jpeg"})
REIMBURSABLE_INVOICE_STATUSES = (InvoiceStatus.FINALIZED, InvoiceStatus.PAID)


# --- what an invoice is worth to a grant ----------------------------------------------------------------------


@dataclass(frozen=True)
class ReimbursementTerms:
    eligible_amount: Decimal
    amount: Decimal


def booking_facts(booking_ids: set[Any]) -> dict[Any, BookingFacts]:
    """The facts rule 5 judges a line by, for these bookings (their terms as snapshotted)."""
    facts: dict[Any, BookingFacts] = {}
    bookings = Booking.objects.filter(pk__in=booking_ids).select_related(
        "offering__accelerator", "offering__site", "offering__center"
    )
    for booking in bookings:
        offering = booking.offering
        facts[booking.pk] = BookingFacts(
            id=booking.pk,
            consumer_id=booking.consumer_id,
            center_id=offering.center_id,
            devices=booking.devices,
            start=booking.start,
            end=booking.end,
            status=booking.status,
            cancelled_at=booking.cancelled_at,
            unit_price=booking.unit_price,
            currency=booking.currency,
            min_commit_fraction=booking.min_commit_fraction,
            booked_seconds=Decimal((booking.end - booking.start).total_seconds()),
            voucher_eligible=offering.voucher_eligible,
            vendor=offering.accelerator.vendor,
            domestic=offering.accelerator.domestic,
            accelerator=offering.accelerator.model,
            region=offering.site.region,
            center_name=offering.center.name,
        )
    return facts


def eligible_lines(program: VoucherProgram, invoice: Invoice) -> list[InvoiceLine]:
    """The invoice's lines the program's filters admit (rule 5), related parties of the consumer excluded."""
    lines = list(invoice.lines.order_by("id"))
    facts = booking_facts({line.booking_id for line in lines if line.booking_id})
    related = related_party_ids(invoice.consumer_id)
    return [
        line for line in lines if line.booking_id in facts and program_admits(program, facts[line.booking_id], related)
    ]


def reimbursement_terms(*, grant: VoucherGrant, invoice: Invoice) -> ReimbursementTerms:
    """What `grant` would reimburse of `invoice` now: the eligible amount (net of credit notes on those lines) and
    min(round(rate × eligible), remaining)."""
    program = grant.program
    admitted = eligible_lines(program, invoice)
    gross = sum((line.amount for line in admitted), ZERO)
    credited = (
        CreditNoteLine.objects.filter(invoice_line__in=[line.pk for line in admitted]).aggregate(total=Sum("amount"))[
            "total"
        ]
        or ZERO
    )
    eligible = max(gross - credited, ZERO)
    amount = min(round_money(program.rate * eligible, program.currency), grant.remaining)
    return ReimbursementTerms(eligible_amount=eligible, amount=max(amount, ZERO))


def invoice_in_grant_validity(grant: VoucherGrant, invoice: Invoice) -> bool:
    """The grant was valid during (part of) the invoice's period, as a deducted voucher would need (rule 5)."""
    period = invoice.period
    return (
        grant.valid_from is not None
        and grant.expires_at is not None
        and grant.valid_from < period.end
        and grant.expires_at > period.start
    )


# --- the payment proof ------------------------------------------------------------------------------------------


def check_payment_proof(upload: UploadedFile | None) -> str:
    """The proof's file extension as its content proves it ("pdf", "png" or "jpg"), or InvalidInput."""

    def refuse(message: str) -> InvalidInput:
        return InvalidInput(message, errors={"payment_proof": [message]}, code="invalid_proof")

    if upload is None:
        raise refuse(_("Attach the proof of your payment (a PDF, PNG or JPEG file)."))
    if upload.size is None or upload.size == 0:
        raise refuse(_("The payment proof is empty."))
    if upload.size > MAX_PROOF_BYTES:
        raise refuse(_("The payment proof is larger than 10 MB."))
    name = (upload.name or "").rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in PROOF_EXTENSIONS:
        raise refuse(_("The payment proof must be a PDF, PNG or JPEG file."))
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    # The stored name follows the content, not the name given: a PNG named .pdf is served as the PNG it is.
    for signature, kind, _content_type in PROOF_SIGNATURES:
        if head.startswith(signature):
            return kind
    raise refuse(
        _(
            "The file named “%(name)s” is not a PDF, PNG or JPEG document: its content says otherwise, whatever "
            "its name. Upload the bank's receipt as a PDF or a picture."
        )
        % {"name": name[:80]}
    )


def proof_content_type(claim: ReimbursementClaim) -> str:
    extension = claim.payment_proof.name.rsplit(".", 1)[-1].lower()
    return {"pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg"}.get(
        extension, "application/octet-stream"
    )


# --- submission --------------------------------------------------------------------------------------------------


def _require_consumer_manager(actor: Actor) -> None:
    if not actor.organization.is_consumer:
        raise Forbidden(
            _("Enterprises, universities and institutes claim voucher reimbursements."), code="wrong_organization_kind"
        )
    if actor.role is not None and actor.role not in MANAGER_ROLES:
        raise Forbidden(_("Only your organization's owners, admins and finance staff claim reimbursements."))
    if actor.role is None and Scope.BILLING not in actor.scopes:
        raise Forbidden(_("This token lacks the billing scope."))


def reimbursement_submit(
    *,
    actor: Actor,
    grant_id: Any,
    invoice_id: Any,
    payment_reference: str,
    payment_proof: UploadedFile | None,
    now: datetime,
) -> ReimbursementClaim:
    """The consumer claims the voucher's share of one of its finalized or paid invoices, with the bank reference
    of its payment and a proof of it (PDF, PNG or JPEG, at most 10 MB, judged by its content)."""
    _require_consumer_manager(actor)
    consumer = actor.organization
    grant = (
        VoucherGrant.objects.select_related("program__sponsor").filter(pk=as_uuid(grant_id), consumer=consumer).first()
    )
    if grant is None:
        raise NotFound(_("No such voucher."))
    program = grant.program
    if program.flow != VoucherFlow.REIMBURSE:
        raise RuleViolation(
            _("This voucher is deducted on your invoices: there is nothing to claim back."), code="not_reimbursable"
        )
    if grant.status != GrantStatus.ACTIVE:
        raise RuleViolation(
            _("This voucher is %(status)s: it reimburses nothing more.")
            % {"status": GrantStatus(grant.status).label.lower()},
            code="grant_not_active",
        )
    invoice = (
        Invoice.objects.select_related("period", "consumer").filter(pk=as_uuid(invoice_id), consumer=consumer).first()
    )
    if invoice is None:
        raise InvalidInput(_("No such invoice."), errors={"invoice": [_("Choose one of your invoices.")]})
    errors: dict[str, list[str]] = {}
    if invoice.status not in REIMBURSABLE_INVOICE_STATUSES:
        errors["invoice"] = [_("Only finalized or paid invoices can be claimed.")]
    elif invoice.currency != program.currency:
        errors["invoice"] = [
            _("The voucher is in %(voucher)s, the invoice in %(invoice)s.")
            % {"voucher": program.currency, "invoice": invoice.currency}
        ]
    elif not invoice_in_grant_validity(grant, invoice):
        errors["invoice"] = [_("The invoice's period lies outside the voucher's validity.")]
    reference = (payment_reference or "").strip()
    if not reference:
        errors["payment_reference"] = [_("Give the bank reference of your payment.")]
    if errors:
        raise InvalidInput(next(iter(errors.values()))[0], errors=errors)
    if VoucherRedemption.objects.filter(invoice=invoice).exists():
        raise RuleViolation(
            _("A voucher was already deducted on this invoice: vouchers never stack."), code="voucher_already_applied"
        )
    if invoice.reimbursements.exclude(status=ReimbursementStatus.REJECTED).exists():
        raise Conflict(_("This invoice has already been claimed."), code="already_claimed")
    terms = reimbursement_terms(grant=grant, invoice=invoice)
    if terms.amount <= 0:
        raise RuleViolation(
            _("Nothing on this invoice is eligible under the program “%(program)s”.") % {"program": program.name},
            code="nothing_eligible",
        )
    extension = check_payment_proof(payment_proof)
    payment_proof.name = f"proof.{extension}"

    claim = ReimbursementClaim(
        grant=grant,
        invoice=invoice,
        consumer=consumer,
        eligible_amount=terms.eligible_amount,
        amount=terms.amount,
        currency=program.currency,
        payment_reference=reference[:200],
        status=ReimbursementStatus.SUBMITTED,
        submitted_at=now,
        submitted_by=actor.label,
    )
    try:
        with transaction.atomic():
            # The file is stored by save(); a rolled-back claim removes it again below.
            claim.payment_proof = payment_proof
            claim.save()
            audit_record(
                action="reimbursement.submitted",
                organization=consumer,
                actor=actor,
                target=claim,
                after={
                    "invoice": invoice.number,
                    "grant": str(grant.pk),
                    "eligible_amount": format_money(terms.eligible_amount, claim.currency),
                    "amount": format_money(terms.amount, claim.currency),
                    "currency": claim.currency,
                    "payment_reference": claim.payment_reference,
                },
                now=now,
            )
    except IntegrityError:
        _discard_file(claim)
        raise Conflict(_("This invoice has already been claimed."), code="already_claimed") from None
    except Exception:
        _discard_file(claim)
        raise
    send_to_organizations([program.sponsor_id], {"event": "reimbursement.submitted", "reimbursement": str(claim.pk)})
    return claim


def _discard_file(claim: ReimbursementClaim) -> None:
    if claim.payment_proof and claim.payment_proof.name:
        claim.payment_proof.storage.delete(claim.payment_proof.name)


# --- the sponsor's decisions -----------------------------------------------------------------------------------


def _sponsor_claim(actor: Actor, claim_id: Any) -> ReimbursementClaim:
    """The claim, locked, if it was made on one of the acting sponsor's programs."""
    _require_sponsor_manager(actor)
    claim = (
        ReimbursementClaim.objects.select_for_update(of=("self",))
        .select_related("invoice", "consumer", "grant__program")
        .filter(pk=as_uuid(claim_id), grant__program__sponsor=actor.organization)
        .first()
    )
    if claim is None:
        raise NotFound(_("No such reimbursement claim."))
    return claim


def _move(claim: ReimbursementClaim, to_status: str) -> None:
    if to_status not in REIMBURSEMENT_TRANSITIONS[claim.status]:
        raise Conflict(
            _("A claim that is %(from)s cannot become %(to)s.")
            % {
                "from": ReimbursementStatus(claim.status).label.lower(),
                "to": ReimbursementStatus(to_status).label.lower(),
            },
            code="invalid_transition",
        )
    claim.status = to_status


def reimbursement_approve(*, actor: Actor, claim_id: Any, now: datetime, note: str = "") -> ReimbursementClaim:
    """The sponsor accepts a claim: its amount is drawn from the grant's remaining amount and added to the program's
    redeemed total, both under row locks (claim, then grant, then program), never below zero."""
    with transaction.atomic():
        claim = _sponsor_claim(actor, claim_id)
        _move(claim, ReimbursementStatus.APPROVED)
        grant = VoucherGrant.objects.select_for_update().get(pk=claim.grant_id)
        VoucherProgram.objects.select_for_update().get(pk=grant.program_id)
        if grant.status != GrantStatus.ACTIVE:
            raise RuleViolation(
                _("The voucher is %(status)s: its budget was released and it can no longer be drawn.")
                % {"status": GrantStatus(grant.status).label.lower()},
                code="grant_not_active",
            )
        if claim.amount > grant.remaining:
            raise RuleViolation(
                _("Only %(left)s %(currency)s is left on this voucher; the claim asks for %(amount)s %(currency)s.")
                % {
                    "left": format_money(grant.remaining, claim.currency),
                    "amount": format_money(claim.amount, claim.currency),
                    "currency": claim.currency,
                },
                code="grant_exhausted",
            )
        grant.remaining -= claim.amount
        if grant.remaining == 0 and GrantStatus.EXHAUSTED in GRANT_TRANSITIONS[grant.status]:
            grant.status = GrantStatus.EXHAUSTED
        # F() expressions: the database's checks judge the stored values, not this process's copy.
        VoucherGrant.objects.filter(pk=grant.pk).update(remaining=F("remaining") - claim.amount, status=grant.status)
        VoucherProgram.objects.filter(pk=grant.program_id).update(redeemed=F("redeemed") + claim.amount)
        claim.decided_at, claim.decided_by, claim.decision_note = now, actor.label, (note or "").strip()[:500]
        claim.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
        audit_record(
            action="reimbursement.approved",
            organization=actor.organization,
            actor=actor,
            target=claim,
            before={"status": ReimbursementStatus.SUBMITTED},
            after={
                "status": claim.status,
                "amount": format_money(claim.amount, claim.currency),
                "grant_remaining": format_money(grant.remaining, claim.currency),
            },
            now=now,
        )
        send_to_organizations([claim.consumer_id], {"event": "reimbursement.decided", "reimbursement": str(claim.pk)})
    return claim


def reimbursement_reject(*, actor: Actor, claim_id: Any, note: str, now: datetime) -> ReimbursementClaim:
    """The sponsor refuses a claim, saying why; the consumer may claim the invoice again."""
    note = (note or "").strip()
    with transaction.atomic():
        claim = _sponsor_claim(actor, claim_id)
        _move(claim, ReimbursementStatus.REJECTED)
        if not note:
            raise InvalidInput(_("Tell the consumer why."), errors={"note": [_("This field is required.")]})
        claim.decided_at, claim.decided_by, claim.decision_note = now, actor.label, note[:500]
        claim.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
        audit_record(
            action="reimbursement.rejected",
            organization=actor.organization,
            actor=actor,
            target=claim,
            before={"status": ReimbursementStatus.SUBMITTED},
            after={"status": claim.status, "note": claim.decision_note},
            now=now,
        )
        send_to_organizations([claim.consumer_id], {"event": "reimbursement.decided", "reimbursement": str(claim.pk)})
    return claim


def reimbursement_pay(*, actor: Actor, claim_id: Any, reference: str, now: datetime) -> ReimbursementClaim:
    """The sponsor records that it paid an approved claim, with its bank reference. Recording it again changes
    nothing."""
    reference = (reference or "").strip()
    if not reference:
        raise InvalidInput(
            _("Give the payment's bank reference."), errors={"reference": [_("This field is required.")]}
        )
    with transaction.atomic():
        claim = _sponsor_claim(actor, claim_id)
        if claim.status == ReimbursementStatus.PAID:
            return claim
        _move(claim, ReimbursementStatus.PAID)
        claim.paid_at, claim.sponsor_payment_reference = now, reference[:200]
        claim.save(update_fields=["status", "paid_at", "sponsor_payment_reference"])
        audit_record(
            action="reimbursement.paid",
            organization=actor.organization,
            actor=actor,
            target=claim,
            before={"status": ReimbursementStatus.APPROVED},
            after={
                "status": claim.status,
                "amount": format_money(claim.amount, claim.currency),
                "reference": claim.sponsor_payment_reference,
            },
            now=now,
        )
        send_to_organizations([claim.consumer_id], {"event": "reimbursement.paid", "reimbursement": str(claim.pk)})
    return claim


# --- the evidence bundle ---------------------------------------------------------------------------------------

# The metered records behind one usage line, counted by the rules rating billed them by: the invoice period's own
# usage received by its cutoff, or (a late line) its usage period's part received after the previous cutoff.
_METERED = """
SELECT count(*),
       coalesce(sum(CASE WHEN r.start >= %(start)s AND r."end" <= %(end)s THEN r.device_seconds
                         ELSE r.devices * extract(epoch FROM least(r."end", %(end)s) - greatest(r.start, %(start)s))
                    END), 0)
FROM billing_usagerecord r
WHERE r.booking_id = %(booking)s AND r.start < %(end)s AND r."end" > %(start)s
  AND r.received_at <= %(cutoff)s AND (%(after)s::timestamptz IS NULL OR r.received_at > %(after)s)
"""

CERTIFICATE_COLUMNS = (
    "booking",
    "center",
    "accelerator",
    "window_start",
    "window_end",
    "usage_period",
    "late",
    "records",
    "device_hours",
)


@dataclass(frozen=True)
class CertificateRow:
    booking: str
    center: str
    accelerator: str
    window_start: str
    window_end: str
    usage_period: str
    late: bool
    records: int
    device_hours: Decimal


def usage_certificate(invoice: Invoice) -> list[CertificateRow]:
    """One row per usage line of the invoice, from the usage records the center's agent reported."""
    period = invoice.period
    previous_cutoff = BillingPeriod.objects.filter(end=period.start).values_list("usage_cutoff", flat=True).first()
    lines = (
        invoice.lines.filter(kind=LineKind.USAGE, booking__isnull=False)
        .select_related("booking__offering__accelerator", "center", "usage_period")
        .order_by("id")
    )
    rows = []
    with connection.cursor() as cursor:
        for line in lines:
            usage_period = line.usage_period if line.late else period
            cursor.execute(
                _METERED,
                {
                    "booking": line.booking_id,
                    "start": usage_period.start,
                    "end": usage_period.end,
                    "cutoff": period.usage_cutoff,
                    "after": previous_cutoff if line.late else None,
                },
            )
            records, seconds = cursor.fetchone()
            booking = line.booking
            rows.append(
                CertificateRow(
                    booking=str(booking.pk),
                    center=line.center.name,
                    accelerator=str(booking.offering.accelerator.model),
                    window_start=rfc3339(booking.start),
                    window_end=rfc3339(booking.end),
                    usage_period=usage_period.label,
                    late=line.late,
                    records=records,
                    device_hours=(Decimal(seconds) / SECONDS_PER_HOUR).quantize(Decimal("0.000001")),
                )
            )
    return rows


def _certificate_csv(rows: list[CertificateRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CERTIFICATE_COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.booking,
                row.center,
                row.accelerator,
                row.window_start,
                row.window_end,
                row.usage_period,
                "yes" if row.late else "no",
                row.records,
                f"{row.device_hours:f}",
            ]
        )
    return out.getvalue().encode("utf-8")


def _certificate_summary(claim: ReimbursementClaim, rows: list[CertificateRow], now: datetime) -> bytes:
    invoice = claim.invoice
    program = claim.grant.program
    currency = claim.currency
    billed = sum((line.device_seconds for line in invoice.lines.filter(kind=LineKind.USAGE)), ZERO)
    metered = sum((row.device_hours for row in rows), ZERO)
    billed_hours = (billed / SECONDS_PER_HOUR).quantize(Decimal("0.000001"))

    def amount(value: Decimal) -> str:
        return f"{format_money(value, currency)} {currency}"

    lines = [
        _("Usage certificate"),
        "",
        _("Invoice: %(number)s") % {"number": invoice.number},
        _("Billing period: %(period)s") % {"period": invoice.period.label},
        _("Consumer: %(name)s") % {"name": claim.consumer.name},
        _("Voucher program: %(program)s (sponsor: %(sponsor)s)")
        % {"program": program.name, "sponsor": program.sponsor.name},
        "",
        _("Bookings: %(count)s") % {"count": len({row.booking for row in rows})},
        _("Usage records: %(count)s") % {"count": sum(row.records for row in rows)},
        _("Device-hours metered: %(hours)s") % {"hours": f"{metered:f}"},
        _("Device-hours billed on usage lines: %(hours)s") % {"hours": f"{billed_hours:f}"},
        "",
        _("Invoice subtotal: %(amount)s") % {"amount": amount(invoice.subtotal)},
        _("Invoice total: %(amount)s") % {"amount": amount(invoice.total)},
        _("Eligible amount under the program: %(amount)s") % {"amount": amount(claim.eligible_amount)},
        _("Share paid by the program: %(rate)s") % {"rate": f"{program.rate.normalize():f}"},
        _("Amount claimed: %(amount)s") % {"amount": amount(claim.amount)},
        _("Consumer's payment reference: %(reference)s") % {"reference": claim.payment_reference},
        _("Claim status: %(status)s") % {"status": ReimbursementStatus(claim.status).label},
        "",
        _(
            "The device-hours are computed from the usage records the computing centers' agents reported, exactly "
            "as billed: the invoice period's usage received by its cutoff, and late usage of earlier periods on "
            "the lines marked late."
        ),
        _("Generated at: %(when)s") % {"when": rfc3339(now)},
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass(frozen=True)
class EvidenceBundle:
    filename: str
    content: bytes


def evidence_bundle(*, claim: ReimbursementClaim, now: datetime) -> EvidenceBundle:
    """A ZIP of the evidence behind a claim: the invoice PDF, the usage certificate (a CSV of the metered bookings
    and a summary of its totals) and the consumer's payment proof. The caller has scoped `claim` to the actor."""
    from billing.pdf import render_invoice_pdf

    invoice = claim.invoice
    number = invoice.number or str(invoice.pk)
    rows = usage_certificate(invoice)
    proof_extension = claim.payment_proof.name.rsplit(".", 1)[-1].lower()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr(f"invoice-{number}.pdf", render_invoice_pdf(invoice))
        bundle.writestr("usage-certificate.csv", _certificate_csv(rows))
        bundle.writestr("usage-summary.txt", _certificate_summary(claim, rows, now))
        with claim.payment_proof.open("rb") as proof:
            bundle.writestr(f"payment-proof.{proof_extension}", proof.read())
    return EvidenceBundle(filename=f"reimbursement-{number}.zip", content=buffer.getvalue())
