"""Importing bank statements (issue 6, "Reconciliation workbench"): the documented format with or without a BOM, a
malformed file refused by line number with nothing stored, a duplicate refused by its SHA-256 naming the first
upload, another bank's export through a column mapping, and a large file imported by the task with live progress."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.errors import Conflict, Forbidden, InvalidInput
from accounts.models import AuditEvent
from billing.bank_import import BankFileError, Mapping, bank_file_header, bank_file_parse, is_standard
from billing.models import BankLineStatus, BankStatement, BankStatementLine, ImportStatus, Payment
from billing.services.bank_statements import INLINE_LINES, content_hash, statement_import_lines, statement_upload
from marketplace.realtime import organization_group
from tests.billing.bank import HEADER, UPLOADED_AT, october_invoices, statement_csv, upload
from tests.billing.payments import finance_clerk

pytestmark = pytest.mark.django_db

D = Decimal


def test_the_documented_format_with_a_bom_is_imported_line_by_line():
    clerk = finance_clerk()
    content = statement_csv(
        ("2026-11-20", "1000.00", "Blue Heron Robotics", "INV-2026-10-000001", "BR-1"),
        ("2026-11-21", "-25.00", "Bank of Hangzhou", "Account fee", "BR-2"),
        bom=True,
    )

    result = statement_upload(actor=clerk, filename="nov.csv", content=content, now=UPLOADED_AT)

    statement = result.statement
    assert (statement.status, statement.line_count, statement.credits, statement.debits) == (
        ImportStatus.DONE,
        2,
        D("1000.00"),
        D("25.00"),
    )
    assert statement.content_hash == content_hash(content)
    assert statement.mapping["date"] == "date" and statement.mapping["delimiter"] == ","
    assert list(
        BankStatementLine.objects.order_by("line_number").values_list(
            "line_number", "booked_on", "amount", "currency", "counterparty", "remittance", "bank_reference"
        )
    ) == [
        (2, date(2026, 11, 20), D("1000.00"), "CNY", "Blue Heron Robotics", "INV-2026-10-000001", "BR-1"),
        (3, date(2026, 11, 21), D("-25.00"), "CNY", "Bank of Hangzhou", "Account fee", "BR-2"),
    ]
    [event] = AuditEvent.objects.filter(action="bank_statement.uploaded")
    assert (event.actor_label, event.after["lines"], event.after["sha256"]) == (clerk.label, 2, statement.content_hash)


def test_columns_in_another_order_and_without_the_optional_ones_are_still_the_documented_format():
    parsed, mapping = bank_file_parse(b"Currency,Amount,Date\nCNY,12.50,2026-11-02\n")

    assert [(line.booked_on, line.amount, line.currency, line.remittance) for line in parsed.lines] == [
        (date(2026, 11, 2), D("12.50"), "CNY", "")
    ]
    assert (mapping.remittance, mapping.amount) == ("", "amount")


def test_a_malformed_file_is_refused_naming_every_bad_line_and_nothing_is_stored():
    clerk = finance_clerk()
    content = (
        ",".join(HEADER) + "\n"
        "2026-11-20,1000.00,CNY,A,1,ok,R1\n"
        "2026-11-31,10.00,CNY,B,1,bad date,R2\n"
        "2026-11-22,ten,CNY,C,1,bad amount,R3\n"
        "2026-11-23,1.005,CNY,D,1,too precise,R4\n"
        "2026-11-24,0.00,XYZ,E,1,zero in an unknown currency,R5\n"
        "2026-11-25,5.00,CNY\n"
    ).encode()

    with pytest.raises(InvalidInput) as refused:
        statement_upload(actor=clerk, filename="bad.csv", content=content, now=UPLOADED_AT)

    assert refused.value.code == "malformed_statement"
    assert refused.value.detail == "The file was not imported: 6 problem(s) were found, nothing was stored."
    assert refused.value.errors == {
        "file": [
            "Line 3: date “2026-11-31” is not a date written like 2026-11-30.",
            "Line 4: amount “ten” is not a number.",
            "Line 5: amount 1.005 has more decimals than CNY has.",
            "Line 6: currency “XYZ” is not a supported currency code.",
            "Line 6: the amount is zero.",
            "Line 7: 3 columns where the header has 7.",
        ]
    }
    assert refused.value.extra["lines"][0] == {
        "line": 3,
        "problem": "date “2026-11-31” is not a date written like 2026-11-30.",
    }
    assert BankStatement.objects.count() == BankStatementLine.objects.count() == 0


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "Line 1: The file is empty: the first line must name the columns."),
        (",".join(HEADER).encode() + b"\n", "The file holds no movements, only its header."),
        (b"\xff\xfe\x00d\x00a", "The file is neither UTF-8 nor GB 18030 text."),
    ],
)
def test_an_empty_or_unreadable_file_is_refused(content, problem):
    with pytest.raises(InvalidInput) as refused:
        statement_upload(actor=finance_clerk(), filename="x.csv", content=content, now=UPLOADED_AT)
    assert refused.value.errors == {"file": [problem]}
    assert BankStatement.objects.count() == 0


def test_the_same_file_again_is_a_duplicate_naming_the_first_upload():
    clerk = finance_clerk()
    rows = (("2026-11-20", "10.00", "A", "x"),)
    upload(clerk, *rows, filename="first.csv")

    with pytest.raises(Conflict) as duplicate:
        upload(clerk, *rows, filename="renamed.csv")

    assert duplicate.value.code == "duplicate_statement"
    assert duplicate.value.detail == (
        "This file was already uploaded as “first.csv” on 2026-11-25 08:00 UTC by clerk@platform.example; "
        "it is not imported twice."
    )
    assert duplicate.value.extra == {"statement": str(BankStatement.objects.get().pk)}
    assert BankStatementLine.objects.count() == 1


def test_another_banks_export_is_read_through_its_mapping():
    clerk = finance_clerk()
    content = (
        "Buchungstag;Wertstellung;Soll;Haben;Währung;Auftraggeber/Empfänger;Verwendungszweck\n"
        "30.11.2026;30.11.2026;;1.234,56;CNY;Blue Heron Robotics;Rechnung INV-2026-10-000001\n"
        "01.12.2026;01.12.2026;12,00;;CNY;Bank;Kontoführung\n"
    ).encode()
    header, delimiter = bank_file_header(content)
    assert (delimiter, is_standard(header)) == (";", False)
    mapping = Mapping(
        date="Buchungstag",
        credit="Haben",
        debit="Soll",
        currency="Währung",
        counterparty="Auftraggeber/Empfänger",
        remittance="Verwendungszweck",
        date_format="%d.%m.%Y",
        decimal_comma=True,
        delimiter=";",
    )

    statement = statement_upload(
        actor=clerk, filename="dkb.csv", content=content, mapping=mapping, now=UPLOADED_AT
    ).statement

    assert statement.mapping == mapping.as_dict()
    assert list(
        BankStatementLine.objects.order_by("line_number").values_list("booked_on", "amount", "counterparty")
    ) == [
        (date(2026, 11, 30), D("1234.56"), "Blue Heron Robotics"),
        (date(2026, 12, 1), D("-12.00"), "Bank"),
    ]


def test_a_mapping_that_does_not_fit_the_file_says_what_is_wrong():
    content = b"Datum;Betrag\n30.11.2026;12,00\n"

    with pytest.raises(BankFileError) as wrong:
        bank_file_parse(content, Mapping(date="Datum", amount="Betrag", credit="Haben", delimiter=";"))

    assert wrong.value.problems == [
        (1, "Choose either one signed amount column, or a credit column and a debit column."),
        (1, "Choose the currency column, or the one currency of every line."),
        (1, "The file has no column “Haben”."),
    ]


def test_only_operator_finance_uploads():
    invoices = october_invoices(("Blue Heron Robotics", 10))
    from tests.billing.test_reconcile import _consumer_actor

    with pytest.raises(Forbidden):
        statement_upload(
            actor=_consumer_actor(invoices["Blue Heron Robotics"]),
            filename="x.csv",
            content=statement_csv(("2026-11-20", "10.00", "A", "x")),
            now=UPLOADED_AT,
        )
    assert BankStatement.objects.count() == 0


def _listen(operator_id):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(organization_group(operator_id), channel)
    return layer, channel


def _received(layer, channel, count: int) -> list[dict]:
    """The next `count` messages of the channel, read in one event loop (the Redis layer's receive buffer is
    per loop)."""

    async def read() -> list[dict]:
        return [await layer.receive(channel) for _ in range(count)]

    return async_to_sync(read)()


@pytest.mark.redis
def test_a_large_file_is_imported_by_the_task_with_live_progress(django_capture_on_commit_callbacks):
    invoices = october_invoices(("Blue Heron Robotics", 10))
    clerk = finance_clerk()
    heron = invoices["Blue Heron Robotics"]
    rows = [("2026-11-20", "1000.00", "Blue Heron Robotics", heron.number)]
    rows += [("2026-11-21", f"{n}.00", "Bank", f"fee {n}") for n in range(1, INLINE_LINES + 1)]
    rows = [(d, f"-{a}" if n else a, c, r) for n, (d, a, c, r) in enumerate(rows)]
    content = statement_csv(*rows)
    layer, channel = _listen(clerk.organization.pk)

    with django_capture_on_commit_callbacks(execute=True):
        result = statement_upload(actor=clerk, filename="year.csv", content=content, now=UPLOADED_AT)

    assert result.queued is True
    statement = BankStatement.objects.get()
    assert (statement.status, statement.line_count) == (ImportStatus.DONE, INLINE_LINES + 1)
    assert BankStatementLine.objects.count() == INLINE_LINES + 1
    assert BankStatementLine.objects.get(line_number=2).status == BankLineStatus.MATCHED
    assert Payment.objects.get().invoice_id == heron.pk
    # Progress: the lines stored in one chunk, then matching every 50 lines, then done.
    events = _received(layer, channel, 9)
    assert [(e["phase"], e["done"], e["total"]) for e in events] == [
        ("lines", 301, 301),
        ("matching", 50, 301),
        ("matching", 100, 301),
        ("matching", 150, 301),
        ("matching", 200, 301),
        ("matching", 250, 301),
        ("matching", 300, 301),
        ("matching", 301, 301),
        ("done", 301, 301),
    ]
    assert {e["statement"] for e in events} == {str(statement.pk)}

    # The task run again (a redelivered message) changes nothing.
    before = (BankStatementLine.objects.count(), Payment.objects.count())
    statement_import_lines(statement_id=statement.pk, content=content, now=UPLOADED_AT)
    assert (BankStatementLine.objects.count(), Payment.objects.count()) == before


def test_a_task_that_fails_stores_no_line_and_the_file_may_be_uploaded_again(django_capture_on_commit_callbacks):
    clerk = finance_clerk()
    rows = [("2026-11-21", f"-{n}.00", "Bank", f"fee {n}") for n in range(1, INLINE_LINES + 2)]
    content = statement_csv(*rows)
    statement = BankStatement.objects.create(
        filename="broken.csv",
        content_hash=content_hash(content),
        mapping={"date": "no such column"},
        line_count=len(rows),
        uploaded_at=UPLOADED_AT,
        uploaded_by=clerk.label,
    )

    with pytest.raises(BankFileError):
        statement_import_lines(statement_id=statement.pk, content=content, now=UPLOADED_AT)

    statement.refresh_from_db()
    assert statement.status == ImportStatus.FAILED
    assert BankStatementLine.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        again = statement_upload(actor=clerk, filename="fixed.csv", content=content, now=UPLOADED_AT)
    again.statement.refresh_from_db()
    assert again.statement.status == ImportStatus.DONE
    assert BankStatementLine.objects.count() == len(rows)
