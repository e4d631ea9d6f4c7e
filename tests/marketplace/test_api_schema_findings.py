"""What the API fuzzer (tests/fuzz) found in the market's API, each pinned by a plain regression test."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.api_schema import assert_documented
from tests.marketplace.factories import OfferingFactory

pytestmark = pytest.mark.django_db


def test_a_catalog_offering_without_a_window_documents_its_null_availability():
    # The schema said `available_devices` was an integer, but without `start`/`end` it is null: every catalog
    # response without a window violated the schema.
    offering = OfferingFactory()

    one = APIClient().get(f"/api/v1/catalog/{offering.pk}")
    page = APIClient().get("/api/v1/catalog")

    assert (one.status_code, one.json()["available_devices"]) == (200, None)
    assert [item["available_devices"] for item in page.json()["results"]] == [None]
    assert_documented(one, "GET", "/api/v1/catalog/{id}")
    assert_documented(page, "GET", "/api/v1/catalog")
