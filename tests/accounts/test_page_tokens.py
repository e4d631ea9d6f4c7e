"""API tokens in the browser: the secret is shown once, in the creating response only, and stored hashed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import RequestFactory
from rest_framework.exceptions import AuthenticationFailed

from accounts.authentication import BearerTokenAuthentication
from accounts.models import ApiToken, AuditEvent, Scope
from accounts.secrets import hash_secret
from tests.accounts.page_helpers import browser_as, row, table_counts, text_of
from tests.factories import token_for

pytestmark = pytest.mark.django_db

SECRET = re.compile(r'id="token-secret" value="([^"]+)"')


def test_creating_a_token_shows_its_secret_once_and_stores_only_its_hash(enterprise, enterprise_admin):
    browser = browser_as(enterprise_admin, enterprise)

    response = browser.post(
        "/accounts/organization/tokens/new/",
        {"submission": "form-1", "name": "inventory sync", "scopes": ["inventory", "read"], "expires_on": "2099-01-31"},
    )

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = SECRET.search(response.content.decode()).group(1)
    token = ApiToken.objects.get()
    assert secret.startswith(f"cn_{token.prefix}_")
    assert (token.organization, token.name, token.scopes, token.created_by) == (
        enterprise,
        "inventory sync",
        ["inventory", "read"],
        enterprise_admin,
    )
    assert token.expires_at == datetime(2099, 1, 31, tzinfo=UTC)
    assert token.token_hash == hash_secret(secret)
    assert all(secret not in str(value) for value in row(token).values())
    assert all(secret not in str((e.before, e.after, e.actor_label)) for e in AuditEvent.objects.all())
    assert secret not in str(dict(browser.session))
    assert "Copy the secret now. It is shown only this once" in text_of(response)
    assert 'data-copy-target="token-secret"' in response.content.decode()

    listing = browser.get("/accounts/organization/tokens/")
    assert secret not in listing.content.decode()
    assert token.prefix in listing.content.decode()

    request = RequestFactory().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
    _user, actor = BearerTokenAuthentication().authenticate(request)
    assert (actor.organization, actor.token, actor.scopes) == (enterprise, token, frozenset({"inventory", "read"}))


def test_the_token_form_shows_the_services_refusals_on_its_fields(enterprise, enterprise_admin):
    browser = browser_as(enterprise_admin, enterprise)

    with time_machine.travel(datetime(2026, 11, 3, 12, 0, tzinfo=UTC)):
        past = browser.post(
            "/accounts/organization/tokens/new/",
            {"submission": "form-2", "name": "late", "scopes": ["read"], "expires_on": "2026-11-03"},
        )
    no_scope = browser.post(
        "/accounts/organization/tokens/new/", {"submission": "form-3", "name": "nothing", "scopes": []}
    )
    bad_scope = browser.post(
        "/accounts/organization/tokens/new/", {"submission": "form-4", "name": "odd", "scopes": ["root"]}
    )

    assert past.status_code == 200
    assert past.context["form"].errors == {"expires_on": ["Must lie in the future."]}
    assert no_scope.context["form"].errors == {"scopes": ["Choose at least one scope."]}
    assert "scopes" in bad_scope.context["form"].errors
    assert ApiToken.objects.count() == 0
    assert "token-secret" not in past.content.decode()


def test_the_token_form_offers_every_scope(enterprise, enterprise_admin):
    page = browser_as(enterprise_admin, enterprise).get("/accounts/organization/tokens/new/")

    html = page.content.decode()
    assert [c[0] for c in page.context["form"].fields["scopes"].choices] == Scope.values
    for index, scope in enumerate(Scope.values):
        assert f'name="scopes" value="{scope}" id="id_scopes_{index}"' in html
    assert 'id="id_name"' in html
    assert 'id="id_expires_on"' in html


def test_revoking_a_token_lists_it_as_revoked_and_the_api_refuses_it(enterprise, enterprise_admin):
    secret = token_for(enterprise, "read")
    token = ApiToken.objects.get()
    browser = browser_as(enterprise_admin, enterprise)

    response = browser.post(f"/accounts/organization/tokens/{token.pk}/revoke/", follow=True)

    assert "The token “test token” was revoked." in text_of(response)
    token.refresh_from_db()
    assert token.revoked_at is not None
    listing = browser.get("/accounts/organization/tokens/")
    assert [(r["token"], r["status"]) for r in listing.context["rows"]] == [(token, "revoked")]
    request = RequestFactory().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {secret}")
    with pytest.raises(AuthenticationFailed, match=r"This API token has been revoked\."):
        BearerTokenAuthentication().authenticate(request)


def test_the_token_list_shows_each_status(enterprise, enterprise_admin):
    token_for(enterprise, "read")
    token_for(enterprise, "agent", expires_at=datetime.now(UTC) + timedelta(days=1))
    browser = browser_as(enterprise_admin, enterprise)

    with time_machine.travel(datetime.now(UTC) + timedelta(days=2)):
        page = browser.get("/accounts/organization/tokens/")

    assert sorted((r["token"].scopes[0], r["status"]) for r in page.context["rows"]) == [
        ("agent", "expired"),
        ("read", "active"),
    ]


def test_revoking_a_missing_token_is_a_404_and_changes_nothing(enterprise, enterprise_admin):
    before = table_counts()

    responses = [
        browser_as(enterprise_admin, enterprise).post(f"/accounts/organization/tokens/{ident}/revoke/")
        for ident in ("00000000-0000-0000-0000-000000000000", "not-a-uuid")
    ]

    assert [r.status_code for r in responses] == [404, 404]
    assert table_counts() == before


def test_submitting_the_same_token_form_twice_creates_one_token(enterprise, enterprise_admin):
    browser = browser_as(enterprise_admin, enterprise)
    form = {"submission": "one-form", "name": "agent on node 3", "scopes": ["agent"]}

    first = browser.post("/accounts/organization/tokens/new/", form)
    again = browser.post("/accounts/organization/tokens/new/", form, follow=True)

    assert SECRET.search(first.content.decode()) is not None
    assert again.redirect_chain == [("/accounts/organization/tokens/", 302)]
    assert "This token was already created. Its secret was shown once and cannot be shown again." in text_of(again)
    assert SECRET.search(again.content.decode()) is None
    assert ApiToken.objects.filter(organization=enterprise).count() == 1


def test_a_fresh_form_carries_its_own_submission_value(enterprise, enterprise_admin):
    browser = browser_as(enterprise_admin, enterprise)

    first = browser.get("/accounts/organization/tokens/new/").context["form"]["submission"].value()
    second = browser.get("/accounts/organization/tokens/new/").context["form"]["submission"].value()

    assert first and second and first != second
