"""A `stripe.HTTPClient` that puts network faults between the real SDK and Stripe (localstripe, or a small
transfer ledger for Connect, which localstripe lacks): each POST to a path takes the next planned fault —
`timeout` (the request never reached Stripe), `500` (Stripe failed it), `lost` (Stripe did it, the answer was lost
on the way back: the SDK sees a timeout). Like Stripe, it answers a repeated Idempotency-Key with the saved answer
of the first request that reached it, so a caller that keeps its key charges once and one that changes it charges
twice — which the tests would see."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import stripe


@dataclass
class Attempt:
    path: str
    key: str | None
    fault: str | None


@dataclass
class FlakyStripe(stripe.HTTPClient):
    faults: dict[str, list[str]] = field(default_factory=dict)
    upstream: stripe.HTTPClient | None = None
    attempts: list[Attempt] = field(default_factory=list)
    # What reached Stripe, by idempotency key: the saved answer Stripe replays for the same key.
    done: dict[str, tuple[str, int, dict]] = field(default_factory=dict)
    transfers: list[dict] = field(default_factory=list)

    name = "flaky"

    def __post_init__(self) -> None:
        super().__init__()
        self.upstream = self.upstream or stripe.RequestsClient(timeout=10)

    def _sleep_time_seconds(self, num_retries: int, *args) -> float:
        return 0.01  # the SDK's backoff between its own retries, shortened

    def keys(self, path: str) -> list[str | None]:
        return [attempt.key for attempt in self.attempts if attempt.path == path]

    def reached(self, path: str) -> int:
        """How many distinct requests to `path` Stripe actually carried out."""
        return sum(1 for key, _answer in self.done.items() if key.startswith(f"{path}|"))

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        path = urlsplit(url).path
        if method.lower() != "post":
            return self._forward(method, url, headers, post_data)
        key = dict(headers or {}).get("Idempotency-Key")
        planned = self.faults.get(path) or []
        fault = planned.pop(0) if planned else None
        self.attempts.append(Attempt(path, key, fault))
        if fault == "timeout":
            raise stripe.APIConnectionError("Request timed out (injected)", should_retry=True)
        if fault == "500":
            body = {"error": {"type": "api_error", "message": "An unknown error occurred (injected)."}}
            return json.dumps(body), 500, {"request-id": "req_injected"}
        stored = f"{path}|{key}"
        if key and stored in self.done:
            answer = self.done[stored]  # Stripe's idempotency: the first request's answer, nothing done again
        else:
            answer = self._forward(method, url, headers, post_data)
            if key and answer[1] < 500:
                self.done[stored] = answer
        if fault == "lost":
            raise stripe.APIConnectionError("Request timed out (injected, after Stripe did it)", should_retry=True)
        return answer

    def _forward(self, method, url, headers, post_data):
        if urlsplit(url).path == "/v1/transfers":
            return self._transfer(post_data)
        return self.upstream.request(method, url, headers, post_data)

    def _transfer(self, post_data):
        form = dict(parse_qsl(post_data or "", keep_blank_values=True))
        transfer = {
            "id": f"tr_flaky{len(self.transfers) + 1:04d}",
            "object": "transfer",
            "amount": int(form["amount"]),
            "amount_reversed": 0,
            "created": int(time.time()),
            "currency": form["currency"],
            "description": form.get("description"),
            "destination": form["destination"],
            "livemode": False,
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            "reversals": {"object": "list", "data": [], "has_more": False, "url": "/v1/transfers/x/reversals"},
            "reversed": False,
            "transfer_group": form.get("transfer_group"),
        }
        self.transfers.append(transfer)
        return json.dumps(transfer), 200, {"request-id": f"req_{transfer['id']}"}

    def close(self) -> None:
        pass
