"""A consumer's bookings in the browser: the list, one booking's page, and cancelling with the fee shown first.

The fee follows API.md billing rule 4: at least `cancel_notice_hours` before the start nothing; later the minimum
commitment on the booked device-hours (here 8 devices × 4 h × 12.50 × 0.5 = 200.00 CNY).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from accounts.models import OrganizationKind, Role
from marketplace.models import BookingEvent, BookingStatus
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def consumer():
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")


@pytest.fixture
def booker(consumer):
    return member_of(consumer, Role.MEMBER, email="tang.rui@blueheron.test")


@pytest.fixture
def offering():
    center = CenterFactory(name="Lakeside AI Computing Center")
    return OfferingFactory(
        center=center,
        price_per_device_hour=Decimal("12.50"),
        min_commit_fraction=Decimal("0.5"),
        cancel_notice_hours=24,
    )


def book(consumer, offering, *, start, hours=4, status=BookingStatus.CONFIRMED, **fields):
    booking = BookingFactory(
        consumer=consumer, offering=offering, devices=8, start=start, end=start + timedelta(hours=hours), status=status
    )
    BookingEvent.objects.create(booking=booking, from_status="", to_status=status, at=NOW - timedelta(hours=1))
    return booking


# --- the list -------------------------------------------------------------------------------------------------


def test_my_bookings_lists_only_the_organizations_own_bookings(consumer, booker, offering):
    mine = book(consumer, offering, start=NOW + timedelta(hours=30))
    theirs = book(OrganizationFactory(name="Qingluo Biotech"), offering, start=NOW + timedelta(hours=30))

    response = browser_as(booker, consumer).get("/bookings/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-booking-id="{mine.pk}"' in html
    assert str(theirs.pk) not in html
    text = text_of(response)
    assert "Confirmed" in text
    assert "Lakeside AI Computing Center" in text
    assert "2026-11-04 14:00 → 2026-11-04 18:00" in text
    assert f'data-start="{mine.start.isoformat()}"' in html  # the countdown script's input
    assert "starts in 1 day, 6 hours" in text  # what shows before the script runs
    assert f'href="/bookings/{mine.pk}/cancel/"' in html
    assert '<script src="/static/js/live.js" defer>' in html


def test_the_list_filters_by_status_and_says_so_when_the_status_is_unknown(consumer, booker, offering):
    confirmed = book(consumer, offering, start=NOW + timedelta(hours=30))
    cancelled = book(consumer, offering, start=NOW + timedelta(hours=30), status=BookingStatus.CANCELLED)
    browser = browser_as(booker, consumer)

    only_cancelled = browser.get("/bookings/?status=cancelled").content.decode()
    unknown = browser.get("/bookings/?status=lost")

    assert str(cancelled.pk) in only_cancelled
    assert str(confirmed.pk) not in only_cancelled
    assert unknown.status_code == 200
    assert "Select a valid choice. lost is not one of the available choices." in text_of(unknown)


def test_the_list_reloads_as_a_partial_for_live_updates(consumer, booker, offering):
    booking = book(consumer, offering, start=NOW + timedelta(hours=30))

    response = browser_as(booker, consumer).get("/bookings/", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert "<html" not in html
    assert f'<tr data-booking-id="{booking.pk}">' in html


def test_people_who_do_not_book_cannot_reach_my_bookings(client, offering):
    center_owner = member_of(offering.center, Role.OWNER)

    assert client.get("/bookings/").status_code == 302
    assert browser_as(center_owner, offering.center).get("/bookings/").status_code == 403


# --- one booking ----------------------------------------------------------------------------------------------


def test_the_booking_page_shows_terms_history_and_placeholders(consumer, booker, offering):
    booking = book(consumer, offering, start=NOW + timedelta(hours=30), status=BookingStatus.PENDING_APPROVAL)
    booking.approval_expires_at = NOW + timedelta(hours=24)
    booking.save()
    BookingEvent.objects.create(
        booking=booking,
        from_status=BookingStatus.PENDING_APPROVAL,
        to_status=BookingStatus.CONFIRMED,
        at=NOW,
        actor_label="ops@lakeside.test",
        reason="approved by the center",
    )
    offering.price_per_device_hour = Decimal("99.00")  # a later price change does not reach the booking
    offering.save()

    response = browser_as(booker, consumer).get(f"/bookings/{booking.pk}/")

    text = text_of(response)
    assert response.status_code == 200
    for fact in (
        "Devices 8",
        "Booked hours 4",
        "Price per device-hour 12.50 CNY",
        "Minimum commitment 50% of the booked device-hours",
        "Free cancellation up to 24 hours before the start",
        "No usage reported yet.",
        "The center's agent publishes access details here once the devices are provisioned.",
        "at the latest at 2026-11-04 08:00 UTC",
        "Pending approval → Confirmed approved by the center ops@lakeside.test 2026-11-03 08:00 UTC",
        "Cancelling now is free of charge.",
    ):
        assert fact in text, fact
    assert "99.00" not in text


def test_another_organizations_booking_is_not_found(consumer, booker, offering):
    theirs = book(OrganizationFactory(name="Qingluo Biotech"), offering, start=NOW + timedelta(hours=2))
    before = row(theirs)
    browser = browser_as(booker, consumer)

    assert browser.get(f"/bookings/{theirs.pk}/").status_code == 404
    assert browser.get(f"/bookings/{theirs.pk}/cancel/").status_code == 404
    assert browser.post(f"/bookings/{theirs.pk}/cancel/", {"expected_fee": "1000"}).status_code == 404
    assert browser.get("/bookings/not-a-uuid/").status_code == 404
    assert row(theirs) == before
    assert BookingEvent.objects.filter(booking=theirs).count() == 1


# --- cancelling -----------------------------------------------------------------------------------------------


def test_cancelling_late_shows_the_fee_first_and_then_cancels(consumer, booker, offering):
    booking = book(consumer, offering, start=NOW + timedelta(hours=2))
    browser = browser_as(booker, consumer)

    confirm = browser.get(f"/bookings/{booking.pk}/cancel/")

    assert confirm.status_code == 200
    assert "Cancellation fee if you cancel now 200.00 CNY" in text_of(confirm)
    assert "Cancel and pay 200.00 CNY" in text_of(confirm)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED  # showing the fee changes nothing

    response = browser.post(f"/bookings/{booking.pk}/cancel/", {"expected_fee": "200.00"}, follow=True)

    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.cancelled_at == NOW
    event = booking.events.order_by("-id").first()
    assert (event.from_status, event.to_status, event.actor_label) == ("confirmed", "cancelled", booker.email)
    assert "The booking was cancelled. A cancellation fee of 200.00 CNY applies." in text_of(response)


def test_cancelling_well_ahead_is_free(consumer, booker, offering):
    booking = book(consumer, offering, start=NOW + timedelta(hours=30))
    browser = browser_as(booker, consumer)

    confirm = browser.get(f"/bookings/{booking.pk}/cancel/")
    response = browser.post(f"/bookings/{booking.pk}/cancel/", {"expected_fee": "0.00"}, follow=True)

    assert "Cancellation fee if you cancel now 0.00 CNY" in text_of(confirm)
    assert "Cancel free of charge" in text_of(confirm)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    assert "The booking was cancelled free of charge." in text_of(response)


def test_a_fee_that_grew_since_the_page_was_shown_is_shown_again_before_cancelling(consumer, booker, offering):
    booking = book(consumer, offering, start=NOW + timedelta(hours=30))
    browser = browser_as(booker, consumer)
    assert "0.00 CNY" in text_of(browser.get(f"/bookings/{booking.pk}/cancel/"))

    with time_machine.travel(NOW + timedelta(hours=7), tick=False):  # inside the 24 h notice now
        response = browser.post(f"/bookings/{booking.pk}/cancel/", {"expected_fee": "0.00"})

    assert response.status_code == 409
    assert "The cancellation fee changed since you opened this page." in text_of(response)
    assert "Cancellation fee if you cancel now 200.00 CNY" in text_of(response)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED


def test_a_booking_that_ended_cannot_be_cancelled(consumer, booker, offering):
    booking = book(consumer, offering, start=NOW - timedelta(hours=10), status=BookingStatus.COMPLETED)
    before = row(booking)
    browser = browser_as(booker, consumer)

    page = browser.get(f"/bookings/{booking.pk}/")
    response = browser.post(f"/bookings/{booking.pk}/cancel/", {"expected_fee": "1000"}, follow=True)

    assert 'id="cancel-link"' not in page.content.decode()
    assert "This booking is Completed and can no longer be cancelled." in text_of(response)
    assert row(booking) == before


@pytest.mark.parametrize("role", [Role.FINANCE, Role.VIEWER])
def test_readers_see_bookings_but_cannot_cancel_them(consumer, offering, role):
    booking = book(consumer, offering, start=NOW + timedelta(hours=2))
    before = row(booking)
    browser = browser_as(member_of(consumer, role), consumer)

    listing = browser.get("/bookings/")
    detail = browser.get(f"/bookings/{booking.pk}/")

    assert str(booking.pk) in listing.content.decode()
    assert "/cancel/" not in listing.content.decode()
    assert 'id="cancel-link"' not in detail.content.decode()
    assert browser.get(f"/bookings/{booking.pk}/cancel/").status_code == 403
    assert browser.post(f"/bookings/{booking.pk}/cancel/", {"expected_fee": "1000"}).status_code == 403
    assert row(booking) == before
