"""Reads of voucher programs, grants and claims, scoped to the acting organization: a sponsor sees its own programs,
the grants under them and its claims; a consumer the programs open to it and its own grants; the platform operator
everything. Another organization's object is a 404, exactly like a missing one.

Add functions here; do not change the ones that exist (pages and the API both rely on them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import InvalidInput, NotFound
from accounts.models import OrganizationKind
from accounts.selectors import as_uuid
from billing.models import GrantStatus, VoucherClaim, VoucherClaimStatus, VoucherGrant, VoucherProgram
from billing.services.vouchers import active_programs_for


def _kind(actor: Actor) -> str:
    return actor.organization.kind


def _choice(value: str | None, choices: list[str], field: str) -> str | None:
    if value and value not in choices:
        raise InvalidInput(
            _("Unknown %(field)s “%(value)s”.") % {"field": field, "value": value},
            errors={field: [_("Choose from: %(all)s.") % {"all": ", ".join(choices)}]},
        )
    return value or None


# --- programs -------------------------------------------------------------------------------------------------


def voucher_programs_for(actor: Actor, *, now: datetime) -> QuerySet[VoucherProgram]:
    """A sponsor's own programs (any status, newest first); for a consumer, the programs it may apply to now;
    for the operator, every program; for anyone else, none."""
    kind = _kind(actor)
    if kind == OrganizationKind.SPONSOR:
        return (
            VoucherProgram.objects.filter(sponsor=actor.organization)
            .select_related("sponsor")
            .order_by("-created_at", "pk")
        )
    if actor.organization.is_consumer:
        return active_programs_for(actor.organization, now)
    if kind == OrganizationKind.OPERATOR:
        return VoucherProgram.objects.select_related("sponsor").order_by("-created_at", "pk")
    return VoucherProgram.objects.none()


def voucher_program_get(actor: Actor, program_id: Any, *, now: datetime) -> VoucherProgram:
    program = voucher_programs_for(actor, now=now).filter(pk=as_uuid(program_id)).first()
    if program is None:
        raise NotFound(_("No such voucher program."))
    return program


# --- grants ---------------------------------------------------------------------------------------------------


def voucher_grants_for(actor: Actor, *, status: str | None = None) -> QuerySet[VoucherGrant]:
    """A consumer's own grants and applications; a sponsor's, those under its programs; the operator's, all."""
    queryset = VoucherGrant.objects.select_related("program__sponsor", "consumer")
    kind = _kind(actor)
    if kind == OrganizationKind.SPONSOR:
        queryset = queryset.filter(program__sponsor=actor.organization)
    elif kind != OrganizationKind.OPERATOR:
        queryset = queryset.filter(consumer=actor.organization)
    status = _choice(status, GrantStatus.values, "status")
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-applied_at", "pk")


def voucher_grant_get(actor: Actor, grant_id: Any) -> VoucherGrant:
    grant = voucher_grants_for(actor).filter(pk=as_uuid(grant_id)).first()
    if grant is None:
        raise NotFound(_("No such voucher application."))
    return grant


# --- claims ---------------------------------------------------------------------------------------------------


def voucher_claims_for(actor: Actor, *, status: str | None = None) -> QuerySet[VoucherClaim]:
    """A sponsor's claims (what it owes the platform per period and currency); the operator's, all; newest period
    first."""
    queryset = VoucherClaim.objects.select_related("sponsor", "period")
    kind = _kind(actor)
    if kind == OrganizationKind.SPONSOR:
        queryset = queryset.filter(sponsor=actor.organization)
    elif kind != OrganizationKind.OPERATOR:
        return queryset.none()
    status = _choice(status, VoucherClaimStatus.values, "status")
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-period__start", "sponsor__name", "currency")


def voucher_claim_get(actor: Actor, claim_id: Any) -> VoucherClaim:
    claim = voucher_claims_for(actor).filter(pk=as_uuid(claim_id)).first()
    if claim is None:
        raise NotFound(_("No such voucher claim."))
    return claim
