"""Property-based: random markets, bookings, usage (some of it late), cancellations and closes never break the
books. After every close billing rule 7 holds (the close checks it and would refuse to commit), the trial balance
is zero, and in the end every booking has been billed exactly max(commitment, metered usage) in device-seconds —
usage counted once whichever close it arrived before, commitments never paid twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import OrganizationKind
from billing.models import Invoice, InvoiceLine, Statement, UsageRecord, VoucherClaim, VoucherProgram, VoucherRedemption
from billing.services.usage import usage_ingest
from tests.billing.settlement import NOV, OCT, at, center_actor, close, trial_balance
from tests.billing.vouchers import grant
from tests.factories import OrganizationFactory
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory, SiteFactory

SEP = at("2026-09-01 00:00")
MONTHS = (SEP, OCT, NOV)
ZERO = Decimal(0)


@dataclass(frozen=True)
class PlannedBooking:
    offering: int
    consumer: int
    start_hour: int  # hours after Sep 1
    hours: int
    devices: int
    cancel: tuple[str, int] | None  # ("free" | "late", hours before the end of the window it is cancelled at)
    pieces: tuple[tuple[int, int], ...]  # (devices, phase reported in: 0 before Sep closes, 1 before Oct, 2 before Nov)


offerings = st.lists(
    st.tuples(
        st.sampled_from(["CNY", "CNY", "USD", "JPY"]),
        st.decimals(min_value=Decimal("0.5"), max_value=Decimal("99.9999"), places=4),
        st.sampled_from([Decimal("0"), Decimal("0.250"), Decimal("0.500"), Decimal("1.000")]),
        st.sampled_from([0, 6, 24]),
    ),
    min_size=1,
    max_size=3,
)


@st.composite
def bookings(draw, offering_count: int, consumer_count: int):
    hours = draw(st.integers(min_value=1, max_value=72))
    devices = draw(st.integers(min_value=1, max_value=8))
    cancel = draw(st.one_of(st.none(), st.tuples(st.sampled_from(["free", "late"]), st.integers(0, hours - 1))))
    piece_count = hours if cancel is None else hours - cancel[1]
    pieces = tuple(
        draw(
            st.lists(
                st.tuples(st.integers(min_value=0, max_value=devices), st.integers(min_value=0, max_value=2)),
                min_size=min(piece_count, 6),
                max_size=min(piece_count, 6),
            )
        )
    )
    return PlannedBooking(
        offering=draw(st.integers(0, offering_count - 1)),
        consumer=draw(st.integers(0, consumer_count - 1)),
        start_hour=draw(st.integers(min_value=0, max_value=(86 * 24))),  # up to Nov 26
        hours=hours,
        devices=devices,
        cancel=cancel,
        pieces=pieces,
    )


@st.composite
def scenarios(draw):
    market = draw(offerings)
    consumers = draw(st.integers(min_value=1, max_value=3))
    planned = draw(st.lists(bookings(len(market), consumers), min_size=1, max_size=8))
    vouchers = draw(st.lists(st.sampled_from(["0.30", "0.50", "1.00"]), min_size=consumers, max_size=consumers))
    grant_amounts = draw(st.lists(st.sampled_from(["50.00", "500.00"]), min_size=consumers, max_size=consumers))
    return market, consumers, planned, vouchers, grant_amounts


def _build_and_run(market, consumer_count, planned, vouchers, grant_amounts):
    center = CenterFactory()
    site = SiteFactory(center=center)
    made_offerings = [
        OfferingFactory(
            center=center,
            site=site,
            currency=currency,
            price_per_device_hour=price,
            min_commit_fraction=fraction,
            cancel_notice_hours=notice,
        )
        for currency, price, fraction, notice in market
    ]
    consumers = [OrganizationFactory(kind=OrganizationKind.ENTERPRISE) for _ in range(consumer_count)]
    for consumer, rate, amount in zip(consumers, vouchers, grant_amounts, strict=True):
        grant(consumer, rate=rate, amount=amount)
    reports: dict[int, list[dict]] = {0: [], 1: [], 2: []}
    expected: dict = {}
    for number, plan in enumerate(planned):
        offering = made_offerings[plan.offering]
        start = SEP + timedelta(hours=plan.start_hour)
        end = start + timedelta(hours=plan.hours)
        booking = BookingFactory(
            offering=offering, consumer=consumers[plan.consumer], start=start, end=end, devices=plan.devices
        )
        window_end = end
        if plan.cancel is not None:
            kind, before_end = plan.cancel
            if kind == "free":
                cancelled_at = start - timedelta(hours=offering.cancel_notice_hours, minutes=1)
                window_end = None
            else:
                cancelled_at = end - timedelta(hours=before_end)
                window_end = cancelled_at
            booking.status, booking.cancelled_at = "cancelled", cancelled_at
            booking.save(update_fields=["status", "cancelled_at"])
        if window_end is not None:
            span = (window_end - start) / len(plan.pieces) if plan.pieces else None
            for index, (devices, phase) in enumerate(plan.pieces):
                if devices == 0:
                    continue
                piece_start = start + span * index
                piece_end = start + span * (index + 1)
                reports[phase].append(
                    {
                        "id": f"b{number}-p{index}",
                        "booking": str(booking.pk),
                        "start": piece_start.isoformat(),
                        "end": piece_end.isoformat(),
                        "devices": devices,
                    }
                )
        expected[booking.pk] = (booking, window_end)
    for phase, month in enumerate(MONTHS):
        if reports[phase]:
            result = usage_ingest(actor=center_actor(center), records=reports[phase], now=at("2026-12-01 00:00"))
            assert (result.accepted, result.rejected) == (len(reports[phase]), []), result.rejected[:3]
        close(month)
        assert set(trial_balance().values()) <= {ZERO}
    return expected


def _check_books(expected):
    # Every booking billed max(commitment, metered), in exact device-seconds, over all the closes.
    for booking, window_end in expected.values():
        metered = sum(UsageRecord.objects.filter(booking=booking).values_list("device_seconds", flat=True), ZERO)
        billed = sum(InvoiceLine.objects.filter(booking=booking).values_list("device_seconds", flat=True), ZERO)
        free = window_end is None
        committed = (
            ZERO
            if free
            else booking.min_commit_fraction
            * booking.devices
            * Decimal(int((booking.end - booking.start).total_seconds()))
        )
        assert billed == max(committed, metered), (booking.pk, billed, committed, metered)
    # Rule 7 over everything, per currency.
    for currency in {i.currency for i in Invoice.objects.all()}:
        invoices = Invoice.objects.filter(currency=currency)
        subtotal = sum(invoices.values_list("subtotal", flat=True), ZERO)
        total = sum(invoices.values_list("total", flat=True), ZERO)
        claims = sum(VoucherClaim.objects.filter(currency=currency).values_list("amount", flat=True), ZERO)
        statements = Statement.objects.filter(currency=currency)
        gross = sum(statements.values_list("gross", flat=True), ZERO)
        fee_and_payout = sum((s.fee + s.payout for s in statements), ZERO)
        assert subtotal == gross == fee_and_payout
        assert total + claims == subtotal
    for program in VoucherProgram.objects.all():
        redeemed = sum(VoucherRedemption.objects.filter(grant__program=program).values_list("amount", flat=True), ZERO)
        assert program.redeemed == redeemed <= program.granted <= program.budget
    with connection.cursor() as cursor:  # what COMMIT would check: every entry balances
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


class _Rollback(Exception):
    pass


@pytest.mark.django_db
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(scenario=scenarios())
def test_random_histories_keep_the_books_whole(scenario):
    try:
        with transaction.atomic():  # each example starts from an empty market
            expected = _build_and_run(*scenario)
            _check_books(expected)
            raise _Rollback
    except _Rollback:
        pass
