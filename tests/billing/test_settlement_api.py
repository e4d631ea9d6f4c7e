"""The settlement API (API.md, Billing): invoices, the upcoming invoice, statements, the operator's finance actions
(finalize, hold, release, credit notes, void, period close), the ledger, and who may call what.

Every figure is computed by hand from a small market: Lakeside AI Computing Center sells H100 SXM 80GB at
12.50 CNY per device-hour; Blue Heron Robotics books it. Prices include VAT at 6 %: VAT = round(amount × 0.06 / 1.06).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from accounts.models import AuditEvent, OrganizationKind, Role, Scope
from billing.models import BillingPeriod, CreditNote, Invoice, JournalEntry, LedgerAccount, Statement
from tests.accounts.api_helpers import signed_in, with_token
from tests.billing.settlement import OCT, book, close, invoice_of, market, meter
from tests.billing.vouchers import grant, program, sponsor_actor
from tests.factories import OrganizationFactory, member_of, token_for
from tests.marketplace.factories import OfferingFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 5, 9, 30, tzinfo=UTC)
CENTER, CONSUMER = "lakeside-ai-computing-center", "blue-heron-robotics"
H100_OCT_5 = "8 × H100 SXM 80GB · Lakeside AI Computing Center · 2026-10-05 00:00 – 2026-10-05 10:00 UTC"


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def close_october(*others) -> dict:
    """One closed October: 8 devices × 10 h of H100 = 80 device-hours × 12.50 = 1000.00 CNY for Blue Heron, and
    for each other consumer given, 1 device × 1 h = 12.50 CNY."""
    center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    for other in others:
        theirs = book(offering, other, "2026-10-06 00:00", "2026-10-06 01:00", 1)
        meter(theirs, "2026-10-06 00:00", "2026-10-06 01:00", 1)
    close(OCT)
    invoice = invoice_of(consumer, OCT)
    return {
        "center": center,
        "offering": offering,
        "consumer": consumer,
        "booking": booking,
        "invoice": invoice,
        "line": invoice.lines.get(),
    }


@pytest.fixture
def october():
    return close_october()


@pytest.fixture
def operator():
    return OrganizationFactory(kind=OrganizationKind.OPERATOR, name="AI Computing Network")


@pytest.fixture
def finance(operator):
    """The operator's finance staff, signed in."""
    return signed_in(member_of(operator, Role.FINANCE, email="finance@platform.test"), operator)


def consumer_api(consumer, *scopes: str):
    return with_token(token_for(consumer, *(scopes or (Scope.BILLING,))))


def draft(october) -> dict:
    """The October invoice as the API shows it before finalization."""
    invoice, line = october["invoice"], october["line"]
    return {
        "id": str(invoice.pk),
        "number": None,
        "consumer": CONSUMER,
        "period": "2026-10",
        "status": "draft",
        "currency": "CNY",
        "subtotal": "1000.00",
        "voucher_amount": "0.00",
        "total": "1000.00",
        "vat_rate": "0.0600",
        "vat_amount": "56.60",  # 1000.00 × 0.06 / 1.06 = 56.603…
        "voucher": None,
        "credit_notes": [],
        "held": False,
        "hold_reason": "",
        "issued_at": "2026-11-02T00:00:00Z",  # the close ran on Nov 2, 00:00
        "finalized_at": None,
        "due_at": None,
        "paid_at": None,
        "voided_at": None,
        "amount_paid": "0.00",
        "amount_due": "1000.00",
        "lines": [
            {
                "id": line.pk,
                "booking": str(october["booking"].pk),
                "kind": "usage",
                "late": False,
                "usage_period": None,
                "center": CENTER,
                "description": H100_OCT_5,
                "device_seconds": "288000.000000",  # 8 devices × 36,000 s
                "device_hours": "80.000000",
                "unit_price": "12.50",
                "amount": "1000.00",
                "voucher_eligible": False,
            }
        ],
    }


def page(*results, count=None) -> dict:
    return {"count": len(results) if count is None else count, "next": None, "previous": None, "results": list(results)}


# --- reading invoices -------------------------------------------------------------------------------------------


