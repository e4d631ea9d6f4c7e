"""Suite 4 (issue 8), abuse: what a hostile or careless client can throw at the product, and what it gets back.

Guessing passwords and tokens is slowed to a stop, one credential cannot flood the machine APIs, oversized bodies
and disguised files are refused with a clear error (never a 500), spreadsheets never run a name as a formula,
names never run as markup, the browser is told to run our scripts only, and production cookies travel over HTTPS
only. Every test runs on the real database and the configured cache (Redis in CI).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from accounts.errors import InvalidInput
from accounts.models import AuditEvent, Organization, OrganizationKind, Role, Scope
from billing.models import BankStatement, Invoice, ReconciliationException
from billing.services.bank_statements import statement_upload
from billing.services.reimbursements import check_payment_proof
from marketplace.models import Site
from tests.accounts.page_helpers import browser_as
from tests.billing.bank import UPLOADED_AT, statement_csv
from tests.billing.payments import finance_clerk, october_invoice
from tests.billing.vouchers import program, sponsor_actor
from tests.factories import OrganizationFactory, member_of, token_for

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


def _login(client: Client, email: str, password: str):
    return client.post("/accounts/login/", {"username": email, "password": password})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- 1. login throttling and lockout ---------------------------------------------------------------------------


@pytest.fixture
def login_limits(settings):
    settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT = 3
    settings.LOGIN_FAILURE_LIMIT_PER_IP = 5
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 600
    settings.LOGIN_LOCKOUT_SECONDS = 900
    return settings


@pytest.fixture
def person(enterprise):
    user = member_of(enterprise, Role.ADMIN, email="ada@blueheron.test")
    user.set_password(PASSWORD)
    user.save()
    return user


def test_failed_logins_lock_the_account_and_even_the_right_password_waits(login_limits, person):
    client = Client(REMOTE_ADDR="203.0.113.7")

    first, second = _login(client, person.email, "wrong-1"), _login(client, person.email, "wrong-2")
    third = _login(client, person.email, "wrong-3")
    refused = _login(client, person.email, PASSWORD)

    assert (first.status_code, second.status_code) == (200, 200)
    assert "The e-mail address or the password is wrong." in first.content.decode()
    for response in (third, refused):
        assert response.status_code == 429
        assert response["Retry-After"] == "900"
        assert "Too many failed logins. Try again in 15 minutes." in response.content.decode()
        assert 'id="login-locked"' in response.content.decode()
    assert not _signed_in(client)
    events = list(
        AuditEvent.objects.filter(actor_label=person.email).order_by("created_at").values_list("action", flat=True)
    )
    assert events == ["auth.login_failed"] * 3 + ["auth.login_locked"]
    assert AuditEvent.objects.get(action="auth.login_locked").organization == person.memberships.get().organization


def test_the_lock_lifts_after_the_lockout(login_limits, person):
    client = Client(REMOTE_ADDR="203.0.113.7")
    for attempt in range(3):
        _login(client, person.email, f"wrong-{attempt}")
    assert _login(client, person.email, PASSWORD).status_code == 429

    with time_machine.travel(time.time() + 901, tick=False):
        response = _login(client, person.email, PASSWORD)

    assert response.status_code == 302
    assert _signed_in(client)


def test_a_successful_login_resets_the_account_s_failures(login_limits, person):
    client = Client(REMOTE_ADDR="203.0.113.7")

    _login(client, person.email, "wrong-1")
    _login(client, person.email, "wrong-2")
    assert _login(client, person.email, PASSWORD).status_code == 302
    client.post("/accounts/logout/")
    _login(client, person.email, "wrong-3")
    response = _login(client, person.email, "wrong-4")

    assert response.status_code == 200  # two failures since the success: under the budget of three
    assert _login(client, person.email, PASSWORD).status_code == 302


def test_one_address_guessing_many_accounts_is_locked_out_and_others_are_not(login_limits, person):
    attacker = Client(REMOTE_ADDR="198.51.100.66")

    statuses = [_login(attacker, f"victim{n}@example.test", "guess").status_code for n in range(5)]
    refused = _login(attacker, person.email, PASSWORD)
    elsewhere = _login(Client(REMOTE_ADDR="203.0.113.7"), person.email, PASSWORD)

    assert statuses == [200, 200, 200, 200, 429]
    assert refused.status_code == 429
    assert elsewhere.status_code == 302


def test_case_and_spaces_do_not_make_a_fresh_account_budget(login_limits, person):
    client = Client(REMOTE_ADDR="203.0.113.7")

    _login(client, "ADA@blueheron.test", "x")
    _login(client, " ada@BlueHeron.test ", "y")
    response = _login(client, "ada@blueheron.test", "z")

    assert response.status_code == 429


# --- 2. invalid bearer tokens ----------------------------------------------------------------------------------


@pytest.fixture
def token_limits(settings):
    settings.API_AUTH_FAILURE_LIMIT = 3
    settings.API_AUTH_FAILURE_WINDOW_SECONDS = 300
    settings.API_AUTH_LOCKOUT_SECONDS = 300


def test_repeated_invalid_tokens_from_one_address_get_429_with_retry_after(token_limits, center):
    good = token_for(center, Scope.INVENTORY)
    attacker = APIClient(REMOTE_ADDR="198.51.100.66")

    guesses = []
    for _ in range(3):
        attacker.credentials(HTTP_AUTHORIZATION=f"Bearer ak_{secrets.token_urlsafe(32)}")
        guesses.append(attacker.get("/api/v1/sites").status_code)
    attacker.credentials(HTTP_AUTHORIZATION=f"Bearer {good}")
    refused = attacker.get("/api/v1/sites")
    elsewhere = APIClient(REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION=f"Bearer {good}").get("/api/v1/sites")

    assert guesses == [401, 401, 401]
    assert refused.status_code == 429
    assert refused.json() == {
        "detail": "Too many invalid API tokens from this address. Expected available in 300 seconds.",
        "code": "throttled",
    }
    assert refused["Retry-After"] == "300"
    assert elsewhere.status_code == 200


def test_revoked_tokens_count_as_failures_too(token_limits, center):
    from django.utils import timezone

    from accounts.models import ApiToken

    secret = token_for(center, Scope.INVENTORY)
    ApiToken.objects.filter(organization=center).update(revoked_at=timezone.now())
    client = APIClient(REMOTE_ADDR="198.51.100.66", HTTP_AUTHORIZATION=f"Bearer {secret}")

    codes = [client.get("/api/v1/sites").json()["code"] for _ in range(4)]

    assert codes == ["token_revoked", "token_revoked", "token_revoked", "throttled"]


# --- 3. per-token rate limits on the agent and inventory APIs --------------------------------------------------


@pytest.fixture
def tight_rates(monkeypatch):
    # DRF binds the rates dict once per process (SimpleRateThrottle.THROTTLE_RATES); patch the entries in it.
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "agent", "3/min")
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "inventory", "2/min")


def test_an_agent_token_over_its_rate_gets_429_and_its_sibling_token_does_not(tight_rates, center):
    first = APIClient(HTTP_AUTHORIZATION=f"Bearer {token_for(center, Scope.AGENT)}")
    second = APIClient(HTTP_AUTHORIZATION=f"Bearer {token_for(center, Scope.AGENT)}")

    statuses = [first.get("/api/v1/agent/allocations").status_code for _ in range(3)]
    throttled = first.get("/api/v1/agent/allocations")
    upload = first.post("/api/v1/agent/usage", {"records": []}, format="json")

    assert statuses == [200, 200, 200]
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert set(throttled.json()) == {"detail", "code"}
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert upload.status_code == 429  # the budget is the token's, across the agent endpoints
    assert second.get("/api/v1/agent/allocations").status_code == 200


def test_an_inventory_token_over_its_rate_gets_429_while_other_scopes_are_not_counted(tight_rates, center):
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token_for(center, Scope.INVENTORY, Scope.READ)}")

    statuses = [client.get("/api/v1/sites").status_code for _ in range(3)]
    catalog = [client.get("/api/v1/catalog").status_code for _ in range(5)]

    assert statuses == [200, 200, 429]
    assert catalog == [200] * 5


def test_the_rates_are_settings_with_documented_defaults(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")

    assert (rates["agent"], rates["inventory"]) == ("3000/min", "600/min")
    assert "`API_THROTTLE_AGENT`, `API_THROTTLE_INVENTORY`" in readme
    assert "accounts.api_support.TokenScopeRateThrottle" in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]


# --- 4. request sizes and uploaded files -----------------------------------------------------------------------


def test_a_json_body_over_the_limit_is_a_400_in_the_error_shape(center):
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token_for(center, Scope.AGENT)}")
    body = json.dumps({"records": [], "padding": "x" * (10 * 1024 * 1024)})

    response = client.post("/api/v1/agent/usage", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"detail": "The request body is too large.", "code": "request_too_large"}


def test_a_usage_batch_over_5000_records_is_a_413(center):
    client = APIClient(HTTP_AUTHORIZATION=f"Bearer {token_for(center, Scope.AGENT)}")
    record = {
        "id": "r",
        "booking": "00000000-0000-0000-0000-000000000000",
        "start": "2026-10-01T00:00:00Z",
        "end": "2026-10-01T01:00:00Z",
        "devices": 1,
    }

    response = client.post("/api/v1/agent/usage", {"records": [record] * 5001}, format="json")

    assert response.status_code == 413
    assert response.json()["code"] == "batch_too_large"
    assert response.json()["detail"] == (
        "A batch holds at most 5,000 records; this one has 5,001. Send them in several batches."
    )


def _operator_api() -> APIClient:
    clerk = finance_clerk()
    client = APIClient()
    client.force_login(clerk.user)
    return client


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 64,
            "The file is not CSV text but an Excel workbook (.xlsx) or another ZIP archive: export the statement "
            "from your bank as CSV.",
        ),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "The file is not CSV text but a PDF document"),
        (b"date,amount\n2026-10-01,1\x00\x00\x01\n", "The file is not CSV text: it contains binary data."),
    ],
    ids=["xlsx-renamed-csv", "pdf-renamed-csv", "nul-bytes"],
)
def test_a_bank_statement_that_is_not_csv_text_is_refused_by_its_content(content, problem):
    client = _operator_api()
    upload = SimpleUploadedFile("statement.csv", content, content_type="text/csv")

    response = client.post("/api/v1/bank-statements", {"file": upload}, format="multipart")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "malformed_statement"
    assert problem in " ".join(body["errors"]["file"])
    assert BankStatement.objects.count() == 0


def test_a_bank_statement_over_20_mb_is_refused_before_it_is_read():
    client = _operator_api()
    upload = SimpleUploadedFile("statement.csv", b"date,amount\n" + b"2026-10-01,1.00\n" * 1_400_000)

    response = client.post("/api/v1/bank-statements", {"file": upload}, format="multipart")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_statement"
    assert response.json()["errors"] == {"file": ["The file is larger than 20 MB."]}
    assert BankStatement.objects.count() == 0


def test_the_statement_upload_page_refuses_a_workbook_with_the_reason():
    clerk = finance_clerk()
    client = browser_as(clerk.user, clerk.organization)
    workbook = SimpleUploadedFile("statement.csv", b"PK\x03\x04" + b"\x00" * 64)

    response = client.post("/billing/finance/reconciliation/upload/", {"file": workbook, "submission": "s1"})

    assert response.status_code == 400
    assert "The file is not CSV text but an Excel workbook (.xlsx) or another ZIP archive" in response.content.decode()
    assert BankStatement.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("receipt.pdf", b"MZ\x90\x00\x03\x00\x00\x00", "is not a PDF, PNG or JPEG document"),
        ("receipt.exe", b"%PDF-1.7\n", "The payment proof must be a PDF, PNG or JPEG file."),
        ("receipt.pdf", b"", "The payment proof is empty."),
        ("receipt.png", b"\x89PNG\r\n\x1a\n" + b"0" * (10 * 1024 * 1024), "The payment proof is larger than 10 MB."),
    ],
    ids=["executable-named-pdf", "wrong-extension", "empty", "too-large"],
)
def test_a_payment_proof_is_judged_by_its_content_and_size(name, content, message):
    with pytest.raises(InvalidInput) as refused:
        check_payment_proof(SimpleUploadedFile(name, content))

    assert message in refused.value.detail
    assert refused.value.code == "invalid_proof"


def test_a_png_named_pdf_is_kept_as_the_png_it_is():
    assert check_payment_proof(SimpleUploadedFile("receipt.pdf", b"\x89PNG\r\n\x1a\nrest")) == "png"


# --- 5. spreadsheets never run a name as a formula -------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://evil.test","Open")', "+1+1", "-2+3", "@SUM(1)", "\t=1+1", "\r=1+1"]


def _csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


@pytest.mark.parametrize("name", FORMULAS, ids=["equals", "plus", "minus", "at", "tab", "carriage-return"])
def test_the_aging_report_neutralizes_a_formula_in_a_consumer_name_in_csv_and_xlsx(name):
    october_invoice()
    Organization.objects.filter(kind=OrganizationKind.ENTERPRISE).update(name=name, legal_name="")
    clerk = finance_clerk()
    client = browser_as(clerk.user, clerk.organization)

    csv_response = client.get("/billing/finance/reports/ar-aging.csv", {"as_of": "2026-11-30"})
    xlsx_response = client.get("/billing/finance/reports/ar-aging.xlsx", {"as_of": "2026-11-30"})

    assert csv_response.status_code == 200
    rows = _csv_rows(csv_response)
    assert rows[0][0] == "Consumer"
    assert rows[1][:2] == [f"'{name}", "CNY"]  # a leading quote: the spreadsheet shows the text, runs nothing
    assert xlsx_response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_response.content)).active
    consumer = sheet.cell(row=2, column=1)
    assert consumer.data_type == "s"  # stored as a string cell, never a formula ("f")
    assert consumer.value.replace("_x000D_", "\r") == name


def test_a_center_s_statement_csv_neutralizes_a_formula_in_a_consumer_name():
    invoice, center, consumer = october_invoice()
    Organization.objects.filter(pk=consumer.pk).update(name="=cmd|' /C calc'!A0", legal_name="")
    statement = invoice.period.statements.get(center=center)
    client = browser_as(member_of(center, Role.FINANCE), center)

    response = client.get(f"/billing/statements/{statement.pk}/lines.csv")

    assert response.status_code == 200
    rows = _csv_rows(response)
    assert [row[0] for row in rows[1:]] == ["'=cmd|' /C calc'!A0"]


# --- 6. names never run as markup --------------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=1>'


def _assert_escaped(html: str, url: str) -> None:
    assert SCRIPT not in html, url
    assert BREAKOUT not in html, url
    assert "<img src=x" not in html, url


@pytest.fixture
def hostile_world():
    """A market whose every name is markup: the center, its site, the consumer, a sponsor and its program, and the
    people of each, with an October invoice, a statement and a voucher program to show them on."""
    invoice, center, consumer = october_invoice()
    type(center).objects.filter(pk=center.pk).update(name=f"Center {SCRIPT}")
    type(consumer).objects.filter(pk=consumer.pk).update(name=f"Consumer {BREAKOUT}")
    Site.objects.filter(center=center).update(name=f"Site {SCRIPT}{BREAKOUT}")
    sponsor = OrganizationFactory(kind=OrganizationKind.SPONSOR, name=f"Sponsor {SCRIPT}")
    voucher_program = program(sponsor_actor(sponsor), name=f"Program {BREAKOUT}{SCRIPT}")
    people = {
        "consumer": member_of(consumer, Role.ADMIN, name=f"Cleo {SCRIPT}"),
        "center": member_of(center, Role.ADMIN, name=f"Chen {BREAKOUT}"),
        "sponsor": member_of(sponsor, Role.ADMIN, name=f"Sam {SCRIPT}"),
    }
    clerk = finance_clerk()
    type(clerk.user).objects.filter(pk=clerk.user.pk).update(name=f"Clerk {BREAKOUT}")
    # A bank's file is user-supplied too: its name, a payer and a remittance text that match nothing.
    statement = statement_upload(
        actor=clerk,
        filename=f"{SCRIPT}.csv",
        content=statement_csv(("2026-11-20", "123.45", f"Payer {SCRIPT}", f"Ref {BREAKOUT}")),
        now=UPLOADED_AT,
    ).statement
    return {
        "statement": statement,
        "invoice": Invoice.objects.get(pk=invoice.pk),
        "center": center,
        "consumer": consumer,
        "sponsor": sponsor,
        "program": voucher_program,
        "people": people,
        "clerk": clerk,
    }


def test_every_main_page_escapes_hostile_names(hostile_world):
    world = hostile_world
    invoice = world["invoice"]
    statement = invoice.period.statements.get()
    booking = invoice.lines.first().booking
    offering = booking.offering
    pages = {
        "consumer": (
            world["people"]["consumer"],
            world["consumer"],
            [
                "/",
                "/catalog/",
                f"/catalog/{offering.pk}/",
                "/bookings/",
                f"/bookings/{booking.pk}/",
                "/billing/invoices/",
                f"/billing/invoices/{invoice.pk}/",
                "/billing/upcoming/",
                "/billing/vouchers/",
                "/billing/payment-settings/",
                "/accounts/organization/",
                "/accounts/organization/members/",
                "/accounts/organization/audit/",
            ],
        ),
        "center": (
            world["people"]["center"],
            world["center"],
            [
                "/center/sites/",
                "/center/offerings/",
                "/center/bookings/",
                "/center/agents/",
                "/billing/statements/",
                f"/billing/statements/{statement.pk}/",
                "/billing/payouts/",
            ],
        ),
        "sponsor": (
            world["people"]["sponsor"],
            world["sponsor"],
            [
                "/billing/programs/",
                f"/billing/programs/{world['program'].pk}/",
                "/billing/applications/",
                "/billing/claims/",
                "/billing/reimbursements/",
            ],
        ),
        "operator": (
            world["clerk"].user,
            world["clerk"].organization,
            [
                "/billing/finance/",
                f"/billing/finance/periods/{invoice.period.start:%Y-%m}/",
                "/billing/finance/invoices/",
                f"/billing/finance/invoices/{invoice.pk}/",
                "/billing/finance/balances/",
                "/billing/finance/journal/",
                "/billing/finance/payouts/",
                f"/billing/finance/payouts/{invoice.period.start:%Y-%m}/",
                "/billing/finance/reconciliation/",
                "/billing/finance/reconciliation/exceptions/",
                f"/billing/finance/reconciliation/statements/{world['statement'].pk}/",
                f"/billing/finance/reconciliation/exceptions/{ReconciliationException.objects.get().pk}/",
                "/billing/finance/reports/ar-aging/?as_of=2026-11-30",
                "/billing/finance/reports/voucher-claims/?as_of=2026-11-30",
                "/accounts/organization/members/",
            ],
        ),
    }
    shown = 0
    for role, (user, organization, urls) in pages.items():
        client = browser_as(user, organization)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, (role, url, response.status_code)
            html = response.content.decode()
            _assert_escaped(html, url)
            shown += "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "&quot;&gt;&lt;img src=x" in html

    assert shown >= 20  # the names are on the pages, escaped: the checks above were not vacuous


def test_the_catalog_shows_a_hostile_center_name_as_text(hostile_world):
    client = browser_as(hostile_world["people"]["consumer"], hostile_world["consumer"])

    html = client.get("/catalog/").content.decode()

    assert "Center &lt;script&gt;alert(1)&lt;/script&gt;" in html
    _assert_escaped(html, "/catalog/")


def test_json_for_charts_escapes_markup_in_names(hostile_world):
    # json_script data blocks end at the first "</script>": a name must never close them.
    client = browser_as(hostile_world["people"]["sponsor"], hostile_world["sponsor"])

    html = client.get(f"/billing/programs/{hostile_world['program'].pk}/").content.decode()

    for block in re.findall(r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', html, re.S):
        assert "<" not in block


# --- 7. Content-Security-Policy ---------------------------------------------------------------------------------

BASE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self' data:; "
    "connect-src 'self' ws://testserver wss://testserver; frame-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def test_every_response_carries_a_policy_without_inline_script(client):
    for url in ("/", "/accounts/login/", "/catalog/", "/api/v1/catalog", "/static/css/app.css", "/healthz"):
        response = client.get(url)
        assert response["Content-Security-Policy"] == BASE_POLICY, url
        assert "unsafe-inline" not in response["Content-Security-Policy"]
        assert "unsafe-eval" not in response["Content-Security-Policy"]


def test_card_payments_add_stripe_js_origin_for_scripts_frames_and_requests(client, settings):
    settings.STRIPE_ENABLED = True
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_x"
    settings.STRIPE_JS_URL = "http://127.0.0.1:8420/js.stripe.com/v3/"

    local = client.get("/accounts/login/")["Content-Security-Policy"]
    settings.STRIPE_JS_URL = "https://js.stripe.com/v3/"
    real = client.get("/accounts/login/")["Content-Security-Policy"]

    assert "script-src 'self' http://127.0.0.1:8420;" in local
    assert "frame-src 'self' http://127.0.0.1:8420;" in local
    assert "connect-src 'self' ws://testserver wss://testserver http://127.0.0.1:8420;" in local
    assert "script-src 'self' https://js.stripe.com;" in real
    assert "frame-src 'self' https://js.stripe.com https://hooks.stripe.com;" in real
    assert "connect-src 'self' ws://testserver wss://testserver https://api.stripe.com;" in real


SERVED_TEMPLATES = [
    path for path in sorted((ROOT / "templates").rglob("*.html")) if "billing/pdf" not in path.as_posix()
]


@pytest.mark.parametrize("template", SERVED_TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_served_templates_have_no_inline_script_handler_or_style(template):
    # The PDF templates are rendered by WeasyPrint on the server, never sent to a browser: they may keep theirs.
    source = re.sub(r"\{#.*?#\}", "", template.read_text(encoding="utf-8"), flags=re.S)

    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", source, re.I) == []
    assert re.findall(r"\son[a-z]+\s*=", source, re.I) == []
    assert re.findall(r"\sstyle\s*=", source, re.I) == []
    assert re.findall(r"<style\b", source, re.I) == []
    assert "javascript:" not in source.lower()


def test_our_scripts_never_write_inline_style_attributes_or_evaluate_strings():
    for script in sorted((ROOT / "static/js").glob("*.js")):
        source = script.read_text(encoding="utf-8")
        assert 'setAttribute("style"' not in source and "setAttribute('style'" not in source, script.name
        assert not re.search(r"\beval\(|new Function\(|setTimeout\(\s*[\"']", source), script.name


# --- 8. production: secure cookies, HSTS and the other headers -------------------------------------------------

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "ALLOWED_HOSTS": "compute.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/computenet",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n) for n in ["
    "'CSRF_COOKIE_SECURE','SESSION_COOKIE_SECURE','SESSION_COOKIE_HTTPONLY','SECURE_HSTS_SECONDS',"
    "'SECURE_HSTS_INCLUDE_SUBDOMAINS','SECURE_HSTS_PRELOAD','SECURE_CONTENT_TYPE_NOSNIFF','SECURE_REFERRER_POLICY',"
    "'X_FRAME_OPTIONS','SECURE_SSL_REDIRECT','DEBUG']} | {'middleware': s.MIDDLEWARE}))"
)


def _production(*args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY"}}
    env = {**base, **PRODUCTION_ENV, "SECRET_KEY": secrets.token_urlsafe(64)}
    return subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_sends_cookies_over_https_only_with_hsts_and_safe_headers():
    result = _production("shell", "-c", PRINT_SETTINGS)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    middleware = values.pop("middleware")
    assert values == {
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "X_FRAME_OPTIONS": "DENY",
        "SECURE_SSL_REDIRECT": True,
        "DEBUG": False,
    }
    assert middleware[:2] == [
        "django.middleware.security.SecurityMiddleware",
        "marketplace.csp.ContentSecurityPolicyMiddleware",
    ]
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in middleware


def test_production_passes_the_deployment_checks():
    result = _production("check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_headers_on_a_page_in_production_like_settings(client, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True

    response = client.get("/accounts/login/", secure=True)

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_a_bank_file_s_payer_and_name_show_as_text_on_the_workbench(hostile_world):
    clerk = hostile_world["clerk"]
    client = browser_as(clerk.user, clerk.organization)

    html = client.get(f"/billing/finance/reconciliation/statements/{hostile_world['statement'].pk}/").content.decode()

    assert "Payer &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.csv" in html
    _assert_escaped(html, "statement")
