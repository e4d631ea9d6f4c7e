"""The voucher pages: a sponsor's programs (with the budget burn chart), applications, claims and reimbursement
reviews; a consumer's open programs, grants, deductions and reimbursement claims. Each role sees what it may do
and nothing more; another organization's object is a 404, the wrong kind of organization a 403, and a refused
request changes nothing."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import OrganizationKind, Role
from billing.models import (
    GrantStatus,
    ReimbursementClaim,
    ReimbursementStatus,
    VoucherClaim,
    VoucherClaimStatus,
    VoucherGrant,
    VoucherProgram,
)
from billing.selectors.vouchers import burn_chart
from billing.services.reimbursements import reimbursement_approve
from billing.services.vouchers import voucher_grant_apply
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.billing.reimbursement_scenario import EXE, PDF, PNG, invoiced_month, scenario, submitted
from tests.billing.settlement import NOV, OCT, at, book, close, market, meter
from tests.billing.vouchers import GRANTED_AT, grant, program, sponsor_actor
from tests.factories import OrganizationFactory, actor_for, member_of
from tests.marketplace.factories import CenterFactory

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
READERS = [Role.MEMBER, Role.VIEWER]
MANAGERS = [Role.OWNER, Role.ADMIN, Role.FINANCE]


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def sponsor_org(name="Zhejiang Compute Fund"):
    return OrganizationFactory(kind=OrganizationKind.SPONSOR, name=name)


def browser(organization, role=Role.FINANCE):
    return browser_as(member_of(organization, role), organization)


def program_form(**changes) -> dict:
    data = {
        "name": "SME compute voucher 2027",
        "description": "Half of eligible compute for SMEs.",
        "currency": "CNY",
        "rate": "0.5",
        "budget": "200000.00",
        "cap_per_grant": "20000.00",
        "valid_from": "2027-01-01T00:00",
        "valid_until": "2028-01-01T00:00",
        "eligible_kinds": ["enterprise", "institute"],
        "vendors": [],
        "regions": [],
        "flow": "deduct",
        "status": "active",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def field_errors(response, name: str) -> list[str]:
    """The error messages shown under the form field `name` (its input's id is id_<name>)."""
    page = response.content.decode()
    match = re.search(rf'id="id_{re.escape(name)}[^"]*".*?(?=<label|<legend|<button|</fieldset>)', page, flags=re.S)
    assert match, f"no field {name} on the page"
    return re.findall(r'<div class="invalid-feedback d-block">([^<]*)</div>', match.group(0))


def group_errors(response, name: str) -> list[str]:
    """The error messages of a group of checkboxes or radios (billing/vouchers/_choices.html)."""
    page = response.content.decode()
    match = re.search(rf'id="id_{re.escape(name)}_group">.*?</fieldset>', page, flags=re.S)
    assert match, f"no group {name} on the page"
    return re.findall(r'<div class="invalid-feedback d-block">([^<]*)</div>', match.group(0))


# --- sponsors: programs --------------------------------------------------------------------------------------


def test_the_programs_list_shows_each_programs_figures():
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), name="Lakeside voucher", budget="10000.00", cap="5000.00")
    grant(OrganizationFactory(kind=OrganizationKind.ENTERPRISE), amount="3000.00", of=chosen)
    VoucherProgram.objects.filter(pk=chosen.pk).update(redeemed=D("1250.50"))

    response = browser(sponsor).get("/billing/programs/")

    assert response.status_code == 200
    assert (
        "Lakeside voucher Deducted on the invoice Open for applications 0.5 10000.00 CNY 3000.00 1250.50 7000.00 "
        "2026-01-01 – 2027-12-31" in text_of(response)
    )
    assert 'id="new-program-link"' in response.content.decode()


@pytest.mark.parametrize("role", MANAGERS)
def test_a_manager_creates_a_program(role):
    sponsor = sponsor_org()

    response = browser(sponsor, role).post("/billing/programs/new/", program_form())

    created = VoucherProgram.objects.get(sponsor=sponsor)
    assert response.status_code == 302
    assert response["Location"] == f"/billing/programs/{created.pk}/"
    assert (created.name, created.rate, created.budget, created.cap_per_grant, created.flow, created.status) == (
        "SME compute voucher 2027",
        D("0.5000"),
        D("200000.0000"),
        D("20000.0000"),
        "deduct",
        "active",
    )
    assert (created.valid_from, created.valid_until, created.eligible_kinds) == (
        at("2027-01-01 00:00"),
        at("2028-01-01 00:00"),
        ["enterprise", "institute"],
    )


