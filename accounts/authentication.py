"""DRF authentication: `Authorization: Bearer <token>` for machines, the session (with CSRF) for browsers.

Both put an `Actor` in `request.auth`, so permissions and selectors never care which one was used.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions

from accounts import ratelimit
from accounts.actor import Actor, client_ip
from accounts.models import ApiToken, Membership
from accounts.secrets import hash_secret


class TokenUser(AnonymousUser):
    """The `request.user` of a token request: authenticated as a machine, never a person."""

    def __init__(self, token: ApiToken) -> None:
        self.token = token

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    def __str__(self) -> str:
        return f"token:{self.token.prefix}"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2 or len(parts[1]) > 200:
            raise exceptions.AuthenticationFailed(
                _("Malformed Authorization header: expected “Bearer <token>”."), code="invalid_token"
            )
        # An address that keeps presenting wrong tokens is refused before any lookup, valid token or not: a
        # throttle that still told a hit from a miss would not slow the guessing down (accounts.ratelimit).
        ip_address = client_ip(request)
        wait = ratelimit.token_locked_for(ip_address=ip_address)
        if wait:
            raise exceptions.Throttled(wait=wait, detail=_("Too many invalid API tokens from this address."))
        try:  # `get`, not `first()`: the hash is unique, and an ORDER BY costs every API request its compiling
            token = ApiToken.objects.select_related("organization").get(token_hash=hash_secret(parts[1]))
        except ApiToken.DoesNotExist:
            token = None
        now = timezone.now()
        if token is None:
            self._failed(ip_address)
            raise exceptions.AuthenticationFailed(_("Invalid API token."), code="invalid_token")
        if token.revoked_at is not None:
            self._failed(ip_address)
            raise exceptions.AuthenticationFailed(_("This API token has been revoked."), code="token_revoked")
        if token.expires_at is not None and token.expires_at <= now:
            self._failed(ip_address)
            raise exceptions.AuthenticationFailed(_("This API token has expired."), code="token_expired")
        from accounts.services import api_token_touch

        api_token_touch(token=token, now=now)
        return TokenUser(token), Actor.for_token(token, ip_address=ip_address)

    @staticmethod
    def _failed(ip_address: str | None) -> None:
        ratelimit.token_failed(ip_address=ip_address)

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing or wrong.
        return f'{self.keyword} realm="api"'


class OrganizationSessionAuthentication(authentication.SessionAuthentication):
    """The browser session, acting as the organization picked in the organization switcher."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, _auth = result
        membership = active_membership(request._request, user)
        if membership is None:
            return user, None
        return user, Actor.for_member(
            user=user, organization=membership.organization, role=membership.role, ip_address=client_ip(request)
        )


SESSION_ORG_KEY = "active_organization_id"


def active_membership(request, user) -> Membership | None:
    """The signed-in person's membership in the organization they act as (the first one if none was picked)."""
    cached = getattr(request, "_active_membership", False)
    if cached is not False:
        return cached
    memberships = Membership.objects.select_related("organization").filter(user=user)
    wanted = request.session.get(SESSION_ORG_KEY)
    membership = memberships.filter(organization_id=wanted).first() if wanted else None
    if membership is None:
        membership = memberships.order_by("organization__name").first()
        if membership is not None:
            request.session[SESSION_ORG_KEY] = str(membership.organization_id)
    request._active_membership = membership
    return membership
