"""Members and organization settings in the browser: roles change, people leave, an owner always remains."""

from __future__ import annotations

import pytest

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import AuditEvent, Membership, Role
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.factories import member_of

pytestmark = pytest.mark.django_db


def _membership(user) -> Membership:
    return Membership.objects.get(user=user)


def test_the_members_page_lists_email_name_role_and_joined_date(enterprise, enterprise_owner, enterprise_admin):
    page = browser_as(enterprise_admin, enterprise).get("/accounts/organization/members/")

    rows = [(r["membership"].user.email, r["membership"].user.name, r["membership"].role) for r in page.context["rows"]]
    assert rows == [
        ("admin@blueheron.test", "Ada Admin", "admin"),
        ("owner@blueheron.test", "Olga Owner", "owner"),
    ]
    text = text_of(page)
    assert "Olga Owner" in text
    assert _membership(enterprise_owner).created_at.strftime("%Y-%m-%d") in text


def test_an_admin_changes_a_members_role(enterprise, enterprise_admin):
    member = member_of(enterprise, Role.MEMBER, email="mo@blueheron.test")

    response = browser_as(enterprise_admin, enterprise).post(
        f"/accounts/organization/members/{_membership(member).pk}/role/", {"role": "finance"}, follow=True
    )

    assert "mo@blueheron.test is now Finance." in text_of(response)
    assert _membership(member).role == Role.FINANCE
    event = AuditEvent.objects.get(action="membership.role_changed")
    assert (event.before, event.after) == (
        {"user": "mo@blueheron.test", "role": "member"},
        {"user": "mo@blueheron.test", "role": "finance"},
    )


