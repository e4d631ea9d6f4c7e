"""The voucher API (算力券): a sponsor runs programs, consumers apply, the sponsor approves or rejects within the cap
and the budget, and pays the claims the period close issues. Refusals change nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from accounts.models import OrganizationKind, Scope
from billing.models import JournalEntry, VoucherGrant, VoucherProgram
from tests.accounts.api_helpers import rows, with_token
from tests.billing.settlement import OCT, book, close, invoice_of, market, meter
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import OrganizationFactory, token_for

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 5, 9, 30, tzinfo=UTC)

PROGRAM = {
    "name": "Hangzhou compute voucher 2027",
    "description": "For small firms training their first models.",
    "currency": "CNY",
    "rate": "0.50",
    "budget": "40000.00",
    "cap_per_grant": "30000.00",
    "valid_from": "2026-11-01T00:00:00Z",
    "valid_until": "2027-11-01T08:00:00+08:00",
    "eligible_kinds": ["enterprise", "university"],
    "domestic_only": True,
    "regions": ["cn-east"],
    "status": "active",
}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def sponsor():
    return OrganizationFactory(kind=OrganizationKind.SPONSOR, name="National Compute Fund", slug="ncf")


@pytest.fixture
def sponsor_api(sponsor):
    return with_token(token_for(sponsor, Scope.BILLING))


@pytest.fixture
def consumer():
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")


@pytest.fixture
def consumer_api(consumer):
    return with_token(token_for(consumer, Scope.BILLING))


def program_body(created: VoucherProgram, **changes) -> dict:
    return {
        "id": str(created.pk),
        "sponsor": "ncf",
        "sponsor_name": "National Compute Fund",
        "name": "Hangzhou compute voucher 2027",
        "description": "For small firms training their first models.",
        "currency": "CNY",
        "rate": "0.5000",
        "budget": "40000.00",
        "cap_per_grant": "30000.00",
        "granted": "0.00",
        "redeemed": "0.00",
        "available": "40000.00",
        "valid_from": "2026-11-01T00:00:00Z",
        "valid_until": "2027-11-01T00:00:00Z",
        "eligible_kinds": ["enterprise", "university"],
        "vendors": [],
        "domestic_only": True,
        "regions": ["cn-east"],
        "flow": "deduct",
        "status": "active",
        "created_at": "2026-11-05T09:30:00Z",
        **changes,
    }


@pytest.fixture
def open_program(sponsor_api) -> VoucherProgram:
    assert sponsor_api.post("/api/v1/voucher-programs", PROGRAM, format="json").status_code == 201
    return VoucherProgram.objects.get()


def apply(api, program_id, amount: str, purpose: str = "Fine-tune a grasping model"):
    return api.post(
        f"/api/v1/voucher-programs/{program_id}/apply",
        {"requested_amount": amount, "purpose": purpose},
        format="json",
    )


def grant_body(applied: VoucherGrant, **changes) -> dict:
    return {
        "id": str(applied.pk),
        "program": str(applied.program_id),
        "program_name": "Hangzhou compute voucher 2027",
        "sponsor": "ncf",
        "consumer": "blue-heron-robotics",
        "currency": "CNY",
        "requested_amount": "20000.00",
        "purpose": "Fine-tune a grasping model",
        "amount": "0.00",
        "remaining": "0.00",
        "status": "applied",
        "valid_from": None,
        "expires_at": None,
        "applied_at": "2026-11-05T09:30:00Z",
        "decided_at": None,
        "decision_note": "",
        **changes,
    }


# --- programs ---------------------------------------------------------------------------------------------------


def test_a_sponsor_creates_a_program_once_per_idempotency_key(sponsor_api):
    first = sponsor_api.post("/api/v1/voucher-programs", PROGRAM, format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    replay = sponsor_api.post("/api/v1/voucher-programs", PROGRAM, format="json", HTTP_IDEMPOTENCY_KEY="p-1")

    created = VoucherProgram.objects.get()
    assert (first.status_code, first.json()) == (201, program_body(created))
    assert (replay.status_code, replay.json()) == (201, program_body(created))
    assert sponsor_api.get("/api/v1/voucher-programs").json()["results"] == [program_body(created)]


def test_consumers_see_the_programs_open_to_them_and_sponsors_only_their_own(sponsor_api, open_program, consumer_api):
    draft = sponsor_api.post("/api/v1/voucher-programs", {**PROGRAM, "status": "draft"}, format="json").json()
    institute = with_token(token_for(OrganizationFactory(kind=OrganizationKind.INSTITUTE), Scope.READ))
    other_sponsor = with_token(token_for(OrganizationFactory(kind=OrganizationKind.SPONSOR), Scope.READ))
    center = with_token(token_for(OrganizationFactory(kind=OrganizationKind.CENTER), Scope.BILLING))

    assert [p["id"] for p in consumer_api.get("/api/v1/voucher-programs").json()["results"]] == [str(open_program.pk)]
    assert consumer_api.get(f"/api/v1/voucher-programs/{open_program.pk}").json() == program_body(open_program)
    assert consumer_api.get(f"/api/v1/voucher-programs/{draft['id']}").status_code == 404
    assert institute.get("/api/v1/voucher-programs").json()["count"] == 0  # not an eligible kind
    assert other_sponsor.get("/api/v1/voucher-programs").json()["count"] == 0
    assert other_sponsor.get(f"/api/v1/voucher-programs/{open_program.pk}").status_code == 404
    assert sponsor_api.get("/api/v1/voucher-programs").json()["count"] == 2
    assert center.get("/api/v1/voucher-programs").json()["code"] == "wrong_organization_kind"


def test_a_sponsor_changes_its_program_and_what_is_left_out_keeps_its_value(sponsor_api, open_program):
    changed = sponsor_api.put(
        f"/api/v1/voucher-programs/{open_program.pk}", {"budget": "50000.00", "status": "closed"}, format="json"
    )
    theirs = with_token(token_for(OrganizationFactory(kind=OrganizationKind.SPONSOR), Scope.BILLING)).put(
        f"/api/v1/voucher-programs/{open_program.pk}", {"status": "closed"}, format="json"
    )

    assert (changed.status_code, changed.json()) == (
        200,
        program_body(open_program, budget="50000.00", available="50000.00", status="closed"),
    )
    assert (theirs.status_code, theirs.json()) == (404, {"detail": "No such voucher program.", "code": "not_found"})


def test_bad_program_terms_are_400s_naming_the_field_and_create_nothing(sponsor_api, consumer_api):
    url = "/api/v1/voucher-programs"

    flow = sponsor_api.post(url, {**PROGRAM, "flow": "cash"}, format="json")
    rate = sponsor_api.post(url, {**PROGRAM, "rate": "1.50"}, format="json")
    cap = sponsor_api.post(url, {**PROGRAM, "cap_per_grant": "50000.00"}, format="json")
    unknown = sponsor_api.post(url, {**PROGRAM, "granted": "0"}, format="json")
    missing = sponsor_api.post(url, {"name": "No terms"}, format="json")
    by_consumer = consumer_api.post(url, PROGRAM, format="json")

    assert (flow.status_code, flow.json()["errors"]) == (400, {"flow": ["Choose from: deduct, reimburse."]})
    assert (rate.status_code, rate.json()) == (
        400,
        {
            "detail": "The share paid lies between 0 and 1 (0.5 pays half).",
            "code": "invalid",
            "errors": {"rate": ["The share paid lies between 0 and 1 (0.5 pays half)."]},
        },
    )
    assert cap.json()["errors"] == {"cap_per_grant": ["The cap per grant cannot exceed the budget."]}
    assert unknown.json()["errors"] == {"granted": ["Unknown field, or one that cannot be set here."]}
    assert sorted(missing.json()["errors"]) == [
        "budget",
        "cap_per_grant",
        "currency",
        "eligible_kinds",
        "rate",
        "valid_from",
        "valid_until",
    ]
    assert (by_consumer.status_code, by_consumer.json()) == (
        403,
        {"detail": "Voucher programs are run by sponsor organizations.", "code": "wrong_organization_kind"},
    )
    assert not VoucherProgram.objects.exists()


# --- applying, approving, rejecting -----------------------------------------------------------------------------


def test_a_consumer_applies_once_and_the_sponsor_approves_within_the_cap(
    sponsor_api, open_program, consumer_api, consumer
):
    applied = apply(consumer_api, open_program.pk, "20000.00")
    again = apply(consumer_api, open_program.pk, "10000.00")
    application = VoucherGrant.objects.get()
    over_cap = sponsor_api.post(
        f"/api/v1/voucher-grants/{application.pk}/approve", {"amount": "30000.01"}, format="json"
    )
    approved = sponsor_api.post(
        f"/api/v1/voucher-grants/{application.pk}/approve",
        {"amount": "15000.00", "expires_at": "2027-06-30T00:00:00Z", "note": "Half now, more after a review"},
        format="json",
    )

    assert (applied.status_code, applied.json()) == (201, grant_body(application))
    assert (again.status_code, again.json()) == (
        409,
        {
            "detail": "Your organization already has an open application or an active voucher under this program.",
            "code": "grant_exists",
        },
    )
    assert (over_cap.status_code, over_cap.json()) == (
        422,
        {"detail": "The program's cap per grant is 30000.00 CNY.", "code": "over_cap"},
    )
    assert (approved.status_code, approved.json()) == (
        200,
        grant_body(
            application,
            amount="15000.00",
            remaining="15000.00",
            status="active",
            valid_from="2026-11-05T09:30:00Z",
            expires_at="2027-06-30T00:00:00Z",
            decided_at="2026-11-05T09:30:00Z",
            decision_note="Half now, more after a review",
        ),
    )
    open_program.refresh_from_db()
    assert open_program.granted == Decimal("15000.00")
    assert consumer_api.get("/api/v1/voucher-grants").json()["results"] == [approved.json()]
    assert sponsor_api.get("/api/v1/voucher-grants", {"status": "active"}).json()["count"] == 1
    assert sponsor_api.get("/api/v1/voucher-grants", {"status": "applied"}).json()["count"] == 0
    assert consumer.voucher_grants.get().status == "active"


def test_an_application_over_the_cap_is_refused_and_stores_nothing(open_program, consumer_api):
    response = apply(consumer_api, open_program.pk, "30000.01")

    assert (response.status_code, response.json()) == (
        422,
        {"detail": "This program grants at most 30000.00 CNY per consumer.", "code": "over_cap"},
    )
    assert not VoucherGrant.objects.exists()


def test_approvals_never_grant_more_than_the_budget(sponsor_api, open_program, consumer_api):
    westlake = OrganizationFactory(kind=OrganizationKind.UNIVERSITY, name="Westlake University")
    apply(consumer_api, open_program.pk, "30000.00")
    apply(with_token(token_for(westlake, Scope.BILLING)), open_program.pk, "20000.00")
    first, second = VoucherGrant.objects.order_by("consumer__name")
    sponsor_api.post(f"/api/v1/voucher-grants/{first.pk}/approve", {"amount": "30000.00"}, format="json")
    before = rows(VoucherGrant), rows(VoucherProgram)

    response = sponsor_api.post(f"/api/v1/voucher-grants/{second.pk}/approve", {"amount": "20000.00"}, format="json")

    assert (response.status_code, response.json()) == (
        422,
        {"detail": "Only 10000.00 CNY of the program's budget is left to grant.", "code": "budget_exhausted"},
    )
    assert (rows(VoucherGrant), rows(VoucherProgram)) == before


def test_a_consumer_related_to_the_sponsor_gets_no_voucher(sponsor, sponsor_api, open_program, consumer, consumer_api):
    apply(consumer_api, open_program.pk, "20000.00")
    # The two turn out to share a unified social credit code.
    for organization in (sponsor, consumer):
        organization.tax_id = "91330100MA2H0LINK1"
        organization.save(update_fields=["tax_id"])
    application = VoucherGrant.objects.get()

    response = sponsor_api.post(
        f"/api/v1/voucher-grants/{application.pk}/approve", {"amount": "20000.00"}, format="json"
    )

    assert (response.status_code, response.json()) == (
        422,
        {
            "detail": "Blue Heron Robotics is a related party of the sponsor: no voucher can be granted to it.",
            "code": "related_party",
        },
    )
    application.refresh_from_db()
    assert (application.status, application.amount) == ("applied", Decimal("0"))
    # Nor can it apply again elsewhere in the sponsor's programs: they are no longer open to it.
    assert consumer_api.get("/api/v1/voucher-programs").json()["count"] == 0


def test_the_sponsor_rejects_with_a_reason_and_a_decision_is_final(sponsor_api, open_program, consumer_api):
    apply(consumer_api, open_program.pk, "20000.00")
    application = VoucherGrant.objects.get()
    url = f"/api/v1/voucher-grants/{application.pk}"

    no_note = sponsor_api.post(f"{url}/reject", {}, format="json")
    rejected = sponsor_api.post(f"{url}/reject", {"note": "Outside the program's sectors"}, format="json")
    twice = sponsor_api.post(f"{url}/approve", {"amount": "100.00"}, format="json")

    assert (no_note.status_code, no_note.json()["errors"]) == (400, {"note": ["This field is required."]})
    assert (rejected.status_code, rejected.json()) == (
        200,
        grant_body(
            application,
            status="rejected",
            decided_at="2026-11-05T09:30:00Z",
            decision_note="Outside the program's sectors",
        ),
    )
    assert (twice.status_code, twice.json()) == (
        409,
        {"detail": "This application has already been decided.", "code": "invalid_transition"},
    )
    assert consumer_api.get(url).json()["status"] == "rejected"


def test_only_the_programs_sponsor_decides_and_a_read_token_writes_nothing(sponsor, open_program, consumer_api):
    apply(consumer_api, open_program.pk, "20000.00")
    application = VoucherGrant.objects.get()
    other_sponsor = with_token(token_for(OrganizationFactory(kind=OrganizationKind.SPONSOR), Scope.BILLING))
    reader = with_token(token_for(sponsor, Scope.READ))
    before = rows(VoucherGrant), rows(VoucherProgram)

    by_consumer = consumer_api.post(
        f"/api/v1/voucher-grants/{application.pk}/approve", {"amount": "1.00"}, format="json"
    )
    by_stranger = other_sponsor.post(
        f"/api/v1/voucher-grants/{application.pk}/approve", {"amount": "1.00"}, format="json"
    )
    by_reader = reader.post(f"/api/v1/voucher-grants/{application.pk}/approve", {"amount": "1.00"}, format="json")
    reader_creates = reader.post("/api/v1/voucher-programs", PROGRAM, format="json")
    seen_by_stranger = other_sponsor.get(f"/api/v1/voucher-grants/{application.pk}")

    assert (by_consumer.status_code, by_consumer.json()) == (
        403,
        {"detail": "Voucher programs are run by sponsor organizations.", "code": "wrong_organization_kind"},
    )
    assert (by_stranger.status_code, by_stranger.json()) == (
        404,
        {"detail": "No such voucher application.", "code": "not_found"},
    )
    scope_required = {"detail": "This needs the “billing” scope.", "code": "scope_required"}
    assert (by_reader.status_code, by_reader.json()) == (403, scope_required)
    assert (reader_creates.status_code, reader_creates.json()) == (403, scope_required)
    assert seen_by_stranger.status_code == 404
    assert (rows(VoucherGrant), rows(VoucherProgram)) == before


# --- claims -----------------------------------------------------------------------------------------------------


@pytest.fixture
def claimed(sponsor):
    """October closed with a voucher: 1000.00 of eligible H100 time, half covered up to the 300.00 granted."""
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    grant(consumer, amount="300.00", of=program(sponsor_actor(sponsor), name="Compute voucher 2026"))
    close(OCT)
    return consumer, sponsor.voucher_claims.get()


def claim_body(claim, **changes) -> dict:
    return {
        "id": str(claim.pk),
        "sponsor": "ncf",
        "period": "2026-10",
        "currency": "CNY",
        "amount": "300.00",  # min(round(0.5 × 1000.00), 300.00)
        "status": "open",
        "issued_at": "2026-11-02T00:00:00Z",
        "paid_at": None,
        "payment_reference": "",
        **changes,
    }


def test_the_sponsor_sees_and_pays_its_claims_once(claimed, sponsor, sponsor_api):
    consumer, claim = claimed
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR)
    other_sponsor = with_token(token_for(OrganizationFactory(kind=OrganizationKind.SPONSOR), Scope.BILLING))
    url = f"/api/v1/voucher-claims/{claim.pk}/pay"

    listed = sponsor_api.get("/api/v1/voucher-claims").json()
    no_reference = sponsor_api.post(url, {"reference": ""}, format="json")
    by_stranger = other_sponsor.post(url, {"reference": "HZ-2026-1188"}, format="json")
    paid = sponsor_api.post(url, {"reference": "HZ-2026-1188"}, format="json")
    again = sponsor_api.post(url, {"reference": "HZ-2026-9999"}, format="json")

    assert listed["results"] == [claim_body(claim)]
    assert (no_reference.status_code, no_reference.json()["errors"]) == (
        400,
        {"reference": ["This field may not be blank."]},
    )
    assert (by_stranger.status_code, by_stranger.json()["code"]) == (404, "not_found")
    paid_body = claim_body(claim, status="paid", paid_at="2026-11-05T09:30:00Z", payment_reference="HZ-2026-1188")
    assert (paid.status_code, paid.json()) == (200, paid_body)
    assert (again.status_code, again.json()) == (200, paid_body)
    assert JournalEntry.objects.filter(kind="voucher_claim_payment").count() == 1
    # The sponsor's voucher receivable is settled.
    balances = sponsor_api.get("/api/v1/ledger/balances").json()["accounts"]
    assert [(a["role"], a["debits"], a["credits"], a["balance"]) for a in balances] == [
        ("voucher_receivable", "300.00", "300.00", "0.00")
    ]
    operator_view = with_token(token_for(operator, Scope.READ)).get("/api/v1/voucher-claims").json()
    assert operator_view["results"] == [paid_body]
    consumer_view = with_token(token_for(consumer, Scope.BILLING)).get("/api/v1/voucher-claims")
    assert consumer_view.status_code == 403


def test_the_invoice_names_the_voucher_that_paid_part_of_it(claimed):
    consumer, _claim = claimed

    invoice = with_token(token_for(consumer, Scope.READ)).get(f"/api/v1/invoices/{invoice_of(consumer, OCT).pk}")

    body = invoice.json()
    assert (body["subtotal"], body["voucher_amount"], body["total"]) == ("1000.00", "300.00", "700.00")
    assert body["voucher"] == {"program": "Compute voucher 2026", "sponsor": "ncf"}
    assert body["lines"][0]["voucher_eligible"] is True
