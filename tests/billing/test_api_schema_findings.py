"""What the API fuzzer (tests/fuzz) found in the billing API, each pinned by a plain regression test."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import OrganizationKind, Role, Scope
from billing.models import BankStatement, StripeEvent
from tests.accounts.api_helpers import signed_in, with_token
from tests.api_schema import assert_documented
from tests.billing.stripe_server import WEBHOOK_SECRET, event_body, sign
from tests.factories import OrganizationFactory, member_of, token_for

WEBHOOK = "/api/v1/stripe/webhook"

pytestmark = pytest.mark.django_db


def test_a_malformed_invoice_filter_on_the_payments_list_is_bad_input(enterprise):
    # The filter went through the path-id parser, so `?invoice=x` answered 404, a status the list does not
    # document (the list exists; its input is wrong): now a 400 that names the field.
    api = with_token(token_for(enterprise, Scope.BILLING))

    response = api.get("/api/v1/payments?invoice=not-an-id")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "“not-an-id” is not an invoice id.",
        "code": "invalid",
        "errors": {"invoice": ["Must be a UUID."]},
    }
    assert_documented(response, "GET", "/api/v1/payments")


def test_a_well_formed_unknown_invoice_filter_lists_nothing(enterprise):
    api = with_token(token_for(enterprise, Scope.BILLING))

    response = api.get("/api/v1/payments?invoice=00000000-0000-0000-0000-000000000000")

    assert (response.status_code, response.json()["count"]) == (200, 0)


def test_the_webhook_documents_the_stripe_event_it_takes(client, settings):
    # The request body was documented as any object, so the fuzzer (and a reader) could not tell that an event
    # needs an `id` and a `type`: now the schema says so, and both a stored event and a refused one are documented.
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = event_body("evt_schema_1", "customer.created", {"id": "cus_1", "object": "customer"})

    stored = client.post(WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))
    unsigned = client.post(WEBHOOK, body, content_type="application/json")
    served = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert (stored.status_code, stored.json()) == (200, {"received": True, "duplicate": False})
    assert StripeEvent.objects.get().event_id == "evt_schema_1"
    assert unsigned.status_code == 400
    request_schema = served["paths"][WEBHOOK]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema["required"] == ["id", "type"]
    assert_documented(stored, "POST", WEBHOOK)
    assert_documented(unsigned, "POST", WEBHOOK)


# --- bank statement uploads --------------------------------------------------------------------------------------


@pytest.fixture
def finance():
    operator = OrganizationFactory(kind=OrganizationKind.OPERATOR, name="AI Computing Network")
    return signed_in(member_of(operator, Role.FINANCE, email="finance@platform.test"), operator)


def upload(client, content: bytes, **fields):
    return client.post(
        "/api/v1/bank-statements",
        {"file": SimpleUploadedFile("statement.csv", content, content_type="text/csv"), **fields},
        format="multipart",
    )


def test_a_statement_without_a_date_column_is_a_400_naming_it(finance):
    # The standard format's mapping was built without a `date` when the header lacked one: a TypeError, a 500.
    response = upload(finance, b"a,b\n1,2\n")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The file was not imported: 3 problem(s) were found, nothing was stored.",
        "code": "malformed_statement",
        "errors": {
            "file": [
                "Line 1: Choose either one signed amount column, or a credit column and a debit column.",
                "Line 1: Choose the currency column, or the one currency of every line.",
                "Line 1: The file has no column “date”.",
            ]
        },
        "lines": [
            {"line": 1, "problem": "Choose either one signed amount column, or a credit column and a debit column."},
            {"line": 1, "problem": "Choose the currency column, or the one currency of every line."},
            {"line": 1, "problem": "The file has no column “date”."},
        ],
    }
    assert BankStatement.objects.count() == 0
    assert_documented(response, "POST", "/api/v1/bank-statements")


@pytest.mark.parametrize(
    "mapping",
    [
        {"date": 5, "amount": "amount", "fixed_currency": "CNY"},  # not a column name
        {"date": "date", "amount": "amount", "fixed_currency": "CNY", "date_format": ["%Y"]},  # unhashable
    ],
)
def test_a_mapping_of_wrong_types_is_a_400(finance, mapping):
    response = upload(finance, b"date,amount\n2026-11-20,1.00\n", mapping=json.dumps(mapping))

    assert response.status_code == 400
    assert response.json()["errors"] == {"mapping": ["Invalid."]}
    assert BankStatement.objects.count() == 0


def test_a_mapping_with_a_long_separator_is_a_400(finance):
    # The csv module refuses a separator of several characters with a TypeError: it was reached before the check.
    mapping = {"date": "date", "amount": "amount", "fixed_currency": "CNY", "delimiter": ";;"}

    response = upload(finance, b"date;;amount\n2026-11-20;;1.00\n", mapping=json.dumps(mapping))

    assert response.status_code == 400
    assert response.json()["lines"] == [
        {"line": 1, "problem": "The column separator must be a comma, a semicolon, a tab or a bar."}
    ]
    assert BankStatement.objects.count() == 0


def test_a_page_past_the_end_of_a_billing_list_is_a_documented_404(enterprise):
    # The billing lists answer one page (`?page=`, `?page_size=`) but did not say so; a page past the end answered
    # a 404 their schema did not list.
    api = with_token(token_for(enterprise, Scope.BILLING))
    served = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    first = api.get("/api/v1/payments?page=1&page_size=5")
    past = api.get("/api/v1/payments?page=9")

    assert (first.status_code, first.json()["count"]) == (200, 0)
    assert (past.status_code, past.json()) == (404, {"detail": "Invalid page.", "code": "not_found"})
    assert_documented(first, "GET", "/api/v1/payments")
    assert_documented(past, "GET", "/api/v1/payments")
    for path in ("/api/v1/payments", "/api/v1/invoices", "/api/v1/payouts", "/api/v1/periods", "/api/v1/bookings"):
        operation = served["paths"][path]["get"]
        assert {"page", "page_size"} <= {p["name"] for p in operation["parameters"]}, path
        assert "404" in operation["responses"], path


@pytest.mark.parametrize(
    "event",
    [
        {"id": "evt_nul_1", "type": "customer.created", "data": {"object": {"name\u0000": "x"}}},  # NUL in a key
        {"id": "evt_nul_2", "type": "customer.created", "data": {"object": {"name": "a\u0000b"}}},  # NUL in a value
        {"id": "evt_\n1", "type": "customer.created", "data": {"object": {}}},  # not an event id
        {"id": "evt_x" * 30, "type": "customer.created", "data": {"object": {}}},  # longer than the inbox keeps
        {"id": "evt_ok", "type": "\u0005", "data": {"object": {}}},  # not an event type
    ],
)
def test_a_signed_event_the_inbox_cannot_store_is_a_400(client, settings, event):
    # A validly signed body with a NUL character (PostgreSQL text and jsonb refuse it) or a malformed id reached
    # the database and failed there: a 500. Only the signing secret's holder can send one, but never a 500.
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = json.dumps(event).encode()

    response = client.post(WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))

    assert response.status_code == 400
    assert response.json() == {"detail": "The webhook body is not a Stripe event.", "code": "invalid_event"}
    assert StripeEvent.objects.count() == 0


@pytest.mark.parametrize("body", [b'{"id": "evt_s", "type": "x", "k": "\\ud800"}', b"[" * 100_000 + b"]" * 100_000])
def test_a_signed_body_that_is_no_storable_json_is_a_400(client, settings, body):
    # A lone surrogate cannot be encoded for PostgreSQL; JSON nested deeper than the parser goes raised a
    # RecursionError: both were 500s.
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET

    response = client.post(WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))

    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


def test_an_event_created_beyond_year_9999_is_stored_without_a_time(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = json.dumps({"id": "evt_far", "type": "customer.created", "created": 10**20, "data": {"object": {}}}).encode()

    response = client.post(WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body))

    assert (response.status_code, response.json()) == (200, {"received": True, "duplicate": False})
    assert StripeEvent.objects.get().stripe_created is None
