"""Queueing a task for after the commit without losing it when the broker (Redis) is down: the transactional outbox.

`enqueue_on_commit(task, *args)` replaces `transaction.on_commit(lambda: task.delay(*args))`. With a broker it writes
an `OutboxMessage` row inside the caller's transaction (so the task exists exactly when the change does) and
publishes it after the commit; a publish that fails (Redis unreachable) is logged and left to the relay, a beat
task that publishes again every row still unsent. A row published but not marked sent (the process died between
the two) is sent twice: the tasks are idempotent, so the second run changes nothing.

Without a broker (no REDIS_URL: CELERY_TASK_ALWAYS_EAGER) there is nothing to lose: the task runs in-process after
the commit exactly as before, and no row is written.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from marketplace.models import OutboxMessage

logger = logging.getLogger(__name__)

# The relay leaves a row this long to the publish that follows its commit, so the two rarely both send it.
RELAY_GRACE = timedelta(seconds=30)
# Sent rows are kept this long (to see what was queued when), then deleted by the relay.
KEEP_SENT = timedelta(days=7)
RELAY_BATCH = 500


def _eager() -> bool:
    # The app's configuration, not the setting: tests switch the app to eager at run time.
    return bool(current_app.conf.task_always_eager)


def enqueue_on_commit(task: Any, *args: Any, **kwargs: Any) -> None:
    """Queue `task(*args, **kwargs)` once the current transaction commits; the row written now survives a broker
    that cannot take the task at that moment. Arguments must be JSON values (ids as strings)."""
    if _eager():
        transaction.on_commit(lambda: task.delay(*args, **kwargs))
        return
    message = OutboxMessage.objects.create(
        task=task.name, args=list(args), kwargs=dict(kwargs), created_at=timezone.now()
    )
    message_id = message.pk
    # robust: whatever goes wrong publishing is logged; the committed change's request still succeeds.
    transaction.on_commit(lambda: publish(message_id), robust=True)


def _send(message: OutboxMessage) -> None:
    """Publish one row. A broker that is down fails within a fraction of a second (one reconnection attempt, no
    publish retry) instead of holding the request for kombu's default reconnection loop: the relay sends later."""
    with current_app.pool.acquire(block=True, timeout=5) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2, interval_max=0.2)
        # By name: the relay's process need not have imported the task's module.
        current_app.send_task(
            message.task, args=message.args, kwargs=message.kwargs, connection=connection, retry=False
        )


def publish(message_id: int) -> bool:
    """Send one row to the broker and mark it sent. A failure is logged and recorded on the row; it never reaches
    the caller, whose change is committed."""
    message = OutboxMessage.objects.filter(pk=message_id, sent_at__isnull=True).first()
    if message is None:
        return True
    try:
        _send(message)
    except Exception as error:
        logger.error(
            "outbox.publish_failed",
            extra={"task": message.task, "outbox_id": message_id, "error": f"{type(error).__name__}: {error}"},
        )
        OutboxMessage.objects.filter(pk=message_id).update(
            attempts=message.attempts + 1, last_error=f"{type(error).__name__}: {error}"[:500]
        )
        return False
    OutboxMessage.objects.filter(pk=message_id).update(sent_at=timezone.now(), attempts=message.attempts + 1)
    return True


def relay(*, now: datetime, grace: timedelta = RELAY_GRACE, limit: int = RELAY_BATCH) -> int:
    """Publish the rows still unsent a while after their commit (the broker was down, the process died); returns
    how many were sent. Rows are locked with SKIP LOCKED so two relays never send the same row at once."""
    sent = 0
    with transaction.atomic():
        waiting = list(
            OutboxMessage.objects.select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True, created_at__lt=now - grace)
            .order_by("created_at", "pk")[:limit]
        )
        for message in waiting:
            try:
                _send(message)
            except Exception as error:
                logger.error("outbox.relay_failed", extra={"task": message.task, "error": str(error)})
                OutboxMessage.objects.filter(pk=message.pk).update(
                    attempts=message.attempts + 1, last_error=f"{type(error).__name__}: {error}"[:500]
                )
                break  # the broker is still down: the next run tries again
            OutboxMessage.objects.filter(pk=message.pk).update(sent_at=timezone.now(), attempts=message.attempts + 1)
            sent += 1
    OutboxMessage.objects.filter(sent_at__lt=now - KEEP_SENT).delete()
    if sent:
        logger.info("outbox.relayed", extra={"sent": sent})
    return sent
