"""The payouts pages: the operator's finance staff create a closed period's payouts, make and download the bank file,
send Stripe Connect transfers, mark payouts paid or failed and retry them, and record sponsors' claim payments; each
form works once. A center sees only its own payouts; anyone else is refused. Sponsors see what they owe per period,
with the payment instructions. And the API: centers list their own payouts, the operator everyone's.

The scenario (tests/billing/payouts.py): October 2026 closed, Lakeside's net payout 900.00 CNY (by bank), Yangtze's
360.00 CNY (by bank, or by Stripe Connect)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from accounts.models import AuditEvent, OrganizationKind, Role
from billing.models import (
    AccountRole,
    ExceptionKind,
    JournalEntry,
    Payout,
    PayoutBatch,
    PayoutStatus,
    ReconciliationException,
    VoucherClaim,
    VoucherClaimStatus,
)
from billing.services.payouts import claim_reference, payout_batch_content, payout_reference
from tests.accounts.api_helpers import signed_in
from tests.accounts.page_helpers import browser_as, text_of
from tests.billing.payouts import YANGTZE_ACCOUNT, october_two_centers
from tests.billing.settlement import OCT, balance, book, close, market, meter, statement_of
from tests.billing.stripe_recorded import SECRET_KEY, RecordedStripe, transfer_response
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import OrganizationFactory, member_of, token_for

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def operator():
    return OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")


@pytest.fixture
def clerk(operator):
    return browser_as(member_of(operator, Role.FINANCE, email="clerk@ops.test"), operator)


@pytest.fixture
def october():
    return october_two_centers()


def submission_of(html: str) -> str:
    return re.search(r'name="submission" value="([^"]+)"', html).group(1)


def period_page(browser) -> str:
    response = browser.get("/billing/finance/payouts/2026-10/")
    assert response.status_code == 200
    return response.content.decode()


def payout_row(html: str, payout: Payout) -> str:
    match = re.search(rf'<tr data-statement="[^"]+" data-payout="{payout.pk}">(.*?)</tr>', html, re.S)
    assert match, "no row for the payout"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(1))).strip()


def create_payouts(clerk) -> None:
    token = submission_of(period_page(clerk))
    response = clerk.post("/billing/finance/payouts/2026-10/create/", {"submission": token})
    assert response.status_code == 302


# --- the operator -------------------------------------------------------------------------------------------------


def test_the_payouts_index_lists_closed_periods_with_what_is_due_and_paid(october, clerk):
    response = clerk.get("/billing/finance/payouts/")

    assert response.status_code == 200
    row = re.search(r'<tbody data-period="2026-10">(.*?)</tbody>', response.content.decode(), re.S).group(1)
    assert re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() == "2026-10 2 1260.00 CNY — 2 to create —"


def test_finance_creates_the_periods_payouts_once_per_form(october, clerk):
    html = period_page(clerk)
    assert "Create 2 payouts" in html
    token = submission_of(html)

    first = clerk.post("/billing/finance/payouts/2026-10/create/", {"submission": token}, follow=True)
    again = clerk.post("/billing/finance/payouts/2026-10/create/", {"submission": token}, follow=True)

    assert "2 payouts were created." in text_of(first)
    assert "This form was already submitted: nothing was done a second time." in text_of(again)
    assert Payout.objects.count() == 2
    lakeside = Payout.objects.get(center=october.lakeside)
    page = period_page(clerk)
    assert payout_row(page, lakeside).startswith(
        f"Lakeside AI Computing Center 900.00 CNY Bank transfer Pending {payout_reference(lakeside)} —"
    )
    assert "Create 2 payouts" not in page
    assert "Make the bank file (2 payouts)" in page


def test_the_bank_file_is_made_and_downloads_identically(october, clerk):
    create_payouts(clerk)
    token = submission_of(period_page(clerk))

    made = clerk.post("/billing/finance/payouts/2026-10/bank-file/", {"submission": token}, follow=True)

    assert "Bank file PB-2026-10-000001: 2 payouts, 1260.00 CNY." in text_of(made)
    batch = PayoutBatch.objects.get()
    first = clerk.get(f"/billing/finance/payout-files/{batch.pk}.csv")
    second = clerk.get(f"/billing/finance/payout-files/{batch.pk}.csv")
    assert first.status_code == 200
    assert first["Content-Disposition"] == 'attachment; filename="PB-2026-10-000001.csv"'
    assert first.content == second.content == payout_batch_content(batch)
    assert first.content.decode().splitlines()[0] == (
        "\ufeffbeneficiary_name,account_number,bank,bank_code,amount,currency,reference"
    )
    assert f'href="/billing/finance/payout-files/{batch.pk}.csv"' in period_page(clerk)
    assert {p.status for p in Payout.objects.all()} == {PayoutStatus.IN_TRANSIT}


def test_marking_a_payout_paid_posts_once_and_a_missing_reference_changes_nothing(october, clerk):
    create_payouts(clerk)
    payout = Payout.objects.get(center=october.lakeside)
    token = submission_of(period_page(clerk))
    url = f"/billing/finance/payout/{payout.pk}/paid/"
    prefix = f"paid-{payout.pk}"

    refused = clerk.post(url, {"submission": token, f"{prefix}-bank_reference": "", f"{prefix}-paid_on": "2026-11-04"})
    assert refused.status_code == 400
    assert "This field is required." in text_of(refused)
    payout.refresh_from_db()
    assert payout.status == PayoutStatus.PENDING

    done = clerk.post(
        url,
        {"submission": token, f"{prefix}-bank_reference": "HZB-7781", f"{prefix}-paid_on": "2026-11-04"},
        follow=True,
    )
    again = clerk.post(
        url, {"submission": token, f"{prefix}-bank_reference": "HZB-7781", f"{prefix}-paid_on": "2026-11-04"}
    )

    assert "The payout to Lakeside AI Computing Center is marked paid." in text_of(done)
    assert again.status_code == 302
    payout.refresh_from_db()
    assert (payout.status, payout.bank_reference, payout.paid_at, payout.paid_by) == (
        PayoutStatus.PAID,
        "HZB-7781",
        datetime(2026, 11, 4, tzinfo=UTC),
        "clerk@ops.test",
    )
    assert JournalEntry.objects.filter(kind="payout").count() == 1
    assert balance(october.lakeside, AccountRole.CENTER_PAYABLE) == D("0")
    assert payout_row(period_page(clerk), payout) == (
        f"Lakeside AI Computing Center 900.00 CNY Bank transfer Paid {payout_reference(payout)} "
        "2026-11-04 · HZB-7781 · booked in 2026-11"
    )
    event = AuditEvent.objects.get(action="payout.paid")
    assert (event.actor_label, event.after["bank_reference"]) == ("clerk@ops.test", "HZB-7781")


def test_a_failed_payout_is_shown_and_retried(october, clerk):
    create_payouts(clerk)
    payout = Payout.objects.get(center=october.yangtze)
    token = submission_of(period_page(clerk))

    clerk.post(
        f"/billing/finance/payout/{payout.pk}/failed/",
        {"submission": token, f"failed-{payout.pk}-message": "Account closed"},
    )
    html = period_page(clerk)
    assert "Failed" in payout_row(html, payout) and "Account closed" in payout_row(html, payout)
    assert ReconciliationException.objects.filter(kind=ExceptionKind.PAYOUT_FAILED, payout=payout).exists()

    clerk.post(
        f"/billing/finance/payout/{payout.pk}/retry/",
        {"submission": submission_of(html), f"retry-{payout.pk}-method": ""},
    )
    payout.refresh_from_db()
    assert (payout.status, payout.failure_message) == (PayoutStatus.PENDING, "Account closed")


def test_stripe_transfers_are_sent_from_the_page(settings, clerk, django_capture_on_commit_callbacks):
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_API_BASE = None
    october = october_two_centers(yangtze_by_stripe=True)
    create_payouts(clerk)
    payout = Payout.objects.get(center=october.yangtze)
    recorder = RecordedStripe(
        (
            200,
            transfer_response(
                id="tr_1QPage",
                amount=36000,
                currency="cny",
                destination=YANGTZE_ACCOUNT,
                transfer_group="period-2026-10",
                created=int(datetime(2026, 11, 5, 9, 0, tzinfo=UTC).timestamp()),
                metadata={},
            ),
        )
    )
    settings.STRIPE_CONNECT_HTTP_CLIENT = recorder
    html = period_page(clerk)
    assert "Send 1 Stripe transfer" in html

    with django_capture_on_commit_callbacks(execute=True):
        response = clerk.post("/billing/finance/payouts/2026-10/stripe/", {"submission": submission_of(html)})

    assert response.status_code == 302
    assert [s.path for s in recorder.sent] == ["/v1/transfers"]
    payout.refresh_from_db()
    assert (payout.status, payout.stripe_transfer) == (PayoutStatus.PAID, "tr_1QPage")
    assert "Send 1 Stripe transfer" not in period_page(clerk)


def test_a_viewer_reads_without_forms_and_cannot_act(october, operator):
    viewer = browser_as(member_of(operator, Role.VIEWER), operator)

    html = period_page(viewer)
    refused = viewer.post("/billing/finance/payouts/2026-10/create/", {"submission": "x"})

    assert "Create 2 payouts" not in html and 'name="submission"' not in html
    assert refused.status_code == 403
    assert Payout.objects.count() == 0


def test_a_statement_with_nothing_to_pay_is_explained(clerk, settings):
    from billing.services.invoices import CreditRequest, credit_note_issue, invoice_finalize
    from tests.billing.payments import finance_clerk
    from tests.billing.settlement import NOV, invoice_of

    _center, offering, consumer = market(fraction="0")
    meter(
        book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8), "2026-10-05 00:00", "2026-10-05 10:00", 8
    )
    close(OCT)
    invoice = invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=NOW)
    credit_note_issue(
        actor=finance_clerk(),
        invoice_id=invoice.pk,
        lines=[CreditRequest(line_id=invoice.lines.get().pk, amount=D("1000.00"))],
        reason="Node failure",
        now=NOW,
    )
    close(NOV, now=datetime(2026, 12, 2, tzinfo=UTC))
    response = clerk.get("/billing/finance/payouts/2026-11/")

    assert "Nothing to pay: credit notes took back as much as the center earned (net payout -900.00 CNY)." in (
        text_of(response)
    )
    assert 'data-action="create"' not in response.content.decode()


# --- who sees what ------------------------------------------------------------------------------------------------


def test_a_center_sees_only_its_own_payouts_and_its_statement_shows_it(october, clerk):
    create_payouts(clerk)
    lakeside_payout = Payout.objects.get(center=october.lakeside)
    yangtze_payout = Payout.objects.get(center=october.yangtze)
    lakeside = browser_as(member_of(october.lakeside, Role.FINANCE), october.lakeside)

    page = lakeside.get("/billing/payouts/")
    statement = lakeside.get(f"/billing/statements/{statement_of(october.lakeside, OCT).pk}/")

    assert page.status_code == 200
    text = text_of(page)
    assert f"2026-10 900.00 CNY Bank transfer {payout_reference(lakeside_payout)} Pending — —" in text
    assert payout_reference(yangtze_payout) not in text and "360.00" not in text
    assert f"Payout Pending 900.00 CNY · Bank transfer Reference {payout_reference(lakeside_payout)}" in text_of(
        statement
    )
    # The finance pages and another center's payout are not the center's.
    assert lakeside.get("/billing/finance/payouts/2026-10/").status_code == 403
    assert lakeside.post(f"/billing/finance/payout/{yangtze_payout.pk}/paid/", {}).status_code == 403


def test_a_consumer_is_refused_the_payouts_page(october):
    heron = browser_as(member_of(october.heron, Role.OWNER), october.heron)

    assert heron.get("/billing/payouts/").status_code == 403
    assert heron.get("/billing/finance/payouts/").status_code == 403


def test_the_api_lists_a_centers_own_payouts_and_the_operator_everyones(october, clerk, operator, api_client):
    create_payouts(clerk)
    lakeside_payout = Payout.objects.get(center=october.lakeside)
    yangtze_payout = Payout.objects.get(center=october.yangtze)

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(october.lakeside, 'billing')}")
    own = api_client.get("/api/v1/payouts")
    foreign = api_client.get(f"/api/v1/payouts/{yangtze_payout.pk}")

    assert own.status_code == 200
    assert [item["id"] for item in own.json()["results"]] == [str(lakeside_payout.pk)]
    item = own.json()["results"][0]
    assert {k: item[k] for k in ("center", "period", "amount", "currency", "method", "status", "reference")} == {
        "center": october.lakeside.slug,
        "period": "2026-10",
        "amount": "900.00",
        "currency": "CNY",
        "method": "bank",
        "status": "pending",
        "reference": payout_reference(lakeside_payout),
    }
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "not_found"

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(october.heron, 'billing')}")
    assert api_client.get("/api/v1/payouts").status_code == 403

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(operator, 'billing')}")
    everyone = api_client.get("/api/v1/payouts?period=2026-10")
    assert sorted(item["id"] for item in everyone.json()["results"]) == sorted(
        [str(lakeside_payout.pk), str(yangtze_payout.pk)]
    )
    assert api_client.get("/api/v1/payouts?period=2026-13").status_code == 400


def test_the_operators_finance_staff_mark_a_payout_paid_through_the_api(october, operator):
    api_client = signed_in(member_of(operator, Role.FINANCE, email="api-clerk@ops.test"), operator)
    created = api_client.post("/api/v1/periods/2026-10/payouts")
    assert created.status_code == 200, created.json()
    assert [p["amount"] for p in created.json()["created"]] == ["900.00", "360.00"]
    payout = Payout.objects.get(center=october.lakeside)

    bad = api_client.post(f"/api/v1/payouts/{payout.pk}/paid", {"bank_reference": "R"}, format="json")
    paid = api_client.post(
        f"/api/v1/payouts/{payout.pk}/paid",
        {"bank_reference": "HZB-1", "paid_at": "2026-11-04T00:00:00Z"},
        format="json",
    )

    assert bad.status_code == 400 and bad.json()["code"] == "invalid"
    assert paid.status_code == 200, paid.json()
    assert (paid.json()["status"], paid.json()["bank_reference"], paid.json()["booked_in"]) == (
        "paid",
        "HZB-1",
        "2026-11",
    )
    assert JournalEntry.objects.filter(kind="payout").count() == 1


# --- voucher claims -----------------------------------------------------------------------------------------------


def _claim():
    _center, offering, consumer = market(fraction="0")
    sponsor = OrganizationFactory(kind=OrganizationKind.SPONSOR, name="Provincial Compute Fund")
    grant(consumer, amount="1000.00", of=program(sponsor_actor(sponsor), rate="0.50"))
    meter(
        book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8), "2026-10-05 00:00", "2026-10-05 10:00", 8
    )
    close(OCT)
    return VoucherClaim.objects.get(sponsor=sponsor), sponsor


def test_a_sponsor_sees_what_it_owes_per_period_and_how_to_pay(settings):
    claim, sponsor = _claim()
    browser = browser_as(member_of(sponsor, Role.FINANCE), sponsor)

    response = browser.get("/billing/claims/")

    text = text_of(response)
    assert "Period Currency Owed Paid Outstanding 2026-10 CNY 500.00 0.00 500.00 Total CNY 500.00 0.00 500.00" in text
    assert (
        f"Transfer 500.00 CNY to {settings.PLATFORM_LEGAL_NAME}, {settings.PLATFORM_BANK_NAME}, account "
        f"{settings.PLATFORM_BANK_ACCOUNT}, with the reference {claim_reference(claim)} ." in text
    )


def test_finance_records_a_claim_payment_received_and_the_sponsor_sees_it_paid(clerk):
    claim, sponsor = _claim()
    html = period_page(clerk)
    assert claim_reference(claim) in html
    prefix = f"received-{claim.pk}"

    response = clerk.post(
        f"/billing/finance/voucher-claims/{claim.pk}/received/",
        {"submission": submission_of(html), f"{prefix}-bank_reference": "PCF-118", f"{prefix}-paid_on": "2026-11-04"},
        follow=True,
    )

    assert "The payment of Provincial Compute Fund's claim for 2026-10 is recorded." in text_of(response)
    claim.refresh_from_db()
    assert (claim.status, claim.payment_reference) == (VoucherClaimStatus.PAID, "PCF-118")
    assert balance(sponsor, AccountRole.VOUCHER_RECEIVABLE) == D("0")
    sponsor_page = browser_as(member_of(sponsor, Role.VIEWER), sponsor).get("/billing/claims/")
    assert "2026-10 CNY 500.00 500.00 0.00" in text_of(sponsor_page)
    assert "Transfer 500.00 CNY" not in text_of(sponsor_page)
