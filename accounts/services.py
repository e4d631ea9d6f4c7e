"""Every write to accounts data: one function per use case, each owning its transaction.

Services take the acting `Actor` (or, before anyone is signed in, the facts of the request) and raise
`accounts.errors` on refusal. Security-relevant changes write an `AuditEvent` in the same transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from accounts.models import (
    ApiToken,
    AuditEvent,
    Invitation,
    Language,
    Membership,
    Organization,
    OrganizationKind,
    Role,
    Scope,
    User,
)
from accounts.secrets import hash_secret, new_link_secret, new_token_secret
from accounts.selectors import as_uuid

logger = logging.getLogger(__name__)

SELF_SERVICE_KINDS = frozenset(
    {
        OrganizationKind.CENTER,
        OrganizationKind.ENTERPRISE,
        OrganizationKind.UNIVERSITY,
        OrganizationKind.INSTITUTE,
        OrganizationKind.SPONSOR,
    }
)


# --- audit ----------------------------------------------------------------------------------------------------


def audit_record(
    *,
    action: str,
    organization: Organization | None,
    actor: Actor | None = None,
    user: User | None = None,
    actor_label: str = "",
    target: Any = None,
    before: dict | None = None,
    after: dict | None = None,
    ip_address: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one audit event. Call it inside the transaction of the change it records."""
    if actor is not None:
        user = user or actor.user
        actor_label = actor_label or actor.label
        ip_address = ip_address or actor.ip_address
    event = AuditEvent.objects.create(
        organization=organization,
        actor=user,
        actor_token=actor.token if actor is not None else None,
        actor_label=actor_label or (user.email if user else ""),
        action=action,
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        before=before,
        after=after,
        ip_address=ip_address,
        created_at=now or timezone.now(),
    )
    logger.info("audit.%s", action, extra={"organization": str(organization.pk) if organization else None})
    return event


def audit_login(*, user: User, ip_address: str | None) -> None:
    with transaction.atomic():
        for membership in user.memberships.select_related("organization"):
            audit_record(action="auth.login", organization=membership.organization, user=user, ip_address=ip_address)
        if not user.memberships.exists():
            audit_record(action="auth.login", organization=None, user=user, ip_address=ip_address)


def audit_failed_login(*, email: str, ip_address: str | None) -> None:
    """A failed login is shown to the admins of every organization the typed address belongs to."""
    email = (email or "").strip().lower()[:254]
    user = User.objects.filter(email=email).first()
    with transaction.atomic():
        organizations = [m.organization for m in user.memberships.select_related("organization")] if user else []
        for organization in organizations or [None]:
            audit_record(
                action="auth.login_failed",
                organization=organization,
                user=user,
                actor_label=email,
                ip_address=ip_address,
            )


# --- organizations --------------------------------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def _check_currency(currency: str) -> str:
    currency = (currency or "").strip().upper()
    if len(currency) != 3 or not currency.isalpha():
        raise InvalidInput(
            _("Currency must be a three-letter ISO 4217 code."),
            errors={"currency": [_("Use a three-letter code such as CNY.")]},
        )
    return currency


