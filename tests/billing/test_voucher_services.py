"""The life of voucher programs, applications, grants and claims through the services, each refusal with the
database unchanged; racing approvals that together exceed the budget; and the reads behind the voucher pages
(the budget burn chart, the programs open to a consumer, the invoices a reimbursement voucher can claim)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from accounts.models import AuditEvent, OrganizationKind, Role
from billing.models import (
    AccountRole,
    GrantStatus,
    JournalEntry,
    ProgramStatus,
    ReimbursementClaim,
    VoucherClaim,
    VoucherClaimStatus,
    VoucherGrant,
    VoucherProgram,
)
from billing.selectors.vouchers import burn_chart, open_programs, reimbursable_invoices
from billing.services.reimbursements import reimbursement_approve
from billing.services.vouchers import (
    grants_expire,
    voucher_claim_pay,
    voucher_grant_apply,
    voucher_grant_approve,
    voucher_grant_reject,
    voucher_program_save,
)
from tests.accounts.page_helpers import row
from tests.billing.reimbursement_scenario import invoiced_month, scenario, submitted
from tests.billing.settlement import NOV, OCT, at, balance, book, close, market, meter
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.concurrency import run_at_once
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

D = Decimal
NOW = at("2026-09-10 09:00")

TERMS = {
    "name": "Yangtze compute voucher",
    "description": "For SMEs training models.",
    "currency": "CNY",
    "rate": D("0.40"),
    "budget": D("50000.00"),
    "cap_per_grant": D("5000.00"),
    "valid_from": at("2026-09-01 00:00"),
    "valid_until": at("2027-09-01 00:00"),
    "eligible_kinds": ["enterprise", "university"],
    "vendors": ["Huawei"],
    "domestic_only": True,
    "regions": ["cn-east"],
    "flow": "deduct",
    "status": "active",
}


def person(organization, role=Role.ADMIN) -> Actor:
    return Actor.for_member(user=UserFactory(), organization=organization, role=role)


def enterprise(name="Blue Heron Robotics"):
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name=name)


def applied(program_, consumer, amount="1000.00"):
    return voucher_grant_apply(
        actor=person(consumer), program_id=program_.pk, requested_amount=D(amount), purpose="training", now=NOW
    )


# --- programs ------------------------------------------------------------------------------------------------


def test_a_sponsor_creates_and_changes_a_program_with_an_audit_trail():
    sponsor = sponsor_actor()

    created = voucher_program_save(actor=sponsor, values=TERMS, now=NOW)

    stored = VoucherProgram.objects.get(pk=created.pk)
    assert (stored.sponsor_id, stored.name, stored.rate, stored.budget, stored.cap_per_grant) == (
        sponsor.organization.pk,
        "Yangtze compute voucher",
        D("0.4000"),
        D("50000.0000"),
        D("5000.0000"),
    )
    assert (stored.eligible_kinds, stored.vendors, stored.domestic_only, stored.regions) == (
        ["enterprise", "university"],
        ["Huawei"],
        True,
        ["cn-east"],
    )
    assert (stored.flow, stored.status, stored.granted, stored.redeemed, stored.created_at) == (
        "deduct",
        "active",
        D("0"),
        D("0"),
        NOW,
    )

    voucher_program_save(
        actor=sponsor, values={"budget": D("60000.00"), "status": "closed"}, program_id=created.pk, now=NOW
    )

    stored = VoucherProgram.objects.get(pk=created.pk)
    assert (stored.budget, stored.status, stored.name) == (D("60000.0000"), "closed", "Yangtze compute voucher")
    actions = list(
        AuditEvent.objects.filter(organization=sponsor.organization).order_by("id").values_list("action", flat=True)
    )
    assert actions == ["voucher_program.created", "voucher_program.changed"]


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"rate": D("1.5")}, {"rate": ["The share paid lies between 0 and 1 (0.5 pays half)."]}),
        ({"rate": D("0")}, {"rate": ["The share paid lies between 0 and 1 (0.5 pays half)."]}),
        ({"budget": D("0")}, {"budget": ["The budget must be positive."]}),
        ({"cap_per_grant": D("60000")}, {"cap_per_grant": ["The cap per grant cannot exceed the budget."]}),
        ({"valid_until": at("2026-08-01 00:00")}, {"valid_until": ["The end of validity must come after its start."]}),
        (
            {"eligible_kinds": ["center"]},
            {"eligible_kinds": ["Choose who may apply: enterprises, universities and/or institutes."]},
        ),
        ({"currency": "XXX"}, {"currency": ["Unsupported currency."]}),
    ],
)
def test_program_terms_that_break_a_rule_are_refused_with_field_errors(changes, errors):
    with pytest.raises(InvalidInput) as refused:
        voucher_program_save(actor=sponsor_actor(), values={**TERMS, **changes}, now=NOW)

    assert refused.value.errors == errors
    assert VoucherProgram.objects.count() == 0


def test_once_granted_a_programs_currency_flow_and_granted_budget_are_fixed():
    sponsor = sponsor_actor()
    chosen = program(sponsor, budget="10000.00", cap="5000.00")
    grant(enterprise(), amount="4000.00", of=chosen)
    before = row(VoucherProgram.objects.get(pk=chosen.pk))

    with pytest.raises(Conflict) as refused:
        voucher_program_save(actor=sponsor, values={"currency": "USD"}, program_id=chosen.pk, now=NOW)
    assert refused.value.code == "program_in_use"
    with pytest.raises(Conflict) as refused:
        voucher_program_save(actor=sponsor, values={"flow": "reimburse"}, program_id=chosen.pk, now=NOW)
    assert refused.value.code == "program_in_use"
    with pytest.raises(Conflict) as refused:
        voucher_program_save(
            actor=sponsor, values={"budget": D("3000.00"), "cap_per_grant": D("3000.00")}, program_id=chosen.pk, now=NOW
        )
    assert (refused.value.code, refused.value.detail) == (
        "budget_in_use",
        "4000.00 CNY is already granted: the budget cannot be lower.",
    )

    assert row(VoucherProgram.objects.get(pk=chosen.pk)) == before


def test_only_a_sponsors_managers_run_programs_and_only_their_own():
    sponsor = sponsor_actor()
    chosen = program(sponsor)
    viewer = person(sponsor.organization, Role.VIEWER)
    consumer_admin = person(enterprise())
    before = row(chosen)

    with pytest.raises(Forbidden):
        voucher_program_save(actor=viewer, values={"name": "Mine now"}, program_id=chosen.pk, now=NOW)
    with pytest.raises(Forbidden):
        voucher_program_save(actor=consumer_admin, values=TERMS, now=NOW)
    with pytest.raises(NotFound):
        voucher_program_save(actor=sponsor_actor(), values={"name": "Mine now"}, program_id=chosen.pk, now=NOW)

    assert row(chosen) == before
    assert VoucherProgram.objects.count() == 1


# --- applications and grants ---------------------------------------------------------------------------------


def test_a_consumer_applies_and_the_sponsor_approves_committing_the_budget():
    chosen = program(budget="10000.00", cap="5000.00")
    consumer = enterprise()

    application = applied(chosen, consumer, "3000.00")
    assert (application.status, application.requested_amount, application.amount) == (
        GrantStatus.APPLIED,
        D("3000.00"),
        D("0"),
    )

    approved = voucher_grant_approve(
        actor=person(chosen.sponsor, Role.FINANCE),
        grant_id=application.pk,
        amount=D("2500.00"),
        expires_at=at("2027-03-01 00:00"),
        note="Welcome aboard.",
        now=NOW,
    )

    stored = VoucherGrant.objects.get(pk=approved.pk)
    assert (stored.status, stored.amount, stored.remaining, stored.valid_from, stored.expires_at) == (
        GrantStatus.ACTIVE,
        D("2500.0000"),
        D("2500.0000"),
        NOW,
        at("2027-03-01 00:00"),
    )
    assert (stored.decision_note, stored.decided_at) == ("Welcome aboard.", NOW)
    assert VoucherProgram.objects.get(pk=chosen.pk).granted == D("2500.0000")


def test_an_application_over_the_cap_twice_or_by_a_reader_is_refused():
    chosen = program(budget="10000.00", cap="5000.00")
    consumer = enterprise()

    with pytest.raises(RuleViolation) as refused:
        applied(chosen, consumer, "5000.01")
    assert refused.value.code == "over_cap"
    with pytest.raises(Forbidden):
        voucher_grant_apply(
            actor=person(consumer, Role.VIEWER), program_id=chosen.pk, requested_amount=D("10"), purpose="", now=NOW
        )
    applied(chosen, consumer, "100.00")
    with pytest.raises(Conflict) as refused:
        applied(chosen, consumer, "200.00")
    assert refused.value.code == "grant_exists"

    assert list(VoucherGrant.objects.values_list("requested_amount", flat=True)) == [D("100.0000")]


def test_a_program_not_open_to_the_consumer_is_not_found():
    draft = program(status="draft")
    universities_only = program(eligible_kinds=["university"])

    for closed in (draft, universities_only):
        with pytest.raises(NotFound):
            applied(closed, enterprise(name=f"Applicant {closed.pk}"))

    assert VoucherGrant.objects.count() == 0


def test_approval_refusals_leave_the_application_and_budget_as_they_were():
    sponsor = sponsor_actor()
    chosen = program(sponsor, budget="5000.00", cap="4000.00")
    grant(enterprise("First"), amount="4000.00", of=chosen)
    application = applied(chosen, enterprise("Second"), "2000.00")
    related = enterprise("Sister company")
    related.related_parties.add(sponsor.organization)
    before = (row(application), row(VoucherProgram.objects.get(pk=chosen.pk)))

    with pytest.raises(RuleViolation) as refused:
        voucher_grant_approve(actor=sponsor, grant_id=application.pk, amount=D("4000.01"), now=NOW)
    assert refused.value.code == "over_cap"
    with pytest.raises(RuleViolation) as refused:
        voucher_grant_approve(actor=sponsor, grant_id=application.pk, amount=D("2000.00"), now=NOW)
    assert (refused.value.code, refused.value.detail) == (
        "budget_exhausted",
        "Only 1000.00 CNY of the program's budget is left to grant.",
    )
    with pytest.raises(NotFound):
        voucher_grant_approve(actor=sponsor_actor(), grant_id=application.pk, amount=D("500.00"), now=NOW)
    with pytest.raises(Forbidden):
        voucher_grant_approve(
            actor=person(sponsor.organization, Role.MEMBER), grant_id=application.pk, amount=D("500.00"), now=NOW
        )
    with pytest.raises(InvalidInput) as refused:
        voucher_grant_reject(actor=sponsor, grant_id=application.pk, note="", now=NOW)
    assert refused.value.errors == {"note": ["This field is required."]}

    assert (row(application), row(VoucherProgram.objects.get(pk=chosen.pk))) == before


def test_a_rejected_application_can_be_made_again_and_a_decided_one_not_decided_twice():
    sponsor = sponsor_actor()
    chosen = program(sponsor)
    consumer = enterprise()
    application = applied(chosen, consumer)

    voucher_grant_reject(actor=sponsor, grant_id=application.pk, note="Tell us more about the project.", now=NOW)

    stored = VoucherGrant.objects.get(pk=application.pk)
    assert (stored.status, stored.decision_note) == (GrantStatus.REJECTED, "Tell us more about the project.")
    with pytest.raises(Conflict):
        voucher_grant_approve(actor=sponsor, grant_id=application.pk, amount=D("10.00"), now=NOW)
    again = applied(chosen, consumer, "500.00")
    assert again.status == GrantStatus.APPLIED
    assert VoucherProgram.objects.get(pk=chosen.pk).granted == D("0")


@pytest.mark.django_db(transaction=True)
def test_two_approvals_that_together_exceed_the_budget_never_both_succeed():
    sponsor = sponsor_actor()
    chosen = program(sponsor, budget="5000.00", cap="3000.00")
    first = applied(chosen, enterprise("First"), "3000.00")
    second = applied(chosen, enterprise("Second"), "3000.00")
    deciders = [person(sponsor.organization, Role.FINANCE), person(sponsor.organization, Role.OWNER)]

    results = run_at_once(
        lambda: voucher_grant_approve(actor=deciders[0], grant_id=first.pk, amount=D("3000.00"), now=NOW),
        lambda: voucher_grant_approve(actor=deciders[1], grant_id=second.pk, amount=D("3000.00"), now=NOW),
    )

    approved = [r for r in results if isinstance(r, VoucherGrant)]
    refused = [r for r in results if isinstance(r, RuleViolation)]
    assert (len(approved), len(refused)) == (1, 1), results
    assert refused[0].code == "budget_exhausted"
    statuses = sorted(VoucherGrant.objects.filter(program=chosen).values_list("status", flat=True))
    assert statuses == [GrantStatus.ACTIVE, GrantStatus.APPLIED]
    assert VoucherProgram.objects.get(pk=chosen.pk).granted == D("3000.0000")


# --- claims --------------------------------------------------------------------------------------------------


def test_the_sponsor_records_a_claims_payment_once_and_the_ledger_settles_it():
    _center, offering, consumer = market(fraction="0")
    sponsor = sponsor_actor()
    grant(consumer, amount="1000.00", of=program(sponsor))
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)  # 1000.00 → voucher 500.00
    close(OCT)
    claim = VoucherClaim.objects.get(sponsor=sponsor.organization)
    assert balance(sponsor.organization, AccountRole.VOUCHER_RECEIVABLE) == D("500.00")

    with pytest.raises(InvalidInput) as refused:
        voucher_claim_pay(actor=sponsor, claim_id=claim.pk, reference=" ", now=at("2026-11-20 00:00"))
    assert refused.value.errors == {"reference": ["This field is required."]}
    with pytest.raises(NotFound):
        voucher_claim_pay(actor=sponsor_actor(), claim_id=claim.pk, reference="X", now=at("2026-11-20 00:00"))
    with pytest.raises(Forbidden):
        voucher_claim_pay(
            actor=person(sponsor.organization, Role.VIEWER),
            claim_id=claim.pk,
            reference="X",
            now=at("2026-11-20 00:00"),
        )
    assert VoucherClaim.objects.get(pk=claim.pk).status == VoucherClaimStatus.OPEN

    voucher_claim_pay(actor=sponsor, claim_id=claim.pk, reference="BOC-2026-11-0042", now=at("2026-11-20 00:00"))
    voucher_claim_pay(actor=sponsor, claim_id=claim.pk, reference="again", now=at("2026-11-21 00:00"))

    stored = VoucherClaim.objects.get(pk=claim.pk)
    assert (stored.status, stored.payment_reference, stored.paid_at) == (
        VoucherClaimStatus.PAID,
        "BOC-2026-11-0042",
        at("2026-11-20 00:00"),
    )
    assert JournalEntry.objects.filter(key=f"voucher_claim_payment:{claim.pk}").count() == 1
    assert balance(sponsor.organization, AccountRole.VOUCHER_RECEIVABLE) == D("0")


# --- the reads behind the pages ------------------------------------------------------------------------------


def test_the_burn_chart_steps_at_every_grant_expiry_and_redemption():
    _center, offering, consumer = market(fraction="0")
    sponsor = sponsor_actor()
    chosen = program(sponsor, budget="10000.00", cap="5000.00")  # created at GRANTED_AT, 2026-09-01 00:00
    grant(consumer, amount="1000.00", of=chosen)  # approved at GRANTED_AT
    other = enterprise("Short-lived Labs")
    application = applied(chosen, other, "400.00")
    voucher_grant_approve(
        actor=sponsor,
        grant_id=application.pk,
        amount=D("400.00"),
        expires_at=at("2026-10-20 00:00"),
        now=at("2026-09-15 12:00"),
    )
    assert grants_expire(now=at("2026-10-20 00:00")) == 1  # 400.00 unused goes back to the budget
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)  # at 2026-11-02 00:00: 0.50 × 1000.00 = 500.00 redeemed

    chart = burn_chart(VoucherProgram.objects.get(pk=chosen.pk))

    assert chart == {
        "currency": "CNY",
        "budget": "10000.00",
        "points": [
            {"at": "2026-09-01T00:00:00Z", "granted": "1000.00", "redeemed": "0.00"},
            {"at": "2026-09-15T12:00:00Z", "granted": "1400.00", "redeemed": "0.00"},
            {"at": "2026-10-20T00:00:00Z", "granted": "1000.00", "redeemed": "0.00"},
            {"at": "2026-11-02T00:00:00Z", "granted": "1000.00", "redeemed": "500.00"},
        ],
    }
    stored = VoucherProgram.objects.get(pk=chosen.pk)
    assert (stored.granted, stored.redeemed) == (D("1000.0000"), D("500.0000"))


def test_the_burn_chart_counts_approved_reimbursements_and_starts_at_the_programs_creation():
    s = scenario(rate="0.50", amount="1000.00")
    fresh = program(sponsor_actor(), name="Nothing yet")
    october = submitted(s, invoiced_month(s))
    submitted(s, invoiced_month(s, NOV))  # submitted only: not drawn
    reimbursement_approve(actor=s.sponsor, claim_id=october.pk, now=at("2026-11-12 10:00"))

    assert burn_chart(VoucherProgram.objects.get(pk=s.program.pk))["points"] == [
        {"at": "2026-09-01T00:00:00Z", "granted": "1000.00", "redeemed": "0.00"},
        {"at": "2026-11-12T10:00:00Z", "granted": "1000.00", "redeemed": "580.00"},
    ]
    assert burn_chart(fresh) == {
        "currency": "CNY",
        "budget": "1000000.00",
        "points": [{"at": "2026-09-01T00:00:00Z", "granted": "0.00", "redeemed": "0.00"}],
    }
    assert ReimbursementClaim.objects.count() == 2


def test_open_programs_show_the_consumers_current_application_or_grant():
    consumer = enterprise()
    sponsor = sponsor_actor()
    applied_to = program(sponsor, name="A applied", valid_until=at("2027-01-01 00:00"))
    granted_by = program(sponsor, name="B granted", valid_until=at("2027-02-01 00:00"))
    untouched = program(sponsor, name="C untouched", valid_until=at("2027-03-01 00:00"))
    program(sponsor, name="Closed", status=ProgramStatus.CLOSED)
    program(sponsor, name="Institutes only", eligible_kinds=["institute"])
    application = applied(applied_to, consumer)
    active = grant(consumer, amount="100.00", of=granted_by)

    offers = open_programs(person(consumer), now=NOW)

    assert [(offer.program.name, offer.current) for offer in offers] == [
        ("A applied", application),
        ("B granted", active),
        ("C untouched", None),
    ]
    assert untouched.pk == offers[2].program.pk


def test_reimbursable_invoices_are_finalized_in_validity_unclaimed_and_with_something_eligible():
    s = scenario(rate="0.50", amount="1000.00")
    october = invoiced_month(s)
    november = invoiced_month(s, NOV, h100_hours=2, ascend_hours=0)  # 8 × 2 × 12.50 = 200.00 → 100.00

    options = reimbursable_invoices(VoucherGrant.objects.get(pk=s.grant.pk))
    assert [(o.invoice.pk, o.terms.eligible_amount, o.terms.amount) for o in options] == [
        (november.pk, D("200.00"), D("100.00")),
        (october.pk, D("1160.00"), D("580.00")),
    ]

    submitted(s, october)
    options = reimbursable_invoices(VoucherGrant.objects.get(pk=s.grant.pk))
    assert [o.invoice.pk for o in options] == [november.pk]
