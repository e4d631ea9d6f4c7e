"""`POST /api/v1/agent/usage` (API.md, Agents; billing rule 1; invariants 2 and 3): every verdict, exactly."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction

from accounts.models import OrganizationKind
from billing.models import BookingUsage, UsageRecord
from marketplace.models import BookingStatus
from tests.accounts.api_helpers import rows, with_token
from tests.factories import OrganizationFactory, token_for
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
START = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
END = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
URL = "/api/v1/agent/usage"


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def center(db):
    return CenterFactory(name="Shanghai AI Computing Center")


@pytest.fixture
def booking(center):
    offering = OfferingFactory(center=center, devices=64, price_per_device_hour=Decimal("12.5000"))
    return BookingFactory(offering=offering, devices=8, start=START, end=END, status=BookingStatus.ACTIVE)


@pytest.fixture
def agent(center):
    return with_token(token_for(center, "agent"))


def record(of, minute: int, /, *, minutes: int = 5, devices: int = 8, **extra) -> dict:
    """A usage record of booking `of`, `minute` minutes into the window; `extra` overrides any field."""
    start = START + timedelta(minutes=minute)
    body = {
        "id": f"node1-{start:%Y-%m-%dT%H:%MZ}-{devices}",
        "booking": str(of.pk),
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": (start + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z"),
        "devices": devices,
        "utilization": "0.83",
        "energy_kwh": "1.9",
    }
    body.update(extra)
    return body


def upload(client, records, **body):
    return client.post(URL, {"records": records, **body}, format="json")


def database_clock() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def test_a_good_batch_is_accepted_and_stored_exactly(agent, booking, center):
    before = database_clock()
    response = upload(agent, [record(booking, 0), record(booking, 5)], agent="node1")
    after = database_clock()

    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    stored = list(UsageRecord.objects.order_by("start").values_list("record_id", "devices", "device_seconds"))
    assert stored == [
        ("node1-2026-11-03T10:00Z-8", 8, Decimal("2400.000000")),
        ("node1-2026-11-03T10:05Z-8", 8, Decimal("2400.000000")),
    ]
    first = UsageRecord.objects.order_by("start").first()
    assert first.center_id == center.pk
    assert first.utilization == Decimal("0.8300")
    assert first.energy_kwh == Decimal("1.900000")
    # Received is the database's clock inside the upload's transaction (billing.gate), not the frozen test time.
    assert before <= first.received_at <= after
    assert len(first.payload_hash) == 64
    total = BookingUsage.objects.get(booking=booking)
    assert (total.records, total.device_seconds) == (2, Decimal("4800.000000"))


def test_usage_so_far_shows_on_the_booking_with_the_amount_at_its_price(agent, booking):
    upload(agent, [record(booking, minute) for minute in range(0, 30, 5)])  # 8 devices × 30 minutes
    consumer = with_token(token_for(booking.consumer, "booking"))

    usage = consumer.get(f"/api/v1/bookings/{booking.pk}").json()["usage"]

    # 4 device-hours × 12.50 = 50.00 (billing rule 2)
    assert usage == {
        "device_hours": "4.0000",
        "device_seconds": "14400",
        "amount": "50.00",
        "currency": "CNY",
        "records": 6,
        "last_end": "2026-11-03T10:30:00Z",
    }


def test_a_booking_without_usage_shows_zero(booking):
    consumer = with_token(token_for(booking.consumer, "booking"))

    usage = consumer.get("/api/v1/bookings").json()["results"][0]["usage"]

    assert usage == {
        "device_hours": "0.0000",
        "device_seconds": "0",
        "amount": "0.00",
        "currency": "CNY",
        "records": 0,
        "last_end": None,
    }


def test_amount_so_far_rounds_once_half_up_from_exact_device_hours(agent, center):
    offering = OfferingFactory(center=center, price_per_device_hour=Decimal("10.0000"))
    booking = BookingFactory(offering=offering, devices=1, start=START, end=END, status=BookingStatus.ACTIVE)
    # 1 device × 100 s = 0.02777… device-hours × 10.00 = 0.2777… → 0.28
    upload(agent, [record(booking, 0, minutes=0, devices=1, end="2026-11-03T10:01:40Z")])
    consumer = with_token(token_for(booking.consumer, "booking"))

    usage = consumer.get(f"/api/v1/bookings/{booking.pk}").json()["usage"]

    assert (usage["device_seconds"], usage["device_hours"], usage["amount"]) == ("100", "0.0278", "0.28")


@pytest.mark.parametrize(
    ("change", "code", "detail"),
    [
        (
            {"booking": "6f1c1f8e-0000-4000-8000-000000000000"},
            "unknown_booking",
            "Booking 6f1c1f8e-0000-4000-8000-000000000000 is not a booking of this center.",
        ),
        (
            {"start": "2026-11-03T09:55:00Z", "end": "2026-11-03T10:05:00Z"},
            "outside_window",
            "The record [2026-11-03T09:55:00Z, 2026-11-03T10:05:00Z) lies partly outside the booking's window "
            "[2026-11-03T10:00:00Z, 2026-11-03T14:00:00Z).",
        ),
        (
            {"start": "2026-11-03T12:00:00Z", "end": "2026-11-03T12:05:01Z"},
            "in_future",
            "The record ends at 2026-11-03T12:05:01Z, later than now plus 5 minutes.",
        ),
        (
            {"devices": 9},
            "too_many_devices",
            "The record uses 9 devices; the booking has 8.",
        ),
        ({"end": "2026-11-03T10:00:00Z"}, "invalid", "end must be after start."),
        ({"devices": "8"}, "invalid", "devices must be a whole number."),
        ({"devices": 0}, "invalid", "devices must be between 1 and 1,000,000."),
        ({"devices": True}, "invalid", "devices must be a whole number."),
        ({"start": "yesterday"}, "invalid", "start is not an RFC 3339 timestamp: yesterday."),
        (
            {"start": "2026-11-03T10:00:00"},
            "invalid",
            "start needs a UTC offset (for example 2026-11-03T10:00:00Z): 2026-11-03T10:00:00.",
        ),
        ({"start": 1762164000}, "invalid", "start must be an RFC 3339 timestamp string."),
        ({"utilization": "1.5"}, "invalid", "utilization must lie between 0 and 1."),
        ({"utilization": "NaN"}, "invalid", "utilization must lie between 0 and 1."),
        ({"utilization": "high"}, "invalid", "utilization is not a number: high."),
        ({"energy_kwh": "-1"}, "invalid", "energy_kwh must lie between 0 and 1E+9."),
        ({"booking": "not-a-uuid"}, "invalid", "booking is not a booking id (a UUID): not-a-uuid."),
        ({"booking": 42}, "invalid", "booking must be a booking id (a UUID string)."),
        ({"id": ""}, "invalid", "id must be a non-empty string."),
        ({"id": "x" * 201}, "invalid", "id is longer than 200 characters."),
        ({"id": "node1\x00a"}, "invalid", "id must not contain control characters."),
        ({"id": "node1\na"}, "invalid", "id must not contain control characters."),
    ],
)
def test_each_rejection_code_says_why_and_stores_nothing(agent, booking, change, code, detail):
    bad = record(booking, 0, **change)

    response = upload(agent, [bad])

    assert response.status_code == 200
    shown_id = bad["id"] if isinstance(bad.get("id"), str) else None
    assert response.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [{"index": 0, "id": shown_id, "code": code, "detail": detail}],
    }
    assert UsageRecord.objects.count() == 0
    assert not BookingUsage.objects.exists()


def test_a_record_that_is_not_an_object_is_invalid(agent, booking):
    response = upload(agent, ["node1-a", 7, None])

    assert response.json()["rejected"] == [
        {"index": i, "id": None, "code": "invalid", "detail": "A record must be a JSON object."} for i in range(3)
    ]


def test_a_record_missing_fields_is_invalid(agent, booking):
    response = upload(agent, [{"id": "node1-x", "booking": str(booking.pk)}])

    assert response.json()["rejected"] == [
        {
            "index": 0,
            "id": "node1-x",
            "code": "invalid",
            "detail": "start must be an RFC 3339 timestamp string.",
        }
    ]


def test_end_within_five_minutes_of_now_is_accepted(agent, booking):
    response = upload(agent, [record(booking, 120, end="2026-11-03T12:05:00Z")])

    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_optional_fields_may_be_absent_or_null_and_numbers_are_read_exactly(agent, booking):
    a = record(booking, 0)
    del a["utilization"], a["energy_kwh"]
    b = record(booking, 5, utilization=None, energy_kwh=None)
    c = record(booking, 10, utilization=0.5, energy_kwh=2)

    response = upload(agent, [a, b, c])

    assert response.json() == {"accepted": 3, "duplicates": 0, "rejected": []}
    assert list(UsageRecord.objects.order_by("start").values_list("utilization", "energy_kwh")) == [
        (None, None),
        (None, None),
        (Decimal("0.5000"), Decimal("2.000000")),
    ]


def test_a_batch_mixing_good_and_bad_records_keeps_the_good(agent, booking):
    batch = [
        record(booking, 0),
        record(booking, 5, devices=9),
        record(booking, 10),
        record(booking, 15, end="2026-11-03T10:15:00Z"),
        record(booking, 20),
    ]

    response = upload(agent, batch)

    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (3, 0)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(1, "too_many_devices"), (3, "invalid")]
    assert sorted(UsageRecord.objects.values_list("record_id", flat=True)) == [
        "node1-2026-11-03T10:00Z-8",
        "node1-2026-11-03T10:10Z-8",
        "node1-2026-11-03T10:20Z-8",
    ]


def test_the_same_batch_three_times_and_shuffled_is_counted_once(agent, booking):
    batch = [record(booking, minute) for minute in range(0, 60, 5)]
    shuffled = batch[:]
    random.Random(7).shuffle(shuffled)

    first = upload(agent, batch).json()
    again = [upload(agent, batch).json(), upload(agent, batch).json(), upload(agent, shuffled).json()]

    assert first == {"accepted": 12, "duplicates": 0, "rejected": []}
    assert again == [{"accepted": 0, "duplicates": 12, "rejected": []}] * 3
    assert UsageRecord.objects.count() == 12
    assert BookingUsage.objects.get(booking=booking).device_seconds == Decimal(12 * 8 * 300)


def test_a_duplicate_spelled_differently_is_still_a_duplicate(agent, booking):
    upload(agent, [record(booking, 0)])
    respelled = record(
        booking, 0, start="2026-11-03T18:00:00+08:00", end="2026-11-03T10:05:00.000Z", utilization="0.830"
    )

    response = upload(agent, [respelled])

    assert response.json() == {"accepted": 0, "duplicates": 1, "rejected": []}


def test_a_changed_payload_under_a_used_id_is_refused_and_the_first_stays(agent, booking):
    upload(agent, [record(booking, 0)])
    before = rows(UsageRecord)
    changed = record(booking, 0, utilization="0.84")

    response = upload(agent, [changed])

    assert response.json() == {
        "accepted": 0,
        "duplicates": 0,
        "rejected": [
            {
                "index": 0,
                "id": "node1-2026-11-03T10:00Z-8",
                "code": "id_conflict",
                "detail": "Record node1-2026-11-03T10:00Z-8 was accepted before with a different payload; records "
                "never change.",
            }
        ],
    }
    assert rows(UsageRecord) == before


def test_an_id_repeated_inside_one_batch_is_judged_against_the_first(agent, booking):
    same, changed = record(booking, 0), record(booking, 0, devices=4, id="node1-2026-11-03T10:00Z-8")

    response = upload(agent, [same, same, changed])

    body = response.json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert [(r["index"], r["code"]) for r in body["rejected"]] == [(2, "id_conflict")]


def test_overlapping_records_may_not_exceed_the_booked_devices_at_any_instant(agent, booking):
    # Two nodes of 4 devices each fill the 8 booked devices; a third record overlapping both is one too many,
    # even though it uses fewer devices than booked on its own.
    node1 = record(booking, 0, minutes=10, devices=4, id="node1-a")
    node2 = record(booking, 5, minutes=10, devices=4, id="node2-a")
    node3 = record(booking, 9, minutes=2, devices=1, id="node3-a")
    after = record(booking, 15, minutes=5, devices=4, id="node3-b")  # starts exactly when node2 ends

    response = upload(agent, [node1, node2, node3, after])

    body = response.json()
    assert body["accepted"] == 3
    assert body["rejected"] == [
        {
            "index": 2,
            "id": "node3-a",
            "code": "too_many_devices",
            "detail": "With this record the booking's usage would reach 9 devices at once; it has 8.",
        }
    ]


def test_the_overlap_check_counts_records_stored_by_earlier_batches(agent, booking):
    upload(agent, [record(booking, 0, minutes=60, devices=6, id="long")])

    response = upload(agent, [record(booking, 30, devices=3, id="late")])

    assert [r["code"] for r in response.json()["rejected"]] == ["too_many_devices"]
    upload_ok = upload(agent, [record(booking, 30, devices=2, id="fits")]).json()
    assert upload_ok == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_a_cancelled_booking_takes_usage_only_before_its_cancellation(agent, booking):
    booking.status, booking.cancelled_at = BookingStatus.CANCELLED, START + timedelta(hours=1)
    booking.save()

    response = upload(agent, [record(booking, 50), record(booking, 60)])

    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"] == [
        {
            "index": 1,
            "id": "node1-2026-11-03T11:00Z-8",
            "code": "outside_window",
            "detail": "The record [2026-11-03T11:00:00Z, 2026-11-03T11:05:00Z) lies partly outside the booking's "
            "window [2026-11-03T10:00:00Z, 2026-11-03T11:00:00Z).",
        }
    ]


@pytest.mark.parametrize("status", [BookingStatus.PENDING_APPROVAL, BookingStatus.REJECTED, BookingStatus.EXPIRED])
def test_a_booking_that_never_ran_takes_no_usage(agent, booking, status):
    booking.status = status
    booking.save()

    response = upload(agent, [record(booking, 0)])

    assert response.json()["rejected"][0]["code"] == "outside_window"
    assert response.json()["rejected"][0]["detail"] == (
        f"Booking {booking.pk} is {BookingStatus(status).label}: it has no usage window."
    )


def test_an_agent_of_another_center_cannot_report_for_this_centers_booking(booking):
    other = with_token(token_for(CenterFactory(), "agent"))

    response = upload(other, [record(booking, 0)])

    assert response.json()["rejected"][0]["code"] == "unknown_booking"
    assert UsageRecord.objects.count() == 0


def test_record_ids_are_per_center(agent, booking):
    other_center = CenterFactory()
    other_booking = BookingFactory(
        offering=OfferingFactory(center=other_center), start=START, end=END, status=BookingStatus.ACTIVE
    )
    other = with_token(token_for(other_center, "agent"))

    mine = upload(agent, [record(booking, 0, id="node1-0")]).json()
    theirs = upload(other, [record(other_booking, 0, id="node1-0")]).json()

    assert mine == theirs == {"accepted": 1, "duplicates": 0, "rejected": []}


def test_more_than_5000_records_is_refused_whole_with_413(agent, booking):
    batch = [record(booking, 0, id=f"r{i}") for i in range(5001)]

    response = upload(agent, batch)

    assert response.status_code == 413
    assert response.json() == {
        "detail": "A batch holds at most 5,000 records; this one has 5,001. Send them in several batches.",
        "code": "batch_too_large",
        "max_records": 5000,
    }
    assert UsageRecord.objects.count() == 0


def test_exactly_5000_records_are_taken(agent, center):
    booking = BookingFactory(
        offering=OfferingFactory(center=center, devices=5000),
        devices=5000,
        start=START,
        end=END,
        status=BookingStatus.ACTIVE,
    )
    batch = [record(booking, 0, devices=1, id=f"r{i}") for i in range(5000)]

    response = upload(agent, batch)

    assert response.json() == {"accepted": 5000, "duplicates": 0, "rejected": []}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"records": ["This field is required."]}),
        ({"records": "many"}, {"records": ["Expected a list."]}),
        ({"records": [], "agent": 5}, {"agent": ["At most 100 characters."]}),
    ],
)
def test_a_malformed_body_is_a_400(agent, body, errors):
    response = agent.post(URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["errors"] == errors


def test_malformed_json_is_a_400(agent):
    response = agent.post(URL, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert UsageRecord.objects.count() == 0


def test_an_empty_batch_is_fine(agent):
    assert upload(agent, []).json() == {"accepted": 0, "duplicates": 0, "rejected": []}


@pytest.mark.parametrize(
    ("kind", "scopes", "status", "code"),
    [
        (OrganizationKind.CENTER, ["inventory"], 403, "scope_required"),
        (OrganizationKind.ENTERPRISE, ["agent"], 403, None),
    ],
)
def test_only_center_tokens_with_the_agent_scope_upload(booking, kind, scopes, status, code):
    client = with_token(token_for(OrganizationFactory(kind=kind), *scopes))

    response = upload(client, [record(booking, 0)])

    assert response.status_code == status
    if code:
        assert response.json()["code"] == code
    assert UsageRecord.objects.count() == 0


def test_no_token_is_a_401(api_client, booking):
    assert upload(api_client, [record(booking, 0)]).status_code == 401


def test_records_are_append_only_in_the_database(agent, booking):
    upload(agent, [record(booking, 0)])

    for statement in ("UPDATE billing_usagerecord SET devices = 1", "DELETE FROM billing_usagerecord"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
            c.execute(statement)
    assert UsageRecord.objects.get().devices == 8


def test_the_database_refuses_a_second_row_with_the_same_center_and_id(agent, booking):
    upload(agent, [record(booking, 0)])
    first = UsageRecord.objects.get()

    with pytest.raises(DatabaseError), transaction.atomic():
        UsageRecord.objects.create(
            center=first.center,
            record_id=first.record_id,
            booking=booking,
            start=first.start,
            end=first.end,
            devices=1,
            device_seconds=300,
            received_at=NOW,
            payload_hash="x",
        )


def test_ingestion_runs_a_fixed_number_of_queries_whatever_the_batch_size(
    agent, booking, django_assert_max_num_queries
):
    small = [record(booking, 0, id="s0")]
    large = [record(booking, minute, minutes=1, devices=1, id=f"l{minute}") for minute in range(5, 235)]
    upload(agent, [])  # the token's first use of the minute records it; later requests read it only

    with django_assert_max_num_queries(12) as small_queries:
        upload(agent, small)
    with django_assert_max_num_queries(12) as large_queries:
        upload(agent, large)

    assert len(large_queries.captured_queries) == len(small_queries.captured_queries)


def test_record_ids_are_stored_exactly_whatever_characters_they_hold(agent, booking):
    ids = ['node "1", {a}', "back\\slash\\", "with space", "节点-三", "NULL", "'quoted'"]
    batch = [record(booking, 5 * i, id=record_id) for i, record_id in enumerate(ids)]

    first = upload(agent, batch).json()
    again = upload(agent, batch).json()

    assert first == {"accepted": len(ids), "duplicates": 0, "rejected": []}
    assert again == {"accepted": 0, "duplicates": len(ids), "rejected": []}
    assert sorted(UsageRecord.objects.values_list("record_id", flat=True)) == sorted(ids)
