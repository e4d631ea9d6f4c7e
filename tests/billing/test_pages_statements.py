"""A center's statements in the browser: the list (period filter, pagination), one statement's page with its
lines and the credit notes against them, and who may see what. October (tests.billing.invoice_pages): gross
400.00, fee 10 % = 40.00, payout 360.00. A credit note of 50.00 issued in November reaches November's statement:
credit adjustment −50.00, the fee on it returned (fee adjustment −5.00), net payout −45.00."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.models import OrganizationKind, Role
from billing.models import Statement
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.billing.invoice_pages import closed_october, credit
from tests.billing.page_rows import bare_statement, row_text, rows_marked
from tests.billing.settlement import NOV, OCT, close, meter, statement_of
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import CenterFactory

pytestmark = pytest.mark.django_db


def reader(organization, role=Role.FINANCE):
    return browser_as(member_of(organization, role), organization)


def october_and_november():
    """October as in `closed_october`; in November 8 dh of October's usage arrive late (100.00) and 50.00 of
    October's invoice is credited. November's statement: gross 100.00, fee 10.00, payout 90.00, credit −50.00,
    fee adjustment −5.00, net 45.00."""
    october = closed_october(legal_name="蓝鹭机器人有限公司")
    meter(october.booking, "2026-10-05 04:00", "2026-10-05 05:00", 8)
    credit(october.invoice, "50.00")
    close(NOV)
    return october, statement_of(october.center, NOV)


# --- the list -----------------------------------------------------------------------------------------------------


def test_the_list_shows_each_period_and_currency_with_every_figure():
    october, november = october_and_november()
    theirs = bare_statement(CenterFactory(name="Pearl River Compute"), OCT, "10.00")

    response = reader(october.center).get("/billing/statements/")

    assert response.status_code == 200
    assert rows_marked(response, "data-statement-id") == [str(november.pk), str(october.statement.pk)]
    assert str(theirs.pk) not in response.content.decode()
    assert row_text(response, "data-statement-id", october.statement.pk) == (
        "2026-10 CNY 400.00 40.00 (10 %) 360.00 0.00 0.00 360.00 Issued"
    )
    assert row_text(response, "data-statement-id", november.pk) == (
        "2026-11 CNY 100.00 10.00 (10 %) 90.00 -50.00 -5.00 45.00 Issued"
    )
    html = response.content.decode()
    assert f'href="/billing/statements/{october.statement.pk}/"' in html
    assert 'href="/billing/statements.csv"' in html


def test_the_list_filters_by_period_and_shows_a_malformed_one_as_an_error():
    october, november = october_and_november()
    browser = reader(october.center)

    only_november = browser.get("/billing/statements/?period=2026-11")
    nothing = browser.get("/billing/statements/?period=2026-08")
    malformed = browser.get("/billing/statements/?period=2026-00")

    assert rows_marked(only_november, "data-statement-id") == [str(november.pk)]
    assert 'href="/billing/statements.csv?period=2026-11"' in only_november.content.decode()
    assert "No statements for 2026-08." in text_of(nothing)
    assert malformed.status_code == 200
    assert "A period is a month written YYYY-MM, for example 2026-11." in text_of(malformed)
    assert rows_marked(malformed, "data-statement-id") == [str(november.pk), str(october.statement.pk)]


def test_the_list_pages_like_the_markets_lists():
    center = CenterFactory(name="Lakeside AI Computing Center")
    statements = [
        bare_statement(center, datetime(2024 + (m // 12), m % 12 + 1, 1, tzinfo=UTC), "1.00") for m in range(27)
    ]
    newest_first = [str(statement.pk) for statement in reversed(statements)]
    browser = reader(center)

    first = browser.get("/billing/statements/")
    second = browser.get("/billing/statements/?page=2")

    assert rows_marked(first, "data-statement-id") == newest_first[:25]
    assert "Page 1 of 2" in text_of(first)
    assert rows_marked(second, "data-statement-id") == newest_first[25:]


# --- one statement ------------------------------------------------------------------------------------------------


def test_the_statement_page_shows_its_figures_and_lines():
    october, _november = october_and_november()

    response = reader(october.center, Role.VIEWER).get(f"/billing/statements/{october.statement.pk}/")

    assert response.status_code == 200
    text = text_of(response)
    assert "Statement 2026-10 · CNY Issued" in text
    assert "Lakeside AI Computing Center · issued 2026-11-02 00:00 UTC" in text
    assert (
        "Gross 400.00 CNY Platform fee (10 %) −40.00 CNY Payout 360.00 CNY Credit adjustments 0.00 CNY "
        "Fee adjustment 0.00 CNY Net payout 360.00 CNY" in text
    )
    assert (
        "Consumer Booking Kind Device-hours Unit price Amount "
        f"蓝鹭机器人有限公司 {str(october.booking.pk)[:8]} Usage 32.0000 12.50 400.00 Gross 400.00" in text
    )
    assert "Credit notes against your lines" not in text
    assert f'href="/billing/statements/{october.statement.pk}/lines.csv"' in response.content.decode()


def test_late_lines_and_credit_notes_appear_on_the_statement_of_the_month_they_were_billed_in():
    october, november = october_and_november()

    text = text_of(reader(october.center).get(f"/billing/statements/{november.pk}/"))

    assert (
        "Gross 100.00 CNY Platform fee (10 %) −10.00 CNY Payout 90.00 CNY Credit adjustments -50.00 CNY "
        "Fee adjustment -5.00 CNY Net payout 45.00 CNY" in text
    )
    assert f"蓝鹭机器人有限公司 {str(october.booking.pk)[:8]} Usage late · usage of 2026-10 8.0000 12.50 100.00" in text
    assert (
        "Credit notes against your lines Credit note Consumer Invoice Booking Reason Amount "
        f"CN-2026-11-000001 蓝鹭机器人有限公司 INV-2026-10-000001 {str(october.booking.pk)[:8]} "
        "two hours lost to a failed node -50.00" in text
    )


# --- who may see it -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_every_role_of_the_center_reads_its_statements(role):
    october = closed_october(voucher=False)
    browser = reader(october.center, role)

    for url in [
        "/billing/statements/",
        "/billing/statements.csv",
        f"/billing/statements/{october.statement.pk}/",
        f"/billing/statements/{october.statement.pk}/lines.csv",
    ]:
        assert browser.get(url).status_code == 200, url


def test_another_centers_statement_is_a_404_and_changes_nothing():
    october = closed_october(voucher=False)
    before = row(october.statement)
    browser = reader(CenterFactory(name="Pearl River Compute"), Role.OWNER)

    for url in [
        f"/billing/statements/{october.statement.pk}/",
        f"/billing/statements/{october.statement.pk}/lines.csv",
        "/billing/statements/not-a-uuid/",
    ]:
        assert browser.get(url).status_code == 404, url
    assert row(october.statement) == before


def test_consumers_and_others_are_refused(client):
    october = closed_october(voucher=False)
    before = Statement.objects.count()

    for organization in (october.consumer, OrganizationFactory(kind=OrganizationKind.SPONSOR, name="Fund")):
        browser = reader(organization, Role.OWNER)
        for url in ["/billing/statements/", "/billing/statements.csv", f"/billing/statements/{october.statement.pk}/"]:
            assert browser.get(url).status_code == 403, (organization.kind, url)
    assert client.get("/billing/statements/").status_code == 302
    assert Statement.objects.count() == before
