"""Currencies the market trades in, and the one rounding rule for money (API.md, billing rule 2).

Amounts are `Decimal` and are rounded once, half-up, to the currency's minor unit: 2 decimals for CNY, USD and
EUR, 0 for JPY. A currency missing here is refused at the edge (offerings, organizations), so every amount the
platform computes has a known minor unit.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 code → digits after the decimal point of its minor unit.
CURRENCY_MINOR_UNITS: dict[str, int] = {
    "CNY": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "SGD": 2,
    "CHF": 2,
    "JPY": 0,
    "KRW": 0,
}

SUPPORTED_CURRENCIES: frozenset[str] = frozenset(CURRENCY_MINOR_UNITS)


def is_supported_currency(currency: str) -> bool:
    return currency in CURRENCY_MINOR_UNITS


def minor_unit_quantum(currency: str) -> Decimal:
    """`Decimal("0.01")` for CNY, `Decimal("1")` for JPY. Raises KeyError for an unsupported currency."""
    return Decimal(1).scaleb(-CURRENCY_MINOR_UNITS[currency])


def round_money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half-up to `currency`'s minor unit. Raises KeyError for an unsupported currency."""
    if isinstance(amount, float) or not isinstance(amount, Decimal | int):
        # A float here would already have lost exactness (invariant 5); refuse it loudly instead of hiding it.
        raise TypeError(f"round_money needs a Decimal, got {type(amount).__name__}")
    return Decimal(amount).quantize(minor_unit_quantum(currency), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    """`amount` as an API string: at least the currency's minor-unit digits, more only when they are not zero.

    "12.5000" in CNY is shown as "12.50" and "12.3456" stays "12.3456": nothing is rounded away, only trailing
    zeros beyond the minor unit are dropped. An unsupported currency is shown with 2 digits.
    """
    digits = CURRENCY_MINOR_UNITS.get(currency, 2)
    normalized = amount.normalize()
    if normalized.as_tuple().exponent > -digits:
        normalized = amount.quantize(Decimal(1).scaleb(-digits))
    return f"{normalized:f}"
