"""Template helpers of the operator's finance pages: journal lines as debits and credits, and device-hours."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

from marketplace.money import format_money

register = template.Library()


@register.filter
def debit(amount: Decimal | None, currency: str) -> str:
    """A signed journal amount's debit side (positive amounts), as money; empty for a credit."""
    if amount is None or amount <= 0:
        return ""
    return format_money(Decimal(amount), currency)


@register.filter
def credit(amount: Decimal | None, currency: str) -> str:
    """A signed journal amount's credit side (negative amounts, shown positive), as money; empty for a debit."""
    if amount is None or amount >= 0:
        return ""
    return format_money(-Decimal(amount), currency)


@register.filter
def hours(value: Decimal | None) -> str:
    """Device-hours to at most 6 decimals, without trailing zeros ("8", "1.25", "0.333333")."""
    if value is None:
        return ""
    rounded = Decimal(value).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).normalize()
    return f"{rounded:f}"
