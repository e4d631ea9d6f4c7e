"""Usage ingestion: batches of agent-reported records, judged one by one and stored set-based (API.md, Agents:
`POST /api/v1/agent/usage`; invariants 2 and 3 of ARCHITECTURE.md).

A batch is parsed in Python without touching the database, then judged in one transaction that

0. enters the usage gate (billing.gate), which stamps the batch's `received_at` on the database's clock, so that a
   period's close bills every record exactly once;
1. locks the referenced bookings of the agent's center (`FOR UPDATE`, in primary-key order), so that two uploads
   for one booking are serialized and the second sees what the first stored;
2. reads the already stored records with the batch's ids (duplicates and `id_conflict`) and the stored records
   that overlap the batch's intervals (the devices-at-every-instant check), each in one query;
3. inserts the accepted records with one `INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`: the unique
   constraint on (center, record id) is the last word, so a record id raced in by another upload (for another
   booking) is judged again against what won, never stored twice.

A record accepted before with the same payload is a duplicate: counted, not stored. Records are never updated.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from django.db import connection, transaction
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import DomainError
from billing.gate import usage_gate_enter
from billing.selectors.usage import UsageSoFar
from billing.sql import array_literal, text_array_literal
from marketplace.models import Agent, BookingStatus
from marketplace.realtime import send_many_to_organizations
from marketplace.timestamps import rfc3339

logger = logging.getLogger(__name__)

MAX_BATCH = 5000  # API.md: "a batch of up to 5,000 records"
CLOCK_SKEW = timedelta(minutes=5)  # API.md: in_future is "end later than now + 5 minutes"
MAX_RECORD_ID_LENGTH = 200
MAX_DEVICES = 1_000_000
MAX_ENERGY_KWH = Decimal("1e9")
UTILIZATION_PLACES = Decimal("0.0001")
ENERGY_PLACES = Decimal("0.000001")

# The statuses whose window can hold usage. A cancelled booking keeps the part of its window before the
# cancellation (billing rule 4); a booking that was never confirmed has none.
RAN_STATUSES = frozenset(
    {BookingStatus.CONFIRMED, BookingStatus.ACTIVE, BookingStatus.COMPLETED, BookingStatus.CANCELLED}
)


class BatchTooLarge(DomainError):
    status_code = 413
    default_code = "batch_too_large"


class Code:
    UNKNOWN_BOOKING = "unknown_booking"
    OUTSIDE_WINDOW = "outside_window"
    IN_FUTURE = "in_future"
    TOO_MANY_DEVICES = "too_many_devices"
    ID_CONFLICT = "id_conflict"
    INVALID = "invalid"


@dataclass(frozen=True)
class Rejection:
    index: int
    id: str | None
    code: str
    detail: str


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


@dataclass(slots=True)
class Candidate:
    index: int
    record_id: str
    booking_id: uuid.UUID
    booking_text: str  # the id's canonical text, for the hash and the insert
    start: datetime
    end: datetime
    devices: int
    utilization: Decimal | None
    energy_kwh: Decimal | None
    device_seconds: Decimal
    payload_hash: str
    start_text: str  # isoformat() in UTC, computed once for the hash and the insert
    end_text: str


@dataclass(slots=True)
class _Booking:
    id: uuid.UUID
    consumer_id: uuid.UUID
    center_id: uuid.UUID
    start: datetime
    end: datetime
    devices: int
    status: str
    cancelled_at: datetime | None
    unit_price: Decimal
    currency: str
    # The end of the window usage may fall in, or None when the booking never ran; computed once, read per record.
    usage_end: datetime | None = field(init=False)

    def __post_init__(self) -> None:
        if self.status not in RAN_STATUSES:
            self.usage_end = None
        elif self.status == BookingStatus.CANCELLED:
            cancelled = self.cancelled_at is not None and self.cancelled_at > self.start
            self.usage_end = min(self.end, self.cancelled_at) if cancelled else None
        else:
            self.usage_end = self.end


# --- parsing: no database ----------------------------------------------------------------------------------------


class _Bad(Exception):
    pass


def _timestamp(value: Any, name: str) -> tuple[datetime, str, int]:
    """A record's instant in UTC, its isoformat() text (for the hash and the insert) and its microseconds since
    the epoch (for exact durations)."""
    if value.__class__ is not str:
        raise _Bad(_("%(field)s must be an RFC 3339 timestamp string.") % {"field": name})
    try:
        return _instant(value)
    except ValueError:
        raise _Bad(
            _("%(field)s is not an RFC 3339 timestamp: %(value)s.") % {"field": name, "value": value[:40]}
        ) from None
    except _NoOffset:
        raise _Bad(
            _("%(field)s needs a UTC offset (for example 2026-11-03T10:00:00Z): %(value)s.")
            % {"field": name, "value": value[:40]}
        ) from None


class _NoOffset(Exception):
    pass


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# A batch repeats the same instants (one interval's end is the next one's start, and every booking of a node
# reports the same intervals): parsing and formatting each once per process halves the cost of a record.
@lru_cache(maxsize=65_536)
def _instant(value: str) -> tuple[datetime, str, int]:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise _NoOffset(value)
    utc = parsed.astimezone(UTC)
    delta = utc - _EPOCH
    return utc, utc.isoformat(), (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@lru_cache(maxsize=65_536)
def _device_seconds(devices: int, microseconds: int) -> Decimal:
    """Billing rule 1: devices × (end − start) in seconds, exact to the microsecond."""
    return (Decimal(devices) * Decimal(microseconds)).scaleb(-6)


def _reading(low: Decimal, high: Decimal, places: Decimal):
    """A parser of one kind of reading: the value as a Decimal quantized to `places`, and its text (for the
    payload hash). Agents repeat the same readings ("0.83", "1.9") across records and batches, so each distinct
    value is parsed once (a one-argument cache: hashing the bounds on every call cost as much as parsing)."""

    @lru_cache(maxsize=65_536)
    def parse(value: str | int | Decimal | float) -> tuple[Decimal, str]:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if not number.is_finite() or number < low or number > high:
            raise ValueError(value)
        quantized = number.quantize(places)
        return quantized, str(quantized)

    parse.bounds = (low, high)
    return parse


_utilization = _reading(Decimal(0), Decimal(1), UTILIZATION_PLACES)
_energy = _reading(Decimal(0), MAX_ENERGY_KWH, ENERGY_PLACES)
_ABSENT = (None, "None")


def _decimal(value: Any, name: str, parse) -> tuple[Decimal | None, str]:
    if value is None:
        return _ABSENT
    kind = value.__class__
    if kind is not str and kind is not int and kind is not float and kind is not Decimal:
        raise _Bad(_('%(field)s must be a decimal string such as "0.83".') % {"field": name})
    try:
        return parse(value)
    except InvalidOperation:
        raise _Bad(_("%(field)s is not a number: %(value)s.") % {"field": name, "value": str(value)[:40]}) from None
    except ValueError:
        low, high = parse.bounds
        raise _Bad(
            _("%(field)s must lie between %(low)s and %(high)s.") % {"field": name, "low": low, "high": high}
        ) from None


@lru_cache(maxsize=4096)
def _booking_key(value: str) -> tuple[uuid.UUID, str]:
    """The booking id of a record and its canonical text (raises ValueError when it is not a UUID)."""
    booking_id = uuid.UUID(value)
    return booking_id, str(booking_id)


def payload_hash(
    booking_id: uuid.UUID | str,
    start: str,
    end: str,
    devices: int,
    utilization: Decimal | str | None,
    energy_kwh: Decimal | str | None,
) -> str:
    """A fingerprint of what a record says, as stored: equal payloads hash equal whatever their JSON spelling
    ("0.83" or 0.830, "Z" or "+00:00"). `start` and `end` are the UTC instants' isoformat(); the readings are the
    quantized Decimals (or their text: the hash is of the text)."""
    canonical = f"{booking_id}|{start}|{end}|{devices}|{utilization}|{energy_kwh}"
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_record(index: int, raw: Any) -> Candidate | Rejection:
    """One record of a batch, checked for types and shape only (code `invalid`)."""
    record_id = raw.get("id") if isinstance(raw, dict) else None
    shown_id = record_id if isinstance(record_id, str) else None
    try:
        if not isinstance(raw, dict):
            raise _Bad(_("A record must be a JSON object."))
        if not isinstance(record_id, str) or not record_id.strip():
            raise _Bad(_("id must be a non-empty string."))
        if len(record_id) > MAX_RECORD_ID_LENGTH:
            raise _Bad(_("id is longer than %(max)d characters.") % {"max": MAX_RECORD_ID_LENGTH})
        if not record_id.isprintable():
            raise _Bad(_("id must not contain control characters."))
        booking = raw.get("booking")
        if not isinstance(booking, str):
            raise _Bad(_("booking must be a booking id (a UUID string)."))
        try:
            booking_id, booking_text = _booking_key(booking)
        except ValueError:
            raise _Bad(_("booking is not a booking id (a UUID): %(value)s.") % {"value": booking[:40]}) from None
        start, start_text, start_us = _timestamp(raw.get("start"), "start")
        end, end_text, end_us = _timestamp(raw.get("end"), "end")
        devices = raw.get("devices")
        if devices.__class__ is not int:
            raise _Bad(_("devices must be a whole number."))
        if not 1 <= devices <= MAX_DEVICES:
            raise _Bad(_("devices must be between 1 and %(max)s.") % {"max": f"{MAX_DEVICES:,}"})
        if end_us <= start_us:
            raise _Bad(_("end must be after start."))
        utilization, utilization_text = _decimal(raw.get("utilization"), "utilization", _utilization)
        energy, energy_text = _decimal(raw.get("energy_kwh"), "energy_kwh", _energy)
    except _Bad as bad:
        return Rejection(index=index, id=shown_id, code=Code.INVALID, detail=str(bad))
    return Candidate(
        index=index,
        record_id=record_id,
        booking_id=booking_id,
        booking_text=booking_text,
        start=start,
        end=end,
        devices=devices,
        utilization=utilization,
        energy_kwh=energy,
        device_seconds=_device_seconds(devices, end_us - start_us),
        payload_hash=payload_hash(booking_text, start_text, end_text, devices, utilization_text, energy_text),
        start_text=start_text,
        end_text=end_text,
    )


# --- the devices-at-every-instant check ---------------------------------------------------------------------------


class _Occupancy:
    """A booking's accepted intervals (stored and newly accepted) and the peak of devices they use at once."""

    def __init__(self, intervals: Iterable[tuple[datetime, datetime, int]]) -> None:
        self.intervals = sorted(intervals)
        self.starts = [interval[0] for interval in self.intervals]
        self.longest = max((end - start for start, end, _devices in self.intervals), default=timedelta(0))
        self.last_end = max((end for _start, end, _devices in self.intervals), default=None)

    def peak_with(self, start: datetime, end: datetime, devices: int) -> int:
        """The most devices in use at any instant of [start, end) if a record of `devices` were added."""
        if self.last_end is None or start >= self.last_end:
            return devices  # after everything accepted so far (an agent reporting onwards): nothing to overlap
        first = bisect.bisect_left(self.starts, start - self.longest)
        last = bisect.bisect_left(self.starts, end)
        events: list[tuple[datetime, int]] = []
        for other_start, other_end, other_devices in self.intervals[first:last]:
            if other_end > start:
                events.append((max(other_start, start), other_devices))
                events.append((min(other_end, end), -other_devices))
        # Half-open intervals: at one instant an ending interval frees its devices before a starting one takes them.
        events.sort(key=lambda event: (event[0], event[1]))
        peak = in_use = 0
        for _moment, change in events:
            in_use += change
            peak = max(peak, in_use)
        return peak + devices

    def add(self, start: datetime, end: datetime, devices: int) -> None:
        position = bisect.bisect_right(self.starts, start)
        self.starts.insert(position, start)
        self.intervals.insert(position, (start, end, devices))
        self.longest = max(self.longest, end - start)
        if self.last_end is None or end > self.last_end:
            self.last_end = end


