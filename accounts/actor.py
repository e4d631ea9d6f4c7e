"""Who a request acts as: exactly one organization, through a person's membership or an API token."""

from __future__ import annotations

from dataclasses import dataclass, field

from accounts.models import ADMIN_ROLES, ApiToken, Organization, Role, Scope, User

ALL_SCOPES = frozenset(s.value for s in Scope)

# What a signed-in person may do through the API, by role. Tokens carry their scopes explicitly instead.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.OWNER: ALL_SCOPES,
    Role.ADMIN: ALL_SCOPES,
    Role.MEMBER: frozenset({Scope.INVENTORY, Scope.BOOKING, Scope.READ}),
    Role.FINANCE: frozenset({Scope.BILLING, Scope.READ}),
    Role.VIEWER: frozenset({Scope.READ}),
}


@dataclass(frozen=True)
class Actor:
    organization: Organization
    scopes: frozenset[str]
    user: User | None = None
    token: ApiToken | None = None
    role: str | None = None  # a person's role in the organization; None for an API token
    ip_address: str | None = field(default=None, compare=False)

    @classmethod
    def for_member(cls, *, user: User, organization: Organization, role: str, ip_address: str | None = None):
        return cls(
            organization=organization,
            scopes=ROLE_SCOPES[role],
            user=user,
            role=role,
            ip_address=ip_address,
        )

    @classmethod
    def for_token(cls, token: ApiToken, ip_address: str | None = None) -> Actor:
        return cls(
            organization=token.organization,
            scopes=frozenset(token.scopes),
            token=token,
            ip_address=ip_address,
        )

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER

    def allows(self, scope: str, *, read_only: bool) -> bool:
        """A scope grants its own reads and writes; `read` grants every read and no write."""
        return scope in self.scopes or (read_only and Scope.READ in self.scopes)

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.token is not None:
            return f"token:{self.token.prefix}"
        return ""


def client_ip(request) -> str | None:
    # Only the socket peer is trusted: X-Forwarded-For can be forged by any client unless a known proxy sets it.
    return request.META.get("REMOTE_ADDR") or None
