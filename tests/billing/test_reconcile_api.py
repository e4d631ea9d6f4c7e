"""The reconciliation API: `POST /api/v1/bank-statements` (multipart) and `GET /api/v1/reconciliation/exceptions`,
for the operator's finance staff only; errors in the API's `{"detail", "code"}` shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import OrganizationKind, Role, Scope
from billing.models import BankStatement, BankStatementLine, ReconciliationException
from tests.accounts.api_helpers import signed_in, with_token
from tests.billing.bank import october_invoices, statement_csv
from tests.factories import OrganizationFactory, member_of, token_for

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def finance():
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR, name="AI Computing Network")
    return signed_in(member_of(operator, Role.FINANCE, email="finance@platform.test"), operator)


def post_file(client, content: bytes, name: str = "nov.csv", **fields):
    return client.post(
        "/api/v1/bank-statements",
        {"file": SimpleUploadedFile(name, content, content_type="text/csv"), **fields},
        format="multipart",
    )


def test_upload_imports_matches_and_lists_the_exceptions(finance):
    invoices = october_invoices(("Blue Heron Robotics", 10))
    heron = invoices["Blue Heron Robotics"]
    content = statement_csv(
        ("2026-11-20", "1000.00", "Blue Heron Robotics", heron.number),
        ("2026-11-22", "88.00", "Mystery Ltd", "gift"),
    )

    response = post_file(finance, content)

    assert response.status_code == 201, response.json()
    body = response.json()
    statement = BankStatement.objects.get()
    assert {k: body[k] for k in ("id", "filename", "status", "line_count", "credits", "debits", "lines")} == {
        "id": str(statement.pk),
        "filename": "nov.csv",
        "status": "done",
        "line_count": 2,
        "credits": "1088.0000",
        "debits": "0.0000",
        "lines": {"matched": 1, "proposed": 0, "unmatched": 1, "ignored": 0},
    }
    listed = finance.get("/api/v1/reconciliation/exceptions").json()
    exception = ReconciliationException.objects.get()
    assert listed["count"] == 1
    [item] = listed["results"]
    assert (item["id"], item["kind"], item["status"], item["period"], item["amount"]) == (
        exception.pk,
        "unmatched_bank_line",
        "open",
        "2026-11",
        "88.0000",
    )
    assert item["bank_line"]["line_number"] == 3 and item["bank_line"]["counterparty"] == "Mystery Ltd"
    assert finance.get("/api/v1/reconciliation/exceptions", {"status": "resolved"}).json()["count"] == 0
    assert finance.get("/api/v1/reconciliation/exceptions", {"period": "2026-10"}).json()["count"] == 0
    assert finance.get("/api/v1/reconciliation/exceptions", {"period": "2031-01"}).json()["count"] == 0
    bad = finance.get("/api/v1/reconciliation/exceptions", {"kind": "nonsense"})
    assert bad.status_code == 400 and bad.json()["errors"] == {"kind": ["Not a kind of exception."]}

    again = post_file(finance, content, name="again.csv")
    assert again.status_code == 409
    assert again.json()["code"] == "duplicate_statement"
    assert again.json()["statement"] == str(statement.pk)


def test_a_malformed_file_is_a_400_by_line_and_stores_nothing(finance):
    response = post_file(finance, b"date,amount,currency\n2026-11-40,1.00,CNY\n")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The file was not imported: 1 problem(s) were found, nothing was stored.",
        "code": "malformed_statement",
        "errors": {"file": ["Line 2: date “2026-11-40” is not a date written like 2026-11-30."]},
        "lines": [{"line": 2, "problem": "date “2026-11-40” is not a date written like 2026-11-30."}],
    }
    assert BankStatement.objects.count() == 0
    assert post_file(finance, b"").status_code == 400  # an empty file as well
    missing = finance.post("/api/v1/bank-statements", {}, format="multipart")
    assert missing.status_code == 400 and missing.json()["errors"] == {"file": ["Required."]}


def test_a_mapping_reads_another_banks_export(finance):
    content = "Datum;Betrag;Zweck\n20.11.2026;-12,50;Gebühr\n".encode()
    mapping = {
        "date": "Datum",
        "amount": "Betrag",
        "remittance": "Zweck",
        "fixed_currency": "CNY",
        "date_format": "%d.%m.%Y",
        "decimal_comma": True,
        "delimiter": ";",
    }

    response = post_file(finance, content, name="bank.csv", mapping=json.dumps(mapping))

    assert response.status_code == 201, response.json()
    assert BankStatementLine.objects.get().amount == Decimal("-12.50")
    wrong = post_file(finance, content, name="b2.csv", mapping="[1]")
    assert wrong.status_code == 400 and wrong.json()["errors"] == {"mapping": ["Invalid."]}


@pytest.mark.parametrize("kind", [OrganizationKind.ENTERPRISE, OrganizationKind.CENTER])
def test_nobody_but_operator_finance_uploads_or_reads(kind):
    outsider = OrganizationFactory(kind=kind)
    member = signed_in(member_of(outsider, Role.OWNER), outsider)
    token = with_token(token_for(outsider, Scope.BILLING))

    for client in (member, token):
        assert post_file(client, b"date,amount,currency\n2026-11-20,1.00,CNY\n").status_code == 403
        assert client.get("/api/v1/reconciliation/exceptions").status_code == 403
    assert BankStatement.objects.count() == 0