def test_the_services_refusals_are_shown_on_the_program_form_and_nothing_is_created():
    sponsor = sponsor_org()
    client = browser(sponsor)

    response = client.post(
        "/billing/programs/new/",
        program_form(rate="1.5", cap_per_grant="300000", valid_until="2026-12-01T00:00", eligible_kinds=[]),
    )

    assert response.status_code == 400
    # The form's own check comes first: the service is not asked while a field is missing.
    assert group_errors(response, "eligible_kinds") == ["This field is required."]
    assert field_errors(response, "rate") == []
    assert VoucherProgram.objects.count() == 0

    response = client.post(
        "/billing/programs/new/", program_form(rate="1.5", cap_per_grant="300000", valid_until="2026-12-01T00:00")
    )

    assert response.status_code == 400
    assert field_errors(response, "rate") == ["The share paid lies between 0 and 1 (0.5 pays half)."]
    assert VoucherProgram.objects.count() == 0


def test_refusals_of_the_service_land_on_their_fields():
    sponsor = sponsor_org()

    response = browser(sponsor).post(
        "/billing/programs/new/", program_form(cap_per_grant="300000", valid_until="2026-12-01T00:00")
    )

    assert response.status_code == 400
    assert field_errors(response, "cap_per_grant") == ["The cap per grant cannot exceed the budget."]
    assert field_errors(response, "valid_until") == ["The end of validity must come after its start."]
    assert VoucherProgram.objects.count() == 0


def test_a_budget_below_what_is_granted_is_refused_on_the_budget_field():
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), budget="10000.00", cap="5000.00")
    grant(OrganizationFactory(kind=OrganizationKind.ENTERPRISE), amount="4000.00", of=chosen)
    before = row(VoucherProgram.objects.get(pk=chosen.pk))

    response = browser(sponsor).post(
        f"/billing/programs/{chosen.pk}/edit/",
        program_form(budget="3000.00", cap_per_grant="3000.00", valid_from="2026-01-01T00:00"),
    )

    assert response.status_code == 409
    assert field_errors(response, "budget") == ["4000.00 CNY is already granted: the budget cannot be lower."]
    assert row(VoucherProgram.objects.get(pk=chosen.pk)) == before


def test_the_edit_form_shows_the_programs_terms_and_saves_changes():
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), name="Old name", budget="10000.00", cap="5000.00")
    client = browser(sponsor, Role.ADMIN)

    page = client.get(f"/billing/programs/{chosen.pk}/edit/").content.decode()
    assert 'value="Old name"' in page and 'value="0.5"' in page and 'value="10000.00"' in page

    response = client.post(
        f"/billing/programs/{chosen.pk}/edit/",
        program_form(name="New name", budget="12000.00", cap_per_grant="5000.00", valid_from="2026-01-01T00:00"),
    )

    assert response.status_code == 302
    stored = VoucherProgram.objects.get(pk=chosen.pk)
    assert (stored.name, stored.budget) == ("New name", D("12000.0000"))


def test_the_program_page_shows_its_figures_the_burn_chart_data_and_its_grants():
    _center, offering, consumer = market(fraction="0")
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), name="Lakeside voucher", budget="10000.00", cap="5000.00")
    grant(consumer, amount="1000.00", of=chosen)
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)  # 0.50 × 1000.00 = 500.00 redeemed at 2026-11-02 00:00

    response = browser(sponsor, Role.VIEWER).get(f"/billing/programs/{chosen.pk}/")

    assert response.status_code == 200
    text = text_of(response)
    assert (
        "Total budget 10000.00 CNY Granted 1000.00 CNY Redeemed 500.00 CNY Left to grant 9000.00 CNY Share paid 0.5"
        in text
    )
    assert "Blue Heron Robotics 1000.00 500.00 2027-12-31 00:00 Active" in text
    data = json.loads(
        re.search(
            r'<script id="burn-data" type="application/json">(.*?)</script>', response.content.decode(), re.S
        ).group(1)
    )
    assert data == {
        "currency": "CNY",
        "budget": "10000.00",
        "points": [
            {"at": "2026-09-01T00:00:00Z", "granted": "1000.00", "redeemed": "0.00"},
            {"at": "2026-11-02T00:00:00Z", "granted": "1000.00", "redeemed": "500.00"},
        ],
    }
    assert data == burn_chart(VoucherProgram.objects.get(pk=chosen.pk))
    page = response.content.decode()
    assert 'data-chart="budget"' in page and "js/budget.js" in page
    assert "<script>" not in page  # no inline script: the data is a json_script block