def organization_create(
    *,
    kind: str,
    name: str,
    currency: str = "CNY",
    credit_limit: Decimal | None = None,
    legal_name: str = "",
    tax_id: str = "",
    region: str = "",
    slug: str | None = None,
    verified: bool = False,
    owner: User | None = None,
) -> Organization:
    """Create an organization (and make `owner` its owner). Only one operator organization may exist."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("An organization needs a name."), errors={"name": [_("This field is required.")]})
    if kind not in OrganizationKind.values:
        raise InvalidInput(
            _("Unknown organization kind “%(kind)s”.") % {"kind": kind},
            errors={"kind": [_("Choose one of: %(kinds)s.") % {"kinds": ", ".join(OrganizationKind.values)}]},
        )
    if credit_limit is not None and credit_limit < 0:
        raise InvalidInput(_("The credit limit cannot be negative."), errors={"credit_limit": [_("Must be ≥ 0.")]})
    currency = _check_currency(currency)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(
                kind=kind,
                name=name,
                slug=slug or _unique_slug(name),
                billing_currency=currency,
                credit_limit=credit_limit,
                legal_name=legal_name,
                tax_id=tax_id,
                region=region,
                verified=verified,
            )
            if owner is not None:
                Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
            audit_record(
                action="organization.created",
                organization=organization,
                user=owner,
                target=organization,
                after={"kind": kind, "name": name, "currency": currency},
            )
    except IntegrityError as exc:
        if kind == OrganizationKind.OPERATOR:
            raise Conflict(_("This deployment already has an operator organization."), code="operator_exists") from exc
        raise Conflict(_("An organization with this slug already exists."), code="slug_taken") from exc
    return organization


ORGANIZATION_SETTINGS_FIELDS = ("name", "legal_name", "tax_id", "region", "billing_currency")


def organization_update(*, actor: Actor, changes: dict[str, Any]) -> Organization:
    """Change an organization's settings (admins). Credit limits and verification are the operator's call."""
    _require_admin(actor)
    unknown = set(changes) - set(ORGANIZATION_SETTINGS_FIELDS)
    if unknown:
        raise InvalidInput(_("These fields cannot be changed here: %(f)s.") % {"f": ", ".join(sorted(unknown))})
    if "billing_currency" in changes:
        changes["billing_currency"] = _check_currency(changes["billing_currency"])
    if "name" in changes and not str(changes["name"]).strip():
        raise InvalidInput(_("An organization needs a name."), errors={"name": [_("This field is required.")]})
    with transaction.atomic():
        organization = Organization.objects.select_for_update().get(pk=actor.organization.pk)
        before = {f: getattr(organization, f) for f in changes}
        for field, value in changes.items():
            setattr(organization, field, value)
        after = {f: getattr(organization, f) for f in changes}
        if before != after:
            organization.save(update_fields=[*changes, "updated_at"])
            audit_record(
                action="organization.updated",
                organization=organization,
                actor=actor,
                target=organization,
                before=before,
                after=after,
            )
    return organization


# --- people ---------------------------------------------------------------------------------------------------


def _check_password(password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), errors={"password": list(exc.messages)}) from exc


def user_create(*, email: str, name: str, password: str, language: str = "en") -> User:
    email = (email or "").strip().lower()
    if not email or "@" not in email:
        raise InvalidInput(_("Enter a valid e-mail address."), errors={"email": [_("Enter a valid e-mail address.")]})
    if User.objects.filter(email=email).exists():
        raise Conflict(
            _("An account with this e-mail address already exists. Log in instead."),
            code="email_taken",
            errors={"email": [_("An account with this e-mail address already exists.")]},
        )
    candidate = User(email=email, name=name.strip(), preferred_language=language)
    _check_password(password, candidate)
    try:
        with transaction.atomic():
            return User.objects.create_user(
                email=email, password=password, name=name.strip(), preferred_language=language
            )
    except IntegrityError as exc:  # a second sign-up with the same address raced this one
        raise Conflict(_("An account with this e-mail address already exists."), code="email_taken") from exc


@dataclass(frozen=True)
class SignUpResult:
    user: User
    organization: Organization


def signup(
    *,
    email: str,
    name: str,
    password: str,
    organization_name: str,
    organization_kind: str,
    language: str = "en",
    ip_address: str | None = None,
) -> SignUpResult:
    """A new person and the organization they found (as its owner). Operators are created by script only."""
    if organization_kind not in SELF_SERVICE_KINDS:
        raise InvalidInput(
            _("Choose what kind of organization you are signing up."),
            errors={"organization_kind": [_("Not a kind you can sign up as.")]},
        )
    with transaction.atomic():
        user = user_create(email=email, name=name, password=password, language=language)
        organization = organization_create(kind=organization_kind, name=organization_name, owner=user)
    return SignUpResult(user=user, organization=organization)


def _require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden(_("Only the organization's owners and admins can do this."), code="role_required")


def _lock_memberships(organization: Organization) -> list[Membership]:
    # Lock every membership row of the organization in primary-key order: two admins demoting each other at once
    # must not both succeed and leave the organization without an owner.
    return list(Membership.objects.select_for_update().filter(organization=organization).order_by("pk"))


def _as_locked(actor: Actor, memberships: list[Membership]) -> Actor:
    # The actor's role as the locked rows say now, not as it was when the request began: a demotion committed
    # while this request waited for the lock must take effect, or a just-demoted owner could still demote others.
    if actor.user is None:
        return actor
    return replace(actor, role=next((m.role for m in memberships if m.user_id == actor.user.pk), None))


def membership_change_role(*, actor: Actor, membership_id: Any, role: str) -> Membership:
    _require_admin(actor)
    if role not in Role.values:
        raise InvalidInput(_("Unknown role “%(role)s”.") % {"role": role}, errors={"role": [_("Unknown role.")]})
    with transaction.atomic():
        memberships = _lock_memberships(actor.organization)
        actor = _as_locked(actor, memberships)
        _require_admin(actor)
        membership = next((m for m in memberships if str(m.pk) == str(membership_id)), None)
        if membership is None:
            raise NotFound(_("No such member."))
        if Role.OWNER in (role, membership.role) and not actor.is_owner:
            raise Forbidden(_("Only an owner can grant or take away the owner role."), code="role_required")
        owners = [m for m in memberships if m.role == Role.OWNER]
        if membership.role == Role.OWNER and role != Role.OWNER and len(owners) == 1:
            raise RuleViolation(_("An organization must keep at least one owner."), code="last_owner")
        before = membership.role
        if before != role:
            membership.role = role
            membership.save(update_fields=["role"])
            audit_record(
                action="membership.role_changed",
                organization=actor.organization,
                actor=actor,
                target=membership,
                before={"user": membership.user.email, "role": before},
                after={"user": membership.user.email, "role": role},
            )
    return membership


def membership_remove(*, actor: Actor, membership_id: Any) -> None:
    with transaction.atomic():
        memberships = _lock_memberships(actor.organization)
        actor = _as_locked(actor, memberships)
        membership = next((m for m in memberships if str(m.pk) == str(membership_id)), None)
        if membership is None:
            raise NotFound(_("No such member."))
        leaving_self = actor.user is not None and membership.user_id == actor.user.pk
        if not leaving_self:
            _require_admin(actor)
            if membership.role == Role.OWNER and not actor.is_owner:
                raise Forbidden(_("Only an owner can remove an owner."), code="role_required")
        if membership.role == Role.OWNER and sum(m.role == Role.OWNER for m in memberships) == 1:
            raise RuleViolation(_("An organization must keep at least one owner."), code="last_owner")
        audit_record(
            action="membership.removed",
            organization=actor.organization,
            actor=actor,
            target=membership,
            before={"user": membership.user.email, "role": membership.role},
        )
        membership.delete()


# --- invitations ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvitation:
    invitation: Invitation
    secret: str  # only in the e-mailed link; never stored


def invitation_accept_path(secret: str) -> str:
    from django.urls import reverse

    return reverse("accounts:invitation_accept", kwargs={"token": secret})


def invitation_create(
    *, actor: Actor, email: str, role: str, base_url: str = "", now: datetime | None = None
) -> IssuedInvitation:
    """Invite an address to join with a role; the link expires after INVITATION_TTL_DAYS. Re-inviting replaces."""
    _require_admin(actor)
    now = now or timezone.now()
    email = (email or "").strip().lower()
    if not email or "@" not in email:
        raise InvalidInput(_("Enter a valid e-mail address."), errors={"email": [_("Enter a valid e-mail address.")]})
    if role not in Role.values:
        raise InvalidInput(_("Unknown role “%(role)s”.") % {"role": role}, errors={"role": [_("Unknown role.")]})
    if role == Role.OWNER and not actor.is_owner:
        raise Forbidden(_("Only an owner can invite another owner."), code="role_required")
    if Membership.objects.filter(organization=actor.organization, user__email=email).exists():
        raise Conflict(
            _("%(email)s is already a member.") % {"email": email},
            code="already_member",
            errors={"email": [_("Already a member of this organization.")]},
        )
    secret = new_link_secret()
    with transaction.atomic():
        open_invites = Invitation.objects.select_for_update().filter(
            organization=actor.organization, accepted_at__isnull=True, revoked_at__isnull=True
        )
        open_invites.annotate(email_ci=Lower("email")).filter(email_ci=email).update(revoked_at=now)
        invitation = Invitation.objects.create(
            organization=actor.organization,
            email=email,
            role=role,
            token_hash=hash_secret(secret),
            invited_by=actor.user,
            expires_at=now + timedelta(days=settings.INVITATION_TTL_DAYS),
        )
        audit_record(
            action="invitation.created",
            organization=actor.organization,
            actor=actor,
            target=invitation,
            after={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
            now=now,
        )
        link = base_url.rstrip("/") + invitation_accept_path(secret)
        org_name = actor.organization.name
        inviter = actor.user.name if actor.user else org_name
        transaction.on_commit(
            lambda: send_mail(
                subject=_("You are invited to join %(org)s") % {"org": org_name},
                message=_(
                    "%(inviter)s invited you to join %(org)s on the AI Computing Network as %(role)s.\n\n"
                    "Accept the invitation: %(link)s\n\nThe link expires in %(days)s days."
                )
                % {
                    "inviter": inviter,
                    "org": org_name,
                    "role": Role(role).label,
                    "link": link,
                    "days": settings.INVITATION_TTL_DAYS,
                },
                from_email=None,
                recipient_list=[email],
            )
        )
    return IssuedInvitation(invitation=invitation, secret=secret)


def invitation_revoke(*, actor: Actor, invitation_id: Any, now: datetime | None = None) -> Invitation:
    _require_admin(actor)
    now = now or timezone.now()
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .filter(organization=actor.organization, pk=as_uuid(invitation_id))
            .first()
        )
        if invitation is None:
            raise NotFound(_("No such invitation."))
        if invitation.accepted_at or invitation.revoked_at:
            raise Conflict(_("This invitation is no longer open."), code="invitation_closed")
        invitation.revoked_at = now
        invitation.save(update_fields=["revoked_at"])
        audit_record(
            action="invitation.revoked",
            organization=actor.organization,
            actor=actor,
            target=invitation,
            before={"email": invitation.email, "role": invitation.role},
            now=now,
        )
    return invitation


def invitation_find_open(*, secret: str, now: datetime | None = None) -> Invitation:
    """The open invitation a link's secret names, or NotFound (missing, used, revoked and expired look alike)."""
    now = now or timezone.now()
    invitation = Invitation.objects.select_related("organization").filter(token_hash=hash_secret(secret or "")).first()
    if invitation is None or invitation.status_at(now) != "pending":
        raise NotFound(_("This invitation link is invalid, expired or already used."), code="invitation_invalid")
    return invitation


