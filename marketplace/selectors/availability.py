"""Free and booked devices of one offering slot by slot, for the availability and capacity charts.

A slot's "booked" figure is the peak use at any instant of the slot, the same definition `capacity.peak_devices`
gives for a whole window, so a chart never shows a slot as free that a booking request for it would be refused.
All slots come from one SQL query: the holding bookings of the range are swept once into a running level, and
each slot takes the level in force when it starts and the highest level reached inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from marketplace.models import HOLDING_STATUSES, Booking, Offering

_HOLDING = [s.value for s in HOLDING_STATUSES]
_BOOKING = Booking._meta.db_table

# Ends sort before starts at one instant (half-open windows), as in capacity._PEAK_SQL. Peers with equal (t, delta)
# share one cumulative value, which is the level after all of them.
_SLOTS_SQL = f"""
    WITH events AS (
        SELECT GREATEST(b.start, %(from)s) AS t, b.devices AS delta
          FROM {_BOOKING} b
         WHERE b.offering_id = %(offering)s AND b.status = ANY(%(holding)s)
           AND b.start < %(to)s AND b."end" > %(from)s
        UNION ALL
        SELECT LEAST(b."end", %(to)s) AS t, -b.devices AS delta
          FROM {_BOOKING} b
         WHERE b.offering_id = %(offering)s AND b.status = ANY(%(holding)s)
           AND b.start < %(to)s AND b."end" > %(from)s
    ),
    levels AS (
        SELECT t, delta, SUM(delta) OVER (ORDER BY t, delta) AS level FROM events
    ),
    slots AS (
        SELECT slot_start, slot_start + %(step)s AS slot_end
          FROM generate_series(%(from)s, %(to)s - %(step)s, %(step)s) AS slot_start
    )
    SELECT s.slot_start,
           GREATEST(
               COALESCE((SELECT l.level FROM levels l WHERE l.t <= s.slot_start
                          ORDER BY l.t DESC, l.delta DESC LIMIT 1), 0),
               COALESCE((SELECT MAX(l.level) FROM levels l WHERE l.t > s.slot_start AND l.t < s.slot_end), 0)
           ) AS booked
      FROM slots s
     ORDER BY s.slot_start
"""  # noqa: S608 (the table name is a constant; every value is a parameter)


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    booked: int
    free: int


def offering_slots(offering: Offering, *, start: datetime, slots: int, step: timedelta) -> list[Slot]:
    """`slots` consecutive slots of length `step` from `start`, each with the peak devices held in it and the
    devices left free (never below zero, should a center have shrunk a pool below a past booking)."""
    if slots < 1 or step <= timedelta(0):
        raise ValueError("need at least one slot of positive length")
    end = start + step * slots
    params = {"offering": offering.pk, "holding": _HOLDING, "from": start, "to": end, "step": step}
    with connection.cursor() as cursor:
        cursor.execute(_SLOTS_SQL, params)
        rows = cursor.fetchall()
    return [
        Slot(start=slot_start, end=slot_start + step, booked=int(booked), free=max(offering.devices - int(booked), 0))
        for slot_start, booked in rows
    ]


def chart_data(slots: list[Slot], *, devices: int) -> dict:
    """The JSON a chart script reads (through `json_script`): ISO slot starts in UTC and the two series."""
    return {
        "devices": devices,
        "slots": [slot.start.strftime("%Y-%m-%dT%H:%MZ") for slot in slots],
        "booked": [slot.booked for slot in slots],
        "free": [slot.free for slot in slots],
    }
