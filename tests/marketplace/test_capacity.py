"""The one definition of capacity use (marketplace.selectors.capacity), on bookings built by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from marketplace.models import BookingStatus, Offering
from marketplace.selectors.capacity import peak_devices, peak_devices_expression, peak_devices_from
from tests.marketplace.factories import BookingFactory, OfferingFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)


def at(hour: float) -> datetime:
    return T0 + timedelta(hours=hour)


def book(offering, devices, start_hour, end_hour, status=BookingStatus.CONFIRMED):
    return BookingFactory(offering=offering, devices=devices, start=at(start_hour), end=at(end_hour), status=status)


@pytest.fixture
def offering():
    return OfferingFactory(devices=64)


def test_no_bookings_use_nothing(offering):
    assert peak_devices(offering.pk, at(0), at(24)) == 0


def test_a_nested_booking_adds_to_the_one_around_it(offering):
    book(offering, 4, 0, 10)
    book(offering, 3, 2, 5)

    assert peak_devices(offering.pk, at(0), at(10)) == 7


def test_adjacent_bookings_never_overlap_because_windows_are_half_open(offering):
    book(offering, 5, 0, 2)
    book(offering, 5, 2, 4)

    assert peak_devices(offering.pk, at(0), at(4)) == 5


def test_partial_overlaps_peak_where_the_most_coincide(offering):
    book(offering, 2, 0, 4)
    book(offering, 3, 3, 6)
    book(offering, 4, 5, 8)

    # [3, 4): 2 + 3 = 5; [5, 6): 3 + 4 = 7.
    assert peak_devices(offering.pk, at(0), at(8)) == 7


def test_the_window_clips_what_counts(offering):
    book(offering, 2, 0, 4)
    book(offering, 3, 3, 6)
    book(offering, 4, 5, 8)

    assert peak_devices(offering.pk, at(6), at(8)) == 4
    assert peak_devices(offering.pk, at(0), at(3)) == 2
    # A booking ending exactly at the window's start, or starting exactly at its end, is outside it.
    assert peak_devices(offering.pk, at(8), at(9)) == 0
    assert peak_devices(offering.pk, at(-1), at(0)) == 0


def test_only_holding_statuses_count(offering):
    book(offering, 1, 0, 4, BookingStatus.PENDING_APPROVAL)
    book(offering, 2, 0, 4, BookingStatus.CONFIRMED)
    book(offering, 4, 0, 4, BookingStatus.ACTIVE)
    for status in (BookingStatus.COMPLETED, BookingStatus.REJECTED, BookingStatus.CANCELLED, BookingStatus.EXPIRED):
        book(offering, 8, 0, 4, status)

    assert peak_devices(offering.pk, at(0), at(4)) == 7


def test_another_offerings_bookings_do_not_count(offering):
    book(OfferingFactory(), 9, 0, 4)

    assert peak_devices(offering.pk, at(0), at(4)) == 0


def test_peak_from_a_moment_on_covers_everything_after_it(offering):
    book(offering, 10, 0, 2)  # over before the moment
    book(offering, 6, 1, 5)  # running across it
    book(offering, 7, 4, 100)  # far in the future
    book(offering, 9, 200, 300, BookingStatus.CANCELLED)

    assert peak_devices_from(offering.pk, at(3)) == 13
    assert peak_devices_from(offering.pk, at(5)) == 7
    assert peak_devices_from(offering.pk, at(100)) == 0


def _by_hand(bookings, start, end) -> int:
    """The peak over [start, end) by brute force: check every booking edge inside the window."""
    holding = [b for b in bookings if b.status in {"pending_approval", "confirmed", "active"}]
    instants = {start} | {b.start for b in holding if start <= b.start < end}
    return max(sum(b.devices for b in holding if b.start <= t < b.end) for t in instants)


def test_the_catalog_expression_agrees_with_the_single_offering_query():
    rng = random.Random(20261103)
    offerings = [OfferingFactory(devices=64) for _ in range(6)]
    statuses = [s.value for s in BookingStatus]
    bookings = {offering.pk: [] for offering in offerings}
    for _ in range(120):
        offering = rng.choice(offerings)
        start = rng.randrange(0, 48)
        booking = book(offering, rng.randint(1, 8), start, start + rng.randint(1, 12), rng.choice(statuses))
        bookings[offering.pk].append(booking)

    for _ in range(25):
        start = rng.randrange(-4, 56)
        window = (at(start), at(start + rng.randint(1, 24)))
        annotated = dict(
            Offering.objects.filter(pk__in=bookings)
            .annotate(peak=peak_devices_expression(*window))
            .values_list("pk", "peak")
        )

        for offering in offerings:
            expected = _by_hand(bookings[offering.pk], *window)
            assert annotated[offering.pk] == peak_devices(offering.pk, *window) == expected
