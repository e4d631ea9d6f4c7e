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
from django.utils.translation import pgettext_lazy

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
    # Set by finance once the month is reconciled; from then on a database trigger refuses any journal entry,
    # payment allocation or write-off dated into it (later corrections go into the open period).
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=Q(end__gt=F("start")), name="period_ordered"),
            models.CheckConstraint(condition=Q(status__in=[s.value for s in PeriodStatus]), name="period_status_valid"),
            models.CheckConstraint(
                condition=Q(status="open") | Q(usage_cutoff__isnull=False), name="period_closing_has_cutoff"
            ),
            models.CheckConstraint(
                condition=Q(locked_at__isnull=True) | Q(status="closed"), name="period_locked_only_when_closed"
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

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None


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
    # Money received but not yet applied to an invoice (an overpayment, a payment without an invoice): a
    # liability to the consumer, applied to later invoices or refunded.
    CUSTOMER_CREDIT = "customer_credit", _("Consumer credit balance")
    # Money Stripe holds for the platform: charges land here, payouts to the bank and Stripe's fees leave it.
    STRIPE_BALANCE = "stripe_balance", _("Stripe balance")
    PROCESSING_FEES = "processing_fees", _("Payment processing fees")
    WRITE_OFF = "write_off", _("Small differences written off")


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


# --- payments, payouts and reconciliation (issue: payments and the finance workbench) -----------------------------


class PaymentProfile(models.Model):
    """How an organization pays and is paid: its Stripe Customer (consumers), its Stripe Connect account or bank
    account (centers). One row per organization, created on first need."""

    class PayoutMethod(models.TextChoices):
        BANK = "bank", _("Bank transfer")
        STRIPE = "stripe", _("Stripe Connect")

    organization = models.OneToOneField(
        Organization, on_delete=models.PROTECT, primary_key=True, related_name="payment_profile"
    )
    stripe_customer_id = models.CharField(max_length=64, unique=True, null=True, blank=True)
    default_payment_method = models.CharField(max_length=64, blank=True)
    autopay = models.BooleanField(_("charge the saved payment method when an invoice is finalized"), default=False)
    stripe_account_id = models.CharField(_("Stripe Connect account"), max_length=64, unique=True, null=True, blank=True)
    payout_method = models.CharField(_("payout method"), max_length=10, choices=PayoutMethod.choices, default="bank")
    bank_account_name = models.CharField(_("account holder"), max_length=200, blank=True)
    bank_name = models.CharField(_("bank"), max_length=200, blank=True)
    bank_account_number = models.CharField(_("account number"), max_length=64, blank=True)
    bank_code = models.CharField(_("bank code (CNAPS / SWIFT)"), max_length=32, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.organization} payment profile"


class PaymentMethod(models.TextChoices):
    STRIPE = "stripe", _("Stripe")
    BANK_TRANSFER = "bank_transfer", _("Bank transfer")


class PaymentStatus(models.TextChoices):
    PENDING = "pending", pgettext_lazy("payment status", "Pending")
    SUCCEEDED = "succeeded", pgettext_lazy("payment status", "Received")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")


class Payment(models.Model):
    """Money a consumer sent (or tried to send). A received payment posts one ledger entry (Dr cash or Stripe
    balance, Cr the consumer's credit balance); each `PaymentAllocation` then moves part of that credit onto an
    invoice. What no allocation uses stays a credit balance (an overpayment, a payment without an invoice)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="payments")
    method = models.CharField(max_length=16, choices=PaymentMethod.choices)
    status = models.CharField(max_length=10, choices=PaymentStatus.choices, default=PaymentStatus.PENDING)
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    # The invoice the payer meant to pay (PaymentIntent metadata, a reference in the remittance text), if known.
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="payments")
    reference = models.CharField(_("reference"), max_length=200, blank=True)
    payer_name = models.CharField(max_length=200, blank=True)
    # A deterministic key per source (`bank_line:<id>`, `stripe_pi:<id>`, a form's one-time token): recording the
    # same payment twice finds the first.
    key = models.CharField(max_length=120, unique=True)
    stripe_payment_intent = models.CharField(max_length=64, unique=True, null=True, blank=True)
    stripe_charge = models.CharField(max_length=64, unique=True, null=True, blank=True)
    bank_line = models.OneToOneField(
        "BankStatementLine", on_delete=models.PROTECT, null=True, blank=True, related_name="payment"
    )
    received_at = models.DateTimeField(null=True, blank=True)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    failure_message = models.CharField(max_length=500, blank=True)
    recorded_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_positive"),
            models.CheckConstraint(
                condition=~Q(status="succeeded") | (Q(received_at__isnull=False) & Q(period__isnull=False)),
                name="payment_received_has_date",
            ),
        ]
        indexes = [models.Index(fields=["consumer", "currency", "status"], name="payment_consumer_status")]

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.amount} {self.currency} ({self.status})"


class PaymentAllocation(models.Model):
    """Part of a payment (or of the consumer's credit balance) applied to one invoice. Append-only; one transfer
    paying several invoices is several allocations. Posts Dr consumer credit, Cr receivable. A negative allocation
    gives credit back: a credit note on an invoice already paid turns that much of its payment into credit again."""

    id = models.BigAutoField(primary_key=True)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=254, blank=True)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="allocation_not_zero")]

    def __str__(self) -> str:
        return f"{self.payment_id} → {self.invoice_id}: {self.amount}"


class RefundStatus(models.TextChoices):
    PENDING = "pending", pgettext_lazy("refund status", "Pending")
    SUCCEEDED = "succeeded", _("Refunded")
    FAILED = "failed", _("Failed")


class Refund(models.Model):
    """Money returned to a consumer out of its credit balance (a credit note on a paid invoice, an overpayment):
    a Stripe refund of the original charge, or a bank transfer recorded by finance. Posts Dr consumer credit,
    Cr cash or Stripe balance once it succeeds."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    status = models.CharField(max_length=10, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    key = models.CharField(max_length=120, unique=True)
    stripe_refund = models.CharField(max_length=64, unique=True, null=True, blank=True)
    reference = models.CharField(max_length=200, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=254, blank=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_positive")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} to {self.payment_id} ({self.status})"


class WriteOff(models.Model):
    """A small difference finance chose not to chase, with the reason: an invoice's remainder (Dr write-off,
    Cr receivable) or a small overpayment kept (Dr consumer credit, Cr write-off; `amount` negative)."""

    id = models.BigAutoField(primary_key=True)
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="write_offs")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="write_offs")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    reason = models.CharField(max_length=500)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=254)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="write_off_not_zero")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}: {self.reason[:40]}"


class StripeEventStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    IGNORED = "ignored", _("Ignored")
    FAILED = "failed", _("Failed")


class StripeEvent(models.Model):
    """The webhook inbox: every verified event once, unique on Stripe's event id, then handled by a task."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.CharField(max_length=100, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    stripe_created = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=StripeEventStatus.choices, default=StripeEventStatus.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "received_at"], name="stripe_event_status")]

    def __str__(self) -> str:
        return f"{self.event_id} {self.type} ({self.status})"


class PayoutStatus(models.TextChoices):
    PENDING = "pending", pgettext_lazy("payout status", "Pending")
    IN_TRANSIT = "in_transit", _("In transit")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Failed")


class PayoutBatch(models.Model):
    """A bank payment file (CSV) of payouts to centers paid by bank, as handed to the platform's bank."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=32, unique=True)
    currency = models.CharField(max_length=3)
    total = models.DecimalField(max_digits=18, decimal_places=4)
    count = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    created_by = models.CharField(max_length=254)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.number


class Payout(models.Model):
    """A statement's net payout on its way to the center: a Stripe Connect transfer (`transfer_group` per period,
    deterministic idempotency key) or a line of a bank payment file marked paid by finance with the bank's
    reference. Posts Dr center payable, Cr cash or Stripe balance when paid."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    statement = models.OneToOneField(Statement, on_delete=models.PROTECT, related_name="payout_record")
    center = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="payouts")
    currency = models.CharField(max_length=3)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    method = models.CharField(max_length=10, choices=PaymentProfile.PayoutMethod.choices)
    status = models.CharField(max_length=12, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    transfer_group = models.CharField(max_length=64, blank=True)
    stripe_transfer = models.CharField(max_length=64, unique=True, null=True, blank=True)
    batch = models.ForeignKey(PayoutBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="payouts")
    bank_reference = models.CharField(_("bank reference"), max_length=200, blank=True)
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    paid_by = models.CharField(max_length=254, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_positive"),
            models.CheckConstraint(
                condition=~Q(status="paid") | (Q(paid_at__isnull=False) & Q(period__isnull=False)),
                name="payout_paid_has_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.center} {self.amount} {self.currency} ({self.status})"


class ImportStatus(models.TextChoices):
    RUNNING = "running", _("Importing")
    DONE = "done", _("Imported")
    FAILED = "failed", _("Failed")


class BankStatement(models.Model):
    """One uploaded bank statement file. `content_hash` (SHA-256 of the bytes) makes a second upload of the same
    file a clear duplicate; its lines land all at once or not at all."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    filename = models.CharField(max_length=255)
    content_hash = models.CharField(max_length=64, unique=True)
    account = models.CharField(_("bank account"), max_length=100, blank=True)
    # The column mapping used (the documented format's own names, or a mapping finance chose for another bank).
    mapping = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.RUNNING)
    line_count = models.PositiveIntegerField(default=0)
    credits = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    debits = models.DecimalField(max_digits=18, decimal_places=4, default=0)
    uploaded_at = models.DateTimeField()
    uploaded_by = models.CharField(max_length=254)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return self.filename


