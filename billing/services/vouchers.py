"""Vouchers (算力券): which grant applies to an invoice and how much it covers (billing rule 5), and the life of
programs, grants and reimbursement claims.

Rule 5: at most one grant applies to an invoice: among the consumer's active grants valid in the period with an
amount remaining (in the invoice's currency, deducted on the invoice), the one with the earliest expiry (ties: the
oldest grant). It covers round(rate × eligible amount), capped by its remaining amount. A line is eligible when its
offering is voucher-eligible, the program's filters admit it (accelerator vendor or domestic chips, center region),
and its center is not a related party of the consumer (linked as related, or sharing a credit code).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from accounts.models import CONSUMER_KINDS, Organization, OrganizationKind, Role, Scope
from accounts.selectors import as_uuid
from accounts.services import audit_record
from billing.models import (
    GRANT_TRANSITIONS,
    AccountRole,
    GrantStatus,
    ProgramStatus,
    VoucherClaim,
    VoucherClaimStatus,
    VoucherFlow,
    VoucherGrant,
    VoucherProgram,
)
from billing.services.ledger import credit, debit, journal_post
from billing.services.rating import BookingFacts
from marketplace.money import format_money, is_supported_currency, round_money
from marketplace.realtime import send_to_organizations

ZERO = Decimal(0)


def related_party_ids(organization: Organization | Any) -> set[uuid.UUID]:
    """Organizations related to this one: linked as related parties, or sharing its credit code (tax id)."""
    org_id = getattr(organization, "pk", organization)
    return related_parties_of([org_id])[org_id]


def related_parties_of(organization_ids: Iterable[Any]) -> dict[Any, set[uuid.UUID]]:
    """`related_party_ids` of many organizations at once (three queries, whatever their number)."""
    ids = set(organization_ids)
    related: dict[Any, set[uuid.UUID]] = {org_id: set() for org_id in ids}
    links = Organization.related_parties.through.objects.filter(from_organization_id__in=ids)
    for left, right in links.values_list("from_organization_id", "to_organization_id"):
        related[left].add(right)
    tax_ids = dict(Organization.objects.filter(pk__in=ids).exclude(tax_id="").values_list("pk", "tax_id"))
    if tax_ids:
        sharing: dict[str, set[uuid.UUID]] = {}
        for org_id, tax_id in Organization.objects.filter(tax_id__in=set(tax_ids.values())).values_list("pk", "tax_id"):
            sharing.setdefault(tax_id, set()).add(org_id)
        for org_id, tax_id in tax_ids.items():
            related[org_id] |= sharing[tax_id] - {org_id}
    return related


def program_admits(program: VoucherProgram, booking: BookingFacts, related: set[uuid.UUID]) -> bool:
    """Whether a line of this booking is eligible under the program (rule 5)."""
    if not booking.voucher_eligible or booking.center_id in related:
        return False
    if program.vendors and booking.vendor not in program.vendors:
        return False
    if program.domestic_only and not booking.domestic:
        return False
    return not (program.regions and booking.region not in program.regions)


def _chosen_grants(
    invoices: Iterable[tuple[Any, str]], start: datetime, end: datetime, *, lock: bool
) -> dict[tuple[Any, str], VoucherGrant]:
    """Rule 5's grant for each (consumer, currency) invoice of the period [start, end): among the consumer's active
    grants in that currency, deducted on the invoice, valid in the period, with an amount remaining, the one with the
    earliest expiry (ties: the oldest grant). With `lock`, every candidate is locked, in primary-key order as
    everywhere grants are locked, so the remaining amounts read hold until the transaction ends."""
    wanted = set(invoices)
    if not wanted:
        return {}
    candidates = (
        VoucherGrant.objects.filter(
            consumer_id__in={consumer for consumer, _currency in wanted},
            status=GrantStatus.ACTIVE,
            remaining__gt=0,
            program__currency__in={currency for _consumer, currency in wanted},
            program__flow=VoucherFlow.DEDUCT,
            valid_from__lt=end,
            expires_at__gt=start,
        )
        .select_related("program__sponsor")
        .order_by("pk")
    )
    if lock:
        candidates = candidates.select_for_update(of=("self",))
    chosen: dict[tuple[Any, str], VoucherGrant] = {}
    for grant in candidates:
        key = (grant.consumer_id, grant.program.currency)
        best = chosen.get(key)
        if key in wanted and (best is None or _rule_5_order(grant) < _rule_5_order(best)):
            chosen[key] = grant
    return chosen


def _rule_5_order(grant: VoucherGrant) -> tuple:
    return (grant.expires_at, grant.applied_at, str(grant.pk))


def grants_for_invoices(
    *, invoices: Iterable[tuple[Any, str]], start: datetime, end: datetime
) -> dict[tuple[Any, str], VoucherGrant]:
    """Rule 5's grant for many invoices of one period (a close), in one query, every candidate locked."""
    return _chosen_grants(invoices, start, end, lock=True)


