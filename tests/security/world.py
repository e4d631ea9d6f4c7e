"""The tenant-isolation world: organization A of each kind (center, consumer, sponsor) with every object a URL can
name, built through the real services, and foreign organizations B of each kind with a person in every role and an
API token of every scope. A's objects carry distinctive names and amounts; B must never see them.

Built once per test module (the isolation matrix opens one transaction around it and rolls it back at the end).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from accounts.actor import Actor
from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, OrganizationKind, Role, Scope
from accounts.services import invitation_create
from billing.models import (
    BankStatement,
    PaymentProfile,
    Payout,
    PayoutBatch,
    ReconciliationException,
    ReconciliationMatch,
    Statement,
    StripePayout,
    VoucherClaim,
)
from billing.services.bank_statements import statement_upload
from billing.services.invoices import CreditRequest, credit_note_issue
from billing.services.payouts import payout_batch_create, payouts_create
from billing.services.vouchers import voucher_grant_apply
from marketplace.models import BookingStatus, OfferingStatus
from marketplace.services.agents import agent_heartbeat
from tests.billing.bank import statement_csv
from tests.billing.payments import finance_clerk
from tests.billing.reimbursement_scenario import invoiced_month, scenario, submitted
from tests.billing.settlement import OCT, at, period
from tests.billing.vouchers import program
from tests.factories import OrganizationFactory, UserFactory, member_of, token_for
from tests.marketplace.factories import BookingFactory, OfferingFactory, SiteFactory

# Kinds of foreign organization B; each is tried against every object of A.
FOREIGN_KINDS = ("center", "enterprise", "university", "sponsor")
ROLES = tuple(Role.values)
SCOPES = tuple(Scope.values)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Principal:
    """One way of acting as a foreign organization: a signed-in person with a role, or an API token's secret."""

    kind: str
    organization: Organization
    role: str | None = None
    user: Any = None
    token: str | None = None
    scopes: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.role}" if self.role else f"{self.kind}:token[{self.scopes}]"


