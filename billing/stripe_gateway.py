"""The only module that talks to Stripe: the real `stripe` SDK configured from settings (`STRIPE_SECRET_KEY`,
`STRIPE_API_BASE`), amounts converted to the currency's minor units, deterministic idempotency keys passed by the
callers, and Stripe's errors turned into domain errors a page or the API shows as they are.

Nothing here touches the database: callers (billing.services.stripe_payments) call these functions outside any
transaction or row lock (STYLE.md rule 3), then record what Stripe answered.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import stripe
from django.conf import settings
from django.utils.translation import gettext as _

from accounts.errors import DomainError, InvalidInput
from marketplace.money import CURRENCY_MINOR_UNITS

logger = logging.getLogger(__name__)
T = TypeVar("T")
REQUEST_TIMEOUT_SECONDS = 30


class StripeDisabled(DomainError):
    status_code = 409
    default_code = "stripe_disabled"


class PaymentDeclined(DomainError):
    """The card (or other method) was refused: nothing was charged; the consumer may try another."""

    status_code = 402
    default_code = "payment_declined"
    payment_intent_id: str | None = None


class StripeUnavailable(DomainError):
    """Stripe could not be reached or was overloaded: transient, worth retrying (tasks retry these)."""

    status_code = 503
    default_code = "stripe_unavailable"


class StripeRequestFailed(DomainError):
    """Stripe refused the request itself (a bad parameter, a wrong key): retrying the same request will not help."""

    status_code = 502
    default_code = "stripe_error"


# None: the SDK's own HTTP client (requests). The fault-injection tests put a `stripe.HTTPClient` here that fails
# requests with timeouts and server errors (the one layer that is swapped, as in billing/stripe_api.py).
HTTP_CLIENT: stripe.HTTPClient | None = None


def enabled() -> bool:
    return bool(settings.STRIPE_ENABLED and settings.STRIPE_SECRET_KEY)


def client() -> stripe.StripeClient:
    """A client for the configured account and API base (a local localstripe in tests)."""
    if not enabled():
        raise StripeDisabled(_("Card payments are not enabled on this platform; pay by bank transfer."))
    base = settings.STRIPE_API_BASE or stripe.DEFAULT_API_BASE
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": base.rstrip("/")},
        # The SDK retries connection errors itself, reusing our idempotency key, so a retry never charges twice.
        max_network_retries=2,
        # A hung socket must not hold a page or a task for the SDK's default 80 s per attempt.
        http_client=HTTP_CLIENT or stripe.RequestsClient(timeout=REQUEST_TIMEOUT_SECONDS),
    )


# --- amounts ------------------------------------------------------------------------------------------------------


def to_minor(amount: Decimal, currency: str) -> int:
    """1,000.00 CNY → 100000: Stripe counts in the currency's minor units. Refuses an amount that is not whole
    minor units (it would be silently rounded otherwise)."""
    minor = amount.scaleb(CURRENCY_MINOR_UNITS[currency.upper()])
    if minor != minor.to_integral_value():
        raise InvalidInput(
            _("%(amount)s is not a whole number of %(currency)s minor units.")
            % {"amount": amount, "currency": currency}
        )
    return int(minor)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(int(minor)).scaleb(-CURRENCY_MINOR_UNITS[currency.upper()])


# --- errors -------------------------------------------------------------------------------------------------------


def _call(what: str, call: Callable[[], T]) -> T:
    """Run one Stripe call, turning its errors into domain errors (logged with Stripe's request id)."""
    try:
        return call()
    except stripe.CardError as error:
        logger.info("stripe.declined", extra={"call": what, "code": error.code, "request_id": error.request_id})
        declined = PaymentDeclined(
            _("The payment was declined: %(message)s") % {"message": error.user_message or error.code or ""},
            extra={"decline_code": getattr(error, "code", None) or ""},
        )
        # Stripe names the PaymentIntent a declined off-session charge created (so it can be recorded as failed).
        declined.payment_intent_id = id_of(getattr(getattr(error, "error", None), "payment_intent", None))
        raise declined from error
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        logger.warning("stripe.unavailable", extra={"call": what, "error": str(error)})
        raise StripeUnavailable(_("Stripe could not be reached; try again in a moment.")) from error
    except stripe.StripeError as error:
        status = getattr(error, "http_status", None) or 0
        logger.warning(
            "stripe.error",
            extra={"call": what, "status": status, "code": error.code, "request_id": error.request_id},
        )
        if status >= 500:
            raise StripeUnavailable(_("Stripe could not handle the request; try again in a moment.")) from error
        raise StripeRequestFailed(
            _("Stripe refused the request: %(message)s") % {"message": error.user_message or str(error)}
        ) from error


# --- customers ----------------------------------------------------------------------------------------------------


def customer_create(*, organization_id: str, name: str, email: str = "", idempotency_key: str) -> str:
    """A Stripe Customer for a consumer organization; returns its id."""
    params: dict[str, Any] = {"name": name, "metadata": {"organization_id": organization_id}}
    if email:
        params["email"] = email
    customer = _call(
        "customer_create",
        lambda: client().v1.customers.create(params, {"idempotency_key": idempotency_key}),
    )
    return customer.id


def payment_method_attach(*, payment_method: str, customer_id: str) -> str:
    """Attach a payment method to a customer (saving a card for autopay); returns its id."""
    attached = _call(
        "payment_method_attach",
        lambda: client().v1.payment_methods.attach(payment_method, {"customer": customer_id}),
    )
    return attached.id


def payment_method_retrieve(payment_method: str) -> stripe.PaymentMethod:
    """A saved payment method, for its card's brand and last four digits as Stripe reports them."""
    return _call("payment_method_retrieve", lambda: client().v1.payment_methods.retrieve(payment_method))


def payment_method_detach(payment_method: str) -> None:
    """Detach a saved card from its customer: it can no longer be charged off-session."""
    _call("payment_method_detach", lambda: client().v1.payment_methods.detach(payment_method))


# --- setup intents ------------------------------------------------------------------------------------------------


def setup_intent_create(*, customer_id: str, metadata: dict[str, str], idempotency_key: str) -> stripe.SetupIntent:
    """A SetupIntent saving a card for off-session charges (autopay), confirmed by the consumer in the browser."""
    params: dict[str, Any] = {"customer": customer_id, "usage": "off_session", "metadata": metadata}
    return _call(
        "setup_intent_create",
        lambda: client().v1.setup_intents.create(params, {"idempotency_key": idempotency_key}),  # type: ignore[arg-type]
    )


def setup_intent_retrieve(setup_intent_id: str) -> stripe.SetupIntent:
    return _call("setup_intent_retrieve", lambda: client().v1.setup_intents.retrieve(setup_intent_id))


# --- payment intents ----------------------------------------------------------------------------------------------


def payment_intent_create(
    *,
    amount: Decimal,
    currency: str,
    customer_id: str,
    metadata: dict[str, str],
    idempotency_key: str,
    payment_method: str | None = None,
    off_session: bool = False,
) -> stripe.PaymentIntent:
    """A PaymentIntent for `amount` (converted to minor units). With `off_session`, confirmed at once against the
    saved `payment_method` (autopay): a decline raises `PaymentDeclined`."""
    params: dict[str, Any] = {
        "amount": to_minor(amount, currency),
        "currency": currency.lower(),
        "customer": customer_id,
        "metadata": metadata,
    }
    if payment_method:
        params["payment_method"] = payment_method
    if off_session:
        params["confirm"] = True
        params["off_session"] = True
    return _call(
        "payment_intent_create",
        lambda: client().v1.payment_intents.create(params, {"idempotency_key": idempotency_key}),  # type: ignore[arg-type]
    )


def payment_intent_retrieve(payment_intent_id: str) -> stripe.PaymentIntent:
    return _call("payment_intent_retrieve", lambda: client().v1.payment_intents.retrieve(payment_intent_id))


def payment_intent_cancel(payment_intent_id: str) -> stripe.PaymentIntent:
    return _call("payment_intent_cancel", lambda: client().v1.payment_intents.cancel(payment_intent_id))


def id_of(value: Any) -> str | None:
    """The id of a Stripe reference: an id string, an expanded object, or an event's plain JSON object."""
    if value is None or isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        return value.get("id")
    return getattr(value, "id", None)


def payment_intent_charge(payment_intent: Any) -> str | None:
    """The id of a PaymentIntent's latest charge (an id or an expanded object, depending on the API version)."""
    if isinstance(payment_intent, dict):
        return id_of(payment_intent.get("latest_charge"))
    return id_of(getattr(payment_intent, "latest_charge", None))


def charge_refunds(charge_id: str) -> list[dict[str, Any]]:
    """The refunds of a charge, as plain dicts (a `charge.refunded` event on a recent API version lists none)."""
    refunds = _call("refund_list", lambda: client().v1.refunds.list({"charge": charge_id, "limit": 100}))
    return [refund.to_dict() for refund in refunds.data]


# --- refunds ------------------------------------------------------------------------------------------------------


def refund_create(
    *, payment_intent_id: str, amount: Decimal, currency: str, metadata: dict[str, str], idempotency_key: str
) -> stripe.Refund:
    """Refund part of a PaymentIntent's charge."""
    params: dict[str, Any] = {
        "payment_intent": payment_intent_id,
        "amount": to_minor(amount, currency),
        "metadata": metadata,
    }
    return _call(
        "refund_create",
        lambda: client().v1.refunds.create(params, {"idempotency_key": idempotency_key}),  # type: ignore[arg-type]
    )


# --- webhooks -----------------------------------------------------------------------------------------------------


class BadSignature(InvalidInput):
    default_code = "invalid_signature"


def event_verify(*, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event a webhook request carries, once its `Stripe-Signature` proves Stripe sent this very body recently
    (HMAC with `STRIPE_WEBHOOK_SECRET`, at most 5 minutes old). Anything else: `BadSignature` (400)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise BadSignature(_("Stripe webhooks are not configured here."), code="webhook_not_configured")
    if not signature:
        raise BadSignature(_("The Stripe-Signature header is missing."), code="missing_signature")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, tolerance=300)
    except stripe.SignatureVerificationError as error:
        raise BadSignature(_("The Stripe-Signature does not verify: %(why)s") % {"why": str(error)}) from error
    except UnicodeDecodeError as error:
        raise BadSignature(_("The webhook body is not UTF-8.")) from error
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError) as error:  # RecursionError: nested deeper than the parser goes
        raise InvalidInput(_("The webhook body is not JSON."), code="malformed_json") from error
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not _STRIPE_EVENT_ID.fullmatch(event["id"])
        or not _STRIPE_EVENT_TYPE.fullmatch(event["type"])
        or not _storable_event(event)
    ):
        raise InvalidInput(_("The webhook body is not a Stripe event."), code="invalid_event")
    return event


# What Stripe's event ids and types look like (`evt_1Q…`, `payment_intent.succeeded`), within the inbox's columns.
_STRIPE_EVENT_ID = re.compile(r"[A-Za-z0-9_\-]{1,100}")
_STRIPE_EVENT_TYPE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


def _storable_event(event: dict[str, Any]) -> bool:
    try:
        return _storable(event)
    except RecursionError:
        return False


def _storable(value: Any) -> bool:
    """Whether PostgreSQL can store this JSON: no NUL character and no lone UTF-16 surrogate in any key or string
    (json.loads accepts both; Stripe never sends them, and storing them would fail the request with a 500)."""
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(key) and _storable(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True
