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
from django.db.models import QuerySet
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


# The same sweep for many offerings at once: the holding bookings overlapping the window are read once for all the
# candidates and swept per offering (PARTITION BY), peers sharing one cumulative value exactly as in _PEAK_SQL, so
# each offering's figure is the one `peak_devices` gives it. `{candidates}` is a query selecting `id, devices`.
_FREE_MANY_SQL = f"""
    WITH candidates (id, devices) AS MATERIALIZED ({{candidates}}),
    overlapping AS (
        SELECT b.offering_id, b.start, b."end", b.devices
          FROM {_BOOKING} b
         WHERE b.offering_id IN (SELECT id FROM candidates)
           AND b.status = ANY(%s) AND b.start < %s AND b."end" > %s
    ),
    events AS (
        SELECT offering_id, GREATEST(start, %s) AS t, devices AS delta FROM overlapping
        UNION ALL
        SELECT offering_id, LEAST("end", %s) AS t, -devices AS delta FROM overlapping
    ),
    peaks AS (
        SELECT offering_id, MAX(running) AS peak FROM (
            SELECT offering_id, SUM(delta) OVER (PARTITION BY offering_id ORDER BY t, delta) AS running FROM events
        ) AS sweep
         GROUP BY offering_id
    )
    SELECT c.id, c.devices - COALESCE(p.peak, 0) FROM candidates c LEFT JOIN peaks p ON p.offering_id = c.id
"""  # noqa: S608 (table names are constants, the candidates a compiled queryset; every value is a parameter)


def free_devices_many(candidates: QuerySet[Offering], start: datetime, end: datetime) -> dict[UUID, int]:
    """Devices free over the whole of [start, end) for every offering of `candidates`, in one query.

    The catalog's search: sweeping each offering in a correlated subquery costs a pair of index scans, a sort and
    a window aggregate per offering, twice per page (the count, then the page) — most of a search's time with
    thousands of offerings. Here the overlapping bookings are read once for all of them. Can be negative, as
    `offering.devices - peak_devices(...)` can, should a center have shrunk a pool below a booking.
    """
    sql, params = candidates.order_by().values("pk", "devices").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(_FREE_MANY_SQL.format(candidates=sql), [*params, _HOLDING, end, start, start, end])
        return {offering_id: int(free) for offering_id, free in cursor.fetchall()}


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
