"""Forms of the reconciliation workbench: the statement upload and its column mapping, the exceptions filter, and
one small form per action on an exception (each with the reason that goes into the audit log)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy

from accounts.forms import BootstrapMixin
from billing.bank_import import DATE_FORMATS, TEXT_FIELDS, Mapping
from billing.models import ExceptionKind, ExceptionStatus
from marketplace.money import CURRENCY_MINOR_UNITS

SPLIT_ROWS = 5
NO_COLUMN = ("", gettext_lazy("— none —"))


class UploadForm(BootstrapMixin, forms.Form):
    file = forms.FileField(
        label=gettext_lazy("Bank statement (CSV)"),
        help_text=gettext_lazy(
            "The documented format is imported at once; another bank's export asks for its columns."
        ),
    )
    account = forms.CharField(label=gettext_lazy("Bank account (optional)"), max_length=100, required=False)


class MappingForm(BootstrapMixin, forms.Form):
    """Which of the file's columns holds which field, and how dates and amounts are written."""

    token = forms.CharField(widget=forms.HiddenInput)
    date = forms.ChoiceField(label=gettext_lazy("Booking date"), required=False)
    date_format = forms.ChoiceField(label=gettext_lazy("Date format"))
    sign = forms.ChoiceField(
        label=gettext_lazy("Amounts"),
        choices=[
            ("signed", gettext_lazy("One signed column (negative = money out)")),
            ("two", gettext_lazy("Two columns: credit (in) and debit (out)")),
        ],
    )
    amount = forms.ChoiceField(label=gettext_lazy("Signed amount"), required=False)
    credit = forms.ChoiceField(label=gettext_lazy("Credit (money in)"), required=False)
    debit = forms.ChoiceField(label=gettext_lazy("Debit (money out)"), required=False)
    decimal_comma = forms.BooleanField(label=gettext_lazy("Decimal comma (1.234,56)"), required=False)
    currency = forms.ChoiceField(label=gettext_lazy("Currency column"), required=False)
    fixed_currency = forms.ChoiceField(label=gettext_lazy("…or every line is in"), required=False)
    counterparty = forms.ChoiceField(label=gettext_lazy("Counterparty (payer or payee)"), required=False)
    counterparty_account = forms.ChoiceField(label=gettext_lazy("Counterparty's account"), required=False)
    remittance = forms.ChoiceField(label=gettext_lazy("Remittance text / purpose"), required=False)
    bank_reference = forms.ChoiceField(label=gettext_lazy("Bank reference"), required=False)
    delimiter = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, header: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        columns = [(name, name) for name in header]
        self.fields["date"].choices = [NO_COLUMN, *columns]
        for name in ("amount", "credit", "debit", "currency", *TEXT_FIELDS):
            self.fields[name].choices = [NO_COLUMN, *columns]
        self.fields["date_format"].choices = [(fmt, example) for fmt, example in DATE_FORMATS.items()]
        self.fields["fixed_currency"].choices = [NO_COLUMN, *((c, c) for c in sorted(CURRENCY_MINOR_UNITS))]

    def mapping(self) -> Mapping:
        data = self.cleaned_data
        two = data["sign"] == "two"
        return Mapping(
            date=data["date"],
            amount="" if two else data.get("amount") or "",
            credit=(data.get("credit") or "") if two else "",
            debit=(data.get("debit") or "") if two else "",
            currency=data.get("currency") or "",
            fixed_currency="" if data.get("currency") else data.get("fixed_currency") or "",
            counterparty=data.get("counterparty") or "",
            counterparty_account=data.get("counterparty_account") or "",
            remittance=data.get("remittance") or "",
            bank_reference=data.get("bank_reference") or "",
            date_format=data["date_format"],
            decimal_comma=bool(data.get("decimal_comma")),
            delimiter=data["delimiter"],
        )


class ExceptionFilterForm(BootstrapMixin, forms.Form):
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("All")), *ExceptionStatus.choices],
    )
    kind = forms.ChoiceField(
        label=gettext_lazy("Kind"), required=False, choices=[("", gettext_lazy("All kinds")), *ExceptionKind.choices]
    )
    period = forms.ChoiceField(label=gettext_lazy("Period"), required=False)

    def __init__(self, *args: Any, periods: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["period"].choices = [("", gettext_lazy("All periods")), *((p, p) for p in periods)]


class ActionForm(BootstrapMixin, forms.Form):
    """The reason every action records (required for the actions that decide something without a document)."""

    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500)

    def __init__(self, *args: Any, reason_required: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required


class MatchForm(ActionForm):
    invoice = forms.CharField(label=gettext_lazy("Invoice number"), max_length=32)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, reason_required=False, **kwargs)


class SplitForm(ActionForm):
    """Up to five invoice/amount rows; empty rows are ignored."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, reason_required=False, **kwargs)
        for row in range(SPLIT_ROWS):
            self.fields[f"invoice_{row}"] = forms.CharField(
                label=gettext_lazy("Invoice number"), max_length=32, required=False
            )
            self.fields[f"amount_{row}"] = forms.DecimalField(
                label=gettext_lazy("Amount"), max_digits=18, decimal_places=4, min_value=Decimal("0.01"), required=False
            )

    def rows(self) -> list[tuple[Any, Any]]:
        return [(self[f"invoice_{row}"], self[f"amount_{row}"]) for row in range(SPLIT_ROWS)]

    def clean(self) -> dict:
        cleaned = super().clean()
        parts = []
        for row in range(SPLIT_ROWS):
            number, amount = cleaned.get(f"invoice_{row}"), cleaned.get(f"amount_{row}")
            if number and amount:
                parts.append((number.strip(), amount))
            elif number or amount:
                self.add_error(f"amount_{row}" if number else f"invoice_{row}", gettext_lazy("Give both."))
        if not parts and not self.errors:
            raise forms.ValidationError(gettext_lazy("Give at least one invoice and amount."))
        cleaned["parts"] = parts
        return cleaned


class RefundForm(ActionForm):
    reference = forms.CharField(
        label=gettext_lazy("Bank reference of the transfer back"), max_length=200, required=False
    )


class KeepCreditForm(ActionForm):
    consumer = forms.ChoiceField(label=gettext_lazy("Paid by"), required=False)

    def __init__(self, *args: Any, consumers: list, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["consumer"].choices = [NO_COLUMN, *((str(c.pk), c.name) for c in consumers)]
