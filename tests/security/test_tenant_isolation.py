"""The tenant-isolation matrix: every URL pattern of the product, tried by every kind of foreign organization.

For each pattern that names an object, organization A's object is requested by organization B (a center, an
enterprise, a university, a sponsor; as a signed-in owner and with an API token of every scope, and for a sample
of patterns as every role and every single-scope token). The answer must be exactly what a missing object gets
(404, or 403 where the whole page is closed to B), never A's data, and nothing in the database may change. A
published offering or an open voucher program is public: B may read it, never change it. Patterns without an
object must not show A's data to B. A pattern missing from tests/security/registry.py fails the suite.

One world (tests/security/world.py) is built per module inside a transaction that is rolled back at the end; each
test runs in a savepoint of it.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.authentication import SESSION_ORG_KEY
from accounts.models import Membership, Role
from tests.security.registry import ADMIN_PREFIX, REGISTRY, Case, Exempt, Listing
from tests.security.world import FOREIGN_KINDS, Principal, World, build_world

API_METHODS = ("get", "post", "put", "patch", "delete")
# Tables whose rows a refused request may legitimately touch: the session store (a signed-in browser's session).
UNWATCHED_TABLES = {"django_session"}
# Columns that record use, not change: a token's last use.
UNWATCHED_COLUMNS = ("last_used_at",)
# A sample of patterns tried by every role and every single-scope token of every foreign kind (all of them with
# TENANT_ISOLATION_FULL=1, which takes several times longer).
FULL = os.environ.get("TENANT_ISOLATION_FULL", "") not in ("", "0")
EVERY_ROLE_SAMPLE = (
    "api-invoice",
    "billing:invoice",
    "api-booking-cancel",
    "market:booking_detail",
    "billing:statement",
    "api-payout",
    "billing:reimbursement_approve",
    "billing:program_edit",
    "accounts:member_change_role",
    "api-member",
    "api-token-revoke",
    "market:center_offering_edit",
    "api-catalog-offering",
    "api-center-approve",
    "billing:finance_invoice_void",
    "api-voucher-grant-approve",
)

EVERY_ROLE_LISTING_SAMPLE = (
    "billing:invoices",
    "api-invoices",
    "api-payments",
    "market:my_bookings",
    "market:center_bookings",
    "api-center-bookings",
    "accounts:members",
    "api-members",
    "api-tokens",
    "accounts:audit_log",
    "billing:reimbursements",
    "billing:applications",
    "api-voucher-grants",
    "api-voucher-claims",
    "api-payouts",
    "billing:center_payouts",
    "api-statements",
    "api-balances",
    "billing:payment_settings",
)

TALLY: Counter = Counter()


# --- the URL patterns ---------------------------------------------------------------------------------------------


def url_patterns() -> list[tuple[str, str, URLPattern]]:
    """(name with namespaces, route, pattern) of every pattern the resolver reaches, walked recursively."""
    found: list[tuple[str, str, URLPattern]] = []

    def walk(resolver: URLResolver, prefix: str, namespace: str | None) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                inner = ":".join(filter(None, [namespace, entry.namespace])) if entry.namespace else namespace
                walk(entry, prefix + str(entry.pattern), inner)
            else:
                name = f"{namespace}:{entry.name}" if namespace and entry.name else (entry.name or "")
                found.append((name, prefix + str(entry.pattern), entry))

    walk(get_resolver(), "", None)
    return found


PATTERNS = url_patterns()
APP_PATTERNS = [(name, route, p) for name, route, p in PATTERNS if not route.startswith(ADMIN_PREFIX)]
ROUTES: dict[str, tuple[str, URLPattern]] = {name: (route, p) for name, route, p in APP_PATTERNS}
OBJECT_NAMES = sorted(name for name, entry in REGISTRY.items() if isinstance(entry, list))
LISTING_NAMES = sorted(name for name, entry in REGISTRY.items() if isinstance(entry, Listing))


def fill(route: str, kwargs: dict[str, Any]) -> str:
    """The path of `route` with its converters replaced by `kwargs`."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route)
    return "/" + path.lstrip("^").rstrip("$")