def test_a_consumer_reads_its_own_invoices_and_nobody_elses():
    october = close_october(OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech"))
    api = consumer_api(october["consumer"])

    listed = api.get("/api/v1/invoices")
    detail = api.get(f"/api/v1/invoices/{october['invoice'].pk}")

    assert listed.status_code == 200
    assert listed.json() == page(draft(october))
    assert (detail.status_code, detail.json()) == (200, draft(october))


def test_a_read_token_reads_invoices_but_a_booking_token_does_not(october):
    read = consumer_api(october["consumer"], Scope.READ).get("/api/v1/invoices")
    booking = consumer_api(october["consumer"], Scope.BOOKING).get("/api/v1/invoices")

    assert (read.status_code, read.json()["count"]) == (200, 1)
    assert (booking.status_code, booking.json()) == (
        403,
        {"detail": "This needs the “billing” scope.", "code": "scope_required"},
    )


def test_the_operator_reads_every_invoice_newest_period_first_and_filters_them(october, finance):
    offering, consumer = october["offering"], october["consumer"]
    westlake = OrganizationFactory(kind=OrganizationKind.UNIVERSITY, name="Westlake University")
    november = book(offering, consumer, "2026-11-01 00:00", "2026-11-01 02:00", 2)
    meter(november, "2026-11-01 00:00", "2026-11-01 02:00", 2)  # 4 dh → 50.00
    theirs = book(offering, westlake, "2026-11-02 00:00", "2026-11-02 01:00", 1)
    meter(theirs, "2026-11-02 00:00", "2026-11-02 01:00", 1)  # 1 dh → 12.50
    close(datetime(2026, 11, 1, tzinfo=UTC))

    everything = finance.get("/api/v1/invoices").json()
    october_only = finance.get("/api/v1/invoices", {"period": "2026-10"}).json()
    drafts_of_november = finance.get("/api/v1/invoices", {"period": "2026-11", "status": "draft"}).json()
    finalized = finance.get("/api/v1/invoices", {"status": "finalized"}).json()

    # Newest period first, then by consumer name.
    assert [(i["period"], i["consumer"], i["total"]) for i in everything["results"]] == [
        ("2026-11", CONSUMER, "50.00"),
        ("2026-11", "westlake-university", "12.50"),
        ("2026-10", CONSUMER, "1000.00"),
    ]
    assert october_only == page(draft(october))
    assert [i["consumer"] for i in drafts_of_november["results"]] == [CONSUMER, "westlake-university"]
    assert finalized == page()


def test_a_malformed_period_or_status_is_a_400(october, finance):
    api = consumer_api(october["consumer"])
    center_api = with_token(token_for(october["center"], Scope.BILLING))
    malformed = {
        "detail": "A period is a month written YYYY-MM, for example 2026-11.",
        "code": "invalid_period",
        "errors": {"period": ["Expected YYYY-MM."]},
    }

    for bad in ("2026-13", "Oct 2026", "2026-1", "1999-12"):
        response = api.get("/api/v1/invoices", {"period": bad})
        assert (response.status_code, response.json()) == (400, malformed), bad
    statements = center_api.get("/api/v1/statements", {"period": "2026/10"})
    assert (statements.status_code, statements.json()) == (400, malformed)
    status = api.get("/api/v1/invoices", {"status": "unpaid"})
    assert (status.status_code, status.json()) == (
        400,
        {
            "detail": "Unknown invoice status “unpaid”.",
            "code": "invalid",
            "errors": {"status": ["Choose from: draft, finalized, paid, void."]},
        },
    )


def test_another_consumers_invoice_is_a_404_like_a_missing_one(october):
    other = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    api = consumer_api(other)
    not_found = {"detail": "No such invoice.", "code": "not_found"}

    for invoice_id in (october["invoice"].pk, "00000000-0000-0000-0000-000000000000"):
        response = api.get(f"/api/v1/invoices/{invoice_id}")
        assert (response.status_code, response.json()) == (404, not_found)
    assert api.get("/api/v1/invoices/not-a-uuid").status_code == 404
    assert api.get("/api/v1/invoices").json() == page()


def test_a_center_cannot_list_invoices_and_a_consumer_cannot_list_statements(october):
    center_api = with_token(token_for(october["center"], Scope.BILLING))
    api = consumer_api(october["consumer"])

    invoices = center_api.get("/api/v1/invoices")
    statements = api.get("/api/v1/statements")
    upcoming = center_api.get("/api/v1/invoices/upcoming")

    assert (invoices.status_code, invoices.json()) == (
        403,
        {"detail": "This is not available to organizations of kind “center”.", "code": "wrong_organization_kind"},
    )
    assert (statements.status_code, statements.json()) == (
        403,
        {"detail": "This is not available to organizations of kind “enterprise”.", "code": "wrong_organization_kind"},
    )
    assert upcoming.status_code == 403


# --- the upcoming invoice ---------------------------------------------------------------------------------------


def upcoming(consumer, **fields) -> dict:
    return {
        "number": None,
        "consumer": consumer,
        "period": "2026-11",
        "status": "upcoming",
        "currency": "CNY",
        "currencies": [],
        "subtotal": "0.00",
        "voucher_amount": "0.00",
        "total": "0.00",
        "vat_rate": "0.0600",
        "vat_amount": "0.00",
        "voucher": None,
        "as_of": "2026-11-05T09:30:00Z",
        "lines": [],
        **fields,
    }


def test_the_upcoming_invoice_with_nothing_to_bill_has_no_lines_and_zero_amounts(enterprise):
    response = consumer_api(enterprise).get("/api/v1/invoices/upcoming")

    assert (response.status_code, response.json()) == (200, upcoming("blue-heron-robotics"))
    assert not Invoice.objects.exists()
    assert not BillingPeriod.objects.exists()


def test_the_upcoming_invoice_rates_usage_so_far_and_applies_the_voucher_storing_nothing(october):
    offering, consumer = october["offering"], october["consumer"]
    booking = book(offering, consumer, "2026-11-03 00:00", "2026-11-03 04:00", 4)
    meter(booking, "2026-11-03 00:00", "2026-11-03 03:00", 4)  # 12 dh × 12.50 = 150.00
    grant(consumer, rate="0.50", amount="60.00", name="Hangzhou compute voucher")
    sponsor = consumer.voucher_grants.get().program.sponsor
    invoices, lines = Invoice.objects.count(), list(Invoice.objects.values_list("pk", "total"))

    response = consumer_api(consumer).get("/api/v1/invoices/upcoming")

    # round(0.5 × 150.00) = 75.00, capped by the 60.00 granted; VAT round(150 × 0.06 / 1.06) = round(8.490…) = 8.49.
    assert (response.status_code, response.json()) == (
        200,
        upcoming(
            CONSUMER,
            currencies=["CNY"],
            subtotal="150.00",
            voucher_amount="60.00",
            total="90.00",
            vat_amount="8.49",
            voucher={"program": "Hangzhou compute voucher", "sponsor": sponsor.slug},
            lines=[
                {
                    "booking": str(booking.pk),
                    "kind": "usage",
                    "late": False,
                    "usage_period": None,
                    "center": CENTER,
                    "description": "4 × H100 SXM 80GB · Lakeside AI Computing Center · 2026-11-03 00:00 – "
                    "2026-11-03 04:00 UTC",
                    "device_seconds": "43200.000000",
                    "device_hours": "12.000000",
                    "unit_price": "12.50",
                    "amount": "150.00",
                    "voucher_eligible": True,
                }
            ],
        ),
    )
    assert Invoice.objects.count() == invoices
    assert list(Invoice.objects.values_list("pk", "total")) == lines
    assert consumer.voucher_grants.get().remaining == Decimal("60.00")


def test_late_usage_shows_marked_late_with_its_month_upcoming_and_then_invoiced(finance):
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-28 00:00", "2026-10-28 04:00", 8)
    meter(booking, "2026-10-28 00:00", "2026-10-28 01:00", 8)
    close(OCT)
    meter(booking, "2026-10-28 01:00", "2026-10-28 02:30", 8)  # arrives after the close: 12 dh → 150.00
    late_line = {
        "booking": str(booking.pk),
        "kind": "usage",
        "late": True,
        "usage_period": "2026-10",
        "center": CENTER,
        "description": "8 × H100 SXM 80GB · Lakeside AI Computing Center · 2026-10-28 00:00 – 2026-10-28 04:00 UTC",
        "device_seconds": "43200.000000",
        "device_hours": "12.000000",
        "unit_price": "12.50",
        "amount": "150.00",
        "voucher_eligible": False,
    }

    before = consumer_api(consumer).get("/api/v1/invoices/upcoming").json()
    close(datetime(2026, 11, 1, tzinfo=UTC))
    november = finance.get("/api/v1/invoices", {"period": "2026-11"}).json()["results"][0]

    assert (before["lines"], before["total"]) == ([late_line], "150.00")
    line = Invoice.objects.get(period__start=datetime(2026, 11, 1, tzinfo=UTC)).lines.get()
    assert (november["lines"], november["total"]) == ([{"id": line.pk, **late_line}], "150.00")


def test_the_upcoming_invoice_picks_one_currency_and_names_the_others(october):
    center, offering, consumer = october["center"], october["offering"], october["consumer"]
    dollars = OfferingFactory(
        center=center,
        site=offering.site,
        price_per_device_hour=Decimal("2.1000"),
        currency="USD",
        min_commit_fraction=Decimal(0),
    )
    booking = book(dollars, consumer, "2026-11-04 00:00", "2026-11-04 03:00", 2)
    meter(booking, "2026-11-04 00:00", "2026-11-04 03:00", 2)  # 6 dh × 2.10 = 12.60 USD
    api = consumer_api(consumer)

    only_usd = api.get("/api/v1/invoices/upcoming").json()
    cny_too = book(offering, consumer, "2026-11-04 00:00", "2026-11-04 01:00", 1)
    meter(cny_too, "2026-11-04 00:00", "2026-11-04 01:00", 1)  # 1 dh → 12.50 CNY
    default = api.get("/api/v1/invoices/upcoming").json()
    usd = api.get("/api/v1/invoices/upcoming", {"currency": "usd"}).json()
    euros = api.get("/api/v1/invoices/upcoming", {"currency": "EUR"}).json()
    bad = api.get("/api/v1/invoices/upcoming", {"currency": "XYZ"})

    # The only currency with charges; then, with two, the organization's billing currency (CNY).
    assert (only_usd["currency"], only_usd["currencies"], only_usd["total"]) == ("USD", ["USD"], "12.60")
    assert (default["currency"], default["currencies"], default["total"]) == ("CNY", ["CNY", "USD"], "12.50")
    assert (usd["currency"], usd["total"], usd["vat_amount"]) == ("USD", "12.60", "0.71")  # 12.60 × 0.06 / 1.06
    assert (euros["currency"], euros["total"], euros["lines"]) == ("EUR", "0.00", [])
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"currency": ["Unsupported currency. Use one of: " + ALL_CURRENCIES + "."]}


