"""Reads for center agents: the center's own agents and its allocation feed (API.md, Agents)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Case, CharField, Q, QuerySet, Value, When
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import NotFound
from accounts.selectors import as_uuid
from marketplace.models import Agent, AllocationState, Booking, BookingStatus

PROVISION = "provision"
RELEASE = "release"
_RUNNING = [BookingStatus.CONFIRMED, BookingStatus.ACTIVE]


def agents_for_center(actor: Actor) -> QuerySet[Agent]:
    return Agent.objects.filter(center=actor.organization).order_by("name")


def agent_get_for_center(actor: Actor, agent_id: Any) -> Agent:
    """One of the center's agents; another center's is a 404, like a missing one."""
    agent = agents_for_center(actor).filter(pk=as_uuid(agent_id)).first()
    if agent is None:
        raise NotFound(_("Not found."))
    return agent


def agent_is_stale(agent: Agent, now: datetime) -> bool:
    return agent.last_seen_at < now - timedelta(seconds=settings.AGENT_STALE_AFTER_SECONDS)


def allocation_action(booking: Booking, now: datetime) -> str:
    """What the feed would ask of an agent for this booking now (see `allocations_for_center`)."""
    return PROVISION if booking.status in _RUNNING and booking.end > now else RELEASE


def allocations_for_center(actor: Actor, *, now: datetime, agent_name: str | None = None) -> QuerySet[Booking]:
    """The bookings the center's agents must act on, soonest first, each annotated with `action`:

    - `provision`: confirmed or active, starting within the provisioning lead time and not yet ended (listed
      whether or not it is provisioned already: the feed is the desired state, so an agent that lost its local
      state can rebuild it);
    - `release`: provisioned, but ended, cancelled or otherwise no longer running.

    With `agent_name`, bookings another agent of the center has taken (by reporting on them) are left out, so
    that a center running one agent per node provisions and meters each booking once.
    """
    lead = now + timedelta(minutes=settings.AGENT_PROVISION_LEAD_MINUTES)
    should_run = Q(status__in=_RUNNING, start__lte=lead, end__gt=now)
    over = ~Q(status__in=_RUNNING) | Q(end__lte=now)
    provisioned = Q(allocation__state=AllocationState.PROVISIONED)
    bookings = Booking.objects.filter(offering__center=actor.organization)
    if agent_name:
        bookings = bookings.filter(Q(allocation__agent__isnull=True) | Q(allocation__agent__name=agent_name))
    return (
        bookings.filter((should_run & ~Q(allocation__state=AllocationState.RELEASED)) | (provisioned & over))
        .select_related("offering", "consumer", "allocation")
        .annotate(
            action=Case(When(should_run, then=Value(PROVISION)), default=Value(RELEASE), output_field=CharField())
        )
        .order_by("start", "id")
    )
