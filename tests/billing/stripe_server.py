"""A real localstripe server for the Stripe tests: started once per test session as a subprocess on a free port,
with the real `stripe` SDK pointed at it (`STRIPE_API_BASE`), and stopped at the end.

localstripe keeps its state in memory and delivers signed webhooks (`POST /_config/webhooks/<name>` registers a
URL, a secret and the event types) about a second after the change. It would also pickle its state to
/tmp/localstripe.pickle after every write, a file other processes on this machine may share: the launcher turns
that off, so each session starts from scratch and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import stripe

SECRET_KEY = "sk_test_localstripe_computenet"
PUBLISHABLE_KEY = "pk_test_localstripe_computenet"
WEBHOOK_SECRET = "whsec_test_localstripe_computenet"
# The events our endpoint is registered for (as one would in Stripe's dashboard).
WEBHOOK_EVENTS = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "payout.paid",
    "payout.failed",
]
# Where late deliveries of a finished test go: nowhere (a closed port), so they cannot land in the next test.
NOWHERE = "http://127.0.0.1:9/"
# localstripe waits 1 s before sending an event; a margin for a busy machine.
LATE_DELIVERY_SECONDS = 1.5

_LAUNCHER = """
import sys
import localstripe.resources as resources
resources.Store.dump_to_disk = lambda self: None
sys.argv = ["localstripe", "--port", sys.argv[1], "--from-scratch"]
from localstripe.server import start
start()
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    """Start localstripe; yield its base URL once it answers; stop it at the end of the session."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="localstripe-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [sys.executable, "-c", _LAUNCHER, str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"localstripe exited with code {process.returncode}; see {log.name}")
            try:
                if requests.get(f"{url}/v1/customers", auth=(SECRET_KEY, ""), timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"localstripe did not answer on {url} within 30 s; see {log.name}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@dataclass
class LocalStripe:
    """The running localstripe and what a test does with it directly (what a browser or Stripe's dashboard would
    do), through the real SDK."""

    url: str
    # When this test's fixture sent earlier tests' late webhooks nowhere (see `deliver_webhooks_to`).
    quiet_since: float = 0.0

    @property
    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(SECRET_KEY, base_addresses={"api": self.url})

    def deliver_webhooks_to(self, base_url: str) -> None:
        """Register our webhook endpoint on `base_url` (a live server) for `WEBHOOK_EVENTS`. localstripe sends an
        event a second after it happened, to whatever is registered then: wait until an earlier test's events have
        gone nowhere, so that none lands in this test's database."""
        time.sleep(max(0.0, self.quiet_since + LATE_DELIVERY_SECONDS - time.monotonic()))
        self._register(f"{base_url}/api/v1/stripe/webhook")

    def stop_webhooks(self) -> None:
        self._register(NOWHERE)

    def _register(self, target: str) -> None:
        response = requests.post(
            f"{self.url}/_config/webhooks/computenet",
            json={"url": target, "secret": WEBHOOK_SECRET, "events": WEBHOOK_EVENTS},
            timeout=5,
        )
        response.raise_for_status()

    def card(self, number: str = "4242424242424242") -> str:
        """A card payment method (not yet attached to a customer)."""
        method = self.client.v1.payment_methods.create(
            {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}
        )
        return method.id

    def pay_in_browser(self, payment_intent_id: str, payment_method: str = "pm_card_visa") -> Any:
        """What the Payment Element does when the consumer submits a card: set the method, confirm."""
        self.client.v1.payment_intents.update(payment_intent_id, {"payment_method": payment_method})
        return self.client.v1.payment_intents.confirm(payment_intent_id)


def sign(payload: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """A `Stripe-Signature` header as Stripe computes it: HMAC-SHA256 of `<t>.<body>`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event_id: str, event_type: str, obj: dict[str, Any], *, created: int | None = None) -> bytes:
    """A Stripe event as Stripe (and localstripe) sends it."""
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": event_type,
            "created": int(time.time()) if created is None else created,
            "livemode": False,
            "api_version": "2017-08-15",
            "data": {"object": obj},
        }
    ).encode()


@pytest.fixture
def localstripe(localstripe_url, settings) -> Iterator[LocalStripe]:
    """Stripe on, pointed at the session's localstripe; late webhooks of this test go nowhere afterwards."""
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = localstripe_url
    settings.STRIPE_JS_URL = f"{localstripe_url}/js.stripe.com/v3/"
    settings.STRIPE_ENABLED = True
    server = LocalStripe(localstripe_url)
    server.stop_webhooks()
    server.quiet_since = time.monotonic()
    yield server
    server.stop_webhooks()
