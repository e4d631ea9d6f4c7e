"""Small helpers the accounts API tests share: acting as someone, and snapshots to prove nothing changed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection
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


def run_at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in parallel threads, each with its own database connection, released together.

    Returns each call's result, or the exception it raised, in the order given.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # handed back to the test, which asserts on it
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results