def missing_like(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The same kwargs naming objects that do not exist (the answer A's object must be indistinguishable from)."""
    out = {}
    for key, value in kwargs.items():
        text = str(value)
        if key == "fmt":
            out[key] = text
        elif re.fullmatch(r"[0-9a-f-]{36}", text):
            out[key] = str(uuid.uuid4())
        elif text.isdigit():
            out[key] = "987654321"
        elif re.fullmatch(r"\d{4}-\d{2}", text):
            out[key] = "2031-01"
        else:
            out[key] = f"missing-{text}"
    return out


def is_api(route: str) -> bool:
    return route.startswith("api/")


def methods_of(route: str, pattern: URLPattern, case: Case) -> tuple[str, ...]:
    if case.methods:
        return case.methods
    view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if is_api(route) and view_class is not None:
        return tuple(m.upper() for m in API_METHODS if hasattr(view_class, m))
    return ("GET", "POST")


# --- the database snapshot ----------------------------------------------------------------------------------------


def _digest_sql() -> str:
    tables = [t for t in connection.introspection.table_names() if t not in UNWATCHED_TABLES]
    drop = "".join(f" - '{column}'" for column in UNWATCHED_COLUMNS)
    row = f"(to_jsonb(x){drop})::text"
    # Table names come from the database's own catalog, never from input.
    parts = [
        f"SELECT '{t}', md5(coalesce(string_agg({row}, ',' ORDER BY {row}), '')) FROM \"{t}\" x"  # noqa: S608
        for t in tables
    ]
    return " UNION ALL ".join(parts)


def snapshot(sql: str) -> dict[str, str]:
    """A digest of every row of every table (but the session store): any write shows as a changed digest."""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return dict(cursor.fetchall())


# --- the world and its clients ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(request, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[World]:
    """One world for the module, rolled back at its end; each test runs in a savepoint inside it."""
    with override_settings(MEDIA_ROOT=str(tmp_path_factory.mktemp("media"))), django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            built = build_world()
            built.objects["_digest_sql"] = _digest_sql()
            built.objects["_clients"] = {}
            # Sessions are stored now, in the module's transaction, so that every test's savepoint sees them.
            for principals in built.principals.values():
                for principal in principals:
                    client_for(built, principal)
            for owner in ("operator", "consumer", "center", "sponsor"):
                owner_client(built, owner)
            yield built
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None and capture is not None:
                with capture.global_and_fixture_disabled():
                    reporter.write_line(
                        f"\ntenant isolation: {len(APP_PATTERNS)} URL patterns "
                        f"(+{len(PATTERNS) - len(APP_PATTERNS)} admin), {TALLY['checks']} requests against A's "
                        f"objects (each with its missing-object control), {TALLY['listings']} list requests"
                    )
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def client_for(world: World, principal: Principal) -> APIClient:
    cache = world.objects["_clients"]
    key = (principal.organization.pk, principal.role, principal.scopes)
    if key not in cache:
        client = APIClient()
        if principal.token:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {principal.token}")
        else:
            client.force_login(principal.user)
            session = client.session
            session[SESSION_ORG_KEY] = str(principal.organization.pk)
            session.save()
        cache[key] = client
    return cache[key]


def owner_client(world: World, owner: str) -> APIClient:
    """A's side for the positive control: the owner of the organization that owns the object, or the clerk."""
    if owner == "operator":
        user = world["clerk"]
        organization = Membership.objects.get(user=user).organization
    else:
        organization = world[owner]
        user = world["people"][organization.pk][Role.OWNER]
    return client_for(world, Principal("A", organization, role=Role.OWNER, user=user))


def representative(world: World, *, api: bool) -> list[Principal]:
    """Per foreign kind: its owner signed in, and (for the API) a token with every scope."""
    chosen = []
    for kind in FOREIGN_KINDS:
        for principal in world.principals[kind]:
            if principal.role == Role.OWNER or (api and principal.scopes == "all"):
                chosen.append(principal)
    return chosen


def everyone(world: World, *, api: bool) -> list[Principal]:
    return [p for kind in FOREIGN_KINDS for p in world.principals[kind] if api or not p.token]


def call(client: APIClient, method: str, path: str, body: dict[str, Any], *, api: bool):
    if method == "GET":
        return client.get(path)
    if api:
        return client.generic(method, path, json.dumps(body), content_type="application/json")
    return client.generic(
        method, path, "&".join(f"{k}={v}" for k, v in body.items()), content_type="application/x-www-form-urlencoded"
    )


def content_of(response) -> str:
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return raw.decode(errors="replace")


def same_shape(response, path: str) -> str:
    """An API answer with the ids of its path blanked: A's object and a missing one must read the same."""
    body = content_of(response)
    for part in path.strip("/").split("/"):
        if len(part) > 6:
            body = body.replace(part, "<id>")
    return body


def leaked(world: World, response, path: str) -> list[str]:
    """A's markers found in the answer (the request's own path and ids removed first)."""
    body = content_of(response).replace(path, "")
    return [marker for marker in world.markers if marker in body and marker not in path]


# --- the checks ---------------------------------------------------------------------------------------------------


def check_case(world: World, name: str, case: Case, principals: list[Principal]) -> tuple[list[str], int]:
    route, pattern = ROUTES[name]
    api = is_api(route)
    kwargs = case.kwargs(world)
    path, missing = fill(route, kwargs), fill(route, missing_like(kwargs))
    sql = world.objects["_digest_sql"]
    problems: list[str] = []
    checks = 0
    for principal in principals:
        if principal.token and not api:
            continue
        client = client_for(world, principal)
        for method in methods_of(route, pattern, case):
            checks += 1
            TALLY["checks"] += 1
            where = f"{name}[{case.label}] {method} {path} as {principal.label}"
            before = snapshot(sql) if method != "GET" and not case.upsert else None
            answer = call(client, method, path, case.body, api=api)
            if before is not None:
                after = snapshot(sql)
                changed = sorted(t for t in after if after[t] != before.get(t))
                if changed:
                    problems.append(f"{where}: changed {changed}")
            if case.upsert:
                problems += upsert_problems(world, name, where)
            if found := leaked(world, answer, path):
                problems.append(f"{where}: {answer.status_code} shows A's {found}")
            if answer.status_code >= 500:
                problems.append(f"{where}: {answer.status_code}")
                continue
            if (case.public and method == "GET") or case.upsert:
                continue
            control = call(client, method, missing, case.body, api=api)
            if answer.status_code not in (403, 404, 405) or answer.status_code != control.status_code:
                problems.append(
                    f"{where}: {answer.status_code} for A's object, {control.status_code} for a missing one"
                )
            elif api and same_shape(answer, path) != same_shape(control, missing):
                problems.append(
                    f"{where}: says {answer.content!r} for A's object, {control.content!r} for a missing one"
                )
    return problems, checks


def upsert_problems(world: World, name: str, where: str) -> list[str]:
    """A PUT by B under A's external id may create B's own object: A's must be exactly as it was."""
    obj = world["hidden_site"] if name == "api-site" else world["draft_offering"]
    fresh = type(obj).objects.get(pk=obj.pk)
    fields = [f.attname for f in obj._meta.concrete_fields if f.attname != "updated_at"]
    problems = []
    if any(getattr(fresh, f) != getattr(obj, f) for f in fields):
        problems.append(f"{where}: changed A's {type(obj).__name__}")
    if foreign_offerings_on_sites_of(world["center"]):
        problems.append(f"{where}: B's offering runs at A's site")
    return problems


def foreign_offerings_on_sites_of(center) -> list[Any]:
    from marketplace.models import Offering

    return list(Offering.objects.filter(site__center=center).exclude(center=center))


def positive_control(world: World, name: str, case: Case) -> str | None:
    """A's own side reaches the object, so the matrix is about a real object, not a typo'd id."""
    route, pattern = ROUTES[name]
    if case.owner is None or "GET" not in methods_of(route, pattern, case):
        return None
    answer = owner_client(world, case.owner).get(fill(route, case.kwargs(world)))
    if answer.status_code in (404,) or answer.status_code >= 500:
        return f"{name}[{case.label}]: A's {case.owner} gets {answer.status_code}"
    return None


# --- the tests ----------------------------------------------------------------------------------------------------


def test_every_url_pattern_is_in_the_registry_or_exempt():
    names = {name for name, _route, _p in APP_PATTERNS}
    missing = sorted(names - set(REGISTRY))
    stale = sorted(set(REGISTRY) - names)
    assert missing == [], f"URL patterns with no isolation coverage: add them to tests/security/registry.py: {missing}"
    assert stale == [], f"registry entries for URL names that no longer exist: {stale}"
    for name in OBJECT_NAMES:
        route, _pattern = ROUTES[name]
        converters = set(re.findall(r"<(?:\w+:)?(\w+)>", route))
        assert converters, f"{name} names no object: register it as Listing"
    for name, route, _p in APP_PATTERNS:
        if re.search(r"<(?:\w+:)?\w+>", route) and not isinstance(REGISTRY[name], list | Exempt):
            pytest.fail(f"{name} ({route}) names an object but is registered as {REGISTRY[name]!r}")


@pytest.mark.parametrize("name", OBJECT_NAMES)
def test_a_foreign_organization_cannot_reach_the_object(world, db, name):
    problems: list[str] = []
    for case in REGISTRY[name]:
        if control := positive_control(world, name, case):
            problems.append(control)
        found, _checks = check_case(world, name, case, representative(world, api=is_api(ROUTES[name][0])))
        problems += found
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", OBJECT_NAMES if FULL else EVERY_ROLE_SAMPLE)
def test_every_role_and_token_scope_of_a_foreign_organization_is_refused_alike(world, db, name):
    problems: list[str] = []
    for case in REGISTRY[name]:
        found, _checks = check_case(world, name, case, everyone(world, api=is_api(ROUTES[name][0])))
        problems += found
    assert not problems, "\n".join(problems)


def check_listing(world: World, name: str, principals: list[Principal]) -> list[str]:
    route, _pattern = ROUTES[name]
    api, entry = is_api(route), REGISTRY[name]
    path = fill(route, {})
    queries = [{}] + ([entry.query(world)] if entry.query else [])
    problems = []
    for principal in principals:
        if principal.token and not api:
            continue
        for query in queries:
            TALLY["listings"] += 1
            answer = client_for(world, principal).get(path, query)
            where = f"{name} GET {query or ''} as {principal.label}"
            if answer.status_code >= 500:
                problems.append(f"{where}: {answer.status_code}")
            if entry.operator_only and answer.status_code not in (403, 404, 405):
                problems.append(f"{where}: {answer.status_code} on an operator-only page")
            if found := leaked(world, answer, path + json.dumps(query)):
                problems.append(f"{where}: shows A's {found}")
    return problems


@pytest.mark.parametrize("name", LISTING_NAMES)
def test_pages_without_an_object_never_show_a_foreign_organizations_data(world, db, name):
    problems = check_listing(world, name, representative(world, api=is_api(ROUTES[name][0])))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", LISTING_NAMES if FULL else EVERY_ROLE_LISTING_SAMPLE)
def test_no_role_or_token_scope_of_a_foreign_organization_sees_its_lists(world, db, name):
    problems = check_listing(world, name, everyone(world, api=is_api(ROUTES[name][0])))
    assert not problems, "\n".join(problems)


# --- objects named in the body ------------------------------------------------------------------------------------


def principal_of(world: World, kind: str, *, token: bool) -> Principal:
    return next(p for p in world.principals[kind] if (p.scopes == "all" if token else p.role == Role.OWNER))


def window(days: int = 20) -> dict[str, str]:
    from django.utils import timezone

    start = (timezone.now() + timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    return {"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat()}


def test_a_draft_offering_of_another_center_cannot_be_quoted_or_booked(world, db):
    client = client_for(world, principal_of(world, "enterprise", token=True))
    body = {"offering": str(world["draft_offering"].pk), "devices": 1, **window()}
    missing = {**body, "offering": str(uuid.uuid4())}
    sql = world.objects["_digest_sql"]
    before = snapshot(sql)

    answers = {path: call(client, "POST", path, body, api=True) for path in ("/api/v1/quotes", "/api/v1/bookings")}
    controls = {path: call(client, "POST", path, missing, api=True) for path in answers}

    assert {p: a.status_code for p, a in answers.items()} == {p: c.status_code for p, c in controls.items()}
    assert {a.status_code for a in answers.values()} == {404}
    assert snapshot(sql) == before


def test_usage_for_another_centers_booking_is_rejected_and_changes_nothing(world, db):
    client = client_for(world, principal_of(world, "center", token=True))
    booking = world["booking"]
    record = {
        "id": "probe-1",
        "booking": str(booking.pk),
        "start": booking.start.isoformat(),
        "end": (booking.start + timedelta(hours=1)).isoformat(),
        "devices": 1,
    }
    from billing.models import BookingUsage, UsageRecord

    before = (
        list(UsageRecord.objects.filter(booking=booking).values()),
        list(BookingUsage.objects.filter(booking=booking).values()),
    )

    answer = call(client, "POST", "/api/v1/agent/usage", {"records": [record]}, api=True)

    assert answer.status_code < 500
    body = answer.json()
    assert body.get("accepted", 0) == 0, body
    assert not leaked(world, answer, json.dumps(record))  # the rejection may name what B itself sent
    after = (
        list(UsageRecord.objects.filter(booking=booking).values()),
        list(BookingUsage.objects.filter(booking=booking).values()),
    )
    assert after == before


def test_a_heartbeat_naming_another_centers_booking_keeps_nothing_of_it(world, db):
    client = client_for(world, principal_of(world, "center", token=True))
    body = {"agent": "probe-agent", "devices": [{"index": 0, "booking": str(world["booking"].pk), "utilization": 0.5}]}

    answer = call(client, "POST", "/api/v1/agent/heartbeat", body, api=True)

    assert answer.status_code in (200, 201), answer.content
    from marketplace.models import Agent

    stored = Agent.objects.get(center=world.foreign["center"], name="probe-agent").devices
    assert [device.get("booking") for device in stored] == [None]


def test_an_inventory_sync_under_another_centers_external_ids_leaves_its_inventory_alone(world, db):
    client = client_for(world, principal_of(world, "center", token=True))
    draft, site = world["draft_offering"], world["hidden_site"]
    from marketplace.models import Offering, Site

    before = (
        list(Offering.objects.filter(center=world["center"]).values()),
        list(Site.objects.filter(center=world["center"]).values()),
    )
    body = {
        "offerings": [
            {"external_id": draft.external_id, "site": site.external_id, "accelerator": "nvidia-h100-sxm", "devices": 1}
        ],
        "prune": True,
    }

    answer = call(client, "POST", "/api/v1/inventory/sync", body, api=True)

    assert answer.status_code < 500
    assert not leaked(world, answer, json.dumps(body))  # B's own new offering carries the external id B chose
    after = (
        list(Offering.objects.filter(center=world["center"]).values()),
        list(Site.objects.filter(center=world["center"]).values()),
    )
    assert after == before


def test_an_idempotency_key_of_another_organization_replays_nothing_of_it(world, db):
    """Keys are per organization: B sending A's key gets its own answer, never A's stored booking."""
    body = {"offering": str(world["offering"].pk), "devices": 1, **window(30)}
    mine = APIClient()
    mine.credentials(HTTP_AUTHORIZATION=f"Bearer {world['enterprise_secret']}")
    first = mine.post("/api/v1/bookings", body, format="json", HTTP_IDEMPOTENCY_KEY="shared-key-1")
    assert first.status_code == 201, first.content
    theirs = client_for(world, principal_of(world, "enterprise", token=True))

    answer = theirs.post("/api/v1/bookings", {**body, "devices": 2}, format="json", HTTP_IDEMPOTENCY_KEY="shared-key-1")

    assert answer.status_code == 201, answer.content
    assert answer.json()["id"] != first.json()["id"]
    assert answer.json()["devices"] == 2


def test_a_center_cannot_put_its_offering_at_another_centers_site_from_the_form(world, db):
    client = client_for(world, principal_of(world, "center", token=False))
    site = world["hidden_site"]
    form = {
        "external_id": "probe-pool",
        "site": site.external_id,
        "accelerator": "nvidia-h100-sxm",
        "devices": "8",
        "devices_per_node": "8",
        "price_per_device_hour": "1.00",
        "currency": "CNY",
        "min_hours": "1",
        "max_hours": "24",
        "status": "published",
    }

    answer = client.post("/center/offerings/new/", form)

    assert answer.status_code in (200, 400), answer.status_code
    assert foreign_offerings_on_sites_of(world["center"]) == []
    assert not leaked(world, answer, json.dumps(form))


def test_switching_to_a_foreign_organization_is_not_found(world, db):
    principal = principal_of(world, "enterprise", token=False)
    client = client_for(world, principal)

    answer = client.post("/accounts/switch/", {"organization": str(world["consumer"].pk)})

    assert answer.status_code == 404
    assert client.session[SESSION_ORG_KEY] == str(principal.organization.pk)
    assert client.get("/billing/invoices/").status_code == 200
    assert not leaked(world, client.get("/billing/invoices/"), "")


def test_the_marker_search_finds_as_own_data_on_its_own_pages(world, db):
    """The matrix's leak detector works: A's own invoice page shows A's markers."""
    path = f"/billing/invoices/{world['invoice'].pk}/"
    answer = owner_client(world, "consumer").get(path)

    assert answer.status_code == 200
    assert world["invoice"].number in leaked(world, answer, path)


# --- the admin site -----------------------------------------------------------------------------------------------

ADMIN_KWARGS = {"object_id": None, "content_type_id": "1", "app_label": "billing"}


def test_the_admin_site_is_closed_to_every_organization(world, db):
    """Every /admin/ pattern sends a foreign organization's owner (not staff) to the admin login, and a POST to
    one of A's objects there changes nothing."""
    from django.urls import NoReverseMatch, reverse

    client = client_for(world, principal_of(world, "enterprise", token=False))
    sql = world.objects["_digest_sql"]
    before = snapshot(sql)
    problems, tried = [], 0
    for name, route, pattern in PATTERNS:
        if not route.startswith(ADMIN_PREFIX) or name in ("admin:login", "admin:logout"):
            continue
        groups = pattern.pattern.regex.groupindex
        kwargs = {key: (ADMIN_KWARGS.get(key) or str(world["invoice"].pk)) for key in groups}
        if not name:  # the object shortcuts and the catch-all have no name
            path = f"/{ADMIN_PREFIX}probe/" if "(?P<url>" in route else fill(route, kwargs)
        else:
            try:
                path = reverse(name, kwargs=kwargs)
            except NoReverseMatch:  # an app index whose app_label choices exclude "billing"
                path = reverse(name, kwargs={**kwargs, "app_label": "accounts"})
        for method in ("GET", "POST") if groups else ("GET",):
            tried += 1
            answer = call(client, method, path, {"status": "void"}, api=False)
            if answer.status_code != 302 or not answer["Location"].startswith("/admin/login/"):
                problems.append(f"{method} {path}: {answer.status_code}")
    assert tried > 100
    assert not problems, "\n".join(problems)
    assert snapshot(sql) == before