# --- the transaction -------------------------------------------------------------------------------------------------

_LOCK_BOOKINGS = """
SELECT b.id, b.consumer_id, o.center_id, b.start, b."end", b.devices, b.status, b.cancelled_at, b.unit_price,
       b.currency
FROM marketplace_booking b JOIN marketplace_offering o ON o.id = b.offering_id
WHERE b.id = ANY(%s::uuid[]) AND o.center_id = %s
ORDER BY b.id
FOR UPDATE OF b
"""

# One index probe per id: the plan must not depend on the table's statistics (a fresh table, a new partition), or
# PostgreSQL may read every record of the center to find a thousand ids.
_STORED_HASHES = """
SELECT ids.record_id, r.payload_hash
FROM unnest(%s::text[]) AS ids(record_id)
CROSS JOIN LATERAL (
    SELECT payload_hash FROM billing_usagerecord WHERE center_id = %s AND record_id = ids.record_id LIMIT 1
) r
"""

# For each booking, the stored records that overlap the span the batch reports for it: none when everything stored
# ended before the span (the common case, an agent reporting onwards), else an index range scan bounded below by
# the booking's longest record.
_OVERLAPPING = """
SELECT r.booking_id, r.start, r."end", r.devices
FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[]) AS span(booking_id, low, high)
JOIN billing_bookingusage u ON u.booking_id = span.booking_id AND u.last_end > span.low
JOIN billing_usagerecord r ON r.booking_id = span.booking_id
     AND r.start >= span.low - u.longest AND r.start < span.high AND r."end" > span.low
"""

