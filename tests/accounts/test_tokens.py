"""API tokens: shown once, stored as a hash, refused when expired, revoked, unknown or malformed."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection

from accounts.models import ApiToken, AuditEvent, IdempotencyRecord, Role, Scope
from accounts.services import api_token_issue
from tests.accounts.api_helpers import ROLE_REQUIRED, TOKENS_CANNOT_MANAGE, organization_state, signed_in, with_token
from tests.factories import member_of, token_for

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def _everything_stored_about_tokens() -> str:
    """Every column of every token, audit event and idempotency record, as one string to search."""
    with connection.cursor() as cursor:
        dump = []
        for table in (ApiToken._meta.db_table, AuditEvent._meta.db_table, IdempotencyRecord._meta.db_table):
            cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t")  # noqa: S608 (table names are ours)
            dump.extend(row[0] for row in cursor.fetchall())
    return "\n".join(dump)


def test_an_admin_creates_a_token_and_sees_its_secret_once(enterprise, enterprise_admin):
    client = signed_in(enterprise_admin)

    # when an admin creates a token for the center agent
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            "/api/v1/tokens",
            {"name": "booking bot", "scopes": ["read", "booking"], "expires_at": "2027-01-01T00:00:00+08:00"},
            format="json",
        )

    # then the response carries the secret, beside the token's public fields
    assert response.status_code == 201
    token = ApiToken.objects.get()
    body = response.json()
    secret = body.pop("secret")
    assert body == {
        "id": str(token.pk),
        "name": "booking bot",
        "prefix": token.prefix,
        "scopes": ["booking", "read"],
        "status": "active",
        "created_by": "admin@blueheron.test",
        "created_at": "2026-11-03T10:00:00Z",
        "expires_at": "2026-12-31T16:00:00Z",
        "last_used_at": None,
        "revoked_at": None,
    }
    assert secret.startswith(f"cn_{token.prefix}_")
    # and only its SHA-256 is kept
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in _everything_stored_about_tokens()
    # and the creation is audited without the secret
    event = AuditEvent.objects.get(action="api_token.created")
    assert (event.organization, event.actor, event.target_id) == (enterprise, enterprise_admin, str(token.pk))
    assert event.after == {
        "name": "booking bot",
        "prefix": token.prefix,
        "scopes": ["booking", "read"],
        "expires_at": "2026-12-31T16:00:00+00:00",
    }
    assert event.before is None


def test_the_secret_is_never_shown_again(enterprise, enterprise_admin):
    client = signed_in(enterprise_admin)
    secret = client.post("/api/v1/tokens", {"name": "ci", "scopes": ["read"]}, format="json").json()["secret"]
    token = ApiToken.objects.get()

    listed = client.get("/api/v1/tokens")
    one = client.get(f"/api/v1/tokens/{token.pk}")

    assert listed.status_code == one.status_code == 200
    assert [t["id"] for t in listed.json()["results"]] == [str(token.pk)]
    assert "secret" not in one.json()
    assert secret not in listed.content.decode() + one.content.decode()


def test_the_secret_authenticates_as_its_organization_and_records_its_use(enterprise):
    issued = api_token_issue(organization=enterprise, name="agent", scopes=[Scope.AGENT])
    assert issued.token.last_used_at is None

    with time_machine.travel(NOW, tick=False):
        response = with_token(issued.secret).get("/api/v1/me")

    assert response.status_code == 200
    assert response.json()["organization"]["id"] == str(enterprise.pk)
    issued.token.refresh_from_db()
    assert issued.token.last_used_at == NOW


def test_use_is_recorded_at_most_once_a_minute(enterprise):
    issued = api_token_issue(organization=enterprise, name="agent", scopes=[Scope.AGENT])
    client = with_token(issued.secret)

    with time_machine.travel(NOW, tick=False):
        client.get("/api/v1/me")
    with time_machine.travel(NOW + timedelta(seconds=30), tick=False):
        client.get("/api/v1/me")
    issued.token.refresh_from_db()
    assert issued.token.last_used_at == NOW

    with time_machine.travel(NOW + timedelta(seconds=61), tick=False):
        client.get("/api/v1/me")
    issued.token.refresh_from_db()
    assert issued.token.last_used_at == NOW + timedelta(seconds=61)


def test_an_expired_token_is_refused(enterprise):
    with time_machine.travel(NOW, tick=False):
        secret = token_for(enterprise, Scope.READ, expires_at=NOW + timedelta(hours=1))
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        response = with_token(secret).get("/api/v1/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"detail": "This API token has expired.", "code": "token_expired"}


def test_a_revoked_token_is_refused_at_once(enterprise, enterprise_admin):
    issued = api_token_issue(organization=enterprise, name="leaked", scopes=[Scope.READ])
    assert with_token(issued.secret).get("/api/v1/me").status_code == 200

    revoked = signed_in(enterprise_admin).post(f"/api/v1/tokens/{issued.token.pk}/revoke")
    response = with_token(issued.secret).get("/api/v1/me")

    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    assert response.status_code == 401
    assert response.json() == {"detail": "This API token has been revoked.", "code": "token_revoked"}
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert (event.actor, event.before) == (
        enterprise_admin,
        {"name": "leaked", "prefix": issued.token.prefix, "scopes": ["read"]},
    )


def test_revoking_twice_changes_nothing_the_second_time(enterprise, enterprise_admin):
    token = api_token_issue(organization=enterprise, name="old", scopes=[Scope.READ]).token
    client = signed_in(enterprise_admin)
    first = client.post(f"/api/v1/tokens/{token.pk}/revoke")
    state = organization_state(enterprise)

    second = client.post(f"/api/v1/tokens/{token.pk}/revoke")

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json()
    assert organization_state(enterprise) == state


def test_an_unknown_token_is_refused(db):
    response = with_token("cn_abcdefgh_" + "x" * 40).get("/api/v1/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"detail": "Invalid API token.", "code": "invalid_token"}


@pytest.mark.parametrize("header", ["Bearer", "Bearer two parts", "Bearer " + "x" * 201])
def test_a_malformed_authorization_header_is_refused(api_client, header):
    response = api_client.get("/api/v1/me", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json() == {
        "detail": "Malformed Authorization header: expected “Bearer <token>”.",
        "code": "invalid_token",
    }


def test_another_scheme_is_no_credentials_at_all(api_client):
    response = api_client.get("/api/v1/me", HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("role", [Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_people_who_are_not_admins_cannot_create_tokens(enterprise, role):
    client = signed_in(member_of(enterprise, role))
    before = organization_state(enterprise)

    response = client.post("/api/v1/tokens", {"name": "mine", "scopes": ["booking"]}, format="json")

    assert (response.status_code, response.json()) == (403, ROLE_REQUIRED)
    assert organization_state(enterprise) == before


def test_a_token_cannot_mint_or_revoke_tokens_whatever_its_scopes(enterprise):
    issued = api_token_issue(organization=enterprise, name="all", scopes=Scope.values)
    client = with_token(issued.secret)
    before = ApiToken.objects.values_list("pk", "revoked_at")

    created = client.post("/api/v1/tokens", {"name": "child", "scopes": ["read"]}, format="json")
    revoked = client.post(f"/api/v1/tokens/{issued.token.pk}/revoke")

    assert [(r.status_code, r.json()) for r in (created, revoked)] == [(403, TOKENS_CANNOT_MANAGE)] * 2
    assert list(ApiToken.objects.values_list("pk", "revoked_at")) == list(before)


def test_an_expiry_in_the_past_is_refused(enterprise, enterprise_admin):
    response = signed_in(enterprise_admin).post(
        "/api/v1/tokens", {"name": "late", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The expiry must lie in the future.",
        "code": "invalid",
        "errors": {"expires_at": ["Must lie in the future."]},
    }
    assert not ApiToken.objects.exists()


def test_a_replayed_creation_never_shows_or_stores_the_secret(enterprise, enterprise_admin):
    client = signed_in(enterprise_admin)
    body = {"name": "deploy", "scopes": ["inventory"]}

    # when the same creation is sent twice with one Idempotency-Key
    first = client.post("/api/v1/tokens", body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-token-1")
    replay = client.post("/api/v1/tokens", body, format="json", HTTP_IDEMPOTENCY_KEY="deploy-token-1")

    # then one token exists; the replay describes it but cannot show the secret again
    assert ApiToken.objects.count() == 1
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    secret = first.json()["secret"]
    assert replay.json() == {**first.json(), "secret": None}
    # and the record kept for replays holds no secret
    record = IdempotencyRecord.objects.get()
    assert record.response_body["secret"] is None
    assert secret not in json.dumps(record.response_body)
    assert secret not in _everything_stored_about_tokens()


def test_the_list_tells_active_expired_and_revoked_tokens_apart(enterprise, enterprise_admin):
    with time_machine.travel(NOW, tick=False):
        expiring = api_token_issue(
            organization=enterprise, name="short", scopes=[Scope.READ], expires_at=NOW + timedelta(hours=1)
        ).token
        revoked = api_token_issue(organization=enterprise, name="old", scopes=[Scope.READ]).token
        api_token_issue(organization=enterprise, name="live", scopes=[Scope.READ])
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=NOW)

    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        listed = signed_in(enterprise_admin).get("/api/v1/tokens").json()["results"]

    assert {t["name"]: t["status"] for t in listed} == {"short": "expired", "old": "revoked", "live": "active"}
    assert next(t for t in listed if t["id"] == str(expiring.pk))["expires_at"] == "2026-11-03T11:00:00Z"
