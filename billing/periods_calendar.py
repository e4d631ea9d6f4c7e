"""Billing periods are calendar months in UTC: bounds, labels ("2026-11") and parsing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.utils.translation import gettext as _

from accounts.errors import InvalidInput

_LABEL = re.compile(r"^(\d{4})-(\d{2})$")


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def previous_month(start: datetime) -> datetime:
    return datetime(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1, tzinfo=UTC)


def parse_label(text: str, *, field: str = "period") -> datetime:
    """The first instant of the month a label like "2026-11" names; a clear 400 otherwise."""
    match = _LABEL.match((text or "").strip())
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise InvalidInput(
            _("A period is a month written YYYY-MM, for example 2026-11."),
            code="invalid_period",
            errors={field: [_("Expected YYYY-MM.")]},
        )
    return datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)


def label(start: datetime) -> str:
    return f"{start:%Y-%m}"
