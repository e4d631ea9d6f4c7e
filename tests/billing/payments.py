"""Helpers for payment tests: a closed October with one finalized invoice of 1,000.00 CNY (8 H100 × 10 h at 12.50),
and the operator's finance clerk who records and reconciles payments."""

from __future__ import annotations

from datetime import UTC, datetime

from accounts.actor import Actor
from accounts.models import OrganizationKind, Role
from billing.models import Invoice
from billing.services.invoices import invoice_finalize
from tests.billing.settlement import OCT, book, close, invoice_of, market, meter
from tests.factories import OrganizationFactory, member_of

FINALIZED_AT = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


def finance_clerk(email: str = "clerk@platform.example") -> Actor:
    """An operator finance member (the operator organization is created on first use)."""
    from accounts.models import Organization

    operator = Organization.objects.filter(kind=OrganizationKind.OPERATOR).first() or OrganizationFactory(
        kind=OrganizationKind.OPERATOR, name="AI Computing Network"
    )
    user = member_of(operator, Role.FINANCE, email=email)
    return Actor.for_member(user=user, organization=operator, role=Role.FINANCE)


def october_invoice(*, hours: int = 10) -> tuple[Invoice, object, object]:
    """A finalized October invoice of Blue Heron Robotics for 8 H100 × `hours` h at 12.50 CNY (1,000.00 CNY for
    10 h), with its center and consumer."""
    center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", f"2026-10-05 {hours:02d}:00", 8)
    meter(booking, "2026-10-05 00:00", f"2026-10-05 {hours:02d}:00", 8)
    close(OCT)
    invoice = invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=FINALIZED_AT)
    return invoice, center, consumer
