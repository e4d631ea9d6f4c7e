"""The OpenAPI schema documents every accounts endpoint, and its interactive docs work offline."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS

pytestmark = pytest.mark.django_db

ACCOUNTS_OPERATIONS = {
    "/api/v1/me": {"get"},
    "/api/v1/organization": {"get", "patch"},
    "/api/v1/members": {"get"},
    "/api/v1/members/{id}": {"get", "patch", "delete"},
    "/api/v1/invitations": {"get", "post"},
    "/api/v1/invitations/{id}": {"get"},
    "/api/v1/invitations/{id}/revoke": {"post"},
    "/api/v1/tokens": {"get", "post"},
    "/api/v1/tokens/{id}": {"get"},
    "/api/v1/tokens/{id}/revoke": {"post"},
    "/api/v1/audit-events": {"get"},
    "/api/v1/audit-events/{id}": {"get"},
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_lists_every_accounts_endpoint(schema):
    documented = {
        path: {method for method in operations if method != "parameters"}
        for path, operations in schema["paths"].items()
        if path in ACCOUNTS_OPERATIONS
    }

    assert documented == ACCOUNTS_OPERATIONS


def test_every_accounts_operation_documents_the_error_shape(schema):
    for path, methods in ACCOUNTS_OPERATIONS.items():
        for method in methods:
            responses = schema["paths"][path][method]["responses"]
            errors = {code for code in responses if code.startswith(("4", "5"))}
            assert {"401", "429"} <= errors, (method, path)
            for code in errors:
                assert responses[code]["content"]["application/json"]["schema"] == ERROR_REF, (method, path, code)
            if method in {"post", "patch"} and not path.endswith("/revoke"):
                assert "400" in errors, (method, path)


def test_the_error_component_is_the_api_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]

    assert set(error["properties"]) == {"detail", "code", "errors"}
    assert set(error["required"]) == {"detail", "code"}


def test_token_creation_documents_the_secret_and_its_replay(schema):
    operation = schema["paths"]["/api/v1/tokens"]["post"]

    assert "secret: null" in operation["description"]
    assert [p["name"] for p in operation["parameters"]] == ["Idempotency-Key"]
    created = schema["components"]["schemas"]["ApiTokenCreated"]
    assert created["properties"]["secret"]["nullable"] is True


def test_both_ways_of_authenticating_are_documented(schema):
    schemes = schema["components"]["securitySchemes"]

    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["cookieAuth"]["in"] == "cookie"


def test_money_is_a_decimal_string_in_the_schema(schema):
    credit_limit = schema["components"]["schemas"]["Organization"]["properties"]["credit_limit"]

    assert credit_limit["type"] == "string"
    assert credit_limit["format"] == "decimal"
    assert credit_limit["nullable"] is True


def test_the_schema_validates_without_warnings(tmp_path):
    GENERATOR_STATS.reset()

    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"), stderr=StringIO()
    )

    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.0.3")


def test_the_interactive_docs_load_their_assets_locally(client):
    response = client.get("/api/v1/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, "the page references no assets at all"
    # The initializer is a script file of the docs page itself: the CSP allows no inline script.
    initializer = "/api/v1/docs/?script="
    assert all(asset.startswith("/static/") or asset == initializer for asset in assets), assets
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>\s*\S", html), "an inline script would not run under the CSP"
    assert not re.search(r"https?://", html)
    script = client.get(initializer)
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()
