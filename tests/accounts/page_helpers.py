"""Helpers the accounts page tests share: a signed-in browser, and snapshots that prove nothing changed."""

from __future__ import annotations

import html
import re
from typing import Any

from django.db.models import Model
from django.test import Client

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, User


def browser_as(user: User, organization: Organization | None = None, **client_kwargs: Any) -> Client:
    """A browser session of `user`, acting as `organization` (their first one when not given)."""
    client = Client(**client_kwargs)
    client.force_login(user)
    if organization is not None:
        session = client.session
        session[SESSION_ORG_KEY] = str(organization.pk)
        session.save()
    return client


def row(obj: Model) -> dict[str, Any]:
    """Every stored column of `obj`, as the database has it now."""
    fresh = type(obj).objects.get(pk=obj.pk)
    return {field.attname: getattr(fresh, field.attname) for field in fresh._meta.concrete_fields}


def table_counts() -> dict[str, int]:
    models = (User, Organization, Membership, Invitation, ApiToken, AuditEvent)
    return {model.__name__: model.objects.count() for model in models}


def text_of(response) -> str:
    """The page's visible text, tags stripped and whitespace collapsed, for assertions on sentences."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page))).strip()
