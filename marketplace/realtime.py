"""Live updates to browsers over Channels: sent only after the transaction commits, only to the organizations
an event concerns. A failing channel layer (Redis down) is logged and never fails the change behind it."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from marketplace.outbox import enqueue_on_commit

logger = logging.getLogger(__name__)


def organization_group(organization_id: Any) -> str:
    return f"org.{organization_id}"


def send_to_organizations(organization_ids: list[Any], event: dict[str, Any]) -> None:
    """Queue `event` for every connected member of these organizations once the transaction commits."""
    send_many_to_organizations([(organization_ids, event)])


def send_many_to_organizations(messages: list[tuple[list[Any], dict[str, Any]]]) -> None:
    """Queue several events, each for its organizations, once the transaction commits: one hop into the channel
    layer's event loop for all of them (a usage batch tells a dozen bookings at once)."""
    if not messages:
        return

    async def send_all() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for organization_ids, event in messages:
            for organization_id in dict.fromkeys(organization_ids):
                try:
                    await layer.group_send(organization_group(organization_id), {"type": "org.event", **event})
                except Exception:  # the change is committed; a lost live update must not turn into an error
                    logger.exception("realtime.send_failed", extra={"event": event.get("event")})

    transaction.on_commit(async_to_sync(send_all))


def notify_booking(booking) -> None:
    """Tell the consumer and the center that a booking changed, live and by e-mail."""
    from marketplace.tasks import booking_status_email

    event = {
        "event": "booking.status",
        "booking": str(booking.pk),
        "status": booking.status,
        "offering": str(booking.offering_id),
        "devices": booking.devices,
        "start": booking.start.isoformat(),
        "end": booking.end.isoformat(),
    }
    send_to_organizations([booking.consumer_id, booking.offering.center_id], event)
    booking_id, status = str(booking.pk), booking.status
    enqueue_on_commit(booking_status_email, booking_id, status)
