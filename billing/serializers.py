"""The JSON shapes of the settlement and voucher API (API.md, Billing): input serializers validate, output
serializers render. No rules here: services and selectors decide.

Output serializers declare their fields for the OpenAPI schema and render through one explicit function each
(`invoice_data`, `statement_data`, ...), so the exact strings the contract fixes are written in one place: money
through `format_money` in the sibling `currency`, device-hours to 6 decimals, timestamps in RFC 3339 (UTC, `Z`).
Input serializers refuse unknown fields, as everywhere in the API.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db.models.manager import BaseManager
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import CONSUMER_KINDS
from accounts.serializers import StrictInputSerializer
from billing.models import (
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    ProgramStatus,
    Statement,
    VoucherClaim,
    VoucherFlow,
    VoucherGrant,
    VoucherProgram,
)
from billing.rules import SECONDS_PER_HOUR
from billing.selectors.settlement import (
    AccountBalance,
    TrialBalance,
    UpcomingInvoice,
    statement_credit_lines,
    statement_lines,
)
from billing.services.periods import describe_charge, vat_portion
from marketplace.api.bookings import UtcDateTimeField
from marketplace.money import CURRENCY_MINOR_UNITS, format_money
from marketplace.serializers import ExactDecimalField
from marketplace.timestamps import rfc3339

HOURS_QUANTUM = Decimal("0.000001")
RATE_QUANTUM = Decimal("0.0001")
MAX_CREDIT_LINES = 1_000
MAX_FILTER_VALUES = 50

# --- how values are written -------------------------------------------------------------------------------------


def money(amount: Decimal, currency: str) -> str:
    return format_money(amount, currency)


def device_hours(device_seconds: Decimal) -> str:
    """Device-hours to 6 decimals, for reading only: amounts are computed from the exact device-seconds."""
    return f"{(device_seconds / SECONDS_PER_HOUR).quantize(HOURS_QUANTUM, rounding=ROUND_HALF_UP):f}"


def exact(value: Decimal) -> str:
    return f"{value:f}"


def fraction(value: Decimal) -> str:
    """A rate (VAT, platform fee, voucher share) to the 4 decimals it is stored with: "0.0600"."""
    return f"{value.quantize(RATE_QUANTUM):f}"


def _label(period) -> str | None:
    return period.label if period is not None else None


@extend_schema_field({"type": "string", "format": "decimal", "example": "12.50"})
class MoneyString(serializers.CharField):
    """An amount in the sibling `currency`: at least its minor-unit digits ("12.50"; "1500" in JPY)."""


@extend_schema_field({"type": "string", "format": "decimal", "example": "8.000000"})
class DeviceHoursString(serializers.CharField):
    """Device-hours (device-seconds / 3600) to 6 decimals."""


@extend_schema_field({"type": "string", "format": "decimal", "example": "28800.000000"})
class DecimalString(serializers.CharField):
    """An exact decimal as a string."""


@extend_schema_field({"type": "string", "format": "date-time", "example": "2026-11-03T10:00:00Z"})
class Timestamp(serializers.CharField):
    """RFC 3339 in UTC."""


@extend_schema_field({"type": "string", "pattern": r"^\d{4}-\d{2}$", "example": "2026-10"})
class PeriodLabel(serializers.CharField):
    """A billing period: a calendar month in UTC, written YYYY-MM."""


class RenderedSerializer(serializers.Serializer):
    """A read-only shape whose fields document the schema and whose `render` writes the JSON."""

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return self.render(instance, self.context)

    @staticmethod
    def render(instance: Any, context: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


# --- invoices ---------------------------------------------------------------------------------------------------


class InvoiceLineSerializer(RenderedSerializer):
    id = serializers.IntegerField(help_text="The line's id (what a credit note names).")
    booking = serializers.UUIDField(allow_null=True)
    kind = serializers.CharField(help_text="`usage`, `commitment`, `cancellation` or `adjustment`.")
    late = serializers.BooleanField(help_text="Usage of a closed period billed in this one (billing rule 1).")
    usage_period = PeriodLabel(allow_null=True, help_text="The closed period a late line's usage belongs to.")
    center = serializers.CharField(help_text="The center's slug.")
    description = serializers.CharField()
    device_seconds = DecimalString(help_text="Exact device-seconds (billing rule 1).")
    device_hours = DeviceHoursString()
    unit_price = MoneyString(help_text="The price per device-hour snapshotted when the booking was confirmed.")
    amount = MoneyString(help_text="round(device_hours × unit_price), billing rule 2.")
    voucher_eligible = serializers.BooleanField()

    @staticmethod
    def render(line: InvoiceLine, context: dict[str, Any]) -> dict[str, Any]:
        currency = context.get("currency") or line.invoice.currency
        return {
            "id": line.pk,
            "booking": str(line.booking_id) if line.booking_id else None,
            "kind": line.kind,
            "late": line.late,
            "usage_period": _label(line.usage_period),
            "center": line.center.slug,
            "description": line.description,
            "device_seconds": exact(line.device_seconds),
            "device_hours": device_hours(line.device_seconds),
            "unit_price": money(line.unit_price, currency),
            "amount": money(line.amount, currency),
            "voucher_eligible": line.voucher_eligible,
        }


class InvoiceVoucherSerializer(serializers.Serializer):
    program = serializers.CharField(help_text="The voucher program's name.")
    sponsor = serializers.CharField(help_text="The sponsor's slug.")


class InvoiceCreditNoteSerializer(serializers.Serializer):
    number = serializers.CharField()
    total = MoneyString()
    reason = serializers.CharField()
    issued_at = Timestamp()


class InvoiceListSerializer(serializers.ListSerializer):
    """A page of invoices: their paid and owed amounts are read for the whole page at once (three queries, not
    three per invoice)."""

    def to_representation(self, data: Any) -> list[dict[str, Any]]:
        from billing.services.payments import invoices_outstanding

        invoices = list(data.all() if isinstance(data, BaseManager) else data)
        context = {**self.context, "invoice_balances": invoices_outstanding(invoices)}
        return [self.child.render(invoice, context) for invoice in invoices]


class InvoiceSerializer(RenderedSerializer):
    class Meta:
        list_serializer_class = InvoiceListSerializer

    id = serializers.UUIDField()
    number = serializers.CharField(allow_null=True, help_text="Assigned, gapless, when the invoice is finalized.")
    consumer = serializers.CharField(help_text="The consumer's slug.")
    period = PeriodLabel()
    status = serializers.CharField(help_text="`draft`, `finalized`, `paid` or `void`.")
    currency = serializers.CharField()
    subtotal = MoneyString(help_text="Σ line amounts.")
    voucher_amount = MoneyString(help_text="What a voucher covers (billing rule 5).")
    total = MoneyString(help_text="subtotal − voucher_amount: what the consumer owes.")
    vat_rate = DecimalString(help_text="Prices include VAT at this rate.")
    vat_amount = MoneyString(help_text="The VAT contained in the subtotal.")
    voucher = InvoiceVoucherSerializer(allow_null=True)
    credit_notes = InvoiceCreditNoteSerializer(many=True, help_text="Corrections issued against this invoice.")
    held = serializers.BooleanField(help_text="A draft finance keeps from being finalized automatically.")
    hold_reason = serializers.CharField(help_text="Why it is held: shown to the platform operator only.")
    issued_at = Timestamp()
    finalized_at = Timestamp(allow_null=True)
    due_at = Timestamp(allow_null=True)
    paid_at = Timestamp(allow_null=True)
    voided_at = Timestamp(allow_null=True)
    amount_paid = MoneyString(help_text="Payments applied to it, net of credit given back by credit notes.")
    amount_due = MoneyString(
        help_text="What is still owed: total − credit notes − payments applied − write-offs (a draft: its total "
        "less credit notes, owed once finalized; paid or void: 0)."
    )
    lines = InvoiceLineSerializer(many=True)

    @staticmethod
    def render(invoice: Invoice, context: dict[str, Any]) -> dict[str, Any]:
        currency = invoice.currency
        redemption = getattr(invoice, "redemption", None)
        voucher = None
        if redemption is not None:
            program = redemption.grant.program
            voucher = {"program": program.name, "sponsor": program.sponsor.slug}
        notes = sorted(invoice.credit_notes.all(), key=lambda note: (note.issued_at, note.number))
        line_context = {"currency": currency}
        return {
            "id": str(invoice.pk),
            "number": invoice.number,
            "consumer": invoice.consumer.slug,
            "period": invoice.period.label,
            "status": invoice.status,
            "currency": currency,
            "subtotal": money(invoice.subtotal, currency),
            "voucher_amount": money(invoice.voucher_amount, currency),
            "total": money(invoice.total, currency),
            "vat_rate": fraction(invoice.vat_rate),
            "vat_amount": money(invoice.vat_amount, currency),
            "voucher": voucher,
            "credit_notes": [
                {
                    "number": note.number,
                    "total": money(note.total, currency),
                    "reason": note.reason,
                    "issued_at": rfc3339(note.issued_at),
                }
                for note in notes
            ],
            "held": invoice.held,
            # Finance's internal note: a consumer sees that its draft is held, not why.
            "hold_reason": invoice.hold_reason if context.get("operator") else "",
            "issued_at": rfc3339(invoice.issued_at),
            "finalized_at": rfc3339(invoice.finalized_at),
            "due_at": rfc3339(invoice.due_at),
            "paid_at": rfc3339(invoice.paid_at),
            "voided_at": rfc3339(invoice.voided_at),
            **_invoice_amounts(invoice, context),
            "lines": [
                InvoiceLineSerializer.render(line, line_context)
                for line in sorted(invoice.lines.all(), key=lambda line: line.pk)
            ],
        }


def _invoice_amounts(invoice: Invoice, context: dict[str, Any]) -> dict[str, str]:
    balances = context.get("invoice_balances")
    balance = balances.get(invoice.pk) if balances is not None else None
    if balance is None:
        from billing.services.payments import invoices_outstanding

        balance = invoices_outstanding([invoice])[invoice.pk]
    # A draft shows what it will owe once finalized: its total less credit notes (invoice_amounts' rule).
    due = invoice.total - balance.credited if invoice.status == InvoiceStatus.DRAFT else balance.due
    return {"amount_paid": money(balance.paid, invoice.currency), "amount_due": money(due, invoice.currency)}


# --- payments ---------------------------------------------------------------------------------------------------


class PaymentAllocationSerializer(serializers.Serializer):
    invoice = serializers.UUIDField()
    invoice_number = serializers.CharField(allow_null=True)
    amount = MoneyString(help_text="Negative: a credit note gave that much back as credit.")
    created_at = Timestamp()


class PaymentRefundSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    amount = MoneyString()
    status = serializers.CharField(help_text="`pending`, `succeeded` or `failed`.")
    credit_note = serializers.CharField(allow_null=True, help_text="The credit note it refunds, if any.")
    created_at = Timestamp()
    succeeded_at = Timestamp(allow_null=True)


class PaymentSerializer(RenderedSerializer):
    id = serializers.UUIDField()
    consumer = serializers.CharField(help_text="The consumer's slug.")
    method = serializers.CharField(help_text="`stripe` or `bank_transfer`.")
    status = serializers.CharField(help_text="`pending`, `succeeded`, `failed` or `canceled`.")
    currency = serializers.CharField()
    amount = MoneyString()
    invoice = serializers.UUIDField(allow_null=True, help_text="The invoice the payer meant to pay, if known.")
    invoice_number = serializers.CharField(allow_null=True)
    reference = serializers.CharField()
    received_at = Timestamp(allow_null=True)
    failure_message = serializers.CharField(help_text="Why a failed payment failed (a declined card).")
    unapplied = MoneyString(help_text="What of it is still the consumer's credit.")
    allocations = PaymentAllocationSerializer(many=True)
    refunds = PaymentRefundSerializer(many=True)
    created_at = Timestamp()

    @staticmethod
    def render(payment: Any, context: dict[str, Any]) -> dict[str, Any]:
        from billing.services.payments import payment_unapplied

        currency = payment.currency
        return {
            "id": str(payment.pk),
            "consumer": payment.consumer.slug,
            "method": payment.method,
            "status": payment.status,
            "currency": currency,
            "amount": money(payment.amount, currency),
            "invoice": str(payment.invoice_id) if payment.invoice_id else None,
            "invoice_number": payment.invoice.number if payment.invoice_id else None,
            "reference": payment.reference,
            "received_at": rfc3339(payment.received_at),
            "failure_message": payment.failure_message,
            "unapplied": money(payment_unapplied(payment), currency),
            "allocations": [
                {
                    "invoice": str(allocation.invoice_id),
                    "invoice_number": allocation.invoice.number,
                    "amount": money(allocation.amount, currency),
                    "created_at": rfc3339(allocation.created_at),
                }
                for allocation in payment.allocations.all()
            ],
            "refunds": [
                {
                    "id": str(refund.pk),
                    "amount": money(refund.amount, currency),
                    "status": refund.status,
                    "credit_note": refund.credit_note.number if refund.credit_note_id else None,
                    "created_at": rfc3339(refund.created_at),
                    "succeeded_at": rfc3339(refund.succeeded_at),
                }
                for refund in payment.refunds.all()
            ],
            "created_at": rfc3339(payment.created_at),
        }


# --- the upcoming invoice ---------------------------------------------------------------------------------------


class UpcomingLineSerializer(serializers.Serializer):
    booking = serializers.UUIDField()
    kind = serializers.CharField(help_text="`usage`, `commitment`, `cancellation` or `adjustment`.")
    late = serializers.BooleanField()
    usage_period = PeriodLabel(allow_null=True)
    center = serializers.CharField(help_text="The center's slug.")
    description = serializers.CharField()
    device_seconds = DecimalString()
    device_hours = DeviceHoursString()
    unit_price = MoneyString()
    amount = MoneyString()
    voucher_eligible = serializers.BooleanField()


class UpcomingInvoiceSerializer(RenderedSerializer):
    """The open period so far, as its invoice would be if the period closed now. Nothing is stored."""

    number = serializers.CharField(allow_null=True, help_text="Always null: an upcoming invoice has no number.")
    consumer = serializers.CharField()
    period = PeriodLabel()
    status = serializers.CharField(help_text="Always `upcoming`.")
    currency = serializers.CharField()
    currencies = serializers.ListField(
        child=serializers.CharField(),
        help_text="Every currency the consumer has charges in this period; ask for another with `?currency=`.",
    )
    subtotal = MoneyString()
    voucher_amount = MoneyString()
    total = MoneyString()
    vat_rate = DecimalString()
    vat_amount = MoneyString()
    voucher = InvoiceVoucherSerializer(allow_null=True)
    as_of = Timestamp(help_text="The instant the figures were computed at.")
    lines = UpcomingLineSerializer(many=True)

    @staticmethod
    def render(upcoming: UpcomingInvoice, context: dict[str, Any]) -> dict[str, Any]:
        currency = upcoming.currency
        centers = context.get("centers", {})
        periods = context.get("periods", {})
        return {
            "number": None,
            "consumer": context["consumer"],
            "period": upcoming.period,
            "status": "upcoming",
            "currency": currency,
            "currencies": context.get("currencies", [currency]),
            "subtotal": money(upcoming.subtotal, currency),
            "voucher_amount": money(upcoming.voucher_amount, currency),
            "total": money(upcoming.total, currency),
            "vat_rate": fraction(settings.INVOICE_VAT_RATE),
            "vat_amount": money(vat_portion(upcoming.subtotal, currency), currency),
            "voucher": context.get("voucher"),
            "as_of": rfc3339(upcoming.as_of),
            "lines": [
                {
                    "booking": str(line.charge.booking.id),
                    "kind": str(line.charge.kind),
                    "late": line.charge.late,
                    "usage_period": periods.get(line.charge.usage_period_id),
                    "center": centers.get(line.charge.center_id, ""),
                    "description": describe_charge(line.charge),
                    "device_seconds": exact(line.charge.device_seconds),
                    "device_hours": device_hours(line.charge.device_seconds),
                    "unit_price": money(line.charge.unit_price, currency),
                    "amount": money(line.amount, currency),
                    "voucher_eligible": line.voucher_eligible,
                }
                for line in upcoming.lines
            ],
        }


# --- credit notes ---------------------------------------------------------------------------------------------


class CreditNoteLineSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="The invoice line credited.")
    center = serializers.CharField(help_text="The slug of the center the line's amount is taken back from.")
    amount = MoneyString()


class CreditNoteSerializer(RenderedSerializer):
    id = serializers.UUIDField()
    number = serializers.CharField()
    invoice = serializers.UUIDField()
    invoice_number = serializers.CharField()
    consumer = serializers.CharField()
    period = PeriodLabel(help_text="The open period the credit note was issued in.")
    currency = serializers.CharField()
    total = MoneyString()
    vat_amount = MoneyString(help_text="The VAT contained in the total.")
    reason = serializers.CharField()
    status = serializers.CharField(help_text="`open` (netted against what is owed next) or `refunded`.")
    issued_at = Timestamp()
    lines = CreditNoteLineSerializer(many=True)

    @staticmethod
    def render(note: CreditNote, context: dict[str, Any]) -> dict[str, Any]:
        currency = note.currency
        lines: Iterable[CreditNoteLine] = sorted(note.lines.all(), key=lambda line: line.pk)
        return {
            "id": str(note.pk),
            "number": note.number,
            "invoice": str(note.invoice_id),
            "invoice_number": note.invoice.number,
            "consumer": note.consumer.slug,
            "period": note.period.label,
            "currency": currency,
            "total": money(note.total, currency),
            "vat_amount": money(note.vat_amount, currency),
            "reason": note.reason,
            "status": note.status,
            "issued_at": rfc3339(note.issued_at),
            "lines": [
                {"line": line.invoice_line_id, "center": line.center.slug, "amount": money(line.amount, currency)}
                for line in lines
            ],
        }


class CreditLineInputSerializer(StrictInputSerializer):
    line = serializers.IntegerField(min_value=1, help_text="The id of a line of the invoice.")
    amount = ExactDecimalField(
        max_digits=18, decimal_places=4, help_text='How much of the line to credit, e.g. "12.50".'
    )


class CreditNoteCreateSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=500)
    lines = serializers.ListField(
        child=CreditLineInputSerializer(), allow_empty=False, max_length=MAX_CREDIT_LINES, help_text="What to credit."
    )


class ReasonSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=500)


# --- statements -------------------------------------------------------------------------------------------------


class StatementLineSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The invoice line's id.")
    consumer = serializers.CharField(help_text="The consumer's slug.")
    invoice = serializers.UUIDField()
    booking = serializers.UUIDField(allow_null=True)
    kind = serializers.CharField()
    late = serializers.BooleanField()
    usage_period = PeriodLabel(allow_null=True)
    description = serializers.CharField()
    device_seconds = DecimalString()
    device_hours = DeviceHoursString()
    unit_price = MoneyString()
    amount = MoneyString()


class StatementCreditLineSerializer(serializers.Serializer):
    credit_note = serializers.CharField(help_text="The credit note's number.")
    invoice = serializers.CharField(allow_null=True, help_text="The number of the invoice it corrects.")
    consumer = serializers.CharField()
    line = serializers.IntegerField(help_text="The invoice line corrected.")
    booking = serializers.UUIDField(allow_null=True)
    amount = MoneyString(help_text="Negative: what the center gives back. These add up to `credit_adjustment`.")


class StatementSerializer(RenderedSerializer):
    id = serializers.UUIDField()
    center = serializers.CharField(help_text="The center's slug.")
    period = PeriodLabel()
    currency = serializers.CharField()
    gross = MoneyString(help_text="Σ amounts of the center's lines (vouchers do not reduce it).")
    fee_rate = DecimalString()
    fee = MoneyString(help_text="round(gross × fee_rate), billing rule 6.")
    payout = MoneyString(help_text="gross − fee.")
    credit_adjustment = MoneyString(help_text="Credit notes issued in the period against the center's lines.")
    fee_adjustment = MoneyString(help_text="The fee's share of the credit adjustment.")
    net_payout = MoneyString(help_text="payout + credit_adjustment − fee_adjustment.")
    status = serializers.CharField(help_text="`issued` or `paid`.")
    issued_at = Timestamp()
    paid_at = Timestamp(allow_null=True)
    lines = StatementLineSerializer(many=True)
    credit_lines = StatementCreditLineSerializer(many=True)

    @staticmethod
    def render(statement: Statement, context: dict[str, Any]) -> dict[str, Any]:
        currency = statement.currency
        # A list passes the lines of its whole page (`statements_lines`, two queries); one statement reads its own.
        known = context.get("statement_lines", {}).get(statement.pk)
        lines = known.lines if known else statement_lines(statement)
        credit_lines = known.credit_lines if known else statement_credit_lines(statement)
        return {
            "id": str(statement.pk),
            "center": statement.center.slug,
            "period": statement.period.label,
            "currency": currency,
            "gross": money(statement.gross, currency),
            "fee_rate": fraction(statement.fee_rate),
            "fee": money(statement.fee, currency),
            "payout": money(statement.payout, currency),
            "credit_adjustment": money(statement.credit_adjustment, currency),
            "fee_adjustment": money(statement.fee_adjustment, currency),
            "net_payout": money(statement.net_payout, currency),
            "status": statement.status,
            "issued_at": rfc3339(statement.issued_at),
            "paid_at": rfc3339(statement.paid_at),
            "lines": [
                {
                    "id": line.pk,
                    "consumer": line.invoice.consumer.slug,
                    "invoice": str(line.invoice_id),
                    "booking": str(line.booking_id) if line.booking_id else None,
                    "kind": line.kind,
                    "late": line.late,
                    "usage_period": _label(line.usage_period),
                    "description": line.description,
                    "device_seconds": exact(line.device_seconds),
                    "device_hours": device_hours(line.device_seconds),
                    "unit_price": money(line.unit_price, currency),
                    "amount": money(line.amount, currency),
                }
                for line in lines
            ],
            "credit_lines": [
                {
                    "credit_note": line.credit_note.number,
                    "invoice": line.credit_note.invoice.number,
                    "consumer": line.credit_note.consumer.slug,
                    "line": line.invoice_line_id,
                    "booking": str(line.invoice_line.booking_id) if line.invoice_line.booking_id else None,
                    "amount": money(-line.amount, currency),
                }
                for line in credit_lines
            ],
        }


# --- periods ----------------------------------------------------------------------------------------------------


class BillingPeriodSerializer(RenderedSerializer):
    period = PeriodLabel()
    start = Timestamp()
    end = Timestamp()
    status = serializers.CharField(help_text="`open`, `closing` (a close is running or must be rerun) or `closed`.")
    usage_cutoff = Timestamp(allow_null=True, help_text="Usage received after it is billed late, in a later period.")
    closing_started_at = Timestamp(allow_null=True)
    closed_at = Timestamp(allow_null=True)
    closed_by = serializers.CharField()

    @staticmethod
    def render(period, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "period": period.label,
            "start": rfc3339(period.start),
            "end": rfc3339(period.end),
            "status": period.status,
            "usage_cutoff": rfc3339(period.usage_cutoff),
            "closing_started_at": rfc3339(period.closing_started_at),
            "closed_at": rfc3339(period.closed_at),
            "closed_by": period.closed_by,
        }


# --- the ledger -------------------------------------------------------------------------------------------------


class AccountBalanceSerializer(RenderedSerializer):
    id = serializers.IntegerField()
    organization = serializers.CharField(allow_null=True, help_text="The organization's slug; null: the platform.")
    role = serializers.CharField(
        help_text="`receivable`, `center_payable`, `voucher_receivable`, `fee_revenue` or `cash`."
    )
    currency = serializers.CharField()
    debits = MoneyString()
    credits = MoneyString()
    balance = MoneyString(help_text="debits − credits.")

    @staticmethod
    def render(balance: AccountBalance, context: dict[str, Any]) -> dict[str, Any]:
        account, currency = balance.account, balance.account.currency
        return {
            "id": account.pk,
            "organization": account.organization.slug if account.organization_id else None,
            "role": account.role,
            "currency": currency,
            "debits": money(balance.debits, currency),
            "credits": money(balance.credits, currency),
            "balance": money(balance.balance, currency),
        }


class TrialBalanceCurrencySerializer(RenderedSerializer):
    currency = serializers.CharField()
    debits = MoneyString(help_text="Σ debits of every account.")
    credits = MoneyString(help_text="Σ credits of every account.")
    difference = MoneyString(help_text="debits − credits: always zero.")
    accounts = AccountBalanceSerializer(many=True)

    @staticmethod
    def render(trial: TrialBalance, context: dict[str, Any]) -> dict[str, Any]:
        currency = trial.currency
        return {
            "currency": currency,
            "debits": money(trial.debits, currency),
            "credits": money(trial.credits, currency),
            "difference": money(trial.difference, currency),
            "accounts": [AccountBalanceSerializer.render(balance, context) for balance in trial.accounts],
        }


class TrialBalanceSerializer(serializers.Serializer):
    until = Timestamp(allow_null=True, help_text="Entries posted up to this instant; null: all of them.")
    currencies = TrialBalanceCurrencySerializer(many=True)


class BalancesSerializer(serializers.Serializer):
    organization = serializers.CharField(allow_null=True, help_text="Whose accounts; null: the platform's own.")
    accounts = AccountBalanceSerializer(many=True)


# --- vouchers ---------------------------------------------------------------------------------------------------


class VoucherProgramSerializer(RenderedSerializer):
    id = serializers.UUIDField()
    sponsor = serializers.CharField(help_text="The sponsor's slug.")
    sponsor_name = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    currency = serializers.CharField()
    rate = DecimalString(help_text='The share of eligible compute the program pays ("0.5000" pays half).')
    budget = MoneyString()
    cap_per_grant = MoneyString()
    granted = MoneyString(help_text="Committed to approved grants.")
    redeemed = MoneyString(help_text="Drawn by invoices.")
    available = MoneyString(help_text="budget − granted: what can still be granted.")
    valid_from = Timestamp()
    valid_until = Timestamp()
    eligible_kinds = serializers.ListField(child=serializers.CharField())
    vendors = serializers.ListField(child=serializers.CharField(), help_text="Empty: any accelerator vendor.")
    domestic_only = serializers.BooleanField()
    regions = serializers.ListField(child=serializers.CharField(), help_text="Empty: centers in any region.")
    flow = serializers.CharField(help_text="`deduct` (on the invoice) or `reimburse` (after payment).")
    status = serializers.CharField(help_text="`draft`, `active` (open for applications) or `closed`.")
    created_at = Timestamp()

    @staticmethod
    def render(program: VoucherProgram, context: dict[str, Any]) -> dict[str, Any]:
        currency = program.currency
        return {
            "id": str(program.pk),
            "sponsor": program.sponsor.slug,
            "sponsor_name": program.sponsor.name,
            "name": program.name,
            "description": program.description,
            "currency": currency,
            "rate": fraction(program.rate),
            "budget": money(program.budget, currency),
            "cap_per_grant": money(program.cap_per_grant, currency),
            "granted": money(program.granted, currency),
            "redeemed": money(program.redeemed, currency),
            "available": money(program.budget - program.granted, currency),
            "valid_from": rfc3339(program.valid_from),
            "valid_until": rfc3339(program.valid_until),
            "eligible_kinds": list(program.eligible_kinds),
            "vendors": list(program.vendors),
            "domestic_only": program.domestic_only,
            "regions": list(program.regions),
            "flow": program.flow,
            "status": program.status,
            "created_at": rfc3339(program.created_at),
        }


def _validated_choice(value: str, choices: list[str]) -> str:
    if value not in choices:
        raise serializers.ValidationError(
            _("Choose from: %(all)s.") % {"all": ", ".join(choices)}, code="invalid_choice"
        )
    return value


class VoucherProgramInputSerializer(StrictInputSerializer):
    """POST creates a program (the fields without a default are required); PUT changes one: the fields left out
    keep their values."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    currency = serializers.CharField(
        max_length=3, help_text="ISO 4217 code, one of: " + ", ".join(sorted(CURRENCY_MINOR_UNITS)) + "."
    )
    rate = ExactDecimalField(
        max_digits=5, decimal_places=4, help_text='The share of eligible compute paid, e.g. "0.50" pays half.'
    )
    budget = ExactDecimalField(max_digits=18, decimal_places=4, help_text='The total budget, e.g. "1000000.00".')
    cap_per_grant = ExactDecimalField(max_digits=18, decimal_places=4, help_text="The most one grant may be.")
    valid_from = UtcDateTimeField()
    valid_until = UtcDateTimeField()
    eligible_kinds = serializers.ListField(
        child=serializers.CharField(max_length=20),
        max_length=len(CONSUMER_KINDS),
        help_text="Who may apply: `enterprise`, `university` and/or `institute`.",
    )
    vendors = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=MAX_FILTER_VALUES, required=False
    )
    domestic_only = serializers.BooleanField(required=False)
    regions = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=MAX_FILTER_VALUES, required=False
    )
    flow = serializers.CharField(required=False, help_text="`deduct` (default) or `reimburse`.")
    status = serializers.CharField(required=False, help_text="`draft` (default), `active` or `closed`.")

    def validate_flow(self, value: str) -> str:
        return _validated_choice(value, VoucherFlow.values)

    def validate_status(self, value: str) -> str:
        return _validated_choice(value, ProgramStatus.values)


