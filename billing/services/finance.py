"""The operator's Close button: a period's close is requested from a page and runs as the `billing.period_close`
task, because a close can take minutes (it rates a whole month of usage) and must not hold a web request.

The request is refused up front with the rules `period_close` applies (the month must have ended, earlier months
must be closed), so the person sees the refusal on the page instead of a task failing out of sight. A request
while one is already queued or running queues nothing more; the close itself is idempotent anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import transaction

from accounts.actor import Actor
from accounts.services import audit_record
from billing.models import BillingPeriod, PeriodStatus
from billing.periods_calendar import label, month_start
from billing.services.invoices import require_platform_finance
from billing.services.periods import close_refusal, period_for
from marketplace.outbox import enqueue_on_commit

logger = logging.getLogger(__name__)

# How long a queued close shows as "closing…" before the worker has moved the period to closing itself. The
# worker normally picks it up in seconds; the marker only bridges that gap, and lets a lost task be requested again.
CLOSE_REQUEST_TTL_SECONDS = 15 * 60


def close_request_key(period_label: str) -> str:
    return f"billing:period-close-requested:{period_label}"


def close_requests(labels: list[str]) -> dict[str, dict[str, Any]]:
    """The queued close requests of these months, by label: who asked and when."""
    found = cache.get_many([close_request_key(name) for name in labels])
    return {name: found[close_request_key(name)] for name in labels if close_request_key(name) in found}


def close_is_stale(period: BillingPeriod, now: datetime) -> bool:
    """A period left "closing" for longer than the close task may run: its task died, and a new one may finish it
    (a rerun completes a half-done close with the same cutoff)."""
    from billing.tasks import period_close_task

    limit = timedelta(seconds=period_close_task.time_limit or 0)
    return (
        period.status == PeriodStatus.CLOSING
        and period.closing_started_at is not None
        and now - period.closing_started_at > limit
    )


@dataclass(frozen=True)
class CloseRequest:
    period: str
    # "queued": a close task was queued now; "pending": one was already queued or is running; "closed": nothing
    # to do.
    outcome: str


def period_close_request(*, actor: Actor, start: datetime, now: datetime) -> CloseRequest:
    """Queue the close of the month starting at `start` (after commit), for the operator's finance staff.

    Raises `Forbidden` for anyone else, and the close's own refusals (`PeriodNotEnded`, `EarlierPeriodOpen`)
    before anything is queued. Queues at most one task per month while one is pending."""
    require_platform_finance(actor)
    start = month_start(start)
    name = label(start)
    period = BillingPeriod.objects.filter(start=start).first()
    if period is not None and period.status == PeriodStatus.CLOSED:
        return CloseRequest(name, "closed")
    refusal = close_refusal(start, now)
    if refusal is not None:
        raise refusal
    if period is not None and period.status == PeriodStatus.CLOSING and not close_is_stale(period, now):
        return CloseRequest(name, "pending")
    # The marker both shows "closing…" until the worker starts and stops a double click from queueing twice;
    # cache.add is atomic, so two concurrent requests cannot both win it.
    if not cache.add(close_request_key(name), {"by": actor.label, "at": now.isoformat()}, CLOSE_REQUEST_TTL_SECONDS):
        return CloseRequest(name, "pending")
    from billing.tasks import period_close_task

    try:
        with transaction.atomic():
            period = period_for(start)
            audit_record(
                action="period.close_requested",
                organization=actor.organization,
                actor=actor,
                target=period,
                after={"period": name},
                now=now,
            )
            enqueue_on_commit(period_close_task, name, actor.label)
    except Exception:
        cache.delete(close_request_key(name))  # nothing was queued: a retry must not be taken for a duplicate
        raise
    logger.info("period.close_requested", extra={"period": name, "by": actor.label})
    return CloseRequest(name, "queued")
