"""What an invoice shows, in one place: the invoice page, its PDF and its lines' CSV read the same figures.

Nothing here computes money: every amount is the one stored when the period closed (or, for the upcoming
invoice, the one the rating computes on read); this module only gathers and labels it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import Organization
from billing.models import CreditNote, Invoice, InvoiceStatus, LineKind, VoucherRedemption
from billing.selectors.settlement import UpcomingInvoice, credit_notes_of

ZERO = Decimal(0)
HOURS_SHOWN = Decimal("0.0001")


def hours_shown(device_hours: Decimal) -> Decimal:
    """Device-hours as documents print them: 4 decimals, half-up. The amount was computed from the exact value."""
    return device_hours.quantize(HOURS_SHOWN, rounding=ROUND_HALF_UP)


def kind_label(kind: str) -> str:
    return str(LineKind(kind).label) if kind in LineKind.values else kind


def percent(rate: Decimal) -> str:
    """0.06 → "6", 0.125 → "12.5"."""
    return f"{(rate * 100).normalize():f}"


def booking_description(*, devices: int, accelerator: str, center: str, start: datetime, end: datetime) -> str:
    """The description a period's close writes on a line (billing.services.periods), for the lines computed on
    read (the upcoming invoice), which have none stored."""
    return f"{devices} × {accelerator} · {center} · {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class Party:
    name: str
    tax_id: str
    address: str = ""


def issuer() -> Party:
    return Party(name=settings.PLATFORM_LEGAL_NAME, tax_id=settings.PLATFORM_TAX_ID, address=settings.PLATFORM_ADDRESS)


def party_of(organization: Organization) -> Party:
    """An organization as invoices name it: its legal name when it gave one."""
    return Party(name=organization.legal_name or organization.name, tax_id=organization.tax_id)


@dataclass(frozen=True)
class DocumentLine:
    description: str
    kind: str
    kind_label: str
    late: bool
    usage_period: str  # the closed month a late line's usage belongs to, "" otherwise
    device_hours: Decimal  # to 4 decimals, for display
    unit_price: Decimal
    amount: Decimal
    booking_id: uuid.UUID | None
    voucher_eligible: bool


@dataclass(frozen=True)
class Voucher:
    program: str
    sponsor: str


@dataclass(frozen=True)
class BankTransfer:
    bank: str
    account: str
    beneficiary: str
    reference: str
    amount: Decimal


@dataclass
class InvoiceDocument:
    invoice: Invoice
    issuer: Party
    consumer: Party
    lines: list[DocumentLine]
    voucher: Voucher | None
    credit_notes: list[CreditNote]
    credited: Decimal
    vat_percent: str
    bank_transfer: BankTransfer | None = None

    @property
    def currency(self) -> str:
        return self.invoice.currency

    @property
    def title(self) -> str:
        return self.invoice.number or _("Draft invoice")

    @property
    def amount_due(self) -> Decimal:
        """What the consumer still owes on it: the total less the credit notes issued against it (a credit note
        lowers the consumer's receivable in the ledger)."""
        return self.invoice.total - self.credited


def _voucher_of(invoice: Invoice) -> Voucher | None:
    try:
        redemption = invoice.redemption
    except VoucherRedemption.DoesNotExist:
        return None
    program = redemption.grant.program
    return Voucher(program=program.name, sponsor=program.sponsor.legal_name or program.sponsor.name)


def invoice_document(invoice: Invoice) -> InvoiceDocument:
    """Everything an invoice shows; `invoice` comes from `invoice_get` (lines and voucher already loaded)."""
    lines = [
        DocumentLine(
            description=line.description,
            kind=line.kind,
            kind_label=kind_label(line.kind),
            late=line.late,
            usage_period=line.usage_period.label if line.late and line.usage_period else "",
            device_hours=hours_shown(line.device_hours),
            unit_price=line.unit_price,
            amount=line.amount,
            booking_id=line.booking_id,
            voucher_eligible=line.voucher_eligible,
        )
        for line in invoice.lines.all()
    ]
    notes = list(credit_notes_of(invoice))
    document = InvoiceDocument(
        invoice=invoice,
        issuer=issuer(),
        consumer=party_of(invoice.consumer),
        lines=lines,
        voucher=_voucher_of(invoice),
        credit_notes=notes,
        credited=sum((note.total for note in notes), ZERO),
        vat_percent=percent(invoice.vat_rate),
    )
    if invoice.status == InvoiceStatus.FINALIZED and document.amount_due > 0:
        document.bank_transfer = BankTransfer(
            bank=settings.PLATFORM_BANK_NAME,
            account=settings.PLATFORM_BANK_ACCOUNT,
            beneficiary=settings.PLATFORM_LEGAL_NAME,
            reference=invoice.number,
            amount=document.amount_due,
        )
    return document


def upcoming_lines(upcoming: UpcomingInvoice, period_labels: dict[int, str]) -> list[DocumentLine]:
    """The upcoming invoice's lines as an issued invoice shows them; `period_labels` names late lines' months."""
    lines = []
    for line in upcoming.lines:
        charge, booking = line.charge, line.charge.booking
        lines.append(
            DocumentLine(
                description=booking_description(
                    devices=booking.devices,
                    accelerator=booking.accelerator,
                    center=booking.center_name,
                    start=booking.start,
                    end=booking.end,
                ),
                kind=charge.kind,
                kind_label=kind_label(charge.kind),
                late=charge.late,
                usage_period=period_labels.get(charge.usage_period_id, "") if charge.late else "",
                device_hours=hours_shown(charge.device_hours),
                unit_price=charge.unit_price,
                amount=line.amount,
                booking_id=booking.id,
                voucher_eligible=line.voucher_eligible,
            )
        )
    return lines