class VoucherGrantSerializer(RenderedSerializer):
    id = serializers.UUIDField()
    program = serializers.UUIDField()
    program_name = serializers.CharField()
    sponsor = serializers.CharField(help_text="The sponsor's slug.")
    consumer = serializers.CharField(help_text="The consumer's slug.")
    currency = serializers.CharField()
    requested_amount = MoneyString()
    purpose = serializers.CharField()
    amount = MoneyString(help_text="Granted (0 until approved).")
    remaining = MoneyString()
    status = serializers.CharField(help_text="`applied`, `active`, `rejected`, `exhausted` or `expired`.")
    valid_from = Timestamp(allow_null=True)
    expires_at = Timestamp(allow_null=True)
    applied_at = Timestamp()
    decided_at = Timestamp(allow_null=True)
    decision_note = serializers.CharField()

    @staticmethod
    def render(grant: VoucherGrant, context: dict[str, Any]) -> dict[str, Any]:
        program = grant.program
        currency = program.currency
        return {
            "id": str(grant.pk),
            "program": str(program.pk),
            "program_name": program.name,
            "sponsor": program.sponsor.slug,
            "consumer": grant.consumer.slug,
            "currency": currency,
            "requested_amount": money(grant.requested_amount, currency),
            "purpose": grant.purpose,
            "amount": money(grant.amount, currency),
            "remaining": money(grant.remaining, currency),
            "status": grant.status,
            "valid_from": rfc3339(grant.valid_from),
            "expires_at": rfc3339(grant.expires_at),
            "applied_at": rfc3339(grant.applied_at),
            "decided_at": rfc3339(grant.decided_at),
            "decision_note": grant.decision_note,
        }


