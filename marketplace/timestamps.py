"""Timestamps as the API, pages and live events write them: RFC 3339 in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime | None) -> str | None:
    """`2026-11-03T10:00:00Z` for an aware datetime (None stays None)."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
