"""The Django admin for platform staff: every accounts model is there, secrets and the audit log are read-only."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Role, User
from accounts.services import invitation_create
from tests.factories import UserFactory, actor_for, member_of, token_for

pytestmark = pytest.mark.django_db

# The user form carries the memberships inline: its management form must be posted, even empty.
NO_INLINE_ROWS = {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}


@pytest.fixture
def staff(db) -> Client:
    user = UserFactory(email="root@platform.test", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_every_accounts_page_of_the_admin_opens(staff, enterprise, enterprise_owner):
    token_for(enterprise, "read")
    invitation_create(actor=actor_for(enterprise_owner, enterprise), email="x@blueheron.test", role=Role.MEMBER)
    membership = Membership.objects.get(user=enterprise_owner)
    objects = {
        "user": enterprise_owner.pk,
        "organization": enterprise.pk,
        "membership": membership.pk,
        "invitation": Invitation.objects.get().pk,
        "apitoken": ApiToken.objects.get().pk,
        "auditevent": AuditEvent.objects.first().pk,
    }

    for model, pk in objects.items():
        assert staff.get(f"/admin/accounts/{model}/").status_code == 200, model
        assert staff.get(f"/admin/accounts/{model}/{pk}/change/").status_code == 200, model
    assert staff.get("/admin/accounts/user/add/").status_code == 200


def test_tokens_and_invitations_show_hashes_only_and_cannot_be_added_here(staff, enterprise):
    secret = token_for(enterprise, "read")
    token = ApiToken.objects.get()

    page = staff.get(f"/admin/accounts/apitoken/{token.pk}/change/").content.decode()

    assert secret not in page
    assert token.token_hash in page
    assert 'name="token_hash"' not in page
    assert staff.get("/admin/accounts/apitoken/add/").status_code == 403
    assert staff.get("/admin/accounts/invitation/add/").status_code == 403


def test_the_audit_log_cannot_be_added_to_changed_or_deleted_in_the_admin(staff, enterprise, enterprise_owner):
    event = AuditEvent.objects.create(organization=enterprise, actor=enterprise_owner, action="auth.login")

    add = staff.get("/admin/accounts/auditevent/add/")
    change = staff.post(f"/admin/accounts/auditevent/{event.pk}/change/", {"action": "tampered"})
    delete = staff.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"})

    assert (add.status_code, change.status_code, delete.status_code) == (403, 403, 403)
    event.refresh_from_db()
    assert event.action == "auth.login"


def test_staff_add_a_person_with_a_lower_cased_email_that_can_log_in(staff):
    response = staff.post(
        "/admin/accounts/user/add/",
        {
            "email": "New.Staff@Platform.test",
            "name": "New Staff",
            "usable_password": "true",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            **NO_INLINE_ROWS,
        },
    )

    assert response.status_code == 302
    user = User.objects.get(name="New Staff")
    assert user.email == "new.staff@platform.test"
    assert Client().login(username="NEW.STAFF@platform.test", password="a-long-enough-passphrase")


def test_the_admin_refuses_a_second_account_for_an_address_in_another_case(staff, enterprise):
    member_of(enterprise, Role.MEMBER, email="taken@blueheron.test")

    response = staff.post(
        "/admin/accounts/user/add/",
        {
            "email": "TAKEN@blueheron.test",
            "name": "Dup",
            "usable_password": "true",
            "password1": "a-long-enough-passphrase",
            "password2": "a-long-enough-passphrase",
            **NO_INLINE_ROWS,
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"email": ["A person with this e-mail address already exists."]}
    assert User.objects.filter(email__iexact="taken@blueheron.test").count() == 1


def test_the_admin_is_linked_from_the_navigation_for_staff_only(staff, enterprise):
    viewer = member_of(enterprise, Role.OWNER)
    client = Client()
    client.force_login(viewer)

    assert 'href="/admin/"' in staff.get("/").content.decode()
    assert 'href="/admin/"' not in client.get("/").content.decode()


def test_staff_log_in_through_the_audited_login_page(client):
    response = client.get("/admin/login/?next=/admin/accounts/user/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/admin/accounts/user/"


def test_a_signed_in_person_who_is_not_staff_is_refused_the_admin(enterprise):
    client = Client()
    client.force_login(member_of(enterprise, Role.OWNER))

    response = client.get("/admin/", follow=True)

    assert response.status_code == 403
