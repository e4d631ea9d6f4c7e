"""A close killed halfway leaves nothing of its books, and a rerun completes them: the period's close runs on a
real Celery worker (through Redis, against the test database) that is killed with SIGKILL while it writes."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import BillingPeriod, Invoice, InvoiceLine, JournalEntry, PeriodStatus, Statement
from billing.tasks import period_close_task
from tests.billing.settlement import OCT, book, invoice_of, market, meter, statement_of, trial_balance
from tests.worker import celery_worker_process, wait_for, worker_killed_at_a_lock

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.worker]

D = Decimal


def test_a_close_killed_halfway_leaves_nothing_and_a_rerun_completes_it():
    center, offering, consumer = market(fraction="0.500")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 8)  # 8 dh used of 16 committed

    # Another session holds the statements table: the close writes its invoices, then waits there.
    worker_killed_at_a_lock(
        "LOCK TABLE billing_statement IN ACCESS EXCLUSIVE MODE",
        start=lambda queue: period_close_task.apply_async(args=["2026-10", "test"], queue=queue),
        what="the close",
    )

    period = BillingPeriod.objects.get(start=OCT)
    cutoff = period.usage_cutoff
    assert (period.status, cutoff is not None) == (PeriodStatus.CLOSING, True)
    assert (Invoice.objects.count(), InvoiceLine.objects.count(), Statement.objects.count()) == (0, 0, 0)
    assert not JournalEntry.objects.exists()

    with celery_worker_process() as (queue, _worker):
        period_close_task.apply_async(args=["2026-10", "test"], queue=queue)
        assert wait_for(lambda: BillingPeriod.objects.get(start=OCT).status == PeriodStatus.CLOSED, timeout=60)

    period.refresh_from_db()
    assert period.usage_cutoff == cutoff  # the rerun bills exactly what the first attempt would have
    invoice = invoice_of(consumer, OCT)
    # 8 dh of usage (100.00) and 8 dh of shortfall against 0.5 × 8 × 4 h (100.00).
    assert (invoice.subtotal, invoice.total) == (D("200.00"), D("200.00"))
    assert list(invoice.lines.order_by("id").values_list("kind", "amount")) == [
        ("usage", D("100.00")),
        ("commitment", D("100.00")),
    ]
    statement = statement_of(center, OCT)
    assert (statement.gross, statement.fee, statement.payout) == (D("200.00"), D("20.00"), D("180.00"))
    assert JournalEntry.objects.count() == 2  # the invoice and the fee
    assert trial_balance() == {"CNY": D("0")}
