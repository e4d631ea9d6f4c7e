"""Reimbursement of vouchers paid after the fact: what a claim is worth (the program's filters, related parties,
credit notes, the grant's remaining amount), every refusal with nothing stored, the payment proof judged by its
content, the sponsor's approval drawing the grant and program under locks (also when two approvals race), rejection,
payment, and the evidence bundle."""

from __future__ import annotations

import csv
import io
import zipfile
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from accounts.models import AuditEvent, OrganizationKind, Role
from billing.models import (
    GrantStatus,
    InvoiceStatus,
    ReimbursementClaim,
    ReimbursementStatus,
    VoucherGrant,
    VoucherProgram,
)
from billing.services.invoices import CreditRequest, credit_note_issue
from billing.services.reimbursements import (
    CERTIFICATE_COLUMNS,
    MAX_PROOF_BYTES,
    evidence_bundle,
    reimbursement_approve,
    reimbursement_pay,
    reimbursement_reject,
    reimbursement_submit,
    reimbursement_terms,
)
from billing.services.vouchers import grants_expire
from tests.billing.reimbursement_scenario import EXE, JPEG, PDF, PNG, invoiced_month, proof, scenario, submitted
from tests.billing.settlement import NOV, OCT, at, book, close, invoice_of, meter
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.concurrency import run_at_once
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

D = Decimal
DECIDED = at("2026-11-12 10:00")


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def stored_files(root) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def counters(s) -> tuple:
    grant = VoucherGrant.objects.get(pk=s.grant.pk)
    program = VoucherProgram.objects.get(pk=s.program.pk)
    return grant.status, grant.remaining, program.granted, program.redeemed


# --- what a claim is worth ---------------------------------------------------------------------------------------


def test_a_claim_is_the_rate_times_every_eligible_line_and_leaves_the_budget_untouched_until_approved(media):
    s = scenario(rate="0.50", amount="1000.00")
    invoice = invoiced_month(s)  # H100 8 × 10 h × 12.50 = 1000.00; Ascend 4 × 5 h × 8.00 = 160.00

    claim = submitted(s, invoice)

    claim = ReimbursementClaim.objects.get(pk=claim.pk)
    assert (claim.status, claim.eligible_amount, claim.amount, claim.currency) == (
        ReimbursementStatus.SUBMITTED,
        D("1160.00"),
        D("580.00"),  # 0.50 × 1160.00
        "CNY",
    )
    assert (claim.invoice_id, claim.grant_id, claim.consumer_id) == (invoice.pk, s.grant.pk, s.consumer.pk)
    assert (claim.payment_reference, claim.submitted_by) == ("ICBC-20261105-0001", "finance@blueheron.test")
    assert claim.payment_proof.name.startswith(f"reimbursements/{s.consumer.pk}/")
    assert claim.payment_proof.name.endswith("-proof.pdf")
    assert stored_files(media) == [claim.payment_proof.name]
    assert (media / claim.payment_proof.name).read_bytes() == PDF
    assert counters(s) == (GrantStatus.ACTIVE, D("1000.00"), D("1000.00"), D("0"))
    event = AuditEvent.objects.get(action="reimbursement.submitted")
    assert (event.organization_id, event.target_id, event.after["amount"]) == (s.consumer.pk, str(claim.pk), "580.00")


@pytest.mark.parametrize(
    ("filters", "eligible", "amount"),
    [
        ({"domestic_only": True}, "160.00", "80.00"),  # the Ascend line only
        ({"vendors": ["NVIDIA"]}, "1000.00", "500.00"),  # the H100 line only
        ({"regions": ["cn-north"]}, "160.00", "80.00"),  # the Ascend pool's region
    ],
)
def test_the_programs_filters_choose_the_eligible_lines(filters, eligible, amount):
    s = scenario(rate="0.50", **filters)
    invoice = invoiced_month(s)

    claim = submitted(s, invoice)

    assert (claim.eligible_amount, claim.amount) == (D(eligible), D(amount))


