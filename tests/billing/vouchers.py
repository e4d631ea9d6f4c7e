"""Helpers for voucher tests: a sponsor's program and an approved grant, made through the services."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from accounts.actor import Actor
from accounts.models import OrganizationKind, Role
from billing.models import VoucherGrant, VoucherProgram
from billing.services.vouchers import voucher_grant_apply, voucher_grant_approve, voucher_program_save
from tests.billing.settlement import at
from tests.factories import OrganizationFactory, UserFactory

GRANTED_AT = at("2026-09-01 00:00")


def sponsor_actor(sponsor=None) -> Actor:
    sponsor = sponsor or OrganizationFactory(kind=OrganizationKind.SPONSOR)
    return Actor.for_member(user=UserFactory(), organization=sponsor, role=Role.FINANCE)


def program(
    sponsor: Actor | None = None,
    *,
    rate: str = "0.50",
    budget: str = "1000000.00",
    cap: str = "100000.00",
    currency: str = "CNY",
    valid_until: datetime | None = None,
    flow: str = "deduct",
    **filters,
) -> VoucherProgram:
    sponsor = sponsor or sponsor_actor()
    return voucher_program_save(
        actor=sponsor,
        values={
            "name": filters.pop("name", "Compute voucher 2026"),
            "currency": currency,
            "rate": Decimal(rate),
            "budget": Decimal(budget),
            "cap_per_grant": Decimal(cap),
            "valid_from": at("2026-01-01 00:00"),
            "valid_until": valid_until or at("2027-12-31 00:00"),
            "eligible_kinds": ["enterprise", "university", "institute"],
            "flow": flow,
            "status": "active",
            **filters,
        },
        now=GRANTED_AT,
    )


def grant(
    consumer,
    *,
    rate: str = "0.50",
    amount: str = "1000.00",
    expires: datetime | None = None,
    of: VoucherProgram | None = None,
    **filters,
) -> VoucherGrant:
    """An active grant of `amount` for `consumer`, under `of` or a new program of its own sponsor."""
    chosen = of or program(rate=rate, cap=max(amount, "1.00", key=Decimal), **filters)
    applicant = Actor.for_member(user=UserFactory(), organization=consumer, role=Role.ADMIN)
    applied = voucher_grant_apply(
        actor=applicant, program_id=chosen.pk, requested_amount=Decimal(amount), purpose="training", now=GRANTED_AT
    )
    sponsor = Actor.for_member(user=UserFactory(), organization=chosen.sponsor, role=Role.FINANCE)
    return voucher_grant_approve(
        actor=sponsor, grant_id=applied.pk, amount=Decimal(amount), now=GRANTED_AT, expires_at=expires
    )
