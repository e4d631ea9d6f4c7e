"""Template helpers of the market's pages: money as the API shows it, and booking status labels."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

from marketplace.models import BOOKING_TRANSITIONS, HOLDING_STATUSES, BookingStatus, OfferingStatus
from marketplace.money import format_money

register = template.Library()


@register.filter
def money(amount: Decimal | None, currency: str) -> str:
    """An amount with its currency's minor-unit digits, more only where they are not zero ("12.50", "0.0125")."""
    if amount is None:
        return ""
    return format_money(Decimal(amount), currency)


@register.filter
def cents(amount: Decimal | None) -> str:
    """A derived price (per PFLOP-hour) to two decimals, half-up: four would be false precision on a page."""
    if amount is None:
        return ""
    return f"{Decimal(amount).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):f}"


@register.filter
def booking_status_label(status: str) -> str:
    return str(BookingStatus(status).label) if status in BookingStatus.values else status


@register.filter
def offering_status_label(status: str) -> str:
    return str(OfferingStatus(status).label) if status in OfferingStatus.values else status


@register.simple_tag
def booking_status_labels() -> dict[str, str]:
    """Every status's label, for the live-update script to name a new status in the page's language."""
    return {value: str(label) for value, label in BookingStatus.choices}


@register.filter
def cancellable(status: str) -> bool:
    """Whether a booking in this status may still be cancelled (the transitions map decides)."""
    return BookingStatus.CANCELLED in BOOKING_TRANSITIONS.get(status, frozenset())


@register.filter
def is_running(status: str) -> bool:
    """Pending, confirmed or active: a booking whose window still matters (it holds capacity)."""
    return status in HOLDING_STATUSES


@register.filter
def plain(value: Decimal | None) -> str:
    """A decimal without trailing zeros ("28", "24.5", "989.4"): for quantities, not money."""
    if value is None:
        return ""
    return f"{Decimal(value).normalize():f}"
