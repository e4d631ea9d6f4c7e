"""Helpers for reimbursement tests: a consumer with a reimbursement-flow voucher and finalized invoices built
through the real services (metered usage, a closed period, finalization), and payment proofs to upload."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.actor import Actor
from accounts.models import Role
from billing.models import Invoice, VoucherGrant, VoucherProgram
from billing.periods_calendar import next_month
from billing.services.invoices import invoice_finalize
from billing.services.reimbursements import reimbursement_submit
from marketplace.models import Offering
from tests.billing.settlement import OCT, at, book, chip, close, invoice_of, market, meter
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import UserFactory
from tests.marketplace.factories import OfferingFactory, SiteFactory

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 32


def proof(name: str = "receipt.pdf", content: bytes = PDF) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="application/octet-stream")


@dataclass
class Scenario:
    center: object
    offering: Offering
    domestic: Offering
    consumer: object
    program: VoucherProgram
    grant: VoucherGrant
    sponsor: Actor
    consumer_admin: Actor

    def invoice(self, month: datetime = OCT) -> Invoice:
        return invoice_of(self.consumer, month)


def scenario(*, rate: str = "0.50", amount: str = "1000.00", cap: str | None = None, **filters) -> Scenario:
    """A center with an H100 pool (cn-east, 12.50/device-hour) and an Ascend 910B pool (cn-north, 8.00), a consumer,
    and a reimbursement-flow program (rate `rate`) that granted the consumer `amount`."""
    center, offering, consumer = market(fraction="0")
    domestic = OfferingFactory(
        center=center,
        site=SiteFactory(center=center, region="cn-north"),
        accelerator=chip("huawei-ascend-910b"),
        price_per_device_hour=Decimal("8.0000"),
        currency="CNY",
        min_commit_fraction=Decimal("0"),
    )
    sponsor = sponsor_actor()
    chosen = program(sponsor, rate=rate, cap=cap or max(amount, "1.00", key=Decimal), flow="reimburse", **filters)
    granted = grant(consumer, amount=amount, of=chosen)
    admin = Actor.for_member(user=UserFactory(email="finance@blueheron.test"), organization=consumer, role=Role.ADMIN)
    return Scenario(center, offering, domestic, consumer, chosen, granted, sponsor, admin)


def invoiced_month(s: Scenario, month: datetime = OCT, *, h100_hours: int = 10, ascend_hours: int = 5) -> Invoice:
    """Meter 8 H100s for `h100_hours` (8 × h × 12.50) and 4 Ascends for `ascend_hours` (4 × h × 8.00) on the 5th of
    `month`, close the month and finalize its invoice."""
    day = month.strftime("%Y-%m-05")
    h100 = book(s.offering, s.consumer, f"{day} 00:00", f"{day} 12:00", 8)
    meter(h100, f"{day} 00:00", f"{day} {h100_hours:02d}:00", 8)
    if ascend_hours:
        ascend = book(s.domestic, s.consumer, f"{day} 00:00", f"{day} 12:00", 4)
        meter(ascend, f"{day} 00:00", f"{day} {ascend_hours:02d}:00", 4)
    close(month)
    invoice = invoice_of(s.consumer, month)
    return invoice_finalize(invoice_id=invoice.pk, now=next_month(month) + timedelta(days=3))


def submitted(s: Scenario, invoice: Invoice, *, reference: str = "ICBC-20261105-0001", upload=None):
    return reimbursement_submit(
        actor=s.consumer_admin,
        grant_id=s.grant.pk,
        invoice_id=invoice.pk,
        payment_reference=reference,
        payment_proof=upload or proof(),
        now=at("2026-11-10 09:00"),
    )