class VoucherApplySerializer(StrictInputSerializer):
    requested_amount = ExactDecimalField(max_digits=18, decimal_places=4, help_text='e.g. "50000.00".')
    purpose = serializers.CharField(max_length=5_000, required=False, allow_blank=True, default="")


class VoucherApproveSerializer(StrictInputSerializer):
    amount = ExactDecimalField(max_digits=18, decimal_places=4, help_text="At most the program's cap per grant.")
    expires_at = UtcDateTimeField(
        required=False, allow_null=True, default=None, help_text="Default and latest: the program's end."
    )
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class VoucherRejectSerializer(StrictInputSerializer):
    note = serializers.CharField(max_length=500, help_text="Why: shown to the applicant.")


class VoucherClaimSerializer(RenderedSerializer):
    id = serializers.UUIDField()
    sponsor = serializers.CharField(help_text="The sponsor's slug.")
    period = PeriodLabel()
    currency = serializers.CharField()
    amount = MoneyString(help_text="Σ the period's redemptions of the sponsor's grants.")
    status = serializers.CharField(help_text="`open` or `paid`.")
    issued_at = Timestamp()
    paid_at = Timestamp(allow_null=True)
    payment_reference = serializers.CharField()

    @staticmethod
    def render(claim: VoucherClaim, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(claim.pk),
            "sponsor": claim.sponsor.slug,
            "period": claim.period.label,
            "currency": claim.currency,
            "amount": money(claim.amount, claim.currency),
            "status": claim.status,
            "issued_at": rfc3339(claim.issued_at),
            "paid_at": rfc3339(claim.paid_at),
            "payment_reference": claim.payment_reference,
        }


class VoucherClaimPaySerializer(StrictInputSerializer):
    reference = serializers.CharField(max_length=200, help_text="The bank transfer's reference.")
