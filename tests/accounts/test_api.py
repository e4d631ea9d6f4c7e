"""The accounts API: who may call what, tenant isolation, and the error shape of API.md."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.core import mail
from django.test import override_settings

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Role, Scope
from accounts.services import api_token_issue, audit_record
from tests.accounts.api_helpers import (
    NOT_FOUND,
    ROLE_REQUIRED,
    TOKENS_CANNOT_MANAGE,
    organization_state,
    rows,
    signed_in,
    with_token,
)
from tests.factories import InvitationFactory, UserFactory, member_of, token_for

pytestmark = pytest.mark.django_db

ALL_ROLES = [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.FINANCE, Role.VIEWER]
ADMINS = {Role.OWNER, Role.ADMIN}


@pytest.fixture
def staff(enterprise):
    """One person per role in the enterprise."""
    return {
        role: member_of(enterprise, role, email=f"{role}@blueheron.test", name=f"{role} person") for role in ALL_ROLES
    }


def organization_body(organization) -> dict:
    return {
        "id": str(organization.pk),
        "kind": organization.kind,
        "name": organization.name,
        "slug": organization.slug,
        "legal_name": organization.legal_name,
        "tax_id": organization.tax_id,
        "region": organization.region,
        "billing_currency": organization.billing_currency,
        "verified": organization.verified,
        "credit_limit": None if organization.credit_limit is None else f"{organization.credit_limit:.2f}",
    }


# --- /me -----------------------------------------------------------------------------------------------------


def test_me_for_a_signed_in_person_names_the_user_the_acting_organization_role_and_scopes(enterprise):
    # given a finance person of the enterprise
    user = member_of(enterprise, Role.FINANCE, email="finance@blueheron.test", name="Fay Finance")

    # when they ask who they are
    response = signed_in(user).get("/api/v1/me")

    # then the body names them, the organization, their role and what the role allows
    assert response.status_code == 200
    assert response.json() == {
        "user": {
            "id": str(user.pk),
            "email": "finance@blueheron.test",
            "name": "Fay Finance",
            "preferred_language": "en",
        },
        "organization": organization_body(enterprise),
        "role": "finance",
        "scopes": ["billing", "read"],
    }


def test_me_for_a_person_in_two_organizations_follows_the_organization_they_switched_to(enterprise, center):
    # given a person who is a viewer of the enterprise and an admin of the center, acting as the center
    user = member_of(enterprise, Role.VIEWER)
    Membership.objects.create(user=user, organization=center, role=Role.ADMIN)

    # when they ask who they are
    body = signed_in(user, center).get("/api/v1/me").json()

    # then they act as the center, with the center role
    assert body["organization"]["id"] == str(center.pk)
    assert body["role"] == "admin"


def test_me_for_a_token_names_the_token_without_its_secret(enterprise):
    # given an inventory-only token
    issued = api_token_issue(organization=enterprise, name="rack agent", scopes=[Scope.INVENTORY])

    # when it asks who it is
    response = with_token(issued.secret).get("/api/v1/me")

    # then it sees its organization and its own public fields
    assert response.status_code == 200
    assert response.json() == {
        "organization": organization_body(enterprise),
        "token": {
            "id": str(issued.token.pk),
            "name": "rack agent",
            "prefix": issued.token.prefix,
            "scopes": ["inventory"],
        },
        "scopes": ["inventory"],
    }
    assert issued.secret not in response.content.decode()


def test_no_credentials_is_401_with_a_bearer_challenge(api_client):
    response = api_client.get("/api/v1/me")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}


def test_a_signed_in_person_without_any_organization_is_403(db):
    response = signed_in(UserFactory()).get("/api/v1/me")

    assert response.status_code == 403
    assert response.json() == {"detail": "You are not a member of any organization yet.", "code": "no_organization"}


# --- organization --------------------------------------------------------------------------------------------


def test_organization_shows_money_as_a_string(enterprise, enterprise_owner):
    # given a consumer with a credit limit
    enterprise.credit_limit = Decimal("250000.5")
    enterprise.legal_name = "Hangzhou Blue Heron Robotics Technology Co., Ltd."
    enterprise.save()
    enterprise.refresh_from_db()

    # when it is read
    response = signed_in(enterprise_owner).get("/api/v1/organization")

    # then the limit is an exact decimal string
    assert response.status_code == 200
    assert response.json() == organization_body(enterprise)
    assert response.json()["credit_limit"] == "250000.50"


def test_an_admin_changes_the_organization_settings_and_it_is_audited(enterprise, enterprise_admin):
    # when an admin renames the organization and sets its region
    response = signed_in(enterprise_admin).patch(
        "/api/v1/organization", {"name": "Blue Heron Robotics Ltd", "region": "cn-east"}, format="json"
    )

    # then it is changed, shown, and recorded with before and after
    assert response.status_code == 200
    enterprise.refresh_from_db()
    assert (enterprise.name, enterprise.region) == ("Blue Heron Robotics Ltd", "cn-east")
    assert response.json() == organization_body(enterprise)
    event = AuditEvent.objects.get(action="organization.updated")
    assert (event.organization, event.actor, event.before, event.after) == (
        enterprise,
        enterprise_admin,
        {"name": "Blue Heron Robotics", "region": ""},
        {"name": "Blue Heron Robotics Ltd", "region": "cn-east"},
    )


def test_codes_typed_in_lower_case_are_stored_in_upper_case(enterprise, enterprise_owner):
    response = signed_in(enterprise_owner).patch(
        "/api/v1/organization", {"tax_id": "91330108ma2j0pb7yk", "billing_currency": "usd"}, format="json"
    )

    assert response.status_code == 200
    enterprise.refresh_from_db()
    assert (enterprise.tax_id, enterprise.billing_currency) == ("91330108MA2J0PB7YK", "USD")


def test_a_tax_id_with_other_characters_is_refused(enterprise, enterprise_owner):
    before = organization_state(enterprise)

    response = signed_in(enterprise_owner).patch("/api/v1/organization", {"tax_id": "9133 0108!"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"tax_id": ["Use digits, capital letters and dashes only."]}
    assert organization_state(enterprise) == before


@pytest.mark.parametrize("role", [Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_non_admins_cannot_change_the_organization(enterprise, staff, role):
    before = organization_state(enterprise)

    response = signed_in(staff[role]).patch("/api/v1/organization", {"name": "Hijacked"}, format="json")

    assert response.status_code == 403
    assert response.json() == ROLE_REQUIRED
    assert organization_state(enterprise) == before


def test_the_credit_limit_cannot_be_set_through_the_settings(enterprise, enterprise_owner):
    before = organization_state(enterprise)

    response = signed_in(enterprise_owner).patch("/api/v1/organization", {"credit_limit": "1000000"}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Some fields are invalid.",
        "code": "invalid",
        "errors": {"credit_limit": ["Unknown field, or one that cannot be set here."]},
    }
    assert organization_state(enterprise) == before


# --- role and scope matrix -----------------------------------------------------------------------------------


READS_FOR_EVERY_MEMBER = ["/api/v1/me", "/api/v1/organization", "/api/v1/members"]
ADMIN_READS = ["/api/v1/invitations", "/api/v1/tokens", "/api/v1/audit-events"]


@pytest.mark.parametrize("role", ALL_ROLES)
def test_every_role_reads_the_caller_the_organization_and_its_members(staff, role):
    client = signed_in(staff[role])

    assert [client.get(url).status_code for url in READS_FOR_EVERY_MEMBER] == [200, 200, 200]


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_owners_and_admins_read_invitations_tokens_and_the_audit_log(staff, role):
    client = signed_in(staff[role])

    responses = [client.get(url) for url in ADMIN_READS]

    if role in ADMINS:
        assert [r.status_code for r in responses] == [200, 200, 200]
    else:
        assert [(r.status_code, r.json()) for r in responses] == [(403, ROLE_REQUIRED)] * 3


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_owners_and_admins_create_tokens_and_invitations(enterprise, staff, role):
    client = signed_in(staff[role])
    before = organization_state(enterprise)

    token = client.post("/api/v1/tokens", {"name": "ci", "scopes": ["read"]}, format="json")
    invitation = client.post("/api/v1/invitations", {"email": "new@blueheron.test"}, format="json")

    if role in ADMINS:
        assert (token.status_code, invitation.status_code) == (201, 201)
    else:
        assert [(r.status_code, r.json()) for r in (token, invitation)] == [(403, ROLE_REQUIRED)] * 2
        assert organization_state(enterprise) == before


def test_an_inventory_token_reads_me_but_nothing_it_has_no_scope_or_role_for(enterprise, enterprise_owner):
    client = with_token(token_for(enterprise, Scope.INVENTORY))
    member = Membership.objects.get(user=enterprise_owner)
    before = organization_state(enterprise)

    assert client.get("/api/v1/me").status_code == 200
    assert client.get("/api/v1/organization").status_code == 200
    members = client.get("/api/v1/members")
    assert (members.status_code, members.json()) == (
        403,
        {"detail": "This needs the “read” scope.", "code": "scope_required"},
    )
    management = [
        client.get("/api/v1/tokens"),
        client.post("/api/v1/tokens", {"name": "more", "scopes": ["inventory"]}, format="json"),
        client.get("/api/v1/invitations"),
        client.post("/api/v1/invitations", {"email": "x@example.test"}, format="json"),
        client.get("/api/v1/audit-events"),
        client.patch("/api/v1/organization", {"name": "Renamed"}, format="json"),
        client.patch(f"/api/v1/members/{member.pk}", {"role": "viewer"}, format="json"),
    ]
    assert [(r.status_code, r.json()) for r in management] == [(403, TOKENS_CANNOT_MANAGE)] * len(management)
    # The token's own last_used_at is the only write its requests may cause.
    after = organization_state(enterprise)
    assert [{**t, "last_used_at": None} for t in after.pop("tokens")] == [
        {**t, "last_used_at": None} for t in before.pop("tokens")
    ]
    assert after == before


def test_a_read_token_lists_members_but_cannot_change_or_remove_them(enterprise, enterprise_owner, enterprise_admin):
    client = with_token(token_for(enterprise, Scope.READ))
    admin_membership = Membership.objects.get(user=enterprise_admin)
    before = rows(Membership, organization=enterprise)

    listed = client.get("/api/v1/members")
    one = client.get(f"/api/v1/members/{admin_membership.pk}")
    changed = client.patch(f"/api/v1/members/{admin_membership.pk}", {"role": "viewer"}, format="json")
    removed = client.delete(f"/api/v1/members/{admin_membership.pk}")

    assert listed.status_code == 200
    assert [m["user"]["email"] for m in listed.json()["results"]] == ["admin@blueheron.test", "owner@blueheron.test"]
    assert one.status_code == 200
    assert (changed.status_code, changed.json()) == (403, TOKENS_CANNOT_MANAGE)
    assert (removed.status_code, removed.json()) == (403, ROLE_REQUIRED)
    assert rows(Membership, organization=enterprise) == before


# --- members -------------------------------------------------------------------------------------------------


def test_members_are_listed_by_email_with_their_roles(enterprise, staff):
    response = signed_in(staff[Role.VIEWER]).get("/api/v1/members")

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (5, None, None)
    memberships = {m.user.email: m for m in Membership.objects.filter(organization=enterprise)}
    assert body["results"] == [
        {
            "id": memberships[email].pk,
            "user": {"id": str(memberships[email].user.pk), "email": email, "name": memberships[email].user.name},
            "role": memberships[email].role,
            "created_at": memberships[email].created_at.isoformat().replace("+00:00", "Z"),
        }
        for email in sorted(memberships)
    ]


def test_an_admin_changes_a_members_role(enterprise, staff):
    viewer = Membership.objects.get(user=staff[Role.VIEWER])

    response = signed_in(staff[Role.ADMIN]).patch(f"/api/v1/members/{viewer.pk}", {"role": "member"}, format="json")

    assert response.status_code == 200
    assert response.json()["role"] == "member"
    viewer.refresh_from_db()
    assert viewer.role == Role.MEMBER
    event = AuditEvent.objects.get(action="membership.role_changed")
    assert (event.before, event.after) == (
        {"user": "viewer@blueheron.test", "role": "viewer"},
        {"user": "viewer@blueheron.test", "role": "member"},
    )


def test_an_admin_cannot_make_an_owner(enterprise, staff):
    viewer = Membership.objects.get(user=staff[Role.VIEWER])
    before = organization_state(enterprise)

    response = signed_in(staff[Role.ADMIN]).patch(f"/api/v1/members/{viewer.pk}", {"role": "owner"}, format="json")

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Only an owner can grant or take away the owner role.",
        "code": "role_required",
    }
    assert organization_state(enterprise) == before


def test_the_last_owner_cannot_be_demoted_through_the_api(enterprise, staff):
    owner = Membership.objects.get(user=staff[Role.OWNER])
    before = organization_state(enterprise)

    response = signed_in(staff[Role.OWNER]).patch(f"/api/v1/members/{owner.pk}", {"role": "admin"}, format="json")

    assert response.status_code == 422
    assert response.json() == {"detail": "An organization must keep at least one owner.", "code": "last_owner"}
    assert organization_state(enterprise) == before


def test_an_admin_removes_a_member(enterprise, staff):
    finance = Membership.objects.get(user=staff[Role.FINANCE])

    response = signed_in(staff[Role.ADMIN]).delete(f"/api/v1/members/{finance.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Membership.objects.filter(pk=finance.pk).exists()
    assert AuditEvent.objects.get(action="membership.removed").before == {
        "user": "finance@blueheron.test",
        "role": "finance",
    }


def test_a_member_may_leave_but_not_remove_others(enterprise, staff):
    client = signed_in(staff[Role.MEMBER])
    viewer = Membership.objects.get(user=staff[Role.VIEWER])
    own = Membership.objects.get(user=staff[Role.MEMBER])

    refused = client.delete(f"/api/v1/members/{viewer.pk}")
    left = client.delete(f"/api/v1/members/{own.pk}")

    assert (refused.status_code, refused.json()) == (403, ROLE_REQUIRED)
    assert Membership.objects.filter(pk=viewer.pk).exists()
    assert left.status_code == 204
    assert not Membership.objects.filter(pk=own.pk).exists()


# --- invitations ---------------------------------------------------------------------------------------------


def test_an_admin_invites_someone_and_the_response_holds_no_secret(
    enterprise, enterprise_admin, django_capture_on_commit_callbacks
):
    # when an admin invites a new colleague as finance
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(enterprise_admin).post(
            "/api/v1/invitations", {"email": "New.Hire@BlueHeron.test", "role": "finance"}, format="json"
        )

    # then the invitation is stored with a hashed link and described without its secret
    assert response.status_code == 201
    invitation = Invitation.objects.get()
    assert response.json() == {
        "id": str(invitation.pk),
        "email": "new.hire@blueheron.test",
        "role": "finance",
        "status": "pending",
        "invited_by": "admin@blueheron.test",
        "created_at": invitation.created_at.isoformat().replace("+00:00", "Z"),
        "expires_at": invitation.expires_at.isoformat().replace("+00:00", "Z"),
        "accepted_at": None,
        "revoked_at": None,
    }
    # and the link went out by e-mail, its secret nowhere in the API's answer
    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/accounts/invitations/" in line)
    secret = link.rstrip("/").rsplit("/", 1)[-1]
    assert secret not in response.content.decode()
    assert invitation.token_hash != secret


def test_invitations_are_listed_newest_first_read_and_revoked(enterprise, enterprise_admin):
    older = InvitationFactory(organization=enterprise, email="a@example.test")
    newer = InvitationFactory(organization=enterprise, email="b@example.test")
    client = signed_in(enterprise_admin)

    listed = client.get("/api/v1/invitations").json()
    one = client.get(f"/api/v1/invitations/{older.pk}").json()
    revoked = client.post(f"/api/v1/invitations/{older.pk}/revoke")
    again = client.post(f"/api/v1/invitations/{older.pk}/revoke")

    assert [i["id"] for i in listed["results"]] == [str(newer.pk), str(older.pk)]
    assert (one["email"], one["status"]) == ("a@example.test", "pending")
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    older.refresh_from_db()
    assert older.revoked_at is not None
    assert (again.status_code, again.json()) == (
        409,
        {"detail": "This invitation is no longer open.", "code": "invitation_closed"},
    )


# --- audit log -----------------------------------------------------------------------------------------------


def test_the_audit_log_is_paginated_newest_first(enterprise, enterprise_owner):
    for n in range(3):
        audit_record(action=f"test.event_{n}", organization=enterprise, user=enterprise_owner)
    client = signed_in(enterprise_owner)

    first_page = client.get("/api/v1/audit-events?page_size=2").json()
    second_page = client.get("/api/v1/audit-events?page_size=2&page=2").json()

    assert first_page["count"] == 3
    assert [e["action"] for e in first_page["results"]] == ["test.event_2", "test.event_1"]
    assert first_page["next"].endswith("/api/v1/audit-events?page=2&page_size=2")
    assert [e["action"] for e in second_page["results"]] == ["test.event_0"]


def test_one_audit_event_shows_who_did_what(enterprise, enterprise_owner):
    event = audit_record(
        action="organization.updated",
        organization=enterprise,
        user=enterprise_owner,
        target=enterprise,
        before={"name": "Old"},
        after={"name": "New"},
        ip_address="203.0.113.7",
    )

    response = signed_in(enterprise_owner).get(f"/api/v1/audit-events/{event.pk}")

    assert response.status_code == 200
    assert response.json() == {
        "id": event.pk,
        "action": "organization.updated",
        "actor_label": "owner@blueheron.test",
        "actor_user": str(enterprise_owner.pk),
        "actor_token": None,
        "target_type": "Organization",
        "target_id": str(enterprise.pk),
        "before": {"name": "Old"},
        "after": {"name": "New"},
        "ip_address": "203.0.113.7",
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
    }


# --- tenant isolation ----------------------------------------------------------------------------------------


@pytest.fixture
def foreign(other_enterprise):
    """Organization B's member, invitation, token and audit event, which A must never reach."""
    owner = member_of(other_enterprise, Role.OWNER, email="owner@qingluo.test")
    colleague = member_of(other_enterprise, Role.MEMBER, email="member@qingluo.test")
    token = api_token_issue(organization=other_enterprise, name="qingluo ci", scopes=[Scope.BOOKING]).token
    return {
        "organization": other_enterprise,
        "member": Membership.objects.get(user=colleague).pk,
        "owner_member": Membership.objects.get(user=owner).pk,
        "invitation": InvitationFactory(organization=other_enterprise, email="invitee@qingluo.test").pk,
        "token": token.pk,
        "audit_event": AuditEvent.objects.get(organization=other_enterprise, action="api_token.created").pk,
    }