def test_the_claim_is_capped_by_what_is_left_on_the_voucher():
    s = scenario(rate="0.80", amount="300.00")
    invoice = invoiced_month(s)

    claim = submitted(s, invoice)

    assert (claim.eligible_amount, claim.amount) == (D("1160.00"), D("300.00"))  # 0.80 × 1160 = 928 > 300


def test_lines_of_a_related_center_are_not_eligible_and_credit_notes_reduce_the_eligible_amount():
    s = scenario(rate="0.50")
    invoice = invoiced_month(s)
    h100_line = invoice.lines.get(amount=D("1000.00"))
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR)
    credit_note_issue(
        actor=Actor.for_member(user=UserFactory(), organization=operator, role=Role.FINANCE),
        invoice_id=invoice.pk,
        lines=[CreditRequest(h100_line.pk, D("200.00"))],
        reason="Node 3 was down for two hours",
        now=at("2026-11-06 00:00"),
    )

    terms = reimbursement_terms(grant=s.grant, invoice=invoice)
    assert (terms.eligible_amount, terms.amount) == (D("960.00"), D("480.00"))  # 1160 − 200

    s.consumer.related_parties.add(s.center)
    terms = reimbursement_terms(grant=s.grant, invoice=invoice)
    assert (terms.eligible_amount, terms.amount) == (D("0"), D("0"))


# --- refusals: nothing is stored ----------------------------------------------------------------------------


def assert_nothing_stored(s, media) -> None:
    assert ReimbursementClaim.objects.count() == 0
    assert stored_files(media) == []
    assert counters(s) == (GrantStatus.ACTIVE, s.grant.amount, s.grant.amount, D("0"))
    assert not AuditEvent.objects.filter(action="reimbursement.submitted").exists()


def test_a_voucher_deducted_on_the_invoice_cannot_be_claimed(media):
    s = scenario()
    deducted = grant(s.consumer, amount="100.00")  # a deduct-flow voucher of another program
    invoice = invoiced_month(s)
    assert invoice.voucher_amount == D("100.00")

    with pytest.raises(RuleViolation) as refused:
        submitted(s, invoice)

    assert refused.value.code == "voucher_already_applied"
    assert_nothing_stored(s, media)
    with pytest.raises(RuleViolation) as refused:
        reimbursement_submit(
            actor=s.consumer_admin,
            grant_id=deducted.pk,
            invoice_id=invoice.pk,
            payment_reference="X",
            payment_proof=proof(),
            now=at("2026-11-10 09:00"),
        )
    assert refused.value.code == "not_reimbursable"


def test_a_draft_invoice_cannot_be_claimed(media):
    s = scenario()
    # Closed but not finalized: still in its review window.
    booking = book(s.offering, s.consumer, "2026-10-05 00:00", "2026-10-05 04:00", 2)
    meter(booking, "2026-10-05 00:00", "2026-10-05 04:00", 2)
    close(OCT)
    draft = invoice_of(s.consumer, OCT)
    assert draft.status == InvoiceStatus.DRAFT

    with pytest.raises(InvalidInput) as refused:
        submitted(s, draft)

    assert refused.value.errors == {"invoice": ["Only finalized or paid invoices can be claimed."]}
    assert_nothing_stored(s, media)


def test_an_invoice_of_a_period_outside_the_voucher_validity_cannot_be_claimed(media):
    s = scenario()
    invoice = invoiced_month(s)
    VoucherGrant.objects.filter(pk=s.grant.pk).update(valid_from=at("2026-11-01 00:00"))

    with pytest.raises(InvalidInput) as refused:
        submitted(s, invoice)

    assert refused.value.errors == {"invoice": ["The invoice's period lies outside the voucher's validity."]}
    assert ReimbursementClaim.objects.count() == 0
    assert stored_files(media) == []


def test_an_invoice_in_another_currency_cannot_be_claimed(media):
    s = scenario(currency="USD")
    invoice = invoiced_month(s)

    with pytest.raises(InvalidInput) as refused:
        submitted(s, invoice)

    assert refused.value.errors == {"invoice": ["The voucher is in USD, the invoice in CNY."]}
    assert_nothing_stored(s, media)


