"""Forms of the operator's finance pages: the invoice review's filters, the reasons for holding and voiding, the
credit note (an amount per line), and the trial balance's date.

The credit note form checks what the service checks (each line's remaining creditable amount, the invoice's,
whole minor units, a reason) so that a refusal lands on the field it concerns; the service checks again under
the invoice's lock, and what it refuses then is shown on top of the form."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.forms import BootstrapMixin
from billing.models import Invoice, InvoiceStatus
from billing.selectors.finance import LineCredit
from billing.services.invoices import CreditRequest
from marketplace.money import CURRENCY_MINOR_UNITS, format_money, round_money

ZERO = Decimal(0)

HELD_CHOICES = [("", gettext_lazy("Held or not")), ("yes", gettext_lazy("Held")), ("no", gettext_lazy("Not held"))]


class InvoiceFilterForm(BootstrapMixin, forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"), required=False)
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("All statuses")), *InvoiceStatus.choices],
    )
    consumer = forms.ModelChoiceField(
        label=gettext_lazy("Consumer"), required=False, queryset=None, empty_label=gettext_lazy("All consumers")
    )
    held = forms.ChoiceField(label=gettext_lazy("Hold"), required=False, choices=HELD_CHOICES)

    def __init__(self, data: Any, *, periods: list[str], consumers: Any) -> None:
        super().__init__(data)
        self.fields["period"].choices = [("", _("All periods")), *((name, name) for name in periods)]
        self.fields["consumer"].queryset = consumers

    def selector_filters(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "period": data["period"] or None,
            "status": data["status"] or None,
            "consumer": data["consumer"],
            "held": {"yes": True, "no": False}.get(data["held"]),
        }


class ReasonForm(BootstrapMixin, forms.Form):
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500)

    def __init__(self, *args: Any, prefix: str, **kwargs: Any) -> None:
        super().__init__(*args, prefix=prefix, **kwargs)


class BankTransferForm(BootstrapMixin, forms.Form):
    """A bank transfer finance records by hand against an invoice."""

    amount = forms.DecimalField(label=gettext_lazy("Amount received"), max_digits=18, decimal_places=4, min_value=0)
    received_on = forms.DateField(label=gettext_lazy("Received on"), widget=forms.DateInput(attrs={"type": "date"}))
    reference = forms.CharField(label=gettext_lazy("Bank reference"), max_length=200)
    payer_name = forms.CharField(label=gettext_lazy("Payer (as on the bank's advice)"), max_length=200, required=False)

    def __init__(self, *args: Any, invoice: Invoice, **kwargs: Any) -> None:
        super().__init__(*args, prefix="transfer", **kwargs)
        self.invoice = invoice

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        currency = self.invoice.currency
        if amount <= 0 or round_money(amount, currency) != amount:
            raise forms.ValidationError(
                _("Enter a positive amount in whole %(currency)s minor units (%(digits)s decimals).")
                % {"currency": currency, "digits": CURRENCY_MINOR_UNITS[currency]}
            )
        return amount


def line_field_name(line_id: int) -> str:
    return f"line_{line_id}"


class CreditNoteForm(BootstrapMixin, forms.Form):
    """One amount per line that can still be credited, and a reason."""

    reason = forms.CharField(
        label=gettext_lazy("Reason"),
        max_length=500,
        help_text=gettext_lazy("Shown on the credit note the consumer receives."),
        widget=forms.TextInput,
    )

    def __init__(self, data: Any = None, *, invoice: Invoice, lines: list[LineCredit], creditable: Decimal) -> None:
        super().__init__(data, prefix="credit")
        self.invoice = invoice
        self.creditable = creditable
        self.rooms: dict[int, Decimal] = {}
        digits = CURRENCY_MINOR_UNITS.get(invoice.currency, 2)
        step = "1" if digits == 0 else f"0.{'0' * (digits - 1)}1"
        for credit in lines:
            if credit.room <= 0:
                continue
            self.rooms[credit.line.pk] = credit.room
            self.fields[line_field_name(credit.line.pk)] = forms.DecimalField(
                label=_("Line %(id)s") % {"id": credit.line.pk},
                required=False,
                min_value=ZERO,
                max_digits=18,
                widget=forms.NumberInput(
                    attrs={"step": step, "min": "0", "class": "form-control form-control-sm text-end"}
                ),
            )
        # Fields in the order of the lines, then the reason.
        self.order_fields([*(line_field_name(line_id) for line_id in self.rooms), "reason"])

    def line_field(self, line_id: int) -> forms.BoundField | None:
        name = line_field_name(line_id)
        return self[name] if name in self.fields else None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        currency = self.invoice.currency
        total = ZERO
        for line_id, room in self.rooms.items():
            name = line_field_name(line_id)
            amount = cleaned.get(name)
            if amount is None or name in self.errors:
                continue
            if round_money(amount, currency) != amount:
                self.add_error(
                    name,
                    _("Credit whole %(currency)s minor units (%(example)s).")
                    % {
                        "currency": currency,
                        "example": format_money(round_money(amount, currency), currency),
                    },
                )
            elif amount > room:
                self.add_error(
                    name,
                    _("At most %(room)s %(currency)s can still be credited on this line.")
                    % {"room": format_money(room, currency), "currency": currency},
                )
            else:
                total += amount
        if not self.errors:
            if total == 0:
                raise forms.ValidationError(_("Enter an amount on at least one line."), code="nothing")
            if total > self.creditable:
                raise forms.ValidationError(
                    _(
                        "At most %(room)s %(currency)s of this invoice can still be credited; "
                        "these lines add up to %(total)s."
                    )
                    % {
                        "room": format_money(max(self.creditable, ZERO), currency),
                        "currency": currency,
                        "total": format_money(total, currency),
                    },
                    code="exceeds_invoice",
                )
        return cleaned

    def requests(self) -> list[CreditRequest]:
        return [
            CreditRequest(line_id, self.cleaned_data[line_field_name(line_id)])
            for line_id in self.rooms
            if self.cleaned_data.get(line_field_name(line_id))
        ]


class TrialBalanceForm(BootstrapMixin, forms.Form):
    until = forms.DateField(
        label=gettext_lazy("As of the end of (UTC)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
    )

    def until_instant(self) -> datetime | None:
        """The last instant of the chosen day, UTC: entries posted on that day count."""
        day: date | None = self.cleaned_data.get("until") if self.is_valid() else None
        if day is None:
            return None
        return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) - timedelta(microseconds=1)