def invitation_accept(
    *, secret: str, user: User, ip_address: str | None = None, now: datetime | None = None
) -> Membership:
    """Join the invitation's organization. The invitation is claimed with a conditional update: one use only."""
    now = now or timezone.now()
    invitation = invitation_find_open(secret=secret, now=now)
    if invitation.email.lower() != user.email.lower():
        raise Forbidden(
            _("This invitation was sent to %(email)s. Log in with that address to accept it.")
            % {"email": invitation.email},
            code="invitation_wrong_user",
        )
    with transaction.atomic():
        claimed = Invitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ).update(accepted_at=now, accepted_by=user)
        if claimed != 1:
            raise NotFound(_("This invitation link is invalid, expired or already used."), code="invitation_invalid")
        membership, created = Membership.objects.get_or_create(
            user=user, organization=invitation.organization, defaults={"role": invitation.role}
        )
        audit_record(
            action="membership.joined",
            organization=invitation.organization,
            user=user,
            target=membership,
            after={"user": user.email, "role": membership.role, "via": "invitation", "new": created},
            ip_address=ip_address,
            now=now,
        )
    return membership


def signup_with_invitation(
    *, secret: str, name: str, password: str, language: str = "en", ip_address: str | None = None
) -> SignUpResult:
    """A new person accepting an invitation: the account is created for the invited address."""
    invitation = invitation_find_open(secret=secret)
    with transaction.atomic():
        user = user_create(email=invitation.email, name=name, password=password, language=language)
        membership = invitation_accept(secret=secret, user=user, ip_address=ip_address)
    return SignUpResult(user=user, organization=membership.organization)


