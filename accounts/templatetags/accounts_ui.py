"""Template helpers for the accounts pages and the base layout."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

from accounts.forms import OrganizationCreateForm
from accounts.models import Role

register = template.Library()


@register.filter
def role_label(value: str | None) -> str:
    """The translated name of a role code (`actor.role` is a plain string)."""
    if value in Role.values:
        return str(Role(value).label)
    return value or ""


@register.filter
def as_json(value: Any) -> str:
    """Audit before/after values as compact JSON, keeping Chinese text readable instead of \\u-escaped."""
    if value in (None, "", {}):
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@register.simple_tag
def organization_create_form() -> OrganizationCreateForm:
    """An empty form to found an organization, for pages whose view does not provide one (the home page)."""
    return OrganizationCreateForm()


AUDIT_ACTION_LABELS = {
    "auth.login": _("Logged in"),
    "auth.login_failed": _("Failed login"),
    "auth.password_reset": _("Password reset by e-mail"),
    "organization.created": _("Organization created"),
    "organization.updated": _("Organization details changed"),
    "membership.joined": _("Joined the organization"),
    "membership.role_changed": _("Role changed"),
    "membership.removed": _("Member removed"),
    "invitation.created": _("Invitation sent"),
    "invitation.revoked": _("Invitation revoked"),
    "api_token.created": _("API token created"),
    "api_token.revoked": _("API token revoked"),
}


@register.filter
def audit_action_label(action: str) -> str:
    """A readable name for an audit action; actions of later features show their code until named here."""
    return str(AUDIT_ACTION_LABELS.get(action, action))