def test_another_consumers_invoice_or_voucher_is_not_found(media):
    s = scenario()
    invoice = invoiced_month(s)
    other = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    stranger = Actor.for_member(user=UserFactory(), organization=other, role=Role.OWNER)

    with pytest.raises(NotFound):
        reimbursement_submit(
            actor=stranger,
            grant_id=s.grant.pk,
            invoice_id=invoice.pk,
            payment_reference="X",
            payment_proof=proof(),
            now=at("2026-11-10 09:00"),
        )
    other_grant = grant(other, amount="500.00", of=program(sponsor_actor(), flow="reimburse"))
    with pytest.raises(InvalidInput) as refused:
        reimbursement_submit(
            actor=stranger,
            grant_id=other_grant.pk,
            invoice_id=invoice.pk,
            payment_reference="X",
            payment_proof=proof(),
            now=at("2026-11-10 09:00"),
        )
    assert refused.value.detail == "No such invoice."
    assert_nothing_stored(s, media)


def test_an_invoice_is_claimed_once_unless_the_claim_was_rejected(media):
    s = scenario(amount="2000.00")
    invoice = invoiced_month(s)
    first = submitted(s, invoice)

    with pytest.raises(Conflict) as refused:
        submitted(s, invoice, reference="again")

    assert refused.value.code == "already_claimed"
    assert list(ReimbursementClaim.objects.values_list("pk", flat=True)) == [first.pk]
    assert stored_files(media) == [first.payment_proof.name]

    reimbursement_reject(actor=s.sponsor, claim_id=first.pk, note="The receipt is unreadable.", now=DECIDED)
    second = submitted(s, invoice, reference="ICBC-2")

    assert ReimbursementClaim.objects.filter(invoice=invoice).count() == 2
    assert second.status == ReimbursementStatus.SUBMITTED


def test_an_invoice_with_nothing_eligible_cannot_be_claimed(media):
    s = scenario(regions=["cn-south"])
    invoice = invoiced_month(s)

    with pytest.raises(RuleViolation) as refused:
        submitted(s, invoice)

    assert refused.value.code == "nothing_eligible"
    assert_nothing_stored(s, media)


def test_a_missing_payment_reference_is_refused(media):
    s = scenario()
    invoice = invoiced_month(s)

    with pytest.raises(InvalidInput) as refused:
        submitted(s, invoice, reference="  ")

    assert refused.value.errors == {"payment_reference": ["Give the bank reference of your payment."]}
    assert_nothing_stored(s, media)


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_members_and_viewers_cannot_claim(media, role):
    s = scenario()
    invoice = invoiced_month(s)
    reader = Actor.for_member(user=UserFactory(), organization=s.consumer, role=role)

    with pytest.raises(Forbidden):
        reimbursement_submit(
            actor=reader,
            grant_id=s.grant.pk,
            invoice_id=invoice.pk,
            payment_reference="X",
            payment_proof=proof(),
            now=at("2026-11-10 09:00"),
        )

    assert_nothing_stored(s, media)


def test_an_exhausted_voucher_claims_nothing_more(media):
    s = scenario(amount="580.00")
    october = invoiced_month(s)
    reimbursement_approve(actor=s.sponsor, claim_id=submitted(s, october).pk, now=DECIDED)
    november = invoiced_month(s, NOV)

    with pytest.raises(RuleViolation) as refused:
        submitted(s, november)

    assert refused.value.code == "grant_not_active"
    assert ReimbursementClaim.objects.count() == 1


