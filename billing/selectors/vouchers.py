"""Reads of voucher programs, grants and claims, scoped to the acting organization: a sponsor sees its own programs,
the grants under them and its claims; a consumer the programs open to it and its own grants; the platform operator
everything. Another organization's object is a 404, exactly like a missing one.

Add functions here; do not change the ones that exist (pages and the API both rely on them)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet, Sum
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Forbidden, InvalidInput, NotFound
from accounts.models import OrganizationKind
from accounts.selectors import as_uuid
from billing.models import (
    GrantStatus,
    Invoice,
    ReimbursementClaim,
    ReimbursementStatus,
    VoucherClaim,
    VoucherClaimStatus,
    VoucherFlow,
    VoucherGrant,
    VoucherProgram,
    VoucherRedemption,
)
from billing.services.reimbursements import (
    REIMBURSABLE_INVOICE_STATUSES,
    ReimbursementTerms,
    invoice_in_grant_validity,
    reimbursement_terms,
)
from billing.services.vouchers import active_programs_for
from marketplace.money import format_money
from marketplace.timestamps import rfc3339


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


# --- the voucher pages: a sponsor's programs, budget burn and claims; a consumer's vouchers; reimbursements -------

ZERO = Decimal(0)


def is_sponsor(actor: Actor) -> bool:
    return actor.organization.kind == OrganizationKind.SPONSOR


def program_grants(program: VoucherProgram) -> QuerySet[VoucherGrant]:
    """The program's decided grants (approved, and since exhausted or expired), newest decision first."""
    return (
        program.grants.exclude(status__in=[GrantStatus.APPLIED, GrantStatus.REJECTED])
        .select_related("consumer")
        .order_by("-decided_at", "consumer__name", "pk")
    )


def applications_to_review(actor: Actor, *, program: VoucherProgram | None = None) -> QuerySet[VoucherGrant]:
    """Applications waiting for the acting sponsor's decision, oldest first (first come, first served)."""
    queryset = VoucherGrant.objects.filter(program__sponsor=actor.organization, status=GrantStatus.APPLIED)
    if program is not None:
        queryset = queryset.filter(program=program)
    return queryset.select_related("program", "consumer").order_by("applied_at", "pk")


def burn_chart(program: VoucherProgram) -> dict[str, Any]:
    """The program's budget burn over time: at the program's creation and at every instant something changed,
    the amount granted (approvals, less what expired grants left unused) and the cumulative amount redeemed
    (deducted on invoices, `VoucherRedemption.created_at`, and reimbursements approved by the sponsor), against
    the budget. Amounts are decimal strings in the program's currency; the last point equals the program's
    `granted` and `redeemed` counters."""
    granted: dict[datetime, Decimal] = defaultdict(Decimal)
    redeemed: dict[datetime, Decimal] = defaultdict(Decimal)
    decided = program.grants.filter(
        status__in=[GrantStatus.ACTIVE, GrantStatus.EXHAUSTED, GrantStatus.EXPIRED], decided_at__isnull=False
    ).values_list("decided_at", "amount", "status", "expires_at", "remaining")
    for decided_at, amount, status, expires_at, remaining in decided:
        granted[decided_at] += amount
        if status == GrantStatus.EXPIRED and remaining:
            # Expiry released what the grant never used back to the budget (grants_expire).
            granted[expires_at] -= remaining
    for created_at, amount in VoucherRedemption.objects.filter(grant__program=program).values_list(
        "created_at", "amount"
    ):
        redeemed[created_at] += amount
    for decided_at, amount in ReimbursementClaim.objects.filter(
        grant__program=program,
        status__in=[ReimbursementStatus.APPROVED, ReimbursementStatus.PAID],
        decided_at__isnull=False,
    ).values_list("decided_at", "amount"):
        redeemed[decided_at] += amount

    currency = program.currency
    points = []
    total_granted = total_redeemed = ZERO
    for instant in sorted({program.created_at, *granted, *redeemed}):
        total_granted += granted.get(instant, ZERO)
        total_redeemed += redeemed.get(instant, ZERO)
        points.append(
            {
                "at": rfc3339(instant),
                "granted": format_money(total_granted, currency),
                "redeemed": format_money(total_redeemed, currency),
            }
        )
    return {"currency": currency, "budget": format_money(program.budget, currency), "points": points}


# --- what a sponsor owes ----------------------------------------------------------------------------------------