ALL_CURRENCIES = "CHF, CNY, EUR, GBP, HKD, JPY, KRW, SGD, USD"


def test_the_upcoming_invoice_of_a_closed_or_future_month_is_a_400(october):
    api = consumer_api(october["consumer"])

    closed = api.get("/api/v1/invoices/upcoming", {"period": "2026-10"})
    future = api.get("/api/v1/invoices/upcoming", {"period": "2026-12"})

    assert (closed.status_code, closed.json()) == (
        400,
        {
            "detail": "2026-10 is closed: its invoice is issued.",
            "code": "period_closed",
            "errors": {"period": ["2026-10"]},
        },
    )
    assert (future.status_code, future.json()["code"]) == (400, "invalid_period")


# --- statements -------------------------------------------------------------------------------------------------


def test_a_center_reads_its_statements_with_their_lines(october, finance):
    center = october["center"]
    other_center = OrganizationFactory(kind=OrganizationKind.CENTER, name="Guizhou Data Park")
    statement = Statement.objects.get(center=center)
    api = with_token(token_for(center, Scope.READ))

    listed = api.get("/api/v1/statements", {"period": "2026-10"})
    detail = api.get(f"/api/v1/statements/{statement.pk}")
    theirs = with_token(token_for(other_center, Scope.BILLING)).get(f"/api/v1/statements/{statement.pk}")

    expected = {
        "id": str(statement.pk),
        "center": CENTER,
        "period": "2026-10",
        "currency": "CNY",
        "gross": "1000.00",
        "fee_rate": "0.1000",
        "fee": "100.00",  # round(1000.00 × 0.10)
        "payout": "900.00",
        "credit_adjustment": "0.00",
        "fee_adjustment": "0.00",
        "net_payout": "900.00",
        "status": "issued",
        "issued_at": "2026-11-02T00:00:00Z",
        "paid_at": None,
        "lines": [
            {
                "id": october["line"].pk,
                "consumer": CONSUMER,
                "invoice": str(october["invoice"].pk),
                "booking": str(october["booking"].pk),
                "kind": "usage",
                "late": False,
                "usage_period": None,
                "description": H100_OCT_5,
                "device_seconds": "288000.000000",
                "device_hours": "80.000000",
                "unit_price": "12.50",
                "amount": "1000.00",
            }
        ],
        "credit_lines": [],
    }
    assert listed.json() == page(expected)
    assert (detail.status_code, detail.json()) == (200, expected)
    assert (theirs.status_code, theirs.json()) == (404, {"detail": "No such statement.", "code": "not_found"})
    assert finance.get("/api/v1/statements").json()["count"] == 1