@pytest.mark.parametrize("role", READERS)
def test_readers_see_programs_without_forms_and_are_refused_changes(role):
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor))
    before = row(chosen)
    client = browser(sponsor, role)

    listing = client.get("/billing/programs/").content.decode()
    detail = client.get(f"/billing/programs/{chosen.pk}/").content.decode()

    assert "new-program-link" not in listing and "edit-program-link" not in detail
    assert client.get("/billing/programs/new/").status_code == 403
    assert client.get(f"/billing/programs/{chosen.pk}/edit/").status_code == 403
    assert client.post("/billing/programs/new/", program_form()).status_code == 403
    assert client.post(f"/billing/programs/{chosen.pk}/edit/", program_form(name="Renamed")).status_code == 403
    assert row(chosen) == before
    assert VoucherProgram.objects.count() == 1


def test_another_sponsors_program_is_not_found():
    theirs = program(sponsor_actor(sponsor_org("Other fund")))
    before = row(theirs)
    client = browser(sponsor_org(), Role.OWNER)

    assert client.get(f"/billing/programs/{theirs.pk}/").status_code == 404
    assert client.get(f"/billing/programs/{theirs.pk}/edit/").status_code == 404
    assert client.post(f"/billing/programs/{theirs.pk}/edit/", program_form(name="Mine")).status_code == 404
    assert row(theirs) == before


@pytest.mark.parametrize(
    "url",
    [
        "/billing/programs/",
        "/billing/programs/new/",
        "/billing/applications/",
        "/billing/claims/",
        "/billing/reimbursements/",
    ],
)
def test_sponsor_pages_are_forbidden_to_other_kinds(url):
    for kind in (OrganizationKind.ENTERPRISE, OrganizationKind.CENTER, OrganizationKind.OPERATOR):
        organization = OrganizationFactory(kind=kind)
        assert browser(organization, Role.OWNER).get(url).status_code == 403


def test_consumer_pages_are_forbidden_to_other_kinds():
    for kind in (OrganizationKind.SPONSOR, OrganizationKind.CENTER, OrganizationKind.OPERATOR):
        organization = OrganizationFactory(kind=kind)
        assert browser(organization, Role.OWNER).get("/billing/vouchers/").status_code == 403


# --- sponsors: applications ----------------------------------------------------------------------------------


def application(chosen, *, amount="3000.00", name="Blue Heron Robotics"):
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name=name)
    return voucher_grant_apply(
        actor=actor_for(member_of(consumer, Role.ADMIN), consumer),
        program_id=chosen.pk,
        requested_amount=D(amount),
        purpose="Fine-tuning a robot arm controller.",
        now=GRANTED_AT,
    )


def test_the_sponsor_approves_an_application_for_the_amount_requested_by_default():
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), budget="10000.00", cap="5000.00")
    applied = application(chosen)
    client = browser(sponsor)

    page = client.get("/billing/applications/")
    assert "Blue Heron Robotics · Enterprise" in text_of(page)
    assert "Fine-tuning a robot arm controller." in text_of(page)
    assert f'name="approve-{applied.pk}-amount" value="3000.00"' in page.content.decode()

    response = client.post(
        f"/billing/applications/{applied.pk}/approve/",
        {f"approve-{applied.pk}-amount": "3000.00", f"approve-{applied.pk}-expires_at": "2027-06-01T00:00"},
    )

    assert response.status_code == 302
    stored = VoucherGrant.objects.get(pk=applied.pk)
    assert (stored.status, stored.amount, stored.remaining, stored.expires_at, stored.valid_from) == (
        GrantStatus.ACTIVE,
        D("3000.0000"),
        D("3000.0000"),
        at("2027-06-01 00:00"),
        NOW,
    )
    assert VoucherProgram.objects.get(pk=chosen.pk).granted == D("3000.0000")
    followed = client.get("/billing/applications/")
    assert "Blue Heron Robotics was granted 3000.00 CNY" in text_of(followed)
    assert "No application waits for a decision." in text_of(followed)


def test_over_cap_and_exhausted_budget_refusals_are_shown_and_nothing_changes():
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), budget="5000.00", cap="4000.00")
    grant(OrganizationFactory(kind=OrganizationKind.ENTERPRISE), amount="4000.00", of=chosen)
    applied = application(chosen, amount="2000.00")
    before = (row(applied), row(VoucherProgram.objects.get(pk=chosen.pk)))
    client = browser(sponsor)

    over_cap = client.post(f"/billing/applications/{applied.pk}/approve/", {f"approve-{applied.pk}-amount": "4500"})
    exhausted = client.post(f"/billing/applications/{applied.pk}/approve/", {f"approve-{applied.pk}-amount": "2000"})

    assert over_cap.status_code == 422
    assert "The program's cap per grant is 4000.00 CNY." in text_of(over_cap)
    assert exhausted.status_code == 422
    assert "Only 1000.00 CNY of the program's budget is left to grant." in text_of(exhausted)
    assert (row(applied), row(VoucherProgram.objects.get(pk=chosen.pk))) == before


