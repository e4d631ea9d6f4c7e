"""Closing a period: idempotent, in order, refusing months that have not ended, safe under concurrent closes and
racing uploads; the beat closes what is due after the grace; invoices are finalized after their review window with
gapless numbers and e-mailed once; corrections are credit notes that reach the next statement."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail

from accounts.actor import Actor
from accounts.errors import Conflict, Forbidden, InvalidInput
from accounts.models import AuditEvent, OrganizationKind, Role
from billing.models import (
    AccountRole,
    BillingPeriod,
    CreditNote,
    Invoice,
    InvoiceLine,
    JournalEntry,
    PeriodStatus,
    Statement,
    UsageRecord,
)
from billing.services.invoices import (
    CreditRequest,
    credit_note_issue,
    invoice_finalize,
    invoice_hold,
    invoice_release,
    invoice_void,
    invoices_finalize_due,
)
from billing.services.periods import EarlierPeriodOpen, PeriodNotEnded, period_close, periods_close_due
from billing.services.usage import usage_ingest
from tests.billing.settlement import (
    NOV,
    OCT,
    at,
    balance,
    book,
    center_actor,
    close,
    invoice_of,
    market,
    meter,
    statement_of,
    trial_balance,
)
from tests.concurrency import run_at_once
from tests.factories import OrganizationFactory, UserFactory, member_of

D = Decimal


def finance_actor(role=Role.FINANCE) -> Actor:
    from accounts.models import Organization

    operator = Organization.objects.filter(kind=OrganizationKind.OPERATOR).first() or OrganizationFactory(
        kind=OrganizationKind.OPERATOR, name="AI Computing Network"
    )
    return Actor.for_member(user=UserFactory(), organization=operator, role=role)


def books() -> dict:
    """Everything a close writes, to compare two states of the books."""
    return {
        "invoices": sorted(
            Invoice.objects.values_list("consumer_id", "currency", "subtotal", "voucher_amount", "total")
        ),
        "lines": InvoiceLine.objects.count(),
        "statements": sorted(Statement.objects.values_list("center_id", "gross", "fee", "payout")),
        "entries": JournalEntry.objects.count(),
        "trial_balance": trial_balance(),
    }


@pytest.mark.django_db
def test_closing_a_closed_period_changes_nothing():
    _center, offering, consumer = market(fraction="0.5")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 8)
    first = close(OCT)
    before = books()

    again = close(OCT, now=at("2026-12-15 00:00"))

    assert (first.already_closed, first.invoices, first.statements) == (False, 1, 1)
    assert (again.already_closed, again.invoices) == (True, 0)
    assert books() == before


@pytest.mark.django_db
def test_a_period_that_has_not_ended_is_refused_and_left_open():
    market()

    with pytest.raises(PeriodNotEnded, match=r"2026-10 has not ended yet: it can be closed from 2026-11-01 00:00"):
        period_close(start=OCT, now=at("2026-10-31 23:59"))

    assert BillingPeriod.objects.get(start=OCT).status == PeriodStatus.OPEN
    assert not Invoice.objects.exists()


@pytest.mark.django_db
def test_periods_close_in_order():
    _center, offering, consumer = market(fraction="0")
    book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 8)

    with pytest.raises(EarlierPeriodOpen, match="Close 2026-10 first"):
        close(NOV)

    close(OCT)
    assert close(NOV).already_closed is False


@pytest.mark.django_db
def test_the_command_closes_and_reports_as_json(capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 02:00", 4)  # 8 dh → 100.00

    call_command("close_period", "2026-10")
    import json

    summary = json.loads(capsys.readouterr().out)
    call_command("close_period", "2026-10")
    again = json.loads(capsys.readouterr().out)

    assert summary["period"] == "2026-10" and summary["status"] == "closed" and summary["invoices"] == 1
    assert summary["totals"]["CNY"] == {
        "subtotal": "100.00",
        "total": "100.00",
        "voucher_claims": "0.00",
        "gross": "100.00",
        "fee": "10.00",
        "payout": "90.00",
    }
    assert again["already_closed"] is True
    with pytest.raises(CommandError, match="A period is a month written YYYY-MM"):
        call_command("close_period", "October")
    with pytest.raises(CommandError, match="has not ended yet"):
        call_command("close_period", "2099-01")


@pytest.mark.django_db(transaction=True)
def test_concurrent_closes_of_one_period_write_one_set_of_books():
    _center, offering, consumer = market(fraction="0.5")
    for day in range(1, 6):
        booking = book(offering, consumer, f"2026-10-0{day} 00:00", f"2026-10-0{day} 04:00", 8)
        meter(booking, f"2026-10-0{day} 00:00", f"2026-10-0{day} 02:00", 8)

    results = run_at_once(*[lambda: close(OCT) for _ in range(4)])

    assert [type(r) for r in results if isinstance(r, Exception)] == []
    assert sorted(r.already_closed for r in results) == [False, True, True, True]
    assert Invoice.objects.count() == 1
    # 5 bookings × (16 dh usage + 0 shortfall: 16 of 32 dh... committed 0.5 × 32 = 16) = 5 × 200.00
    assert invoice_of(consumer, OCT).subtotal == D("1000.00")
    assert trial_balance() == {"CNY": D("0")}


@pytest.mark.django_db(transaction=True)
def test_an_upload_racing_a_close_is_billed_exactly_once():
    """The close waits for uploads in flight (the usage gate): whichever commits first, each record lands in
    exactly one invoice, in October's or as late usage in November's."""
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-06 00:00", 1)
    records = [
        {
            "id": f"r{i}",
            "booking": str(booking.pk),
            "start": (at("2026-10-05 00:00") + timedelta(minutes=i)).isoformat(),
            "end": (at("2026-10-05 00:00") + timedelta(minutes=i + 1)).isoformat(),
            "devices": 1,
        }
        for i in range(600)
    ]

    def upload(chunk):
        return lambda: usage_ingest(
            actor=center_actor(booking.offering.center), records=chunk, now=at("2026-11-01 06:00")
        )

    results = run_at_once(upload(records[:200]), upload(records[200:400]), lambda: close(OCT), upload(records[400:]))
    assert [r for r in results if isinstance(r, Exception)] == []
    close(NOV)

    billed = sum(InvoiceLine.objects.filter(booking=booking).values_list("device_seconds", flat=True), D(0))
    stored = sum(UsageRecord.objects.filter(booking=booking).values_list("device_seconds", flat=True), D(0))
    assert stored == D("36000")  # 600 minutes
    assert billed == stored


@pytest.mark.django_db
def test_the_beat_closes_every_period_due_after_the_grace(settings):
    settings.BILLING_CLOSE_GRACE_HOURS = 24
    _center, offering, consumer = market(fraction="0")
    for month, day in ((9, 10), (10, 10)):
        booking = book(offering, consumer, f"2026-{month:02d}-{day} 00:00", f"2026-{month:02d}-{day} 02:00", 1)
        meter(booking, f"2026-{month:02d}-{day} 00:00", f"2026-{month:02d}-{day} 01:00", 1)

    within_grace = periods_close_due(now=at("2026-11-01 23:00"))
    after_grace = periods_close_due(now=at("2026-11-02 00:00"))

    assert [r.period.label for r in within_grace] == ["2026-09"]
    assert [(r.period.label, r.already_closed) for r in after_grace] == [("2026-09", True), ("2026-10", False)]
    assert (
        BillingPeriod.objects.get(start=NOV).status == PeriodStatus.OPEN
        if BillingPeriod.objects.filter(start=NOV).exists()
        else True
    )


def _two_invoices():
    _center, offering, consumer = market(fraction="0")
    other = OrganizationFactory(kind=OrganizationKind.UNIVERSITY, name="Westlake University")
    member_of(consumer, Role.FINANCE, email="finance@blueheron.test")
    member_of(consumer, Role.MEMBER, email="member@blueheron.test")
    for who in (consumer, other):
        booking = book(offering, who, "2026-10-05 00:00", "2026-10-05 04:00", 8)
        meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 8)
    close(OCT, now=at("2026-11-02 00:00"))
    return consumer, other


@pytest.mark.django_db
def test_invoices_are_finalized_after_the_review_window_with_gapless_numbers(settings):
    settings.INVOICE_REVIEW_HOURS = 48
    settings.INVOICE_PAYMENT_TERMS_DAYS = 30
    consumer, other = _two_invoices()
    held = invoice_of(other, OCT)
    invoice_hold(
        actor=finance_actor(), invoice_id=held.pk, reason="usage disputed by the consumer", now=at("2026-11-02 01:00")
    )

    assert invoices_finalize_due(now=at("2026-11-03 23:59")) == 0  # review window open until Nov 4 00:00
    assert invoices_finalize_due(now=at("2026-11-04 00:00")) == 1

    finalized = invoice_of(consumer, OCT)
    assert (finalized.status, finalized.number) == ("finalized", "INV-2026-10-000001")
    assert (finalized.finalized_at, finalized.due_at) == (at("2026-11-04 00:00"), at("2026-12-04 00:00"))
    assert invoice_of(other, OCT).status == "draft"
    # Released, the held one is finalized by the next run, with the next number.
    invoice_release(actor=finance_actor(), invoice_id=held.pk, now=at("2026-11-05 00:00"))
    assert invoices_finalize_due(now=at("2026-11-05 00:10")) == 1
    assert invoice_of(other, OCT).number == "INV-2026-10-000002"


@pytest.mark.django_db
def test_a_finalized_invoice_is_emailed_once_to_the_consumers_finance_and_admins(django_capture_on_commit_callbacks):
    consumer, _other = _two_invoices()
    invoice = invoice_of(consumer, OCT)

    with django_capture_on_commit_callbacks(execute=True):
        invoice_finalize(invoice_id=invoice.pk, now=at("2026-11-02 02:00"), actor=finance_actor())
    with django_capture_on_commit_callbacks(execute=True):
        invoice_finalize(invoice_id=invoice.pk, now=at("2026-11-02 03:00"), actor=finance_actor())

    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Invoice INV-2026-10-000001 for 2026-10"
    assert mail.outbox[0].to == ["finance@blueheron.test"]
    assert "100.00 CNY due by 2026-12-02" in mail.outbox[0].body
    invoice.refresh_from_db()
    assert invoice.emailed_at is not None
    assert AuditEvent.objects.filter(action="invoice.finalized").count() == 1


@pytest.mark.django_db
def test_only_the_platforms_finance_staff_finalize_hold_and_credit():
    consumer, _other = _two_invoices()
    invoice = invoice_of(consumer, OCT)
    consumer_admin = Actor.for_member(user=UserFactory(), organization=consumer, role=Role.ADMIN)

    for attempt in (
        lambda actor: invoice_finalize(invoice_id=invoice.pk, now=at("2026-11-03 00:00"), actor=actor),
        lambda actor: invoice_hold(actor=actor, invoice_id=invoice.pk, reason="x", now=at("2026-11-03 00:00")),
    ):
        for actor in (consumer_admin, finance_actor(role=Role.VIEWER)):
            with pytest.raises(Forbidden, match="Only the platform operator's finance staff"):
                attempt(actor)

    invoice.refresh_from_db()
    assert (invoice.status, invoice.held) == ("draft", False)


@pytest.mark.django_db
def test_a_credit_note_credits_the_consumer_and_reaches_the_centers_next_statement():
    center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 04:00", 8)  # 32 dh → 400.00
    close(OCT)
    finance = finance_actor()
    invoice = invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=at("2026-11-02 00:00"), actor=finance)
    line = invoice.lines.get()

    note = credit_note_issue(
        actor=finance,
        invoice_id=invoice.pk,
        lines=[CreditRequest(line.pk, D("150.00"))],
        reason="two hours lost to a failed node",
        now=at("2026-11-10 00:00"),
    )

    assert (note.number, note.total, note.vat_amount, note.period.label) == (
        "CN-2026-11-000001",
        D("150.00"),
        D("8.49"),
        "2026-11",
    )
    assert balance(consumer, AccountRole.RECEIVABLE) == D("250.00")
    assert balance(center, AccountRole.CENTER_PAYABLE) == D("-360.00") + D("150.00")  # 400 − 40 fee, less the credit
    with pytest.raises(Conflict, match=r"Line \d+ can be credited at most 250.00 CNY more"):
        credit_note_issue(
            actor=finance,
            invoice_id=invoice.pk,
            lines=[CreditRequest(line.pk, D("250.01"))],
            reason="more",
            now=at("2026-11-10 00:00"),
        )
    with pytest.raises(InvalidInput, match="Say why"):
        credit_note_issue(
            actor=finance,
            invoice_id=invoice.pk,
            lines=[CreditRequest(line.pk, D("1.00"))],
            reason=" ",
            now=at("2026-11-10 00:00"),
        )

    close(NOV)
    statement = statement_of(center, NOV)
    # No November usage: gross 0; the credit (−150.00) and its fee (round(−150.00 × 0.10) = −15.00) net to −135.00.
    assert (
        statement.gross,
        statement.fee,
        statement.credit_adjustment,
        statement.fee_adjustment,
        statement.net_payout,
    ) == (
        D("0"),
        D("0"),
        D("-150.00"),
        D("-15.00"),
        D("-135.00"),
    )
    assert balance(center, AccountRole.CENTER_PAYABLE) == D("-225.00")  # 360 − 135: what it is owed in all
    assert balance(None, AccountRole.FEE_REVENUE) == D("-25.00")
    assert trial_balance() == {"CNY": D("0")}


@pytest.mark.django_db
def test_voiding_an_invoice_credits_it_in_full():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 8)
    close(OCT)
    finance = finance_actor()
    invoice = invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=at("2026-11-02 00:00"), actor=finance)

    voided = invoice_void(actor=finance, invoice_id=invoice.pk, reason="booked by mistake", now=at("2026-11-03 00:00"))

    assert voided.status == "void"
    assert list(CreditNote.objects.values_list("total", "reason")) == [(D("100.00"), "booked by mistake")]
    assert balance(consumer, AccountRole.RECEIVABLE) == D("0")
    with pytest.raises(Conflict, match="Only a finalized, unpaid invoice can be voided"):
        invoice_void(actor=finance, invoice_id=invoice.pk, reason="again", now=at("2026-11-03 00:00"))


@pytest.mark.django_db
def test_cancelling_a_booking_after_its_end_is_refused():
    from marketplace.services.bookings import booking_transition

    _center, offering, consumer = market()
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 8, status="active")

    with pytest.raises(Conflict, match="already ended"):
        booking_transition(booking_id=booking.pk, to_status="cancelled", now=at("2026-10-05 04:00"))


@pytest.mark.django_db
def test_the_usage_gate_stamps_records_after_the_cutoff_of_a_close_that_started_before_them():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 1)
    meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 1)
    close(OCT)
    meter(booking, "2026-10-05 01:00", "2026-10-05 02:00", 1)

    cutoff = BillingPeriod.objects.get(start=OCT).usage_cutoff
    stamps = list(UsageRecord.objects.order_by("start").values_list("received_at", flat=True))
    assert stamps[0] <= cutoff < stamps[1]