# --- API tokens -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once to the person who created it; only its hash is stored


def api_token_issue(
    *,
    organization: Organization,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    created_by: User | None = None,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> IssuedToken:
    now = now or timezone.now()
    name = (name or "").strip()
    if not name:
        raise InvalidInput(_("Give the token a name."), errors={"name": [_("This field is required.")]})
    scopes = sorted(set(scopes or []))
    if not scopes:
        raise InvalidInput(_("Choose at least one scope."), errors={"scopes": [_("Choose at least one scope.")]})
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise InvalidInput(
            _("Unknown scope: %(s)s.") % {"s": ", ".join(unknown)},
            errors={"scopes": [_("Choose from: %(all)s.") % {"all": ", ".join(Scope.values)}]},
        )
    if expires_at is not None and expires_at <= now:
        raise InvalidInput(
            _("The expiry must lie in the future."), errors={"expires_at": [_("Must lie in the future.")]}
        )
    for _attempt in range(5):
        prefix, secret = new_token_secret()
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    organization=organization,
                    name=name,
                    prefix=prefix,
                    token_hash=hash_secret(secret),
                    scopes=scopes,
                    expires_at=expires_at,
                    created_by=created_by or (actor.user if actor else None),
                )
                audit_record(
                    action="api_token.created",
                    organization=organization,
                    actor=actor,
                    user=created_by,
                    target=token,
                    after={
                        "name": name,
                        "prefix": prefix,
                        "scopes": scopes,
                        "expires_at": expires_at.isoformat() if expires_at else None,
                    },
                    now=now,
                )
            return IssuedToken(token=token, secret=secret)
        except IntegrityError:  # a prefix collision (1 in 36^8); draw again
            continue
    raise Conflict(_("Could not create a token; try again."), code="token_collision")


