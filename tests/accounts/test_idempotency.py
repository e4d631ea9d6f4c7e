"""Idempotency-Key on creating POSTs (API.md, Conventions): one effect per key, the first answer replayed."""

from __future__ import annotations

import pytest
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import IdempotencyRecord, Invitation
from tests.accounts.api_helpers import organization_state, signed_in
from tests.concurrency import run_at_once

INVITE = {"email": "new.hire@example.test", "role": "member"}


@pytest.mark.django_db
def test_the_same_key_and_body_replays_the_first_response(
    enterprise, enterprise_admin, django_capture_on_commit_callbacks
):
    client = signed_in(enterprise_admin)

    # when a client retries an invitation with the same key and body
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="invite-7")
        second = client.post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="invite-7")

    # then it gets the same answer, marked as a replay, and one invitation (and one e-mail) exists
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert Invitation.objects.count() == 1
    assert len(mail.outbox) == 1
    assert IdempotencyRecord.objects.get().response_body == first.json()


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_conflict(enterprise, enterprise_admin):
    client = signed_in(enterprise_admin)
    client.post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="invite-7")
    before = organization_state(enterprise)

    response = client.post(
        "/api/v1/invitations", {**INVITE, "role": "viewer"}, format="json", HTTP_IDEMPOTENCY_KEY="invite-7"
    )

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This Idempotency-Key was already used with a different request.",
        "code": "idempotency_conflict",
    }
    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_a_key_on_another_endpoint_is_a_conflict_too(enterprise, enterprise_admin):
    client = signed_in(enterprise_admin)
    client.post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="shared-key")
    before = organization_state(enterprise)

    response = client.post(
        "/api/v1/tokens", {"name": "x", "scopes": ["read"]}, format="json", HTTP_IDEMPOTENCY_KEY="shared-key"
    )

    assert (response.status_code, response.json()["code"]) == (409, "idempotency_conflict")
    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_keys_belong_to_one_organization(enterprise_admin, other_enterprise):
    from tests.factories import member_of

    other_admin = member_of(other_enterprise, "admin")

    mine = signed_in(enterprise_admin).post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = signed_in(other_admin).post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["k" * 256, "   "])
def test_an_overlong_or_blank_key_is_refused(enterprise, enterprise_admin, key):
    before = organization_state(enterprise)

    response = signed_in(enterprise_admin).post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The Idempotency-Key header must be 1 to 255 characters.",
        "code": "invalid_idempotency_key",
    }
    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_a_key_of_255_characters_is_accepted(enterprise_admin):
    response = signed_in(enterprise_admin).post(
        "/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255
    )

    assert response.status_code == 201


@pytest.mark.django_db
def test_a_refused_request_keeps_nothing_so_the_corrected_retry_succeeds(enterprise, enterprise_admin):
    client = signed_in(enterprise_admin)
    before = organization_state(enterprise)

    refused = client.post("/api/v1/invitations", {"email": "not-an-address"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert refused.status_code == 400
    assert organization_state(enterprise) == before

    corrected = client.post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    assert corrected.status_code == 201
    assert "Idempotent-Replayed" not in corrected.headers
    assert Invitation.objects.get().email == "new.hire@example.test"


@pytest.mark.django_db
def test_a_request_refused_by_a_rule_keeps_nothing_either(enterprise, enterprise_admin):
    # given the address is already a member: the service refuses with 409 after the key was claimed
    client = signed_in(enterprise_admin)
    before = organization_state(enterprise)

    refused = client.post(
        "/api/v1/invitations", {"email": "admin@blueheron.test"}, format="json", HTTP_IDEMPOTENCY_KEY="k2"
    )

    assert (refused.status_code, refused.json()["code"]) == (409, "already_member")
    assert organization_state(enterprise) == before


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_requests_with_one_key_create_one_invitation(enterprise, enterprise_admin):
    # given two clients of the same admin, each on its own connection
    clients = [signed_in(enterprise_admin), signed_in(enterprise_admin)]

    def post(client: APIClient):
        return lambda: client.post("/api/v1/invitations", INVITE, format="json", HTTP_IDEMPOTENCY_KEY="race-1")

    # when both send the same key and body at once
    first, second = run_at_once(post(clients[0]), post(clients[1]))

    # then exactly one invitation exists, and both got its 201
    assert not isinstance(first, Exception), first
    assert not isinstance(second, Exception), second
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert Invitation.objects.count() == 1
    assert str(Invitation.objects.get().pk) == first.json()["id"]
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in (first, second)) == ["", "true"]
    assert IdempotencyRecord.objects.count() == 1