def test_the_statement_list_reads_its_lines_in_a_fixed_number_of_queries(finance):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.billing.settlement import NOV

    october = close_october()
    with CaptureQueriesContext(connection) as one:
        first = finance.get("/api/v1/statements")
    # A second month gives a second statement with lines of its own.
    later = book(october["offering"], october["consumer"], "2026-11-05 00:00", "2026-11-05 01:00", 2)
    meter(later, "2026-11-05 00:00", "2026-11-05 01:00", 2)
    close(NOV)
    with CaptureQueriesContext(connection) as two:
        second = finance.get("/api/v1/statements")

    assert (first.json()["count"], second.json()["count"]) == (1, 2)
    assert [len(s["lines"]) for s in second.json()["results"]] == [1, 1]
    assert len(two.captured_queries) == len(one.captured_queries)


def test_a_credit_note_shows_on_the_centers_statement_of_the_period_it_was_issued_in(october, finance):
    invoice, line = october["invoice"], october["line"]
    finance.post(f"/api/v1/invoices/{invoice.pk}/finalize")
    finance.post(
        f"/api/v1/invoices/{invoice.pk}/credit-notes",
        {"reason": "Node 3 was down for an hour", "lines": [{"line": line.pk, "amount": "125.00"}]},
        format="json",
    )
    close(datetime(2026, 11, 1, tzinfo=UTC))
    november = Statement.objects.get(period__start=datetime(2026, 11, 1, tzinfo=UTC))

    body = with_token(token_for(october["center"], Scope.BILLING)).get(f"/api/v1/statements/{november.pk}").json()

    # Nothing was sold in November: the statement only gives back 125.00, of which the fee's share is 12.50.
    assert {name: body[name] for name in ("gross", "fee", "payout", "credit_adjustment", "fee_adjustment")} == {
        "gross": "0.00",
        "fee": "0.00",
        "payout": "0.00",
        "credit_adjustment": "-125.00",
        "fee_adjustment": "-12.50",
    }
    assert body["net_payout"] == "-112.50"
    assert (body["lines"], body["credit_lines"]) == (
        [],
        [
            {
                "credit_note": "CN-2026-11-000001",
                "invoice": "INV-2026-10-000001",
                "consumer": CONSUMER,
                "line": line.pk,
                "booking": str(october["booking"].pk),
                "amount": "-125.00",
            }
        ],
    )