class BankLineStatus(models.TextChoices):
    UNMATCHED = "unmatched", _("Unmatched")
    PROPOSED = "proposed", _("Match proposed")
    MATCHED = "matched", _("Matched")
    IGNORED = "ignored", _("Ignored")


class BankStatementLine(models.Model):
    """One booked movement on the platform's bank account: positive amounts came in, negative went out."""

    id = models.BigAutoField(primary_key=True)
    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="lines")
    line_number = models.PositiveIntegerField()
    booked_on = models.DateField()
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    currency = models.CharField(max_length=3)
    counterparty = models.CharField(max_length=300, blank=True)
    counterparty_account = models.CharField(max_length=100, blank=True)
    remittance = models.CharField(_("remittance text"), max_length=500, blank=True)
    bank_reference = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=BankLineStatus.choices, default=BankLineStatus.UNMATCHED)

    class Meta:
        ordering = ["booked_on", "id"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "line_number"], name="bank_line_unique_number"),
            models.CheckConstraint(condition=~Q(amount=0), name="bank_line_not_zero"),
        ]
        indexes = [models.Index(fields=["status", "booked_on"], name="bank_line_status")]

    def __str__(self) -> str:
        return f"{self.booked_on} {self.amount} {self.currency} {self.remittance[:40]}"


class StripePayout(models.Model):
    """A Stripe payout of the platform's Stripe balance to its bank: reconciled to the balance transactions it
    contains (net of fees) and to the bank line it arrived as."""

    id = models.CharField(max_length=64, primary_key=True)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20)
    arrival_date = models.DateTimeField(null=True, blank=True)
    bank_line = models.OneToOneField(
        BankStatementLine, on_delete=models.PROTECT, null=True, blank=True, related_name="stripe_payout"
    )
    reconciled_at = models.DateTimeField(null=True, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-arrival_date"]

    def __str__(self) -> str:
        return f"{self.id} {self.amount} {self.currency} ({self.status})"


class StripeBalanceTransaction(models.Model):
    """One line of the platform's Stripe balance history, imported through the API (resumable by id)."""

    id = models.CharField(max_length=64, primary_key=True)
    type = models.CharField(max_length=40)
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    fee = models.DecimalField(max_digits=18, decimal_places=4)
    net = models.DecimalField(max_digits=18, decimal_places=4)
    currency = models.CharField(max_length=3)
    created = models.DateTimeField()
    available_on = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=500, blank=True)
    payout = models.ForeignKey(
        StripePayout, on_delete=models.PROTECT, null=True, blank=True, related_name="balance_transactions"
    )
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="balance_transactions"
    )
    imported_at = models.DateTimeField()

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["source"], name="stripe_bt_source")]

    def __str__(self) -> str:
        return f"{self.id} {self.type} {self.amount} {self.currency}"


class StripeImportRun(models.Model):
    """One import of balance transactions: `cursor` is the last id stored, so a run that stopped resumes there."""

    id = models.BigAutoField(primary_key=True)
    status = models.CharField(max_length=10, choices=ImportStatus.choices, default=ImportStatus.RUNNING)
    cursor = models.CharField(max_length=64, blank=True)
    imported = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    started_by = models.CharField(max_length=254, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Stripe import {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class MatchStatus(models.TextChoices):
    PROPOSED = "proposed", _("Proposed")
    CONFIRMED = "confirmed", _("Confirmed")
    REJECTED = "rejected", _("Rejected")


class MatchMethod(models.TextChoices):
    IDENTIFIER = "identifier", _("By identifier")
    AMOUNT_DATE = "amount_date", _("By amount and date")
    MANUAL = "manual", _("By hand")


class ReconciliationMatch(models.Model):
    """A bank line (or a Stripe payout) tied to what it is: an invoice's payment, a center's payout, a sponsor's
    voucher claim payment, a Stripe payout. Confident matches are confirmed at once; ambiguous ones are proposed
    for finance to confirm or reject."""

    id = models.BigAutoField(primary_key=True)
    bank_line = models.ForeignKey(
        BankStatementLine, on_delete=models.PROTECT, null=True, blank=True, related_name="matches"
    )
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="matches")
    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, null=True, blank=True, related_name="matches")
    voucher_claim = models.ForeignKey(VoucherClaim, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    stripe_payout = models.ForeignKey(
        StripePayout, on_delete=models.PROTECT, null=True, blank=True, related_name="matches"
    )
    amount = models.DecimalField(max_digits=18, decimal_places=4)
    method = models.CharField(max_length=12, choices=MatchMethod.choices)
    status = models.CharField(max_length=10, choices=MatchStatus.choices)
    score = models.DecimalField(max_digits=5, decimal_places=4, default=1)
    explanation = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.amount} ({self.status})"