def api_token_create(*, actor: Actor, name: str, scopes: list[str], expires_at: datetime | None = None) -> IssuedToken:
    _require_admin(actor)
    return api_token_issue(
        organization=actor.organization, name=name, scopes=scopes, expires_at=expires_at, actor=actor
    )


def api_token_revoke(*, actor: Actor, token_id: Any, now: datetime | None = None) -> ApiToken:
    _require_admin(actor)
    now = now or timezone.now()
    with transaction.atomic():
        token = (
            ApiToken.objects.select_for_update().filter(organization=actor.organization, pk=as_uuid(token_id)).first()
        )
        if token is None:
            raise NotFound(_("No such token."))
        if token.revoked_at is None:
            token.revoked_at = now
            token.save(update_fields=["revoked_at"])
            audit_record(
                action="api_token.revoked",
                organization=actor.organization,
                actor=actor,
                target=token,
                before={"name": token.name, "prefix": token.prefix, "scopes": token.scopes},
                now=now,
            )
    return token


def api_token_touch(*, token: ApiToken, now: datetime) -> None:
    """Record use, at most once a minute per token, so busy agents do not turn every request into a write."""
    if token.last_used_at is not None and token.last_used_at > now - timedelta(minutes=1):
        return  # the loaded row says it was touched within the minute: no query at all
    ApiToken.objects.filter(pk=token.pk).exclude(last_used_at__gt=now - timedelta(minutes=1)).update(last_used_at=now)


# --- switching organizations ----------------------------------------------------------------------------------


def active_membership_for(*, user: User, organization_id: Any) -> Membership:
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization_id=as_uuid(organization_id))
        .first()
    )
    if membership is None:
        raise NotFound(_("You are not a member of that organization."))
    return membership


# --- personal preferences and credentials -------------------------------------------------------------------


def user_set_language(*, user: User, language: str) -> User:
    """Remember the language a person picked, so their next login (on any device) starts in it."""
    if language not in Language.values:
        choices = ", ".join(Language.values)
        raise InvalidInput(
            _("Unknown language “%(language)s”.") % {"language": language},
            errors={"language": [_("Choose one of: %(languages)s.") % {"languages": choices}]},
        )
    if user.preferred_language != language:
        User.objects.filter(pk=user.pk).update(preferred_language=language)
        user.preferred_language = language
    return user


def audit_password_reset(*, user: User, ip_address: str | None) -> None:
    """Show a password set through an e-mailed reset link to the admins of each of the person's organizations.

    Whoever controls the mailbox controls the account, so an unexpected reset is worth noticing.
    """
    with transaction.atomic():
        organizations = [m.organization for m in user.memberships.select_related("organization")]
        for organization in organizations or [None]:
            audit_record(action="auth.password_reset", organization=organization, user=user, ip_address=ip_address)