_INSERT = """
INSERT INTO billing_usagerecord
    (center_id, record_id, booking_id, agent_id, start, "end", devices, device_seconds, utilization, energy_kwh,
     received_at, payload_hash)
SELECT %s, r.record_id, r.booking_id, %s, r.start, r."end", r.devices, r.device_seconds, r.utilization,
       r.energy_kwh, %s, r.payload_hash
FROM unnest(%s::text[], %s::uuid[], %s::timestamptz[], %s::timestamptz[], %s::int[], %s::numeric[],
            %s::numeric[], %s::numeric[], %s::text[])
     AS r(record_id, booking_id, start, "end", devices, device_seconds, utilization, energy_kwh, payload_hash)
ON CONFLICT (center_id, record_id) DO NOTHING
RETURNING record_id
"""

_ADD_TOTALS = """
INSERT INTO billing_bookingusage AS t
    (booking_id, records, device_seconds, first_start, last_end, longest, updated_at)
SELECT u.booking_id, u.records, u.device_seconds, u.first_start, u.last_end, u.longest, %s
FROM unnest(%s::uuid[], %s::int[], %s::numeric[], %s::timestamptz[], %s::timestamptz[], %s::interval[])
     AS u(booking_id, records, device_seconds, first_start, last_end, longest)
ON CONFLICT (booking_id) DO UPDATE SET
    records = t.records + EXCLUDED.records,
    device_seconds = t.device_seconds + EXCLUDED.device_seconds,
    first_start = LEAST(t.first_start, EXCLUDED.first_start),
    last_end = GREATEST(t.last_end, EXCLUDED.last_end),
    longest = GREATEST(t.longest, EXCLUDED.longest),
    updated_at = EXCLUDED.updated_at
RETURNING booking_id, records, device_seconds, last_end
"""


