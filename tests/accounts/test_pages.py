"""Browser pages: sign-up, login and logout, password reset, switching organization and language."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.test import Client

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import AuditEvent, Membership, Organization, OrganizationKind, Role, User
from tests.accounts.page_helpers import browser_as, table_counts, text_of
from tests.factories import PASSWORD, UserFactory, member_of

pytestmark = pytest.mark.django_db

SIGNUP = {
    "name": "Mei Chen",
    "email": "Mei.Chen@Lakeside.test",
    "password1": "a-long-enough-passphrase",
    "password2": "a-long-enough-passphrase",
    "language": "zh-hans",
    "organization_kind": "center",
    "organization_name": "Lakeside Compute",
}


# --- sign-up --------------------------------------------------------------------------------------------------


def test_signup_creates_the_person_the_organization_and_the_owner_membership_and_signs_in(client):
    response = client.post("/accounts/signup/", SIGNUP)

    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get()
    assert (user.email, user.name, user.preferred_language) == ("mei.chen@lakeside.test", "Mei Chen", "zh-hans")
    assert user.check_password("a-long-enough-passphrase")
    organization = Organization.objects.get()
    assert (organization.kind, organization.name, organization.verified) == ("center", "Lakeside Compute", False)
    assert list(Membership.objects.values_list("user", "organization", "role")) == [
        (user.pk, organization.pk, Role.OWNER)
    ]
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.session[SESSION_ORG_KEY] == str(organization.pk)
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    home = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert "Lakeside Compute" in text_of(home)


def test_signup_with_an_address_already_registered_shows_the_error_and_creates_nothing(client):
    UserFactory(email="mei.chen@lakeside.test")
    before = table_counts()

    response = client.post("/accounts/signup/", SIGNUP)

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["An account with this e-mail address already exists."]}
    assert "An account with this e-mail address already exists." in text_of(response)
    assert table_counts() == before
    assert "_auth_user_id" not in client.session


def test_signup_with_a_weak_password_shows_the_validators_verdict_on_the_password_field(client):
    response = client.post("/accounts/signup/", {**SIGNUP, "password1": "12345678", "password2": "12345678"})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "password1": [
            "This password is too short. It must contain at least 10 characters.",
            "This password is too common.",
            "This password is entirely numeric.",
        ]
    }
    assert table_counts() == {k: 0 for k in table_counts()}


def test_signup_with_two_different_passwords_is_refused_before_anything_is_created(client):
    response = client.post("/accounts/signup/", {**SIGNUP, "password2": "another-long-passphrase"})

    assert response.context["form"].errors == {"password2": ["The two passwords do not match."]}
    assert User.objects.count() == 0


def test_signup_never_offers_or_accepts_the_operator_kind(client):
    page = client.get("/accounts/signup/")
    response = client.post("/accounts/signup/", {**SIGNUP, "organization_kind": OrganizationKind.OPERATOR})

    offered = [value for value, _label in page.context["form"].fields["organization_kind"].choices]
    assert offered == ["center", "enterprise", "university", "institute", "sponsor"]
    assert response.status_code == 200
    assert "organization_kind" in response.context["form"].errors
    assert Organization.objects.count() == 0


# --- login and logout -----------------------------------------------------------------------------------------


def test_login_signs_in_records_the_login_for_each_organization_and_restores_the_language(client, enterprise):
    user = member_of(enterprise, Role.MEMBER, email="li.wei@blueheron.test", preferred_language="zh-hans")

    response = client.post(
        "/accounts/login/", {"username": "Li.Wei@BlueHeron.test", "password": PASSWORD}, REMOTE_ADDR="203.0.113.9"
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    assert list(AuditEvent.objects.values_list("action", "organization", "actor", "ip_address")) == [
        ("auth.login", enterprise.pk, user.pk, "203.0.113.9")
    ]


def test_a_failed_login_shows_an_error_and_is_recorded_for_the_address_organizations(client, enterprise):
    user = member_of(enterprise, Role.MEMBER, email="li.wei@blueheron.test")

    response = client.post(
        "/accounts/login/", {"username": "li.wei@blueheron.test", "password": "wrong"}, REMOTE_ADDR="198.51.100.7"
    )

    assert response.status_code == 200
    assert "The e-mail address or the password is wrong." in text_of(response)
    assert "_auth_user_id" not in client.session
    assert list(AuditEvent.objects.values_list("action", "organization", "actor", "actor_label", "ip_address")) == [
        ("auth.login_failed", enterprise.pk, user.pk, "li.wei@blueheron.test", "198.51.100.7")
    ]


def test_a_failed_login_for_an_unknown_address_is_recorded_without_an_organization(client):
    client.post("/accounts/login/", {"username": "nobody@nowhere.test", "password": "wrong"})

    assert list(AuditEvent.objects.values_list("action", "organization", "actor", "actor_label")) == [
        ("auth.login_failed", None, None, "nobody@nowhere.test")
    ]


def test_login_follows_next_to_a_page_of_this_site_only(client, enterprise):
    member_of(enterprise, Role.MEMBER, email="li.wei@blueheron.test")
    credentials = {"username": "li.wei@blueheron.test", "password": PASSWORD}

    inside = client.post("/accounts/login/?next=/accounts/organization/members/", credentials)
    client.logout()
    outside = client.post("/accounts/login/?next=https://evil.test/", credentials)

    assert inside["Location"] == "/accounts/organization/members/"
    assert outside["Location"] == "/"


def test_pages_that_need_a_person_send_anonymous_visitors_to_login(client):
    response = client.get("/accounts/organization/members/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/organization/members/"


def test_logout_is_by_post_only(client, enterprise):
    user = member_of(enterprise, Role.MEMBER)
    client.force_login(user)

    by_get = client.get("/accounts/logout/")
    still_in = client.session.get("_auth_user_id")
    by_post = client.post("/accounts/logout/")

    assert by_get.status_code == 405
    assert still_in == str(user.pk)
    assert by_post.status_code == 302
    assert by_post["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


# --- password reset -------------------------------------------------------------------------------------------


def test_password_reset_mails_a_link_that_sets_a_new_password(client, enterprise, mailoutbox):
    user = member_of(enterprise, Role.MEMBER, email="li.wei@blueheron.test")

    sent = client.post("/accounts/password-reset/", {"email": "LI.WEI@blueheron.test"})

    assert sent.status_code == 302
    assert sent["Location"] == "/accounts/password-reset/sent/"
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["li.wei@blueheron.test"]
    assert mail.subject == "Reset your password on the AI Computing Network"
    link = re.search(r"http://testserver(/accounts/password-reset/[^/\s]+/[^/\s]+/)", mail.body).group(1)

    form_page = client.get(link, follow=True)
    form_url = form_page.redirect_chain[-1][0]
    done = client.post(form_url, {"new_password1": "a-brand-new-passphrase", "new_password2": "a-brand-new-passphrase"})

    assert form_page.context["validlink"] is True
    assert done.status_code == 302
    assert done["Location"] == "/accounts/password-reset/done/"
    user.refresh_from_db()
    assert user.check_password("a-brand-new-passphrase")
    assert list(AuditEvent.objects.values_list("action", "organization", "actor")) == [
        ("auth.password_reset", enterprise.pk, user.pk)
    ]
    reused = client.get(link, follow=True)
    assert reused.context["validlink"] is False


def test_password_reset_for_an_unknown_address_looks_the_same_and_sends_nothing(client, mailoutbox):
    response = client.post("/accounts/password-reset/", {"email": "nobody@nowhere.test"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password-reset/sent/"
    assert mailoutbox == []


# --- switching organization -----------------------------------------------------------------------------------


def test_the_switcher_lists_my_organizations_and_switches_to_one_i_belong_to(enterprise, center):
    user = member_of(enterprise, Role.OWNER)
    Membership.objects.create(user=user, organization=center, role=Role.VIEWER)
    browser = browser_as(user, enterprise)

    page = browser.get("/")
    response = browser.post(
        "/accounts/switch/", {"organization": str(center.pk), "next": "/accounts/organization/members/"}
    )

    assert [m.organization.name for m in page.context["my_memberships"]] == [
        "Blue Heron Robotics",
        "Lakeside AI Computing Center",
    ]
    assert response.status_code == 302
    assert response["Location"] == "/accounts/organization/members/"
    assert browser.session[SESSION_ORG_KEY] == str(center.pk)
    home = browser.get("/")
    assert home.context["actor"].organization == center
    assert home.context["actor"].role == Role.VIEWER


@pytest.mark.parametrize("target", ["other", "missing", "garbage"])
def test_the_switcher_refuses_an_organization_i_do_not_belong_to(enterprise, other_enterprise, target):
    user = member_of(enterprise, Role.OWNER)
    browser = browser_as(user, enterprise)
    value = {
        "other": str(other_enterprise.pk),
        "missing": "00000000-0000-0000-0000-000000000000",
        "garbage": "not-a-uuid",
    }[target]

    response = browser.post("/accounts/switch/", {"organization": value})

    assert response.status_code == 404
    assert browser.session[SESSION_ORG_KEY] == str(enterprise.pk)


def test_the_switcher_never_redirects_off_site(enterprise):
    user = member_of(enterprise, Role.OWNER)
    browser = browser_as(user, enterprise)

    response = browser.post("/accounts/switch/", {"organization": str(enterprise.pk), "next": "//evil.test/"})

    assert response["Location"] == "/"


# --- language -------------------------------------------------------------------------------------------------


def test_choosing_a_language_sets_the_cookie_and_remembers_it_for_a_signed_in_person(enterprise):
    user = member_of(enterprise, Role.MEMBER)
    browser = browser_as(user)

    response = browser.post("/i18n/setlang/", {"language": "zh-hans", "next": "/accounts/organization/"})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/organization/"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    user.refresh_from_db()
    assert user.preferred_language == "zh-hans"


def test_an_anonymous_visitor_can_choose_a_language_too():
    client = Client()

    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/accounts/login/"})

    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    assert "登录" in text_of(client.get("/accounts/login/"))


def test_an_unknown_language_changes_nothing(enterprise):
    user = member_of(enterprise, Role.MEMBER)
    browser = browser_as(user)

    response = browser.post("/i18n/setlang/", {"language": "xx", "next": "/"})

    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies
    user.refresh_from_db()
    assert user.preferred_language == "en"


# --- home and the person without an organization ----------------------------------------------------------------


def test_home_greets_the_person_as_their_acting_organization_without_invented_figures(enterprise):
    user = member_of(enterprise, Role.ADMIN, name="Ada Lovelace")

    response = browser_as(user).get("/")

    text = text_of(response)
    assert "Hello, Ada" in text
    assert "You are acting as Blue Heron Robotics (Enterprise) with the role Admin." in text
    assert "Create an API token" in text
    assert "Audit log" in text


def test_home_hides_admin_links_from_a_viewer(enterprise):
    user = member_of(enterprise, Role.VIEWER)

    response = browser_as(user).get("/")

    assert "/accounts/organization/audit/" not in response.content.decode()
    assert "/accounts/organization/tokens/new/" not in response.content.decode()


def test_a_person_without_an_organization_is_offered_to_create_one(client):
    user = UserFactory()
    client.force_login(user)

    home = client.get("/")
    members = client.get("/accounts/organization/members/")
    created = client.post("/accounts/organizations/new/", {"kind": "university", "name": "Hillside University"})

    assert "You are not part of an organization yet" in text_of(home)
    assert members.status_code == 200
    assert "You are not part of an organization yet" in text_of(members)
    assert created.status_code == 302
    organization = Organization.objects.get()
    assert (organization.kind, organization.name) == ("university", "Hillside University")
    assert Membership.objects.get().role == Role.OWNER
    assert client.session[SESSION_ORG_KEY] == str(organization.pk)


def test_a_person_without_an_organization_cannot_post_to_organization_actions(client):
    user = UserFactory()
    client.force_login(user)
    before = table_counts()

    response = client.post("/accounts/organization/invitations/new/", {"email": "x@y.test", "role": "member"})

    assert response.status_code == 403
    assert table_counts() == before