# --- the payment proof -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upload", "message"),
    [
        (
            proof("receipt.pdf", EXE),
            "The file named “receipt.pdf” is not a PDF, PNG or JPEG document: its content says otherwise, whatever "
            "its name. Upload the bank's receipt as a PDF or a picture.",
        ),
        (proof("setup.exe", EXE), "The payment proof must be a PDF, PNG or JPEG file."),
        (proof("receipt", PDF), "The payment proof must be a PDF, PNG or JPEG file."),
        (proof("receipt.pdf", b""), "The payment proof is empty."),
        (proof("receipt.pdf", PDF + b"\x00" * MAX_PROOF_BYTES), "The payment proof is larger than 10 MB."),
        (None, "Attach the proof of your payment (a PDF, PNG or JPEG file)."),
    ],
    ids=["renamed-exe", "exe", "no-extension", "empty", "too-large", "missing"],
)
def test_a_proof_that_is_not_a_pdf_png_or_jpeg_of_at_most_10_mb_is_refused(media, upload, message):
    s = scenario()
    invoice = invoiced_month(s)

    with pytest.raises(InvalidInput) as refused:
        reimbursement_submit(
            actor=s.consumer_admin,
            grant_id=s.grant.pk,
            invoice_id=invoice.pk,
            payment_reference="ICBC-1",
            payment_proof=upload,
            now=at("2026-11-10 09:00"),
        )

    assert refused.value.errors == {"payment_proof": [message]}
    assert refused.value.code == "invalid_proof"
    assert_nothing_stored(s, media)


@pytest.mark.parametrize(
    ("name", "content", "stored"),
    [("scan.PNG", PNG, "png"), ("photo.jpeg", JPEG, "jpg"), ("photo.jpg", JPEG, "jpg"), ("receipt.pdf", PNG, "png")],
)
def test_a_proof_is_stored_under_the_type_its_content_proves(name, content, stored):
    s = scenario()
    invoice = invoiced_month(s)

    claim = submitted(s, invoice, upload=SimpleUploadedFile(name, content))

    assert claim.payment_proof.name.endswith(f"-proof.{stored}")


def test_exactly_10_mb_is_accepted():
    s = scenario()
    invoice = invoiced_month(s)

    claim = submitted(s, invoice, upload=proof("receipt.pdf", PDF + b"\x00" * (MAX_PROOF_BYTES - len(PDF))))

    assert claim.payment_proof.size == MAX_PROOF_BYTES


# --- the sponsor's decisions ---------------------------------------------------------------------------------


def test_approval_draws_the_grant_and_the_program():
    s = scenario(amount="1000.00")
    claim = submitted(s, invoiced_month(s))

    approved = reimbursement_approve(actor=s.sponsor, claim_id=claim.pk, note="Thanks.", now=DECIDED)

    assert approved.status == ReimbursementStatus.APPROVED
    stored = ReimbursementClaim.objects.get(pk=claim.pk)
    assert (stored.status, stored.decided_at, stored.decided_by, stored.decision_note) == (
        ReimbursementStatus.APPROVED,
        DECIDED,
        s.sponsor.label,
        "Thanks.",
    )
    assert counters(s) == (GrantStatus.ACTIVE, D("420.00"), D("1000.00"), D("580.00"))
    event = AuditEvent.objects.get(action="reimbursement.approved")
    assert (event.organization_id, event.after["grant_remaining"]) == (s.program.sponsor_id, "420.00")


def test_approval_that_uses_the_last_of_a_grant_exhausts_it():
    s = scenario(amount="580.00")
    claim = submitted(s, invoiced_month(s))

    reimbursement_approve(actor=s.sponsor, claim_id=claim.pk, now=DECIDED)

    assert counters(s) == (GrantStatus.EXHAUSTED, D("0"), D("580.00"), D("580.00"))


def test_approval_is_refused_when_the_grant_no_longer_covers_the_claim():
    s = scenario(rate="0.50", amount="700.00")
    october = submitted(s, invoiced_month(s))  # 580.00
    november = submitted(s, invoiced_month(s, NOV))  # min(580.00, 700.00) = 580.00, computed before either approval
    reimbursement_approve(actor=s.sponsor, claim_id=october.pk, now=DECIDED)

    with pytest.raises(RuleViolation) as refused:
        reimbursement_approve(actor=s.sponsor, claim_id=november.pk, now=DECIDED)

    assert refused.value.code == "grant_exhausted"
    assert refused.value.detail == "Only 120.00 CNY is left on this voucher; the claim asks for 580.00 CNY."
    assert ReimbursementClaim.objects.get(pk=november.pk).status == ReimbursementStatus.SUBMITTED
    assert counters(s) == (GrantStatus.ACTIVE, D("120.00"), D("700.00"), D("580.00"))