def grant_for_invoice(
    *, consumer_id: Any, currency: str, start: datetime, end: datetime, lock: bool
) -> VoucherGrant | None:
    """The one grant rule 5 applies to an invoice of this consumer, period and currency, or None."""
    return _chosen_grants([(consumer_id, currency)], start, end, lock=lock).get((consumer_id, currency))


@dataclass(frozen=True)
class VoucherShare:
    grant: VoucherGrant
    eligible_amount: Decimal
    amount: Decimal


def voucher_share(
    *, grant: VoucherGrant, lines: Iterable[tuple[BookingFacts, Decimal]], related: set[uuid.UUID], currency: str
) -> VoucherShare | None:
    """What `grant` covers of an invoice whose lines are (booking, amount) pairs: None when nothing."""
    program = grant.program
    eligible = sum((amount for booking, amount in lines if program_admits(program, booking, related)), ZERO)
    if eligible <= 0:
        return None
    covered = min(round_money(program.rate * eligible, currency), grant.remaining)
    if covered <= 0:
        return None
    return VoucherShare(grant=grant, eligible_amount=eligible, amount=covered)


def active_programs_for(consumer: Organization, now: datetime):
    """Programs a consumer may apply to now."""
    return (
        VoucherProgram.objects.filter(
            status=ProgramStatus.ACTIVE, valid_until__gt=now, eligible_kinds__contains=[consumer.kind]
        )
        .exclude(Q(sponsor_id__in=related_party_ids(consumer)) | Q(sponsor=consumer))
        .select_related("sponsor")
        .order_by("valid_until", "name")
    )


# --- programs -------------------------------------------------------------------------------------------------


class NotSponsor(Forbidden):
    default_code = "role_required"


def _require_sponsor_manager(actor: Actor) -> None:
    if actor.organization.kind != OrganizationKind.SPONSOR:
        raise Forbidden(_("Voucher programs are run by sponsor organizations."), code="wrong_organization_kind")
    if actor.role not in MANAGER_ROLES and not (actor.token is not None and Scope.BILLING in actor.scopes):
        raise NotSponsor(_("Only the sponsor's owners, admins and finance staff manage voucher programs."))


MANAGER_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.FINANCE})
PROGRAM_FIELDS = (
    "name",
    "description",
    "currency",
    "rate",
    "budget",
    "cap_per_grant",
    "valid_from",
    "valid_until",
    "eligible_kinds",
    "vendors",
    "domestic_only",
    "regions",
    "flow",
    "status",
)


