"""Center agents: registration by heartbeat, and what they report about provisioning bookings (API.md, Agents)."""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, NotFound
from accounts.selectors import as_uuid
from accounts.services import audit_record
from marketplace.models import (
    ALLOCATION_TRANSITIONS,
    Agent,
    Allocation,
    AllocationState,
    Booking,
    BookingStatus,
)
from marketplace.outbox import enqueue_on_commit
from marketplace.realtime import send_to_organizations
from marketplace.timestamps import rfc3339

logger = logging.getLogger(__name__)

PROVISIONABLE_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.ACTIVE)
_STATE_TIMESTAMP = {
    AllocationState.PROVISIONED: "provisioned_at",
    AllocationState.RELEASED: "released_at",
    AllocationState.FAILED: "failed_at",
}


def agent_heartbeat(
    *, actor: Actor, name: str, version: str, hostname: str, devices: list[dict[str, Any]], now: datetime
) -> tuple[Agent, bool]:
    """Register the agent on its first heartbeat (one per center and name) and keep its latest facts.

    Devices that say which booking they serve push that booking's live utilization to its consumer, after
    commit; a booking id that is not one of this center's is dropped from the stored facts, never forwarded.
    """
    center = actor.organization
    served = {str(device["booking"]) for device in devices if device.get("booking")}
    own = _own_booking_ids(center.pk, served)
    facts = [{**device, "booking": _served(device, own)} for device in devices]
    with transaction.atomic():
        agent, created = Agent.objects.select_for_update().get_or_create(
            center=center,
            name=name,
            defaults={
                "version": version,
                "hostname": hostname,
                "devices": facts,
                "first_seen_at": now,
                "last_seen_at": now,
            },
        )
        if not created:
            agent.version, agent.hostname, agent.devices, agent.last_seen_at = version, hostname, facts, now
            agent.save(update_fields=["version", "hostname", "devices", "last_seen_at"])
        else:
            audit_record(
                action="agent.registered", organization=center, actor=actor, target=agent, after={"name": name}, now=now
            )
        _push_utilization(agent, facts, own, now)
    logger.info("agent.heartbeat", extra={"center": str(center.pk), "agent": name, "devices": len(devices)})
    return agent, created


def _served(device: dict[str, Any], own: dict[str, Any]) -> str | None:
    booking = device.get("booking")
    return str(booking) if booking and str(booking) in own else None


def _own_booking_ids(center_id: Any, booking_ids: set[str]) -> dict[str, Any]:
    if not booking_ids:
        return {}
    rows = Booking.objects.filter(
        pk__in=[as_uuid(booking_id) for booking_id in booking_ids], offering__center_id=center_id
    ).values_list("pk", "consumer_id")
    return {str(pk): consumer_id for pk, consumer_id in rows}


def _push_utilization(agent: Agent, facts: list[dict[str, Any]], consumers: dict[str, Any], now: datetime) -> None:
    readings: dict[str, list[Decimal]] = defaultdict(list)
    for device in facts:
        booking = device.get("booking")
        if booking and device.get("utilization") is not None:
            readings[booking].append(Decimal(device["utilization"]))
    for booking, values in readings.items():
        send_to_organizations(
            [consumers[booking], agent.center_id],
            {
                "event": "usage.utilization",
                "booking": booking,
                "utilization": str((sum(values) / len(values)).quantize(Decimal("0.0001"))),
                "devices": len(values),
                "at": rfc3339(now),
            },
        )


def allocation_report(
    *,
    actor: Actor,
    booking_id: Any,
    state: str,
    access: dict[str, Any] | None,
    message: str,
    agent_name: str | None,
    now: datetime,
) -> Allocation:
    """Record what the center's agent did for one of its bookings.

    Provisioning needs a booking that still holds capacity and has not ended. A released allocation is final.
    Reporting the current state again is a no-op (an agent's retry), except that `provisioned` may refresh the
    access details. A `failed` report alerts the consumer and the center, live and by e-mail.
    """
    uid = as_uuid(booking_id)
    with transaction.atomic():
        booking = (
            Booking.objects.select_for_update(of=("self",))
            .select_related("offering", "consumer")
            .filter(pk=uid, offering__center=actor.organization)
            .first()
        )
        if booking is None:
            raise NotFound(_("No such booking."))
        allocation = Allocation.objects.select_related("agent").filter(booking=booking).first()
        if allocation is not None:
            allocation.booking = booking
        current = allocation.state if allocation else AllocationState.PENDING
        if state not in ALLOCATION_TRANSITIONS[current]:
            raise Conflict(
                _("The allocation is %(current)s; it cannot become %(state)s.")
                % {"current": AllocationState(current).label, "state": AllocationState(state).label},
                code="invalid_state",
            )
        if state == AllocationState.PROVISIONED and (
            booking.status not in PROVISIONABLE_STATUSES or booking.end <= now
        ):
            raise Conflict(
                _("Booking %(booking)s is %(status)s or has ended: there is nothing to provision.")
                % {"booking": booking.pk, "status": BookingStatus(booking.status).label},
                code="invalid_state",
            )
        if (
            agent_name
            and allocation is not None
            and allocation.agent is not None
            and allocation.agent.name != agent_name
            and current == AllocationState.PROVISIONED
        ):
            raise Conflict(
                _("Agent %(agent)s provisioned this booking; only it can report on it.")
                % {"agent": allocation.agent.name},
                code="invalid_state",
            )
        existing = allocation is not None
        allocation = allocation or Allocation(booking=booking, state=current, access={}, message="")
        before = {"state": current, "message": allocation.message}
        access = access if state == AllocationState.PROVISIONED and access is not None else allocation.access
        if existing and current == state and access == allocation.access and message == allocation.message:
            return allocation
        allocation.state, allocation.access, allocation.message, allocation.updated_at = state, access, message, now
        if agent_name:
            allocation.agent = (
                Agent.objects.filter(center=actor.organization, name=agent_name).first() or allocation.agent
            )
        if current != state:
            setattr(allocation, _STATE_TIMESTAMP[state], now)
        allocation.save()
        audit_record(
            action=f"allocation.{state}",
            organization=actor.organization,
            actor=actor,
            target=booking,
            before=before,
            after={"state": state, "message": message},
            now=now,
        )
        _notify(booking, allocation, changed_state=current != state)
    logger.info("allocation.reported", extra={"booking": str(booking.pk), "state": state})
    return allocation


def _notify(booking: Booking, allocation: Allocation, *, changed_state: bool) -> None:
    send_to_organizations(
        [booking.consumer_id, booking.offering.center_id],
        {
            "event": "allocation.state",
            "booking": str(booking.pk),
            "state": allocation.state,
            "message": allocation.message,
        },
    )
    if allocation.state == AllocationState.FAILED and changed_state:
        from marketplace.tasks import allocation_failed_email

        booking_id = str(booking.pk)
        enqueue_on_commit(allocation_failed_email, booking_id)
