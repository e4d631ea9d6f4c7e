"""Front-end assets: vendored (the product works offline), licensed, and no inline script anywhere, so a
Content-Security-Policy without 'unsafe-inline' can be switched on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accounts.models import Role
from tests.accounts.page_helpers import browser_as
from tests.factories import member_of

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
VENDORED = [  # file, the version it must announce, the licence next to it
    ("vendor/bootstrap/bootstrap.min.css", "Bootstrap  v5.3", "The MIT License (MIT)"),
    ("vendor/bootstrap/bootstrap.bundle.min.js", "Bootstrap v5.3", "The MIT License (MIT)"),
    ("vendor/htmx/htmx.min.js", 'version:"2.', "Zero-Clause BSD"),
    ("vendor/chartjs/chart.umd.js", "Chart.js v4.", "The MIT License (MIT)"),
]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)
EVENT_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)
JAVASCRIPT_URL = re.compile(r"javascript:", re.I)
EXTERNAL_ASSET = re.compile(r"""(?:src|href)=["'](?:https?:)?//""", re.I)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(ROOT)))
def test_templates_carry_no_inline_script_no_event_handler_and_no_cdn(template):
    source = template.read_text(encoding="utf-8")

    assert INLINE_SCRIPT.findall(source) == []
    assert EVENT_HANDLER.findall(source) == []
    assert JAVASCRIPT_URL.findall(source) == []
    assert EXTERNAL_ASSET.findall(source) == []


@pytest.mark.parametrize(("path", "banner", "licence"), VENDORED)
def test_front_end_libraries_are_vendored_with_their_licence(path, banner, licence):
    asset = ROOT / "static" / path

    assert banner in asset.read_text(encoding="utf-8")[:3000]
    licences = list(asset.parent.glob("LICENSE*"))
    assert len(licences) == 1
    assert licences[0].read_text(encoding="utf-8").startswith(licence)


def test_our_script_sends_the_csrf_token_with_htmx_requests():
    script = (ROOT / "static/js/app.js").read_text(encoding="utf-8")

    assert 'addEventListener("htmx:configRequest"' in script
    assert 'event.detail.headers["X-CSRFToken"] = token' in script
    assert 'meta[name="csrf-token"]' in script


@pytest.mark.django_db
def test_rendered_pages_load_the_vendored_assets_and_only_static_scripts(enterprise):
    browser = browser_as(member_of(enterprise, Role.OWNER), enterprise)
    pages = ["/", "/accounts/organization/", "/accounts/organization/members/", "/accounts/organization/tokens/new/"]

    for url in pages:
        html = browser.get(url).content.decode()
        scripts = re.findall(r"<script\b[^>]*>", html)
        assert scripts == [
            '<script src="/static/vendor/bootstrap/bootstrap.bundle.min.js" defer>',
            '<script src="/static/vendor/htmx/htmx.min.js" defer>',
            '<script src="/static/js/app.js" defer>',
        ], url
        assert '<link rel="stylesheet" href="/static/vendor/bootstrap/bootstrap.min.css">' in html
        assert re.search(r'<meta name="csrf-token" content="[A-Za-z0-9]{32,}">', html), url
        assert EVENT_HANDLER.findall(html) == [], url


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/static/vendor/bootstrap/bootstrap.min.css",
        "/static/vendor/htmx/htmx.min.js",
        "/static/vendor/chartjs/chart.umd.js",
        "/static/js/app.js",
        "/static/css/app.css",
    ],
)
def test_static_assets_are_served(client, path):
    response = client.get(path)

    assert response.status_code == 200