def test_approval_is_refused_once_the_grant_expired():
    s = scenario(amount="1000.00")
    claim = submitted(s, invoiced_month(s))
    VoucherGrant.objects.filter(pk=s.grant.pk).update(expires_at=at("2026-11-11 00:00"))
    assert grants_expire(now=at("2026-11-11 00:00")) == 1

    with pytest.raises(RuleViolation) as refused:
        reimbursement_approve(actor=s.sponsor, claim_id=claim.pk, now=DECIDED)

    assert refused.value.code == "grant_not_active"
    assert ReimbursementClaim.objects.get(pk=claim.pk).status == ReimbursementStatus.SUBMITTED
    assert counters(s) == (GrantStatus.EXPIRED, D("1000.00"), D("0"), D("0"))


@pytest.mark.django_db(transaction=True)
def test_two_approvals_racing_for_one_grant_never_overdraw_it():
    s = scenario(rate="0.50", amount="700.00")
    october = submitted(s, invoiced_month(s))
    november = submitted(s, invoiced_month(s, NOV))

    results = run_at_once(
        lambda: reimbursement_approve(actor=s.sponsor, claim_id=october.pk, now=DECIDED),
        lambda: reimbursement_approve(actor=s.sponsor, claim_id=november.pk, now=DECIDED),
    )

    succeeded = [r for r in results if isinstance(r, ReimbursementClaim)]
    refused = [r for r in results if isinstance(r, RuleViolation)]
    assert (len(succeeded), len(refused)) == (1, 1), results
    assert refused[0].code == "grant_exhausted"
    statuses = sorted(ReimbursementClaim.objects.values_list("status", flat=True))
    assert statuses == [ReimbursementStatus.APPROVED, ReimbursementStatus.SUBMITTED]
    assert counters(s) == (GrantStatus.ACTIVE, D("120.00"), D("700.00"), D("580.00"))


def test_rejection_needs_a_note_and_changes_no_counter():
    s = scenario()
    claim = submitted(s, invoiced_month(s))

    with pytest.raises(InvalidInput) as refused:
        reimbursement_reject(actor=s.sponsor, claim_id=claim.pk, note=" ", now=DECIDED)
    assert refused.value.errors == {"note": ["This field is required."]}
    assert ReimbursementClaim.objects.get(pk=claim.pk).status == ReimbursementStatus.SUBMITTED

    reimbursement_reject(actor=s.sponsor, claim_id=claim.pk, note="Wrong bank reference.", now=DECIDED)

    stored = ReimbursementClaim.objects.get(pk=claim.pk)
    assert (stored.status, stored.decision_note, stored.decided_at) == (
        ReimbursementStatus.REJECTED,
        "Wrong bank reference.",
        DECIDED,
    )
    assert counters(s) == (GrantStatus.ACTIVE, D("1000.00"), D("1000.00"), D("0"))
    assert AuditEvent.objects.filter(action="reimbursement.rejected").count() == 1
    with pytest.raises(Conflict):
        reimbursement_approve(actor=s.sponsor, claim_id=claim.pk, now=DECIDED)


def test_payment_is_recorded_once_on_an_approved_claim():
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    with pytest.raises(Conflict) as refused:
        reimbursement_pay(actor=s.sponsor, claim_id=claim.pk, reference="BOC-1", now=DECIDED)
    assert refused.value.code == "invalid_transition"
    reimbursement_approve(actor=s.sponsor, claim_id=claim.pk, now=DECIDED)
    with pytest.raises(InvalidInput):
        reimbursement_pay(actor=s.sponsor, claim_id=claim.pk, reference="", now=DECIDED)

    reimbursement_pay(actor=s.sponsor, claim_id=claim.pk, reference="BOC-77", now=at("2026-11-20 08:00"))
    reimbursement_pay(actor=s.sponsor, claim_id=claim.pk, reference="BOC-other", now=at("2026-11-21 08:00"))

    stored = ReimbursementClaim.objects.get(pk=claim.pk)
    assert (stored.status, stored.sponsor_payment_reference, stored.paid_at) == (
        ReimbursementStatus.PAID,
        "BOC-77",
        at("2026-11-20 08:00"),
    )
    assert AuditEvent.objects.filter(action="reimbursement.paid").count() == 1
    assert counters(s) == (GrantStatus.ACTIVE, D("420.00"), D("1000.00"), D("580.00"))


