"""XLSX downloads of billing data, from the same rows as the CSV downloads (billing.csv_export).

A report is declared once, as a `Table` of `Cell` values (text, numbers, `Money`, dates), and `table_response`
writes it in the format asked for: the two files carry exactly the same rows. XlsxWriter writes the workbook
(rather than openpyxl) because every cell is written through a call that names its type: text goes through
`write_string`, so a consumer named "=HYPERLINK(…)" is stored as text and never becomes a formula, whereas
openpyxl turns any string starting with "=" into one. Unlike the CSV, text therefore needs no leading `'`.

What the spreadsheet gets:
- money as numbers, formatted with the currency's minor-unit digits (2 for CNY, 0 for JPY), so a column can be
  added up; the stored value keeps the digits the amount has (an XLSX number is a double: amounts below 10¹² with
  at most 4 decimals survive it exactly);
- other decimals as numbers with their own digits, integers as integers, dates and instants as dates (UTC);
- a bold header row that stays in view when scrolling (frozen), an autofilter, and columns wide enough for what
  they hold.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import xlsxwriter
from django.http import HttpResponse

from billing.csv_export import Cell, Money, csv_response
from marketplace.money import CURRENCY_MINOR_UNITS

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMATS = ("csv", "xlsx")
MIN_WIDTH = 8
MAX_WIDTH = 60
# Characters a sheet name may not hold, and its longest length (Excel's rules).
SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
SHEET_NAME_MAX = 31


@dataclass(frozen=True)
class Table:
    """One report as both downloads write it: a sheet title, the column names, and the rows."""

    title: str
    header: Sequence[str]
    rows: list[Sequence[Cell]] = field(default_factory=list)


def display_width(text: str) -> int:
    """Columns a text takes in a spreadsheet: wide (CJK) characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in ("W", "F") else 1 for char in text)


def sheet_name(title: str) -> str:
    name = SHEET_NAME_FORBIDDEN.sub(" ", title).strip().strip("'")[:SHEET_NAME_MAX]
    return name or "Sheet1"


def _decimal_places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(-exponent, 0) if isinstance(exponent, int) else 0


class _Formats:
    """The workbook's cell formats, created once per distinct number format."""

    def __init__(self, workbook: Any) -> None:
        self.workbook = workbook
        self.cache: dict[str, Any] = {}
        self.header = workbook.add_format({"bold": True, "bottom": 1})

    def number(self, digits: int, *, grouped: bool = True) -> Any:
        pattern = ("#,##0" if grouped else "0") + ("." + "0" * digits if digits else "")
        return self._get(pattern)

    def _get(self, pattern: str) -> Any:
        if pattern not in self.cache:
            self.cache[pattern] = self.workbook.add_format({"num_format": pattern})
        return self.cache[pattern]

    @property
    def instant(self) -> Any:
        return self._get("yyyy-mm-dd hh:mm:ss")

    @property
    def day(self) -> Any:
        return self._get("yyyy-mm-dd")


def _write(sheet: Any, formats: _Formats, row: int, col: int, value: Cell) -> str:
    """Write one value with its type; return the text it shows, for the column's width."""
    if value is None:
        return ""
    if isinstance(value, bool):  # before int: a bool is an int
        sheet.write_boolean(row, col, value)
        return "FALSE"
    if isinstance(value, Money):
        digits = CURRENCY_MINOR_UNITS.get(value.currency, 2)
        sheet.write_number(row, col, value.amount, formats.number(digits))
        return f"{value.amount:,.{digits}f}"
    if isinstance(value, Decimal):
        digits = _decimal_places(value)
        sheet.write_number(row, col, value, formats.number(digits))
        return f"{value:,f}"
    if isinstance(value, int):
        sheet.write_number(row, col, value, formats.number(0, grouped=False))
        return str(value)
    if isinstance(value, datetime):
        sheet.write_datetime(row, col, value.astimezone(UTC).replace(tzinfo=None), formats.instant)
        return "2026-01-01 00:00:00"
    if isinstance(value, date):
        sheet.write_datetime(row, col, datetime(value.year, value.month, value.day), formats.day)  # noqa: DTZ001
        return "2026-01-01"
    text = str(value)
    # write_string, never write(): text is stored as text whatever it starts with (no formula injection).
    sheet.write_string(row, col, text)
    return text


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[Cell]], *, title: str = "Sheet1") -> bytes:
    """The whole workbook: one sheet with a frozen bold header row, then one row per row."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    formats = _Formats(workbook)
    sheet = workbook.add_worksheet(sheet_name(title))
    widths = [display_width(str(name)) for name in header]
    for col, name in enumerate(header):
        sheet.write_string(0, col, str(name), formats.header)
    count = 0
    for count, values in enumerate(rows, start=1):
        for col, value in enumerate(values):
            shown = _write(sheet, formats, count, col, value)
            if col < len(widths):
                widths[col] = max(widths[col], display_width(shown))
            else:
                widths.append(display_width(shown))
    for col, width in enumerate(widths):
        sheet.set_column(col, col, min(max(width + 2, MIN_WIDTH), MAX_WIDTH))
    sheet.freeze_panes(1, 0)
    if header:
        sheet.autofilter(0, 0, count, len(header) - 1)
    workbook.close()
    return buffer.getvalue()


def xlsx_response(
    *, filename: str, header: Sequence[str], rows: Iterable[Sequence[Cell]], title: str = "Sheet1"
) -> HttpResponse:
    """A download of `rows` under `filename` (ASCII), like `csv_response`."""
    response = HttpResponse(xlsx_bytes(header, rows, title=title), content_type=XLSX_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    # Finance data of every organization: no shared cache may keep a copy.
    response["Cache-Control"] = "private, no-store"
    return response


def table_response(table: Table, *, stem: str, fmt: str) -> HttpResponse:
    """`table` as `<stem>.csv` or `<stem>.xlsx`: the same header and rows either way."""
    if fmt == "xlsx":
        return xlsx_response(filename=f"{stem}.xlsx", header=table.header, rows=table.rows, title=table.title)
    if fmt == "csv":
        return csv_response(filename=f"{stem}.csv", header=table.header, rows=table.rows)
    raise ValueError(f"unknown export format {fmt!r}")
