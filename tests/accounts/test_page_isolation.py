"""Tenants are isolated and roles are enforced on every page: a foreign object is a 404 for every role, an admin
action is a 403 for everyone else, a POST without a CSRF token is refused, and none of them change anything."""

from __future__ import annotations

import pytest

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Role
from accounts.services import invitation_create
from tests.accounts.page_helpers import browser_as, row, table_counts, text_of
from tests.factories import actor_for, member_of, token_for

pytestmark = pytest.mark.django_db

NON_ADMIN_ROLES = [Role.MEMBER, Role.FINANCE, Role.VIEWER]


@pytest.fixture
def foreign(other_enterprise, django_capture_on_commit_callbacks):
    """Organization B's people, invitation and token, which no one of organization A may touch."""
    owner = member_of(other_enterprise, Role.OWNER, email="owner@qingluo.test")
    member = member_of(other_enterprise, Role.MEMBER, email="member@qingluo.test")
    token_for(other_enterprise, "read")
    with django_capture_on_commit_callbacks(execute=False):
        invitation_create(actor=actor_for(owner, other_enterprise), email="new@qingluo.test", role=Role.MEMBER)
    return {
        "owner": Membership.objects.get(user=owner),
        "member": Membership.objects.get(user=member),
        "token": ApiToken.objects.get(organization=other_enterprise),
        "invitation": Invitation.objects.get(organization=other_enterprise),
    }


def _foreign_posts(foreign) -> list[tuple[str, dict]]:
    return [
        (f"/accounts/organization/members/{foreign['member'].pk}/role/", {"role": Role.ADMIN}),
        (f"/accounts/organization/members/{foreign['owner'].pk}/role/", {"role": Role.VIEWER}),
        (f"/accounts/organization/members/{foreign['member'].pk}/remove/", {}),
        (f"/accounts/organization/members/{foreign['owner'].pk}/remove/", {}),
        (f"/accounts/organization/invitations/{foreign['invitation'].pk}/revoke/", {}),
        (f"/accounts/organization/tokens/{foreign['token'].pk}/revoke/", {}),
    ]


@pytest.mark.parametrize("role", Role.values)
def test_another_organizations_members_invitations_and_tokens_are_not_found_for_every_role(enterprise, foreign, role):
    browser = browser_as(member_of(enterprise, role), enterprise)
    before = {name: row(obj) for name, obj in foreign.items()}
    counts = table_counts()

    statuses = [browser.post(url, data).status_code for url, data in _foreign_posts(foreign)]

    assert statuses == [404] * 6
    assert {name: row(obj) for name, obj in foreign.items()} == before
    assert table_counts() == counts


@pytest.mark.parametrize("role", Role.values)
def test_the_pages_of_my_organization_never_list_another_organizations_objects(enterprise, foreign, role):
    browser = browser_as(member_of(enterprise, role), enterprise)

    pages = [
        browser.get(url)
        for url in (
            "/accounts/organization/members/",
            "/accounts/organization/invitations/",
            "/accounts/organization/tokens/",
            "/accounts/organization/",
        )
    ]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        assert "qingluo.test" not in html
        assert foreign["token"].prefix not in html
        assert "Qingluo Biotech" not in html