def test_only_the_programs_sponsor_and_its_managers_decide():
    s = scenario()
    claim = submitted(s, invoiced_month(s))
    other_sponsor = sponsor_actor()
    viewer = Actor.for_member(user=UserFactory(), organization=s.program.sponsor, role=Role.VIEWER)

    with pytest.raises(NotFound):
        reimbursement_approve(actor=other_sponsor, claim_id=claim.pk, now=DECIDED)
    with pytest.raises(Forbidden):
        reimbursement_approve(actor=viewer, claim_id=claim.pk, now=DECIDED)
    with pytest.raises(Forbidden):
        reimbursement_approve(actor=s.consumer_admin, claim_id=claim.pk, now=DECIDED)

    assert ReimbursementClaim.objects.get(pk=claim.pk).status == ReimbursementStatus.SUBMITTED
    assert counters(s) == (GrantStatus.ACTIVE, D("1000.00"), D("1000.00"), D("0"))


# --- the evidence bundle ---------------------------------------------------------------------------------------


def test_the_evidence_bundle_holds_the_invoice_pdf_the_usage_certificate_and_the_proof():
    s = scenario()
    invoice = invoiced_month(s)
    claim = submitted(s, invoice, upload=SimpleUploadedFile("scan.png", PNG))
    claim = ReimbursementClaim.objects.get(pk=claim.pk)

    bundle = evidence_bundle(claim=claim, now=at("2026-11-15 12:00"))

    assert bundle.filename == f"reimbursement-{invoice.number}.zip"
    archive = zipfile.ZipFile(io.BytesIO(bundle.content))
    assert archive.namelist() == [
        f"invoice-{invoice.number}.pdf",
        "usage-certificate.csv",
        "usage-summary.txt",
        "payment-proof.png",
    ]
    assert archive.read(f"invoice-{invoice.number}.pdf").startswith(b"%PDF-")
    assert archive.read("payment-proof.png") == PNG
    rows = list(csv.reader(io.StringIO(archive.read("usage-certificate.csv").decode())))
    h100 = invoice.lines.get(booking__offering=s.offering).booking
    ascend = invoice.lines.get(booking__offering=s.domestic).booking
    expected = {
        h100.pk: [
            str(h100.pk),
            "Lakeside AI Computing Center",
            "H100 SXM 80GB",
            "2026-10-05T00:00:00Z",
            "2026-10-05T12:00:00Z",
            "2026-10",
            "no",
            "1",
            "80.000000",  # 8 devices × 10 h
        ],
        ascend.pk: [
            str(ascend.pk),
            "Lakeside AI Computing Center",
            "Ascend 910B",
            "2026-10-05T00:00:00Z",
            "2026-10-05T12:00:00Z",
            "2026-10",
            "no",
            "1",
            "20.000000",  # 4 devices × 5 h
        ],
    }
    # One row per usage line, in the invoice's order.
    in_order = invoice.lines.order_by("id").values_list("booking_id", flat=True)
    assert rows == [list(CERTIFICATE_COLUMNS), *(expected[booking] for booking in in_order)]
    summary = archive.read("usage-summary.txt").decode()
    assert f"Invoice: {invoice.number}\n" in summary
    assert "Bookings: 2\nUsage records: 2\nDevice-hours metered: 100.000000\n" in summary
    assert "Device-hours billed on usage lines: 100.000000\n" in summary
    assert "Eligible amount under the program: 1160.00 CNY\n" in summary
    assert "Amount claimed: 580.00 CNY\n" in summary
    assert summary.endswith("Generated at: 2026-11-15T12:00:00Z\n")
