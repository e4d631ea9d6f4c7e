"""What the API fuzzer (tests/fuzz) found in the billing API, each pinned by a plain regression test."""

from __future__ import annotations

import pytest

from accounts.models import Scope
from tests.accounts.api_helpers import with_token
from tests.api_schema import assert_documented
from tests.factories import token_for

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