def _check_program_terms(values: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    if not is_supported_currency(values["currency"]):
        errors["currency"] = [_("Unsupported currency.")]
    if not Decimal(0) < values["rate"] <= Decimal(1):
        errors["rate"] = [_("The share paid lies between 0 and 1 (0.5 pays half).")]
    if values["budget"] <= 0:
        errors["budget"] = [_("The budget must be positive.")]
    if values["cap_per_grant"] <= 0:
        errors["cap_per_grant"] = [_("The cap per grant must be positive.")]
    elif values["budget"] > 0 and values["cap_per_grant"] > values["budget"]:
        errors["cap_per_grant"] = [_("The cap per grant cannot exceed the budget.")]
    if values["valid_until"] <= values["valid_from"]:
        errors["valid_until"] = [_("The end of validity must come after its start.")]
    kinds = set(values["eligible_kinds"])
    if not kinds or not kinds <= {k.value for k in CONSUMER_KINDS}:
        errors["eligible_kinds"] = [_("Choose who may apply: enterprises, universities and/or institutes.")]
    if values["flow"] not in VoucherFlow.values:
        errors["flow"] = [_("Unknown money flow.")]
    if values["status"] not in ProgramStatus.values:
        errors["status"] = [_("Unknown status.")]
    if errors:
        raise InvalidInput(next(iter(errors.values()))[0], errors=errors)


def voucher_program_save(
    *, actor: Actor, values: dict[str, Any], now: datetime, program_id: Any = None
) -> VoucherProgram:
    """Create a program, or change one. Once grants exist, its currency and money flow are fixed and its budget
    cannot fall below what is already granted."""
    _require_sponsor_manager(actor)
    values = {name: values[name] for name in PROGRAM_FIELDS if name in values}
    with transaction.atomic():
        if program_id is None:
            program = VoucherProgram(sponsor=actor.organization, created_at=now)
            before = None
        else:
            program = (
                VoucherProgram.objects.select_for_update()
                .filter(pk=as_uuid(program_id), sponsor=actor.organization)
                .first()
            )
            if program is None:
                raise NotFound(_("No such voucher program."))
            before = {name: _plain(getattr(program, name)) for name in PROGRAM_FIELDS}
        merged = {name: values.get(name, getattr(program, name, None)) for name in PROGRAM_FIELDS}
        merged["vendors"] = merged.get("vendors") or []
        merged["regions"] = merged.get("regions") or []
        merged["description"] = merged.get("description") or ""
        merged["status"] = merged.get("status") or ProgramStatus.DRAFT
        merged["flow"] = merged.get("flow") or VoucherFlow.DEDUCT
        _check_program_terms(merged)
        if program_id is not None and program.grants.exists():
            if merged["currency"] != program.currency or merged["flow"] != program.flow:
                raise Conflict(
                    _("Grants exist under this program: its currency and money flow can no longer change."),
                    code="program_in_use",
                )
            if merged["budget"] < program.granted:
                raise Conflict(
                    _("%(granted)s %(currency)s is already granted: the budget cannot be lower.")
                    % {"granted": format_money(program.granted, program.currency), "currency": program.currency},
                    code="budget_in_use",
                )
        for name, value in merged.items():
            setattr(program, name, value)
        program.save()
        audit_record(
            action="voucher_program.created" if before is None else "voucher_program.changed",
            organization=actor.organization,
            actor=actor,
            target=program,
            before=before,
            after={name: _plain(getattr(program, name)) for name in PROGRAM_FIELDS},
            now=now,
        )
    return program


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --- grants ---------------------------------------------------------------------------------------------------


def voucher_grant_apply(
    *, actor: Actor, program_id: Any, requested_amount: Decimal, purpose: str, now: datetime
) -> VoucherGrant:
    """A consumer applies for a voucher under an open program."""
    consumer = actor.organization
    if not consumer.is_consumer:
        raise Forbidden(
            _("Enterprises, universities and institutes apply for vouchers."), code="wrong_organization_kind"
        )
    if actor.role is not None and actor.role not in MANAGER_ROLES:
        raise Forbidden(_("Only your organization's owners, admins and finance staff apply for vouchers."))
    program = active_programs_for(consumer, now).filter(pk=as_uuid(program_id)).first()
    if program is None:
        raise NotFound(_("No such voucher program open to your organization."))
    if requested_amount is None or requested_amount <= 0:
        raise InvalidInput(
            _("Ask for a positive amount."), errors={"requested_amount": [_("Ask for a positive amount.")]}
        )
    if round_money(requested_amount, program.currency) != requested_amount:
        raise InvalidInput(
            _("Amounts are in whole %(currency)s minor units.") % {"currency": program.currency},
            errors={"requested_amount": [_("Too many decimals.")]},
        )
    if requested_amount > program.cap_per_grant:
        raise RuleViolation(
            _("This program grants at most %(cap)s %(currency)s per consumer.")
            % {"cap": format_money(program.cap_per_grant, program.currency), "currency": program.currency},
            code="over_cap",
        )
    try:
        with transaction.atomic():
            grant = VoucherGrant.objects.create(
                program=program,
                consumer=consumer,
                requested_amount=requested_amount,
                purpose=(purpose or "").strip()[:5000],
                applied_at=now,
                applied_by=actor.label,
            )
            audit_record(
                action="voucher_grant.applied",
                organization=consumer,
                actor=actor,
                target=grant,
                after={"program": program.name, "requested_amount": str(requested_amount)},
                now=now,
            )
    except IntegrityError:
        raise Conflict(
            _("Your organization already has an open application or an active voucher under this program."),
            code="grant_exists",
        ) from None
    send_to_organizations(
        [program.sponsor_id], {"event": "voucher.applied", "program": str(program.pk), "grant": str(grant.pk)}
    )
    return grant


def _sponsor_grant(actor: Actor, grant_id: Any) -> VoucherGrant:
    _require_sponsor_manager(actor)
    grant = (
        VoucherGrant.objects.select_for_update(of=("self",))
        .select_related("program", "consumer")
        .filter(pk=as_uuid(grant_id), program__sponsor=actor.organization)
        .first()
    )
    if grant is None:
        raise NotFound(_("No such voucher application."))
    return grant


def _move_grant(grant: VoucherGrant, to_status: str) -> None:
    if to_status not in GRANT_TRANSITIONS[grant.status]:
        raise Conflict(
            _("A voucher that is %(from)s cannot become %(to)s.")
            % {"from": GrantStatus(grant.status).label, "to": GrantStatus(to_status).label},
            code="invalid_transition",
        )
    grant.status = to_status


def voucher_grant_approve(
    *, actor: Actor, grant_id: Any, amount: Decimal, now: datetime, expires_at: datetime | None = None, note: str = ""
) -> VoucherGrant:
    """The sponsor approves an application for `amount` (at most the program's cap): the amount is committed from
    the program's budget under its row lock, so approvals can never grant more than the budget."""
    with transaction.atomic():
        grant = _sponsor_grant(actor, grant_id)
        program = VoucherProgram.objects.select_for_update().get(pk=grant.program_id)
        if grant.status != GrantStatus.APPLIED:
            raise Conflict(_("This application has already been decided."), code="invalid_transition")
        if amount is None or amount <= 0 or round_money(amount, program.currency) != amount:
            raise InvalidInput(
                _("Grant a positive amount in whole %(currency)s minor units.") % {"currency": program.currency},
                errors={"amount": [_("Enter a positive amount.")]},
            )
        if amount > program.cap_per_grant:
            raise RuleViolation(
                _("The program's cap per grant is %(cap)s %(currency)s.")
                % {"cap": format_money(program.cap_per_grant, program.currency), "currency": program.currency},
                code="over_cap",
            )
        left = program.budget - program.granted
        if amount > left:
            raise RuleViolation(
                _("Only %(left)s %(currency)s of the program's budget is left to grant.")
                % {"left": format_money(left, program.currency), "currency": program.currency},
                code="budget_exhausted",
            )
        related = related_party_ids(grant.consumer)
        if program.sponsor_id in related:
            raise RuleViolation(
                _("%(consumer)s is a related party of the sponsor: no voucher can be granted to it.")
                % {"consumer": grant.consumer.name},
                code="related_party",
            )
        expires = min(expires_at or program.valid_until, program.valid_until)
        if expires <= now:
            raise InvalidInput(
                _("The voucher would expire before it starts."), errors={"expires_at": [_("Too early.")]}
            )
        _move_grant(grant, GrantStatus.ACTIVE)
        grant.amount = grant.remaining = amount
        grant.valid_from = max(now, program.valid_from)
        grant.expires_at = expires
        grant.decided_at, grant.decided_by, grant.decision_note = now, actor.label, (note or "").strip()[:500]
        grant.save()
        VoucherProgram.objects.filter(pk=program.pk).update(granted=F("granted") + amount)
        audit_record(
            action="voucher_grant.approved",
            organization=actor.organization,
            actor=actor,
            target=grant,
            after={"consumer": grant.consumer.name, "amount": str(amount), "expires_at": expires.isoformat()},
            now=now,
        )
        send_to_organizations([grant.consumer_id], {"event": "voucher.decided", "grant": str(grant.pk)})
    return grant


def voucher_grant_reject(*, actor: Actor, grant_id: Any, note: str, now: datetime) -> VoucherGrant:
    with transaction.atomic():
        grant = _sponsor_grant(actor, grant_id)
        if grant.status != GrantStatus.APPLIED:
            raise Conflict(_("This application has already been decided."), code="invalid_transition")
        note = (note or "").strip()
        if not note:
            raise InvalidInput(_("Tell the applicant why."), errors={"note": [_("This field is required.")]})
        _move_grant(grant, GrantStatus.REJECTED)
        grant.decided_at, grant.decided_by, grant.decision_note = now, actor.label, note[:500]
        grant.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
        audit_record(
            action="voucher_grant.rejected",
            organization=actor.organization,
            actor=actor,
            target=grant,
            after={"consumer": grant.consumer.name, "note": grant.decision_note},
            now=now,
        )
        send_to_organizations([grant.consumer_id], {"event": "voucher.decided", "grant": str(grant.pk)})
    return grant


def grants_expire(*, now: datetime) -> int:
    """Active grants past their expiry become expired (the beat task); their remainder returns to the budget."""
    expired = 0
    due = list(VoucherGrant.objects.filter(status=GrantStatus.ACTIVE, expires_at__lte=now).values_list("pk", flat=True))
    for grant_id in due:
        with transaction.atomic():
            grant = VoucherGrant.objects.select_for_update().filter(pk=grant_id, status=GrantStatus.ACTIVE).first()
            if grant is None or grant.expires_at > now:
                continue
            VoucherProgram.objects.select_for_update().get(pk=grant.program_id)
            unused = grant.remaining
            grant.status = GrantStatus.EXPIRED
            grant.save(update_fields=["status"])
            if unused:
                # What was granted and never redeemed is released: granted falls to what was redeemed plus what
                # other grants still hold, so the sponsor can grant it again.
                VoucherProgram.objects.filter(pk=grant.program_id).update(granted=F("granted") - unused)
            expired += 1
    return expired


# --- claims ---------------------------------------------------------------------------------------------------


def voucher_claim_pay(*, actor: Actor, claim_id: Any, reference: str, now: datetime) -> VoucherClaim:
    """The sponsor records that it paid a claim (by bank transfer, with its reference): the platform's cash rises
    and the sponsor's voucher receivable is settled."""
    from billing.services.payments import posting_period  # payments builds on this module through periods

    _require_sponsor_manager(actor)
    reference = (reference or "").strip()
    if not reference:
        raise InvalidInput(
            _("Give the payment's bank reference."), errors={"reference": [_("This field is required.")]}
        )
    with transaction.atomic():
        claim = (
            VoucherClaim.objects.select_for_update()
            .filter(pk=as_uuid(claim_id), sponsor=actor.organization)
            .select_related("period")
            .first()
        )
        if claim is None:
            raise NotFound(_("No such voucher claim."))
        if claim.status == VoucherClaimStatus.PAID:
            return claim
        claim.status, claim.paid_at = VoucherClaimStatus.PAID, now
        claim.payment_reference, claim.paid_by = reference[:200], actor.label
        claim.save(update_fields=["status", "paid_at", "payment_reference", "paid_by"])
        journal_post(
            key=f"voucher_claim_payment:{claim.pk}",
            kind="voucher_claim_payment",
            memo=f"Voucher claim {claim.period.label} paid ({reference[:100]})",
            postings=[
                debit(None, AccountRole.CASH, claim.currency, claim.amount),
                credit(claim.sponsor_id, AccountRole.VOUCHER_RECEIVABLE, claim.currency, claim.amount),
            ],
            now=now,
            period=posting_period(now),  # a locked month's books never change
        )
        audit_record(
            action="voucher_claim.paid",
            organization=actor.organization,
            actor=actor,
            target=claim,
            after={"amount": str(claim.amount), "currency": claim.currency, "reference": claim.payment_reference},
            now=now,
        )
    return claim
