"""Dunning (issue 6, "Collecting from consumers"): reminders 3 days before the due date, then 1, 14 and 30 days
overdue, e-mailed to the consumer's owners, admins and finance staff, once per invoice and stage; only the latest
stage reached is sent; a paid invoice gets nothing.

The invoice: INV-2026-10-000001, 1,000.00 CNY, finalized 2026-11-03 09:00, due 2026-12-03 09:00 (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core import mail
from django.db import IntegrityError, transaction

from accounts.models import Role
from billing.models import DunningNotice, DunningStage, PaymentMethod
from billing.services.dunning import dunning_run, dunning_stage
from billing.services.payments import payment_record
from billing.tasks import dunning_run_task
from tests.billing.payments import october_invoice
from tests.factories import member_of

pytestmark = pytest.mark.django_db

DUE = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@pytest.fixture
def invoice():
    invoice, _center, consumer = october_invoice()
    member_of(consumer, Role.FINANCE, email="finance@blueheron.test")
    member_of(consumer, Role.ADMIN, email="admin@blueheron.test")
    member_of(consumer, Role.MEMBER, email="engineer@blueheron.test")
    assert (invoice.number, invoice.due_at) == ("INV-2026-10-000001", DUE)
    return invoice


@pytest.fixture
def beat(django_capture_on_commit_callbacks):
    """Run the beat task at a given instant, with its after-commit e-mails sent; return the stages written."""

    def run(when: str) -> list[str]:
        before = set(DunningNotice.objects.values_list("pk", flat=True))
        with time_machine.travel(at(when), tick=False), django_capture_on_commit_callbacks(execute=True):
            dunning_run_task()
        return list(DunningNotice.objects.exclude(pk__in=before).order_by("pk").values_list("stage", flat=True))

    return run


def pay(invoice, amount: str, when: str, key: str = "p1"):
    return payment_record(
        consumer=invoice.consumer,
        method=PaymentMethod.BANK_TRANSFER,
        currency="CNY",
        amount=Decimal(amount),
        key=key,
        received_at=at(when),
        now=at(when),
        invoice=invoice,
        reference=invoice.number,
    )


@pytest.mark.parametrize(
    ("when", "stage"),
    [
        ("2026-11-30 08:59", None),
        ("2026-11-30 09:00", DunningStage.DUE_SOON),
        ("2026-12-03 08:59", DunningStage.DUE_SOON),
        ("2026-12-03 09:00", None),  # due today: the first overdue reminder waits a day
        ("2026-12-04 09:00", DunningStage.OVERDUE_1),
        ("2026-12-17 08:59", DunningStage.OVERDUE_1),
        ("2026-12-17 09:00", DunningStage.OVERDUE_14),
        ("2027-01-02 09:00", DunningStage.OVERDUE_30),
        ("2027-06-01 00:00", DunningStage.OVERDUE_30),
    ],
)
def test_the_stage_reached_at_each_moment(when, stage):
    assert dunning_stage(DUE, at(when)) == stage


def test_each_stage_is_mailed_once_to_owners_admins_and_finance(invoice, beat):
    assert beat("2026-11-30 08:00") == []
    assert beat("2026-11-30 09:00") == [DunningStage.DUE_SOON]
    assert beat("2026-11-30 10:00") == []  # the next hour's run sends nothing twice
    assert beat("2026-12-03 12:00") == []
    assert beat("2026-12-04 09:00") == [DunningStage.OVERDUE_1]
    assert beat("2026-12-05 09:00") == []
    assert beat("2026-12-17 09:00") == [DunningStage.OVERDUE_14]
    assert beat("2027-01-02 09:00") == [DunningStage.OVERDUE_30]
    assert beat("2027-03-01 09:00") == []

    assert [(m.to, m.subject) for m in mail.outbox] == [
        (
            ["admin@blueheron.test", "finance@blueheron.test"],
            "Reminder: invoice INV-2026-10-000001 is due on 2026-12-03",
        ),
        (
            ["admin@blueheron.test", "finance@blueheron.test"],
            "Overdue: invoice INV-2026-10-000001 was due on 2026-12-03",
        ),
        (
            ["admin@blueheron.test", "finance@blueheron.test"],
            "Overdue: invoice INV-2026-10-000001 was due on 2026-12-03",
        ),
        (
            ["admin@blueheron.test", "finance@blueheron.test"],
            "Overdue: invoice INV-2026-10-000001 was due on 2026-12-03",
        ),
    ]
    soon, first, fourteen, thirty = (m.body for m in mail.outbox)
    assert soon.startswith(
        "Hello,\n\nInvoice INV-2026-10-000001 for 2026-10 is due on 2026-12-03 (UTC): 1000.00 CNY is still to be paid."
    )
    assert "  Reference: INV-2026-10-000001\n" in soon
    assert "  Account: 3301 0401 6000 0000 000\n" in soon
    assert "cannot make new bookings" not in soon
    assert "was due on 2026-12-03 (UTC) and is 1 day overdue: 1000.00 CNY is still unpaid." in first
    assert "While an invoice is overdue, Blue Heron Robotics cannot make new bookings." in first
    assert "and is 14 days overdue: 1000.00 CNY is still unpaid." in fourteen
    assert "and is 30 days overdue: 1000.00 CNY is still unpaid." in thirty
    notices = DunningNotice.objects.filter(invoice=invoice).order_by("sent_at")
    assert [(n.stage, n.outstanding, n.recipients, n.sent_at) for n in notices] == [
        (
            DunningStage.DUE_SOON,
            Decimal("1000.0000"),
            ["admin@blueheron.test", "finance@blueheron.test"],
            at("2026-11-30 09:00"),
        ),
        (
            DunningStage.OVERDUE_1,
            Decimal("1000.0000"),
            ["admin@blueheron.test", "finance@blueheron.test"],
            at("2026-12-04 09:00"),
        ),
        (
            DunningStage.OVERDUE_14,
            Decimal("1000.0000"),
            ["admin@blueheron.test", "finance@blueheron.test"],
            at("2026-12-17 09:00"),
        ),
        (
            DunningStage.OVERDUE_30,
            Decimal("1000.0000"),
            ["admin@blueheron.test", "finance@blueheron.test"],
            at("2027-01-02 09:00"),
        ),
    ]


def test_after_the_beat_was_down_only_the_latest_stage_is_sent(invoice, beat):
    # Down from before the reminder until 17 days after the due date: "due soon" and "1 day overdue" are past.
    assert beat("2026-12-20 09:00") == [DunningStage.OVERDUE_14]
    assert beat("2026-12-21 09:00") == []
    assert beat("2027-01-05 09:00") == [DunningStage.OVERDUE_30]

    assert [m.subject for m in mail.outbox] == ["Overdue: invoice INV-2026-10-000001 was due on 2026-12-03"] * 2
    assert "is 17 days overdue" in mail.outbox[0].body
    assert set(DunningNotice.objects.values_list("stage", flat=True)) == {"overdue_14", "overdue_30"}


def test_a_paid_invoice_gets_no_reminder(invoice, beat):
    pay(invoice, "1000.00", "2026-11-20 10:00")

    assert beat("2026-11-30 09:00") == []
    assert beat("2026-12-04 09:00") == []
    assert mail.outbox == []
    assert DunningNotice.objects.count() == 0


def test_a_partly_paid_invoice_is_reminded_of_the_remainder(invoice, beat):
    pay(invoice, "400.00", "2026-11-20 10:00")

    assert beat("2026-12-04 09:00") == [DunningStage.OVERDUE_1]

    assert "is 1 day overdue: 600.00 CNY is still unpaid." in mail.outbox[0].body
    assert DunningNotice.objects.get().outstanding == Decimal("600.0000")


def test_an_invoice_paid_between_the_notice_and_its_email_gets_no_email(invoice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = dunning_run(now=at("2026-12-04 09:00"))
    assert [n.stage for n in result.sent] == [DunningStage.OVERDUE_1]
    pay(invoice, "1000.00", "2026-12-04 09:05")

    for callback in callbacks:
        callback()

    assert mail.outbox == []


def test_a_rolled_back_notice_sends_nothing(invoice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        dunning_run(now=at("2026-12-04 09:00"))
        raise RuntimeError("the run failed after writing the notice")

    assert mail.outbox == []
    assert DunningNotice.objects.count() == 0


def test_a_consumer_without_billing_contacts_is_noted_but_mailed_nothing(beat):
    _invoice, _center, consumer = october_invoice()
    member_of(consumer, Role.MEMBER, email="engineer@blueheron.test")

    assert beat("2026-12-04 09:00") == [DunningStage.OVERDUE_1]
    assert beat("2026-12-04 10:00") == []
    assert mail.outbox == []
    assert DunningNotice.objects.get().recipients == []


def test_the_database_refuses_a_second_notice_of_one_stage(invoice):
    dunning_run(now=at("2026-12-04 09:00"))

    with pytest.raises(IntegrityError), transaction.atomic():
        DunningNotice.objects.create(
            invoice=invoice, stage=DunningStage.OVERDUE_1, outstanding=Decimal(1), sent_at=at("2026-12-04 10:00")
        )
