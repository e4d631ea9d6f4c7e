"""Failure budgets against guessing: failed logins per account and per IP, invalid API tokens per IP.

Counters live in the Django cache (Redis in production, so every web process shares them): a fixed window per
subject counts failures, and reaching the budget sets a lock that expires on its own. The lock's value is the
instant it lifts, so a refusal can say how long to wait (`Retry-After`).

A cache that cannot be reached fails open, with a logged error: refusing every login because Redis is down would
turn a degraded cache into an outage, and the failures are still audited in the database.

Only what a client cannot forge is counted: the typed e-mail address and the socket's peer address
(`accounts.actor.client_ip`). Keys hold a digest, never the address itself.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Budget:
    """`limit` failures within `window` seconds lock the subject for `lockout` seconds."""

    limit: int
    window: int
    lockout: int


def _key(kind: str, part: str, subject: str) -> str:
    digest = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]
    return f"ratelimit:{kind}:{part}:{digest}"


def locked_for(kind: str, subject: str | None, *, now: float | None = None) -> int:
    """Seconds until `subject`'s lock lifts (rounded up), or 0 when it is not locked."""
    if not subject:
        return 0
    try:
        until = cache.get(_key(kind, "lock", subject))
    except Exception:
        logger.exception("ratelimit.cache_unavailable", extra={"kind": kind})
        return 0
    if until is None:
        return 0
    remaining = float(until) - (time.time() if now is None else now)
    return max(math.ceil(remaining), 1) if remaining > 0 else 0


def failure_record(kind: str, subject: str | None, budget: Budget, *, now: float | None = None) -> bool:
    """Count one failure of `subject`; True when it used up the budget and locked the subject just now."""
    if not subject or budget.limit <= 0:
        return False
    now = time.time() if now is None else now
    count_key = _key(kind, "count", subject)  # the window opens with the first failure and expires with it
    try:
        cache.add(count_key, 0, timeout=budget.window)
        try:
            count = cache.incr(count_key)
        except ValueError:  # the window expired between add and incr
            cache.set(count_key, 1, timeout=budget.window)
            count = 1
        if count < budget.limit:
            return False
        until = now + budget.lockout
        cache.set(_key(kind, "lock", subject), until, timeout=budget.lockout)
        cache.delete(count_key)
    except Exception:
        logger.exception("ratelimit.cache_unavailable", extra={"kind": kind})
        return False
    return True


def failures_clear(kind: str, subject: str | None) -> None:
    """Forget `subject`'s failures (not its lock: a lock always runs out)."""
    if not subject:
        return
    try:
        cache.delete(_key(kind, "count", subject))
    except Exception:
        logger.exception("ratelimit.cache_unavailable", extra={"kind": kind})


# --- logins ---------------------------------------------------------------------------------------------------

LOGIN_ACCOUNT = "login-account"
LOGIN_IP = "login-ip"


def login_budgets() -> tuple[Budget, Budget]:
    """(per account, per IP) from settings: an IP may fail more often, since several people can share one."""
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    lockout = settings.LOGIN_LOCKOUT_SECONDS
    return (
        Budget(settings.LOGIN_FAILURE_LIMIT_PER_ACCOUNT, window, lockout),
        Budget(settings.LOGIN_FAILURE_LIMIT_PER_IP, window, lockout),
    )


def _account(email: str | None) -> str:
    return (email or "").strip().lower()[:254]


def login_locked_for(*, email: str | None, ip_address: str | None) -> int:
    """Seconds before a login for `email` from `ip_address` is tried again (0: try it now)."""
    return max(locked_for(LOGIN_ACCOUNT, _account(email)), locked_for(LOGIN_IP, ip_address))


def login_failed(*, email: str | None, ip_address: str | None) -> bool:
    """Count a failed login against the account and the IP; True when either got locked by it."""
    per_account, per_ip = login_budgets()
    account_locked = failure_record(LOGIN_ACCOUNT, _account(email), per_account)
    ip_locked = failure_record(LOGIN_IP, ip_address, per_ip)
    if account_locked or ip_locked:
        logger.warning(
            "auth.login_locked",
            extra={"ip_address": ip_address, "account": account_locked, "ip": ip_locked},
        )
    return account_locked or ip_locked


def login_succeeded(*, email: str | None) -> None:
    """A correct password clears the account's failures. The IP's stay: one account an attacker owns must not
    reset the budget for guessing the others from the same address."""
    failures_clear(LOGIN_ACCOUNT, _account(email))


# --- API tokens -----------------------------------------------------------------------------------------------

TOKEN_IP = "token-ip"  # noqa: S105 (a cache key part, not a secret)


def token_budget() -> Budget:
    return Budget(
        settings.API_AUTH_FAILURE_LIMIT, settings.API_AUTH_FAILURE_WINDOW_SECONDS, settings.API_AUTH_LOCKOUT_SECONDS
    )


def token_locked_for(*, ip_address: str | None) -> int:
    return locked_for(TOKEN_IP, ip_address)


def token_failed(*, ip_address: str | None) -> bool:
    locked = failure_record(TOKEN_IP, ip_address, token_budget())
    if locked:
        logger.warning("auth.token_failures_locked", extra={"ip_address": ip_address})
    return locked


def audit_login_locked(*, email: str | None, ip_address: str | None) -> None:
    """The lock itself is shown to the admins of every organization the typed address belongs to, like each
    failed login before it (accounts.services.audit_failed_login)."""
    from django.db import transaction

    from accounts.models import User
    from accounts.services import audit_record

    account = _account(email)
    user = User.objects.filter(email=account).first() if account else None
    with transaction.atomic():
        organizations = [m.organization for m in user.memberships.select_related("organization")] if user else []
        for organization in organizations or [None]:
            audit_record(
                action="auth.login_locked",
                organization=organization,
                user=user,
                actor_label=account,
                ip_address=ip_address,
            )