@dataclass
class World:
    """A's objects by name (the values URL kwargs take), the markers that must never reach B, and B's principals."""

    objects: dict[str, Any] = field(default_factory=dict)
    markers: list[str] = field(default_factory=list)
    foreign: dict[str, Organization] = field(default_factory=dict)
    principals: dict[str, list[Principal]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.objects[name]


def _people(organization: Organization, prefix: str) -> dict[str, Any]:
    return {role: member_of(organization, role, email=f"{prefix}-{role}@{organization.slug}.test") for role in ROLES}


def build_world() -> World:
    """Everything A owns, and B of each kind. Distinctive names are the markers the matrix searches bodies for."""
    w = World()
    s = scenario(rate="0.50", amount="1000.00")
    center, consumer, sponsor = s.center, s.consumer, s.program.sponsor
    center.name, center.legal_name = "Amethyst Ridge Compute", "Amethyst Ridge Compute Ltd."
    center.save(update_fields=["name", "legal_name"])
    consumer.name = "Marmalade Robotics"
    consumer.legal_name = "Marmalade Robotics Ltd."
    consumer.save(update_fields=["name", "legal_name"])
    sponsor.name = "Saffron Science Foundation"
    sponsor.save(update_fields=["name"])
    invoice = invoiced_month(s)
    claim = submitted(s, invoice, reference="MARMALADE-PAYREF-7731")
    clerk = finance_clerk()

    # Operator-side objects about A: a payout of its statement, a credit note, a bank statement that matches
    # A's invoice and one line nobody claims, a Stripe payout, a sponsor claim.
    for org, account in ((center, "6222777788889999"), (consumer, "6222555566667777")):
        PaymentProfile.objects.update_or_create(
            organization=org,
            defaults={
                "payout_method": "bank",
                "bank_account_name": f"{org.name} Co.",
                "bank_name": "Bank of Amethyst",
                "bank_account_number": account,
                "bank_code": "313331000099",
            },
        )
    statement = Statement.objects.get(center=center, period__start=OCT)
    payouts_create(period="2026-10", now=NOW, actor=clerk)
    payout = Payout.objects.get(center=center)
    payout_batch_create(period="2026-10", now=NOW, actor=clerk)
    first_line = invoice.lines.order_by("id").first()
    credit_note = credit_note_issue(
        actor=clerk,
        invoice_id=invoice.pk,
        lines=[CreditRequest(line_id=first_line.pk, amount=Decimal("13.37"))],
        reason="Amethyst outage credit",
        now=NOW,
    )
    bank = statement_upload(
        actor=clerk,
        filename="amethyst.csv",
        content=statement_csv(
            ("2026-11-18", str(invoice.total), "Marmalade Robotics Ltd.", invoice.number),
            ("2026-11-19", "4242.42", "Unknown Payer Co.", "no reference"),
        ),
        now=NOW,
    )
    bank = BankStatement.objects.get(pk=bank.pk) if isinstance(bank, BankStatement) else BankStatement.objects.get()
    voucher_claim = VoucherClaim.objects.create(
        sponsor=sponsor, period=period(OCT), currency="CNY", amount=Decimal("321.09"), issued_at=NOW
    )
    stripe_payout = StripePayout.objects.create(
        id="po_amethyst_0001", amount=Decimal("777.77"), currency="CNY", status="paid", updated_at=NOW
    )

    # Market objects: a draft offering (its existence is private), a booking awaiting approval, an agent.
    draft = OfferingFactory(
        center=center,
        site=SiteFactory(center=center, name="Amethyst Hidden Hall", external_id="amethyst-hidden-hall"),
        external_id="amethyst-draft-pool",
        status=OfferingStatus.DRAFT,
    )
    pending = BookingFactory(
        offering=s.offering,
        consumer=consumer,
        status=BookingStatus.PENDING_APPROVAL,
        start=timezone.now() + timedelta(days=3),
        end=timezone.now() + timedelta(days=3, hours=4),
    )
    future = BookingFactory(
        offering=s.offering,
        consumer=consumer,
        devices=3,
        start=timezone.now() + timedelta(days=5),
        end=timezone.now() + timedelta(days=5, hours=4),
    )
    agent, _ = agent_heartbeat(
        actor=Actor(organization=center, scopes=frozenset({"agent"})),
        name="amethyst-agent-1",
        version="1.0",
        hostname="amethyst-node-01",
        devices=[],
        now=timezone.now(),
    )

    # People, invitations and tokens of every A organization.
    people = {org.pk: _people(org, "a") for org in (center, consumer, sponsor)}
    for org in (center, consumer, sponsor):
        owner = people[org.pk][Role.OWNER]
        invitation_create(
            actor=Actor.for_member(user=owner, organization=org, role=Role.OWNER),
            email=f"invitee@{org.slug}.test",
            role=Role.MEMBER,
        )
        w.objects[f"{org.kind}_secret"] = token_for(org, *SCOPES)

    # A pending grant application of A's consumer to A's sponsor's deduct-flow program.
    deduct = program(
        Actor.for_member(user=UserFactory(), organization=sponsor, role=Role.FINANCE), name="Saffron Deduct 2026"
    )
    hidden_program = program(
        Actor.for_member(user=UserFactory(), organization=sponsor, role=Role.FINANCE),
        name="Saffron Hidden Program",
        status="draft",
    )
    application = voucher_grant_apply(
        actor=Actor.for_member(user=people[consumer.pk][Role.ADMIN], organization=consumer, role=Role.ADMIN),
        program_id=deduct.pk,
        requested_amount=Decimal("555.55"),
        purpose="Marmalade protein folding",
        now=at("2026-09-02 00:00"),
    )

    o = w.objects
    o.update(
        center=center,
        consumer=consumer,
        sponsor=sponsor,
        offering=s.offering,
        draft_offering=draft,
        site=s.offering.site,
        hidden_site=draft.site,
        booking=future,
        pending_booking=pending,
        agent=agent,
        invoice=invoice,
        statement=statement,
        credit_note=credit_note,
        payout=Payout.objects.get(pk=payout.pk),
        payout_batch=PayoutBatch.objects.get(),
        clerk=clerk.user,
        bank_statement=bank,
        exception=ReconciliationException.objects.filter(bank_line__statement=bank).order_by("pk").first(),
        match=ReconciliationMatch.objects.filter(bank_line__statement=bank).order_by("pk").first(),
        stripe_payout=stripe_payout,
        voucher_claim=voucher_claim,
        program=s.program,
        deduct_program=deduct,
        hidden_program=hidden_program,
        grant=s.grant,
        application=application,
        reimbursement=claim,
        period=OCT.strftime("%Y-%m"),
        membership=Membership.objects.get(user=people[consumer.pk][Role.MEMBER], organization=consumer),
        center_membership=Membership.objects.get(user=people[center.pk][Role.MEMBER], organization=center),
        invitation=Invitation.objects.get(organization=consumer),
        token=ApiToken.objects.get(organization=consumer),
        center_token=ApiToken.objects.get(organization=center),
        audit_event=AuditEvent.objects.filter(organization=consumer).order_by("pk").first(),
        people=people,
    )
    w.markers = [
        "Marmalade",
        "MARMALADE-PAYREF-7731",
        invoice.number,
        str(statement.pk),
        credit_note.number,
        "6222777788889999",
        "6222555566667777",
        "Amethyst Hidden Hall",
        "amethyst-draft-pool",
        "amethyst-node-01",
        f"@{consumer.slug}.test",
        f"@{center.slug}.test",
        f"@{sponsor.slug}.test",
        o["token"].prefix,
        o["center_token"].prefix,
        "Amethyst outage credit",
        "4242.42",
        "321.09",
        "555.55",
        "po_amethyst_0001",
        "Saffron Hidden Program",
        str(future.pk),
        str(pending.pk),
        str(claim.pk),
        str(payout.pk),
    ]

    # Foreign organizations B, one per kind, each with its own site and offering where it is a center.
    for kind in FOREIGN_KINDS:
        org = OrganizationFactory(kind=kind, name=f"Foreign {kind.title()} {uuid.uuid4().hex[:6]}")
        if kind == OrganizationKind.CENTER:
            OfferingFactory(center=org, site=SiteFactory(center=org))
        w.foreign[kind] = org
        staff = _people(org, "b")
        principals = [Principal(kind, org, role=role, user=user) for role, user in staff.items()]
        principals.append(Principal(kind, org, token=token_for(org, *SCOPES), scopes="all"))
        principals += [Principal(kind, org, token=token_for(org, scope), scopes=scope) for scope in SCOPES]
        w.principals[kind] = principals
    return w
