"""The billing rules of API.md as small pure functions, shared by metering, rating and the pages."""

from __future__ import annotations

from decimal import Decimal

from marketplace.money import round_money

SECONDS_PER_HOUR = Decimal(3600)


def usage_amount(device_seconds: Decimal, unit_price: Decimal, currency: str) -> Decimal:
    """Rule 2: round(device-hours × unit price) with device-hours exact: one division, then one rounding."""
    return round_money(device_seconds * unit_price / SECONDS_PER_HOUR, currency)


def device_hours(device_seconds: Decimal) -> Decimal:
    """Rule 2's device-hours (Σ device-seconds / 3600), to 28 significant digits: for display, never for rounding
    money (use `usage_amount`)."""
    return device_seconds / SECONDS_PER_HOUR
