"""The invoice list (API) reads what is paid and still owed for a whole page at once: its query count does not grow
with the number of invoices, and each invoice shows exactly what `invoice_outstanding` says it owes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Scope
from billing.models import Invoice, PaymentMethod
from billing.services.invoices import CreditRequest, credit_note_issue, invoice_finalize
from billing.services.payments import invoice_outstanding, invoices_outstanding, payment_record
from tests.accounts.api_helpers import with_token
from tests.billing.payments import finance_clerk
from tests.billing.settlement import DEC, NOV, OCT, book, close, invoice_of, market, meter
from tests.factories import token_for

pytestmark = pytest.mark.django_db

PAID_AT = datetime(2027, 1, 10, 10, 0, tzinfo=UTC)


def month_invoice(offering, consumer, month: datetime, *, finalize: bool = True) -> Invoice:
    """1,000.00 CNY of usage (8 H100 × 10 h at 12.50) on the 5th of `month`, the month closed and its invoice
    finalized."""
    day = f"{month:%Y-%m}-05"
    booking = book(offering, consumer, f"{day} 00:00", f"{day} 10:00", 8)
    meter(booking, f"{day} 00:00", f"{day} 10:00", 8)
    close(month)
    invoice = invoice_of(consumer, month)
    if finalize:
        invoice = invoice_finalize(
            invoice_id=invoice.pk, now=datetime(month.year + (month.month == 12), month.month % 12 + 1, 3, tzinfo=UTC)
        )
    return invoice


def pay(invoice: Invoice, amount: str, key: str) -> None:
    payment_record(
        consumer=invoice.consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal(amount),
        key=key,
        received_at=PAID_AT,
        now=PAID_AT,
        invoice=invoice,
    )


def amounts(listed) -> dict[str, tuple[str, str, str]]:
    return {row["period"]: (row["status"], row["amount_paid"], row["amount_due"]) for row in listed["results"]}


def test_the_invoice_list_costs_the_same_number_of_queries_for_one_invoice_or_many(django_assert_max_num_queries):
    _center, offering, consumer = market(fraction="0")
    api = with_token(token_for(consumer, Scope.BILLING))
    october = month_invoice(offering, consumer, OCT)
    pay(october, "1000.00", "oct")
    with CaptureQueriesContext(connection) as one:
        assert api.get("/api/v1/invoices").status_code == 200

    november = month_invoice(offering, consumer, NOV)
    pay(november, "400.00", "nov")
    december = month_invoice(offering, consumer, DEC)
    line = december.lines.get()
    credit_note_issue(
        actor=finance_clerk(),
        invoice_id=december.pk,
        lines=[CreditRequest(line.pk, Decimal("100.00"))],
        reason="Node down for an hour",
        now=datetime(2027, 1, 5, tzinfo=UTC),
    )
    with django_assert_max_num_queries(len(one.captured_queries)):
        listed = api.get("/api/v1/invoices")

    assert listed.status_code == 200
    assert amounts(listed.json()) == {
        "2026-10": ("paid", "1000.00", "0.00"),
        "2026-11": ("finalized", "400.00", "600.00"),
        "2026-12": ("finalized", "0.00", "900.00"),
    }


def test_the_batch_agrees_with_invoice_outstanding_for_paid_partly_paid_credited_and_draft_invoices():
    _center, offering, consumer = market(fraction="0")
    october = month_invoice(offering, consumer, OCT)
    pay(october, "1000.00", "oct")
    november = month_invoice(offering, consumer, NOV)
    pay(november, "250.00", "nov")
    december = month_invoice(offering, consumer, DEC, finalize=False)
    invoices = list(Invoice.objects.filter(consumer=consumer).order_by("period__start"))

    balances = invoices_outstanding(invoices)

    assert [(balances[i.pk].paid, balances[i.pk].due, balances[i.pk].credited) for i in invoices] == [
        (Decimal("1000.0000"), Decimal("0.0000"), Decimal(0)),
        (Decimal("250.0000"), Decimal("750.0000"), Decimal(0)),
        (Decimal(0), Decimal(0), Decimal(0)),  # a draft owes nothing yet
    ]
    assert [invoice_outstanding(i) for i in invoices] == [balances[i.pk].due for i in invoices]
    assert invoices_outstanding([]) == {}
    assert december.status == "draft"
