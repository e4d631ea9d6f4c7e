"""Invariants 2 and 3 under concurrency: uploads racing from several processes and connections never count a
record twice nor let a booking use more devices at once than it booked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.actor import Actor
from accounts.models import Scope
from billing.models import UsageRecord
from billing.services.usage import IngestResult, usage_ingest
from marketplace.models import BookingStatus
from tests.concurrency import run_at_once, run_in_processes
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def batch(booking, node: str, devices: int) -> list[dict]:
    """Twelve 5-minute records of one node over [10:00, 11:00)."""
    return [
        {
            "id": f"{node}-{minute}",
            "booking": str(booking.pk),
            "start": (START + timedelta(minutes=minute)).isoformat(),
            "end": (START + timedelta(minutes=minute + 5)).isoformat(),
            "devices": devices,
        }
        for minute in range(0, 60, 5)
    ]


def peak_in_python(booking) -> int:
    """The most devices the stored records use at one instant, recomputed independently of the service."""
    records = list(UsageRecord.objects.filter(booking=booking).values_list("start", "end", "devices"))
    return max((sum(d for s, e, d in records if s <= t < e) for t, _, _ in records), default=0)


@pytest.fixture
def setting():
    center = CenterFactory()
    booking = BookingFactory(
        offering=OfferingFactory(center=center),
        devices=8,
        start=START,
        end=START + timedelta(hours=4),
        status=BookingStatus.ACTIVE,
    )
    return center, booking


def ingest(center, records) -> IngestResult:
    with time_machine.travel(NOW, tick=False):
        return usage_ingest(actor=Actor(organization=center, scopes=frozenset({Scope.AGENT})), records=records, now=NOW)


def test_two_processes_uploading_overlapping_batches_cannot_exceed_the_booked_devices(setting):
    center, booking = setting

    results = run_in_processes(
        lambda: ingest(center, batch(booking, "node-a", 5)),
        lambda: ingest(center, batch(booking, "node-b", 5)),
    )

    assert all(isinstance(result, IngestResult) for result in results), results
    assert sum(result.accepted for result in results) == 12
    assert {r.code for result in results for r in result.rejected} == {"too_many_devices"}
    assert sum(len(result.rejected) for result in results) == 12
    assert UsageRecord.objects.count() == 12
    assert peak_in_python(booking) == 5


def test_many_connections_resending_one_batch_beside_another_store_each_record_once(setting):
    center, booking = setting
    same = batch(booking, "node-a", 4)
    other = batch(booking, "node-b", 4)

    results = run_at_once(*[lambda: ingest(center, same)] * 3, lambda: ingest(center, other))

    assert all(isinstance(result, IngestResult) for result in results), results
    # node-a's batch lands once and is a duplicate twice, whatever the order; node-b fits beside it (4 + 4 = 8).
    assert sorted((r.accepted, r.duplicates, len(r.rejected)) for r in results[:3]) == [
        (0, 12, 0),
        (0, 12, 0),
        (12, 0, 0),
    ]
    assert (results[3].accepted, results[3].rejected) == (12, [])
    assert UsageRecord.objects.count() == 24
    assert peak_in_python(booking) == 8


def test_the_same_record_id_raced_for_two_bookings_is_stored_once(setting):
    center, booking = setting
    second = BookingFactory(
        offering=booking.offering, devices=8, start=START, end=START + timedelta(hours=4), status=BookingStatus.ACTIVE
    )
    for_first = batch(booking, "node-a", 8)
    for_second = batch(second, "node-a", 8)  # the same ids, another booking: a changed payload

    results = run_in_processes(lambda: ingest(center, for_first), lambda: ingest(center, for_second))

    accepted = sorted(result.accepted for result in results)
    conflicts = sorted(sum(r.code == "id_conflict" for r in result.rejected) for result in results)
    assert (accepted, conflicts) == ([0, 12], [0, 12])
    assert UsageRecord.objects.count() == 12
