"""A large bank statement's import killed halfway (SIGKILL of the real Celery worker running
`billing.bank_statement_import`), once while it stores the lines and once while it auto-matches them, then run
again: the books — statement, lines, payments, allocations, journal entries, matches, exceptions — are exactly
those of the same file imported without interruption (that run is made first, in a transaction rolled back)."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing.models import BankLineStatus, BankStatement, ImportStatus, ReconciliationMatch
from billing.services import bank_statements
from billing.services.bank_statements import statement_import_lines, statement_upload
from billing.tasks import bank_statement_import
from tests.billing.bank import october_invoices, statement_csv
from tests.billing.payments import finance_clerk
from tests.billing.settlement import trial_balance
from tests.faults.books import books
from tests.worker import celery_worker_process, wait_for, worker_killed_at_a_lock

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.worker]

# Up to this many lines are imported in the request: a small threshold here, so a 60-line file goes through the
# task as a large one does, while the test stays fast (auto-matching takes ~30 ms a line).
INLINE = 40
LINES = 60


class RolledBack(Exception):
    pass


def _rows(invoices) -> list[tuple]:
    """Payments by reference (exact, partial, the rest later), an unknown transfer, and bank fees between them;
    Crane Labs' payment comes late, so a run stopped at it has matched some lines and not others."""
    heron, acme, crane = (invoices[name].number for name in ("Blue Heron Robotics", "Acme Vision", "Crane Labs"))
    special = {
        1: ("2026-11-20", "1000.00", "Blue Heron Robotics", f"Invoice {heron}"),
        2: ("2026-11-20", "150.00", "Acme Vision", acme),
        5: ("2026-11-21", "250.00", "Unknown Trading Co", "services"),
        30: ("2026-11-22", "600.00", "Crane Labs", crane),
        41: ("2026-11-23", "250.00", "Acme Vision", f"rest of {acme}"),
        55: ("2026-11-24", "99.00", "Blue Heron Robotics", heron),  # more than it owes
    }
    return [special.get(n, ("2026-11-21", f"-{n % 7 + 1}.00", "Bank", f"fee {n}")) for n in range(1, LINES + 1)]


@pytest.mark.parametrize("kill_while", ["storing", "matching"])
def test_a_bank_import_killed_halfway_and_run_again_books_what_an_uninterrupted_run_books(monkeypatch, kill_while):
    monkeypatch.setattr(bank_statements, "INLINE_LINES", INLINE)
    invoices = october_invoices(("Blue Heron Robotics", 10), ("Acme Vision", 4), ("Crane Labs", 6))
    content = statement_csv(*_rows(invoices))
    clerk = finance_clerk()
    before = books()

    # The same file imported without interruption (the task's service, in-process), then rolled back.
    try:
        with transaction.atomic():
            upload = statement_upload(actor=clerk, filename="november.csv", content=content, now=timezone.now())
            assert upload.queued
            statement_import_lines(statement_id=upload.statement.pk, content=content, now=timezone.now())
            uninterrupted = books()
            raise RolledBack
    except RolledBack:
        pass
    assert books() == before
    assert uninterrupted["statements"][0][1:3] == (ImportStatus.DONE, LINES)
    assert len(uninterrupted["payments"]) == 5

    if kill_while == "storing":
        # Reads pass; the task's insert of the lines waits, inside its transaction.
        lock, params = "LOCK TABLE billing_bankstatementline IN EXCLUSIVE MODE", []
    else:
        # The match of Crane Labs' payment (line 30) waits for its invoice; lines 1-29 are matched by then.
        lock, params = "SELECT 1 FROM billing_invoice WHERE id = %s FOR UPDATE", [invoices["Crane Labs"].pk]

    def start(queue: str):
        monkeypatch.setattr(
            bank_statement_import, "delay", lambda *args: bank_statement_import.apply_async(args, queue=queue)
        )
        return statement_upload(actor=clerk, filename="november.csv", content=content, now=timezone.now())

    upload = worker_killed_at_a_lock(lock, params, start=start, what="the import")

    statement = BankStatement.objects.get(pk=upload.statement.pk)
    if kill_while == "storing":
        assert (statement.status, statement.lines.count()) == (ImportStatus.RUNNING, 0)
    else:
        assert (statement.status, statement.lines.count()) == (ImportStatus.DONE, LINES)
        matched = statement.lines.exclude(status=BankLineStatus.UNMATCHED).count()
        assert ReconciliationMatch.objects.count() > 0 and matched < LINES  # halfway
        assert not statement.lines.filter(line_number__gte=30).exclude(status=BankLineStatus.UNMATCHED).exists()
    assert books() != uninterrupted

    # The rerun: the same task again (as a redelivery or finance's retry would queue it).
    with celery_worker_process() as (queue, _worker):
        encoded = base64.b64encode(content).decode("ascii")
        bank_statement_import.apply_async(args=[str(statement.pk), encoded], queue=queue)
        assert wait_for(lambda: books() == uninterrupted, timeout=60), _difference(books(), uninterrupted)
        # Once more: a duplicate delivery changes nothing.
        bank_statement_import.apply_async(args=[str(statement.pk), encoded], queue=queue)
        assert wait_for(lambda: _queue_empty(queue), timeout=30)
    assert books() == uninterrupted
    assert trial_balance() == {"CNY": Decimal("0")}


def _queue_empty(queue: str) -> bool:
    from marketplace.celery import app

    with app.connection_for_read() as conn:
        return conn.default_channel.client.llen(queue) == 0


def _difference(got: dict, want: dict) -> str:
    return "; ".join(f"{key}: {got[key]!r} != {want[key]!r}" for key in want if got[key] != want[key])[:4000]
