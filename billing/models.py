"""Settlement data: the usage records center agents report (API.md, Agents; billing rule 1), billing periods,
invoices and credit notes, center statements, vouchers, and the double-entry ledger (billing rules 2–7)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from marketplace.models import Agent, Booking


class UsageRecord(models.Model):
    """One agent-reported interval of a booking's devices. Append-only: a database trigger refuses UPDATE and
    DELETE. `record_id` is the agent's id, unique per center (a database constraint, so two concurrent uploads of
    one id cannot both land); `payload_hash` tells a repeat (a duplicate) from a changed payload (a conflict)."""

    id = models.BigAutoField(primary_key=True)
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    record_id = models.CharField(_("record id"), max_length=200)
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="usage_records")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    devices = models.PositiveIntegerField()
    # devices × (end − start) in seconds, exact to the microsecond (billing rule 1).
    device_seconds = models.DecimalField(max_digits=24, decimal_places=6)
    utilization = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    energy_kwh = models.DecimalField(max_digits=16, decimal_places=6, null=True, blank=True)
    received_at = models.DateTimeField()
    payload_hash = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["center", "record_id"], name="usage_unique_record_id"),
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="usage_interval_ordered"),
            models.CheckConstraint(condition=Q(devices__gte=1), name="usage_devices_positive"),
            models.CheckConstraint(condition=Q(device_seconds__gt=0), name="usage_device_seconds_positive"),
            models.CheckConstraint(
                condition=Q(utilization__isnull=True) | (Q(utilization__gte=0) & Q(utilization__lte=1)),
                name="usage_utilization_fraction",
            ),
            models.CheckConstraint(
                condition=Q(energy_kwh__isnull=True) | Q(energy_kwh__gte=0), name="usage_energy_non_negative"
            ),
        ]
        indexes = [
            models.Index(fields=["booking", "start"], name="usage_booking_start"),
            # A period's close reads the records of a month (by start) and those received since the last close
            # (by received_at). Both columns grow with the table, so block-range indexes serve them at a fraction
            # of a B-tree's cost on every insert.
            BrinIndex(fields=["start"], name="usage_start_brin"),
            BrinIndex(fields=["received_at"], name="usage_received_brin"),
        ]

    def __str__(self) -> str:
        return f"{self.record_id}: {self.devices}× [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M})"


class BookingUsage(models.Model):
    """The running total of a booking's accepted usage, kept in the same transaction as the records (under the
    booking's row lock), so that "usage so far" is one row read however many records a booking has."""

    booking = models.OneToOneField(Booking, on_delete=models.PROTECT, primary_key=True, related_name="usage_total")
    records = models.PositiveIntegerField(default=0)
    device_seconds = models.DecimalField(max_digits=24, decimal_places=6, default=0)
    first_start = models.DateTimeField(null=True, blank=True)
    last_end = models.DateTimeField(null=True, blank=True)
    # The longest record's duration: a record overlapping [low, high) starts after low − longest, which turns the
    # overlap check into an index range scan instead of a read of the booking's whole history.
    longest = models.DurationField(default=timedelta(0))
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.booking_id}: {self.device_seconds} device-seconds"


# --- periods ------------------------------------------------------------------------------------------------------


class PeriodStatus(models.TextChoices):
    OPEN = "open", _("Open")
    CLOSING = "closing", _("Closing")
    CLOSED = "closed", _("Closed")


class BillingPeriod(models.Model):
    """A calendar month in UTC, per deployment: open → closing → closed. A closed period is locked.

    `usage_cutoff` is the instant (on the database's clock) that splits usage between this period's close and later
    ones: records received at or before it are billed by this close, later ones as late usage in the next. It is
    taken while no upload is in flight (billing.services.periods), so no record received before it can be missed.
    """

    id = models.BigAutoField(primary_key=True)
    start = models.DateTimeField(_("start"), unique=True)
    end = models.DateTimeField(_("end"))
    status = models.CharField(_("status"), max_length=10, choices=PeriodStatus.choices, default=PeriodStatus.OPEN)
    usage_cutoff = models.DateTimeField(null=True, blank=True)
    closing_started_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="period_ordered"),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in PeriodStatus]), name="period_status_valid"),
            models.CheckConstraint(
                condition=Q(status="open") | Q(usage_cutoff__isnull=False), name="period_closing_has_cutoff"
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def is_closed(self) -> bool:
        return self.status == PeriodStatus.CLOSED


class DocumentSequence(models.Model):
    """Gapless numbering per deployment (invoices, credit notes): the counter row is locked and incremented in
    the transaction that assigns the number, so a rolled-back assignment leaves no hole."""

    name = models.CharField(max_length=32, primary_key=True)
    last_value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.last_value}"


