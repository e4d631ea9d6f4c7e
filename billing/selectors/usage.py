"""Reads of metered usage: a booking's usage so far, and its usage over time for the live chart."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection

from billing.models import BookingUsage
from billing.rules import device_hours, usage_amount
from marketplace.models import Booking
from marketplace.timestamps import rfc3339

ZERO = Decimal(0)
HOURS_SHOWN = Decimal("0.0001")  # device-hours in the API, on pages and in live events: 4 decimals
MAX_POINTS = 240
MIN_BUCKET = timedelta(minutes=5)


@dataclass(frozen=True)
class UsageSoFar:
    records: int
    device_seconds: Decimal
    unit_price: Decimal
    currency: str
    last_end: datetime | None

    @property
    def device_hours(self) -> Decimal:
        return device_hours(self.device_seconds)

    @property
    def amount(self) -> Decimal:
        """Billing rule 2 applied to what is metered so far, at the booking's snapshotted price."""
        return usage_amount(self.device_seconds, self.unit_price, self.currency)

    def figures(self) -> dict[str, Any]:
        """Usage so far as the booking API, the booking page and its live events show it: strings, never floats."""
        return {
            "device_hours": hours_shown(self.device_hours),
            "device_seconds": format(self.device_seconds.normalize(), "f"),
            "amount": str(self.amount),
            "currency": self.currency,
            "records": self.records,
            "last_end": rfc3339(self.last_end),
        }


def hours_shown(value: Decimal) -> str:
    return str(value.quantize(HOURS_SHOWN))


def usage_so_far(bookings: Sequence[Booking]) -> dict[uuid.UUID, UsageSoFar]:
    """Usage so far of bookings the caller loaded through a scoped selector (one query for all of them)."""
    totals = {
        row.booking_id: row for row in BookingUsage.objects.filter(booking_id__in=[booking.pk for booking in bookings])
    }
    result = {}
    for booking in bookings:
        total = totals.get(booking.pk)
        result[booking.pk] = (
            UsageSoFar(
                records=total.records,
                device_seconds=total.device_seconds,
                unit_price=booking.unit_price,
                currency=booking.currency,
                last_end=total.last_end,
            )
            if total
            else no_usage(booking)
        )
    return result


def no_usage(booking: Booking) -> UsageSoFar:
    """The usage of a booking nothing was metered for yet (a booking just made: no query needed)."""
    return UsageSoFar(
        records=0, device_seconds=ZERO, unit_price=booking.unit_price, currency=booking.currency, last_end=None
    )


@dataclass(frozen=True)
class UsagePoint:
    start: datetime
    device_hours: Decimal  # metered in this bucket
    cumulative_device_hours: Decimal
    utilization: Decimal | None  # mean over the bucket's device-seconds that reported one


def bucket_size(booking: Booking) -> timedelta:
    """Wide enough that a whole booking fits in at most MAX_POINTS chart points, and at least 5 minutes."""
    span = booking.end - booking.start
    minutes = max(MIN_BUCKET, span / MAX_POINTS).total_seconds() / 60
    return timedelta(minutes=5 * -(-int(minutes) // 5))


_SERIES = """
SELECT date_bin(%s, r.start, %s) AS bucket,
       sum(r.device_seconds) AS device_seconds,
       sum(r.utilization * r.device_seconds) FILTER (WHERE r.utilization IS NOT NULL)
         / nullif(sum(r.device_seconds) FILTER (WHERE r.utilization IS NOT NULL), 0) AS utilization
FROM billing_usagerecord r
WHERE r.booking_id = %s
GROUP BY bucket
ORDER BY bucket
"""


def usage_series(booking: Booking) -> list[UsagePoint]:
    """A scoped booking's metered usage per time bucket (records counted in the bucket they start in)."""
    with connection.cursor() as cursor:
        cursor.execute(_SERIES, [bucket_size(booking), booking.start, booking.pk])
        rows = cursor.fetchall()
    points, cumulative = [], ZERO
    for bucket, seconds, utilization in rows:
        hours = device_hours(seconds)
        cumulative += hours
        points.append(
            UsagePoint(
                start=bucket,
                device_hours=hours,
                cumulative_device_hours=cumulative,
                utilization=None if utilization is None else utilization.quantize(Decimal("0.0001")),
            )
        )
    return points
