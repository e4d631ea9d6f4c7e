"""Overdue invoices against the credit limit (issue 6, "Collecting from consumers"): what a consumer still owes on
its finalized invoices counts in its exposure, and a consumer with an invoice past due books nothing more, on the
API and on the booking page, until it is paid.

The invoice: INV-2026-10-000001 of Blue Heron Robotics, 1,000.00 CNY, due 2026-12-03 09:00 UTC. A booking of the
same offering: 8 devices × 4 h × 12.50 = 400.00 CNY."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.models import Role, Scope
from billing.models import PaymentMethod
from billing.services.payments import payment_record
from marketplace.models import Booking, BookingStatus
from marketplace.services.bookings import exposure
from tests.accounts.page_helpers import browser_as, text_of
from tests.billing.payments import october_invoice
from tests.factories import member_of, token_for

pytestmark = pytest.mark.django_db

OVERDUE = datetime(2026, 12, 10, 10, 0, tzinfo=UTC)
NOT_YET_DUE = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
WINDOW = {"devices": 8, "start": "2026-12-11T10:00:00Z", "end": "2026-12-11T14:00:00Z"}


@pytest.fixture
def owing():
    """The consumer, its API client and the offering it books, with the finalized October invoice unpaid."""
    invoice, _center, consumer = october_invoice()
    october = invoice.lines.get().booking
    # The market's clock would have completed it when it ended; it no longer holds anything.
    Booking.objects.filter(pk=october.pk).update(status=BookingStatus.COMPLETED)
    offering = october.offering
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(consumer, Scope.BOOKING)}")
    return invoice, consumer, offering, client


def book(client, offering, **fields):
    return client.post("/api/v1/bookings", {"offering": str(offering.pk), **WINDOW, **fields}, format="json")


def pay(invoice, amount: str, key: str):
    payment_record(
        consumer=invoice.consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal(amount),
        key=key,
        received_at=OVERDUE,
        now=OVERDUE,
        invoice=invoice,
        reference=invoice.number,
    )


def test_an_overdue_consumer_is_refused_with_the_invoices_it_must_pay(owing):
    _invoice, consumer, offering, client = owing
    bookings_before = Booking.objects.filter(consumer=consumer).count()

    with time_machine.travel(OVERDUE, tick=False):
        response = book(client, offering)

    assert response.status_code == 422
    assert response.json() == {
        "detail": "Your invoice INV-2026-10-000001 (1000.00 CNY, due 2026-12-03) is overdue; pay it before booking "
        "more.",
        "code": "overdue_invoices",
        "overdue_invoices": [
            {
                "number": "INV-2026-10-000001",
                "amount_due": "1000.00",
                "currency": "CNY",
                "due_at": "2026-12-03T09:00:00Z",
            }
        ],
    }
    assert Booking.objects.filter(consumer=consumer).count() == bookings_before


def test_before_the_due_date_the_consumer_books_as_usual(owing):
    _invoice, _consumer, offering, client = owing

    with time_machine.travel(NOT_YET_DUE, tick=False):
        response = book(client, offering)

    assert response.status_code == 201
    assert response.json()["status"] == "confirmed"


def test_a_partial_payment_leaves_the_remainder_overdue_and_paying_it_lifts_the_refusal(owing):
    invoice, _consumer, offering, client = owing
    pay(invoice, "400.00", "part")

    with time_machine.travel(OVERDUE, tick=False):
        refused = book(client, offering)
        pay(invoice, "600.00", "rest")
        accepted = book(client, offering)

    assert refused.status_code == 422
    assert refused.json()["overdue_invoices"][0]["amount_due"] == "600.00"
    assert "INV-2026-10-000001 (600.00 CNY, due 2026-12-03)" in refused.json()["detail"]
    assert accepted.status_code == 201
    invoice.refresh_from_db()
    assert invoice.status == "paid"


def test_what_is_owed_on_finalized_invoices_counts_in_the_exposure(owing):
    _invoice, consumer, offering, client = owing
    consumer.credit_limit = Decimal("1500.00")
    consumer.save()
    # October's booking has ended: only its invoice counts, 1,000.00.
    assert exposure(consumer, "CNY") == Decimal("1000.00")

    with time_machine.travel(NOT_YET_DUE, tick=False):
        first = book(client, offering)
        second = book(client, offering, start="2026-12-12T10:00:00Z", end="2026-12-12T14:00:00Z")

    assert first.status_code == 201
    assert second.status_code == 422
    assert second.json() == {
        "detail": "This booking (400.00 CNY) would take your exposure to 1800.00 CNY, over your credit limit of "
        "1500.00 CNY (already committed: 1400.00 CNY).",
        "code": "credit_limit",
        "credit_limit": "1500.00",
        "exposure": "1400.00",
        "amount": "400.00",
        "currency": "CNY",
    }


def test_a_paid_invoice_no_longer_counts_in_the_exposure(owing):
    invoice, consumer, _offering, _client = owing
    pay(invoice, "1000.00", "all")

    assert exposure(consumer, "CNY") == Decimal("0.00")


def test_the_booking_page_says_which_invoices_to_pay_and_books_nothing(owing):
    _invoice, consumer, offering, _client = owing
    browser = browser_as(member_of(consumer, Role.MEMBER, email="engineer@blueheron.test"), consumer)
    bookings_before = Booking.objects.filter(consumer=consumer).count()

    with time_machine.travel(OVERDUE, tick=False):
        response = browser.post(
            f"/catalog/{offering.pk}/book/", {"devices": "8", "start": "2026-12-11T10:00", "end": "2026-12-11T14:00"}
        )

    assert response.status_code == 422
    assert (
        "Your invoice INV-2026-10-000001 (1000.00 CNY, due 2026-12-03) is overdue; pay it before booking more."
        in text_of(response)
    )
    assert Booking.objects.filter(consumer=consumer).count() == bookings_before