def _reject(result: IngestResult, candidate: Candidate, code: str, detail: str) -> None:
    result.rejected.append(Rejection(index=candidate.index, id=candidate.record_id, code=code, detail=detail))


def usage_ingest(*, actor: Actor, records: Any, agent_name: str | None = None, now: datetime) -> IngestResult:
    """Judge and store one batch of usage records for the acting center.

    Guarantees: every record gets exactly one verdict (accepted, duplicate, or rejected with a code); accepted
    records never make a booking use more devices than it booked at any instant, never lie outside its window or
    in the future; a record id is stored at most once per center, and a resend of the same payload is a no-op.
    """
    if not isinstance(records, list):
        raise DomainError(_("records must be a list of usage records."), errors={"records": [_("Expected a list.")]})
    if len(records) > MAX_BATCH:
        raise BatchTooLarge(
            _("A batch holds at most %(max)s records; this one has %(count)s. Send them in several batches.")
            % {"max": f"{MAX_BATCH:,}", "count": f"{len(records):,}"},
            extra={"max_records": MAX_BATCH},
        )
    result = IngestResult()
    candidates: list[Candidate] = []
    for index, raw in enumerate(records):
        parsed = parse_record(index, raw)
        if isinstance(parsed, Rejection):
            result.rejected.append(parsed)
        else:
            candidates.append(parsed)
    center_id = actor.organization.pk
    stored: list[Candidate] = []
    totals: list[tuple] = []
    bookings: dict[uuid.UUID, _Booking] = {}
    if candidates:
        with transaction.atomic():
            stored, totals, bookings = _judge_and_store(result, candidates, center_id, agent_name, now)
    result.rejected.sort(key=lambda rejection: rejection.index)
    logger.info(
        "usage.ingested",
        extra={
            "center": str(center_id),
            "agent": agent_name,
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "rejected": len(result.rejected),
        },
    )
    if stored:
        _push_live(stored, totals, bookings)
    return result


