"""A period close killed halfway (SIGKILL of the real Celery worker while it writes, as in
tests/billing/test_close_crash.py) and run again books exactly what an uninterrupted close of the same usage books:
the full snapshot — invoices and their lines, center statements, journal entries and lines — compared with a close
made first in a transaction that is rolled back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing.models import BillingPeriod, Invoice, JournalEntry, PeriodStatus
from billing.services.periods import period_close
from billing.tasks import period_close_task
from tests.billing.settlement import OCT, book, market, meter, trial_balance
from tests.factories import OrganizationFactory
from tests.faults.books import books
from tests.worker import celery_worker_process, wait_for, worker_killed_at_a_lock

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis, pytest.mark.worker]


class RolledBack(Exception):
    pass


def test_a_close_killed_halfway_and_run_again_books_what_an_uninterrupted_close_books():
    from accounts.models import OrganizationKind

    _center, offering, consumer = market(fraction="0.500")
    other = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Crane Labs")
    # 8 of 16 committed device-hours used (a shortfall line), and a booking used in full.
    short = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 8)
    meter(short, "2026-10-05 00:00", "2026-10-05 01:00", 8)
    full = book(offering, other, "2026-10-12 00:00", "2026-10-12 10:00", 4)
    meter(full, "2026-10-12 00:00", "2026-10-12 10:00", 4)
    before = books()

    try:
        with transaction.atomic():
            period_close(start=OCT, now=timezone.now(), actor_label="test")
            uninterrupted = books()
            raise RolledBack
    except RolledBack:
        pass
    assert books() == before
    assert len(uninterrupted["invoices"]) == 2 and uninterrupted["journal"]

    # The close writes its invoices, then waits for the statements table, and is killed there.
    worker_killed_at_a_lock(
        "LOCK TABLE billing_statement IN ACCESS EXCLUSIVE MODE",
        start=lambda queue: period_close_task.apply_async(args=["2026-10", "test"], queue=queue),
        what="the close",
    )
    assert BillingPeriod.objects.get(start=OCT).status == PeriodStatus.CLOSING
    assert (Invoice.objects.count(), JournalEntry.objects.count()) == (0, 0)

    with celery_worker_process() as (queue, _worker):
        period_close_task.apply_async(args=["2026-10", "test"], queue=queue)
        assert wait_for(lambda: BillingPeriod.objects.get(start=OCT).status == PeriodStatus.CLOSED, timeout=60)
        # A duplicate delivery of the task changes nothing.
        period_close_task.apply_async(args=["2026-10", "test"], queue=queue)
        assert wait_for(lambda: books() == uninterrupted, timeout=10)

    got = books()
    assert got == uninterrupted, {key: (got[key], uninterrupted[key]) for key in got if got[key] != uninterrupted[key]}
    assert trial_balance() == {"CNY": Decimal("0")}