# --- finance actions --------------------------------------------------------------------------------------------


def test_finalizing_numbers_invoices_gaplessly_in_order(finance):
    westlake = OrganizationFactory(kind=OrganizationKind.UNIVERSITY, name="Westlake University")
    october = close_october(westlake)
    first, second = october["invoice"], invoice_of(westlake, OCT)

    one = finance.post(f"/api/v1/invoices/{first.pk}/finalize")
    two = finance.post(f"/api/v1/invoices/{second.pk}/finalize")
    again = finance.post(f"/api/v1/invoices/{first.pk}/finalize")

    assert one.status_code == 200
    assert one.json() == {
        **draft(october),
        "number": "INV-2026-10-000001",
        "status": "finalized",
        "finalized_at": "2026-11-05T09:30:00Z",
        "due_at": "2026-12-05T09:30:00Z",  # 30 days' payment terms
    }
    assert (two.status_code, two.json()["number"]) == (200, "INV-2026-10-000002")
    assert (again.status_code, again.json()["number"]) == (200, "INV-2026-10-000001")
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["INV-2026-10-000001", "INV-2026-10-000002"]
    assert consumer_api(october["consumer"]).get(f"/api/v1/invoices/{first.pk}").json()["number"] == (
        "INV-2026-10-000001"
    )


def test_only_the_operators_finance_staff_finalize(october, operator):
    invoice = october["invoice"]
    before = list(Invoice.objects.values())
    viewer = signed_in(member_of(operator, Role.MEMBER), operator)
    token = with_token(token_for(operator, Scope.BILLING))
    consumer = consumer_api(october["consumer"])

    as_member = viewer.post(f"/api/v1/invoices/{invoice.pk}/finalize")
    as_token = token.post(f"/api/v1/invoices/{invoice.pk}/finalize")
    as_consumer = consumer.post(f"/api/v1/invoices/{invoice.pk}/finalize")
    read_only = with_token(token_for(operator, Scope.READ)).post(f"/api/v1/invoices/{invoice.pk}/finalize")

    role_required = {"detail": "Only the platform operator's finance staff can do this.", "code": "role_required"}
    # A member's role carries no `billing` scope; a token has the scope but is nobody's finance role.
    assert (as_member.status_code, as_member.json()["code"]) == (403, "scope_required")
    assert (as_token.status_code, as_token.json()) == (403, role_required)
    assert (as_consumer.status_code, as_consumer.json()["code"]) == (403, "wrong_organization_kind")
    assert (read_only.status_code, read_only.json()) == (
        403,
        {"detail": "This needs the “billing” scope.", "code": "scope_required"},
    )
    assert list(Invoice.objects.values()) == before


def test_finance_holds_and_releases_a_draft(october, finance):
    invoice = october["invoice"]

    missing = finance.post(f"/api/v1/invoices/{invoice.pk}/hold", {}, format="json")
    held = finance.post(
        f"/api/v1/invoices/{invoice.pk}/hold", {"reason": "Usage disputed by the consumer"}, format="json"
    )
    seen_by_consumer = consumer_api(october["consumer"]).get(f"/api/v1/invoices/{invoice.pk}").json()
    released = finance.post(f"/api/v1/invoices/{invoice.pk}/release")

    assert (missing.status_code, missing.json()) == (
        400,
        {"detail": "Some fields are invalid.", "code": "invalid", "errors": {"reason": ["This field is required."]}},
    )
    assert (held.status_code, held.json()) == (
        200,
        {**draft(october), "held": True, "hold_reason": "Usage disputed by the consumer"},
    )
    # The consumer sees that its draft is held, not finance's note.
    assert (seen_by_consumer["held"], seen_by_consumer["hold_reason"]) == (True, "")
    # Released: finalized when its review window ends; the note stays as the record of why it was held.
    assert (released.status_code, released.json()) == (
        200,
        {**draft(october), "hold_reason": "Usage disputed by the consumer"},
    )
    assert list(
        AuditEvent.objects.filter(action__startswith="invoice.").order_by("pk").values_list("action", flat=True)
    ) == [
        "invoice.held",
        "invoice.released",
    ]

    finance.post(f"/api/v1/invoices/{invoice.pk}/finalize")
    late = finance.post(f"/api/v1/invoices/{invoice.pk}/hold", {"reason": "too late"}, format="json")
    assert (late.status_code, late.json()) == (
        409,
        {"detail": "Only a draft invoice can be held.", "code": "invalid_transition"},
    )


