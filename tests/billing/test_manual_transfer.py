"""A bank transfer finance records by hand on an invoice (issue 6: "finance records a transfer by hand or by
importing a bank statement"): it pays the invoice once, a double click records it once, bad input is refused with
the reason, and when the bank statement arrives its line is tied to the recorded transfer instead of paying the
invoice a second time. Blue Heron Robotics owes 1000.00 CNY for October."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import time_machine

from accounts.errors import InvalidInput
from accounts.models import AuditEvent, OrganizationKind, Role
from billing.models import (
    BankLineStatus,
    BankStatementLine,
    InvoiceStatus,
    JournalEntry,
    Payment,
    ReconciliationException,
    ReconciliationMatch,
)
from billing.services.payments import bank_transfer_record, invoice_outstanding
from tests.accounts.page_helpers import browser_as, text_of
from tests.billing.bank import october_invoices, upload
from tests.billing.payments import finance_clerk
from tests.factories import OrganizationFactory, member_of

pytestmark = pytest.mark.django_db
D = Decimal
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


def record(clerk, invoice, amount="1000.00", reference="CMB20261121-0042", submission="s1", **fields):
    return bank_transfer_record(
        actor=clerk,
        invoice_id=invoice.pk,
        amount=D(amount),
        received_on=fields.pop("received_on", date(2026, 11, 21)),
        reference=reference,
        submission=submission,
        now=NOW,
        **fields,
    )


def test_a_recorded_transfer_pays_the_invoice_once_and_the_statement_line_is_tied_to_it():
    invoice = october_invoices(("Blue Heron Robotics", 10))["Blue Heron Robotics"]
    clerk = finance_clerk()
    first = record(clerk, invoice)
    again = record(clerk, invoice)  # the same form sent twice
    invoice.refresh_from_db()
    assert (first.created, again.created, again.payment.pk) == (True, False, first.payment.pk)
    assert (invoice.status, invoice_outstanding(invoice)) == (InvoiceStatus.PAID, D("0"))
    assert first.payment.received_at == datetime(2026, 11, 21, tzinfo=UTC)
    assert AuditEvent.objects.get(action="payment.recorded").after["reference"] == "CMB20261121-0042"

    entries = JournalEntry.objects.count()
    upload(clerk, ("2026-11-21", "1000.00", "Blue Heron Robotics", f"Payment {invoice.number}", "CMB20261121-0042"))

    line = BankStatementLine.objects.get()
    assert line.status == BankLineStatus.MATCHED
    assert Payment.objects.get().bank_line_id == line.pk
    match = ReconciliationMatch.objects.get()
    assert (match.status, match.payment_id) == ("confirmed", first.payment.pk)
    assert JournalEntry.objects.count() == entries  # nothing booked twice
    assert not ReconciliationException.objects.exists()


def test_bad_input_is_refused_with_the_reason_and_records_nothing():
    invoice = october_invoices(("Blue Heron Robotics", 10))["Blue Heron Robotics"]
    clerk = finance_clerk()
    with pytest.raises(InvalidInput) as future:
        record(clerk, invoice, received_on=date(2026, 11, 25))
    assert future.value.errors == {"received_on": ["A transfer cannot have been received in the future."]}
    with pytest.raises(InvalidInput) as no_reference:
        record(clerk, invoice, reference=" ")
    assert no_reference.value.errors == {"reference": ["Give the bank's reference of the transfer."]}
    with pytest.raises(InvalidInput):
        record(clerk, invoice, amount="10.005")
    assert not Payment.objects.exists()


def test_finance_records_a_transfer_on_the_invoice_page_and_sees_what_is_left():
    invoice = october_invoices(("Blue Heron Robotics", 10))["Blue Heron Robotics"]
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR, name="Network Operations")
    clerk = browser_as(member_of(operator, Role.FINANCE, email="clerk@ops.test"), operator)
    url = f"/billing/finance/invoices/{invoice.pk}/"
    form = {
        "transfer-amount": "600.00",
        "transfer-received_on": "2026-11-21",
        "transfer-reference": "CMB-1",
        "transfer-payer_name": "Blue Heron Robotics",
        "submission": "p1",
    }

    refused = clerk.post(f"{url}bank-transfer/", {**form, "transfer-amount": "-5"})
    assert refused.status_code == 400
    assert not Payment.objects.exists()

    done = clerk.post(f"{url}bank-transfer/", form)
    assert done.status_code == 302
    page = text_of(clerk.get(url))
    assert "Recorded 600.00 CNY received by bank transfer (CMB-1)." in page
    assert "Still to pay 400.00 CNY" in page
    assert clerk.post(f"{url}bank-transfer/", form).status_code == 302  # the same form again: recorded once
    assert Payment.objects.count() == 1

    viewer = browser_as(member_of(operator, Role.MEMBER, email="viewer@ops.test"), operator)
    assert viewer.post(f"{url}bank-transfer/", {**form, "submission": "p2"}).status_code == 403
    assert Payment.objects.count() == 1