def test_a_related_party_refusal_is_shown():
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), budget="5000.00", cap="4000.00")
    applied = application(chosen, amount="1000.00")
    applied.consumer.related_parties.add(sponsor)

    response = browser(sponsor).post(
        f"/billing/applications/{applied.pk}/approve/", {f"approve-{applied.pk}-amount": "1000"}
    )

    assert response.status_code == 422
    assert "Blue Heron Robotics is a related party of the sponsor: no voucher can be granted to it." in text_of(
        response
    )
    assert VoucherGrant.objects.get(pk=applied.pk).status == GrantStatus.APPLIED


def test_a_rejection_needs_a_note_and_is_shown_to_the_applicant():
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor), name="Lakeside voucher")
    applied = application(chosen)
    client = browser(sponsor)

    empty = client.post(f"/billing/applications/{applied.pk}/reject/", {f"reject-{applied.pk}-note": ""})
    assert empty.status_code == 400
    assert field_errors(empty, f"reject-{applied.pk}-note") == ["This field is required."]
    assert VoucherGrant.objects.get(pk=applied.pk).status == GrantStatus.APPLIED

    response = client.post(
        f"/billing/applications/{applied.pk}/reject/", {f"reject-{applied.pk}-note": "Budget reserved for startups."}
    )

    assert response.status_code == 302
    stored = VoucherGrant.objects.get(pk=applied.pk)
    assert (stored.status, stored.decision_note) == (GrantStatus.REJECTED, "Budget reserved for startups.")
    consumer_page = browser(applied.consumer, Role.VIEWER).get("/billing/vouchers/")
    assert "Lakeside voucher" in text_of(consumer_page)
    assert "Rejected 3000.00 — — — Budget reserved for startups." in text_of(consumer_page)


@pytest.mark.parametrize("role", READERS)
def test_readers_see_applications_without_forms_and_cannot_decide(role):
    sponsor = sponsor_org()
    chosen = program(sponsor_actor(sponsor))
    applied = application(chosen)
    before = row(applied)
    client = browser(sponsor, role)

    page = client.get("/billing/applications/")

    assert "Blue Heron Robotics" in text_of(page)
    assert 'data-testid="approve-form"' not in page.content.decode()
    assert (
        client.post(f"/billing/applications/{applied.pk}/approve/", {f"approve-{applied.pk}-amount": "10"}).status_code
        == 403
    )
    assert (
        client.post(f"/billing/applications/{applied.pk}/reject/", {f"reject-{applied.pk}-note": "No"}).status_code
        == 403
    )
    assert row(applied) == before


def test_another_sponsors_application_is_not_found():
    applied = application(program(sponsor_actor(sponsor_org("Other fund"))))
    client = browser(sponsor_org(), Role.OWNER)

    assert (
        client.post(f"/billing/applications/{applied.pk}/approve/", {f"approve-{applied.pk}-amount": "10"}).status_code
        == 404
    )
    assert (
        client.post(f"/billing/applications/{applied.pk}/reject/", {f"reject-{applied.pk}-note": "x"}).status_code
        == 404
    )
    assert VoucherGrant.objects.get(pk=applied.pk).status == GrantStatus.APPLIED


# --- sponsors: claims ----------------------------------------------------------------------------------------


def claimed_month(sponsor):
    """Two consumers' October invoices with 500.00 and 250.00 deducted under the sponsor's program."""
    _center, offering, consumer = market(fraction="0")
    chosen = program(sponsor_actor(sponsor), name="Lakeside voucher")
    grant(consumer, amount="1000.00", of=chosen)
    other = OrganizationFactory(kind=OrganizationKind.UNIVERSITY, name="West Lake University")
    grant(other, amount="1000.00", of=chosen)
    first = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(first, "2026-10-05 00:00", "2026-10-05 10:00", 8)  # 1000.00 → 500.00
    second = book(offering, other, "2026-10-06 00:00", "2026-10-06 05:00", 8)
    meter(second, "2026-10-06 00:00", "2026-10-06 05:00", 8)  # 500.00 → 250.00
    close(OCT)
    from billing.services.invoices import invoice_finalize

    for invoice in consumer.invoices.all() | other.invoices.all():
        invoice_finalize(invoice_id=invoice.pk, now=at("2026-11-05 00:00"))
    return VoucherClaim.objects.get(sponsor=sponsor)


