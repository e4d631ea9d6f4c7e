"""The management commands: `create_org` (API.md, "Bootstrap") and `seed_demo`."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, Role, User
from tests.accounts.api_helpers import with_token
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

MODELS = (Organization, User, Membership, ApiToken, AuditEvent, Invitation)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def create_org(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_org", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- create_org ----------------------------------------------------------------------------------------------


def test_create_org_prints_one_json_object_with_no_token_by_default():
    # when a center is onboarded by script
    out, _err = create_org("--kind", "center", "--name", "Lakeside AI Computing Center")

    # then stdout is exactly the documented object
    assert out.count("\n") == 1
    printed = json.loads(out)
    organization = Organization.objects.get()
    assert printed == {"org": "lakeside-ai-computing-center", "id": str(organization.pk), "token": None}
    assert (organization.kind, organization.name, organization.billing_currency, organization.credit_limit) == (
        "center",
        "Lakeside AI Computing Center",
        "CNY",
        None,
    )
    assert not ApiToken.objects.exists()
    assert not Membership.objects.exists()


def test_create_org_sets_currency_and_credit_limit():
    out, _err = create_org(
        "--kind", "university", "--name", "Eastlake University", "--currency", "usd", "--credit-limit", "50000.5"
    )

    organization = Organization.objects.get(pk=json.loads(out)["id"])
    assert (organization.billing_currency, organization.credit_limit) == ("USD", Decimal("50000.50"))


def test_create_org_issues_a_token_with_the_given_scopes_that_works():
    # when a center is created with an inventory and agent token
    out, _err = create_org("--kind", "center", "--name", "Pearl Bay GPU Cloud", "--token-scopes", "inventory,agent")

    # then the printed secret authenticates as that organization with exactly those scopes
    printed = json.loads(out)
    assert set(printed) == {"org", "id", "token"}
    response = with_token(printed["token"]).get("/api/v1/me")
    assert response.status_code == 200
    assert response.json()["organization"]["id"] == printed["id"]
    assert response.json()["organization"]["slug"] == printed["org"] == "pearl-bay-gpu-cloud"
    assert response.json()["scopes"] == ["agent", "inventory"]
    # and only its hash was stored
    assert printed["token"] not in json.dumps(list(ApiToken.objects.values()), default=str)


def test_create_org_with_a_new_admin_email_makes_an_owner_without_a_password_and_mails_a_link():
    out, err = create_org(
        "--kind", "enterprise", "--name", "Blue Heron Robotics", "--admin-email", "Founder@BlueHeron.test"
    )

    printed = json.loads(out)
    user = User.objects.get(email="founder@blueheron.test")
    assert not user.has_usable_password()
    membership = Membership.objects.get(user=user)
    assert (str(membership.organization_id), membership.role) == (printed["id"], Role.OWNER)
    assert [m.to for m in mail.outbox] == [["founder@blueheron.test"]]
    assert re.search(r"http://localhost:8000/accounts/password-reset/[^/\s]+/[^/\s]+/", mail.outbox[0].body)
    assert "founder@blueheron.test" in err


def test_create_org_reuses_an_existing_person_and_leaves_their_password_alone():
    person = UserFactory(email="li.wei@eastlake.test")
    password_hash = person.password

    out, _err = create_org(
        "--kind", "institute", "--name", "Yangtze Institute", "--admin-email", "li.wei@eastlake.test"
    )

    person.refresh_from_db()
    assert person.password == password_hash
    assert Membership.objects.get(user=person).organization_id == Organization.objects.get(pk=json.loads(out)["id"]).pk
    assert Membership.objects.get(user=person).role == Role.OWNER
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "galaxy", "--name", "X"], "invalid choice: 'galaxy'"),
        (["--kind", "center", "--name", "X", "--currency", "EURO"], "Currency must be a three-letter ISO 4217 code."),
        (["--kind", "center", "--name", "X", "--currency", "12"], "Currency must be a three-letter ISO 4217 code."),
        (["--kind", "enterprise", "--name", "X", "--credit-limit", "-1"], "cannot be negative"),
        (["--kind", "enterprise", "--name", "X", "--credit-limit", "lots"], "must be a decimal amount"),
        (["--kind", "enterprise", "--name", "X", "--credit-limit", "NaN"], "must be a finite amount"),
        (["--kind", "enterprise", "--name", "X", "--credit-limit", "10.005"], "at most 2 decimal places"),
        (["--kind", "enterprise", "--name", "X", "--credit-limit", "1e20"], "too large"),
        (["--kind", "center", "--name", "X", "--token-scopes", "inventory,root"], "Unknown scope root"),
        (["--kind", "center", "--name", "X", "--token-scopes", ","], "needs at least one of"),
        (["--kind", "center", "--name", "X", "--admin-email", "not-an-address"], "not a valid e-mail address"),
        (["--kind", "center", "--name", "   "], "An organization needs a name."),
        (["--kind", "center", "--name", "x" * 201], "limited to 200 characters"),
    ],
)
def test_create_org_refuses_bad_input_and_creates_nothing(args, message):
    before = counts()

    with pytest.raises(CommandError) as refused:
        create_org(*args, "--admin-email", "someone@example.test") if "--admin-email" not in args else create_org(*args)

    assert message in str(refused.value)
    assert counts() == before
    assert mail.outbox == []


def test_a_second_operator_is_refused_and_nothing_is_created():
    create_org("--kind", "operator", "--name", "Northstar Compute Exchange")
    before = counts()

    with pytest.raises(CommandError) as refused:
        create_org(
            "--kind",
            "operator",
            "--name",
            "Rival Exchange",
            "--admin-email",
            "boss@rival.test",
            "--token-scopes",
            "read",
        )

    assert str(refused.value) == "This deployment already has an operator organization."
    assert counts() == before
    assert mail.outbox == []


# --- seed_demo -----------------------------------------------------------------------------------------------


def seed_demo() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO())
    return out.getvalue()


def printed_logins(table: str) -> list[dict[str, str]]:
    header, _rule, *lines = table.strip().splitlines()
    columns = re.split(r"\s{2,}", header.strip())
    return [dict(zip(columns, re.split(r"\s{2,}", line.strip()), strict=True)) for line in lines]


def test_seed_demo_twice_creates_nothing_the_second_time():
    first_table = seed_demo()
    after_first = counts()
    snapshot = list(Organization.objects.order_by("slug").values_list("slug", "name", "credit_limit", "updated_at"))

    second_table = seed_demo()

    assert counts() == after_first
    assert (
        list(Organization.objects.order_by("slug").values_list("slug", "name", "credit_limit", "updated_at"))
        == snapshot
    )
    assert second_table == first_table
    assert after_first["Organization"] == 10


def test_every_printed_login_signs_in_as_the_printed_organization_and_role():
    logins = printed_logins(seed_demo())

    assert {login["role"] for login in logins} == {"owner", "admin", "member", "finance", "viewer"}
    for login in logins:
        client = APIClient()
        assert client.login(email=login["email"], password=login["password"]), login["email"]
        me = client.get("/api/v1/me").json()
        assert (me["organization"]["name"], me["role"]) == (login["organization"], login["role"]), login["email"]


def test_the_demo_covers_every_kind_and_the_people_the_brief_names():
    logins = {login["email"]: login for login in printed_logins(seed_demo())}

    assert set(Organization.objects.values_list("kind", flat=True)) == {
        "operator",
        "center",
        "enterprise",
        "university",
        "institute",
        "sponsor",
    }
    operator_admin = User.objects.get(email="admin@northstar.demo")
    assert operator_admin.is_staff and operator_admin.is_superuser
    assert logins["li.wei@eastlake.demo"]["also member of"] == "Eastlake University (owner)"
    assert Membership.objects.filter(user__email="li.wei@eastlake.demo").count() == 2
    blue_heron = Organization.objects.get(slug="blue-heron-robotics")
    assert list(blue_heron.related_parties.values_list("slug", flat=True)) == ["lakeside-ai-computing-center"]
    for organization in Organization.objects.all():
        assert re.fullmatch(r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}", organization.tax_id)
        assert organization.legal_name and organization.region
        assert (organization.credit_limit is not None) == organization.is_consumer


def test_demo_passwords_are_stored_hashed():
    seed_demo()

    for user in User.objects.all():
        assert user.password != "demo-pass-2026"
        assert user.check_password("demo-pass-2026")


def test_the_operator_admin_can_open_the_django_admin():
    seed_demo()
    client = APIClient()
    client.login(email="admin@northstar.demo", password="demo-pass-2026")

    assert client.get("/admin/").status_code == 200


def test_seed_demo_joins_an_operator_created_earlier_by_script():
    out, _err = create_org("--kind", "operator", "--name", "Platform Operator")

    seed_demo()

    assert Organization.objects.filter(kind="operator").count() == 1
    operator = Organization.objects.get(kind="operator")
    assert str(operator.pk) == json.loads(out)["id"]
    assert Membership.objects.get(user__email="admin@northstar.demo").organization == operator


def test_seed_demo_is_refused_in_production(settings):
    settings.PRODUCTION = True
    before = counts()

    with pytest.raises(CommandError) as refused:
        seed_demo()

    assert "refused when DJANGO_ENV=production" in str(refused.value)
    assert counts() == before