# --- invoices -----------------------------------------------------------------------------------------------------


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    FINALIZED = "finalized", _("Finalized")
    PAID = "paid", _("Paid")
    VOID = "void", _("Void")


INVOICE_TRANSITIONS: dict[str, frozenset[str]] = {
    InvoiceStatus.DRAFT: frozenset({InvoiceStatus.FINALIZED}),
    InvoiceStatus.FINALIZED: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
    InvoiceStatus.PAID: frozenset(),
    InvoiceStatus.VOID: frozenset(),
}


class Invoice(models.Model):
    """What a consumer owes for one period in one currency. Its amounts are fixed when the period closes (a
    database trigger refuses any change to them); corrections are credit notes. The number is assigned, gapless,
    when it is finalized."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="invoices")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="invoices")
    currency = models.CharField(max_length=3)
    number = models.CharField(max_length=32, unique=True, null=True, blank=True)
    status = models.CharField(max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    subtotal = models.DecimalField(max_digits=18, decimal_places=4)
    voucher_amount = models.DecimalField(max_digits=18, decimal_places=4)
    total = models.DecimalField(max_digits=18, decimal_places=4)
    # Prices are tax-inclusive: the VAT portion of the subtotal at the issuer's rate, shown, never added.
    vat_rate = models.DecimalField(max_digits=5, decimal_places=4)
    vat_amount = models.DecimalField(max_digits=18, decimal_places=4)
    issued_at = models.DateTimeField()
    finalize_after = models.DateTimeField()
    held = models.BooleanField(default=False)
    hold_reason = models.CharField(max_length=500, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "consumer__name"]
        constraints = [
            models.UniqueConstraint(fields=["consumer", "period", "currency"], name="invoice_one_per_period"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in InvoiceStatus]), name="invoice_status_valid"
            ),
            models.CheckConstraint(condition=Q(total=F("subtotal") - F("voucher_amount")), name="invoice_total"),
            models.CheckConstraint(condition=Q(voucher_amount__gte=0), name="invoice_voucher_non_negative"),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False), name="invoice_finalized_has_number"
            ),
        ]
        indexes = [models.Index(fields=["status", "finalize_after"], name="invoice_status_finalize")]

    def __str__(self) -> str:
        return self.number or f"draft {self.period.label} {self.consumer}"


class LineKind(models.TextChoices):
    USAGE = "usage", _("Usage")
    COMMITMENT = "commitment", _("Minimum commitment")
    CANCELLATION = "cancellation", _("Late cancellation")
    ADJUSTMENT = "adjustment", _("Adjustment")


class InvoiceLine(models.Model):
    """One charge of an invoice: a booking's metered usage in the period (billing rule 2), its late usage for a
    closed period (rule 1, `late`), or its minimum commitment (rules 3 and 4). Append-only."""

    id = models.BigAutoField(primary_key=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=LineKind.choices)
    late = models.BooleanField(default=False)
    # The closed period a late line's usage belongs to.
    usage_period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Exact device-seconds (rule 1); device-hours are this / 3600, never rounded before the amount is.
    device_seconds = models.DecimalField(max_digits=28, decimal_places=6)
    unit_price = models.DecimalField(max_digits=12, decimal_places=4)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    voucher_eligible = models.BooleanField(default=False)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=[k.value for k in LineKind]), name="invoice_line_kind_valid"),
            models.CheckConstraint(condition=Q(late=False) | Q(usage_period__isnull=False), name="late_line_period"),
        ]
        indexes = [models.Index(fields=["booking", "kind"], name="invoice_line_booking_kind")]

    def __str__(self) -> str:
        return f"{self.kind} {self.booking_id}: {self.amount}"

    @property
    def device_hours(self) -> Decimal:
        return self.device_seconds / Decimal(3600)


class CreditNoteStatus(models.TextChoices):
    OPEN = "open", _("Open credit")
    REFUNDED = "refunded", _("Refunded")


class CreditNote(models.Model):
    """A correction of a finalized invoice: it credits the consumer (netted against what it owes, or refunded)
    and takes the amount back from the centers whose lines it corrects. Issued in the open period."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="credit_notes")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=32, unique=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=18, decimal_places=4)
    vat_amount = models.DecimalField(max_digits=18, decimal_places=4)
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=CreditNoteStatus.choices, default=CreditNoteStatus.OPEN)
    issued_at = models.DateTimeField()
    issued_by = models.CharField(max_length=254)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [models.CheckConstraint(condition=Q(total__gt=0), name="credit_note_positive")]

    def __str__(self) -> str:
        return self.number


