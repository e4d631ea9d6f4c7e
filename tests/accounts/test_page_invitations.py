"""Invitations in the browser: an admin invites, the invitee joins through the e-mailed link, once."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import AuditEvent, Invitation, Membership, Role, User
from accounts.services import invitation_create
from tests.accounts.page_helpers import browser_as, table_counts, text_of
from tests.factories import PASSWORD, UserFactory, actor_for, member_of

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver(/accounts/invitations/[A-Za-z0-9_-]+/)")


def _invite(actor_user, organization, email="new.hire@blueheron.test", role=Role.FINANCE, **kwargs) -> str:
    issued = invitation_create(actor=actor_for(actor_user, organization), email=email, role=role, **kwargs)
    return f"/accounts/invitations/{issued.secret}/"


def test_an_admin_invites_and_a_new_person_joins_through_the_mailed_link(
    client, enterprise, enterprise_admin, mailoutbox, django_capture_on_commit_callbacks
):
    admin = browser_as(enterprise_admin, enterprise)

    with django_capture_on_commit_callbacks(execute=True):
        sent = admin.post(
            "/accounts/organization/invitations/new/", {"email": "New.Hire@BlueHeron.test", "role": "finance"}
        )

    assert sent.status_code == 302
    assert "An invitation was sent to new.hire@blueheron.test." in text_of(admin.get(sent["Location"]))
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["new.hire@blueheron.test"]
    link = LINK.search(mailoutbox[0].body).group(1)

    page = client.get(link)
    joined = client.post(
        link,
        {
            "name": "Nina Hire",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            "language": "en",
        },
    )

    assert page.status_code == 200
    assert "Join Blue Heron Robotics" in text_of(page)
    assert "Finance" in text_of(page)
    assert joined.status_code == 302
    assert joined["Location"] == "/"
    user = User.objects.get(email="new.hire@blueheron.test")
    assert user.name == "Nina Hire"
    assert Membership.objects.get(user=user).organization == enterprise
    assert Membership.objects.get(user=user).role == Role.FINANCE
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session[SESSION_ORG_KEY] == str(enterprise.pk)
    invitation = Invitation.objects.get()
    assert (invitation.accepted_by, invitation.accepted_at is not None) == (user, True)
    assert AuditEvent.objects.filter(action="membership.joined", organization=enterprise, actor=user).count() == 1
    assert client.get(link).status_code == 404


def test_the_invitations_page_lists_each_status(enterprise, enterprise_admin):
    _invite(enterprise_admin, enterprise, email="pending@x.test")
    _invite(enterprise_admin, enterprise, email="expired@x.test", now=timezone.now() - timedelta(days=30))
    revoked = Invitation.objects.get(
        pk=invitation_create(
            actor=actor_for(enterprise_admin, enterprise), email="revoked@x.test", role=Role.MEMBER
        ).invitation.pk
    )
    admin = browser_as(enterprise_admin, enterprise)
    admin.post(f"/accounts/organization/invitations/{revoked.pk}/revoke/")
    invitee = UserFactory(email="accepted@x.test")
    browser_as(invitee).post(_invite(enterprise_admin, enterprise, email="accepted@x.test"))

    page = admin.get("/accounts/organization/invitations/")

    statuses = {r["invitation"].email: (r["status"], str(r["status_label"])) for r in page.context["rows"]}
    assert statuses == {
        "pending@x.test": ("pending", "Pending"),
        "expired@x.test": ("expired", "Expired"),
        "revoked@x.test": ("revoked", "Revoked"),
        "accepted@x.test": ("accepted", "Accepted"),
    }


def test_a_signed_in_invitee_accepts_with_one_click_and_acts_as_the_new_organization(
    enterprise, enterprise_admin, center
):
    invitee = member_of(center, Role.OWNER, email="new.hire@blueheron.test")
    link = _invite(enterprise_admin, enterprise, role=Role.MEMBER)
    browser = browser_as(invitee, center)

    page = browser.get(link)
    accepted = browser.post(link)

    assert "Accept the invitation" in text_of(page)
    assert accepted.status_code == 302
    assert Membership.objects.get(user=invitee, organization=enterprise).role == Role.MEMBER
    assert browser.session[SESSION_ORG_KEY] == str(enterprise.pk)
    assert "You joined Blue Heron Robotics as Member." in text_of(browser.get("/"))


def test_someone_signed_in_with_another_address_cannot_accept(enterprise, enterprise_admin, center):
    stranger = member_of(center, Role.OWNER, email="stranger@lakeside.test")
    link = _invite(enterprise_admin, enterprise)
    browser = browser_as(stranger, center)

    page = browser.get(link)
    refused = browser.post(link, follow=True)

    assert "This invitation was sent to new.hire@blueheron.test, but you are logged in as stranger@lakeside.test." in (
        text_of(page)
    )
    assert "This invitation was sent to new.hire@blueheron.test. Log in with that address to accept it." in (
        text_of(refused)
    )
    assert not Membership.objects.filter(user=stranger, organization=enterprise).exists()
    assert Invitation.objects.get().accepted_at is None


def test_an_existing_account_is_told_to_log_in_and_comes_back_to_the_invitation(client, enterprise, enterprise_admin):
    UserFactory(email="new.hire@blueheron.test")
    link = _invite(enterprise_admin, enterprise)
    before = table_counts()

    page = client.get(link)
    attempt = client.post(
        link,
        {
            "name": "Dup",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            "language": "en",
        },
    )
    after_attempt = table_counts()
    login = client.post(f"/accounts/login/?next={link}", {"username": "new.hire@blueheron.test", "password": PASSWORD})

    assert f'href="/accounts/login/?next={link.replace("/", "%2F")}"' in page.content.decode()
    assert attempt.status_code == 200
    assert "An account with this e-mail address already exists." in text_of(attempt)
    assert after_attempt == before
    assert login["Location"] == link


def test_an_expired_link_shows_the_invalid_page_and_creates_nothing(client, enterprise, enterprise_admin):
    link = _invite(enterprise_admin, enterprise)
    before = table_counts()

    with time_machine.travel(timezone.now() + timedelta(days=8)):
        page = client.get(link)
        attempt = client.post(
            link,
            {
                "name": "Late Comer",
                "password1": "a-long-enough-passphrase",
                "password2": "a-long-enough-passphrase",
                "language": "en",
            },
        )

    assert page.status_code == 404
    assert "This invitation link does not work" in text_of(page)
    assert attempt.status_code == 404
    assert table_counts() == before
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("secret", ["nonsense", "a" * 43])
def test_an_unknown_link_shows_the_invalid_page(client, secret):
    response = client.get(f"/accounts/invitations/{secret}/")

    assert response.status_code == 404
    assert "The link is invalid, has expired, was revoked or has already been used." in text_of(response)


def test_a_revoked_link_no_longer_works(client, enterprise, enterprise_admin):
    link = _invite(enterprise_admin, enterprise)
    invitation = Invitation.objects.get()

    revoked = browser_as(enterprise_admin, enterprise).post(
        f"/accounts/organization/invitations/{invitation.pk}/revoke/", follow=True
    )

    assert "The invitation to new.hire@blueheron.test was revoked." in text_of(revoked)
    assert client.get(link).status_code == 404


def test_inviting_someone_already_in_the_organization_shows_the_error_on_the_form(
    enterprise, enterprise_admin, mailoutbox
):
    member_of(enterprise, Role.MEMBER, email="already@blueheron.test")
    before = table_counts()

    response = browser_as(enterprise_admin, enterprise).post(
        "/accounts/organization/invitations/new/", {"email": "already@blueheron.test", "role": "member"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Already a member of this organization."]}
    assert table_counts() == before
    assert mailoutbox == []


def test_only_an_owner_is_offered_the_owner_role_in_invitations(enterprise, enterprise_admin, enterprise_owner):
    as_admin = browser_as(enterprise_admin, enterprise).get("/accounts/organization/invitations/")
    as_owner = browser_as(enterprise_owner, enterprise).get("/accounts/organization/invitations/")

    assert [c[0] for c in as_admin.context["form"].fields["role"].choices] == ["admin", "member", "finance", "viewer"]
    assert [c[0] for c in as_owner.context["form"].fields["role"].choices] == Role.values
