"""The world the API fuzzer runs in: the demo network (`seed_demo`: organizations of every kind, one login per
role, a market, bookings, vouchers, a closed month with invoices and statements), plus an API token of every scope
for every organization kind, so each fuzzed request can act as someone real and path parameters can name real
objects: the fuzzer then reaches the code behind the 404, not only the 404 itself.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from io import StringIO

from django.core.management import call_command
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client, override_settings
from django.urls import resolve
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS

from accounts.actor import Actor
from accounts.authentication import SESSION_ORG_KEY
from accounts.models import (
    ApiToken,
    AuditEvent,
    Invitation,
    Membership,
    Organization,
    OrganizationKind,
    Scope,
)
from accounts.permissions import check_actor
from accounts.services import api_token_issue
from billing.models import BillingPeriod, Invoice, Payout, Statement, VoucherClaim, VoucherGrant, VoucherProgram
from marketplace.models import Booking, Offering, Site
from tests.billing.settlement import chip


@dataclass(frozen=True)
class Identity:
    """Who sends a request: a label for failure reports, the headers and cookies that make it so, and the Actor
    the API will see (None: anonymous or a bad credential)."""

    label: str
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    actor: Actor | None = None

    def may_call(self, view_class, method: str) -> bool:
        """Whether the view's declared kinds, role and scope (accounts.permissions) let this caller in."""
        if self.actor is None:
            return False
        try:
            check_actor(self.actor, view_class, read_only=method.upper() in SAFE_METHODS)
        except PermissionDenied:
            return False
        return True


ANONYMOUS = Identity("anonymous")


@dataclass
class World:
    identities: list[Identity]
    # Real values for a path parameter, keyed by (the path's first segment after /api/v1/, parameter name).
    path_values: dict[tuple[str, str], list[str]]
    _allowed: dict[tuple[str, str], list[Identity]] = field(default_factory=dict)

    def identity_for(self, case) -> Identity:
        """Three times in four someone the operation's view lets in (so the fuzz reaches the code behind the
        permission check), else anyone at all (anonymous, a bad token, the wrong kind, scope or role).

        The pick depends only on the generated request, so hypothesis replays a failing example as the same
        person, and a derandomized run picks the same people again (real objects' ids are random: they count by
        their place in the pool)."""
        segment = case.operation.path.removeprefix("/api/v1/").split("/")[0]
        path = {name: self._place(segment, name, value) for name, value in sorted((case.path_parameters or {}).items())}
        key = zlib.crc32(repr((case.operation.label, path, case.query, case.headers, case.body)).encode())
        allowed = self.allowed_for(case.operation.path, case.method)
        if allowed and key % 4:
            return allowed[(key // 4) % len(allowed)]
        return self.identities[(key // 4) % len(self.identities)]

    def allowed_for(self, path: str, method: str) -> list[Identity]:
        cache_key = (path, method.upper())
        if cache_key not in self._allowed:
            view_class = resolve(re.sub(r"\{[^}]+\}", "x", path)).func.view_class
            self._allowed[cache_key] = [i for i in self.identities if i.may_call(view_class, method)]
        return self._allowed[cache_key]

    def _place(self, segment: str, name: str, value: object) -> object:
        values = self.path_values.get((segment, name), [])
        return f"real#{values.index(value)}" if value in values else value

    def real_value(self, path: str, name: str, generated: object) -> object:
        """Two times in three a real object's key (of any organization: foreign ones must 404), else the fuzz."""
        segment = path.removeprefix("/api/v1/").split("/")[0]
        values = self.path_values.get((segment, name))
        if not values:
            return generated
        pick = zlib.crc32(repr(generated).encode())
        if pick % 3 == 0:
            return generated
        return values[(pick // 3) % len(values)]


def _token_identity(label: str, organization: Organization, scopes: list[str]) -> Identity:
    issued = api_token_issue(organization=organization, name="fuzz", scopes=scopes)
    return Identity(label, headers={"Authorization": f"Bearer {issued.secret}"}, actor=Actor.for_token(issued.token))


def _token_identities() -> list[Identity]:
    identities = []
    for kind in [k.value for k in OrganizationKind]:
        organization = Organization.objects.filter(kind=kind).order_by("created_at", "pk").first()
        if organization is None:
            continue
        for scope in [s.value for s in Scope]:
            identities.append(_token_identity(f"token {kind}:{scope}", organization, [scope]))
        identities.append(_token_identity(f"token {kind}:all-scopes", organization, [s.value for s in Scope]))
    identities.append(Identity("token unknown", headers={"Authorization": "Bearer cn_not-a-real-token"}))
    return identities


def _session_identities() -> list[Identity]:
    """Every membership signed in through the browser session (with a valid CSRF pair, so writes get through)."""
    identities = []
    csrf = _get_new_csrf_string()
    for membership in Membership.objects.select_related("user", "organization").order_by("user__email", "pk"):
        client = Client()
        client.force_login(membership.user)
        session = client.session
        session[SESSION_ORG_KEY] = str(membership.organization_id)
        session.save()
        identities.append(
            Identity(
                f"session {membership.organization.kind}:{membership.role} ({membership.user.email})",
                headers={"X-CSRFToken": csrf},
                cookies={"sessionid": session.session_key, "csrftoken": csrf},
                actor=Actor.for_member(
                    user=membership.user, organization=membership.organization, role=membership.role
                ),
            )
        )
    return identities


def _keys(queryset, field_name: str = "pk") -> list[str]:
    return [str(v) for v in queryset.order_by(field_name).values_list(field_name, flat=True)]


def build_world() -> World:
    # A transactional test earlier in the run may have flushed the chip catalog the migrations seed: the demo
    # market needs it.
    chip("nvidia-h100-sxm")
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        call_command("seed_demo", verbosity=0, stdout=StringIO(), stderr=StringIO())
    identities = [ANONYMOUS, *_token_identities(), *_session_identities()]
    bookings = _keys(Booking.objects.all())
    periods = sorted({p.strftime("%Y-%m") for p in BillingPeriod.objects.values_list("start", flat=True)})
    path_values = {
        ("agent", "booking_id"): bookings,
        ("bookings", "booking_id"): bookings,
        ("center", "booking_id"): bookings,
        ("audit-events", "id"): _keys(AuditEvent.objects.all())[:20],
        ("catalog", "id"): _keys(Offering.objects.all()),
        ("invitations", "id"): _keys(Invitation.objects.all()),
        ("invoices", "id"): _keys(Invoice.objects.all()),
        ("members", "id"): _keys(Membership.objects.all()),
        ("offerings", "external_id"): _keys(Offering.objects.all(), "external_id"),
        ("sites", "external_id"): _keys(Site.objects.all(), "external_id"),
        ("payouts", "id"): _keys(Payout.objects.all()),
        ("periods", "period"): [*periods, "2026-12", "2025-01"],
        ("statements", "id"): _keys(Statement.objects.all()),
        ("tokens", "id"): _keys(ApiToken.objects.all()),
        ("voucher-claims", "id"): _keys(VoucherClaim.objects.all()),
        ("voucher-grants", "id"): _keys(VoucherGrant.objects.all()),
        ("voucher-programs", "id"): _keys(VoucherProgram.objects.all()),
    }
    return World(identities=identities, path_values={k: v for k, v in path_values.items() if v})