class CreditNoteLine(models.Model):
    id = models.BigAutoField(primary_key=True)
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="lines")
    invoice_line = models.ForeignKey(InvoiceLine, on_delete=models.PROTECT, related_name="credits")
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    amount = models.DecimalField(max_digits=18, decimal_places=4)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="credit_note_line_positive")]

    def __str__(self) -> str:
        return f"{self.credit_note_id}: {self.amount}"


# --- center statements ------------------------------------------------------------------------------------------


class StatementStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    PAID = "paid", _("Paid out")


class Statement(models.Model):
    """A center's settlement for one period and currency (billing rule 6): gross, the platform's fee, payout.
    Credit notes issued in the period against the center's lines are shown apart and reduce the net payout."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="statements")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="statements")
    currency = models.CharField(max_length=3)
    gross = models.DecimalField(max_digits=18, decimal_places=4)
    fee_rate = models.DecimalField(max_digits=5, decimal_places=4)
    fee = models.DecimalField(max_digits=18, decimal_places=4)
    payout = models.DecimalField(max_digits=18, decimal_places=4)
    credit_adjustment = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    fee_adjustment = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    net_payout = models.DecimalField(max_digits=18, decimal_places=4)
    status = models.CharField(max_length=10, choices=StatementStatus.choices, default=StatementStatus.ISSUED)
    issued_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at", "center__name"]
        constraints = [
            models.UniqueConstraint(fields=["center", "period", "currency"], name="statement_one_per_period"),
            models.CheckConstraint(condition=Q(payout=F("gross") - F("fee")), name="statement_payout"),
            models.CheckConstraint(
                condition=Q(net_payout=F("payout") + F("credit_adjustment") - F("fee_adjustment")),
                name="statement_net_payout",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.center} {self.period.label} {self.currency}"


# --- vouchers (算力券) ---------------------------------------------------------------------------------------------


class VoucherFlow(models.TextChoices):
    DEDUCT = "deduct", _("Deducted on the invoice")
    REIMBURSE = "reimburse", _("Reimbursed after payment")


class ProgramStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Open for applications")
    CLOSED = "closed", _("Closed")


class VoucherProgram(models.Model):
    """A sponsor's voucher program: what share of eligible compute it pays, up to what budget, for whom.

    The budget is committed when grants are approved (`granted` ≤ `budget`) and drawn when they are redeemed
    (`redeemed` ≤ `granted`): both are counters kept under the program's row lock and backed by database checks,
    so no concurrency can take the budget below zero."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sponsor = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="voucher_programs")
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    currency = models.CharField(_("currency"), max_length=3)
    rate = models.DecimalField(_("share paid"), max_digits=5, decimal_places=4, help_text=_("0.5 pays half."))
    budget = models.DecimalField(_("total budget"), max_digits=18, decimal_places=4)
    cap_per_grant = models.DecimalField(_("cap per grant"), max_digits=18, decimal_places=4)
    granted = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    redeemed = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    valid_from = models.DateTimeField(_("valid from"))
    valid_until = models.DateTimeField(_("valid until"))
    eligible_kinds = ArrayField(models.CharField(max_length=20), verbose_name=_("eligible consumer kinds"))
    vendors = ArrayField(
        models.CharField(max_length=64), default=list, blank=True, verbose_name=_("accelerator vendors")
    )
    domestic_only = models.BooleanField(_("domestic chips only"), default=False)
    regions = ArrayField(models.CharField(max_length=64), default=list, blank=True, verbose_name=_("center regions"))
    flow = models.CharField(_("money flow"), max_length=10, choices=VoucherFlow.choices, default=VoucherFlow.DEDUCT)
    status = models.CharField(max_length=10, choices=ProgramStatus.choices, default=ProgramStatus.DRAFT)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gt=0) & Q(rate__lte=1), name="program_rate_fraction"),
            models.CheckConstraint(condition=Q(budget__gt=0), name="program_budget_positive"),
            models.CheckConstraint(condition=Q(cap_per_grant__gt=0), name="program_cap_positive"),
            models.CheckConstraint(condition=Q(granted__lte=F("budget")), name="program_budget_not_exceeded"),
            models.CheckConstraint(
                condition=Q(redeemed__gte=0) & Q(redeemed__lte=F("granted")), name="program_redeemed_within_granted"
            ),
            models.CheckConstraint(condition=Q(valid_until__gt=F("valid_from")), name="program_validity_ordered"),
        ]

    def __str__(self) -> str:
        return self.name


