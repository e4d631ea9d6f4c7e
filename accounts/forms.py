"""Browser forms. They check the shape of the input only; every rule lives in accounts.services."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from django import forms
from django.contrib.auth import forms as auth_forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from accounts.errors import DomainError
from accounts.models import Language, OrganizationKind, Role, Scope
from accounts.services import SELF_SERVICE_KINDS


class BootstrapMixin:
    """Renders with the project's Bootstrap form template and gives each widget its Bootstrap class."""

    template_name = "forms/bootstrap.html"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxSelectMultiple | forms.RadioSelect):
                continue  # the form template styles each option itself
            if isinstance(widget, forms.CheckboxInput):
                css = "form-check-input"
            elif isinstance(widget, forms.Select):
                css = "form-select"
            else:
                css = "form-control"
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()

    def full_clean(self) -> None:
        super().full_clean()
        for name in getattr(self, "_errors", None) or {}:
            if name in self.fields:
                attrs = self.fields[name].widget.attrs
                attrs["class"] = f"{attrs.get('class', '')} is-invalid".strip()
                attrs["aria-invalid"] = "true"


def apply_domain_error(form: forms.Form, error: DomainError, field_map: Mapping[str, str] | None = None) -> None:
    """Show a service's refusal on the form: its field errors on the fields, otherwise its sentence on top.

    Services name fields after their own arguments; `field_map` translates those names to the form's.
    """
    field_map = field_map or {}
    placed = False
    for field, messages in (error.errors or {}).items():
        target = field_map.get(field, field)
        for message in messages:
            form.add_error(target if target in form.fields else None, message)
            placed = True
    if not placed:
        form.add_error(None, error.detail)


def _choices(enum: type, values: Iterable[str]) -> list[tuple[str, str]]:
    wanted = set(values)
    return [(value, label) for value, label in enum.choices if value in wanted]


class PasswordPairMixin:
    password_mismatch_message = _("The two passwords do not match.")

    def clean(self) -> dict:
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", self.password_mismatch_message)
        return cleaned


def _password_fields() -> tuple[forms.CharField, forms.CharField]:
    return (
        forms.CharField(
            label=_("Password"),
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
            help_text=_("At least 10 characters; not a common password and not only digits."),
        ),
        forms.CharField(
            label=_("Password (again)"),
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        ),
    )


class SignUpForm(PasswordPairMixin, BootstrapMixin, forms.Form):
    name = forms.CharField(
        label=_("Your name"),
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "name", "autofocus": True}),
    )
    email = forms.EmailField(
        label=_("E-mail address"), max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )
    password1, password2 = _password_fields()
    language = forms.ChoiceField(label=_("Preferred language"), choices=Language.choices)
    organization_kind = forms.ChoiceField(
        label=_("Organization kind"),
        choices=_choices(OrganizationKind, SELF_SERVICE_KINDS),
        help_text=_("Computing centers offer capacity; enterprises, universities and institutes book it."),
    )
    organization_name = forms.CharField(
        label=_("Organization name"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )


class InvitationSignUpForm(PasswordPairMixin, BootstrapMixin, forms.Form):
    name = forms.CharField(
        label=_("Your name"),
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "name", "autofocus": True}),
    )
    password1, password2 = _password_fields()
    language = forms.ChoiceField(label=_("Preferred language"), choices=Language.choices)


class EmailAuthenticationForm(BootstrapMixin, auth_forms.AuthenticationForm):
    username = auth_forms.UsernameField(
        label=_("E-mail address"),
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    error_messages = {
        **auth_forms.AuthenticationForm.error_messages,
        "invalid_login": _("The e-mail address or the password is wrong."),
    }


class PasswordResetForm(BootstrapMixin, auth_forms.PasswordResetForm):
    pass


class SetPasswordForm(BootstrapMixin, auth_forms.SetPasswordForm):
    pass


class OrganizationCreateForm(BootstrapMixin, forms.Form):
    kind = forms.ChoiceField(label=_("Organization kind"), choices=_choices(OrganizationKind, SELF_SERVICE_KINDS))
    name = forms.CharField(label=_("Organization name"), max_length=200)


class UpperCaseField(forms.CharField):
    """Codes people often type in lower case (currency, tax id): upper-cased before they are validated."""

    def to_python(self, value: object) -> str:
        return super().to_python(value).upper()


class OrganizationSettingsForm(BootstrapMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    legal_name = forms.CharField(label=_("Legal name"), max_length=300, required=False)
    tax_id = UpperCaseField(
        label=_("Unified social credit code / tax id"),
        max_length=32,
        required=False,
        validators=[RegexValidator(r"^[0-9A-Z-]*$", _("Use digits, capital letters and dashes only."))],
    )
    region = forms.CharField(label=_("Region"), max_length=64, required=False)
    billing_currency = UpperCaseField(
        label=_("Billing currency"),
        min_length=3,
        max_length=3,
        help_text=_("A three-letter ISO 4217 code such as CNY."),
    )


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


class InvitationCreateForm(BootstrapMixin, forms.Form):
    email = forms.EmailField(label=_("E-mail address"), max_length=254)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, can_grant_owner: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not can_grant_owner:
            self.fields["role"].choices = [c for c in Role.choices if c[0] != Role.OWNER]


class ApiTokenCreateForm(BootstrapMixin, forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("Say where the token is used, e.g. “inventory sync” or “agent on node 3”."),
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one scope.")},
    )
    expires_on = forms.DateField(
        label=_("Expires on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=_("Optional. The token stops working at 00:00 UTC on this day."),
    )
    # One value per rendered form: a second submission of the same form (double click, reload) is recognized.
    submission = forms.CharField(widget=forms.HiddenInput, max_length=64)
