"""Stripe Connect transfers to centers' connected accounts, through the real `stripe` SDK.

Only the call itself lives here; `billing.services.payouts` decides when to make it (never inside a transaction or
while a row lock is held, STYLE.md rule 3) and what it means for the books. Stripe's own payments (PaymentIntents,
refunds) are `billing.stripe_gateway`'s.

Every transfer carries a deterministic idempotency key (`payout-<id>-transfer`, with the attempt number after a
failure finance retried): a crash after Stripe answered, a task run twice or two workers racing all send the same
key, and Stripe answers them all with the one transfer it made.

The HTTP client is the SDK's default unless the setting `STRIPE_CONNECT_HTTP_CLIENT` holds a `stripe.HTTPClient`:
tests set it to a client that checks each request and answers with a recorded Stripe response, because the local
`localstripe` server the rest of the suite uses does not implement Connect. The SDK still builds and serializes
every request and parses every answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import stripe
from django.conf import settings
from django.utils.translation import gettext as _

from accounts.errors import Conflict
from marketplace.money import CURRENCY_MINOR_UNITS

logger = logging.getLogger(__name__)

# Network failures whose outcome is unknown: Stripe may or may not have made the transfer. They are retried with
# the same idempotency key (so at most one transfer exists), never reported as a failed payout.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
)


class TransferUnknown(Exception):
    """Stripe could not be reached or answered with a server error: try again later with the same key."""


@dataclass(frozen=True)
class Transfer:
    id: str
    created: datetime
    amount_minor: int
    currency: str
    destination: str


def to_minor_units(amount: Decimal, currency: str) -> int:
    """An amount in the currency's minor units, as Stripe wants it (1234.50 CNY → 123450; 1500 JPY → 1500).
    Refuses an amount with more decimals than the currency has: rounding here would pay a center a different
    sum than its statement says."""
    digits = CURRENCY_MINOR_UNITS[currency]
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise ValueError(f"{amount} {currency} is not a whole number of minor units")
    return int(minor)


def connect_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def _client() -> stripe.StripeClient:
    if not connect_enabled():
        raise Conflict(_("Stripe is not configured on this platform (no secret key)."), code="stripe_disabled")
    base = settings.STRIPE_API_BASE
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": base.rstrip("/")} if base else None,
        http_client=getattr(settings, "STRIPE_CONNECT_HTTP_CLIENT", None),
        # The SDK retries connection errors and 409/5xx itself, with the same idempotency key.
        max_network_retries=2,
    )


def transfer_create(
    *,
    amount: Decimal,
    currency: str,
    destination: str,
    transfer_group: str,
    idempotency_key: str,
    metadata: dict[str, str],
    description: str = "",
) -> Transfer:
    """Create (or, for a key already used, find) a transfer to `destination`. Raises `TransferUnknown` when the
    outcome is unknown and `stripe.StripeError` when Stripe refused it (an inactive account, an empty balance)."""
    params: dict = {
        "amount": to_minor_units(amount, currency),
        "currency": currency.lower(),
        "destination": destination,
        "transfer_group": transfer_group,
        "metadata": metadata,
    }
    if description:
        params["description"] = description[:350]
    try:
        made = _client().v1.transfers.create(params=params, options={"idempotency_key": idempotency_key})
    except TRANSIENT_ERRORS as exc:
        raise TransferUnknown(str(exc)) from exc
    except stripe.APIError as exc:
        # A 5xx after the SDK's own retries: Stripe may have made it; the same key finds it next time.
        raise TransferUnknown(str(exc)) from exc
    logger.info("stripe.transfer_created", extra={"transfer": made.id, "key": idempotency_key})
    return Transfer(
        id=made.id,
        created=datetime.fromtimestamp(made.created, tz=UTC),
        amount_minor=made.amount,
        currency=made.currency.upper(),
        destination=str(made.destination),
    )


def error_message(exc: stripe.StripeError) -> str:
    """Stripe's sentence for a refused request, with its code when it gave one."""
    message = exc.user_message or str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    return f"{message} ({code})" if code else message
