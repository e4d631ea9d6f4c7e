"""Forms of the payouts pages: finance recording a payout paid (or failed, or retried) and a sponsor's payment of a
voucher claim received. Each row of a page has its own form, told apart by a prefix of the object's id."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import BootstrapMixin
from billing.models import PaymentProfile


class _RowForm(BootstrapMixin, forms.Form):
    action = ""

    def __init__(self, *args: Any, row: Any = None, **kwargs: Any) -> None:
        if row is not None:
            kwargs.setdefault("prefix", f"{self.action}-{row.pk}")
        super().__init__(*args, **kwargs)


class ReceivedForm(_RowForm):
    """The bank's reference of a transfer and the day it was booked (UTC)."""

    action = "paid"
    bank_reference = forms.CharField(label=_("Bank reference"), max_length=200)
    paid_on = forms.DateField(label=_("Booked on (UTC)"), widget=forms.DateInput(attrs={"type": "date"}))

    def paid_at(self) -> datetime:
        return datetime.combine(self.cleaned_data["paid_on"], time(0), tzinfo=UTC)


class ClaimReceivedForm(ReceivedForm):
    action = "received"


class FailedForm(_RowForm):
    action = "failed"
    message = forms.CharField(label=_("Why it failed"), max_length=500)


class RetryForm(_RowForm):
    action = "retry"
    method = forms.ChoiceField(
        label=_("Pay by"), choices=[("", _("the same method")), *PaymentProfile.PayoutMethod.choices], required=False
    )
