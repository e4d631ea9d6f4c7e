"""POST /api/v1/quotes and /api/v1/bookings, list, detail, cancel, and the centers' approvals (API.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.models import OrganizationKind, Scope
from marketplace.models import Booking, BookingEvent, BookingStatus, OfferingStatus
from tests.billing.vouchers import grant
from tests.factories import OrganizationFactory, token_for
from tests.marketplace.factories import BookingFactory, OfferingFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def offering():
    return OfferingFactory(
        devices=16,
        price_per_device_hour=Decimal("12.5000"),
        min_commit_fraction=Decimal("0.500"),
        cancel_notice_hours=24,
        min_hours=2,
        max_hours=72,
    )


@pytest.fixture
def consumer_client(api_client, enterprise):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(enterprise, Scope.BOOKING)}")
    return api_client


def window(offering, devices=8, start="2026-11-03T10:00:00Z", end="2026-11-03T14:00:00Z"):
    return {"offering": str(offering.pk), "devices": devices, "start": start, "end": end}


def test_a_quote_prices_the_window_and_reserves_nothing(consumer_client, offering):
    response = consumer_client.post("/api/v1/quotes", window(offering), format="json")

    assert response.status_code == 200
    body = response.json()
    # 8 devices × 4 h = 32 device-hours at 12.50 = 400.00; commitment 0.5 × 400.00 = 200.00.
    # Energy: 700 W × 32 device-hours × PUE 1.25 = 28 kWh; CO2: 28 × 520 g/kWh × (1 − 0.4) = 8.736 kg.
    assert body == {
        "offering": str(offering.pk),
        "devices": 8,
        "start": "2026-11-03T10:00:00Z",
        "end": "2026-11-03T14:00:00Z",
        "device_hours": "32.0000",
        "amount": "400.00",
        "currency": "CNY",
        "min_commit_amount": "200.00",
        "voucher_estimate": "0.00",
        "estimated_energy_kwh": "28.000",
        "estimated_co2_kg": "8.736",
        "available": True,
        "available_devices": 16,
    }
    assert Booking.objects.count() == 0


def test_a_quote_estimates_what_the_consumers_voucher_would_cover(consumer_client, offering, enterprise):
    grant(enterprise, rate="0.50", amount="150.00")
    others = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    not_eligible = OfferingFactory(
        center=offering.center, site=offering.site, devices=16, min_hours=2, voucher_eligible=False
    )

    covered = consumer_client.post("/api/v1/quotes", window(offering), format="json").json()
    outside = consumer_client.post("/api/v1/quotes", window(not_eligible), format="json").json()
    theirs = (
        APIClient(HTTP_AUTHORIZATION=f"Bearer {token_for(others, Scope.BOOKING)}")
        .post("/api/v1/quotes", window(offering), format="json")
        .json()
    )

    # 400.00 at the voucher's 50 % rate = 200.00, capped by the 150.00 granted.
    assert (covered["amount"], covered["voucher_estimate"]) == ("400.00", "150.00")
    assert outside["voucher_estimate"] == "0.00"  # the offering takes no vouchers
    assert theirs["voucher_estimate"] == "0.00"  # another consumer has no voucher


def test_a_quote_says_when_the_window_does_not_fit(consumer_client, offering):
    BookingFactory(offering=offering, devices=12, start=NOW + timedelta(hours=3), end=NOW + timedelta(hours=5))

    body = consumer_client.post("/api/v1/quotes", window(offering), format="json").json()

    assert (body["available"], body["available_devices"]) == (False, 4)


def test_booking_confirms_and_snapshots_the_terms(consumer_client, offering, enterprise):
    response = consumer_client.post("/api/v1/bookings", window(offering), format="json")

    assert response.status_code == 201
    body = response.json()
    booking = Booking.objects.get()
    assert body["id"] == str(booking.pk)
    assert body["status"] == "confirmed"
    assert (body["unit_price"], body["currency"], body["min_commit_fraction"], body["cancel_notice_hours"]) == (
        "12.5000",
        "CNY",
        "0.500",
        24,
    )
    assert (body["consumer"], body["devices"], body["start"], body["end"]) == (
        enterprise.slug,
        8,
        "2026-11-03T10:00:00Z",
        "2026-11-03T14:00:00Z",
    )
    assert booking.consumer == enterprise
    assert booking.confirmed_at == NOW
    assert list(booking.events.values_list("from_status", "to_status")) == [("", "confirmed")]


def test_a_price_change_never_reaches_a_confirmed_booking(consumer_client, offering):
    booking_id = consumer_client.post("/api/v1/bookings", window(offering), format="json").json()["id"]

    offering.price_per_device_hour = Decimal("20.0000")
    offering.save()

    assert consumer_client.get(f"/api/v1/bookings/{booking_id}").json()["unit_price"] == "12.5000"
    assert Booking.objects.get(pk=booking_id).unit_price == Decimal("12.5000")


def test_an_offering_that_needs_approval_books_as_pending(consumer_client, offering):
    offering.requires_approval = True
    offering.save()

    body = consumer_client.post("/api/v1/bookings", window(offering), format="json").json()

    assert body["status"] == "pending_approval"
    # Approval must come within the TTL (24 h) and never after the start: here the start comes first.
    assert body["approval_expires_at"] == "2026-11-03T10:00:00Z"


def test_no_capacity_is_a_409_that_leaves_nothing(consumer_client, offering):
    BookingFactory(offering=offering, devices=10, start=NOW + timedelta(hours=1), end=NOW + timedelta(hours=3))

    response = consumer_client.post("/api/v1/bookings", window(offering), format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Only 6 of 16 devices are free over that whole window; you asked for 8.",
        "code": "insufficient_capacity",
        "available_devices": 6,
    }
    assert Booking.objects.count() == 1


def test_a_booking_ending_where_another_starts_does_not_collide(consumer_client, offering):
    BookingFactory(offering=offering, devices=16, start=NOW, end=NOW + timedelta(hours=2))

    response = consumer_client.post("/api/v1/bookings", window(offering, devices=16), format="json")

    assert response.status_code == 201


def test_cancelled_and_rejected_bookings_free_their_capacity(consumer_client, offering):
    for status in (BookingStatus.CANCELLED, BookingStatus.REJECTED, BookingStatus.EXPIRED, BookingStatus.COMPLETED):
        BookingFactory(
            offering=offering, devices=16, start=NOW + timedelta(hours=2), end=NOW + timedelta(hours=6), status=status
        )

    assert consumer_client.post("/api/v1/bookings", window(offering, devices=16), format="json").status_code == 201


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"devices": 0}, "devices", "Ensure this value is greater than or equal to 1."),
        ({"devices": -3}, "devices", "Ensure this value is greater than or equal to 1."),
        ({"devices": 17}, "devices", "This offering has 16 devices in all; you asked for 17."),
        ({"devices": "eight"}, "devices", "A valid integer is required."),
        ({"end": "2026-11-03T10:00:00Z"}, "end", "The end must come after the start."),
        ({"end": "2026-11-03T09:00:00Z"}, "end", "The end must come after the start."),
        (
            {"start": "2026-11-03T07:54:00Z", "end": "2026-11-03T12:00:00Z"},
            "start",
            "The start lies in the past.",
        ),
        (
            {"end": "2026-11-03T11:00:00Z"},
            "end",
            "Book at least 2 hours of this offering (this window is 1 hours).",
        ),
        (
            {"end": "2026-11-06T11:00:00Z"},
            "end",
            "Book at most 72 hours of this offering (this window is 73 hours).",
        ),
        ({"start": "tomorrow"}, "start", None),
        ({"offering": "not-a-uuid"}, "offering", "Must be a valid UUID."),
    ],
)
def test_bad_windows_are_400_naming_the_field(consumer_client, offering, changes, field, message):
    response = consumer_client.post("/api/v1/bookings", {**window(offering), **changes}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["errors"]) == [field]
    if message:
        assert body["errors"][field] == [message]
    assert Booking.objects.count() == 0


def test_a_start_up_to_five_minutes_ago_is_accepted_as_clock_skew(consumer_client, offering):
    response = consumer_client.post(
        "/api/v1/bookings", window(offering, start="2026-11-03T07:55:00Z", end="2026-11-03T10:00:00Z"), format="json"
    )

    assert response.status_code == 201


def test_malformed_json_is_a_400(consumer_client):
    response = consumer_client.post("/api/v1/bookings", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"


@pytest.mark.parametrize("status", [OfferingStatus.PAUSED, OfferingStatus.RETIRED])
def test_a_paused_or_retired_offering_takes_no_bookings(consumer_client, offering, status):
    offering.status = status
    offering.save()

    response = consumer_client.post("/api/v1/bookings", window(offering), format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "offering_not_bookable"
    assert Booking.objects.count() == 0


def test_a_draft_offering_is_not_found(consumer_client, offering):
    offering.status = OfferingStatus.DRAFT
    offering.save()

    assert consumer_client.post("/api/v1/bookings", window(offering), format="json").status_code == 404


def test_a_center_cannot_book(api_client, offering):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(offering.center, *Scope.values)}")

    response = api_client.post("/api/v1/bookings", window(offering), format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "wrong_organization_kind"
    assert Booking.objects.count() == 0


def test_booking_needs_the_booking_scope(api_client, enterprise, offering):
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(enterprise, Scope.READ)}")

    response = api_client.post("/api/v1/bookings", window(offering), format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "scope_required"


def test_the_credit_limit_refuses_a_booking_with_the_numbers(consumer_client, enterprise, offering):
    enterprise.credit_limit = Decimal("700.00")
    enterprise.save()
    assert consumer_client.post("/api/v1/bookings", window(offering), format="json").status_code == 201

    response = consumer_client.post(
        "/api/v1/bookings", window(offering, start="2026-11-04T10:00:00Z", end="2026-11-04T14:00:00Z"), format="json"
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": "This booking (400.00 CNY) would take your exposure to 800.00 CNY, over your credit limit of "
        "700.00 CNY (already committed: 400.00 CNY).",
        "code": "credit_limit",
        "credit_limit": "700.00",
        "exposure": "400.00",
        "amount": "400.00",
        "currency": "CNY",
    }
    assert Booking.objects.count() == 1


def test_idempotency_key_replays_the_first_booking(consumer_client, offering):
    first = consumer_client.post("/api/v1/bookings", window(offering), format="json", HTTP_IDEMPOTENCY_KEY="book-1")
    again = consumer_client.post("/api/v1/bookings", window(offering), format="json", HTTP_IDEMPOTENCY_KEY="book-1")
    other = consumer_client.post(
        "/api/v1/bookings", window(offering, devices=2), format="json", HTTP_IDEMPOTENCY_KEY="book-1"
    )

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict"
    assert Booking.objects.count() == 1


def test_lists_and_details_show_only_the_organizations_own_bookings(consumer_client, enterprise, offering):
    mine = BookingFactory(offering=offering, consumer=enterprise)
    theirs = BookingFactory(offering=offering)

    listed = consumer_client.get("/api/v1/bookings").json()
    foreign = consumer_client.get(f"/api/v1/bookings/{theirs.pk}")
    foreign_cancel = consumer_client.post(f"/api/v1/bookings/{theirs.pk}/cancel")

    assert [b["id"] for b in listed["results"]] == [str(mine.pk)]
    assert foreign.status_code == 404
    assert foreign.json() == {"detail": "Not found.", "code": "not_found"}
    assert foreign_cancel.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == BookingStatus.CONFIRMED


def test_detail_shows_usage_so_far_and_the_cancellation_fee(consumer_client, enterprise, offering):
    booking = BookingFactory(
        offering=offering,
        consumer=enterprise,
        devices=8,
        start=NOW + timedelta(hours=10),
        end=NOW + timedelta(hours=14),
    )

    body = consumer_client.get(f"/api/v1/bookings/{booking.pk}").json()

    assert body["usage"] == {
        "device_hours": "0.0000",
        "device_seconds": "0",
        "amount": "0.00",
        "currency": "CNY",
        "records": 0,
        "last_end": None,
    }
    assert body["allocation"] == {"state": "pending", "access": {}, "message": ""}
    # Inside the 24 h notice: the commitment on the booked hours, 0.5 × 8 × 4 × 12.50 = 200.00.
    assert body["cancellation_fee"] == "200.00"


def test_cancelling_frees_the_capacity_and_writes_history(consumer_client, enterprise, offering):
    booking = BookingFactory(offering=offering, consumer=enterprise, devices=16, start=NOW + timedelta(days=3))

    response = consumer_client.post(f"/api/v1/bookings/{booking.pk}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancellation_fee"] is None
    booking.refresh_from_db()
    assert (booking.status, booking.cancelled_at) == (BookingStatus.CANCELLED, NOW)
    assert list(BookingEvent.objects.filter(booking=booking).values_list("from_status", "to_status")) == [
        ("confirmed", "cancelled")
    ]
    again = consumer_client.post(f"/api/v1/bookings/{booking.pk}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "invalid_transition"


def test_a_center_approves_or_rejects_only_its_own_pending_bookings(api_client, offering):
    pending = BookingFactory(offering=offering, status=BookingStatus.PENDING_APPROVAL)
    foreign = BookingFactory(status=BookingStatus.PENDING_APPROVAL)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(offering.center, Scope.INVENTORY)}")

    incoming = api_client.get("/api/v1/center/bookings").json()
    approved = api_client.post(f"/api/v1/center/bookings/{pending.pk}/approve")
    not_mine = api_client.post(f"/api/v1/center/bookings/{foreign.pk}/reject", {"reason": "no"}, format="json")
    twice = api_client.post(f"/api/v1/center/bookings/{pending.pk}/approve")

    assert [b["id"] for b in incoming["results"]] == [str(pending.pk)]
    assert approved.status_code == 200
    assert approved.json()["status"] == "confirmed"
    assert not_mine.status_code == 404
    assert twice.status_code == 409
    foreign.refresh_from_db()
    assert foreign.status == BookingStatus.PENDING_APPROVAL


def test_a_center_rejects_with_a_reason(api_client, offering):
    pending = BookingFactory(offering=offering, status=BookingStatus.PENDING_APPROVAL)
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(offering.center, Scope.INVENTORY)}")

    response = api_client.post(
        f"/api/v1/center/bookings/{pending.pk}/reject", {"reason": "maintenance window"}, format="json"
    )

    assert response.json()["status"] == "rejected"
    assert pending.events.get().reason == "maintenance window"


def test_a_university_and_an_institute_may_book(api_client, offering):
    for kind in (OrganizationKind.UNIVERSITY, OrganizationKind.INSTITUTE):
        org = OrganizationFactory(kind=kind)
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(org, Scope.BOOKING)}")
        assert api_client.post("/api/v1/bookings", window(offering, devices=2), format="json").status_code == 201