def credit_note_body(october, number="CN-2026-11-000001", total="125.00") -> dict:
    note = CreditNote.objects.get(number=number)
    return {
        "id": str(note.pk),
        "number": number,
        "invoice": str(october["invoice"].pk),
        "invoice_number": "INV-2026-10-000001",
        "consumer": CONSUMER,
        "period": "2026-11",
        "currency": "CNY",
        "total": total,
        "vat_amount": "7.08",  # 125.00 × 0.06 / 1.06 = 7.075… → 7.08
        "reason": "Node 3 was down for an hour",
        "status": "open",
        "issued_at": "2026-11-05T09:30:00Z",
        "lines": [{"line": october["line"].pk, "center": CENTER, "amount": total}],
    }


def test_a_credit_note_is_issued_once_per_idempotency_key(october, finance):
    invoice, line = october["invoice"], october["line"]
    finance.post(f"/api/v1/invoices/{invoice.pk}/finalize")
    body = {"reason": "Node 3 was down for an hour", "lines": [{"line": line.pk, "amount": "125.00"}]}
    url = f"/api/v1/invoices/{invoice.pk}/credit-notes"

    first = finance.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="cn-1")
    replay = finance.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="cn-1")
    changed = finance.post(url, {**body, "reason": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="cn-1")

    assert (first.status_code, first.json()) == (201, credit_note_body(october))
    assert (replay.status_code, replay.json(), replay.headers["Idempotent-Replayed"]) == (
        201,
        credit_note_body(october),
        "true",
    )
    assert (changed.status_code, changed.json()["code"]) == (409, "idempotency_conflict")
    assert CreditNote.objects.count() == 1
    assert JournalEntry.objects.filter(kind="credit_note").count() == 1
    shown = consumer_api(october["consumer"]).get(f"/api/v1/invoices/{invoice.pk}").json()["credit_notes"]
    assert shown == [
        {
            "number": "CN-2026-11-000001",
            "total": "125.00",
            "reason": "Node 3 was down for an hour",
            "issued_at": "2026-11-05T09:30:00Z",
        }
    ]
    assert consumer_api(october["consumer"]).get("/api/v1/credit-notes").json() == page(credit_note_body(october))


def test_a_credit_note_over_what_a_line_holds_or_on_a_draft_is_refused_and_changes_nothing(october, finance):
    invoice, line = october["invoice"], october["line"]
    url = f"/api/v1/invoices/{invoice.pk}/credit-notes"
    body = {"reason": "Goodwill", "lines": [{"line": line.pk, "amount": "1000.01"}]}

    on_draft = finance.post(url, body, format="json")
    finance.post(f"/api/v1/invoices/{invoice.pk}/finalize")
    too_much = finance.post(url, body, format="json")
    no_lines = finance.post(url, {"reason": "Goodwill", "lines": []}, format="json")
    a_float = finance.post(url, {"reason": "Goodwill", "lines": [{"line": line.pk, "amount": 12.5}]}, format="json")
    not_its_line = finance.post(
        url, {"reason": "Goodwill", "lines": [{"line": line.pk + 1, "amount": "1"}]}, format="json"
    )

    assert (on_draft.status_code, on_draft.json()) == (
        409,
        {
            "detail": "Only a finalized or paid invoice is corrected with a credit note; this one is Draft.",
            "code": "invalid_state",
        },
    )
    assert (too_much.status_code, too_much.json()) == (
        409,
        {"detail": f"Line {line.pk} can be credited at most 1000.00 CNY more.", "code": "credit_exceeds_line"},
    )
    assert (no_lines.status_code, no_lines.json()["errors"]) == (400, {"lines": ["This list may not be empty."]})
    assert (a_float.status_code, a_float.json()["code"]) == (400, "invalid")
    assert (not_its_line.status_code, not_its_line.json()["detail"]) == (
        400,
        f"Line {line.pk + 1} is not a line of this invoice.",
    )
    assert not CreditNote.objects.exists()


def test_voiding_credits_what_is_left_and_marks_the_invoice_void(october, finance):
    invoice, line = october["invoice"], october["line"]
    finance.post(f"/api/v1/invoices/{invoice.pk}/finalize")

    no_reason = finance.post(f"/api/v1/invoices/{invoice.pk}/void", {"reason": " "}, format="json")
    voided = finance.post(f"/api/v1/invoices/{invoice.pk}/void", {"reason": "Booked by mistake"}, format="json")
    twice = finance.post(f"/api/v1/invoices/{invoice.pk}/void", {"reason": "Booked by mistake"}, format="json")

    assert (no_reason.status_code, no_reason.json()["errors"]) == (400, {"reason": ["This field may not be blank."]})
    assert voided.status_code == 200
    assert voided.json() == {
        **draft(october),
        "number": "INV-2026-10-000001",
        "status": "void",
        "finalized_at": "2026-11-05T09:30:00Z",
        "due_at": "2026-12-05T09:30:00Z",
        "voided_at": "2026-11-05T09:30:00Z",
        "amount_due": "0.00",
        "credit_notes": [
            {
                "number": "CN-2026-11-000001",
                "total": "1000.00",
                "reason": "Booked by mistake",
                "issued_at": "2026-11-05T09:30:00Z",
            }
        ],
    }
    assert (twice.status_code, twice.json()) == (
        409,
        {"detail": "Only a finalized, unpaid invoice can be voided.", "code": "invalid_transition"},
    )
    assert list(CreditNote.objects.values_list("total", flat=True)) == [Decimal("1000.00")]
    assert line.credits.get().amount == Decimal("1000.00")


# --- periods ----------------------------------------------------------------------------------------------------


def test_closing_a_period_queues_the_close_which_issues_its_invoices(finance, django_capture_on_commit_callbacks):
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)

    with django_capture_on_commit_callbacks(execute=True):
        response = finance.post("/api/v1/periods/2026-10/close")
        # Queued to run once the request's transaction commits, not yet run.
        assert BillingPeriod.objects.get(start=OCT).status == "open"

    assert response.status_code == 202
    assert response.json() == {
        "period": "2026-10",
        "start": "2026-10-01T00:00:00Z",
        "end": "2026-11-01T00:00:00Z",
        "status": "open",
        "usage_cutoff": None,
        "closing_started_at": None,
        "closed_at": None,
        "closed_by": "",
    }
    # Tasks run eagerly in tests: the close has run.
    period = BillingPeriod.objects.get(start=OCT)
    assert (period.status, period.closed_at, period.closed_by) == ("closed", NOW, "finance@platform.test")
    assert invoice_of(consumer, OCT).total == Decimal("1000.00")

    again = finance.post("/api/v1/periods/2026-10/close")
    assert (again.status_code, again.json()["status"], again.json()["closed_at"]) == (
        200,
        "closed",
        "2026-11-05T09:30:00Z",
    )
    listed = finance.get("/api/v1/periods").json()
    assert [(p["period"], p["status"]) for p in listed["results"]] == [("2026-10", "closed")]