def test_claims_show_what_the_sponsor_owes_per_period_with_the_redemptions_behind_it():
    sponsor = sponsor_org()
    claim = claimed_month(sponsor)
    numbers = dict(claim.redemptions.values_list("grant__consumer__name", "invoice__number"))

    response = browser(sponsor, Role.VIEWER).get("/billing/claims/")

    assert response.status_code == 200
    text = text_of(response)
    assert "2026-10 · CNY 750.00 CNY Open" in text
    assert (
        f"Blue Heron Robotics {numbers['Blue Heron Robotics']} Lakeside voucher 1000.00 500.00 "
        f"West Lake University {numbers['West Lake University']} Lakeside voucher 500.00 250.00"
    ) in text
    assert 'data-testid="pay-form"' not in response.content.decode()


def test_the_sponsor_records_a_claims_payment_with_its_bank_reference():
    sponsor = sponsor_org()
    claim = claimed_month(sponsor)
    client = browser(sponsor, Role.FINANCE)

    empty = client.post(f"/billing/claims/{claim.pk}/pay/", {f"pay-{claim.pk}-reference": " "})
    assert empty.status_code == 400
    assert field_errors(empty, f"pay-{claim.pk}-reference") == ["This field is required."]
    assert VoucherClaim.objects.get(pk=claim.pk).status == VoucherClaimStatus.OPEN

    response = client.post(f"/billing/claims/{claim.pk}/pay/", {f"pay-{claim.pk}-reference": "BOC-2026-11-0042"})

    assert response.status_code == 302
    stored = VoucherClaim.objects.get(pk=claim.pk)
    assert (stored.status, stored.payment_reference, stored.paid_at) == (
        VoucherClaimStatus.PAID,
        "BOC-2026-11-0042",
        NOW,
    )
    assert "Paid 2026-11-10 09:00 UTC · reference BOC-2026-11-0042" in text_of(client.get("/billing/claims/"))


def test_readers_and_other_sponsors_cannot_pay_a_claim():
    sponsor = sponsor_org()
    claim = claimed_month(sponsor)
    before = row(claim)

    assert (
        browser(sponsor, Role.VIEWER)
        .post(f"/billing/claims/{claim.pk}/pay/", {f"pay-{claim.pk}-reference": "X"})
        .status_code
        == 403
    )
    assert (
        browser(sponsor, Role.MEMBER)
        .post(f"/billing/claims/{claim.pk}/pay/", {f"pay-{claim.pk}-reference": "X"})
        .status_code
        == 403
    )
    assert (
        browser(sponsor_org("Other fund"), Role.OWNER)
        .post(f"/billing/claims/{claim.pk}/pay/", {f"pay-{claim.pk}-reference": "X"})
        .status_code
        == 404
    )
    assert row(claim) == before


# --- consumers -----------------------------------------------------------------------------------------------


def test_a_consumer_sees_open_programs_and_applies():
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")
    chosen = program(sponsor_actor(sponsor_org()), name="Lakeside voucher", cap="5000.00", vendors=["Huawei"])
    client = browser(consumer, Role.FINANCE)

    page = client.get("/billing/vouchers/")
    assert "Lakeside voucher Zhejiang Compute Fund · Deducted on the invoice" in text_of(page)
    assert "Pays a share of 0.5 of eligible compute Up to 5000.00 CNY per organization" in text_of(page)
    assert "Only for Huawei" in text_of(page)

    response = client.post(
        f"/billing/vouchers/programs/{chosen.pk}/apply/",
        {f"apply-{chosen.pk}-requested_amount": "2500", f"apply-{chosen.pk}-purpose": "LLM fine-tuning"},
    )

    assert response.status_code == 302
    stored = VoucherGrant.objects.get(consumer=consumer)
    assert (stored.status, stored.requested_amount, stored.purpose, stored.program_id) == (
        GrantStatus.APPLIED,
        D("2500.0000"),
        "LLM fine-tuning",
        chosen.pk,
    )
    followed = client.get("/billing/vouchers/")
    assert "You applied on 2026-11-10: the sponsor has not decided yet." in text_of(followed)
    assert "Lakeside voucher Zhejiang Compute Fund · Deducted on the invoice Applied 2500.00 — — —" in text_of(followed)


def test_an_application_over_the_cap_is_refused_on_the_amount_field():
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    chosen = program(sponsor_actor(sponsor_org()), cap="5000.00")

    response = browser(consumer, Role.ADMIN).post(
        f"/billing/vouchers/programs/{chosen.pk}/apply/", {f"apply-{chosen.pk}-requested_amount": "5000.01"}
    )

    assert response.status_code == 422
    assert "This program grants at most 5000.00 CNY per consumer." in text_of(response)
    assert VoucherGrant.objects.count() == 0


