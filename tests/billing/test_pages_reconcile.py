"""The reconciliation workbench's pages: the month at a glance and its lock, the upload (documented format, a
malformed file listed by line, a duplicate, another bank's export through the mapping step), a statement's lines,
the exceptions queue with its filters and each action; operator finance acts, other operator members read, nobody
else enters. October 2026 holds Blue Heron Robotics' invoice of 1000.00 CNY and Eastlake University's of 700.00."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent, OrganizationKind, Role
from billing.models import (
    BankLineStatus,
    BankStatement,
    BankStatementLine,
    ExceptionKind,
    ExceptionStatus,
    InvoiceStatus,
    MatchStatus,
    Payment,
    ReconciliationException,
    ReconciliationMatch,
)
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.billing.bank import october_invoices, statement_csv
from tests.factories import OrganizationFactory, member_of

pytestmark = pytest.mark.django_db

D = Decimal
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
WORKBENCH = "/billing/finance/reconciliation/"


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def operator():
    return OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")


@pytest.fixture
def clerk(operator):
    return browser_as(member_of(operator, Role.FINANCE, email="clerk@ops.test"), operator)


@pytest.fixture
def invoices():
    return october_invoices(("Blue Heron Robotics", 10), ("Eastlake University", 7))


def send(browser, content: bytes, name: str = "november.csv", **extra):
    return browser.post(
        f"{WORKBENCH}upload/",
        {"file": SimpleUploadedFile(name, content, content_type="text/csv"), "submission": name, **extra},
    )


def november(invoices) -> bytes:
    heron = invoices["Blue Heron Robotics"]
    return statement_csv(
        ("2026-11-20", "1000.00", "Blue Heron Robotics", f"Payment {heron.number}"),
        ("2026-11-21", "700.00", "Eastlake Holdings", "compute services"),
        ("2026-11-22", "88.00", "Mystery Ltd", "gift"),
        bom=True,
    )


def test_uploading_the_documented_format_imports_matches_and_lists_the_lines(clerk, invoices):
    response = send(clerk, november(invoices))

    statement = BankStatement.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{WORKBENCH}statements/{statement.pk}/"
    page = clerk.get(response["Location"])
    text = text_of(page)
    assert "november.csv: 3 lines imported — 1 matched, 1 proposed, 1 unmatched." in text
    assert list(BankStatementLine.objects.order_by("line_number").values_list("line_number", "status")) == [
        (2, BankLineStatus.MATCHED),
        (3, BankLineStatus.PROPOSED),
        (4, BankLineStatus.UNMATCHED),
    ]
    assert invoices["Blue Heron Robotics"].number in text
    assert "Unmatched bank line" in text
    assert (statement.uploaded_by, statement.mapping["amount"]) == ("clerk@ops.test", "amount")

    workbench = text_of(clerk.get(f"{WORKBENCH}?period=2026-11"))
    assert "Bank lines booked in 2026-11 3 1 matched · 1 proposed · 1 unmatched · 0 ignored" in workbench
    assert "Amount and date fit " + invoices["Eastlake University"].number in workbench
    assert "2026-11 has not ended yet" in workbench or "2026-11 is not closed yet" in workbench


def test_a_malformed_file_names_each_bad_line_and_imports_nothing(clerk, invoices):
    content = statement_csv(
        ("2026-11-20", "1000.00", "Blue Heron Robotics", "ok"),
        ("2026-11-31", "12.00", "X", "bad date"),
        ("2026-11-22", "12,5O", "Y", "bad amount"),
    )

    response = send(clerk, content)

    assert response.status_code == 400
    text = text_of(response)
    assert "The file was not imported: 2 problem(s) were found, nothing was stored." in text
    assert "Line 3: date “2026-11-31” is not a date written like 2026-11-30." in text
    assert "Line 4: amount “12,5O” is not a number." in text
    assert BankStatement.objects.count() == BankStatementLine.objects.count() == Payment.objects.count() == 0


def test_the_same_file_twice_is_refused_naming_the_first_upload(clerk, invoices):
    send(clerk, november(invoices))

    again = send(clerk, november(invoices), name="again.csv", submission="second")

    assert again.status_code == 409
    assert (
        "This file was already uploaded as “november.csv” on 2026-11-25 08:00 UTC by clerk@ops.test; "
        "it is not imported twice." in text_of(again)
    )
    assert BankStatement.objects.count() == 1
    assert BankStatementLine.objects.count() == 3


def test_another_banks_export_goes_through_the_mapping_step(clerk, invoices):
    heron = invoices["Blue Heron Robotics"]
    content = (
        "Buchungstag;Valuta;Soll;Haben;Auftraggeber;Verwendungszweck\n"
        f"20.11.2026;20.11.2026;;1.000,00;Blue Heron Robotics;{heron.number}\n"
        "23.11.2026;23.11.2026;25,00;;Bank;Kontogebühr\n"
    ).encode()

    first = send(clerk, content, name="bank.csv")

    assert first.status_code == 200
    text = text_of(first)
    assert "bank.csv is not in the documented format. Its columns are: Buchungstag Valuta Soll Haben" in text
    assert BankStatement.objects.count() == 0
    token = first.context["form"].initial["token"]
    mapping = {
        "token": token,
        "delimiter": ";",
        "date": "Buchungstag",
        "date_format": "%d.%m.%Y",
        "sign": "two",
        "credit": "Haben",
        "debit": "Soll",
        "decimal_comma": "on",
        "fixed_currency": "CNY",
        "counterparty": "Auftraggeber",
        "remittance": "Verwendungszweck",
        "submission": "map",
    }
    wrong = clerk.post(f"{WORKBENCH}upload/mapping/", {**mapping, "date": "", "submission": "map0"})
    assert wrong.status_code == 400
    assert "Choose the column holding the booking date." in text_of(wrong)

    done = clerk.post(f"{WORKBENCH}upload/mapping/", mapping)

    assert done.status_code == 302
    statement = BankStatement.objects.get()
    assert statement.mapping["credit"] == "Haben" and statement.mapping["decimal_comma"] is True
    assert list(BankStatementLine.objects.order_by("line_number").values_list("amount", "currency", "status")) == [
        (D("1000.00"), "CNY", BankLineStatus.MATCHED),
        (D("-25.00"), "CNY", BankLineStatus.UNMATCHED),
    ]
    heron.refresh_from_db()
    assert heron.status == InvoiceStatus.PAID


def test_the_exceptions_queue_filters_and_a_clerk_matches_an_exception(clerk, invoices):
    send(clerk, november(invoices))
    unmatched = ReconciliationException.objects.get(kind=ExceptionKind.UNMATCHED_BANK_LINE)

    queue = clerk.get(f"{WORKBENCH}exceptions/")
    assert f'data-exception="{unmatched.pk}"' in queue.content.decode()
    assert "88.00 CNY from Mystery Ltd on 2026-11-22 (“gift”) matches no invoice." in text_of(queue)
    none = clerk.get(f"{WORKBENCH}exceptions/?status=open&kind=ambiguous_match")
    assert "No exception matches." in text_of(none)
    partial = clerk.get(f"{WORKBENCH}exceptions/?status=open", HTTP_HX_REQUEST="true")
    assert "<html" not in partial.content.decode() and "exceptions-table" in partial.content.decode()

    page = clerk.get(f"{WORKBENCH}exceptions/{unmatched.pk}/")
    assert page.status_code == 200
    eastlake = invoices["Eastlake University"]
    refused = clerk.post(
        f"{WORKBENCH}exceptions/{unmatched.pk}/match/",
        {"match-invoice": "INV-2099-01-000001", "match-reason": "", "submission": "m1"},
    )
    assert refused.status_code == 400
    assert "No invoice is numbered “INV-2099-01-000001”." in text_of(refused)

    done = clerk.post(
        f"{WORKBENCH}exceptions/{unmatched.pk}/match/",
        {"match-invoice": eastlake.number, "match-reason": "Eastlake's deposit", "submission": "m2"},
    )
    again = clerk.post(
        f"{WORKBENCH}exceptions/{unmatched.pk}/match/",
        {"match-invoice": eastlake.number, "match-reason": "Eastlake's deposit", "submission": "m2"},
    )

    assert done.status_code == again.status_code == 302
    after = text_of(clerk.get(done["Location"]))
    assert f"Matched to invoice {eastlake.number}: the exception is resolved." in after
    assert "Resolved · Matched" in after
    assert Payment.objects.filter(invoice=eastlake).count() == 1
    assert AuditEvent.objects.filter(action="reconciliation.matched").count() == 1


def test_a_proposed_match_is_confirmed_or_rejected_with_a_reason_from_the_workbench(clerk, invoices):
    send(clerk, november(invoices))
    proposal = ReconciliationMatch.objects.get(status=MatchStatus.PROPOSED)

    no_reason = clerk.post(
        f"{WORKBENCH}matches/{proposal.pk}/reject/", {"reject-reason": "", "submission": "r", "next": WORKBENCH}
    )
    assert "Say why the match is rejected." in text_of(clerk.get(no_reason["Location"]))
    assert row(proposal)["status"] == MatchStatus.PROPOSED

    confirmed = clerk.post(f"{WORKBENCH}matches/{proposal.pk}/confirm/", {"submission": "c", "next": WORKBENCH})

    assert confirmed["Location"] == WORKBENCH
    assert f"Match to {invoices['Eastlake University'].number} confirmed." in text_of(clerk.get(WORKBENCH))
    assert row(proposal)["status"] == MatchStatus.CONFIRMED
    assert row(proposal)["decided_by"] == "clerk@ops.test"


def test_dismiss_needs_a_reason_and_the_period_lock_shows_who_locked_it(clerk, invoices):
    content = statement_csv(("2026-10-30", "-12.00", "Bank of Hangzhou", "October account fee"))
    send(clerk, content, name="october.csv")
    fee = ReconciliationException.objects.get()

    blocked = text_of(clerk.get(f"{WORKBENCH}?period=2026-10"))
    assert "1 exception(s) of 2026-10 are still open; resolve them first." in blocked
    no_reason = clerk.post(f"{WORKBENCH}exceptions/{fee.pk}/dismiss/", {"dismiss-reason": "", "submission": "d0"})
    assert no_reason.status_code == 400
    assert row(fee)["status"] == ExceptionStatus.OPEN
    clerk.post(f"{WORKBENCH}exceptions/{fee.pk}/dismiss/", {"dismiss-reason": "Bank fee", "submission": "d1"})
    assert row(fee)["status"] == ExceptionStatus.RESOLVED

    locked = clerk.post(f"{WORKBENCH}lock/2026-10/", {"submission": "l"})

    assert locked["Location"] == f"{WORKBENCH}?period=2026-10"
    text = text_of(clerk.get(locked["Location"]))
    assert "2026-10 is locked: its books no longer change; later corrections go into the open month." in text
    assert "Locked 2026-11-25 08:00 UTC by clerk@ops.test" in text
    refused = clerk.post(f"{WORKBENCH}lock/2026-10/", {"submission": "l2"})
    assert refused.status_code == 409
    assert "2026-10 is already locked." in text_of(refused)


@pytest.mark.parametrize("kind", [OrganizationKind.ENTERPRISE, OrganizationKind.CENTER, OrganizationKind.SPONSOR])
def test_nobody_outside_the_operator_enters(clerk, invoices, client, kind):
    send(clerk, november(invoices))
    exception = ReconciliationException.objects.get()
    statement = BankStatement.objects.get()
    outsider = OrganizationFactory(kind=kind)
    browser = browser_as(member_of(outsider, Role.OWNER), outsider)
    before = (row(exception), BankStatement.objects.count(), Payment.objects.count())

    for url in [
        WORKBENCH,
        f"{WORKBENCH}upload/",
        f"{WORKBENCH}exceptions/",
        f"{WORKBENCH}exceptions/{exception.pk}/",
        f"{WORKBENCH}statements/{statement.pk}/",
    ]:
        assert browser.get(url).status_code == 403, url
        assert client.get(url).status_code == 302, url
    assert send(browser, b"date,amount,currency\n2026-11-01,1.00,CNY\n", name="x.csv").status_code == 403
    assert browser.post(f"{WORKBENCH}exceptions/{exception.pk}/dismiss/", {"dismiss-reason": "x"}).status_code == 403
    assert browser.post(f"{WORKBENCH}lock/2026-10/").status_code == 403
    assert (row(exception), BankStatement.objects.count(), Payment.objects.count()) == before


def test_operator_members_without_a_finance_role_read_but_cannot_act(clerk, operator, invoices):
    send(clerk, november(invoices))
    exception = ReconciliationException.objects.get()
    viewer = browser_as(member_of(operator, Role.VIEWER, email="viewer@ops.test"), operator)

    assert viewer.get(WORKBENCH).status_code == 200
    assert viewer.get(f"{WORKBENCH}exceptions/{exception.pk}/").status_code == 200
    assert "Dismiss" not in text_of(viewer.get(f"{WORKBENCH}exceptions/{exception.pk}/"))
    assert viewer.get(f"{WORKBENCH}upload/").status_code == 403
    assert viewer.post(f"{WORKBENCH}exceptions/{exception.pk}/dismiss/", {"dismiss-reason": "x"}).status_code == 403
    assert viewer.post(f"{WORKBENCH}run/").status_code == 403
    assert row(exception)["status"] == ExceptionStatus.OPEN
    assert viewer.get(f"{WORKBENCH}exceptions/999999/").status_code == 404


def test_a_small_remainder_is_listed_and_written_off_with_a_reason(clerk, invoices):
    heron = invoices["Blue Heron Robotics"]
    send(clerk, statement_csv(("2026-11-20", "999.40", "Blue Heron Robotics", heron.number)))

    listed = clerk.get(WORKBENCH)
    assert f'data-remainder="{heron.number}"' in listed.content.decode()
    assert f"{heron.number} Blue Heron Robotics 0.60 CNY" in text_of(listed)

    refused = clerk.post(f"{WORKBENCH}remainders/{heron.pk}/write-off/", {"reason": "", "submission": "w0"})
    assert "Say why the difference is written off." in text_of(clerk.get(refused["Location"]))
    done = clerk.post(
        f"{WORKBENCH}remainders/{heron.pk}/write-off/", {"reason": "Payer's bank charge", "submission": "w1"}
    )

    assert f"0.60 CNY of invoice {heron.number} written off: it is paid." in text_of(clerk.get(done["Location"]))
    heron.refresh_from_db()
    assert heron.status == InvoiceStatus.PAID
    assert AuditEvent.objects.get(action="payment.written_off").after["reason"] == "Payer's bank charge"


def test_the_demo_offers_its_sample_statement_through_the_upload_path(clerk, invoices, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    assert "Import the sample statement" not in text_of(clerk.get(WORKBENCH))
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "sample-bank-statement.csv").write_bytes(november(invoices))

    assert "Import the sample statement" in text_of(clerk.get(WORKBENCH))
    imported = clerk.post(f"{WORKBENCH}sample/", {"submission": "s1"})

    statement = BankStatement.objects.get()
    assert imported["Location"] == f"{WORKBENCH}statements/{statement.pk}/"
    assert (statement.filename, statement.line_count, statement.uploaded_by) == (
        "sample-bank-statement.csv",
        3,
        "clerk@ops.test",
    )
    again = clerk.post(f"{WORKBENCH}sample/", {"submission": "s2"})
    assert "This file was already uploaded as “sample-bank-statement.csv”" in text_of(clerk.get(again["Location"]))
    settings.PRODUCTION = True
    assert clerk.post(f"{WORKBENCH}sample/", {"submission": "s3"}).status_code == 404


def test_an_overpayment_is_refunded_from_its_exception_page_with_the_bank_reference(clerk, invoices):
    heron = invoices["Blue Heron Robotics"]
    send(clerk, statement_csv(("2026-11-20", "1250.00", "Blue Heron Robotics", f"Payment {heron.number}")))
    overpaid = ReconciliationException.objects.get(kind=ExceptionKind.AMOUNT_MISMATCH)
    page = text_of(clerk.get(f"{WORKBENCH}exceptions/{overpaid.pk}/"))
    assert "Record the transfer back to the payer of what this payment left as credit" in page

    missing = clerk.post(
        f"{WORKBENCH}exceptions/{overpaid.pk}/refund/", {"refund-reason": "Paid too much", "submission": "r0"}
    )
    assert missing.status_code == 400
    assert "This field is required for a bank transfer." in text_of(missing)
    assert row(overpaid)["status"] == ExceptionStatus.OPEN

    done = clerk.post(
        f"{WORKBENCH}exceptions/{overpaid.pk}/refund/",
        {"refund-reason": "Paid too much", "refund-reference": "CMB-RF-77", "submission": "r1"},
    )
    assert done.status_code == 302
    assert (row(overpaid)["status"], row(overpaid)["resolution"]) == (ExceptionStatus.RESOLVED, "refunded")
    assert "Refunded to the payer: the exception is resolved." in text_of(clerk.get(done["Location"]))
