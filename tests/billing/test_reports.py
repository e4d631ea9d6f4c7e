"""Finance reports (issue 6, "Reconciliation workbench" → Reports): AR aging by days past due as of a day, cash
received vs invoiced per month, payouts due vs paid per center, voucher claims outstanding per sponsor; each
downloads as CSV and XLSX with exactly the same rows. Figures are worked out by hand in tests/billing/
reports_scenario.py."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import openpyxl
import pytest
import time_machine

from accounts.errors import Forbidden
from billing.csv_export import Money, csv_bytes
from billing.selectors.reports import aging_bucket, report_aging, report_cash, report_claims, report_payouts
from billing.xlsx_export import sheet_name, xlsx_bytes
from tests.accounts.page_helpers import browser_as
from tests.billing.reports_scenario import AS_OF, october_book, payouts_and_claims
from tests.billing.settlement import NOV, OCT, statement_of
from tests.factories import member_of

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2027, 4, 10, 12, 0, tzinfo=UTC)


def aging_rows(report) -> list[tuple]:
    return [(row.consumer, row.currency, *row.amounts, row.total, row.invoices) for row in report.rows]


# --- the buckets ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "bucket"),
    [
        (-5, "current"),
        (0, "current"),
        (1, "days_1_30"),
        (30, "days_1_30"),
        (31, "days_31_60"),
        (60, "days_31_60"),
        (61, "days_61_90"),
        (90, "days_61_90"),
        (91, "over_90"),
        (400, "over_90"),
    ],
)
def test_an_amount_goes_in_the_bucket_of_its_days_past_due(days, bucket):
    assert aging_bucket(days) == bucket


# --- AR aging ---------------------------------------------------------------------------------------------------


def test_aging_puts_what_each_consumer_owed_on_the_day_in_its_bucket():
    clerk = october_book().clerk

    report = report_aging(clerk, as_of=AS_OF)

    # consumer, currency, current, 1–30, 31–60, 61–90, over 90, total, open invoices
    assert aging_rows(report) == [
        ("Blue Heron Robotics", "CNY", D(0), D(0), D(0), D(0), D("600.00"), D("600.00"), 1),
        ("Falcon Works", "CNY", D(0), D(0), D(0), D("600.00"), D(0), D("600.00"), 1),
        ("Kestrel Labs", "CNY", D(0), D(0), D("400.00"), D(0), D(0), D("400.00"), 1),
        ("Dove Analytics", "CNY", D(0), D("300.00"), D(0), D(0), D(0), D("300.00"), 1),
        ("Crane Institute", "CNY", D("200.00"), D(0), D(0), D(0), D(0), D("200.00"), 1),
    ]
    [total] = report.totals()
    assert (total.currency, *total.amounts, total.total, total.invoices) == (
        "CNY",
        D("200.00"),
        D("300.00"),
        D("400.00"),
        D("600.00"),
        D("600.00"),
        D("2100.00"),
        5,
    )


def test_aging_of_an_earlier_day_ignores_what_happened_after_it():
    clerk = october_book().clerk

    report = report_aging(clerk, as_of=date(2027, 1, 5))

    # Blue Heron's 400.00 arrived on 01-10 and Egret's payment in February; Kestrel, Crane and Dove were not
    # finalized yet. Blue Heron was due 2026-12-03: 33 days.
    assert aging_rows(report) == [
        ("Blue Heron Robotics", "CNY", D(0), D(0), D("1000.00"), D(0), D(0), D("1000.00"), 1),
        ("Egret Systems", "CNY", D("700.00"), D(0), D(0), D(0), D(0), D("700.00"), 1),
        ("Falcon Works", "CNY", D("600.00"), D(0), D(0), D(0), D(0), D("600.00"), 1),
    ]


def test_aging_filters_by_currency():
    clerk = october_book().clerk

    assert report_aging(clerk, as_of=AS_OF, currency="USD").rows == []
    assert len(report_aging(clerk, as_of=AS_OF, currency="CNY").rows) == 5


def test_only_the_operator_reads_the_reports():
    scenario = october_book()
    consumer = scenario.consumers["Blue Heron Robotics"]
    from accounts.actor import Actor
    from accounts.models import Role

    user = member_of(consumer, Role.FINANCE, email="fin@blueheron.example")
    actor = Actor.for_member(user=user, organization=consumer, role=Role.FINANCE)
    for read in (report_aging, report_payouts, report_claims):
        with pytest.raises(Forbidden):
            read(actor, as_of=AS_OF)
    with pytest.raises(Forbidden):
        report_cash(actor, first=OCT, last=NOV)


# --- cash vs invoiced -------------------------------------------------------------------------------------------


def test_cash_received_against_invoiced_per_month():
    clerk = october_book().clerk

    report = report_cash(clerk, first=OCT, last=datetime(2027, 4, 1, tzinfo=UTC))

    # month, currency, invoiced, credit notes, received, refunded
    assert [(r.month, r.currency, r.invoiced, r.credited, r.received, r.refunded) for r in report.rows] == [
        ("2026-10", "CNY", D("3300.00"), D(0), D(0), D(0)),
        ("2026-11", "CNY", D(0), D(0), D(0), D(0)),
        ("2026-12", "CNY", D(0), D(0), D(0), D(0)),
        ("2027-01", "CNY", D(0), D(0), D("400.00"), D(0)),
        ("2027-02", "CNY", D(0), D("100.00"), D("699.50"), D(0)),
        ("2027-03", "CNY", D(0), D(0), D(0), D(0)),
        ("2027-04", "CNY", D(0), D(0), D("200.00"), D(0)),
    ]
    assert [(r.net_invoiced, r.net_received) for r in report.rows][4] == (D("-100.00"), D("699.50"))
    chart = report.chart()
    assert chart[0]["labels"] == ["2026-10", "2026-11", "2026-12", "2027-01", "2027-02", "2027-03", "2027-04"]
    assert chart[0]["datasets"][1]["data"] == ["0.00", "0.00", "0.00", "400.00", "699.50", "0.00", "200.00"]


# --- payouts and voucher claims ---------------------------------------------------------------------------------


def test_payouts_due_against_paid_per_center():
    scenario = payouts_and_claims()
    clerk = scenario.clerk
    lakeside, riverside = scenario.centers.values()
    lake_oct, lake_nov = statement_of(lakeside, OCT).net_payout, statement_of(lakeside, NOV).net_payout
    river_oct = statement_of(riverside, OCT).net_payout
    assert (lake_oct, lake_nov, river_oct) == (D("900.0000"), D("450.0000"), D("720.0000"))  # 10 % fee

    report = report_payouts(clerk, as_of=date(2026, 12, 31))

    # center, statements, due, paid, in progress, not yet paid, last paid
    assert [(r.center, r.statements, r.due, r.paid, r.in_progress, r.unpaid, r.last_paid_at) for r in report.rows] == [
        ("Riverside Compute", 1, D("720.00"), D(0), D("720.00"), D("720.00"), None),
        (
            "Lakeside AI Computing Center",
            2,
            D("1350.00"),
            D("900.00"),
            D(0),
            D("450.00"),
            datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        ),
    ]
    # Before the payout was paid and before November's statement was issued:
    early = report_payouts(clerk, as_of=date(2026, 11, 19))
    assert [(r.center, r.statements, r.due, r.paid, r.in_progress) for r in early.rows] == [
        ("Lakeside AI Computing Center", 1, D("900.00"), D(0), D("900.00")),
        ("Riverside Compute", 1, D("720.00"), D(0), D("720.00")),
    ]


def test_voucher_claims_outstanding_per_sponsor():
    clerk = payouts_and_claims().clerk

    report = report_claims(clerk, as_of=date(2026, 12, 31))

    # sponsor, claims, claimed, paid, outstanding, open claims, oldest open period
    assert [
        (r.sponsor, r.claims, r.claimed, r.paid, r.outstanding, r.open_claims, r.oldest_open) for r in report.rows
    ] == [
        ("Shanghai Compute Fund", 2, D("420.00"), D("300.00"), D("120.00"), 1, "2026-11"),
        ("Zhejiang AI Program", 1, D("75.50"), D(0), D("75.50"), 1, "2026-10"),
    ]
    # On 2026-12-01 the fund had not paid October yet and November's claim was not issued.
    early = report_claims(clerk, as_of=date(2026, 12, 1))
    assert [(r.sponsor, r.claims, r.outstanding, r.oldest_open) for r in early.rows] == [
        ("Shanghai Compute Fund", 1, D("300.00"), "2026-10"),
        ("Zhejiang AI Program", 1, D("75.50"), "2026-10"),
    ]


# --- downloads --------------------------------------------------------------------------------------------------


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def read_xlsx(data: bytes) -> list[list]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]


def xlsx_as_csv(data: bytes) -> list[list[str]]:
    """The workbook's cells written the way the CSV writes them, by each cell's own number format: to compare the
    two files row by row."""
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    rows = []
    for row in sheet.iter_rows():
        texts = []
        for cell in row:
            value, pattern = cell.value, cell.number_format
            if value is None:
                texts.append("")
            elif isinstance(value, datetime):
                texts.append(value.date().isoformat() if pattern == "yyyy-mm-dd" else value.isoformat() + "Z")
            elif isinstance(value, int | float):
                digits = len(pattern.split(".")[1]) if "." in pattern else 0
                texts.append(f"{Decimal(repr(value)):.{digits}f}")
            else:
                texts.append(str(value))
        rows.append(texts)
    return rows


@time_machine.travel(NOW, tick=False)
def test_aging_downloads_hold_exactly_the_rows_of_the_page():
    clerk = october_book().clerk
    client = browser_as(clerk.user, clerk.organization)
    query = {"as_of": "2027-03-31", "currency": "CNY"}

    csv_response = client.get("/billing/finance/reports/ar-aging.csv", query)
    xlsx_response = client.get("/billing/finance/reports/ar-aging.xlsx", query)

    assert csv_response.status_code == 200 and xlsx_response.status_code == 200
    assert csv_response["Content-Disposition"] == 'attachment; filename="ar-aging-2027-03-31-CNY.csv"'
    assert xlsx_response["Content-Disposition"] == 'attachment; filename="ar-aging-2027-03-31-CNY.xlsx"'
    assert xlsx_response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    header = [
        "Consumer",
        "Currency",
        "Current",
        "1–30 days",
        "31–60 days",
        "61–90 days",
        "Over 90 days",
        "Total",
        "Open invoices",
        "Oldest due date",
    ]
    expected = [
        header,
        ["Blue Heron Robotics", "CNY", "0.00", "0.00", "0.00", "0.00", "600.00", "600.00", "1", "2026-12-03"],
        ["Falcon Works", "CNY", "0.00", "0.00", "0.00", "600.00", "0.00", "600.00", "1", "2027-01-19"],
        ["Kestrel Labs", "CNY", "0.00", "0.00", "400.00", "0.00", "0.00", "400.00", "1", "2027-02-14"],
        ["Dove Analytics", "CNY", "0.00", "300.00", "0.00", "0.00", "0.00", "300.00", "1", "2027-03-22"],
        ["Crane Institute", "CNY", "200.00", "0.00", "0.00", "0.00", "0.00", "200.00", "1", "2027-04-09"],
    ]
    assert read_csv(csv_response.content) == expected
    assert xlsx_as_csv(xlsx_response.content) == expected
    workbook = read_xlsx(xlsx_response.content)
    # In the workbook, money is a number (so a column adds up) and dates are dates.
    assert workbook[1][6] == 600 and isinstance(workbook[1][6], int | float)
    assert workbook[1][9] == datetime(2026, 12, 3, tzinfo=UTC).replace(tzinfo=None)


@time_machine.travel(NOW, tick=False)
def test_every_report_downloads_the_same_rows_as_csv_and_xlsx():
    clerk = payouts_and_claims().clerk
    client = browser_as(clerk.user, clerk.organization)
    for name, query in (
        ("cash-vs-invoiced", {"first": "2026-10", "last": "2026-12"}),
        ("payouts", {"as_of": "2026-12-31"}),
        ("voucher-claims", {"as_of": "2026-12-31"}),
        ("ar-aging", {"as_of": "2026-12-31"}),
    ):
        csv_rows = read_csv(client.get(f"/billing/finance/reports/{name}.csv", query).content)
        xlsx_rows = xlsx_as_csv(client.get(f"/billing/finance/reports/{name}.xlsx", query).content)
        assert len(csv_rows) > 1, name
        assert xlsx_rows == csv_rows, name


def test_cash_download_rows():
    clerk = payouts_and_claims().clerk
    report = report_cash(clerk, first=OCT, last=NOV)
    # Blue Heron booked 1,000.00 at Lakeside and 800.00 at Riverside in October, 500.00 in November.
    assert read_csv(csv_bytes(report.table().header, report.table().rows))[1:] == [
        ["2026-10", "CNY", "1800.00", "0.00", "1800.00", "0.00", "0.00", "0.00"],
        ["2026-11", "CNY", "500.00", "0.00", "500.00", "0.00", "0.00", "0.00"],
    ]


# --- the XLSX writer --------------------------------------------------------------------------------------------


def test_xlsx_text_is_never_a_formula_and_numbers_keep_their_currency_digits():
    data = xlsx_bytes(
        ["Name", "Amount", "Yen", "Rate", "Count", "At"],
        [
            [
                '=HYPERLINK("http://evil.example","x")',
                Money(D("-25.5"), "CNY"),
                Money(D("1500"), "JPY"),
                D("0.0125"),
                3,
                datetime(2026, 11, 2, 8, 30, tzinfo=UTC),
            ],
            ["蓝鹭机器人有限公司", Money(D("12.3456"), "CNY"), None, D("1"), 0, date(2026, 11, 2)],
        ],
        title="AR aging: 2026/11?",
    )
    book = openpyxl.load_workbook(io.BytesIO(data))
    sheet = book.active
    assert sheet.title == "AR aging  2026 11"
    assert sheet.freeze_panes == "A2"
    assert [cell.font.b for cell in sheet[1]] == [True] * 6
    first, second = sheet[2], sheet[3]
    assert (first[0].data_type, first[0].value) == ("s", '=HYPERLINK("http://evil.example","x")')
    assert (first[1].value, first[1].number_format) == (-25.5, "#,##0.00")
    assert (first[2].value, first[2].number_format) == (1500, "#,##0")
    assert (first[3].value, first[3].number_format) == (0.0125, "#,##0.0000")
    assert (first[4].value, first[4].number_format) == (3, "0")
    assert (first[5].value, first[5].number_format) == (
        datetime(2026, 11, 2, 8, 30, tzinfo=UTC).replace(tzinfo=None),
        "yyyy-mm-dd hh:mm:ss",
    )
    assert (second[1].value, second[2].value, second[5].number_format) == (12.3456, None, "yyyy-mm-dd")
    # Chinese names take two columns per character: the column is wide enough for them.
    assert sheet.column_dimensions["A"].width >= 20
    assert sheet_name("") == "Sheet1"
