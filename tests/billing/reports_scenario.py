"""A small set of October invoices of six consumers, finalized on different days so that on 2027-03-31 each
sits in another aging bucket, with payments, a credit note, a write-off, statements, payouts and voucher claims.

All amounts are 8 H100 × hours × 12.50 CNY = 100.00 CNY per hour booked:

| consumer            | hours | finalized  | due        | by 2027-03-31                     | days past due | bucket  |
|---------------------|-------|------------|------------|-----------------------------------|---------------|---------|
| Blue Heron Robotics | 10    | 2026-11-03 | 2026-12-03 | paid 400.00 on 2027-01-10 → 600   | 118           | over 90 |
| Kestrel Labs        | 5     | 2027-01-15 | 2027-02-14 | credit note 100.00 → 400          | 45            | 31–60   |
| Crane Institute     | 2     | 2027-03-10 | 2027-04-09 | 200                               | −9            | current |
| Dove Analytics      | 3     | 2027-02-20 | 2027-03-22 | 300                               | 9             | 1–30    |
| Egret Systems       | 7     | 2026-12-20 | 2027-01-19 | 699.50 paid + 0.50 written off: 0 | —             | —       |
| Falcon Works        | 6     | 2026-12-20 | 2027-01-19 | 600                               | 71            | 61–90   |

Kestrel Labs also pays 200.00 on 2027-04-05, after the day the report is read as of.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from accounts.actor import Actor
from accounts.models import OrganizationKind
from billing.models import (
    Invoice,
    Payment,
    PaymentMethod,
    Payout,
    PayoutStatus,
    Statement,
    VoucherClaim,
    VoucherClaimStatus,
)
from billing.services.invoices import CreditRequest, credit_note_issue, invoice_finalize
from billing.services.payments import payment_record, posting_period, write_off_create
from tests.billing.payments import finance_clerk
from tests.billing.settlement import NOV, OCT, book, close, invoice_of, market, meter, period, statement_of
from tests.factories import OrganizationFactory
from tests.marketplace.factories import CenterFactory, OfferingFactory, SiteFactory

AS_OF = datetime(2027, 3, 31, tzinfo=UTC).date()
D = Decimal


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@dataclass
class Scenario:
    consumers: dict[str, object]
    invoices: dict[str, Invoice]
    centers: dict[str, object]
    sponsors: dict[str, object]
    clerk: Actor


def pay(invoice: Invoice, amount: str, when: str, key: str) -> Payment:
    return payment_record(
        consumer=invoice.consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency=invoice.currency,
        amount=D(amount),
        key=key,
        received_at=at(when),
        now=at(when),
        invoice=invoice,
        reference=invoice.number,
    ).payment


PLAN = [
    # name, day of October, hours, finalized at
    ("Blue Heron Robotics", 5, 10, "2026-11-03 09:00"),
    ("Kestrel Labs", 6, 5, "2027-01-15 09:00"),
    ("Crane Institute", 7, 2, "2027-03-10 09:00"),
    ("Dove Analytics", 8, 3, "2027-02-20 09:00"),
    ("Egret Systems", 9, 7, "2026-12-20 09:00"),
    ("Falcon Works", 10, 6, "2026-12-20 09:00"),
]


def october_book() -> Scenario:
    center, offering, first = market(fraction="0")
    consumers: dict[str, object] = {}
    for name, day, hours, _finalized in PLAN:
        consumer = first if name == first.name else OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name=name)
        consumers[name] = consumer
        booking = book(offering, consumer, f"2026-10-{day:02d} 00:00", f"2026-10-{day:02d} {hours:02d}:00", 8)
        meter(booking, f"2026-10-{day:02d} 00:00", f"2026-10-{day:02d} {hours:02d}:00", 8)
    close(OCT)
    invoices = {}
    for name, _day, _hours, finalized in PLAN:
        invoices[name] = invoice_finalize(invoice_id=invoice_of(consumers[name], OCT).pk, now=at(finalized))
    clerk = finance_clerk()
    pay(invoices["Blue Heron Robotics"], "400.00", "2027-01-10 08:00", "bh-1")
    kestrel = invoices["Kestrel Labs"]
    credit_note_issue(
        actor=clerk,
        invoice_id=kestrel.pk,
        lines=[CreditRequest(kestrel.lines.get().pk, D("100.00"))],
        reason="Two hours lost to a power cut",
        now=at("2027-02-01 10:00"),
    )
    pay(kestrel, "200.00", "2027-04-05 08:00", "ks-1")
    egret = invoices["Egret Systems"]
    pay(egret, "699.50", "2027-02-01 08:00", "eg-1")
    write_off_create(
        actor=clerk,
        amount=D("0.50"),
        reason="Bank charge",
        now=at("2027-02-02 08:00"),
        invoice=Invoice.objects.get(pk=egret.pk),
    )
    for name in invoices:
        invoices[name].refresh_from_db()
    return Scenario(
        consumers=consumers,
        invoices=invoices,
        centers={"Lakeside AI Computing Center": center},
        sponsors={},
        clerk=clerk,
    )


def payouts_and_claims() -> Scenario:
    """Two centers with October statements (one paid out on 2026-11-20, one on its way) and a November statement of
    the first not yet paid; two sponsors with voucher claims (one paid on 2026-12-10, two open)."""
    lakeside, offering, consumer = market(fraction="0")
    riverside = CenterFactory(name="Riverside Compute")
    river_offering = OfferingFactory(
        center=riverside,
        site=SiteFactory(center=riverside, region="cn-north"),
        accelerator=offering.accelerator,
        price_per_device_hour=D("10.0000"),
        currency="CNY",
        min_commit_fraction=D("0"),
    )
    for target, day in ((offering, 5), (river_offering, 6)):
        booking = book(target, consumer, f"2026-10-{day:02d} 00:00", f"2026-10-{day:02d} 10:00", 8)
        meter(booking, f"2026-10-{day:02d} 00:00", f"2026-10-{day:02d} 10:00", 8)
    close(OCT)
    booking = book(offering, consumer, "2026-11-05 00:00", "2026-11-05 05:00", 8)
    meter(booking, "2026-11-05 00:00", "2026-11-05 05:00", 8)
    close(NOV)
    invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=at("2026-11-03 09:00"))
    invoice_finalize(invoice_id=invoice_of(consumer, NOV).pk, now=at("2026-12-03 09:00"))
    paid_on = at("2026-11-20 10:00")
    for statement, status, paid_at in (
        (statement_of(lakeside, OCT), PayoutStatus.PAID, paid_on),
        (statement_of(riverside, OCT), PayoutStatus.IN_TRANSIT, None),
    ):
        Payout.objects.create(
            statement=statement,
            center=statement.center,
            currency=statement.currency,
            amount=statement.net_payout,
            method="bank",
            status=status,
            bank_reference="BANK-1" if paid_at else "",
            period=posting_period(paid_at) if paid_at else None,
            created_at=at("2026-11-18 10:00"),
            paid_at=paid_at,
            paid_by="clerk@platform.example" if paid_at else "",
        )
    sponsors = {
        "Shanghai Compute Fund": OrganizationFactory(kind=OrganizationKind.SPONSOR, name="Shanghai Compute Fund"),
        "Zhejiang AI Program": OrganizationFactory(kind=OrganizationKind.SPONSOR, name="Zhejiang AI Program"),
    }
    fund, program = sponsors.values()
    VoucherClaim.objects.create(
        sponsor=fund,
        period=period(OCT),
        currency="CNY",
        amount=D("300.00"),
        status=VoucherClaimStatus.PAID,
        issued_at=at("2026-11-02 01:00"),
        paid_at=at("2026-12-10 09:00"),
        payment_reference="FUND-10",
        paid_by="clerk@platform.example",
    )
    VoucherClaim.objects.create(
        sponsor=fund, period=period(NOV), currency="CNY", amount=D("120.00"), issued_at=at("2026-12-02 01:00")
    )
    VoucherClaim.objects.create(
        sponsor=program, period=period(OCT), currency="CNY", amount=D("75.50"), issued_at=at("2026-11-02 01:00")
    )
    return Scenario(
        consumers={consumer.name: consumer},
        invoices={},
        centers={"Lakeside AI Computing Center": lakeside, "Riverside Compute": riverside},
        sponsors=sponsors,
        clerk=finance_clerk(),
    )


def statements() -> dict[tuple[str, str], Statement]:
    return {(s.center.name, s.period.label): s for s in Statement.objects.select_related("center", "period")}