class GrantStatus(models.TextChoices):
    APPLIED = "applied", _("Applied")
    ACTIVE = "active", _("Active")
    REJECTED = "rejected", _("Rejected")
    EXHAUSTED = "exhausted", _("Exhausted")
    EXPIRED = "expired", _("Expired")


GRANT_TRANSITIONS: dict[str, frozenset[str]] = {
    GrantStatus.APPLIED: frozenset({GrantStatus.ACTIVE, GrantStatus.REJECTED}),
    GrantStatus.ACTIVE: frozenset({GrantStatus.EXHAUSTED, GrantStatus.EXPIRED}),
    GrantStatus.REJECTED: frozenset(),
    GrantStatus.EXHAUSTED: frozenset(),
    GrantStatus.EXPIRED: frozenset(),
}


class VoucherGrant(models.Model):
    """A consumer's voucher under a program: applied for, approved (active) or rejected by the sponsor, then
    drawn down by redemptions until exhausted or expired."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    program = models.ForeignKey(VoucherProgram, on_delete=models.PROTECT, related_name="grants")
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="voucher_grants")
    requested_amount = models.DecimalField(_("amount requested"), max_digits=18, decimal_places=4)
    purpose = models.TextField(_("purpose"), blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    remaining = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    status = models.CharField(max_length=10, choices=GrantStatus.choices, default=GrantStatus.APPLIED)
    valid_from = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField()
    applied_by = models.CharField(max_length=254, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=254, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-applied_at"]
        constraints = [
            models.CheckConstraint(condition=Q(requested_amount__gt=0), name="grant_request_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")), name="grant_remaining_within_amount"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["applied", "rejected"]) | (Q(expires_at__isnull=False) & Q(amount__gt=0)),
                name="grant_approved_terms",
            ),
            # One open application or active grant per consumer and program.
            models.UniqueConstraint(
                fields=["program", "consumer"],
                condition=Q(status__in=["applied", "active"]),
                name="grant_one_open_per_program",
            ),
        ]
        indexes = [models.Index(fields=["consumer", "status", "expires_at"], name="grant_consumer_status")]

    def __str__(self) -> str:
        return f"{self.program} → {self.consumer}"


class VoucherClaimStatus(models.TextChoices):
    OPEN = "open", _("Open")
    PAID = "paid", _("Paid")


class VoucherClaim(models.Model):
    """What a sponsor owes the platform for one period and currency: the sum of its grants' redemptions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sponsor = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="voucher_claims")
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="voucher_claims")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    status = models.CharField(max_length=10, choices=VoucherClaimStatus.choices, default=VoucherClaimStatus.OPEN)
    issued_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    payment_reference = models.CharField(max_length=200, blank=True)
    paid_by = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        constraints = [
            models.UniqueConstraint(fields=["sponsor", "period", "currency"], name="voucher_claim_one_per_period"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="voucher_claim_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.sponsor} {self.period.label} {self.amount} {self.currency}"


class VoucherRedemption(models.Model):
    """A grant's share of one invoice (billing rule 5): at most one per invoice."""

    id = models.BigAutoField(primary_key=True)
    grant = models.ForeignKey(VoucherGrant, on_delete=models.PROTECT, related_name="redemptions")
    invoice = models.OneToOneField(Invoice, on_delete=models.PROTECT, related_name="redemption")
    claim = models.ForeignKey(VoucherClaim, on_delete=models.PROTECT, related_name="redemptions")
    eligible_amount = models.DecimalField(max_digits=18, decimal_places=4)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="redemption_positive")]

    def __str__(self) -> str:
        return f"{self.grant_id} → {self.invoice_id}: {self.amount}"


