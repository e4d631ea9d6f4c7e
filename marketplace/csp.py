"""The Content-Security-Policy header of every response.

Templates carry no inline script, no `on*=` handler and no `style=` attribute (tests/accounts/test_page_assets.py
and tests/security/test_abuse.py scan them), so the policy allows scripts and styles from our own origin only: an
injected `<script>` or handler that slipped past escaping would not run. Our own middleware rather than
django-csp: the policy is one short string, and the only part that varies (Stripe's origin, the WebSocket host) is
read from settings and the request each time, which tests that switch Stripe on rely on.

Card payment pages load stripe.js from `STRIPE_JS_URL` and Stripe's frames; when Stripe is configured its origins
are allowed for scripts, frames and the script's own requests (Stripe's documented set for the real service, the
configured origin for a stand-in such as localstripe).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"
REAL_STRIPE_JS_ORIGIN = "https://js.stripe.com"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def stripe_sources() -> dict[str, list[str]]:
    """The extra sources each directive needs for stripe.js, or none when card payments are not configured."""
    if not (settings.STRIPE_ENABLED and settings.STRIPE_PUBLISHABLE_KEY):
        return {}
    origin = _origin(settings.STRIPE_JS_URL)
    if origin == REAL_STRIPE_JS_ORIGIN:
        return {
            "script-src": [origin],
            "frame-src": [origin, "https://hooks.stripe.com"],
            "connect-src": ["https://api.stripe.com"],
        }
    return {"script-src": [origin], "frame-src": [origin], "connect-src": [origin]}


def policy(request: HttpRequest) -> str:
    """The policy for `request`: WebSockets (Channels' live updates) go back to the host the page came from."""
    try:
        host = request.get_host()
    except DisallowedHost:  # answered 400 already; the policy then allows no WebSocket at all
        host = ""
    directives: dict[str, list[str]] = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", f"ws://{host}", f"wss://{host}"] if host else ["'self'"],
        "frame-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    for directive, sources in stripe_sources().items():
        directives[directive].extend(sources)
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """Sets the policy on every response that does not carry one already."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy(request)
        return response
