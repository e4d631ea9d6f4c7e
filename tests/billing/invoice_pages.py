"""Helpers for the invoice and statement page tests: a closed October with hand-computed numbers, a finalized
invoice, and the people who read it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounts.actor import Actor
from accounts.models import Organization, OrganizationKind, Role
from billing.models import Invoice, Statement
from billing.services.invoices import CreditRequest, credit_note_issue, invoice_finalize
from marketplace.models import Booking, Offering
from tests.billing.settlement import OCT, at, book, close, invoice_of, market, meter, statement_of
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import OrganizationFactory, UserFactory


def finance_actor() -> Actor:
    operator = Organization.objects.filter(kind=OrganizationKind.OPERATOR).first() or OrganizationFactory(
        kind=OrganizationKind.OPERATOR, name="AI Computing Network"
    )
    return Actor.for_member(user=UserFactory(), organization=operator, role=Role.FINANCE)


@dataclass
class October:
    center: Organization
    offering: Offering
    consumer: Organization
    booking: Booking
    invoice: Invoice
    statement: Statement


def closed_october(*, voucher: bool = True, finalize: bool = True, **consumer_fields) -> October:
    """Blue Heron Robotics booked 8 H100 at 12.50 CNY on Oct 5 and used 4 hours: 32 device-hours, 400.00 CNY.
    With the voucher (Zhejiang Compute Fund's "Compute voucher 2026", half of eligible compute): 200.00 off, a
    total of 200.00. VAT included at 6 %: round(400 × 0.06 / 1.06) = 22.64. Finalized on Nov 2: number
    INV-2026-10-000001, due Dec 2. The center's statement: gross 400.00, fee 10 % 40.00, payout 360.00."""
    center, offering, consumer = market(fraction="0")
    for name, value in consumer_fields.items():
        setattr(consumer, name, value)
    consumer.save()
    if voucher:
        fund = sponsor_actor(OrganizationFactory(kind=OrganizationKind.SPONSOR, name="Zhejiang Compute Fund"))
        grant(consumer, of=program(fund, name="Compute voucher 2026"), amount="1000.00")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 04:00", 8)
    close(OCT)
    invoice = invoice_of(consumer, OCT)
    if finalize:
        invoice = invoice_finalize(invoice_id=invoice.pk, now=at("2026-11-02 00:00"), actor=finance_actor())
    return October(center, offering, consumer, booking, invoice, statement_of(center, OCT))


def credit(invoice: Invoice, amount: str, reason: str = "two hours lost to a failed node", when="2026-11-10 00:00"):
    line = invoice.lines.order_by("id").first()
    return credit_note_issue(
        actor=finance_actor(),
        invoice_id=invoice.pk,
        lines=[CreditRequest(line.pk, Decimal(amount))],
        reason=reason,
        now=at(when),
    )
