"""The usage gate: how a period's close draws a line between the usage it bills and the usage a later close bills.

Uploads hold the gate shared for their transaction and stamp their records' `received_at` with the database's
clock once inside; a close takes it exclusively for an instant to read the clock as its cutoff. Every upload that
committed before the cutoff was stamped before it, and every upload still to come is stamped after it, so a record
is billed by exactly one close: never missed because its transaction was still open, never billed twice.
"""

from __future__ import annotations

from datetime import datetime

# An arbitrary, fixed advisory-lock key (pg_advisory_xact_lock takes a bigint): "usage" in ASCII.
USAGE_GATE_KEY = 0x7573616765


def usage_gate_enter(cursor) -> datetime:
    """For an upload: hold the gate shared until the transaction ends; returns the instant to stamp records with."""
    cursor.execute("SELECT pg_advisory_xact_lock_shared(%s), clock_timestamp()", [USAGE_GATE_KEY])
    return cursor.fetchone()[1]


def usage_gate_cutoff(cursor) -> datetime:
    """For a close: wait until no upload is in flight, and return the cutoff instant (the gate is held exclusively
    until the transaction ends, which the caller keeps short)."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s), clock_timestamp()", [USAGE_GATE_KEY])
    return cursor.fetchone()[1]
