"""How many devices of an offering are held over a window: the one definition of capacity use.

Holding bookings (pending approval, confirmed, active) are swept as +devices at their start and -devices at
their end, clipped to the window; the running sum's maximum is the peak concurrent use. Ends sort before starts
at the same instant because windows are half-open: a booking ending at 10:00 and one starting at 10:00 never overlap.
The same SQL serves the booking service (one offering, under its row lock) and the catalog (every offering at
once, as a correlated subquery), so the two can never disagree.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import connection
from django.db.models.expressions import RawSQL

from marketplace.models import HOLDING_STATUSES, Booking, Offering

_HOLDING = [s.value for s in HOLDING_STATUSES]
_BOOKING = Booking._meta.db_table
_OFFERING = Offering._meta.db_table

_PEAK_SQL = f"""
    SELECT COALESCE(MAX(running), 0) FROM (
        SELECT SUM(delta) OVER (ORDER BY t, delta) AS running FROM (
            SELECT GREATEST(b.start, %s) AS t, b.devices AS delta
              FROM {_BOOKING} b
             WHERE b.offering_id = {{offering}} AND b.status = ANY(%s) AND b.start < %s AND b."end" > %s
            UNION ALL
            SELECT LEAST(b."end", %s) AS t, -b.devices AS delta
              FROM {_BOOKING} b
             WHERE b.offering_id = {{offering}} AND b.status = ANY(%s) AND b.start < %s AND b."end" > %s
        ) AS events
    ) AS sweep
"""  # noqa: S608 (table names are constants; every value is a parameter)


def _params(start: datetime, end: datetime) -> list:
    return [start, _HOLDING, end, start, end, _HOLDING, end, start]


def peak_devices(offering_id: UUID, start: datetime, end: datetime) -> int:
    """The most devices of the offering that holding bookings use at any instant of [start, end)."""
    with connection.cursor() as cursor:
        cursor.execute(_PEAK_SQL.format(offering="%s"), _params_for_one(offering_id, start, end))
        return int(cursor.fetchone()[0])


def _params_for_one(offering_id: UUID, start: datetime, end: datetime) -> list:
    return [start, offering_id, _HOLDING, end, start, end, offering_id, _HOLDING, end, start]


def peak_devices_expression(start: datetime, end: datetime) -> RawSQL:
    """A subquery annotation giving each offering row its peak use over [start, end)."""
    return RawSQL(  # noqa: S611 (constant SQL; the window bounds are parameters)
        _PEAK_SQL.format(offering=f'"{_OFFERING}"."id"'), _params(start, end)
    )


def peak_devices_from(offering_id: UUID, start: datetime) -> int:
    """The peak use from `start` on, forever: what lowering an offering's device count must stay above."""
    latest_end = (
        Booking.objects.filter(offering_id=offering_id, status__in=_HOLDING, end__gt=start)
        .order_by("-end")
        .values_list("end", flat=True)
        .first()
    )
    if latest_end is None:
        return 0
    return peak_devices(offering_id, start, latest_end)
