"""Fixtures of the billing tests: the real localstripe server the Stripe tests run against."""

from tests.billing.stripe_server import localstripe, localstripe_url  # noqa: F401
