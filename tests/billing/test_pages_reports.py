"""The finance reports' pages: the operator's members read them (with charts and download links carrying the same
filters); consumers, centers and sponsors get a 403, visitors the login page; bad filters get a clear 400."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import time_machine

from accounts.models import Role
from tests.accounts.page_helpers import browser_as
from tests.billing.reports_scenario import october_book
from tests.factories import member_of

pytestmark = pytest.mark.django_db

NOW = datetime(2027, 4, 10, 12, 0, tzinfo=UTC)
PAGES = [
    "/billing/finance/reports/",
    "/billing/finance/reports/ar-aging/",
    "/billing/finance/reports/cash-vs-invoiced/",
    "/billing/finance/reports/payouts/",
    "/billing/finance/reports/voucher-claims/",
    "/billing/finance/reports/ar-aging.csv",
    "/billing/finance/reports/payouts.xlsx",
]


def text(html: bytes) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode()))


def table_rows(html: str, table_id: str = "report-table") -> list[list[str]]:
    body = html.split(f'id="{table_id}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    ]


@time_machine.travel(NOW, tick=False)
def test_the_aging_page_shows_the_buckets_a_chart_and_the_downloads():
    clerk = october_book().clerk
    client = browser_as(clerk.user, clerk.organization)

    response = client.get("/billing/finance/reports/ar-aging/", {"as_of": "2027-03-31"})

    assert response.status_code == 200
    html = response.content.decode()
    assert table_rows(html) == [
        ["Blue Heron Robotics", "CNY", "0.00", "0.00", "0.00", "0.00", "600.00", "600.00", "1", "2026-12-03"],
        ["Falcon Works", "CNY", "0.00", "0.00", "0.00", "600.00", "0.00", "600.00", "1", "2027-01-19"],
        ["Kestrel Labs", "CNY", "0.00", "0.00", "400.00", "0.00", "0.00", "400.00", "1", "2027-02-14"],
        ["Dove Analytics", "CNY", "0.00", "300.00", "0.00", "0.00", "0.00", "300.00", "1", "2027-03-22"],
        ["Crane Institute", "CNY", "200.00", "0.00", "0.00", "0.00", "0.00", "200.00", "1", "2027-04-09"],
    ]
    assert 'data-testid="aging-total" data-currency="CNY"' in html
    assert "Total CNY 200.00 300.00 400.00 600.00 600.00 2100.00 5" in text(response.content)
    assert 'href="/billing/finance/reports/ar-aging.csv?as_of=2027-03-31"' in html
    assert 'href="/billing/finance/reports/ar-aging.xlsx?as_of=2027-03-31"' in html
    assert 'data-chart="aging"' in html and "vendor/chartjs/chart.umd.js" in html
    chart = json.loads(html.split('id="report-chart-1" type="application/json">', 1)[1].split("</script>", 1)[0])
    assert chart["currency"] == "CNY"
    assert chart["labels"] == [
        "Blue Heron Robotics",
        "Falcon Works",
        "Kestrel Labs",
        "Dove Analytics",
        "Crane Institute",
    ]
    assert [(s["key"], s["data"]) for s in chart["datasets"]][4] == (
        "over_90",
        ["600.00", "0.00", "0.00", "0.00", "0.00"],
    )


@time_machine.travel(NOW, tick=False)
def test_the_other_reports_render_with_their_defaults():
    clerk = october_book().clerk
    client = browser_as(clerk.user, clerk.organization)

    cash = client.get("/billing/finance/reports/cash-vs-invoiced/")
    payouts = client.get("/billing/finance/reports/payouts/")
    claims = client.get("/billing/finance/reports/voucher-claims/")
    index = client.get("/billing/finance/reports/")

    assert [r.status_code for r in (cash, payouts, claims, index)] == [200, 200, 200, 200]
    # The cash report opens on the last twelve months: 2026-05 to 2027-04.
    rows = table_rows(cash.content.decode())
    assert [row[0] for row in rows] == [f"2026-{m:02d}" for m in range(5, 13)] + [f"2027-{m:02d}" for m in range(1, 5)]
    assert rows[5] == ["2026-10", "CNY", "3300.00", "0.00", "3300.00", "0.00", "0.00", "0.00"]
    assert 'data-chart="cash"' in cash.content.decode()
    assert table_rows(payouts.content.decode()) == [
        ["Lakeside AI Computing Center", "CNY", "1", "2970.00", "0.00", "0.00", "2970.00", ""],
    ]
    assert "No voucher claim had been issued by that day." in text(claims.content)
    assert 'id="report-list"' in index.content.decode()


@time_machine.travel(NOW, tick=False)
@pytest.mark.parametrize(
    ("url", "query", "message"),
    [
        (
            "ar-aging/",
            {"as_of": "2027-04-11"},
            "2027-04-11 is in the future; choose today (2027-04-10) or an earlier day.",
        ),
        ("ar-aging/", {"as_of": "31/03/2027"}, "Enter a day as YYYY-MM-DD, for example 2026-11-30."),
        (
            "payouts/",
            {"as_of": "2027-03-31", "currency": "XYZ"},
            "Select a valid choice. XYZ is not one of the available choices.",
        ),
        ("cash-vs-invoiced/", {"first": "2027-03", "last": "2027-01"}, "The last month must not be before the first."),
        (
            "cash-vs-invoiced/",
            {"first": "2027-13", "last": "2027-01"},
            "Enter a month as YYYY-MM, for example 2026-11.",
        ),
        ("cash-vs-invoiced/", {"first": "2010-01", "last": "2027-01"}, "Choose at most 120 months."),
        ("ar-aging.csv", {"as_of": "2027-04-11"}, "2027-04-11 is in the future"),
    ],
)
def test_bad_filters_are_refused_with_a_clear_message_and_no_figures(url, query, message):
    from tests.billing.payments import finance_clerk

    clerk = finance_clerk()
    client = browser_as(clerk.user, clerk.organization)

    response = client.get(f"/billing/finance/reports/{url}", query)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert message in text(response.content)
    assert 'id="report-table"' not in response.content.decode()
    assert 'id="download-csv"' not in response.content.decode()


def test_an_unknown_download_format_is_a_404():
    from tests.billing.payments import finance_clerk

    clerk = finance_clerk()
    client = browser_as(clerk.user, clerk.organization)

    assert client.get("/billing/finance/reports/ar-aging.pdf").status_code == 404


def test_any_operator_member_reads_the_reports():
    from tests.billing.payments import finance_clerk

    operator = finance_clerk().organization
    viewer = member_of(operator, Role.MEMBER, email="viewer@platform.example")
    client = browser_as(viewer, operator)

    assert [client.get(url).status_code for url in PAGES] == [200] * len(PAGES)


def test_consumers_centers_and_sponsors_are_refused_and_visitors_sent_to_log_in(client):
    scenario = october_book()
    consumer = scenario.consumers["Blue Heron Robotics"]
    center = scenario.centers["Lakeside AI Computing Center"]
    for organization, email in ((consumer, "fin@blueheron.example"), (center, "fin@lakeside.example")):
        user = member_of(organization, Role.FINANCE, email=email)
        browser = browser_as(user, organization)
        assert [browser.get(url).status_code for url in PAGES] == [403] * len(PAGES), organization.name

    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