def voucher_claims_with_redemptions(actor: Actor) -> QuerySet[VoucherClaim]:
    """The acting sponsor's voucher claims (one per period and currency), newest period first, each with the
    redemptions behind it."""
    redemptions = VoucherRedemption.objects.select_related("grant__consumer", "grant__program", "invoice").order_by(
        "grant__consumer__name", "invoice__number"
    )
    return (
        VoucherClaim.objects.filter(sponsor=actor.organization)
        .select_related("period")
        .prefetch_related(Prefetch("redemptions", queryset=redemptions))
        .order_by("-period__start", "currency")
    )


# --- a consumer's vouchers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenProgram:
    program: VoucherProgram
    # The organization's open application or active grant under it, which stops another application.
    current: VoucherGrant | None


def open_programs(actor: Actor, *, now: datetime) -> list[OpenProgram]:
    """Programs the acting consumer may apply to now, with its open application or active grant under each."""
    programs = list(active_programs_for(actor.organization, now))
    current = {
        grant.program_id: grant
        for grant in VoucherGrant.objects.filter(
            consumer=actor.organization,
            program__in=[program.pk for program in programs],
            status__in=[GrantStatus.APPLIED, GrantStatus.ACTIVE],
        )
    }
    return [OpenProgram(program=program, current=current.get(program.pk)) for program in programs]


def consumer_redemptions(actor: Actor) -> QuerySet[VoucherRedemption]:
    """What vouchers deducted on the acting consumer's invoices, newest period first."""
    return (
        VoucherRedemption.objects.filter(invoice__consumer=actor.organization)
        .select_related("invoice__period", "grant__program")
        .order_by("-invoice__period__start", "invoice__number")
    )


@dataclass(frozen=True)
class ReimbursableInvoice:
    invoice: Invoice
    terms: ReimbursementTerms


def reimbursable_invoices(grant: VoucherGrant) -> list[ReimbursableInvoice]:
    """The grant's consumer's invoices that it could claim under this reimbursement grant now: finalized or paid, in
    the program's currency, of a period inside the grant's validity, with no voucher deducted, not already claimed
    (a rejected claim does not count), and with something eligible."""
    program = grant.program
    if program.flow != VoucherFlow.REIMBURSE or grant.status != GrantStatus.ACTIVE:
        return []
    invoices = (
        Invoice.objects.filter(
            consumer_id=grant.consumer_id,
            status__in=REIMBURSABLE_INVOICE_STATUSES,
            currency=program.currency,
            redemption__isnull=True,
        )
        .exclude(
            reimbursements__status__in=[s for s in ReimbursementStatus.values if s != ReimbursementStatus.REJECTED]
        )
        .select_related("period")
        .order_by("-period__start")
    )
    result = []
    for invoice in invoices:
        if not invoice_in_grant_validity(grant, invoice):
            continue
        terms = reimbursement_terms(grant=grant, invoice=invoice)
        if terms.amount > 0:
            result.append(ReimbursableInvoice(invoice=invoice, terms=terms))
    return result


# --- reimbursement claims ---------------------------------------------------------------------------------------


def _reimbursements() -> QuerySet[ReimbursementClaim]:
    return ReimbursementClaim.objects.select_related("invoice__period", "consumer", "grant__program__sponsor")


def reimbursement_list(actor: Actor, *, status: str | None = None) -> QuerySet[ReimbursementClaim]:
    """Reimbursement claims the acting organization made (a consumer) or received (a sponsor), newest first."""
    if is_sponsor(actor):
        queryset = _reimbursements().filter(grant__program__sponsor=actor.organization)
    elif actor.organization.is_consumer:
        queryset = _reimbursements().filter(consumer=actor.organization)
    else:
        raise Forbidden(_("Reimbursement claims belong to sponsors and consumers."), code="wrong_organization_kind")
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-submitted_at", "pk")


def reimbursement_get(actor: Actor, claim_id: Any) -> ReimbursementClaim:
    claim = reimbursement_list(actor).filter(pk=as_uuid(claim_id)).first()
    if claim is None:
        raise NotFound(_("No such reimbursement claim."))
    return claim


def reimbursement_totals(actor: Actor) -> dict[str, dict[str, Decimal]]:
    """Per status, the amounts of the acting sponsor's (or consumer's) reimbursement claims by currency."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(dict)
    rows = reimbursement_list(actor).order_by().values("status", "currency").annotate(total=Sum("amount"))
    for row in rows:
        totals[row["status"]][row["currency"]] = row["total"]
    return dict(totals)