@pytest.mark.parametrize("role", READERS)
def test_readers_see_vouchers_without_forms_and_cannot_apply(role):
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    chosen = program(sponsor_actor(sponsor_org()), name="Lakeside voucher")
    client = browser(consumer, role)

    page = client.get("/billing/vouchers/")

    assert "Lakeside voucher" in text_of(page)
    assert 'data-testid="apply-form"' not in page.content.decode()
    response = client.post(
        f"/billing/vouchers/programs/{chosen.pk}/apply/", {f"apply-{chosen.pk}-requested_amount": "100"}
    )
    assert response.status_code == 403
    assert VoucherGrant.objects.count() == 0


def test_a_program_not_open_to_the_consumer_cannot_be_applied_to():
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    closed = program(sponsor_actor(sponsor_org()), status="closed")

    response = browser(consumer, Role.OWNER).post(
        f"/billing/vouchers/programs/{closed.pk}/apply/", {f"apply-{closed.pk}-requested_amount": "100"}
    )

    assert response.status_code == 404
    assert VoucherGrant.objects.count() == 0


def test_a_consumer_sees_its_grants_and_what_each_invoice_used():
    _center, offering, consumer = market(fraction="0")
    chosen = program(sponsor_actor(sponsor_org()), name="Lakeside voucher")
    grant(consumer, amount="1000.00", of=chosen)
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    close(OCT)
    from billing.services.invoices import invoice_finalize

    invoice = invoice_finalize(invoice_id=consumer.invoices.get().pk, now=at("2026-11-05 00:00"))

    response = browser(consumer, Role.VIEWER).get("/billing/vouchers/")

    text = text_of(response)
    assert (
        "Lakeside voucher Zhejiang Compute Fund · Deducted on the invoice Active 1000.00 1000.00 500.00 CNY "
        "2027-12-31 00:00" in text
    )
    assert f"{invoice.number} 2026-10 Lakeside voucher 1000.00 500.00 CNY" in text
    assert f'href="/billing/invoices/{invoice.pk}/"' in response.content.decode()
    assert "You hold an active voucher under this program." in text


# --- reimbursements ------------------------------------------------------------------------------------------


def claim_form(invoice, *, name="receipt.pdf", content=PDF, reference="ICBC-20261105-0001") -> dict:
    return {
        "invoice": str(invoice.pk),
        "payment_reference": reference,
        "payment_proof": SimpleUploadedFile(name, content),
    }


def test_a_consumer_claims_a_reimbursement_with_a_payment_proof(media):
    s = scenario()
    invoice = invoiced_month(s)
    client = browser(s.consumer, Role.FINANCE)

    vouchers = client.get("/billing/vouchers/").content.decode()
    assert f'href="/billing/vouchers/{s.grant.pk}/reimburse/"' in vouchers
    form = client.get(f"/billing/vouchers/{s.grant.pk}/reimburse/")
    assert f"{invoice.number} · 2026-10 · claims 580.00 CNY of 1160.00 eligible" in text_of(form)

    response = client.post(f"/billing/vouchers/{s.grant.pk}/reimburse/", claim_form(invoice))

    claim = ReimbursementClaim.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/billing/reimbursements/{claim.pk}/"
    assert (claim.amount, claim.eligible_amount, claim.payment_reference, claim.status) == (
        D("580.00"),
        D("1160.00"),
        "ICBC-20261105-0001",
        ReimbursementStatus.SUBMITTED,
    )
    detail = client.get(response["Location"])
    assert "Claimed 580.00 CNY" in text_of(detail)
    assert f'href="/billing/invoices/{invoice.pk}/" id="invoice-link"' in detail.content.decode()
    assert 'data-testid="approve-form"' not in detail.content.decode()


def test_a_renamed_executable_is_refused_with_a_clear_message_and_nothing_is_stored(media):
    s = scenario()
    invoice = invoiced_month(s)

    response = browser(s.consumer, Role.ADMIN).post(
        f"/billing/vouchers/{s.grant.pk}/reimburse/", claim_form(invoice, name="receipt.pdf", content=EXE)
    )

    assert response.status_code == 400
    assert field_errors(response, "payment_proof") == [
        "The file named “receipt.pdf” is not a PDF, PNG or JPEG document: its content says otherwise, whatever its "
        "name. Upload the bank&#x27;s receipt as a PDF or a picture."
    ]
    assert ReimbursementClaim.objects.count() == 0
    assert [path for path in media.rglob("*") if path.is_file()] == []


