"""The slots behind the availability and capacity charts agree with the capacity check that guards bookings:
a slot's booked figure is `peak_devices` over that slot, for every slot, from one query."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketplace.models import BookingStatus
from marketplace.selectors.availability import chart_data, offering_slots
from marketplace.selectors.capacity import peak_devices
from tests.marketplace.factories import BookingFactory, OfferingFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
STEP = timedelta(hours=6)


def test_each_slot_holds_the_peak_use_inside_it_as_the_booking_service_sees_it():
    offering = OfferingFactory(devices=64)
    rng = random.Random(20261103)
    statuses = [*BookingStatus.values]
    for _ in range(60):
        start = START - timedelta(hours=12) + timedelta(minutes=15 * rng.randrange(0, 4 * 24 * 9))
        BookingFactory(
            offering=offering,
            devices=rng.randrange(1, 9),
            start=start,
            end=start + timedelta(minutes=15 * rng.randrange(1, 4 * 40)),
            status=rng.choice(statuses),
        )

    with CaptureQueriesContext(connection) as queries:
        slots = offering_slots(offering, start=START, slots=28, step=STEP)

    assert len(queries) == 1
    assert [slot.start for slot in slots] == [START + STEP * n for n in range(28)]
    assert [slot.booked for slot in slots] == [
        peak_devices(offering.pk, START + STEP * n, START + STEP * (n + 1)) for n in range(28)
    ]
    assert all(slot.free == max(64 - slot.booked, 0) for slot in slots)


def test_back_to_back_bookings_do_not_add_up_and_a_booking_spanning_slots_counts_in_each():
    offering = OfferingFactory(devices=16)
    BookingFactory(offering=offering, devices=10, start=START + timedelta(hours=1), end=START + timedelta(hours=3))
    BookingFactory(offering=offering, devices=5, start=START + timedelta(hours=3), end=START + timedelta(hours=14))

    slots = offering_slots(offering, start=START, slots=4, step=STEP)

    assert [slot.booked for slot in slots] == [10, 5, 5, 0]
    assert chart_data(slots, devices=16) == {
        "devices": 16,
        "slots": ["2026-11-03T00:00Z", "2026-11-03T06:00Z", "2026-11-03T12:00Z", "2026-11-03T18:00Z"],
        "booked": [10, 5, 5, 0],
        "free": [6, 11, 11, 16],
    }