def _judge_and_store(
    result: IngestResult, candidates: list[Candidate], center_id: Any, agent_name: str | None, now: datetime
) -> tuple[list[Candidate], list[tuple], dict[uuid.UUID, _Booking]]:
    booking_ids = sorted({candidate.booking_id for candidate in candidates})
    with connection.cursor() as cursor:
        received_at = usage_gate_enter(cursor)
        cursor.execute(_LOCK_BOOKINGS, [array_literal(booking_ids), center_id])
        bookings = {row[0]: _Booking(*row) for row in cursor.fetchall()}
        cursor.execute(_STORED_HASHES, [text_array_literal(candidate.record_id for candidate in candidates), center_id])
        stored_hashes: dict[str, str] = dict(cursor.fetchall())
        occupancy = _load_occupancy(cursor, candidates, bookings)

    accepted: list[Candidate] = []
    accepted_hashes: dict[str, str] = {}
    latest = now + CLOCK_SKEW
    for candidate in candidates:
        known = stored_hashes.get(candidate.record_id) or accepted_hashes.get(candidate.record_id)
        if known is not None:
            if known == candidate.payload_hash:
                result.duplicates += 1
            else:
                _reject(result, candidate, Code.ID_CONFLICT, _id_conflict_detail(candidate))
            continue
        booking = bookings.get(candidate.booking_id)
        if booking is None:
            _reject(
                result,
                candidate,
                Code.UNKNOWN_BOOKING,
                _("Booking %(booking)s is not a booking of this center.") % {"booking": candidate.booking_id},
            )
            continue
        verdict = _window_verdict(candidate, booking, latest, occupancy[booking.id])
        if verdict is not None:
            _reject(result, candidate, *verdict)
            continue
        occupancy[booking.id].add(candidate.start, candidate.end, candidate.devices)
        accepted.append(candidate)
        accepted_hashes[candidate.record_id] = candidate.payload_hash

    agent_id = _agent_id(center_id, agent_name)
    stored = _insert(result, accepted, center_id, agent_id, received_at)
    totals = _add_totals(stored, now)
    result.accepted = len(stored)
    return stored, totals, bookings


def _id_conflict_detail(candidate: Candidate) -> str:
    return _("Record %(id)s was accepted before with a different payload; records never change.") % {
        "id": candidate.record_id
    }


def _window_verdict(
    candidate: Candidate, booking: _Booking, latest: datetime, occupancy: _Occupancy
) -> tuple[str, str] | None:
    usage_end = booking.usage_end
    if usage_end is None:
        return Code.OUTSIDE_WINDOW, _("Booking %(booking)s is %(status)s: it has no usage window.") % {
            "booking": booking.id,
            "status": BookingStatus(booking.status).label,
        }
    if candidate.start < booking.start or candidate.end > usage_end:
        return Code.OUTSIDE_WINDOW, _(
            "The record [%(start)s, %(end)s) lies partly outside the booking's window [%(window_start)s, "
            "%(window_end)s)."
        ) % {
            "start": rfc3339(candidate.start),
            "end": rfc3339(candidate.end),
            "window_start": rfc3339(booking.start),
            "window_end": rfc3339(usage_end),
        }
    if candidate.end > latest:
        return Code.IN_FUTURE, _("The record ends at %(end)s, later than now plus 5 minutes.") % {
            "end": rfc3339(candidate.end)
        }
    if candidate.devices > booking.devices:
        return Code.TOO_MANY_DEVICES, _("The record uses %(devices)d devices; the booking has %(booked)d.") % {
            "devices": candidate.devices,
            "booked": booking.devices,
        }
    peak = occupancy.peak_with(candidate.start, candidate.end, candidate.devices)
    if peak > booking.devices:
        return Code.TOO_MANY_DEVICES, _(
            "With this record the booking's usage would reach %(peak)d devices at once; it has %(booked)d."
        ) % {"peak": peak, "booked": booking.devices}
    return None


