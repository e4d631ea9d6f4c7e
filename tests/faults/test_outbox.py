"""The transactional outbox (marketplace/outbox.py) on its own: with a broker a task's row is written inside the
change's transaction (so a rolled-back change leaves no task behind and a committed one always has its row); in
eager mode (no REDIS_URL) nothing is written and the task runs after the commit, as before."""

from __future__ import annotations

import pytest
from django.db import transaction

from marketplace.celery import app
from marketplace.models import OutboxMessage
from marketplace.outbox import enqueue_on_commit
from marketplace.tasks import booking_status_email

pytestmark = pytest.mark.django_db


class Abort(Exception):
    pass


@pytest.fixture
def broker_mode():
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = previous


def test_with_a_broker_the_row_is_part_of_the_transaction(broker_mode, django_capture_on_commit_callbacks):
    with pytest.raises(Abort), transaction.atomic():
        enqueue_on_commit(booking_status_email, "b-1", "confirmed")
        assert OutboxMessage.objects.count() == 1
        raise Abort
    assert not OutboxMessage.objects.exists()  # the change rolled back, and its task with it

    with django_capture_on_commit_callbacks() as callbacks:
        enqueue_on_commit(booking_status_email, "b-2", "confirmed")
    [message] = OutboxMessage.objects.all()
    assert (message.task, message.args, message.kwargs, message.sent_at) == (
        "marketplace.booking_status_email",
        ["b-2", "confirmed"],
        {},
        None,
    )
    assert len(callbacks) == 1  # published after the commit (not run here: no broker in this test)


def test_in_eager_mode_the_task_runs_after_the_commit_and_writes_no_row(django_capture_on_commit_callbacks):
    ran: list[tuple] = []
    with django_capture_on_commit_callbacks() as callbacks:
        enqueue_on_commit(type("Task", (), {"delay": lambda *args: ran.append(args)}), "b-3", "confirmed")
        assert ran == []
    assert not OutboxMessage.objects.exists()
    for callback in callbacks:
        callback()
    assert ran == [("b-3", "confirmed")]
