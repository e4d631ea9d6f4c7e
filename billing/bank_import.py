"""Reading bank statement files (docs/bank-statement-format.md): the documented standard CSV, or another bank's export
through a column mapping finance chose on the upload page.

Pure parsing, no database: `bank_file_parse` returns every line or raises `BankFileError` listing each malformed
line by its line number in the file, so the service can refuse the whole file before anything is stored (a
statement lands all at once or not at all).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from marketplace.money import is_supported_currency, round_money

# The documented format's columns, in order. `date`, `amount` and `currency` are required; the others may be empty.
STANDARD_COLUMNS = (
    "date",
    "amount",
    "currency",
    "counterparty",
    "counterparty_account",
    "remittance",
    "bank_reference",
)
TEXT_FIELDS = {"counterparty": 300, "counterparty_account": 100, "remittance": 500, "bank_reference": 100}
DATE_FORMATS = {
    "%Y-%m-%d": "2026-11-30",
    "%d.%m.%Y": "30.11.2026",
    "%d/%m/%Y": "30/11/2026",
    "%m/%d/%Y": "11/30/2026",
    "%Y/%m/%d": "2026/11/30",
    "%Y%m%d": "20261130",
}
MAX_BYTES = 20 * 1024 * 1024
MAX_LINES = 200_000
# At most this many problems are listed: a file wrong throughout says so in its first lines.
MAX_ERRORS = 50
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


class BankFileError(Exception):
    """The file cannot be imported. `problems` are (line number, what is wrong); line 0 means the whole file."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(f"line {n}: {p}" if n else p for n, p in problems))
        self.problems = problems


@dataclass(frozen=True)
class Mapping:
    """Which column holds which field. `amount` is a signed column; or `credit` and `debit` are two columns of
    unsigned amounts (money in, money out). Without a currency column every line is in `fixed_currency`."""

    date: str
    amount: str = ""
    credit: str = ""
    debit: str = ""
    currency: str = ""
    fixed_currency: str = ""
    counterparty: str = ""
    counterparty_account: str = ""
    remittance: str = ""
    bank_reference: str = ""
    date_format: str = "%Y-%m-%d"
    decimal_comma: bool = False
    delimiter: str = ","

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Mapping:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        known["decimal_comma"] = bool(known.get("decimal_comma", False))
        if any(not isinstance(value, str) for name, value in known.items() if name != "decimal_comma"):
            raise TypeError("column names and formats are strings")
        return cls(**known)

    def problems(self, header: list[str]) -> list[str]:
        """What is wrong with this mapping for a file with this header (empty when it can be used)."""
        found: list[str] = []
        columns = set(header)
        if not self.date:
            found.append(_("Choose the column holding the booking date."))
        if bool(self.amount) == bool(self.credit or self.debit):
            found.append(_("Choose either one signed amount column, or a credit column and a debit column."))
        elif not self.amount and not (self.credit and self.debit):
            found.append(_("Choose both the credit and the debit column."))
        if not self.currency and not is_supported_currency(self.fixed_currency or ""):
            found.append(_("Choose the currency column, or the one currency of every line."))
        if self.date_format not in DATE_FORMATS:
            found.append(_("Choose one of the offered date formats."))
        if self.delimiter not in (",", ";", "\t", "|"):
            found.append(_("The column separator must be a comma, a semicolon, a tab or a bar."))
        for name in ("date", "amount", "credit", "debit", "currency", *TEXT_FIELDS):
            column = getattr(self, name)
            if column and column not in columns:
                found.append(_("The file has no column “%(column)s”.") % {"column": column})
        return found


def standard_mapping(header: list[str], delimiter: str = ",") -> Mapping:
    """The documented format's mapping for a file's header: its columns by name, whatever their order; the
    optional ones may be missing."""
    names = {cell.strip().lower() for cell in header}
    # `date` is required: named even when the header lacks it, so the problem is "no column date", not a crash.
    columns = {"date": "date", **{name: name for name in STANDARD_COLUMNS if name in names}}
    return Mapping(**columns, delimiter=delimiter)


@dataclass(frozen=True)
class ParsedLine:
    line_number: int
    booked_on: date
    amount: Decimal
    currency: str
    counterparty: str = ""
    counterparty_account: str = ""
    remittance: str = ""
    bank_reference: str = ""


