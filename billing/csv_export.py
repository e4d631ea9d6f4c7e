"""CSV downloads of billing data: the one writer every export goes through.

Finance staff open these files in spreadsheet programs, so the writer
- starts with a UTF-8 byte order mark: without it Excel reads UTF-8 as the local code page and garbles Chinese names;
- writes money as plain decimal strings ("1250.00", "-25.00"), never floats and never with thousands separators;
- neutralizes formula injection: a text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a
  formula by spreadsheet programs (a consumer named "=HYPERLINK(…)" would otherwise act in the reader's program),
  so it gets a leading `'`. Only text is neutralized: numbers are passed as `Decimal`, `int` or `Money`, so a
  negative amount stays a number the spreadsheet can add up.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.http import HttpResponse
from django.utils.translation import gettext as _

from marketplace.money import format_money
from marketplace.timestamps import rfc3339

BOM = "\ufeff"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Money:
    """An amount written with its currency's minor-unit digits ("12.50", "0.0125"), as a number."""

    amount: Decimal
    currency: str


Cell = str | int | Decimal | Money | datetime | date | bool | None


def neutralize(text: str) -> str:
    """Text a spreadsheet program will show as text, never evaluate as a formula."""
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def cell(value: Cell) -> str:
    """One value as the CSV writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: a bool is an int
        return _("yes") if value else _("no")
    if isinstance(value, Money):
        return format_money(value.amount, value.currency)
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, date):
        return value.isoformat()
    return neutralize(str(value))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """The whole file as text: the byte order mark, a header row, then one line per row."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    writer.writerow([neutralize(str(name)) for name in header])
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return buffer.getvalue()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> bytes:
    return csv_text(header, rows).encode("utf-8")


def csv_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> HttpResponse:
    """A download of `rows` under `filename` (ASCII: invoice numbers, period labels and currency codes)."""
    response = HttpResponse(csv_bytes(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Invoices are private to the organization: no shared cache may keep a copy.
    response["Cache-Control"] = "private, no-store"
    return response