class ExceptionKind(models.TextChoices):
    UNMATCHED_BANK_LINE = "unmatched_bank_line", _("Unmatched bank line")
    AMBIGUOUS_MATCH = "ambiguous_match", _("Several possible matches")
    PAYMENT_WITHOUT_INVOICE = "payment_without_invoice", _("Payment without an invoice")
    INVOICE_PAID_TWICE = "invoice_paid_twice", _("Invoice paid twice")
    AMOUNT_MISMATCH = "amount_mismatch", _("Amount off by more than the tolerance")
    PAYOUT_FAILED = "payout_failed", _("Payout failed")
    PAYMENT_FAILED = "payment_failed", _("Payment failed")


class ExceptionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    RESOLVED = "resolved", _("Resolved")


class ExceptionResolution(models.TextChoices):
    MATCHED = "matched", _("Matched")
    SPLIT = "split", _("Split across invoices")
    WRITTEN_OFF = "written_off", _("Written off")
    CREDIT_NOTE = "credit_note", _("Credit note raised")
    REFUNDED = "refunded", _("Refunded")
    KEPT_AS_CREDIT = "kept_as_credit", _("Kept as credit balance")
    RETRIED = "retried", _("Retried")
    DISMISSED = "dismissed", _("Dismissed")


class ReconciliationException(models.Model):
    """Something finance must look at. `subject` names what it is about (`bank_line:<id>`, `payment:<id>`, ...);
    one exception per kind and subject, so finding the same problem again does not queue it twice. Resolving
    records who, how and why (also in the audit log)."""

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=32, choices=ExceptionKind.choices)
    subject = models.CharField(max_length=120)
    status = models.CharField(max_length=10, choices=ExceptionStatus.choices, default=ExceptionStatus.OPEN)
    currency = models.CharField(max_length=3, blank=True)
    amount = models.DecimalField(max_digits=18, decimal_places=4, null=True, blank=True)
    detail = models.CharField(max_length=500)
    # The month whose reconciliation it blocks: a period cannot be locked with open exceptions in it.
    period = models.ForeignKey(BillingPeriod, on_delete=models.PROTECT, related_name="+")
    consumer = models.ForeignKey(Organization, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    bank_line = models.ForeignKey(
        BankStatementLine, on_delete=models.PROTECT, null=True, blank=True, related_name="exceptions"
    )
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="exceptions")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, null=True, blank=True, related_name="exceptions")
    opened_at = models.DateTimeField()
    resolution = models.CharField(max_length=16, choices=ExceptionResolution.choices, blank=True)
    resolution_note = models.CharField(max_length=500, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["opened_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "subject"], name="exception_one_per_subject"),
            models.CheckConstraint(
                condition=Q(status="open") | (~Q(resolution="") & Q(resolved_at__isnull=False)),
                name="exception_resolved_has_resolution",
            ),
        ]
        indexes = [models.Index(fields=["status", "period"], name="exception_status_period")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.detail[:60]}"


class DunningStage(models.TextChoices):
    DUE_SOON = "due_soon", _("Due in 3 days")
    OVERDUE_1 = "overdue_1", _("1 day overdue")
    OVERDUE_14 = "overdue_14", _("14 days overdue")
    OVERDUE_30 = "overdue_30", _("30 days overdue")


class DunningNotice(models.Model):
    """One reminder sent about one invoice at one stage; unique, so a rerun of the beat task never sends twice."""

    id = models.BigAutoField(primary_key=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="dunning_notices")
    stage = models.CharField(max_length=16, choices=DunningStage.choices)
    outstanding = models.DecimalField(max_digits=18, decimal_places=4)
    recipients = models.JSONField(default=list)
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-sent_at"]
        constraints = [models.UniqueConstraint(fields=["invoice", "stage"], name="dunning_once_per_stage")]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.stage}"
