"""What the API fuzzer (tests/fuzz) found in the billing API, each pinned by a plain regression test."""

from __future__ import annotations

import pytest

from accounts.models import Scope
from billing.models import StripeEvent
from tests.accounts.api_helpers import with_token
from tests.api_schema import assert_documented
from tests.billing.stripe_server import WEBHOOK_SECRET, event_body, sign
from tests.factories import token_for

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
