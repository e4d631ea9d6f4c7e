"""Suite 1 of issue 8: property-based fuzzing of the whole HTTP API from its own OpenAPI schema.

schemathesis reads `/api/v1/schema/` from the app itself and, for every operation, generates requests (valid ones
and, in negative mode, ones that break the schema: wrong types, huge numbers, bad UUIDs, unknown enum values,
missing fields). Each request is sent in-process through Django's WSGI handler as someone real (anonymous, an API
token of every scope for every organization kind, or the browser session of every demo membership: every role),
with path parameters that name real objects two times in three. Every response must:

- never be a 5xx (API.md: bad input is a 400, never a 500);
- use a status code the schema documents for the operation, with a documented content type and headers;
- have a body valid against the documented schema for that status.

Each example runs in a savepoint that is rolled back, so examples do not depend on one another and a failure
replays exactly; the caller is picked from the generated request alone (three times in four someone the view's
declared kinds, scope and role let in), so a replay is sent as the same person. The CI budget is FUZZ_EXAMPLES
(default 6) examples per operation, derandomized; `make fuzz` runs it deeper (FUZZ_SEED=n for another walk,
FUZZ_STATS=file.json to see which statuses each kind of caller got).

The Stripe webhook authenticates by signature alone, so it is fuzzed with a test signing secret: three deliveries
in four carry a valid signature over the exact bytes sent (reaching the body checks and the event inbox), the rest
none (a documented 400); neither may ever be a 5xx. tests/billing covers what real events do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core import NotSet

from tests.fuzz.world import Identity, World, build_world

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
# Unset (CI): derandomized, the same examples every run. FUZZ_SEED=n: a different reproducible walk per n.
FUZZ_SEED = os.environ.get("FUZZ_SEED")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

_world: dict[str, World] = {}
# FUZZ_STATS=path writes, per operation, how many responses of each status each kind of caller got: proof that the
# fuzzer reaches past authentication and the 404 (see `make fuzz`).
_stats: Counter[tuple[str, str, int]] = Counter()


def _tally(case, identity, status: int) -> None:
    if os.environ.get("FUZZ_STATS"):
        _stats[(case.operation.label, identity.label.split(" (")[0], status)] += 1


def _write_stats() -> None:
    path = os.environ.get("FUZZ_STATS")
    if not path or not _stats:
        return
    by_operation: dict[str, dict[str, int]] = {}
    for (operation, who, status), n in sorted(_stats.items()):
        by_operation.setdefault(operation, {})
        key = f"{status} {who}"
        by_operation[operation][key] = by_operation[operation].get(key, 0) + n
    Path(path).write_text(json.dumps(by_operation, indent=1, ensure_ascii=False))


@pytest.fixture(scope="module")
def fuzz_world(django_db_setup, django_db_blocker):
    """The seeded world, inside a transaction of this module's own that is rolled back at the end: the rest of the
    suite never sees it. Each test's `db` fixture nests a savepoint inside it."""
    # Django closes "old" connections at each request's start and end; inside a transaction that would lose the
    # test's data (the test client disconnects these for the same reason).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            _world["world"] = build_world()
            yield _world["world"]
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            _world.clear()
            _write_stats()
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


# Loaded from the app itself at collection (drf-spectacular builds it without touching the database).
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", WSGIHandler())
# Credentials come from the world's identities, not from generated Authorization headers or session cookies.
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], with_security_parameters=False
)


@schema.hook
def map_path_parameters(context, path_parameters):
    world = _world.get("world")
    if world is None or not path_parameters:
        return path_parameters
    path = context.operation.path
    return {name: world.real_value(path, name, value) for name, value in path_parameters.items()}


WEBHOOK = "/api/v1/stripe/webhook"
WEBHOOK_SECRET = "whsec_fuzz"


def _stripe_delivery(case, headers: dict, settings) -> dict:
    """Three deliveries in four carry a valid Stripe-Signature over the exact bytes sent, so fuzzed events get
    past the signature into parsing and the event inbox; the rest are unsigned (a documented 400)."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    if isinstance(case.body, NotSet):
        payload = b""
    elif isinstance(case.body, bytes):
        payload = case.body
    else:
        payload = json.dumps(case.body, default=str).encode()
    if zlib.crc32(payload) % 4:
        timestamp = int(time.time())
        signed = f"{timestamp}.".encode() + payload
        digest = hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
        headers["Stripe-Signature"] = f"t={timestamp},v1={digest}"
        headers["Content-Type"] = "application/json"
    return {"data": payload}


def _seeded(test):
    return seed(int(FUZZ_SEED))(test) if FUZZ_SEED else test


@schema.parametrize()
@_seeded
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not FUZZ_SEED,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_operation(case, fuzz_world, db, settings):
    identity = fuzz_world.identity_for(case)
    headers = {**(case.headers or {}), **identity.headers}
    extra = {}
    if case.operation.path == WEBHOOK:
        extra = _stripe_delivery(case, headers, settings)
    with transaction.atomic():
        try:
            response = case.call_and_validate(headers=headers, cookies=identity.cookies, checks=CHECKS, **extra)
            _tally(case, identity, response.status_code)
        except Exception as failure:
            failure.add_note(f"Sent as: {identity.label}")
            raise
        finally:
            transaction.set_rollback(True)


# --- stateful: what one call creates, the next calls use ------------------------------------------------------------

# Callers that can create things (bookings, tokens, invitations, offerings, voucher programs, credit notes...) for
# the sequences to follow: the owner of each organization kind, signed in, and a consumer's all-scope token.
STATEFUL_CALLERS = [
    "session center:owner (owner@lakeside.demo)",
    "session enterprise:owner (owner@blueheron.demo)",
    "session sponsor:owner (officer@voucherfund.demo)",
    "session operator:owner (admin@northstar.demo)",
    "token enterprise:all-scopes",
]
STATEFUL_SCENARIOS = max(3, EXAMPLES)


@pytest.mark.parametrize("caller", STATEFUL_CALLERS)
def test_api_sequences(caller, fuzz_world, db):
    """schemathesis infers which response fields feed which path parameters (a created token's `id` into
    /tokens/{id}, a booking's into /bookings/{booking_id}/cancel, ...) and walks sequences of calls; every response
    on the way meets the same checks. Each sequence runs in a savepoint rolled back at its end."""
    identity = next(i for i in fuzz_world.identities if i.label == caller)
    # Only the operations this caller may call: a sequence spent on 403s would link nothing.
    theirs = schema.include(lambda ctx: identity in fuzz_world.allowed_for(ctx.operation.path, ctx.operation.method))

    class Workflow(theirs.as_state_machine()):
        def setup(self) -> None:
            self.savepoint = transaction.atomic()
            self.savepoint.__enter__()

        def teardown(self) -> None:
            transaction.set_rollback(True)
            self.savepoint.__exit__(None, None, None)

        def get_call_kwargs(self, case) -> dict:
            return {"headers": dict(identity.headers), "cookies": identity.cookies}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            try:
                case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))
                _tally(case, Identity(f"sequence {identity.label}"), response.status_code)
            except Exception as failure:
                failure.add_note(f"Sent as: {identity.label}")
                raise

    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=8,
            deadline=None,
            derandomize=not FUZZ_SEED,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