FOREIGN_REQUESTS = [
    ("get", "/api/v1/members/{member}", None),
    ("patch", "/api/v1/members/{member}", {"role": "viewer"}),
    ("delete", "/api/v1/members/{member}", None),
    ("delete", "/api/v1/members/{owner_member}", None),
    ("get", "/api/v1/invitations/{invitation}", None),
    ("post", "/api/v1/invitations/{invitation}/revoke", None),
    ("get", "/api/v1/tokens/{token}", None),
    ("post", "/api/v1/tokens/{token}/revoke", None),
    ("get", "/api/v1/audit-events/{audit_event}", None),
]
MISSING_IDS = {
    "member": 987654321,
    "owner_member": 987654322,
    "invitation": uuid.uuid4(),
    "token": uuid.uuid4(),
    "audit_event": 987654323,
}


def _allowed(actor: str, method: str, url: str) -> bool:
    """Would `actor` be let through to the lookup of an object of its own organization?"""
    if url.startswith("/api/v1/members/"):
        if method == "patch":
            return actor in ADMINS
        return actor in ADMINS | {Role.MEMBER, Role.FINANCE, Role.VIEWER, "token"}
    return actor in ADMINS


@pytest.mark.parametrize("actor", [*ALL_ROLES, "token"])
@pytest.mark.parametrize(("method", "url", "body"), FOREIGN_REQUESTS)
def test_another_organizations_objects_are_not_found(enterprise, foreign, actor, method, url, body):
    # given a person of each role, or an all-scopes token, of organization A
    if actor == "token":
        client = with_token(token_for(enterprise, *Scope.values))
    else:
        client = signed_in(member_of(enterprise, actor))
    before = organization_state(foreign["organization"])

    # when they name organization B's object, and an id that exists nowhere
    foreign_response = getattr(client, method)(url.format(**foreign), body, format="json")
    missing_response = getattr(client, method)(url.format(**MISSING_IDS), body, format="json")

    # then both answers are the same, a 404 wherever the request would have reached the lookup
    assert (foreign_response.status_code, foreign_response.json()) == (
        missing_response.status_code,
        missing_response.json(),
    )
    if _allowed(actor, method, url):
        assert (foreign_response.status_code, foreign_response.json()) == (404, NOT_FOUND)
    else:
        assert foreign_response.status_code == 403
    # and nothing of B changed
    assert organization_state(foreign["organization"]) == before


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/members/not-a-number",
        "/api/v1/invitations/not-a-uuid",
        "/api/v1/invitations/12345/revoke",
        "/api/v1/tokens/0",
        "/api/v1/tokens/zzz/revoke",
        "/api/v1/audit-events/1e3",
    ],
)
def test_a_malformed_id_is_not_found(enterprise_owner, url):
    client = signed_in(enterprise_owner)

    response = client.post(url) if url.endswith("/revoke") else client.get(url)

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