@dataclass
class ParsedFile:
    header: list[str]
    lines: list[ParsedLine] = field(default_factory=list)

    @property
    def credits(self) -> Decimal:
        return sum((line.amount for line in self.lines if line.amount > 0), Decimal(0))

    @property
    def debits(self) -> Decimal:
        return sum((-line.amount for line in self.lines if line.amount < 0), Decimal(0))


# What a file's first bytes say it is, whatever its name: GB 18030 decodes almost any bytes, so a workbook or a
# PDF renamed .csv would otherwise be "read" as text and refused line by line with meaningless problems.
BINARY_SIGNATURES = (
    (b"PK\x03\x04", gettext_lazy("an Excel workbook (.xlsx) or another ZIP archive")),
    (b"\xd0\xcf\x11\xe0", gettext_lazy("an old Excel workbook (.xls)")),
    (b"%PDF-", gettext_lazy("a PDF document")),
    (b"\x89PNG", gettext_lazy("a PNG image")),
    (b"\xff\xd8\xff", gettext_lazy("a JPEG image")),
)


def bank_file_read(upload: Any) -> bytes:
    """An uploaded file's bytes, refused before they are read when it is larger than MAX_BYTES: a multi-gigabyte
    upload is spooled to disk by Django, and reading it whole would take as much memory. At most MAX_BYTES + 1
    bytes are read even when the announced size lies, so that `bank_file_text` still refuses it."""
    if upload.size is not None and upload.size > MAX_BYTES:
        raise BankFileError([(0, _("The file is larger than %(mb)s MB.") % {"mb": MAX_BYTES // (1024 * 1024)})])
    return upload.read(MAX_BYTES + 1)


def bank_file_text(content: bytes) -> str:
    """The file's text: UTF-8 with or without a byte order mark; GB 18030 as Chinese banks' exports often are."""
    if len(content) > MAX_BYTES:
        raise BankFileError([(0, _("The file is larger than %(mb)s MB.") % {"mb": MAX_BYTES // (1024 * 1024)})])
    for signature, kind in BINARY_SIGNATURES:
        if content.startswith(signature):
            problem = _("The file is not CSV text but %(kind)s: export the statement from your bank as CSV.")
            raise BankFileError([(0, problem % {"kind": kind})])
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:  # both encodings decode NUL bytes, which no CSV export contains
            raise BankFileError([(0, _("The file is not CSV text: it contains binary data."))])
        return text
    raise BankFileError([(0, _("The file is neither UTF-8 nor GB 18030 text."))])


def sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def bank_file_header(content: bytes, delimiter: str | None = None) -> tuple[list[str], str]:
    """The header row's column names and the separator: what the mapping step offers to choose from."""
    text = bank_file_text(content)
    delimiter = delimiter or sniff_delimiter(text)
    row = next(csv.reader(io.StringIO(text), delimiter=delimiter), None)
    if not row or not any(cell.strip() for cell in row):
        raise BankFileError([(1, _("The file is empty: the first line must name the columns."))])
    return [cell.strip() for cell in row], delimiter


def is_standard(header: list[str]) -> bool:
    """The documented format: its required columns are present by name (extra columns are ignored)."""
    names = {cell.strip().lower() for cell in header}
    return {"date", "amount", "currency"} <= names


def _amount(raw: str, decimal_comma: bool) -> Decimal:
    text = raw.strip().replace(" ", "").replace("\u00a0", "").replace("'", "")
    text = text.replace(".", "").replace(",", ".") if decimal_comma else text.replace(",", "")
    if text.endswith("-") and text[:-1] and _NUMBER.match(text[:-1]):  # "125.00-": some banks' debit notation
        text = "-" + text[:-1]
    if not _NUMBER.match(text):
        raise ValueError(raw)
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid numbers
        raise ValueError(raw) from exc


def bank_file_parse(content: bytes, mapping: Mapping | None = None) -> tuple[ParsedFile, Mapping]:
    """Every line of the file as a `ParsedLine` (and the mapping used: the standard format's when none is given),
    or `BankFileError` naming each bad line and what is wrong."""
    text = bank_file_text(content)
    if mapping is None:
        header, delimiter = bank_file_header(content)
        header = [cell.lower() for cell in header]
        mapping = standard_mapping(header, delimiter)
    else:
        if mapping.delimiter not in (",", ";", "\t", "|"):
            # Checked before the csv module sees it: a separator of several characters would crash the reader.
            raise BankFileError([(1, _("The column separator must be a comma, a semicolon, a tab or a bar."))])
        header, _delimiter = bank_file_header(content, mapping.delimiter)
    wrong = mapping.problems(header)
    if wrong:
        raise BankFileError([(1, problem) for problem in wrong])
    index = {name: position for position, name in enumerate(header)}
    reader = csv.reader(io.StringIO(text), delimiter=mapping.delimiter)
    next(reader)
    parsed = ParsedFile(header=header)
    problems: list[tuple[int, str]] = []

    def cell(row: list[str], column: str) -> str:
        position = index.get(column)
        return row[position].strip() if column and position is not None and position < len(row) else ""

    for row in reader:
        number = reader.line_num
        if not any(value.strip() for value in row):
            continue  # a blank line (often the last) is no movement
        if len(parsed.lines) + len(problems) >= MAX_LINES:
            problems.append((number, _("More than %(max)s lines: split the file.") % {"max": f"{MAX_LINES:,}"}))
            break
        line_problems: list[str] = []
        if len(row) < len(header):
            line_problems.append(
                _("%(found)s columns where the header has %(expected)s.") % {"found": len(row), "expected": len(header)}
            )
        raw_date = cell(row, mapping.date)
        booked_on = None
        try:
            booked_on = datetime.strptime(raw_date, mapping.date_format).date()  # noqa: DTZ007 - a calendar date
        except ValueError:
            line_problems.append(
                _("date “%(value)s” is not a date written like %(example)s.")
                % {"value": raw_date, "example": DATE_FORMATS.get(mapping.date_format, mapping.date_format)}
            )
        currency = (cell(row, mapping.currency) if mapping.currency else mapping.fixed_currency).upper()
        if not is_supported_currency(currency):
            line_problems.append(_("currency “%(value)s” is not a supported currency code.") % {"value": currency})
        amount = None
        if mapping.amount:
            raw = cell(row, mapping.amount)
            try:
                amount = _amount(raw, mapping.decimal_comma)
            except ValueError:
                line_problems.append(_("amount “%(value)s” is not a number.") % {"value": raw})
        else:
            raw_credit, raw_debit = cell(row, mapping.credit), cell(row, mapping.debit)
            try:
                credit = abs(_amount(raw_credit, mapping.decimal_comma)) if raw_credit else Decimal(0)
                debit = abs(_amount(raw_debit, mapping.decimal_comma)) if raw_debit else Decimal(0)
            except ValueError:
                line_problems.append(
                    _("credit “%(credit)s” / debit “%(debit)s” are not numbers.")
                    % {"credit": raw_credit, "debit": raw_debit}
                )
            else:
                if credit and debit:
                    line_problems.append(_("both a credit and a debit amount; a line moves money one way."))
                amount = credit - debit
        if amount is not None:
            if amount == 0:
                line_problems.append(_("the amount is zero."))
            elif not line_problems and round_money(amount, currency) != amount:
                line_problems.append(
                    _("amount %(value)s has more decimals than %(currency)s has.")
                    % {"value": amount, "currency": currency}
                )
            elif abs(amount) >= Decimal("1e14"):
                line_problems.append(_("amount %(value)s is too large.") % {"value": amount})
        texts = {}
        for name, limit in TEXT_FIELDS.items():
            value = cell(row, getattr(mapping, name))
            if len(value) > limit:
                line_problems.append(
                    _("%(field)s is longer than %(limit)s characters.") % {"field": name, "limit": limit}
                )
            texts[name] = value
        if line_problems:
            problems.extend((number, problem) for problem in line_problems)
            if len(problems) >= MAX_ERRORS:
                break
            continue
        parsed.lines.append(
            ParsedLine(line_number=number, booked_on=booked_on, amount=amount, currency=currency, **texts)
        )
    if problems:
        raise BankFileError(problems[:MAX_ERRORS])
    if not parsed.lines:
        raise BankFileError([(0, _("The file holds no movements, only its header."))])
    return parsed, mapping
