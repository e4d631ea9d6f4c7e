"""Browser forms of vouchers. They check the shape of the input; every rule (budget, caps, validity, eligibility,
who may do what) lives in billing.services.vouchers and billing.services.reimbursements, whose refusals the views
put back on these forms."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import BootstrapMixin
from accounts.models import CONSUMER_KINDS, OrganizationKind
from billing.models import ProgramStatus, VoucherFlow, VoucherProgram
from billing.services.reimbursements import MAX_PROOF_BYTES
from billing.services.vouchers import PROGRAM_FIELDS
from marketplace.forms import CURRENCY_CHOICES, UtcDateTimeLocalField
from marketplace.models import Site
from marketplace.money import format_money
from marketplace.selectors.facets import catalog_vendors

MAX_AMOUNT_DIGITS = 18

CONSUMER_KIND_CHOICES = [(kind.value, kind.label) for kind in OrganizationKind if kind in CONSUMER_KINDS]


def _amount_field(label: Any, **kwargs: Any) -> forms.DecimalField:
    return forms.DecimalField(
        label=label, max_digits=MAX_AMOUNT_DIGITS, decimal_places=4, min_value=Decimal("0.0001"), **kwargs
    )


def _with_current(choices: list[str], current: list[str]) -> list[tuple[str, str]]:
    # A program keeps a vendor or region the catalog no longer offers: it must stay on the form to be kept.
    return [(value, value) for value in sorted(set(choices) | set(current))]


class ProgramForm(BootstrapMixin, forms.Form):
    """A sponsor's voucher program: its terms and who may apply."""

    name = forms.CharField(label=_("Name"), max_length=200)
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    currency = forms.ChoiceField(label=_("Currency"), choices=CURRENCY_CHOICES, initial="CNY")
    rate = forms.DecimalField(
        label=_("Share paid"),
        max_digits=5,
        decimal_places=4,
        help_text=_("The share of eligible compute the program pays, from 0 to 1: 0.5 pays half."),
    )
    budget = _amount_field(_("Total budget"))
    cap_per_grant = _amount_field(_("Cap per grant"), help_text=_("The most one consumer can be granted."))
    valid_from = UtcDateTimeLocalField(label=_("Valid from (UTC)"))
    valid_until = UtcDateTimeLocalField(label=_("Valid until (UTC)"))
    eligible_kinds = forms.MultipleChoiceField(
        label=_("Who may apply"), choices=CONSUMER_KIND_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    vendors = forms.MultipleChoiceField(
        label=_("Accelerator vendors"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave all unticked to admit every vendor."),
    )
    domestic_only = forms.BooleanField(label=_("Domestic chips only"), required=False)
    regions = forms.MultipleChoiceField(
        label=_("Center regions"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave all unticked to admit every region."),
    )
    flow = forms.ChoiceField(
        label=_("Money flow"),
        choices=VoucherFlow.choices,
        initial=VoucherFlow.DEDUCT,
        widget=forms.RadioSelect,
        help_text=_(
            "Deducted: the voucher reduces the consumer's invoice and the platform claims it from you each period. "
            "Reimbursed: the consumer pays in full and claims the share from you with evidence."
        ),
    )
    status = forms.ChoiceField(
        label=_("Status"),
        choices=ProgramStatus.choices,
        initial=ProgramStatus.DRAFT,
        help_text=_("Only programs open for applications are shown to consumers."),
    )

    def __init__(self, *args: Any, program: VoucherProgram | None = None, **kwargs: Any) -> None:
        if program is not None:
            kwargs.setdefault("initial", {name: getattr(program, name) for name in PROGRAM_FIELDS})
            # Shown as the sponsor typed them: 0.5000 reads as 0.5, 1000000.0000 as 1000000.00.
            kwargs["initial"]["rate"] = program.rate.normalize()
            for name in ("budget", "cap_per_grant"):
                kwargs["initial"][name] = format_money(getattr(program, name), program.currency)
        super().__init__(*args, **kwargs)
        self.program = program
        self.fields["vendors"].choices = _with_current(catalog_vendors(), program.vendors if program else [])
        regions = list(Site.objects.order_by("region").values_list("region", flat=True).distinct())
        self.fields["regions"].choices = _with_current(regions, program.regions if program else [])

    @property
    def values(self) -> dict[str, Any]:
        """What `voucher_program_save` takes."""
        return dict(self.cleaned_data)


class ApplyForm(BootstrapMixin, forms.Form):
    requested_amount = _amount_field(_("Amount"))
    purpose = forms.CharField(
        label=_("Purpose"),
        max_length=5000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("What the compute is for: the sponsor reads this when it decides."),
    )

    def __init__(self, *args: Any, program: VoucherProgram, **kwargs: Any) -> None:
        # One form per program on the same page: the prefix keeps their inputs and ids apart.
        kwargs.setdefault("prefix", f"apply-{program.pk}")
        super().__init__(*args, **kwargs)
        self.program = program
        self.fields["requested_amount"].label = _("Amount (%(currency)s)") % {"currency": program.currency}


class ApproveForm(BootstrapMixin, forms.Form):
    amount = _amount_field(_("Amount to grant"))
    expires_at = UtcDateTimeLocalField(
        label=_("Expires (UTC)"), required=False, help_text=_("Leave empty: the program's end of validity.")
    )
    note = forms.CharField(label=_("Note to the applicant"), max_length=500, required=False)

    def __init__(self, *args: Any, grant: Any, **kwargs: Any) -> None:
        kwargs.setdefault("prefix", f"approve-{grant.pk}")
        kwargs.setdefault("initial", {"amount": format_money(grant.requested_amount, grant.program.currency)})
        super().__init__(*args, **kwargs)


class RejectForm(BootstrapMixin, forms.Form):
    # Not required here: the service refuses an empty note, and its sentence is the one shown.
    note = forms.CharField(label=_("Reason (sent to the applicant)"), max_length=500, required=False)

    def __init__(self, *args: Any, prefix_for: Any = None, **kwargs: Any) -> None:
        if prefix_for is not None:
            kwargs.setdefault("prefix", f"reject-{prefix_for.pk}")
        super().__init__(*args, **kwargs)


class PaymentForm(BootstrapMixin, forms.Form):
    reference = forms.CharField(label=_("Bank reference"), max_length=200, required=False)

    def __init__(self, *args: Any, prefix_for: Any = None, **kwargs: Any) -> None:
        if prefix_for is not None:
            kwargs.setdefault("prefix", f"pay-{prefix_for.pk}")
        super().__init__(*args, **kwargs)


class ApprovalNoteForm(BootstrapMixin, forms.Form):
    note = forms.CharField(label=_("Note to the consumer"), max_length=500, required=False)


class ReimbursementForm(BootstrapMixin, forms.Form):
    """A consumer's claim on a reimbursement voucher: which invoice, how it paid it, and the proof."""

    invoice = forms.ChoiceField(label=_("Invoice"))
    payment_reference = forms.CharField(label=_("Bank reference of your payment"), max_length=200, required=False)
    payment_proof = forms.FileField(
        label=_("Payment proof"),
        required=False,
        help_text=_("The bank's receipt as a PDF, PNG or JPEG file, at most %(mb)s MB.")
        % {"mb": MAX_PROOF_BYTES // (1024 * 1024)},
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg"}),
    )

    def __init__(self, *args: Any, choices: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["invoice"].choices = [
            (
                str(option.invoice.pk),
                _("%(number)s · %(period)s · claims %(amount)s %(currency)s of %(eligible)s eligible")
                % {
                    "number": option.invoice.number,
                    "period": option.invoice.period.label,
                    "amount": format_money(option.terms.amount, option.invoice.currency),
                    "eligible": format_money(option.terms.eligible_amount, option.invoice.currency),
                    "currency": option.invoice.currency,
                },
            )
            for option in choices
        ]