def test_an_htmx_role_change_answers_with_the_updated_row(enterprise, enterprise_admin):
    member = member_of(enterprise, Role.MEMBER, email="mo@blueheron.test")
    membership = _membership(member)

    response = browser_as(enterprise_admin, enterprise).post(
        f"/accounts/organization/members/{membership.pk}/role/", {"role": "viewer"}, HTTP_HX_REQUEST="true"
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.strip().startswith(f'<tr id="member-{membership.pk}"')
    assert '<option value="viewer" selected>' in html
    assert "mo@blueheron.test is now Viewer." in text_of(response)
    assert _membership(member).role == Role.VIEWER


def test_the_last_owner_cannot_be_demoted(enterprise, enterprise_owner):
    membership = _membership(enterprise_owner)
    before = row(membership)

    response = browser_as(enterprise_owner, enterprise).post(
        f"/accounts/organization/members/{membership.pk}/role/", {"role": "admin"}, follow=True
    )

    assert "An organization must keep at least one owner." in text_of(response)
    assert row(membership) == before
    assert not AuditEvent.objects.filter(action="membership.role_changed").exists()


def test_the_last_owner_cannot_be_demoted_through_htmx_either(enterprise, enterprise_owner):
    membership = _membership(enterprise_owner)

    response = browser_as(enterprise_owner, enterprise).post(
        f"/accounts/organization/members/{membership.pk}/role/", {"role": "admin"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert "An organization must keep at least one owner." in text_of(response)
    assert _membership(enterprise_owner).role == Role.OWNER


def test_an_admin_cannot_touch_an_owner(enterprise, enterprise_owner, enterprise_admin):
    membership = _membership(enterprise_owner)
    browser = browser_as(enterprise_admin, enterprise)
    before = row(membership)

    page = browser.get("/accounts/organization/members/")
    demote = browser.post(f"/accounts/organization/members/{membership.pk}/role/", {"role": "viewer"}, follow=True)
    remove = browser.post(f"/accounts/organization/members/{membership.pk}/remove/", follow=True)

    owner_row = next(r for r in page.context["rows"] if r["membership"] == membership)
    assert (owner_row["can_change_role"], owner_row["can_remove"]) == (False, False)
    assert "Only an owner can grant or take away the owner role." in text_of(demote)
    assert "Only an owner can remove an owner." in text_of(remove)
    assert row(membership) == before


def test_an_admin_removes_a_member(enterprise, enterprise_admin):
    member = member_of(enterprise, Role.MEMBER, email="mo@blueheron.test")

    response = browser_as(enterprise_admin, enterprise).post(
        f"/accounts/organization/members/{_membership(member).pk}/remove/", follow=True
    )

    assert "mo@blueheron.test was removed." in text_of(response)
    assert not Membership.objects.filter(user=member).exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_anyone_can_leave_an_organization(enterprise, enterprise_owner, role):
    person = member_of(enterprise, role)
    browser = browser_as(person, enterprise)

    response = browser.post(f"/accounts/organization/members/{_membership(person).pk}/remove/")

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert not Membership.objects.filter(user=person).exists()
    assert SESSION_ORG_KEY not in browser.session
    assert "You left Blue Heron Robotics." in text_of(browser.get("/"))


def test_the_last_owner_cannot_leave(enterprise, enterprise_owner):
    membership = _membership(enterprise_owner)

    response = browser_as(enterprise_owner, enterprise).post(
        f"/accounts/organization/members/{membership.pk}/remove/", follow=True
    )

    assert "An organization must keep at least one owner." in text_of(response)
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_an_admin_saves_the_organization_settings(enterprise, enterprise_admin):
    browser = browser_as(enterprise_admin, enterprise)

    response = browser.post(
        "/accounts/organization/",
        {
            "name": "Blue Heron Robotics Ltd",
            "legal_name": "蓝鹭机器人有限公司",
            "tax_id": "91310000ma1k4abc2x",
            "region": "Shanghai",
            "billing_currency": "usd",
        },
        follow=True,
    )

    assert "The organization's settings were saved." in text_of(response)
    enterprise.refresh_from_db()
    assert (enterprise.name, enterprise.legal_name, enterprise.tax_id, enterprise.region) == (
        "Blue Heron Robotics Ltd",
        "蓝鹭机器人有限公司",
        "91310000MA1K4ABC2X",
        "Shanghai",
    )
    assert enterprise.billing_currency == "USD"
    event = AuditEvent.objects.get(action="organization.updated")
    assert event.before == {
        "name": "Blue Heron Robotics",
        "legal_name": "",
        "tax_id": "",
        "region": "",
        "billing_currency": "CNY",
    }
    assert event.after == {
        "name": "Blue Heron Robotics Ltd",
        "legal_name": "蓝鹭机器人有限公司",
        "tax_id": "91310000MA1K4ABC2X",
        "region": "Shanghai",
        "billing_currency": "USD",
    }


def test_saving_settings_records_only_what_changed(enterprise, enterprise_admin):
    browser = browser_as(enterprise_admin, enterprise)

    browser.post(
        "/accounts/organization/",
        {
            "name": "Blue Heron Robotics",
            "legal_name": "",
            "tax_id": "",
            "region": "Hangzhou",
            "billing_currency": "cny",
        },
    )

    event = AuditEvent.objects.get(action="organization.updated")
    assert (event.before, event.after) == ({"region": ""}, {"region": "Hangzhou"})


def test_invalid_settings_are_shown_on_the_form_and_not_saved(enterprise, enterprise_admin):
    before = row(enterprise)

    response = browser_as(enterprise_admin, enterprise).post(
        "/accounts/organization/", {"name": "", "tax_id": "no spaces!", "billing_currency": "EURO"}
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"name", "tax_id", "billing_currency"}
    assert row(enterprise) == before


def test_the_settings_page_shows_what_only_the_platform_decides(enterprise, enterprise_admin):
    enterprise.verified = True
    enterprise.credit_limit = "50000.00"
    enterprise.save()

    page = browser_as(enterprise_admin, enterprise).get("/accounts/organization/")

    text = text_of(page)
    assert "Kind Enterprise" in text
    assert "Short name (slug) blue-heron-robotics" in text
    assert "Verified Yes" in text
    assert "Credit limit 50000.00 CNY" in text
    assert 'name="credit_limit"' not in page.content.decode()
    assert 'name="verified"' not in page.content.decode()


def test_changing_my_own_role_through_htmx_reloads_the_whole_page(enterprise, enterprise_owner, enterprise_admin):
    membership = _membership(enterprise_admin)
    browser = browser_as(enterprise_admin, enterprise)

    response = browser.post(
        f"/accounts/organization/members/{membership.pk}/role/", {"role": "member"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 204
    assert response["HX-Refresh"] == "true"
    assert _membership(enterprise_admin).role == Role.MEMBER
    reloaded = browser.get("/accounts/organization/members/")
    assert "admin@blueheron.test is now Member." in text_of(reloaded)
    assert "/role/" not in reloaded.content.decode()
