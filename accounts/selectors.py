"""Reads of accounts data, always scoped to the acting organization.

`scoped_get` is the one way an object named in a request is loaded: another organization's object and a missing
one raise the same NotFound, so no page or endpoint can tell them apart.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from django.db.models import Model, QuerySet
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import NotFound
from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, User

M = TypeVar("M", bound=Model)


def as_uuid(value: Any) -> uuid.UUID:
    """Parse an id from a URL or body; a malformed one is simply not found, never a server error."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise NotFound(_("Not found.")) from exc


def scoped(queryset: QuerySet[M], actor: Actor, *, field: str = "organization") -> QuerySet[M]:
    return queryset.filter(**{field: actor.organization})


def scoped_get(queryset: QuerySet[M], actor: Actor, *, field: str = "organization", **lookup: Any) -> M:
    pk_field = queryset.model._meta.pk
    if "pk" in lookup and pk_field.get_internal_type() == "UUIDField":
        lookup["pk"] = as_uuid(lookup["pk"])
    elif "pk" in lookup:
        try:
            lookup["pk"] = int(lookup["pk"])
        except (TypeError, ValueError) as exc:
            raise NotFound(_("Not found.")) from exc
    obj = scoped(queryset, actor, field=field).filter(**lookup).first()
    if obj is None:
        raise NotFound(_("Not found."))
    return obj


def memberships_of_user(user: User) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")


def member_list(actor: Actor) -> QuerySet[Membership]:
    return scoped(Membership.objects.select_related("user"), actor).order_by("user__email")


def member_get(actor: Actor, membership_id: Any) -> Membership:
    return scoped_get(Membership.objects.select_related("user"), actor, pk=membership_id)


def invitation_list(actor: Actor) -> QuerySet[Invitation]:
    return scoped(Invitation.objects.select_related("invited_by"), actor).order_by("-created_at")


def invitation_get(actor: Actor, invitation_id: Any) -> Invitation:
    return scoped_get(Invitation.objects.all(), actor, pk=invitation_id)


def api_token_list(actor: Actor) -> QuerySet[ApiToken]:
    return scoped(ApiToken.objects.select_related("created_by"), actor).order_by("-created_at")


def api_token_get(actor: Actor, token_id: Any) -> ApiToken:
    return scoped_get(ApiToken.objects.all(), actor, pk=token_id)


def audit_event_list(actor: Actor) -> QuerySet[AuditEvent]:
    return scoped(AuditEvent.objects.select_related("actor"), actor).order_by("-created_at", "-id")


def audit_event_get(actor: Actor, event_id: Any) -> AuditEvent:
    return scoped_get(AuditEvent.objects.all(), actor, pk=event_id)


def organization_of(actor: Actor) -> Organization:
    return actor.organization
