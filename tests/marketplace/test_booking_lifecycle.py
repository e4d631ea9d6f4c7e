"""Bookings move on time: active at start, completed at end, pending approvals expire; one history row per move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.errors import Conflict
from marketplace.models import BookingStatus
from marketplace.services.bookings import booking_transition, bookings_advance
from marketplace.tasks import bookings_advance_task
from tests.marketplace.factories import BookingFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


def moves(booking):
    return list(booking.events.values_list("from_status", "to_status", "actor_label"))


def test_a_confirmed_booking_starts_and_completes_on_time():
    booking = BookingFactory(start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3))

    with time_machine.travel(T0 + timedelta(minutes=59), tick=False):
        assert bookings_advance().started == 0
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        first = bookings_advance()
        again = bookings_advance()
    booking.refresh_from_db()
    assert (first.started, again.started, booking.status) == (1, 0, BookingStatus.ACTIVE)

    with time_machine.travel(T0 + timedelta(hours=3), tick=False):
        assert bookings_advance().completed == 1
    booking.refresh_from_db()
    assert booking.status == BookingStatus.COMPLETED
    assert moves(booking) == [("confirmed", "active", "system"), ("active", "completed", "system")]


def test_a_booking_whose_whole_window_passed_while_the_clock_was_down_completes_directly():
    booking = BookingFactory(start=T0, end=T0 + timedelta(hours=1))

    with time_machine.travel(T0 + timedelta(hours=5), tick=False):
        result = bookings_advance()

    booking.refresh_from_db()
    assert (result.completed, result.started, booking.status) == (1, 0, BookingStatus.COMPLETED)
    assert moves(booking) == [("confirmed", "completed", "system")]


def test_an_unanswered_approval_expires_and_frees_capacity():
    booking = BookingFactory(
        status=BookingStatus.PENDING_APPROVAL,
        start=T0 + timedelta(days=2),
        end=T0 + timedelta(days=2, hours=4),
        approval_expires_at=T0 + timedelta(hours=24),
    )

    with time_machine.travel(T0 + timedelta(hours=23, minutes=59), tick=False):
        assert bookings_advance().expired == 0
    with time_machine.travel(T0 + timedelta(hours=24), tick=False):
        assert bookings_advance().expired == 1

    booking.refresh_from_db()
    assert booking.status == BookingStatus.EXPIRED
    assert moves(booking) == [("pending_approval", "expired", "system")]


def test_a_pending_booking_never_starts_without_approval():
    booking = BookingFactory(
        status=BookingStatus.PENDING_APPROVAL, start=T0, end=T0 + timedelta(hours=2), approval_expires_at=T0
    )

    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        result = bookings_advance()

    booking.refresh_from_db()
    assert (result.started, result.expired, booking.status) == (0, 1, BookingStatus.EXPIRED)


def test_the_periodic_task_is_idempotent():
    BookingFactory(start=T0, end=T0 + timedelta(hours=2))

    with time_machine.travel(T0 + timedelta(minutes=1), tick=False):
        first = bookings_advance_task.apply().get()
        second = bookings_advance_task.apply().get()

    assert first == {"started": 1, "completed": 0, "expired": 0}
    assert second == {"started": 0, "completed": 0, "expired": 0}


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    [
        (BookingStatus.COMPLETED, BookingStatus.ACTIVE),
        (BookingStatus.CANCELLED, BookingStatus.CONFIRMED),
        (BookingStatus.REJECTED, BookingStatus.CONFIRMED),
        (BookingStatus.CONFIRMED, BookingStatus.PENDING_APPROVAL),
        (BookingStatus.EXPIRED, BookingStatus.ACTIVE),
    ],
)
def test_moves_outside_the_transitions_map_are_refused(from_status, to_status):
    booking = BookingFactory(status=from_status)

    with pytest.raises(Conflict) as refused:
        booking_transition(booking_id=booking.pk, to_status=to_status, now=T0)

    assert refused.value.code == "invalid_transition"
    booking.refresh_from_db()
    assert booking.status == from_status
    assert booking.events.count() == 0
