"""The booking clock on a real Celery worker, through Redis, against the test database."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import Booking, BookingStatus
from marketplace.tasks import bookings_advance_task
from tests.marketplace.factories import BookingFactory
from tests.worker import celery_worker, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.worker]


def test_a_worker_starts_a_due_booking_and_a_replay_changes_nothing():
    now = timezone.now()
    booking = BookingFactory(start=now - timedelta(minutes=1), end=now + timedelta(hours=2))

    with celery_worker() as queue:
        bookings_advance_task.apply_async(queue=queue)
        started = wait_for(lambda: Booking.objects.get(pk=booking.pk).status == BookingStatus.ACTIVE)
        bookings_advance_task.apply_async(queue=queue)
        bookings_advance_task.apply_async(queue=queue)
        time.sleep(2)  # no result backend to wait on: give the solo worker time to run both replays

    assert started
    assert list(booking.events.values_list("from_status", "to_status")) == [("confirmed", "active")]
