"""A newcomer in a real browser: signs up with a new organization, logs out and in, creates an API token, and
the token (shown once) works against the API while the database holds only its hash."""

from __future__ import annotations

from accounts.models import ApiToken, AuditEvent, Membership, Organization, Role, User
from accounts.secrets import hash_secret

PASSWORD = "a-long-and-unusual-passphrase"


def test_sign_up_log_in_and_create_an_api_token(page, live_server_url):
    page.goto("/accounts/signup/")
    page.fill("#id_name", "Lin Wei")
    page.fill("#id_email", "lin.wei@blueheron.example")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.select_option("#id_organization_kind", "center")
    page.fill("#id_organization_name", "Blue Heron Compute")
    page.get_by_role("button", name="Create account and organization").click()
    page.wait_for_url(f"{live_server_url}/")
    assert "Blue Heron Compute" in page.inner_text("nav")

    page.locator("#logout-button").evaluate("button => button.form.submit()")
    page.wait_for_url("**/accounts/login/**")
    page.fill("#id_username", "LIN.WEI@blueheron.example")  # e-mail logins ignore case
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server_url}/")

    page.goto("/accounts/organization/tokens/new/")
    page.fill("#id_name", "inventory sync")
    page.check("input[name=scopes][value=inventory]")
    page.check("input[name=scopes][value=agent]")
    page.get_by_role("button", name="Create token").click()
    secret = page.input_value("#token-secret")

    assert secret.startswith("cn_")
    me = page.request.get(f"{live_server_url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status == 200
    assert me.json()["organization"]["name"] == "Blue Heron Compute"
    assert sorted(me.json()["scopes"]) == ["agent", "inventory"]

    page.goto("/accounts/organization/tokens/")
    assert secret not in page.content()
    assert "inventory sync" in page.inner_text("main")

    user = User.objects.get(email="lin.wei@blueheron.example")
    organization = Organization.objects.get(name="Blue Heron Compute")
    assert Membership.objects.get(user=user).organization == organization
    assert Membership.objects.get(user=user).role == Role.OWNER
    token = ApiToken.objects.get(organization=organization)
    assert token.token_hash == hash_secret(secret)
    assert secret not in str(list(ApiToken.objects.values_list()))
    assert list(AuditEvent.objects.filter(organization=organization).order_by("id").values_list("action", flat=True))[
        :1
    ] == ["organization.created"]
    assert AuditEvent.objects.filter(organization=organization, action="auth.login").count() >= 1
    assert AuditEvent.objects.filter(organization=organization, action="api_token.created").count() == 1
