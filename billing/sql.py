"""Arrays as PostgreSQL array literals: one string parameter per column instead of a list that psycopg adapts
element by element in Python, which dominated the cost of set-based writes of thousands of rows (usage batches,
a period's invoice and journal lines). Used with `unnest(%s::type[], …)` and with `= ANY(%s::type[])`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def array_literal(values: Iterable[Any]) -> str:
    """Values whose text has no quotes, commas, braces, backslashes or spaces (UUIDs, numbers, ISO timestamps, hex
    digests, booleans); None is NULL."""
    return "{" + ",".join("NULL" if value is None else _plain(value) for value in values) + "}"


def _plain(value: Any) -> str:
    if value is True:
        return "t"
    if value is False:
        return "f"
    return str(value)


def text_array_literal(values: Iterable[str | None]) -> str:
    """Arbitrary strings, each quoted and escaped; None is NULL."""
    return (
        "{"
        + ",".join(
            "NULL" if value is None else '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values
        )
        + "}"
    )