def test_a_period_that_has_not_ended_or_follows_an_open_one_is_not_queued(finance, django_capture_on_commit_callbacks):
    _center, offering, consumer = market(fraction="0")
    book(offering, consumer, "2026-09-20 00:00", "2026-09-20 01:00", 1)
    book(offering, consumer, "2026-10-20 00:00", "2026-10-20 01:00", 1)

    with django_capture_on_commit_callbacks(execute=True) as queued:
        current = finance.post("/api/v1/periods/2026-11/close")
        out_of_order = finance.post("/api/v1/periods/2026-10/close")
        malformed = finance.post("/api/v1/periods/november/close")

    assert (current.status_code, current.json()) == (
        422,
        {"detail": "2026-11 has not ended yet: it can be closed from 2026-12-01 00:00 (UTC).", "code": "period_open"},
    )
    assert (out_of_order.status_code, out_of_order.json()) == (
        422,
        {
            "detail": "Close 2026-09 first: periods close in order.",
            "code": "earlier_period_open",
            "earlier_period": "2026-09",
        },
    )
    assert (malformed.status_code, malformed.json()["code"]) == (400, "invalid_period")
    assert queued == []
    assert not BillingPeriod.objects.exists()


def test_only_the_operators_finance_staff_close_periods(operator):
    _center, _offering, consumer = market(fraction="0")
    member = signed_in(member_of(operator, Role.MEMBER), operator)

    as_member = member.post("/api/v1/periods/2026-10/close")
    as_consumer = consumer_api(consumer).post("/api/v1/periods/2026-10/close")
    consumer_periods = consumer_api(consumer).get("/api/v1/periods")

    as_token = with_token(token_for(operator, Scope.BILLING)).post("/api/v1/periods/2026-10/close")

    assert (as_member.status_code, as_member.json()["code"]) == (403, "scope_required")
    assert (as_token.status_code, as_token.json()["code"]) == (403, "role_required")
    assert (as_consumer.status_code, as_consumer.json()["code"]) == (403, "wrong_organization_kind")
    assert consumer_periods.status_code == 403
    assert not BillingPeriod.objects.exists()