@pytest.mark.parametrize("role", READERS)
def test_readers_cannot_claim_a_reimbursement(media, role):
    s = scenario()
    invoice = invoiced_month(s)
    client = browser(s.consumer, role)

    assert f"/billing/vouchers/{s.grant.pk}/reimburse/" not in client.get("/billing/vouchers/").content.decode()
    assert client.get(f"/billing/vouchers/{s.grant.pk}/reimburse/").status_code == 403
    assert client.post(f"/billing/vouchers/{s.grant.pk}/reimburse/", claim_form(invoice)).status_code == 403
    assert ReimbursementClaim.objects.count() == 0


def test_another_consumers_voucher_is_not_found(media):
    s = scenario()
    invoice = invoiced_month(s)
    stranger = browser(OrganizationFactory(kind=OrganizationKind.ENTERPRISE), Role.OWNER)

    assert stranger.get(f"/billing/vouchers/{s.grant.pk}/reimburse/").status_code == 404
    assert stranger.post(f"/billing/vouchers/{s.grant.pk}/reimburse/", claim_form(invoice)).status_code == 404
    assert ReimbursementClaim.objects.count() == 0


def test_the_sponsor_reviews_approves_and_records_payment_of_a_reimbursement(media):
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    client = browser(s.program.sponsor, Role.FINANCE)

    listing = client.get("/billing/reimbursements/")
    assert (
        f"Blue Heron Robotics Compute voucher 2026 {claim.invoice.number} 2026-10 1160.00 580.00 CNY Submitted"
        in text_of(listing)
    )
    review = client.get(f"/billing/reimbursements/{claim.pk}/")
    assert 'data-testid="approve-form"' in review.content.decode()
    assert "Eligible under the program 1160.00 CNY Share paid 0.5 Claimed 580.00 CNY" in text_of(review)

    approved = client.post(f"/billing/reimbursements/{claim.pk}/approve/", {"approve-note": "Checked."})
    assert approved.status_code == 302
    assert ReimbursementClaim.objects.get(pk=claim.pk).status == ReimbursementStatus.APPROVED
    assert VoucherGrant.objects.get(pk=s.grant.pk).remaining == D("420.0000")

    empty = client.post(f"/billing/reimbursements/{claim.pk}/pay/", {"pay-reference": ""})
    assert empty.status_code == 400
    assert field_errors(empty, "pay-reference") == ["This field is required."]

    paid = client.post(f"/billing/reimbursements/{claim.pk}/pay/", {"pay-reference": "BOC-99"})
    assert paid.status_code == 302
    stored = ReimbursementClaim.objects.get(pk=claim.pk)
    assert (stored.status, stored.sponsor_payment_reference, stored.paid_at) == (
        ReimbursementStatus.PAID,
        "BOC-99",
        NOW,
    )
    consumer_view = browser(s.consumer, Role.VIEWER).get(f"/billing/reimbursements/{claim.pk}/")
    assert "Paid (UTC) 2026-11-10 09:00 · BOC-99" in text_of(consumer_view)


def test_the_sponsor_rejects_a_reimbursement_with_a_note(media):
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    client = browser(s.program.sponsor, Role.OWNER)

    empty = client.post(f"/billing/reimbursements/{claim.pk}/reject/", {"reject-note": ""})
    assert empty.status_code == 400
    assert field_errors(empty, "reject-note") == ["This field is required."]
    assert ReimbursementClaim.objects.get(pk=claim.pk).status == ReimbursementStatus.SUBMITTED

    response = client.post(
        f"/billing/reimbursements/{claim.pk}/reject/", {"reject-note": "The proof is for another invoice."}
    )

    assert response.status_code == 302
    assert ReimbursementClaim.objects.get(pk=claim.pk).status == ReimbursementStatus.REJECTED
    consumer_page = browser(s.consumer, Role.VIEWER).get("/billing/vouchers/")
    assert "Rejected The proof is for another invoice." in text_of(consumer_page)


def test_an_approval_refusal_is_shown_on_the_review_page(media):
    s = scenario(amount="700.00")
    october = submitted(s, invoiced_month(s))
    november = submitted(s, invoiced_month(s, NOV))
    reimbursement_approve(actor=s.sponsor, claim_id=october.pk, now=NOW)
    client = browser(s.program.sponsor, Role.FINANCE)

    response = client.post(f"/billing/reimbursements/{november.pk}/approve/", {"approve-note": ""})

    assert response.status_code == 422
    assert "Only 120.00 CNY is left on this voucher; the claim asks for 580.00 CNY." in text_of(response)
    assert ReimbursementClaim.objects.get(pk=november.pk).status == ReimbursementStatus.SUBMITTED


