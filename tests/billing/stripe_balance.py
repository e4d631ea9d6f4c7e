"""The platform's Stripe account at the SDK's HTTP layer, for the reconciliation tests: the real `stripe` SDK builds
each request (paging parameters, filters, authentication) and parses each answer; only the network is replaced, by
a client that answers from Stripe-shaped responses recorded per method, path and query, keeps every request for
the test to check, and can be told to break on one of them (localstripe implements neither balance transactions nor
payouts). A request with no recorded answer gets Stripe's own 404, so a wrong query fails the test loudly."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
from django.db import connection

SECRET_KEY = "sk_test_balance_recorded"
API_BASE = "http://stripe-balance.recorded.test"

Query = dict[str, str]


@dataclass(frozen=True)
class Sent:
    method: str
    host: str
    path: str
    query: Query
    authorization: str
    # Whether a database transaction was open when the SDK called out (STYLE.md rule 3: it must not be).
    in_transaction: bool

    @property
    def call(self) -> tuple[str, str, Query]:
        return (self.method, self.path, self.query)


class WorkerKilled(BaseException):
    """What a killed worker looks like from inside: not an Exception, so nothing gets to mark the run failed."""


def _key(method: str, path: str, query: Query) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    return (method.upper(), path, tuple(sorted(query.items())))


class RecordedStripeAccount(stripe.HTTPClient):
    """Answers each request with the response recorded for its method, path and query."""

    name = "recorded-balance"

    def __init__(self, *, delay_seconds: float = 0.0) -> None:
        super().__init__()
        # How long each answer takes, as Stripe over the internet would: lets a browser test watch a run progress.
        self.delay_seconds = delay_seconds
        self.responses: dict[tuple, tuple[int, dict[str, Any]]] = {}
        self.failures: dict[tuple, BaseException] = {}
        self.sent: list[Sent] = []

    # --- recording ---

    def answer(self, path: str, query: Query, body: dict[str, Any], status: int = 200) -> None:
        self.responses[_key("GET", path, query)] = (status, body)

    def break_on(self, path: str, query: Query, error: BaseException) -> None:
        self.failures[_key("GET", path, query)] = error

    def repair(self) -> None:
        self.failures.clear()

    def calls(self) -> list[tuple[str, str, Query]]:
        return [sent.call for sent in self.sent]

    # --- stripe.HTTPClient ---

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.sent.append(
            Sent(
                method=method.upper(),
                host=f"{parts.scheme}://{parts.netloc}",
                path=parts.path,
                query=query,
                authorization=dict(headers or {}).get("Authorization", ""),
                in_transaction=connection.in_atomic_block,
            )
        )
        key = _key(method, parts.path, query)
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if key in self.failures:
            raise self.failures[key]
        status, body = self.responses.get(key) or (
            404,
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No recorded answer for {method.upper()} {parts.path}?{parts.query}",
                }
            },
        )
        return json.dumps(body), status, {"Request-Id": f"req_{len(self.sent)}", "Content-Type": "application/json"}

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):  # pragma: no cover
        raise AssertionError("no streaming requests are expected")

    def close(self) -> None:
        pass


# --- Stripe-shaped objects (API version 2025, amounts in minor units) -------------------------------------------------


def ts(text: str) -> int:
    """A Unix timestamp of an instant written "2026-11-20 10:00" (UTC)."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp())


def balance_transaction(
    id: str,
    *,
    amount: int,
    fee: int,
    created: int,
    type: str = "charge",
    source: str | None = None,
    currency: str = "cny",
    description: str | None = None,
) -> dict[str, Any]:
    fee_details = (
        [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else []
    )
    return {
        "id": id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 2 * 86400,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": "payout" if type == "payout" else type,
        "source": source,
        "status": "available",
        "type": type,
    }


def payout(
    id: str,
    *,
    amount: int,
    arrival_date: int,
    status: str = "paid",
    currency: str = "cny",
    failure_message: str | None = None,
) -> dict[str, Any]:
    return {
        "id": id,
        "object": "payout",
        "amount": amount,
        "application_fee": None,
        "application_fee_amount": None,
        "arrival_date": arrival_date,
        "automatic": True,
        "balance_transaction": f"txn_{id}",
        "created": arrival_date - 86400,
        "currency": currency,
        "description": "STRIPE PAYOUT",
        "destination": "ba_platform",
        "failure_balance_transaction": f"txn_fail_{id}" if status == "failed" else None,
        "failure_code": "account_closed" if status == "failed" else None,
        "failure_message": failure_message,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "original_payout": None,
        "reconciliation_status": "completed" if status == "paid" else "not_applicable",
        "reversed_by": None,
        "source_type": "card",
        "statement_descriptor": None,
        "status": status,
        "type": "bank_account",
    }


def charge(id: str, *, amount: int, payment_intent: str | None, currency: str = "cny") -> dict[str, Any]:
    return {
        "id": id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "balance_transaction": f"txn_{id}",
        "captured": True,
        "created": ts("2026-11-18 09:00"),
        "currency": currency,
        "customer": "cus_recorded",
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": payment_intent,
        "refunded": False,
        "status": "succeeded",
    }


def list_page(path: str, items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": path, "has_more": has_more, "data": items}


def record_list(
    account: RecordedStripeAccount, path: str, items: list[dict[str, Any]], query: Query | None = None, limit: int = 100
) -> list[Query]:
    """Record `items` (newest first, as Stripe lists) as the pages a client paging with `limit` and
    `starting_after` gets; returns the query of each page in order."""
    queries = []
    base = {**(query or {}), "limit": str(limit)}
    start = 0
    while True:
        page = items[start : start + limit]
        page_query = dict(base) if start == 0 else {**base, "starting_after": items[start - 1]["id"]}
        has_more = start + limit < len(items)
        account.answer(path, page_query, list_page(path, page, has_more))
        queries.append(page_query)
        if not has_more:
            return queries
        start += limit
