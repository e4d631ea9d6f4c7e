"""Small helpers the accounts API tests share: acting as someone, and snapshots to prove nothing changed."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from rest_framework.test import APIClient

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import ApiToken, AuditEvent, IdempotencyRecord, Invitation, Membership, Organization, User

NOT_FOUND = {"detail": "Not found.", "code": "not_found"}
ROLE_REQUIRED = {"detail": "Only the organization's owners and admins can do this.", "code": "role_required"}
TOKENS_CANNOT_MANAGE = {
    "detail": "API tokens cannot manage the organization; sign in as an admin.",
    "code": "role_required",
}


def signed_in(user: User, organization: Organization | None = None) -> APIClient:
    """A client with `user`'s browser session, acting as `organization` (their first one when not given)."""
    client = APIClient()
    client.force_login(user)
    if organization is not None:
        session = client.session
        session[SESSION_ORG_KEY] = str(organization.pk)
        session.save()
    return client


def with_token(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def rows(model: type[Model], **filters: Any) -> list[dict[str, Any]]:
    """Every column of every matching row, in a stable order: compare before and after a refused request."""
    return list(model.objects.filter(**filters).order_by("pk").values())


def organization_state(organization: Organization) -> dict[str, list[dict[str, Any]]]:
    return {
        "organization": rows(Organization, pk=organization.pk),
        "memberships": rows(Membership, organization=organization),
        "invitations": rows(Invitation, organization=organization),
        "tokens": rows(ApiToken, organization=organization),
        "audit_events": rows(AuditEvent, organization=organization),
        "idempotency": rows(IdempotencyRecord, organization=organization),
    }
