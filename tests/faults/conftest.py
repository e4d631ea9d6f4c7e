"""Fixtures of the fault-injection suite: the real localstripe server the Stripe tests run against."""

from tests.billing.stripe_server import localstripe, localstripe_url  # noqa: F401
