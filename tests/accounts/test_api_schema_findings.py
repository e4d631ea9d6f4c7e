"""What the API fuzzer (tests/fuzz) found in the accounts API, each pinned by a plain regression test."""

from __future__ import annotations

import pytest

from accounts.models import Scope
from accounts.services import api_token_issue
from tests.accounts.api_helpers import signed_in
from tests.api_schema import assert_documented

pytestmark = pytest.mark.django_db


def test_a_token_nobody_created_in_the_app_lists_a_null_creator(enterprise, enterprise_admin):
    # Tokens issued by `create_org` (or whose creator's account was deleted) have no creator; the schema said
    # `created_by` was always an e-mail address, so listing them violated it.
    issued = api_token_issue(organization=enterprise, name="bootstrap", scopes=[Scope.READ])

    listed = signed_in(enterprise_admin, enterprise).get("/api/v1/tokens")
    one = signed_in(enterprise_admin, enterprise).get(f"/api/v1/tokens/{issued.token.pk}")

    assert listed.status_code == 200
    assert [(t["name"], t["created_by"]) for t in listed.json()["results"]] == [("bootstrap", None)]
    assert (one.status_code, one.json()["created_by"]) == (200, None)
    assert_documented(listed, "GET", "/api/v1/tokens")
    assert_documented(one, "GET", "/api/v1/tokens/{id}")