def _load_occupancy(cursor, candidates: list[Candidate], bookings: dict[uuid.UUID, _Booking]) -> dict:
    spans: dict[uuid.UUID, list[datetime]] = {}
    for candidate in candidates:
        if candidate.booking_id not in bookings:
            continue
        span = spans.get(candidate.booking_id)
        if span is None:
            spans[candidate.booking_id] = [candidate.start, candidate.end]
        else:
            span[0] = min(span[0], candidate.start)
            span[1] = max(span[1], candidate.end)
    intervals: dict[uuid.UUID, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    if spans:
        ids = list(spans)
        cursor.execute(
            _OVERLAPPING,
            [
                array_literal(ids),
                array_literal(spans[i][0].isoformat() for i in ids),
                array_literal(spans[i][1].isoformat() for i in ids),
            ],
        )
        for booking_id, start, end, devices in cursor.fetchall():
            intervals[booking_id].append((start, end, devices))
    return {booking_id: _Occupancy(intervals[booking_id]) for booking_id in bookings}


def _agent_id(center_id: Any, agent_name: str | None) -> Any:
    if not agent_name:
        return None
    return Agent.objects.filter(center_id=center_id, name=agent_name).values_list("pk", flat=True).first()


def _insert(
    result: IngestResult, accepted: list[Candidate], center_id: Any, agent_id: Any, received_at: datetime
) -> list[Candidate]:
    if not accepted:
        return []
    # A stable order of inserts: two uploads racing on the same record ids wait for each other in one order,
    # never in a cycle.
    rows = sorted(accepted, key=lambda candidate: candidate.record_id)
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT,
            [
                center_id,
                agent_id,
                received_at,
                text_array_literal(c.record_id for c in rows),
                array_literal(c.booking_text for c in rows),
                array_literal(c.start_text for c in rows),
                array_literal(c.end_text for c in rows),
                array_literal(c.devices for c in rows),
                array_literal(c.device_seconds for c in rows),
                array_literal(c.utilization for c in rows),
                array_literal(c.energy_kwh for c in rows),
                array_literal(c.payload_hash for c in rows),
            ],
        )
        inserted = {row[0] for row in cursor.fetchall()}
        lost = [candidate for candidate in rows if candidate.record_id not in inserted]
        if lost:
            # Another upload stored these ids (for another booking) between our read and our insert. What it
            # stored decides: the same payload is a duplicate, another one a conflict.
            cursor.execute(_STORED_HASHES, [text_array_literal(candidate.record_id for candidate in lost), center_id])
            winners = dict(cursor.fetchall())
            for candidate in lost:
                if winners.get(candidate.record_id) == candidate.payload_hash:
                    result.duplicates += 1
                else:
                    _reject(result, candidate, Code.ID_CONFLICT, _id_conflict_detail(candidate))
    return [candidate for candidate in accepted if candidate.record_id in inserted]


def _add_totals(stored: list[Candidate], now: datetime) -> list[tuple]:
    if not stored:
        return []
    sums: dict[uuid.UUID, list] = {}
    for candidate in stored:
        total = sums.get(candidate.booking_id)
        if total is None:
            sums[candidate.booking_id] = [
                1,
                candidate.device_seconds,
                candidate.start,
                candidate.end,
                candidate.end - candidate.start,
            ]
        else:
            total[0] += 1
            total[1] += candidate.device_seconds
            total[2] = min(total[2], candidate.start)
            total[3] = max(total[3], candidate.end)
            total[4] = max(total[4], candidate.end - candidate.start)
    ids = list(sums)
    with connection.cursor() as cursor:
        cursor.execute(
            _ADD_TOTALS,
            [
                now,
                array_literal(ids),
                array_literal(sums[i][0] for i in ids),
                array_literal(sums[i][1] for i in ids),
                array_literal(sums[i][2].isoformat() for i in ids),
                array_literal(sums[i][3].isoformat() for i in ids),
                array_literal(_interval(sums[i][4]) for i in ids),
            ],
        )
        return cursor.fetchall()


def _interval(duration: timedelta) -> str:
    """A duration as a PostgreSQL interval literal without spaces ("3600.000000 seconds" would need quoting)."""
    return f"PT{duration.total_seconds():.6f}S"


def _push_live(stored: list[Candidate], totals: list[tuple], bookings: dict[uuid.UUID, _Booking]) -> None:
    """After commit, tell each booking's consumer (and its center) what was metered: usage so far, and the batch's
    mean utilization. The page refetches its chart series; the event stays small whatever the batch size."""
    weighted: dict[uuid.UUID, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for candidate in stored:
        if candidate.utilization is not None:
            sums = weighted[candidate.booking_id]
            sums[0] += candidate.utilization * candidate.device_seconds
            sums[1] += candidate.device_seconds
    messages = []
    for booking_id, records, device_seconds, last_end in totals:
        booking = bookings[booking_id]
        reading = weighted.get(booking_id)
        messages.append(
            (
                [booking.consumer_id, booking.center_id],
                {
                    "event": "usage.recorded",
                    "booking": str(booking_id),
                    **UsageSoFar(
                        records=records,
                        device_seconds=device_seconds,
                        unit_price=booking.unit_price,
                        currency=booking.currency,
                        last_end=last_end,
                    ).figures(),
                    "utilization": str((reading[0] / reading[1]).quantize(UTILIZATION_PLACES)) if reading else None,
                },
            )
        )
    send_many_to_organizations(messages)
