"""The billing rules of API.md, each with its numbers computed by hand: usage split at a month boundary, minimum
commitment, late and on-time cancellation, late usage after a close, vouchers (capped, related parties), center
statements and fees, two currencies, JPY rounding, and rule 7's totals with a zero trial balance."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import OrganizationKind
from billing.models import AccountRole, Invoice, JournalEntry, LineKind, Statement, VoucherClaim
from tests.billing.settlement import (
    NOV,
    OCT,
    at,
    balance,
    book,
    cancel,
    chip,
    close,
    invoice_of,
    lines_of,
    market,
    meter,
    period,
    statement_of,
    trial_balance,
)
from tests.billing.vouchers import grant
from tests.factories import OrganizationFactory
from tests.marketplace.factories import OfferingFactory, SiteFactory

pytestmark = pytest.mark.django_db

D = Decimal
USAGE, COMMITMENT, CANCELLATION = LineKind.USAGE, LineKind.COMMITMENT, LineKind.CANCELLATION


def test_rule_1_a_record_spanning_a_month_boundary_is_split_there():
    _center, offering, consumer = market(fraction="0")
    # 8 devices from Oct 31 23:00 to Nov 1 01:00: one hour in each month, 8 device-hours each.
    booking = book(offering, consumer, "2026-10-31 22:00", "2026-11-01 02:00", 8)
    meter(booking, "2026-10-31 23:00", "2026-11-01 01:00", 8)

    close(OCT)
    close(NOV)

    # 8 device-hours × 12.50 = 100.00 in each month.
    assert lines_of(invoice_of(consumer, OCT)) == [(booking.pk, USAGE, False, D("8.000000"), D("12.5000"), D("100.00"))]
    assert lines_of(invoice_of(consumer, NOV)) == [(booking.pk, USAGE, False, D("8.000000"), D("12.5000"), D("100.00"))]


def test_rule_2_one_usage_line_per_booking_with_exact_device_hours_rounded_once():
    _center, offering, consumer = market(price="12.3456", fraction="0")
    booking = book(offering, consumer, "2026-10-05 10:00", "2026-10-05 14:00", 3)
    # Three records: 3 devices × 20 min, 2 × 7 min, 1 × 1 min = 3600 + 840 + 60 = 4500 device-seconds = 1.25 dh.
    meter(booking, "2026-10-05 10:00", "2026-10-05 10:20", 3)
    meter(booking, "2026-10-05 10:20", "2026-10-05 10:27", 2)
    meter(booking, "2026-10-05 10:27", "2026-10-05 10:28", 1)

    close(OCT)

    # 1.25 × 12.3456 = 15.432 → 15.43 (half-up to the fen).
    invoice = invoice_of(consumer, OCT)
    assert lines_of(invoice) == [(booking.pk, USAGE, False, D("1.250000"), D("12.3456"), D("15.43"))]
    assert (invoice.subtotal, invoice.voucher_amount, invoice.total) == (D("15.43"), D("0"), D("15.43"))


def test_rule_3_minimum_commitment_charges_the_shortfall_when_the_booking_completes():
    _center, offering, consumer = market(fraction="0.500")
    # 8 devices × 10 h booked; half of it (40 dh) is committed. 10 dh are metered: 8 devices × 75 minutes.
    booking = book(offering, consumer, "2026-10-10 00:00", "2026-10-10 10:00", 8)
    meter(booking, "2026-10-10 00:00", "2026-10-10 01:15", 8)

    close(OCT)

    assert lines_of(invoice_of(consumer, OCT)) == [
        (booking.pk, USAGE, False, D("10.000000"), D("12.5000"), D("125.00")),  # 10 × 12.50
        (booking.pk, COMMITMENT, False, D("30.000000"), D("12.5000"), D("375.00")),  # (40 − 10) × 12.50
    ]
    assert invoice_of(consumer, OCT).subtotal == D("500.00")


def test_rule_3_a_booking_ending_in_the_period_completes_whatever_its_status_says():
    _center, offering, consumer = market(fraction="0.250")
    # Still "active" (the clock has not moved it): 4 devices × 8 h, committed 0.25 × 32 = 8 dh, nothing metered.
    booking = book(offering, consumer, "2026-10-30 20:00", "2026-10-31 04:00", 4, status="active")
    # A booking still running at the end of October completes in November, not now.
    later = book(offering, consumer, "2026-10-31 20:00", "2026-11-01 04:00", 4, status="active")

    close(OCT)

    assert lines_of(invoice_of(consumer, OCT)) == [
        (booking.pk, COMMITMENT, False, D("8.000000"), D("12.5000"), D("100.00"))
    ]
    close(NOV)
    assert lines_of(invoice_of(consumer, NOV)) == [
        (later.pk, COMMITMENT, False, D("8.000000"), D("12.5000"), D("100.00"))
    ]


def test_rule_3_a_booking_ending_at_midnight_completes_in_the_month_it_ran():
    _center, offering, consumer = market(fraction="1.000")
    # [Oct 31 22:00, Nov 1 00:00): its last instant is in October. 2 devices × 2 h = 4 dh committed in full.
    booking = book(offering, consumer, "2026-10-31 22:00", "2026-11-01 00:00", 2)

    close(OCT)

    assert lines_of(invoice_of(consumer, OCT)) == [
        (booking.pk, COMMITMENT, False, D("4.000000"), D("12.5000"), D("50.00"))
    ]


def test_rule_4_a_cancellation_inside_the_notice_charges_the_commitment_on_the_booked_hours():
    _center, offering, consumer = market(fraction="0.500", notice=24)
    # 4 devices × 24 h, cancelled 12 h before its start: committed 0.5 × 96 = 48 dh, nothing metered.
    booking = cancel(book(offering, consumer, "2026-10-20 00:00", "2026-10-21 00:00", 4), "2026-10-19 12:00")

    close(OCT)

    assert lines_of(invoice_of(consumer, OCT)) == [
        (booking.pk, CANCELLATION, False, D("48.000000"), D("12.5000"), D("600.00"))
    ]


def test_rule_4_a_cancellation_after_the_start_ends_the_booking_there_and_nets_its_usage():
    _center, offering, consumer = market(fraction="0.500")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-06 00:00", 4)
    meter(booking, "2026-10-05 00:00", "2026-10-05 02:00", 4)  # 8 dh
    cancel(booking, "2026-10-05 02:00")

    close(OCT)

    assert lines_of(invoice_of(consumer, OCT)) == [
        (booking.pk, USAGE, False, D("8.000000"), D("12.5000"), D("100.00")),
        (booking.pk, CANCELLATION, False, D("40.000000"), D("12.5000"), D("500.00")),  # 48 − 8 dh
    ]


def test_rule_4_a_cancellation_in_the_next_month_is_charged_in_that_month():
    _center, offering, consumer = market(fraction="0.500", notice=48)
    # Booked for Nov 2, cancelled on Oct 31 at 12:00 (36 h before: inside the 48 h notice), and ...
    october = cancel(book(offering, consumer, "2026-11-02 00:00", "2026-11-02 02:00", 2), "2026-10-31 12:00")
    # ... one cancelled on Nov 1 at 01:00 (47 h before its start).
    november = cancel(book(offering, consumer, "2026-11-03 00:00", "2026-11-03 02:00", 2), "2026-11-01 01:00")

    close(OCT)
    close(NOV)

    # Each: 0.5 × 2 devices × 2 h = 2 dh → 25.00, in the month of its cancellation.
    assert lines_of(invoice_of(consumer, OCT)) == [
        (october.pk, CANCELLATION, False, D("2.000000"), D("12.5000"), D("25.00"))
    ]
    assert lines_of(invoice_of(consumer, NOV)) == [
        (november.pk, CANCELLATION, False, D("2.000000"), D("12.5000"), D("25.00"))
    ]


def test_rule_4_a_cancellation_with_enough_notice_costs_nothing():
    _center, offering, consumer = market(fraction="1.000", notice=24)
    cancel(book(offering, consumer, "2026-10-25 00:00", "2026-10-26 00:00", 8), "2026-10-23 23:59")
    cancel(book(offering, consumer, "2026-10-27 00:00", "2026-10-27 04:00", 8), "2026-10-26 00:00")  # exactly 24 h

    result = close(OCT)

    assert result.invoices == 0
    assert not Invoice.objects.exists()


def test_rule_1_late_usage_is_billed_in_the_first_open_period_on_a_late_line():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-28 00:00", "2026-10-28 04:00", 8)
    meter(booking, "2026-10-28 00:00", "2026-10-28 01:00", 8)
    close(OCT)
    october = invoice_of(consumer, OCT)

    meter(booking, "2026-10-28 01:00", "2026-10-28 02:30", 8)  # arrives after the close: 12 dh
    close(NOV)

    assert lines_of(october) == [(booking.pk, USAGE, False, D("8.000000"), D("12.5000"), D("100.00"))]
    november = invoice_of(consumer, NOV)
    assert lines_of(november) == [(booking.pk, USAGE, True, D("12.000000"), D("12.5000"), D("150.00"))]
    assert november.lines.get().usage_period == period(OCT)


def test_late_usage_after_a_charged_commitment_reduces_it_instead_of_being_paid_twice():
    _center, offering, consumer = market(fraction="0.500")
    # 8 devices × 4 h: 16 dh committed. 8 dh arrive before October closes, 4 dh after.
    booking = book(offering, consumer, "2026-10-28 00:00", "2026-10-28 04:00", 8)
    meter(booking, "2026-10-28 00:00", "2026-10-28 01:00", 8)
    close(OCT)
    meter(booking, "2026-10-28 01:00", "2026-10-28 02:00", 4)
    close(NOV)

    assert lines_of(invoice_of(consumer, OCT)) == [
        (booking.pk, USAGE, False, D("8.000000"), D("12.5000"), D("100.00")),
        (booking.pk, COMMITMENT, False, D("8.000000"), D("12.5000"), D("100.00")),
    ]
    assert lines_of(invoice_of(consumer, NOV)) == [
        (booking.pk, USAGE, True, D("4.000000"), D("12.5000"), D("50.00")),
        (booking.pk, COMMITMENT, False, D("-4.000000"), D("12.5000"), D("-50.00")),
    ]
    # In all: 16 dh × 12.50 = 200.00, the commitment, whichever month the usage arrived in.
    assert invoice_of(consumer, OCT).subtotal + invoice_of(consumer, NOV).subtotal == D("200.00")


def test_rule_5_a_voucher_covers_its_rate_of_the_eligible_amount_capped_by_what_remains():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)  # 80 dh → 1000.00
    voucher = grant(consumer, rate="0.50", amount="300.00")

    close(OCT)

    invoice = invoice_of(consumer, OCT)
    # round(0.5 × 1000.00) = 500.00, capped by the 300.00 remaining.
    assert (invoice.subtotal, invoice.voucher_amount, invoice.total) == (D("1000.00"), D("300.00"), D("700.00"))
    voucher.refresh_from_db()
    assert (voucher.remaining, voucher.status) == (D("0"), "exhausted")
    assert invoice.redemption.amount == D("300.00")
    claim = VoucherClaim.objects.get()
    assert (claim.sponsor_id, claim.amount, claim.period.label) == (voucher.program.sponsor_id, D("300.00"), "2026-10")


def test_rule_5_the_grant_expiring_first_applies_and_vouchers_never_stack():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 02:00", 4)
    meter(booking, "2026-10-05 00:00", "2026-10-05 02:00", 4)  # 8 dh → 100.00
    later = grant(consumer, rate="0.80", amount="500.00", expires=at("2027-06-30 00:00"))
    sooner = grant(consumer, rate="0.25", amount="500.00", expires=at("2027-03-31 00:00"))

    close(OCT)

    invoice = invoice_of(consumer, OCT)
    assert invoice.redemption.grant == sooner  # the earliest expiry wins, whatever its rate
    assert invoice.voucher_amount == D("25.00")  # round(0.25 × 100.00), and nothing from the other grant
    later.refresh_from_db()
    assert later.remaining == D("500.00")


def test_rule_5_related_parties_and_ineligible_offerings_get_no_voucher():
    center, offering, consumer = market(fraction="0")
    not_eligible = OfferingFactory(
        center=center, site=offering.site, voucher_eligible=False, min_commit_fraction=D("0")
    )
    other_center = OrganizationFactory(kind=OrganizationKind.CENTER, name="Sister Cloud", tax_id="91310000MA1SAME01")
    consumer.tax_id = "91310000MA1SAME01"  # shares its credit code with that center
    consumer.save(update_fields=["tax_id"])
    related_offering = OfferingFactory(center=other_center, min_commit_fraction=D("0"))
    linked_center = OrganizationFactory(kind=OrganizationKind.CENTER, name="Linked Compute")
    linked_center.related_parties.add(consumer)
    linked_offering = OfferingFactory(center=linked_center, min_commit_fraction=D("0"))
    for chosen in (offering, not_eligible, related_offering, linked_offering):
        booking = book(chosen, consumer, "2026-10-05 00:00", "2026-10-05 01:00", 8)
        meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 8)  # 8 dh → 100.00 each
    grant(consumer, rate="1.00", amount="1000.00")

    close(OCT)

    invoice = invoice_of(consumer, OCT)
    # Only the first line is eligible: the others are not voucher-eligible or are related parties.
    assert (invoice.subtotal, invoice.voucher_amount, invoice.total) == (D("400.00"), D("100.00"), D("300.00"))
    assert list(invoice.lines.order_by("id").values_list("voucher_eligible", flat=True)).count(True) == 1


def test_rule_5_program_filters_on_vendor_domestic_chips_and_region():
    center, nvidia, consumer = market(fraction="0", region="cn-east")
    ascend = OfferingFactory(
        center=center,
        site=SiteFactory(center=center, region="cn-southwest"),
        accelerator=chip("huawei-ascend-910b"),
        price_per_device_hour=D("8.0000"),
        min_commit_fraction=D("0"),
    )
    for chosen in (nvidia, ascend):
        booking = book(chosen, consumer, "2026-10-05 00:00", "2026-10-05 01:00", 8)
        meter(booking, "2026-10-05 00:00", "2026-10-05 01:00", 8)  # 100.00 and 64.00
    grant(consumer, rate="0.50", amount="1000.00", domestic_only=True, regions=["cn-southwest"])

    close(OCT)

    # Only the domestic Ascend line in cn-southwest is eligible: round(0.5 × 64.00) = 32.00.
    assert invoice_of(consumer, OCT).voucher_amount == D("32.00")


def test_rule_6_statements_gross_fee_and_payout_per_center_with_a_per_center_fee():
    center, offering, consumer = market(fraction="0")
    second = OrganizationFactory(kind=OrganizationKind.CENTER, name="Guizhou Data Park", platform_fee_rate=D("0.0750"))
    cheap = OfferingFactory(center=second, price_per_device_hour=D("3.3300"), min_commit_fraction=D("0"))
    a = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(a, "2026-10-05 00:00", "2026-10-05 03:00", 7)  # 21 dh × 12.50 = 262.50
    b = book(cheap, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(b, "2026-10-05 00:00", "2026-10-05 01:00", 3)  # 3 dh × 3.33 = 9.99
    grant(consumer, rate="0.50", amount="1000.00")

    close(OCT)

    first = statement_of(center, OCT)
    # Vouchers do not reduce gross. fee = round(262.50 × 0.10) = 26.25.
    assert (first.gross, first.fee_rate, first.fee, first.payout) == (D("262.50"), D("0.1000"), D("26.25"), D("236.25"))
    other = statement_of(second, OCT)
    # fee = round(9.99 × 0.075) = round(0.74925) = 0.75.
    assert (other.gross, other.fee_rate, other.fee, other.payout) == (D("9.99"), D("0.0750"), D("0.75"), D("9.24"))


def test_rule_7_totals_reconcile_and_the_ledger_balances_in_two_currencies():
    center, offering, consumer = market(fraction="0.500")
    usd = OfferingFactory(center=center, price_per_device_hour=D("2.1000"), currency="USD", min_commit_fraction=D("0"))
    other = OrganizationFactory(kind=OrganizationKind.UNIVERSITY, name="Westlake University")
    a = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 04:00", 8)
    meter(a, "2026-10-05 00:00", "2026-10-05 01:00", 8)  # 8 dh → 100.00; commitment 16 − 8 = 8 dh → 100.00
    b = book(usd, consumer, "2026-10-06 00:00", "2026-10-06 04:00", 2)
    meter(b, "2026-10-06 00:00", "2026-10-06 03:00", 2)  # 6 dh × 2.10 = 12.60 USD
    c = book(offering, other, "2026-10-07 00:00", "2026-10-07 02:00", 4)
    meter(c, "2026-10-07 00:00", "2026-10-07 02:00", 4)  # 8 dh → 100.00, commitment met
    grant(other, rate="0.30", amount="50.00")

    result = close(OCT)

    assert (result.invoices, result.statements, result.claims) == (3, 2, 1)
    cny, usd_invoice = invoice_of(consumer, OCT, "CNY"), invoice_of(consumer, OCT, "USD")
    assert (cny.subtotal, cny.total) == (D("200.00"), D("200.00"))
    assert (usd_invoice.subtotal, usd_invoice.total) == (D("12.60"), D("12.60"))
    assert invoice_of(other, OCT).voucher_amount == D("30.00")  # round(0.3 × 100.00)
    assert result.totals == {
        "CNY": {
            "subtotal": "300.00",
            "total": "270.00",
            "voucher_claims": "30.00",
            "gross": "300.00",
            "fee": "30.00",
            "payout": "270.00",
        },
        "USD": {
            "subtotal": "12.60",
            "total": "12.60",
            "voucher_claims": "0.00",
            "gross": "12.60",
            "fee": "1.26",
            "payout": "11.34",
        },
    }
    assert trial_balance() == {"CNY": D("0"), "USD": D("0")}
    # What each party owes or is owed, from the ledger.
    assert balance(consumer, AccountRole.RECEIVABLE) == D("200.00")
    assert balance(other, AccountRole.RECEIVABLE) == D("70.00")
    assert balance(center, AccountRole.CENTER_PAYABLE) == D("-270.00")
    assert balance(center, AccountRole.CENTER_PAYABLE, "USD") == D("-11.34")
    assert balance(None, AccountRole.FEE_REVENUE) == D("-30.00")
    # One entry per invoice, redemption and fee.
    assert sorted(JournalEntry.objects.values_list("kind", flat=True)) == [
        "fee",
        "fee",
        "invoice",
        "invoice",
        "invoice",
        "redemption",
    ]


def test_jpy_amounts_round_to_whole_yen_half_up():
    center, offering, consumer = market(price="1500.5000", currency="JPY", fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 02:00", 1)
    meter(booking, "2026-10-05 00:00", "2026-10-05 01:20", 1)  # 4800 s = 4/3 dh

    close(OCT)

    invoice = invoice_of(consumer, OCT, "JPY")
    # 4/3 × 1500.5 = 2000.666… → 2001 yen; fee round(200.1) = 200; VAT round(2001 × 0.06 / 1.06) = round(113.26…) = 113.
    assert lines_of(invoice)[0][5] == D("2001")
    assert (invoice.subtotal, invoice.vat_amount) == (D("2001"), D("113"))
    statement = statement_of(center, OCT, "JPY")
    assert (statement.gross, statement.fee, statement.payout) == (D("2001"), D("200"), D("1801"))


def test_the_invoice_shows_the_vat_contained_in_its_tax_inclusive_prices():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(booking, "2026-10-05 00:00", "2026-10-05 10:00", 8)  # 1000.00

    close(OCT)

    invoice = invoice_of(consumer, OCT)
    # 1000.00 × 0.06 / 1.06 = 56.603… → 56.60; the total stays 1000.00 (prices include VAT).
    assert (invoice.vat_rate, invoice.vat_amount, invoice.total) == (D("0.0600"), D("56.60"), D("1000.00"))


def test_statements_are_issued_for_each_center_even_across_months():
    _center, offering, consumer = market(fraction="0")
    booking = book(offering, consumer, "2026-10-31 23:00", "2026-11-01 01:00", 1)
    meter(booking, "2026-10-31 23:00", "2026-11-01 01:00", 1)
    close(OCT)
    close(NOV)
    assert list(Statement.objects.order_by("period__start").values_list("period__start", "gross")) == [
        (OCT, D("12.50")),
        (NOV, D("12.50")),
    ]
