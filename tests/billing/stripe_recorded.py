"""Stripe Connect at the SDK's HTTP layer: the real `stripe` SDK builds, signs and serializes each request and parses
each answer; only the network is replaced, by a client that keeps every request for the test to check and answers
with a recorded Stripe-shaped response (the local `localstripe` server does not implement Connect transfers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import stripe
from django.db import connection

SECRET_KEY = "sk_test_payouts_recorded"


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    # Whether a database transaction was open when the SDK called out (STYLE.md rule 3: it must not be).
    in_transaction: bool


def transfer_response(
    *, id: str, amount: int, currency: str, destination: str, transfer_group: str, created: int, metadata: dict
) -> dict[str, Any]:
    """A transfer object as Stripe's API returns it (2025 API version, trimmed of nothing the SDK needs)."""
    return {
        "id": id,
        "object": "transfer",
        "amount": amount,
        "amount_reversed": 0,
        "balance_transaction": f"txn_{id[3:]}",
        "created": created,
        "currency": currency,
        "description": None,
        "destination": destination,
        "destination_payment": f"py_{id[3:]}",
        "livemode": False,
        "metadata": metadata,
        "reversals": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": f"/v1/transfers/{id}/reversals",
        },
        "reversed": False,
        "source_transaction": None,
        "source_type": "card",
        "transfer_group": transfer_group,
    }


def error_response(*, code: str, message: str, type: str = "invalid_request_error") -> dict[str, Any]:
    return {
        "error": {
            "type": type,
            "code": code,
            "message": message,
            "request_log_url": "https://dashboard.stripe.com/test/logs/req_x",
        }
    }


class RecordedStripe(stripe.HTTPClient):
    """Answers each request with the next recorded (status, body); fails the test on a request it has no answer for."""

    name = "recorded"

    def __init__(self, *answers: tuple[int, dict[str, Any]]) -> None:
        super().__init__()
        self.answers = list(answers)
        self.sent: list[Sent] = []

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        parts = urlsplit(url)
        self.sent.append(
            Sent(
                method=method.upper(),
                path=parts.path,
                form=dict(parse_qsl(post_data or parts.query, keep_blank_values=True)),
                headers=dict(headers or {}),
                in_transaction=connection.in_atomic_block,
            )
        )
        assert self.answers, f"unexpected Stripe request {method} {url}"
        status, body = self.answers.pop(0)
        return json.dumps(body), status, {"Request-Id": f"req_{len(self.sent)}", "Content-Type": "application/json"}

    def request_stream(self, method, url, headers, post_data=None, *, _usage=None):  # pragma: no cover
        raise AssertionError("no streaming requests are expected")

    def close(self) -> None:
        pass
