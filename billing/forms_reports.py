"""Filters of the finance reports: the day a report is read as of, the months of the cash report, a currency.
Each refusal names its field, and a report with a bad filter shows no figures rather than figures for a filter
nobody chose."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.forms import BootstrapMixin
from billing.periods_calendar import label, month_start
from marketplace.money import CURRENCY_MINOR_UNITS

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
# The longest span of the cash report: ten years of months is already more than a chart can show.
MAX_MONTHS = 120
CASH_DEFAULT_MONTHS = 12


def _currency_field() -> forms.ChoiceField:
    return forms.ChoiceField(
        label=gettext_lazy("Currency"),
        required=False,
        choices=[("", gettext_lazy("All currencies")), *((code, code) for code in sorted(CURRENCY_MINOR_UNITS))],
    )


class AsOfFilterForm(BootstrapMixin, forms.Form):
    """A day (UTC, not in the future: the books do not know it yet) and an optional currency."""

    as_of = forms.DateField(
        label=gettext_lazy("As of the end of (UTC)"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": gettext_lazy("Enter a day as YYYY-MM-DD, for example 2026-11-30.")},
    )
    currency = _currency_field()

    def __init__(self, data: Any = None, *, today: date) -> None:
        self.today = today
        if not data or not any(name in data for name in ("as_of", "currency")):
            data = {"as_of": today.isoformat(), "currency": ""}
        super().__init__(data)

    def clean_as_of(self) -> date:
        day: date = self.cleaned_data["as_of"]
        if day > self.today:
            raise forms.ValidationError(
                _("%(day)s is in the future; choose today (%(today)s) or an earlier day.")
                % {"day": day.isoformat(), "today": self.today.isoformat()}
            )
        return day

    def filters(self) -> dict[str, Any]:
        return {"as_of": self.cleaned_data["as_of"], "currency": self.cleaned_data["currency"] or None}


def parse_month(text: str) -> datetime:
    match = MONTH.match((text or "").strip())
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise forms.ValidationError(_("Enter a month as YYYY-MM, for example 2026-11."))
    return datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)


def _months_between(first: datetime, last: datetime) -> int:
    return (last.year - first.year) * 12 + last.month - first.month + 1


class MonthRangeFilterForm(BootstrapMixin, forms.Form):
    """A range of months (both included) and an optional currency; by default the last twelve months."""

    first = forms.CharField(
        label=gettext_lazy("From month"), widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"})
    )
    last = forms.CharField(
        label=gettext_lazy("To month"), widget=forms.TextInput(attrs={"type": "month", "placeholder": "YYYY-MM"})
    )
    currency = _currency_field()

    def __init__(self, data: Any = None, *, now: datetime | None = None) -> None:
        if not data or not any(name in data for name in ("first", "last", "currency")):
            this_month = month_start(now or timezone.now())
            first = datetime(
                this_month.year - (this_month.month <= CASH_DEFAULT_MONTHS - 1),
                (this_month.month - CASH_DEFAULT_MONTHS) % 12 + 1,
                1,
                tzinfo=UTC,
            )
            data = {"first": label(first), "last": label(this_month), "currency": ""}
        super().__init__(data)

    def clean_first(self) -> datetime:
        return parse_month(self.cleaned_data["first"])

    def clean_last(self) -> datetime:
        return parse_month(self.cleaned_data["last"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        first, last = data.get("first"), data.get("last")
        if first is not None and last is not None:
            if first > last:
                self.add_error("last", _("The last month must not be before the first."))
            elif _months_between(first, last) > MAX_MONTHS:
                self.add_error("last", _("Choose at most %(count)s months.") % {"count": MAX_MONTHS})
        return data

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"first": data["first"], "last": data["last"], "currency": data["currency"] or None}
