"""UTC instants as the server speaks them: RFC 3339 with a `Z`, whole seconds."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current instant in UTC, truncated to whole seconds (record bounds never carry fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


def format_utc(instant: datetime) -> str:
    """`2026-11-03T10:00:00Z`; naive datetimes are refused because their zone would be a guess."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: the agent only formats aware instants")
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Parse an RFC 3339 instant (`Z` or an offset) into an aware UTC datetime; a missing offset is an error."""
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return instant.astimezone(UTC)


def compact_utc(instant: datetime, *, seconds: bool = True) -> str:
    """`20261103T1000Z` / `20261103T100000Z`: the instant as it appears inside record ids."""
    pattern = "%Y%m%dT%H%M%SZ" if seconds else "%Y%m%dT%H%MZ"
    return instant.astimezone(UTC).strftime(pattern)