@pytest.mark.parametrize("role", READERS)
def test_sponsor_readers_review_without_forms_and_cannot_decide(media, role):
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    before = row(claim)
    client = browser(s.program.sponsor, role)

    page = client.get(f"/billing/reimbursements/{claim.pk}/")

    assert page.status_code == 200
    assert 'data-testid="approve-form"' not in page.content.decode()
    for action, data in (("approve", {}), ("reject", {"reject-note": "No"}), ("pay", {"pay-reference": "X"})):
        assert client.post(f"/billing/reimbursements/{claim.pk}/{action}/", data).status_code == 403
    assert row(claim) == before


def test_a_consumer_cannot_decide_its_own_claim(media):
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    before = row(claim)
    client = browser(s.consumer, Role.OWNER)

    assert client.post(f"/billing/reimbursements/{claim.pk}/approve/", {}).status_code == 403
    assert row(claim) == before


def test_other_organizations_get_404_for_a_reimbursement_and_its_files(media):
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    before = row(claim)
    other_sponsor = browser(sponsor_org("Other fund"), Role.OWNER)
    other_consumer = browser(OrganizationFactory(kind=OrganizationKind.ENTERPRISE), Role.OWNER)

    for client in (other_sponsor, other_consumer):
        for suffix in ("", "proof/", "evidence/"):
            assert client.get(f"/billing/reimbursements/{claim.pk}/{suffix}").status_code == 404
    assert other_sponsor.post(f"/billing/reimbursements/{claim.pk}/approve/", {}).status_code == 404
    center = browser(CenterFactory(), Role.OWNER)
    assert center.get(f"/billing/reimbursements/{claim.pk}/").status_code == 403
    assert row(claim) == before


def test_both_sides_download_the_proof_and_the_evidence_bundle(media):
    s = scenario()
    invoice = invoiced_month(s)
    claim = submitted(s, invoice, upload=SimpleUploadedFile("scan.png", PNG))

    for organization in (s.consumer, s.program.sponsor):
        client = browser(organization, Role.VIEWER)
        proof = client.get(f"/billing/reimbursements/{claim.pk}/proof/")
        assert proof.status_code == 200
        assert proof["Content-Type"] == "image/png"
        assert proof["Content-Disposition"] == f'attachment; filename="payment-proof-{invoice.number}.png"'
        assert b"".join(proof.streaming_content) == PNG
        bundle = client.get(f"/billing/reimbursements/{claim.pk}/evidence/")
        assert bundle.status_code == 200
        assert bundle["Content-Type"] == "application/zip"
        assert bundle["Content-Disposition"] == f'attachment; filename="reimbursement-{invoice.number}.zip"'
        names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
        assert names == [
            f"invoice-{invoice.number}.pdf",
            "usage-certificate.csv",
            "usage-summary.txt",
            "payment-proof.png",
        ]


# --- a second tab: the refusal is shown even when its form is gone -------------------------------------------


def test_applying_again_from_a_stale_page_shows_why_it_is_refused():
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    chosen = program(sponsor_actor(sponsor_org()))
    client = browser(consumer, Role.ADMIN)
    data = {f"apply-{chosen.pk}-requested_amount": "100"}
    assert client.post(f"/billing/vouchers/programs/{chosen.pk}/apply/", data).status_code == 302

    again = client.post(f"/billing/vouchers/programs/{chosen.pk}/apply/", data)

    assert again.status_code == 409
    assert "Your organization already has an open application or an active voucher under this program." in text_of(
        again
    )
    assert VoucherGrant.objects.count() == 1


def test_deciding_an_application_twice_shows_why_it_is_refused():
    sponsor = sponsor_org()
    applied = application(program(sponsor_actor(sponsor)))
    client = browser(sponsor)
    data = {f"approve-{applied.pk}-amount": "3000.00"}
    assert client.post(f"/billing/applications/{applied.pk}/approve/", data).status_code == 302
    before = row(applied)

    again = client.post(f"/billing/applications/{applied.pk}/approve/", data)

    assert again.status_code == 409
    assert 'data-testid="stray-errors"' in again.content.decode()
    assert "This application has already been decided." in text_of(again)
    assert row(applied) == before


def test_approving_a_reimbursement_twice_shows_why_it_is_refused(media):
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    client = browser(s.program.sponsor, Role.FINANCE)
    assert client.post(f"/billing/reimbursements/{claim.pk}/approve/", {}).status_code == 302
    before = row(claim)

    again = client.post(f"/billing/reimbursements/{claim.pk}/approve/", {})

    assert again.status_code == 409
    assert "A claim that is approved cannot become approved." in text_of(again)
    assert 'data-testid="pay-form"' in again.content.decode()
    assert row(claim) == before
    assert VoucherGrant.objects.get(pk=s.grant.pk).remaining == D("420.0000")
