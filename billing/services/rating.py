"""Rating: what a billing period charges, per booking, by billing rules 1–4 of API.md.

The record-level work is set-based SQL (one aggregation over the period's usage records, one over late usage,
one over the whole-life usage of the bookings that complete); Python only sees one row per booking. The same
rating serves a period's close (billing.services.periods) and the upcoming invoice (computed on read).

Which usage a close bills is decided by `received_at` against the period's usage cutoff (see BillingPeriod):
- the period's own usage: the part of every record inside the period, received at or before its cutoff;
- late usage: the part of a record inside an earlier, closed period, received after the previous period's cutoff
  and at or before this one's (billing rule 1: "billed in the first open period, on a line marked late").
A record spanning a month boundary is split there, to the microsecond.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection

from billing.models import LineKind
from billing.rules import SECONDS_PER_HOUR, usage_amount
from billing.sql import array_literal
from marketplace.models import BookingStatus

ZERO = Decimal(0)

# Records inside the period are billed whole; only a record crossing the period's edge is cut, with exact
# interval arithmetic (extract(epoch …) is numeric, to the microsecond).
_ON_TIME = """
SELECT r.booking_id,
       sum(CASE WHEN r.start >= %(start)s AND r."end" <= %(end)s THEN r.device_seconds
                ELSE r.devices * extract(epoch FROM least(r."end", %(end)s) - greatest(r.start, %(start)s))
           END) AS device_seconds
FROM billing_usagerecord r {consumer_join}
WHERE r.start < %(end)s AND r."end" > %(start)s AND r.received_at <= %(cutoff)s
GROUP BY r.booking_id
"""

_LATE = """
SELECT r.booking_id, q.id AS usage_period,
       sum(r.devices * extract(epoch FROM least(r."end", q."end") - greatest(r.start, q.start))) AS device_seconds
FROM billing_usagerecord r {consumer_join}
JOIN billing_billingperiod q ON q.start < r."end" AND q."end" > r.start AND q.start < %(start)s
WHERE r.received_at > %(previous_cutoff)s AND r.received_at <= %(cutoff)s AND r.start < %(start)s
GROUP BY r.booking_id, q.id
"""

# Bookings whose (effective) end lies in the period: they complete in it for rule 3, whatever their status says.
# A booking cancelled at least its notice before its start is never charged (rule 4); a late cancellation ends the
# booking at the cancellation time. A window is half-open, so a booking ending exactly at midnight on the 1st ran
# its last instant in the month before and completes there.
_COMPLETING = """
SELECT b.id
FROM marketplace_booking b {consumer_where}
WHERE b.confirmed_at IS NOT NULL AND b.min_commit_fraction > 0
  AND b.status IN ('confirmed', 'active', 'completed', 'cancelled')
  AND NOT (b.status = 'cancelled' AND b.cancelled_at <= b.start - b.cancel_notice_hours * interval '1 hour')
  AND CASE WHEN b.status = 'cancelled' THEN least(b.cancelled_at, b."end") ELSE b."end" END > %(start)s
  AND CASE WHEN b.status = 'cancelled' THEN least(b.cancelled_at, b."end") ELSE b."end" END <= %(end)s
"""

# A booking's whole-life usage up to the cutoff: its running total (billing_bookingusage) less what arrived after the
# cutoff, which the block-range index on received_at finds among the newest rows. One statement, so both reads see
# the same committed uploads; reading every record of the bookings instead grows with the table's whole history.
_METERED = """
WITH later AS (
    SELECT r.booking_id, sum(r.device_seconds) AS device_seconds
    FROM billing_usagerecord r
    WHERE r.received_at > %(cutoff)s AND r.booking_id = ANY(%(bookings)s::uuid[])
    GROUP BY r.booking_id
)
SELECT u.booking_id, u.device_seconds - coalesce(later.device_seconds, 0)
FROM billing_bookingusage u LEFT JOIN later ON later.booking_id = u.booking_id
WHERE u.booking_id = ANY(%(bookings)s::uuid[])
"""

_COMMITTED_BEFORE = """
SELECT l.booking_id, l.kind, sum(l.device_seconds)
FROM billing_invoiceline l
WHERE l.booking_id = ANY(%(bookings)s::uuid[]) AND l.kind IN ('commitment', 'cancellation')
GROUP BY l.booking_id, l.kind
"""

_BOOKINGS = """
SELECT b.id, b.consumer_id, o.center_id, b.devices, b.start, b."end", b.status, b.cancelled_at,
       b.unit_price, b.currency, b.min_commit_fraction, extract(epoch FROM b."end" - b.start) AS seconds,
       o.voucher_eligible, a.vendor, a.domestic, a.model, s.region, c.name AS center_name
