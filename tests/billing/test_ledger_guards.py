"""The ledger and the closed books as PostgreSQL guards them (ARCHITECTURE.md invariants 4 and 7): whatever code
runs, the database refuses an unbalanced entry, any change to a journal line, to an invoice's or statement's
amounts, or to a closed period."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from billing.models import (
    AccountRole,
    BillingPeriod,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    LedgerAccount,
    Statement,
)
from billing.services.ledger import UnbalancedEntry, credit, debit, journal_post
from tests.billing.settlement import OCT, at, book, close, invoice_of, market, meter, statement_of

pytestmark = pytest.mark.django_db

D = Decimal
NOW = at("2026-11-02 00:00")


def check_deferred_constraints():
    """What COMMIT would do: run the deferred balance checks now."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def accounts(currency="CNY"):
    receivable = LedgerAccount.objects.create(organization=None, role=AccountRole.CASH, currency=currency)
    revenue = LedgerAccount.objects.create(organization=None, role=AccountRole.FEE_REVENUE, currency=currency)
    return receivable, revenue


def test_a_balanced_entry_is_posted_once_under_its_key():
    postings = [
        debit(None, AccountRole.CASH, "CNY", D("10.00")),
        credit(None, AccountRole.FEE_REVENUE, "CNY", D("10.00")),
    ]

    first = journal_post(key="test:1", kind="test", memo="ten", postings=postings, now=NOW)
    again = journal_post(key="test:1", kind="test", memo="ten", postings=postings, now=NOW)
    check_deferred_constraints()

    assert again == first
    assert JournalEntry.objects.count() == 1
    assert sorted(JournalLine.objects.values_list("account__role", "amount")) == [
        ("cash", D("10.0000")),
        ("fee_revenue", D("-10.0000")),
    ]


def test_the_service_refuses_an_unbalanced_entry_before_writing():
    with pytest.raises(UnbalancedEntry, match="does not balance"):
        journal_post(
            key="test:bad",
            kind="test",
            memo="off by a fen",
            postings=[
                debit(None, AccountRole.CASH, "CNY", D("10.00")),
                credit(None, AccountRole.FEE_REVENUE, "CNY", D("9.99")),
            ],
            now=NOW,
        )
    assert not JournalEntry.objects.exists()


def test_the_database_refuses_an_unbalanced_entry_at_commit():
    cash, revenue = accounts()
    entry = JournalEntry.objects.create(key="raw:1", kind="test", memo="raw", posted_at=NOW)
    JournalLine.objects.create(entry=entry, account=cash, currency="CNY", amount=D("10.00"))
    JournalLine.objects.create(entry=entry, account=revenue, currency="CNY", amount=D("-9.99"))

    with pytest.raises(
        DatabaseError, match=r"journal entry \d+ does not balance in CNY: debits exceed credits by 0.0100"
    ):
        check_deferred_constraints()


def test_the_database_refuses_an_entry_without_lines():
    JournalEntry.objects.create(key="raw:empty", kind="test", memo="nothing", posted_at=NOW)

    with pytest.raises(DatabaseError, match=r"journal entry \d+ has no lines"):
        check_deferred_constraints()


def test_balance_is_per_currency():
    cny_cash, _revenue = accounts("CNY")
    _usd_cash, usd_revenue = accounts("USD")
    entry = JournalEntry.objects.create(key="raw:fx", kind="test", memo="mixed", posted_at=NOW)
    JournalLine.objects.create(entry=entry, account=cny_cash, currency="CNY", amount=D("7.00"))
    JournalLine.objects.create(entry=entry, account=usd_revenue, currency="USD", amount=D("-7.00"))

    with pytest.raises(DatabaseError, match=r"does not balance in (CNY|USD)"):
        check_deferred_constraints()


def test_a_line_must_be_in_its_accounts_currency():
    cash, _revenue = accounts("CNY")
    entry = JournalEntry.objects.create(key="raw:cur", kind="test", memo="wrong currency", posted_at=NOW)

    with pytest.raises(DatabaseError, match="journal line in USD on an account kept in another currency"):
        JournalLine.objects.create(entry=entry, account=cash, currency="USD", amount=D("1.00"))


def test_journal_lines_and_entries_can_be_neither_updated_nor_deleted():
    journal_post(
        key="test:2",
        kind="test",
        memo="fixed",
        postings=[
            debit(None, AccountRole.CASH, "CNY", D("5.00")),
            credit(None, AccountRole.FEE_REVENUE, "CNY", D("5.00")),
        ],
        now=NOW,
    )
    line = JournalLine.objects.first()

    for attempt in (
        lambda: JournalLine.objects.filter(pk=line.pk).update(amount=D("6.00")),
        lambda: JournalLine.objects.filter(pk=line.pk).delete(),
        lambda: JournalEntry.objects.update(memo="rewritten"),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()

    assert JournalLine.objects.get(pk=line.pk).amount == D("5.0000")
    assert JournalEntry.objects.get().memo == "fixed"


def test_an_issued_invoice_and_statement_keep_their_amounts_and_lines():
    center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 02:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 8)
    close(OCT)
    invoice, statement = invoice_of(consumer, OCT), statement_of(center, OCT)

    for attempt in (
        lambda: Invoice.objects.filter(pk=invoice.pk).update(total=D("1.00"), subtotal=D("1.00")),
        lambda: Invoice.objects.filter(pk=invoice.pk).delete(),
        lambda: InvoiceLine.objects.filter(invoice=invoice).update(amount=D("1.00")),
        lambda: Statement.objects.filter(pk=statement.pk).update(fee=D("0.00"), payout=statement.gross),
    ):
        with pytest.raises((DatabaseError, IntegrityError)), transaction.atomic():
            attempt()

    # Status moves stay possible: that is how an invoice is finalized and paid.
    Invoice.objects.filter(pk=invoice.pk).update(held=True)
    invoice.refresh_from_db()
    assert (invoice.subtotal, invoice.total, invoice.held) == (D("100.00"), D("100.00"), True)
    assert statement_of(center, OCT).fee == D("10.00")


def test_a_closed_period_never_changes():
    market(fraction="0")
    close(OCT)

    with pytest.raises(DatabaseError, match="period 2026-10 is closed"), transaction.atomic():
        BillingPeriod.objects.filter(start=OCT).update(status="open")
    with pytest.raises(DatabaseError, match="period 2026-10 is closed"), transaction.atomic():
        BillingPeriod.objects.filter(start=OCT).delete()
    assert BillingPeriod.objects.get(start=OCT).status == "closed"
