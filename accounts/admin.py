"""The platform staff's Django admin for accounts.

Secrets never appear here: tokens and invitations show only their hashes. Tokens and invitations cannot be added
here either, because their secret must reach someone (shown once, or e-mailed), which only the services do. The
audit log is read-only, and every change staff make here (an organization's credit limit, verification or related
parties, a membership's role, a person's staff flags, a revoked token or invitation) is written to it, like the
same change made through the services.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from accounts.actor import client_ip
from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, OrganizationKind, User
from accounts.services import audit_record


def _plain(value: Any) -> Any:
    """A form value as JSON: objects by their primary key, many-to-many selections as a sorted list."""
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, models.QuerySet | list | tuple | set):
        return sorted(_plain(item) for item in value)
    if isinstance(value, Decimal | date | datetime):
        return str(value)
    return value


def _changes(form) -> tuple[dict | None, dict]:
    """(before, after) of the fields a staff form changed; before is None for a new object."""
    fields = [name for name in form.changed_data if name not in ("password", "password1", "password2")]
    before = {name: _plain(form.initial.get(name)) for name in fields} if form.instance._state.adding is False else None
    return before, {name: _plain(form.cleaned_data.get(name)) for name in fields}


def _operator() -> Organization | None:
    return Organization.objects.filter(kind=OrganizationKind.OPERATOR).order_by("created_at").first()


class AuditedAdmin(admin.ModelAdmin):
    """Writes an audit event for every add, change and delete staff make, in the admin's own transaction (Django
    runs the change form in one), including the rows of membership inlines."""

    audit_name = ""

    def audit_organization(self, obj) -> Organization | None:
        return getattr(obj, "organization", None)

    def _audit(self, request, action: str, obj, before: dict | None, after: dict | None) -> None:
        audit_record(
            action=action,
            organization=self.audit_organization(obj),
            user=request.user,
            target=obj,
            before=before,
            after=after,
            ip_address=client_ip(request),
        )

    def save_model(self, request, obj, form, change) -> None:
        before, after = _changes(form)
        super().save_model(request, obj, form, change)
        if after or not change:
            self._audit(
                request, f"{self.audit_name}.{'staff_changed' if change else 'staff_added'}", obj, before, after
            )

    def delete_model(self, request, obj) -> None:
        self._audit(request, f"{self.audit_name}.staff_deleted", obj, {"object": str(obj)}, None)
        super().delete_model(request, obj)

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not Membership:
            super().save_formset(request, form, formset, change)
            return
        deleted = [
            (f.instance, {"membership": str(f.instance.pk), "user": str(f.instance.user_id), "role": f.instance.role})
            for f in formset.deleted_forms
        ]
        changed = [(f, *_changes(f)) for f in formset.forms if f.has_changed() and f not in formset.deleted_forms]
        super().save_formset(request, form, formset, change)
        for membership, before in deleted:
            audit_record(
                action="membership.staff_deleted",
                organization=membership.organization,
                user=request.user,
                target=membership,
                before=before,
                ip_address=client_ip(request),
            )
        for inline_form, before, after in changed:
            membership = inline_form.instance
            audit_record(
                action="membership.staff_changed" if before is not None else "membership.staff_added",
                organization=membership.organization,
                user=request.user,
                target=membership,
                before=before,
                after={**after, "user": str(membership.user_id), "role": membership.role},
                ip_address=client_ip(request),
            )


def _login_through_accounts(request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
    """Staff sign in on the product's own login page, so their logins and failures are audited like anyone's."""
    if request.user.is_authenticated:
        # Signed in but not staff: sending them to the login page would bounce straight back here.
        raise PermissionDenied
    return redirect_to_login(request.GET.get("next") or reverse("admin:index"), login_url=reverse("accounts:login"))


admin.site.login = _login_through_accounts


def _clean_email(form: AdminUserCreationForm | UserChangeForm) -> str:
    # Logins look addresses up lower-cased (UserManager.get_by_natural_key), so store them that way.
    email = form.cleaned_data["email"].strip().lower()
    taken = User.objects.filter(email__iexact=email)
    if form.instance.pk:
        taken = taken.exclude(pk=form.instance.pk)
    if taken.exists():
        raise ValidationError(_("A person with this e-mail address already exists."))
    return email


class UserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")

    def clean_email(self) -> str:
        return _clean_email(self)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        return _clean_email(self)


class MembershipOfUserInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ("organization",)
    verbose_name = _("membership")
    verbose_name_plural = _("memberships")


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    audit_name = "user"

    def audit_organization(self, obj) -> Organization | None:
        # Staff and superuser flags are the platform's own permissions: recorded under the operator.
        return _operator()

    form = UserEditForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("name", "preferred_language")}),
        (
            _("Permissions"),
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "name", "usable_password", "password1", "password2"),
            },
        ),
    )
    readonly_fields = ("last_login", "date_joined")
    list_display = ("email", "name", "preferred_language", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active", "preferred_language")
    search_fields = ("email", "name")
    ordering = ("email",)
    inlines = (MembershipOfUserInline,)


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "organization"
    extra = 0
    autocomplete_fields = ("user",)


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin):
    audit_name = "organization"

    def audit_organization(self, obj) -> Organization | None:
        return obj

    list_display = ("name", "kind", "slug", "verified", "billing_currency", "credit_limit", "created_at")
    list_filter = ("kind", "verified", "billing_currency")
    search_fields = ("name", "slug", "legal_name", "tax_id")
    readonly_fields = ("id", "created_at", "updated_at")
    filter_horizontal = ("related_parties",)
    inlines = (MembershipInline,)
    fieldsets = (
        (None, {"fields": ("id", "kind", "name", "slug")}),
        (_("Legal"), {"fields": ("legal_name", "tax_id", "region")}),
        (_("Platform decisions"), {"fields": ("verified", "billing_currency", "credit_limit", "related_parties")}),
        (_("Dates"), {"fields": ("created_at", "updated_at")}),
    )


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    audit_name = "membership"
    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role", "organization__kind")
    search_fields = ("user__email", "user__name", "organization__name")
    autocomplete_fields = ("user", "organization")


@admin.register(Invitation)
class InvitationAdmin(AuditedAdmin):
    audit_name = "invitation"
    list_display = ("email", "organization", "role", "created_at", "expires_at", "accepted_at", "revoked_at")
    list_filter = ("role",)
    search_fields = ("email", "organization__name")
    readonly_fields = (
        "id",
        "organization",
        "email",
        "role",
        "token_hash",
        "invited_by",
        "created_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
    )
    fields = (*readonly_fields, "revoked_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdmin):
    audit_name = "api_token"
    list_display = (
        "name",
        "organization",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "organization__name")
    readonly_fields = (
        "id",
        "organization",
        "name",
        "prefix",
        "token_hash",
        "scopes",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
    )
    # Staff may revoke a leaked token; everything else about a token is fixed when it is issued.
    fields = (*readonly_fields, "revoked_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "organization", "actor_label", "action", "target_type", "target_id", "ip_address")
    list_filter = ("action",)
    search_fields = ("actor_label", "action", "target_id", "organization__name")
    date_hierarchy = "created_at"
    list_select_related = ("organization",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