def test_lists_only_show_the_acting_organizations_rows(enterprise, enterprise_owner, foreign):
    client = signed_in(enterprise_owner)

    members = client.get("/api/v1/members").json()["results"]
    tokens = client.get("/api/v1/tokens").json()["results"]
    invitations = client.get("/api/v1/invitations").json()["results"]
    events = client.get("/api/v1/audit-events").json()["results"]

    assert [m["user"]["email"] for m in members] == ["owner@blueheron.test"]
    assert (tokens, invitations, events) == ([], [], [])


# --- error shape ---------------------------------------------------------------------------------------------


def test_malformed_json_is_400(enterprise_owner):
    response = signed_in(enterprise_owner).generic(
        "PATCH", "/api/v1/organization", '{"name": "unterminated', content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert set(response.json()) == {"detail", "code"}


@pytest.mark.parametrize(
    ("url", "body", "errors"),
    [
        ("/api/v1/organization", {"name": ["a", "list"]}, {"name": ["Not a valid string."]}),
        (
            "/api/v1/organization",
            {"billing_currency": "EURO"},
            {"billing_currency": ["Ensure this field has no more than 3 characters."]},
        ),
        (
            "/api/v1/tokens",
            {"name": "ci", "scopes": "read"},
            {"scopes": ['Expected a list of items but got type "str".']},
        ),
        ("/api/v1/tokens", {"name": "ci", "scopes": []}, {"scopes": ["This list may not be empty."]}),
        (
            "/api/v1/tokens",
            {"name": "ci", "scopes": ["read"], "expires_at": "next tuesday"},
            {
                "expires_at": [
                    "Datetime has wrong format. Use one of these formats instead: "
                    "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        ("/api/v1/invitations", {"email": 42}, {"email": ["Enter a valid email address."]}),
        (
            "/api/v1/invitations",
            {"email": "x" * 300 + "@example.test"},
            {"email": ["Ensure this field has no more than 254 characters."]},
        ),
    ],
)
def test_wrong_types_and_sizes_are_400_with_field_errors(enterprise_owner, url, body, errors):
    client = signed_in(enterprise_owner)

    response = (
        client.patch(url, body, format="json")
        if url.endswith("organization")
        else client.post(url, body, format="json")
    )

    assert response.status_code == 400
    assert response.json()["detail"] == "Some fields are invalid."
    assert response.json()["errors"] == errors
    assert Invitation.objects.count() == ApiToken.objects.count() == 0


def test_a_body_that_is_not_an_object_is_400(enterprise_owner):
    response = signed_in(enterprise_owner).post("/api/v1/invitations", ["a@example.test"], format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/members/{member}", {"role": "superuser"}, "role"),
        ("/api/v1/invitations", {"email": "x@example.test", "role": "superuser"}, "role"),
        ("/api/v1/tokens", {"name": "ci", "scopes": ["read", "root"]}, "scopes"),
    ],
)
def test_unknown_enum_values_are_400(enterprise, enterprise_owner, url, body, field):
    member = Membership.objects.get(user=enterprise_owner).pk
    client = signed_in(enterprise_owner)
    before = organization_state(enterprise)

    url = url.format(member=member)
    response = client.patch(url, body, format="json") if "members" in url else client.post(url, body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["errors"]) == [field]
    assert organization_state(enterprise) == before


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("url", ["/api/v1/nothing-here", "/api/v1/members/1/promote", "/api/v1/me/", "/api/v1/"])
def test_unknown_api_paths_are_a_json_404(api_client, settings, debug, url):
    settings.DEBUG = debug

    response = api_client.post(url, {"x": 1}, format="json")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND


@override_settings(DEBUG=False)
def test_unknown_paths_outside_v1_are_a_json_404_too(api_client):
    response = api_client.get("/api/v2/anything")

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_pages_of_a_list_past_the_end_are_not_found(enterprise_owner):
    response = signed_in(enterprise_owner).get("/api/v1/members?page=9")

    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page.", "code": "not_found"}


def test_an_absurdly_large_body_is_400_not_500(enterprise, enterprise_admin, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    before = organization_state(enterprise)
    body = '{"email": "' + "x" * 2048 + '@example.test"}'

    response = signed_in(enterprise_admin).generic("POST", "/api/v1/invitations", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "The request body is too large.", "code": "request_too_large"}
    assert organization_state(enterprise) == before
