"""CSV downloads: the one writer (a UTF-8 byte order mark, a header row, money as plain decimals, formula
injection neutralized in text cells only) and every export that goes through it, byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.models import Role
from billing.csv_export import Money, cell, csv_bytes, neutralize
from tests.accounts.page_helpers import browser_as
from tests.billing.invoice_pages import closed_october, credit
from tests.billing.settlement import NOV, close, statement_of
from tests.factories import member_of

D = Decimal


# --- the writer -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+SUM(A1:A9)", "'+SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("蓝鹭机器人有限公司", "蓝鹭机器人有限公司"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_that_a_spreadsheet_would_evaluate_is_prefixed_with_a_quote(text, written):
    assert neutralize(text) == written
    assert cell(text) == written


def test_numbers_stay_numbers_even_when_negative():
    assert cell(D("-25.0000")) == "-25.0000"
    assert cell(Money(D("-25.0000"), "CNY")) == "-25.00"
    assert cell(Money(D("12.3456"), "CNY")) == "12.3456"
    assert cell(Money(D("1500.0000"), "JPY")) == "1500"
    assert cell(-3) == "-3"
    assert cell(None) == ""
    assert cell(True) == "yes"
    assert cell(datetime(2026, 11, 2, 8, 30, tzinfo=UTC)) == "2026-11-02T08:30:00Z"


def test_a_file_starts_with_a_byte_order_mark_and_a_header_and_quotes_what_csv_must():
    data = csv_bytes(["Name", "Amount"], [["Blue Heron, Ltd.", Money(D("-1.5"), "CNY")], ["=1+1", D("2")]])

    assert data == '\ufeffName,Amount\r\n"Blue Heron, Ltd.",-1.50\r\n\'=1+1,2\r\n'.encode()
    assert data.startswith(b"\xef\xbb\xbf")


# --- the exports --------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_invoices_csv_lists_the_filtered_invoices():
    october = closed_october()
    browser = browser_as(member_of(october.consumer, Role.VIEWER), october.consumer)

    response = browser.get("/billing/invoices.csv?period=2026-10")
    empty = browser.get("/billing/invoices.csv?period=2026-09")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="invoices-2026-10.csv"'
    assert response.content.decode("utf-8") == (
        "\ufeffNumber,Period,Status,Currency,Subtotal,Voucher,Total,VAT included,Issued,Due,Paid\r\n"
        "INV-2026-10-000001,2026-10,Finalized,CNY,400.00,200.00,200.00,22.64,"
        "2026-11-02T00:00:00Z,2026-12-02T00:00:00Z,\r\n"
    )
    assert empty["Content-Disposition"] == 'attachment; filename="invoices-2026-09.csv"'
    assert empty.content.decode("utf-8") == (
        "\ufeffNumber,Period,Status,Currency,Subtotal,Voucher,Total,VAT included,Issued,Due,Paid\r\n"
    )


@pytest.mark.django_db
def test_a_malformed_period_exports_every_invoice():
    october = closed_october(finalize=False)
    browser = browser_as(member_of(october.consumer, Role.FINANCE), october.consumer)

    response = browser.get("/billing/invoices.csv?period=October")

    assert response["Content-Disposition"] == 'attachment; filename="invoices.csv"'
    assert (
        response.content.decode("utf-8").splitlines()[1]
        == "Draft,2026-10,Draft,CNY,400.00,200.00,200.00,22.64,2026-11-02T00:00:00Z,,"
    )


@pytest.mark.django_db
def test_an_invoices_lines_csv_has_one_row_per_line():
    october = closed_october()
    browser = browser_as(member_of(october.consumer, Role.MEMBER), october.consumer)

    response = browser.get(f"/billing/invoices/{october.invoice.pk}/lines.csv")

    assert response["Content-Disposition"] == 'attachment; filename="invoice-INV-2026-10-000001-lines.csv"'
    assert response.content.decode("utf-8") == (
        "\ufeffBooking,Description,Kind,Late,Usage period,Device-hours,Unit price,Amount,Currency\r\n"
        f"{october.booking.pk},"
        "8 × H100 SXM 80GB · Lakeside AI Computing Center · 2026-10-05 00:00 – 2026-10-05 10:00 UTC,"
        "Usage,no,,32.0000,12.50,400.00,CNY\r\n"
    )


@pytest.mark.django_db
def test_a_statements_csv_neutralizes_a_formula_name_and_keeps_negative_amounts_numeric():
    october = closed_october(name="=cmd|' /C calc'!A0", voucher=False)
    credit(october.invoice, "50.00")
    close(NOV)
    november = statement_of(october.center, NOV)
    browser = browser_as(member_of(october.center, Role.FINANCE), october.center)

    october_lines = browser.get(f"/billing/statements/{october.statement.pk}/lines.csv")
    november_lines = browser.get(f"/billing/statements/{november.pk}/lines.csv")
    statements = browser.get("/billing/statements.csv")

    header = "\ufeffConsumer,Invoice,Booking,Kind,Late,Usage period,Device-hours,Unit price,Amount,Currency\r\n"
    assert october_lines["Content-Disposition"] == 'attachment; filename="statement-2026-10-CNY.csv"'
    assert october_lines.content.decode("utf-8") == (
        header + f"'=cmd|' /C calc'!A0,INV-2026-10-000001,{october.booking.pk},Usage,no,,32.0000,12.50,400.00,CNY\r\n"
    )
    # The credit note of November takes 50.00 back from the center: a negative number, not text.
    assert november_lines.content.decode("utf-8") == (
        header + f"'=cmd|' /C calc'!A0,INV-2026-10-000001,{october.booking.pk},"
        "Credit note CN-2026-11-000001,,,,,-50.00,CNY\r\n"
    )
    # November: no gross, 50.00 credited back, the 10 % fee on it (5.00) returned: net −45.00.
    assert statements["Content-Disposition"] == 'attachment; filename="statements.csv"'
    assert statements.content.decode("utf-8") == (
        "\ufeffPeriod,Currency,Gross,Fee rate,Fee,Payout,Credit adjustments,Fee adjustment,Net payout,Status,"
        "Issued,Paid\r\n"
        "2026-11,CNY,0.00,0.1,0.00,0.00,-50.00,-5.00,-45.00,Issued,2026-12-02T00:00:00Z,\r\n"
        "2026-10,CNY,400.00,0.1,40.00,360.00,0.00,0.00,360.00,Issued,2026-11-02T00:00:00Z,\r\n"
    )