def test_the_audit_log_shows_only_my_organizations_events(enterprise, enterprise_admin, foreign):
    browser = browser_as(enterprise_admin, enterprise)
    browser.post(
        "/accounts/organization/tokens/new/", {"submission": "form-5", "name": "sync", "scopes": ["inventory"]}
    )

    page = browser.get("/accounts/organization/audit/")

    events = list(page.context["page"].object_list)
    assert [e.action for e in events] == ["api_token.created"]
    assert AuditEvent.objects.filter(organization=foreign["owner"].organization).count() > 0
    assert "qingluo.test" not in page.content.decode()


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_admin_actions_are_forbidden_to_other_roles_and_change_nothing(
    enterprise, enterprise_owner, role, django_capture_on_commit_callbacks
):
    person = member_of(enterprise, role)
    colleague = Membership.objects.get(user=member_of(enterprise, Role.MEMBER, email="colleague@blueheron.test"))
    token = ApiToken.objects.get(prefix=token_for(enterprise, "read").split("_")[1])
    with django_capture_on_commit_callbacks(execute=False):
        invitation = invitation_create(
            actor=actor_for(enterprise_owner, enterprise), email="new@blueheron.test", role=Role.MEMBER
        ).invitation
    browser = browser_as(person, enterprise)
    watched = {"colleague": colleague, "token": token, "invitation": invitation, "org": enterprise}
    before = {name: row(obj) for name, obj in watched.items()}
    counts = table_counts()

    responses = {
        "role": browser.post(f"/accounts/organization/members/{colleague.pk}/role/", {"role": Role.ADMIN}),
        "remove": browser.post(f"/accounts/organization/members/{colleague.pk}/remove/"),
        "invite": browser.post("/accounts/organization/invitations/new/", {"email": "x@y.test", "role": "member"}),
        "revoke_invitation": browser.post(f"/accounts/organization/invitations/{invitation.pk}/revoke/"),
        "new_token_page": browser.get("/accounts/organization/tokens/new/"),
        "new_token": browser.post(
            "/accounts/organization/tokens/new/", {"submission": "form-6", "name": "x", "scopes": ["read"]}
        ),
        "revoke_token": browser.post(f"/accounts/organization/tokens/{token.pk}/revoke/"),
        "settings": browser.post("/accounts/organization/", {"name": "Renamed", "billing_currency": "USD"}),
        "audit": browser.get("/accounts/organization/audit/"),
    }

    assert {name: r.status_code for name, r in responses.items()} == {name: 403 for name in responses}
    assert "Not allowed" in text_of(responses["role"])
    assert {name: row(obj) for name, obj in watched.items()} == before
    assert table_counts() == counts


@pytest.mark.parametrize("role", NON_ADMIN_ROLES)
def test_other_roles_see_the_lists_without_admin_controls(enterprise, enterprise_owner, role):
    token_for(enterprise, "read")
    browser = browser_as(member_of(enterprise, role), enterprise)

    tokens = browser.get("/accounts/organization/tokens/").content.decode()
    members = browser.get("/accounts/organization/members/").content.decode()
    settings_page = browser.get("/accounts/organization/")

    assert "/revoke/" not in tokens
    assert "/accounts/organization/tokens/new/" not in tokens
    assert "/role/" not in members
    assert settings_page.context["form"] is None
    assert "Only the organization's owners and admins can change these details." in text_of(settings_page)


def test_a_post_without_a_csrf_token_is_refused_and_changes_nothing(enterprise, enterprise_admin):
    secret = token_for(enterprise, "read")
    token = ApiToken.objects.get(prefix=secret.split("_")[1])
    browser = browser_as(enterprise_admin, enterprise, enforce_csrf_checks=True)
    before = row(token), row(enterprise)
    counts = table_counts()

    revoke = browser.post(f"/accounts/organization/tokens/{token.pk}/revoke/")
    rename = browser.post("/accounts/organization/", {"name": "Renamed", "billing_currency": "USD"})
    create = browser.post(
        "/accounts/organization/tokens/new/", {"submission": "form-7", "name": "x", "scopes": ["read"]}
    )

    assert (revoke.status_code, rename.status_code, create.status_code) == (403, 403, 403)
    assert "The form expired" in text_of(revoke)
    assert (row(token), row(enterprise)) == before
    assert table_counts() == counts


def test_a_post_with_the_pages_csrf_token_goes_through(enterprise, enterprise_admin):
    secret = token_for(enterprise, "read")
    token = ApiToken.objects.get(prefix=secret.split("_")[1])
    browser = browser_as(enterprise_admin, enterprise, enforce_csrf_checks=True)
    page = browser.get("/accounts/organization/tokens/")
    csrf = page.context["csrf_token"]

    response = browser.post(f"/accounts/organization/tokens/{token.pk}/revoke/", {"csrfmiddlewaretoken": str(csrf)})

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


@pytest.mark.parametrize(
    "url",
    [
        "/accounts/organization/members/{id}/role/",
        "/accounts/organization/members/{id}/remove/",
        "/accounts/organization/tokens/{id}/revoke/",
        "/accounts/organization/invitations/{id}/revoke/",
        "/accounts/switch/",
        "/accounts/organization/invitations/new/",
    ],
)
def test_mutating_actions_refuse_get(enterprise, enterprise_admin, url):
    membership = Membership.objects.get(user=enterprise_admin)
    browser = browser_as(enterprise_admin, enterprise)

    response = browser.get(url.format(id=membership.pk))

    assert response.status_code == 405