class ReimbursementStatus(models.TextChoices):
    SUBMITTED = "submitted", _("Submitted")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    PAID = "paid", _("Paid")


REIMBURSEMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    ReimbursementStatus.SUBMITTED: frozenset({ReimbursementStatus.APPROVED, ReimbursementStatus.REJECTED}),
    ReimbursementStatus.APPROVED: frozenset({ReimbursementStatus.PAID}),
    ReimbursementStatus.REJECTED: frozenset(),
    ReimbursementStatus.PAID: frozenset(),
}


def _payment_proof_path(instance: ReimbursementClaim, filename: str) -> str:
    return f"reimbursements/{instance.consumer_id}/{uuid.uuid4().hex}-{filename[-80:]}"


class ReimbursementClaim(models.Model):
    """A consumer's claim on a reimbursement-flow grant for an invoice it paid in full: the sponsor reviews the
    evidence (the invoice, a usage certificate from metered data, the payment proof) and pays the consumer."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    grant = models.ForeignKey(VoucherGrant, on_delete=models.PROTECT, related_name="reimbursements")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="reimbursements")
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    eligible_amount = models.DecimalField(max_digits=18, decimal_places=4)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    currency = models.CharField(max_length=3)
    payment_reference = models.CharField(_("payment reference"), max_length=200)
    payment_proof = models.FileField(_("payment proof"), upload_to=_payment_proof_path, max_length=300)
    status = models.CharField(max_length=10, choices=ReimbursementStatus.choices, default=ReimbursementStatus.SUBMITTED)
    submitted_at = models.DateTimeField()
    submitted_by = models.CharField(max_length=254)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=254, blank=True)
    decision_note = models.CharField(max_length=500, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    sponsor_payment_reference = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-submitted_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="reimbursement_positive"),
            models.UniqueConstraint(
                fields=["invoice"], condition=~Q(status="rejected"), name="reimbursement_one_per_invoice"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} {self.invoice_id}: {self.amount}"


# --- the ledger ---------------------------------------------------------------------------------------------------


class AccountRole(models.TextChoices):
    RECEIVABLE = "receivable", _("Receivable from consumer")
    CENTER_PAYABLE = "center_payable", _("Payable to center")
    VOUCHER_RECEIVABLE = "voucher_receivable", _("Voucher receivable from sponsor")
    FEE_REVENUE = "fee_revenue", _("Platform fee revenue")
    CASH = "cash", _("Cash and bank")


class LedgerAccount(models.Model):
    """One account per organization, role and currency; the platform's own accounts have no organization."""

    id = models.BigAutoField(primary_key=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_accounts"
    )
    role = models.CharField(max_length=24, choices=AccountRole.choices)
    currency = models.CharField(max_length=3)

    class Meta:
        ordering = ["role", "currency"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "role", "currency"], nulls_distinct=False, name="ledger_account_unique"
            ),
            models.CheckConstraint(condition=Q(role__in=[r.value for r in AccountRole]), name="ledger_role_valid"),
        ]

    def __str__(self) -> str:
        owner = self.organization.name if self.organization_id else "platform"
        return f"{owner} · {self.get_role_display()} · {self.currency}"


class JournalEntry(models.Model):
    """One balanced money movement. Append-only; `key` makes posting idempotent (one entry per invoice,
    redemption, fee, credit note, payment, payout)."""

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=24)
    memo = models.CharField(max_length=300)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    posted_at = models.DateTimeField()

    class Meta:
        ordering = ["-posted_at", "-id"]
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return f"{self.key}: {self.memo}"


class JournalLine(models.Model):
    """A signed amount on one account: positive is a debit, negative a credit. PostgreSQL checks at commit that
    every entry's lines sum to zero per currency, and refuses UPDATE and DELETE."""

    id = models.BigAutoField(primary_key=True)
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="lines")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=18, decimal_places=4)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="journal_line_not_zero")]

    def __str__(self) -> str:
        return f"{self.account}: {self.amount}"
