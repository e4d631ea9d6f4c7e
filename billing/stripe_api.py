"""The platform's own Stripe client for reading its account (balance history, payouts, charges) during
reconciliation.

One place builds it from the settings: `STRIPE_SECRET_KEY`, and `STRIPE_API_BASE` as the SDK's `api` base address
(a local Stripe stand-in in development and tests). Requests go through the real `stripe` SDK, which does the
serialization, paging parameters and retries; `HTTP_CLIENT` lets a test put a `stripe.HTTPClient` that answers
with recorded Stripe responses underneath the SDK, the one layer that is swapped.
"""

from __future__ import annotations

import stripe
from django.conf import settings
from django.utils.translation import gettext as _

from accounts.errors import Conflict

# The SDK retries a request that failed on the network or with a 409/5xx this many times (with its own backoff)
# before the error reaches us; a run that still fails resumes from its cursor next time.
MAX_NETWORK_RETRIES = 2
# Seconds one HTTP request may take: a page of 100 balance transactions is small, a hung socket must not hold the
# import (and its advisory lock) for the SDK's default 80 s per attempt.
REQUEST_TIMEOUT_SECONDS = 30

# None: the SDK's own HTTP client (requests). Tests set a recorded-responses client here.
HTTP_CLIENT: stripe.HTTPClient | None = None


def stripe_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client() -> stripe.StripeClient:
    """A client for the platform's Stripe account. Raises `Conflict` (`stripe_disabled`) when no key is set, so
    a page can say so instead of the SDK failing with an authentication error."""
    if not stripe_enabled():
        raise Conflict(_("Stripe is not configured: set STRIPE_SECRET_KEY."), code="stripe_disabled")
    base_addresses = {"api": settings.STRIPE_API_BASE.rstrip("/")} if settings.STRIPE_API_BASE else None
    http_client = HTTP_CLIENT or stripe.RequestsClient(timeout=REQUEST_TIMEOUT_SECONDS)
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base_addresses,
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=http_client,
    )