FROM marketplace_booking b
JOIN marketplace_offering o ON o.id = b.offering_id
JOIN marketplace_acceleratormodel a ON a.id = o.accelerator_id
JOIN marketplace_site s ON s.id = o.site_id
JOIN accounts_organization c ON c.id = o.center_id
WHERE b.id = ANY(%(bookings)s::uuid[])
"""


@dataclass(frozen=True)
class BookingFacts:
    """What rating and voucher eligibility need to know of a booking (its terms as snapshotted)."""

    id: uuid.UUID
    consumer_id: uuid.UUID
    center_id: uuid.UUID
    devices: int
    start: datetime
    end: datetime
    status: str
    cancelled_at: datetime | None
    unit_price: Decimal
    currency: str
    min_commit_fraction: Decimal
    booked_seconds: Decimal
    voucher_eligible: bool
    vendor: str
    domestic: bool
    accelerator: str
    region: str
    center_name: str

    @property
    def committed_device_seconds(self) -> Decimal:
        """Rule 3: min_commit_fraction × devices × booked hours, in device-seconds (exact)."""
        return self.min_commit_fraction * self.devices * self.booked_seconds

    @property
    def cancelled_late(self) -> bool:
        return self.status == BookingStatus.CANCELLED and self.cancelled_at is not None and self.cancelled_at < self.end


@dataclass(frozen=True)
class Charge:
    """One line to bill: a booking's usage, late usage for one closed period, or commitment shortfall."""

    booking: BookingFacts
    kind: str
    device_seconds: Decimal
    late: bool = False
    usage_period_id: int | None = None

    @property
    def consumer_id(self) -> uuid.UUID:
        return self.booking.consumer_id

    @property
    def center_id(self) -> uuid.UUID:
        return self.booking.center_id

    @property
    def currency(self) -> str:
        return self.booking.currency

    @property
    def unit_price(self) -> Decimal:
        return self.booking.unit_price

    @property
    def amount(self) -> Decimal:
        """Rules 2 and 3: round(device-hours × unit price), device-hours exact."""
        return usage_amount(self.device_seconds, self.booking.unit_price, self.booking.currency)

    @property
    def device_hours(self) -> Decimal:
        return self.device_seconds / SECONDS_PER_HOUR


@dataclass
class Rating:
    charges: list[Charge] = field(default_factory=list)

    def sorted(self) -> list[Charge]:
        order = {LineKind.USAGE: 0, LineKind.COMMITMENT: 1, LineKind.CANCELLATION: 2, LineKind.ADJUSTMENT: 3}
        return sorted(
            self.charges,
            key=lambda c: (c.booking.start, str(c.booking.id), order[c.kind], c.late, c.usage_period_id or 0),
        )


def rate_period(
    *,
    start: datetime,
    end: datetime,
    cutoff: datetime,
    previous_cutoff: datetime | None,
    completes_until: datetime | None = None,
    consumer_id: Any = None,
) -> Rating:
    """Every charge of the period [start, end) as of `cutoff`, optionally for one consumer.

    `previous_cutoff` is the cutoff of the period before (None: no late usage is billed here, because the period
    before is not closed yet, or there is none). `completes_until` bounds which bookings count as completed (the
    upcoming invoice counts those that ended so far; a close, the whole period).
    """
    params = {
        "start": start,
        "end": end,
        "cutoff": cutoff,
        "previous_cutoff": previous_cutoff,
        "consumer": consumer_id,
    }
    consumer_join = (
        "JOIN marketplace_booking cb ON cb.id = r.booking_id AND cb.consumer_id = %(consumer)s"
        if consumer_id is not None
        else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(_ON_TIME.format(consumer_join=consumer_join), params)
        on_time = cursor.fetchall()
        late: list[tuple] = []
        if previous_cutoff is not None:
            cursor.execute(_LATE.format(consumer_join=consumer_join), params)
            late = cursor.fetchall()
        completing_params = {**params, "end": min(end, completes_until) if completes_until else end}
        consumer_where = (
            "JOIN marketplace_booking cb ON cb.id = b.id AND cb.consumer_id = %(consumer)s"
            if consumer_id is not None
            else ""
        )
        cursor.execute(_COMPLETING.format(consumer_where=consumer_where), completing_params)
        completing = [row[0] for row in cursor.fetchall()]

        late_bookings = sorted({row[0] for row in late})
        committed_before: dict[uuid.UUID, tuple[str, Decimal]] = {}
        if late_bookings:
            cursor.execute(_COMMITTED_BEFORE, {"bookings": array_literal(late_bookings)})
            for booking_id, kind, seconds in cursor.fetchall():
                previous = committed_before.get(booking_id)
                committed_before[booking_id] = (kind, (previous[1] if previous else ZERO) + seconds)
        completing_now = set(completing)
        reassessed = [b for b in late_bookings if b in committed_before and b not in completing_now]
        metered: dict[uuid.UUID, Decimal] = {}
        measured = sorted(set(completing) | set(reassessed))
        if measured:
            cursor.execute(_METERED, {"bookings": array_literal(measured), "cutoff": cutoff})
            metered = dict(cursor.fetchall())

        involved = sorted({row[0] for row in on_time} | set(late_bookings) | set(completing))
        facts: dict[uuid.UUID, BookingFacts] = {}
        if involved:
            cursor.execute(_BOOKINGS, {"bookings": array_literal(involved)})
            for row in cursor.fetchall():
                facts[row[0]] = BookingFacts(*row[:11], Decimal(row[11]), *row[12:])

    rating = Rating()
    for booking_id, seconds in on_time:
        if seconds:
            rating.charges.append(Charge(facts[booking_id], LineKind.USAGE, Decimal(seconds)))
    for booking_id, usage_period_id, seconds in late:
        if seconds:
            rating.charges.append(
                Charge(facts[booking_id], LineKind.USAGE, Decimal(seconds), late=True, usage_period_id=usage_period_id)
            )
    for booking_id in completing:
        booking = facts[booking_id]
        shortfall = booking.committed_device_seconds - metered.get(booking_id, ZERO)
        if shortfall > 0:
            kind = LineKind.CANCELLATION if booking.cancelled_late else LineKind.COMMITMENT
            rating.charges.append(Charge(booking, kind, shortfall))
    for booking_id in reassessed:
        # Late usage of a booking whose commitment was charged in a closed period: the shortfall charged then
        # shrinks by what has since been metered, so that usage is never paid twice (once as commitment, once
        # as late usage).
        booking = facts[booking_id]
        kind, charged = committed_before[booking_id]
        owed = max(booking.committed_device_seconds - metered.get(booking_id, ZERO), ZERO)
        if owed < charged:
            rating.charges.append(Charge(booking, kind, owed - charged))
    return rating