# --- the ledger -------------------------------------------------------------------------------------------------


def account(organization, role: str) -> int:
    return LedgerAccount.objects.get(organization=organization, role=role, currency="CNY").pk


def test_the_trial_balance_lists_every_account_and_its_totals_are_equal(finance):
    center, offering, consumer = market(fraction="0")
    sponsor = OrganizationFactory(kind=OrganizationKind.SPONSOR, name="National Compute Fund", slug="ncf")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)  # 1000.00
    grant(consumer, rate="0.30", amount="100.00", of=program(sponsor_actor(sponsor), rate="0.30", cap="100.00"))
    close(OCT)

    response = finance.get("/api/v1/ledger/trial-balance")

    # Invoice: receivable +1000 / center −1000. Voucher: min(round(0.3 × 1000), 100) = 100: sponsor +100 /
    # receivable −100. Fee: round(1000 × 0.10) = 100: center +100 / platform revenue −100.
    assert (response.status_code, response.json()) == (
        200,
        {
            "until": None,
            "currencies": [
                {
                    "currency": "CNY",
                    "debits": "1200.00",
                    "credits": "1200.00",
                    "difference": "0.00",
                    "accounts": [
                        {
                            "id": account(None, "fee_revenue"),
                            "organization": None,
                            "role": "fee_revenue",
                            "currency": "CNY",
                            "debits": "0.00",
                            "credits": "100.00",
                            "balance": "-100.00",
                        },
                        {
                            "id": account(consumer, "receivable"),
                            "organization": CONSUMER,
                            "role": "receivable",
                            "currency": "CNY",
                            "debits": "1000.00",
                            "credits": "100.00",
                            "balance": "900.00",
                        },
                        {
                            "id": account(center, "center_payable"),
                            "organization": CENTER,
                            "role": "center_payable",
                            "currency": "CNY",
                            "debits": "100.00",
                            "credits": "1000.00",
                            "balance": "-900.00",
                        },
                        {
                            "id": account(sponsor, "voucher_receivable"),
                            "organization": "ncf",
                            "role": "voucher_receivable",
                            "currency": "CNY",
                            "debits": "100.00",
                            "credits": "0.00",
                            "balance": "100.00",
                        },
                    ],
                }
            ],
        },
    )
    # Nothing was posted before the close (Nov 2, 00:00).
    before = finance.get("/api/v1/ledger/trial-balance", {"until": "2026-11-01T23:59:59Z"})
    assert before.json() == {"until": "2026-11-01T23:59:59Z", "currencies": []}
    consumer_asks = consumer_api(consumer).get("/api/v1/ledger/trial-balance")
    assert consumer_asks.status_code == 403


def test_an_organization_reads_its_own_balances_and_the_operator_anyones(october, finance):
    consumer, center = october["consumer"], october["center"]
    api = consumer_api(consumer, Scope.READ)

    own = api.get("/api/v1/ledger/balances")
    by_name = api.get("/api/v1/ledger/balances", {"organization": CONSUMER})
    someone_else = api.get("/api/v1/ledger/balances", {"organization": CENTER})
    platform = finance.get("/api/v1/ledger/balances")
    of_center = finance.get("/api/v1/ledger/balances", {"organization": CENTER})
    unknown = finance.get("/api/v1/ledger/balances", {"organization": "nobody"})

    receivable = {
        "id": account(consumer, "receivable"),
        "organization": CONSUMER,
        "role": "receivable",
        "currency": "CNY",
        "debits": "1000.00",
        "credits": "0.00",
        "balance": "1000.00",
    }
    assert (own.status_code, own.json()) == (200, {"organization": CONSUMER, "accounts": [receivable]})
    assert by_name.json() == own.json()
    assert (someone_else.status_code, someone_else.json()) == (
        404,
        {"detail": "No such organization.", "code": "not_found"},
    )
    assert platform.json() == {
        "organization": None,
        "accounts": [
            {
                "id": account(None, "fee_revenue"),
                "organization": None,
                "role": "fee_revenue",
                "currency": "CNY",
                "debits": "0.00",
                "credits": "100.00",
                "balance": "-100.00",
            }
        ],
    }
    assert of_center.json() == {
        "organization": CENTER,
        "accounts": [
            {
                "id": account(center, "center_payable"),
                "organization": CENTER,
                "role": "center_payable",
                "currency": "CNY",
                "debits": "100.00",
                "credits": "1000.00",
                "balance": "-900.00",
            }
        ],
    }
    assert unknown.status_code == 404
