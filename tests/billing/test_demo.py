"""The demo's settled past (`billing.demo.seed_billing`): last month closed with invoices, statements, a voucher
program with redemptions and a balanced ledger, written by the real services, once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.demo import DemoSeed, seed_organizations, seed_people
from billing.demo import seed_billing
from billing.models import (
    BillingPeriod,
    Invoice,
    JournalEntry,
    Statement,
    VoucherClaim,
    VoucherGrant,
    VoucherProgram,
)
from marketplace.demo import seed_market
from tests.billing.settlement import trial_balance

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 17, 42, tzinfo=UTC)
D = Decimal


@pytest.fixture
def network():
    seed = DemoSeed()
    seed_organizations(seed)
    seed_people(seed)
    seed_market(now=NOW)
    return seed.organizations


def test_the_demo_closes_last_month_with_finalized_invoices_vouchers_and_balanced_books(network):
    created = seed_billing(now=NOW)

    assert created == {"voucher records": 6, "past bookings": 7}
    october = BillingPeriod.objects.get(start=datetime(2026, 10, 1, tzinfo=UTC))
    assert october.status == "closed"
    invoices = Invoice.objects.filter(period=october)
    assert invoices.count() == 4
    assert set(invoices.values_list("status", flat=True)) == {"finalized"}
    assert sorted(invoices.values_list("number", flat=True)) == [f"INV-2026-10-00000{n}" for n in range(1, 5)]
    blue_heron = invoices.get(consumer=network["blue-heron"])
    # Ascend 910B: 15 devices × 48 h × 8.20 = 5904.00; RTX 4090: 6 × 24 h × 2.40 = 345.60; H100 at Lakeside (a
    # related party): 2 × 12 h × 18.50 = 444.00 used, and 444.00 short of its 0.5 × 8 × 12 h commitment.
    assert list(blue_heron.lines.order_by("id").values_list("kind", "amount", "voucher_eligible")) == [
        ("usage", D("5904.00"), True),
        ("usage", D("345.60"), True),
        ("usage", D("444.00"), False),
        ("commitment", D("444.00"), False),
    ]
    # The voucher pays 40 % of the eligible 6249.60.
    assert (blue_heron.subtotal, blue_heron.voucher_amount, blue_heron.total) == (
        D("7137.60"),
        D("2499.84"),
        D("4637.76"),
    )
    assert Statement.objects.filter(period=october).count() == 4
    claim = VoucherClaim.objects.get(period=october)
    assert claim.sponsor == network["voucher-fund"]
    assert claim.amount == sum(claim.redemptions.values_list("amount", flat=True), D(0))
    assert VoucherGrant.objects.filter(status="applied").count() == 1  # an application left for the sponsor
    assert VoucherProgram.objects.filter(flow="reimburse").count() == 1
    assert trial_balance() == {"CNY": D("0")}


def test_seeding_again_changes_nothing(network):
    seed_billing(now=NOW)
    before = (Invoice.objects.count(), JournalEntry.objects.count(), VoucherGrant.objects.count())

    again = seed_billing(now=NOW)

    assert again == {"voucher records": 0, "past bookings": 0}
    assert (Invoice.objects.count(), JournalEntry.objects.count(), VoucherGrant.objects.count()) == before


def test_the_sample_statement_shows_auto_matches_and_exceptions_and_the_month_can_be_locked(network, tmp_path):
    from accounts.actor import Actor
    from accounts.models import Membership
    from billing.demo import seed_sample_statement
    from billing.models import (
        BankLineStatus,
        BankStatementLine,
        ExceptionKind,
        MatchStatus,
        ReconciliationException,
        ReconciliationMatch,
        VoucherClaimStatus,
    )
    from billing.services.bank_statements import statement_upload
    from billing.services.payments import credit_balance, lock_refusal, period_lock
    from billing.services.reconcile import exception_dismiss, exception_keep_credit, match_confirm

    seed_billing(now=NOW)
    path, written = seed_sample_statement(now=NOW, directory=tmp_path)
    assert written is True
    assert seed_sample_statement(now=NOW, directory=tmp_path) == (path, False)  # the same demo, the same bytes
    october = BillingPeriod.objects.get(start=datetime(2026, 10, 1, tzinfo=UTC))
    invoices = {i.consumer.slug: i for i in Invoice.objects.filter(period=october).select_related("consumer")}
    heron = invoices["blue-heron-robotics"]
    text = path.read_text()
    assert (
        "2026-11-03,4637.76,CNY,Hangzhou Blue Heron Robotics Technology Co. Ltd.,6222021001118821,"
        f"Payment {heron.number}" in text
    )
    membership = Membership.objects.select_related("user", "organization").get(user__email="finance@northstar.demo")
    clerk = Actor.for_member(user=membership.user, organization=membership.organization, role=membership.role)

    result = statement_upload(actor=clerk, filename=path.name, content=path.read_bytes(), now=NOW)

    assert result.summary.as_dict() == {"matched": 4, "proposed": 1, "unmatched": 2, "skipped": 0}
    statuses = dict(BankStatementLine.objects.values_list("counterparty", "status"))
    assert statuses == {
        "Hangzhou Blue Heron Robotics Technology Co. Ltd.": BankLineStatus.MATCHED,
        "EASTLAKE UNIVERSITY FINANCE OFFICE": BankLineStatus.MATCHED,
        "Qingluo Holdings Ltd.": BankLineStatus.PROPOSED,
        "Yangtze Institute for Computational Materials": BankLineStatus.MATCHED,
        "Municipal AI Compute Voucher Fund": BankLineStatus.MATCHED,
        "Shenzhen Wanli Trading Co. Ltd.": BankLineStatus.UNMATCHED,
        "China Merchants Bank": BankLineStatus.UNMATCHED,
    }
    for slug in ("blue-heron-robotics", "eastlake-university", "yangtze-institute-computational-materials"):
        invoices[slug].refresh_from_db()
        assert invoices[slug].status == "paid", slug
    assert VoucherClaim.objects.get(period=october).status == VoucherClaimStatus.PAID
    open_kinds = sorted(ReconciliationException.objects.filter(status="open").values_list("kind", flat=True))
    assert open_kinds == [
        ExceptionKind.AMOUNT_MISMATCH,
        ExceptionKind.UNMATCHED_BANK_LINE,
        ExceptionKind.UNMATCHED_BANK_LINE,
    ]

    # Finance resolves them: confirms the parent's payment, keeps Yangtze's advance as credit, dismisses the bank
    # fee and the deposit nobody can place; then October, the demo's month, locks.
    proposal = ReconciliationMatch.objects.get(status=MatchStatus.PROPOSED)
    match_confirm(actor=clerk, match_id=proposal.pk, reason="Qingluo's parent pays its invoices", now=NOW)
    mismatch = ReconciliationException.objects.get(kind=ExceptionKind.AMOUNT_MISMATCH)
    exception_keep_credit(actor=clerk, exception_id=mismatch.pk, reason="Advance for next month", now=NOW)
    yangtze = invoices["yangtze-institute-computational-materials"].consumer
    assert credit_balance(yangtze, "CNY") == D("200.00")
    for exception in ReconciliationException.objects.filter(status="open"):
        exception_dismiss(actor=clerk, exception_id=exception.pk, reason="Bank fee / returned to sender", now=NOW)
    assert lock_refusal(october) is None
    locked = period_lock(actor=clerk, period_label="2026-10", now=NOW)
    assert locked.locked_by == "finance@northstar.demo"
    assert trial_balance() == {"CNY": D("0")}
