"""A consumer's invoices in the browser: the list (period filter, pagination), one invoice's page with every
figure, and who may see what. The numbers are those of `closed_october` (tests.billing.invoice_pages): 32
device-hours at 12.50 = 400.00 CNY, half paid by a voucher, VAT 6 % included = 22.64."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine

from accounts.models import OrganizationKind, Role
from billing.models import Invoice
from billing.services.invoices import invoice_void
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.billing.invoice_pages import closed_october, credit, finance_actor
from tests.billing.page_rows import bare_invoice, row_text, rows_marked
from tests.billing.settlement import NOV, OCT, at, book, close, invoice_of, meter
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import OfferingFactory

pytestmark = pytest.mark.django_db


def reader(organization, role=Role.VIEWER):
    return browser_as(member_of(organization, role), organization)


# --- the list -----------------------------------------------------------------------------------------------------


def test_the_list_shows_the_organizations_own_invoices():
    october = closed_october()
    theirs = bare_invoice(OrganizationFactory(name="Qingluo Biotech"), OCT, "99.00")

    response = reader(october.consumer).get("/billing/invoices/")

    assert response.status_code == 200
    assert rows_marked(response, "data-invoice-id") == [str(october.invoice.pk)]
    assert str(theirs.pk) not in response.content.decode()
    assert row_text(response, "data-invoice-id", october.invoice.pk) == (
        "INV-2026-10-000001 2026-10 Finalized CNY 400.00 −200.00 200.00 2026-12-02"
    )
    html = response.content.decode()
    assert f'href="/billing/invoices/{october.invoice.pk}/"' in html
    assert 'href="/billing/invoices.csv"' in html
    assert 'data-invoice-status="finalized"' in html


def test_a_draft_shows_as_draft_without_a_due_date():
    october = closed_october(finalize=False, voucher=False)

    response = reader(october.consumer).get("/billing/invoices/")

    assert row_text(response, "data-invoice-id", october.invoice.pk) == "Draft 2026-10 Draft CNY 400.00 — 400.00 —"


def test_the_list_filters_by_period_and_the_csv_link_follows_the_filter():
    october = closed_october()
    november = bare_invoice(october.consumer, NOV, "75.00")
    browser = reader(october.consumer)

    only_october = browser.get("/billing/invoices/?period=2026-10")
    only_november = browser.get("/billing/invoices/?period=2026-11")
    nothing = browser.get("/billing/invoices/?period=2026-09")

    assert rows_marked(only_october, "data-invoice-id") == [str(october.invoice.pk)]
    assert 'href="/billing/invoices.csv?period=2026-10"' in only_october.content.decode()
    assert rows_marked(only_november, "data-invoice-id") == [str(november.pk)]
    assert rows_marked(nothing, "data-invoice-id") == []
    assert "No invoices for 2026-09." in text_of(nothing)


@pytest.mark.parametrize("period", ["2026-13", "October", "26-10", "1999-12"])
def test_a_malformed_period_shows_the_error_and_the_unfiltered_list(period):
    october = closed_october()
    november = bare_invoice(october.consumer, NOV, "75.00")

    response = reader(october.consumer).get(f"/billing/invoices/?period={period}")

    assert response.status_code == 200
    assert "A period is a month written YYYY-MM, for example 2026-11." in text_of(response)
    assert rows_marked(response, "data-invoice-id") == [str(november.pk), str(october.invoice.pk)]
    assert 'href="/billing/invoices.csv"' in response.content.decode()


def test_the_list_pages_like_the_markets_lists():
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")
    invoices = [
        bare_invoice(consumer, datetime(2024 + (m // 12), m % 12 + 1, 1, tzinfo=UTC), "1.00") for m in range(26)
    ]
    newest_first = [str(invoice.pk) for invoice in reversed(invoices)]
    browser = reader(consumer)

    first = browser.get("/billing/invoices/")
    second = browser.get("/billing/invoices/?page=2")
    beyond = browser.get("/billing/invoices/?page=9")

    assert rows_marked(first, "data-invoice-id") == newest_first[:25]
    assert "Page 1 of 2" in text_of(first)
    assert 'href="?page=2"' in first.content.decode()
    assert rows_marked(second, "data-invoice-id") == newest_first[25:]
    assert "Page 2 of 2" in text_of(second)
    assert rows_marked(beyond, "data-invoice-id") == newest_first[25:]


def test_the_list_reloads_as_a_partial_when_an_invoice_changes():
    october = closed_october()

    response = reader(october.consumer).get("/billing/invoices/?period=2026-10", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert "<html" not in html
    assert f'<tr data-invoice-id="{october.invoice.pk}">' in html
    assert "HX-Request" in response["Vary"]


def test_an_organization_without_invoices_is_told_when_the_first_comes():
    consumer = OrganizationFactory(kind=OrganizationKind.UNIVERSITY, name="West Lake University")

    response = reader(consumer).get("/billing/invoices/")

    assert "No invoices yet: the first one is issued when a month with usage closes." in text_of(response)


# --- one invoice --------------------------------------------------------------------------------------------------


def test_the_invoice_page_shows_issuer_consumer_lines_totals_vat_and_how_to_pay():
    october = closed_october(legal_name="蓝鹭机器人有限公司", tax_id="91330106MA2B0000X1")

    response = reader(october.consumer, Role.FINANCE).get(f"/billing/invoices/{october.invoice.pk}/")

    assert response.status_code == 200
    text = text_of(response)
    html = response.content.decode()
    assert (
        "Issued by AI Computing Network Platform Co., Ltd. Tax id: 91330100MA2DEMO00X Hangzhou, Zhejiang, China" in text
    )
    assert "Billed to 蓝鹭机器人有限公司 Tax id: 91330106MA2B0000X1" in text
    assert (
        "Number INV-2026-10-000001 Period 2026-10 Currency CNY Issued 2026-11-02 00:00 UTC "
        "Finalized 2026-11-02 00:00 UTC Due 2026-12-02" in text
    )
    assert (
        "8 × H100 SXM 80GB · Lakeside AI Computing Center · 2026-10-05 00:00 – 2026-10-05 10:00 UTC "
        f"Booking {str(october.booking.pk)[:8]} Usage voucher 32.0000 12.50 400.00" in text
    )
    assert (
        "Subtotal 400.00 CNY Voucher: Compute voucher 2026 (Zhejiang Compute Fund) −200.00 CNY Total 200.00 CNY "
        "Prices include VAT; of which VAT 6 %: 22.64 CNY" in text
    )
    assert (
        "How to pay by bank transfer Beneficiary AI Computing Network Platform Co., Ltd. "
        "Bank Bank of Hangzhou, Xixi branch Account 3301 0401 6000 0000 000 Amount 200.00 CNY "
        "Payment reference INV-2026-10-000001" in text
    )
    assert "Please pay by 2026-12-02." in text
    assert f'href="/billing/invoices/{october.invoice.pk}/pdf/"' in html
    assert f'href="/billing/invoices/{october.invoice.pk}/lines.csv"' in html
    assert f'href="/bookings/{october.booking.pk}/"' in html
    assert "Credit notes" not in text


def test_an_organization_without_a_legal_name_is_billed_under_its_name():
    october = closed_october(voucher=False)

    text = text_of(reader(october.consumer).get(f"/billing/invoices/{october.invoice.pk}/"))

    assert "Billed to Blue Heron Robotics Number" in text
    assert "Subtotal 400.00 CNY Total 400.00 CNY" in text


def test_a_draft_has_no_number_no_due_date_and_no_payment_instructions_yet():
    october = closed_october(finalize=False)

    text = text_of(reader(october.consumer).get(f"/billing/invoices/{october.invoice.pk}/"))

    assert "Draft invoice Draft" in text
    assert "This invoice is a draft under review" in text
    assert "Number Draft Period 2026-10 Currency CNY Issued 2026-11-02 00:00 UTC Finalized — Due —" in text
    assert "How to pay" not in text


def test_credit_notes_are_listed_and_lower_the_amount_due():
    october = closed_october()
    credit(october.invoice, "50.00")

    text = text_of(reader(october.consumer).get(f"/billing/invoices/{october.invoice.pk}/"))

    assert (
        "Total 200.00 CNY Prices include VAT; of which VAT 6 %: 22.64 CNY Credited −50.00 CNY Amount due 150.00 CNY"
        in text
    )
    assert "CN-2026-11-000001 2026-11-10 00:00 UTC two hours lost to a failed node −50.00 CNY 2.83" in text
    assert "Amount 150.00 CNY Payment reference INV-2026-10-000001" in text


def test_a_voided_invoice_asks_for_no_payment():
    october = closed_october(voucher=False)
    invoice_void(
        actor=finance_actor(), invoice_id=october.invoice.pk, reason="billed twice", now=at("2026-11-05 00:00")
    )

    text = text_of(reader(october.consumer).get(f"/billing/invoices/{october.invoice.pk}/"))

    assert "Invoice INV-2026-10-000001 Void" in text
    assert "Voided 2026-11-05 00:00 UTC" in text
    assert "Credited −400.00 CNY Amount due 0.00 CNY" in text
    assert "How to pay" not in text


def test_late_usage_shows_its_badge_and_the_month_it_belongs_to():
    october = closed_october(voucher=False)
    meter(october.booking, "2026-10-05 04:00", "2026-10-05 05:00", 8)  # after October closed: 8 dh, 100.00
    close(NOV)
    november = invoice_of(october.consumer, NOV)

    response = reader(october.consumer).get(f"/billing/invoices/{november.pk}/")

    text = text_of(response)
    assert f"Booking {str(october.booking.pk)[:8]} Usage late · usage of 2026-10 8.0000 12.50 100.00" in text
    assert "Subtotal 100.00 CNY Total 100.00 CNY Prices include VAT; of which VAT 6 %: 5.66 CNY" in text


# --- who may see it -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_every_role_of_the_consumer_reads_its_invoices(role):
    october = closed_october()
    browser = reader(october.consumer, role)

    for url in [
        "/billing/invoices/",
        "/billing/invoices.csv",
        f"/billing/invoices/{october.invoice.pk}/",
        f"/billing/invoices/{october.invoice.pk}/lines.csv",
    ]:
        assert browser.get(url).status_code == 200, url


def test_another_organizations_invoice_is_a_404_and_changes_nothing():
    october = closed_october()
    before = row(october.invoice)
    stranger = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    browser = reader(stranger, Role.OWNER)

    for url in [
        f"/billing/invoices/{october.invoice.pk}/",
        f"/billing/invoices/{october.invoice.pk}/lines.csv",
        "/billing/invoices/not-a-uuid/",
    ]:
        assert browser.get(url).status_code == 404, url
    assert row(october.invoice) == before


def test_other_kinds_of_organization_are_refused_and_strangers_sent_to_log_in(client):
    october = closed_october()
    before = Invoice.objects.count()

    for organization in (october.center, finance_actor().organization):
        browser = reader(organization, Role.OWNER)
        for url in ["/billing/invoices/", "/billing/invoices.csv", f"/billing/invoices/{october.invoice.pk}/"]:
            assert browser.get(url).status_code == 403, (organization.kind, url)
    assert client.get("/billing/invoices/").status_code == 302
    assert client.get(f"/billing/invoices/{october.invoice.pk}/pdf/").status_code == 302
    assert Invoice.objects.count() == before


def test_the_pages_only_read():
    october = closed_october()
    before = row(october.invoice)

    response = reader(october.consumer, Role.OWNER).post(f"/billing/invoices/{october.invoice.pk}/")

    assert response.status_code == 405
    assert row(october.invoice) == before


# --- the upcoming invoice -----------------------------------------------------------------------------------------


@pytest.fixture
def mid_november():
    with time_machine.travel(datetime(2026, 11, 20, 12, 0, tzinfo=UTC), tick=False):
        yield


def november_so_far() -> tuple:
    """October closed as in `closed_october` (the voucher keeps 800.00 of its 1000.00). Then 8 dh of October's
    usage arrive late (100.00) and a November booking uses 4 devices × 3 h = 12 dh (150.00): 250.00 so far, of
    which the voucher would pay half, 125.00."""
    october = closed_october()
    meter(october.booking, "2026-10-05 04:00", "2026-10-05 05:00", 8)
    november = book(october.offering, october.consumer, "2026-11-10 00:00", "2026-11-10 06:00", 4)
    meter(november, "2026-11-10 00:00", "2026-11-10 03:00", 4)
    return october, november


def test_the_upcoming_invoice_shows_the_month_so_far_with_a_voucher_estimate(mid_november):
    october, november = november_so_far()

    response = reader(october.consumer).get("/billing/upcoming/")

    assert response.status_code == 200
    text = text_of(response)
    assert "Upcoming invoice: 2026-11 so far" in text
    assert (
        "As of 2026-11-20 12:00 UTC. This invoice is computed on read from the usage reported so far and changes "
        "until the month closes; nothing here is final or due." in text
    )
    assert (
        "In CNY Description Kind Device-hours Unit price Amount "
        "8 × H100 SXM 80GB · Lakeside AI Computing Center · 2026-10-05 00:00 – 2026-10-05 10:00 UTC "
        f"Booking {str(october.booking.pk)[:8]} Usage late · usage of 2026-10 voucher 8.0000 12.50 100.00 "
        "4 × H100 SXM 80GB · Lakeside AI Computing Center · 2026-11-10 00:00 – 2026-11-10 06:00 UTC "
        f"Booking {str(november.pk)[:8]} Usage voucher 12.0000 12.50 150.00 "
        "Subtotal 250.00 CNY Voucher: Compute voucher 2026 (estimate) −125.00 CNY Total so far 125.00 CNY" in text
    )
    assert "has ended but is not closed yet" not in text  # October is closed


def test_one_block_per_currency(mid_november):
    october, _november = november_so_far()
    dollars = OfferingFactory(
        center=october.center,
        site=october.offering.site,
        accelerator=october.offering.accelerator,
        price_per_device_hour=Decimal("2.5000"),
        currency="USD",
        min_commit_fraction=Decimal("0"),
    )
    booking = book(dollars, october.consumer, "2026-11-12 00:00", "2026-11-12 02:00", 2)
    meter(booking, "2026-11-12 00:00", "2026-11-12 01:30", 2)  # 3 dh × 2.50 = 7.50 USD

    text = text_of(reader(october.consumer).get("/billing/upcoming/"))

    assert "Total so far 125.00 CNY" in text
    assert f"Booking {str(booking.pk)[:8]} Usage 3.0000 2.50 7.50 Subtotal 7.50 USD Total so far 7.50 USD" in text
    assert text.index("In CNY") < text.index("In USD")


@pytest.mark.parametrize(
    ("period", "error"),
    [
        ("2026-10", "2026-10 is closed: its invoice is issued."),
        ("2026-12", "That month has not started yet."),
        ("2026-1", "A period is a month written YYYY-MM, for example 2026-11."),
    ],
)
def test_a_month_that_cannot_be_shown_says_why_and_shows_this_month(mid_november, period, error):
    october, _november = november_so_far()

    response = reader(october.consumer).get(f"/billing/upcoming/?period={period}")

    assert response.status_code == 200
    text = text_of(response)
    assert error in text
    assert "Upcoming invoice: 2026-11 so far" in text
    assert "Total so far 125.00 CNY" in text


def test_a_month_that_ended_but_is_not_closed_can_still_be_seen():
    october, _november = november_so_far()

    with time_machine.travel(datetime(2026, 12, 1, 5, 0, tzinfo=UTC), tick=False):
        browser = reader(october.consumer)
        december = browser.get("/billing/upcoming/")
        last_month = browser.get("/billing/upcoming/?period=2026-11")

    assert "Upcoming invoice: 2026-12 so far" in text_of(december)
    assert "Nothing to bill for 2026-12 so far." in text_of(december)
    assert "2026-11 has ended but is not closed yet: see its invoice so far." in text_of(december)
    assert 'href="/billing/upcoming/?period=2026-11"' in december.content.decode()
    text = text_of(last_month)
    assert "Upcoming invoice: 2026-11 so far" in text
    assert "As of 2026-12-01 05:00 UTC." in text
    assert "Subtotal 250.00 CNY Voucher: Compute voucher 2026 (estimate) −125.00 CNY Total so far 125.00 CNY" in text
    assert "This month (2026-12)" in text


def test_the_upcoming_invoice_belongs_to_consumers(mid_november):
    october, _november = november_so_far()

    assert reader(october.center, Role.OWNER).get("/billing/upcoming/").status_code == 403
    for role in (Role.MEMBER, Role.FINANCE, Role.VIEWER):
        assert reader(october.consumer, role).get("/billing/upcoming/").status_code == 200
