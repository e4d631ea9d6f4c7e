"""Celery tasks of the market: thin, idempotent, loading by id and calling one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.mail import send_mail
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import ADMIN_ROLES, Membership
from marketplace.models import AllocationState, Booking, BookingStatus
from marketplace.services.bookings import bookings_advance

logger = logging.getLogger(__name__)


@shared_task(name="marketplace.bookings_advance", ignore_result=True, soft_time_limit=120, time_limit=150)
def bookings_advance_task() -> dict[str, int]:
    """Start, complete and expire bookings whose time has come (every minute by beat; idempotent)."""
    result = bookings_advance(now=timezone.now())
    return {"started": result.started, "completed": result.completed, "expired": result.expired}


def _booking_recipients(booking: Booking) -> list[str]:
    """Who hears about a booking: the consumer's and the center's admins, and the person who booked."""
    recipients = set(
        Membership.objects.filter(
            organization_id__in=[booking.consumer_id, booking.offering.center_id], role__in=ADMIN_ROLES
        ).values_list("user__email", flat=True)
    )
    if booking.created_by is not None:
        recipients.add(booking.created_by.email)
    return sorted(recipients)


_BOOKING_MAIL_FIELDS = (
    "status",
    "devices",
    "start",
    "end",
    "consumer__name",
    "created_by__email",
    "offering__center__name",
    "offering__accelerator__model",
)


@shared_task(
    name="marketplace.booking_status_email",
    ignore_result=True,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=5,
)
def booking_status_email(booking_id: str, status: str) -> None:
    """E-mail the consumer's and the center's admins (and the person who booked) about a status move."""
    # Only the columns the mail uses: this runs on every booking move, and the wide rows of four joined tables
    # cost more to build than the query costs to run.
    try:
        booking = (
            Booking.objects.select_related("offering__center", "offering__accelerator", "consumer", "created_by")
            .only(*_BOOKING_MAIL_FIELDS)
            .get(pk=booking_id)
        )
    except Booking.DoesNotExist:
        return  # gone: nothing to tell
    if booking.status != status:
        return  # moved on already: the next move sends its own mail
    recipients = _booking_recipients(booking)
    if not recipients:
        return
    with translation.override("en"):
        label = BookingStatus(status).label
        send_mail(
            subject=_("Booking %(ref)s is now %(status)s") % {"ref": str(booking.pk)[:8], "status": label},
            message=_(
                "%(devices)s × %(accelerator)s at %(center)s, %(start)s – %(end)s (UTC), "
                "booked by %(consumer)s, is now %(status)s."
            )
            % {
                "devices": booking.devices,
                "accelerator": booking.offering.accelerator_id and booking.offering.accelerator.model,
                "center": booking.offering.center.name,
                "start": booking.start.strftime("%Y-%m-%d %H:%M"),
                "end": booking.end.strftime("%Y-%m-%d %H:%M"),
                "consumer": booking.consumer.name,
                "status": label,
            },
            from_email=None,
            recipient_list=recipients,
        )


@shared_task(
    name="marketplace.allocation_failed_email",
    ignore_result=True,
    autoretry_for=(ConnectionError, TimeoutError),
    retry_backoff=True,
    max_retries=5,
)
def allocation_failed_email(booking_id: str) -> None:
    """Alert the consumer's and the center's admins (and the person who booked) that provisioning failed."""
    booking = (
        Booking.objects.select_related("offering__center", "offering__accelerator", "consumer", "created_by")
        .filter(pk=booking_id)
        .first()
    )
    allocation = getattr(booking, "allocation", None) if booking is not None else None
    if allocation is None or allocation.state != AllocationState.FAILED:
        return  # gone, or fixed since: nothing to alert about
    recipients = _booking_recipients(booking)
    if not recipients:
        return
    with translation.override("en"):
        send_mail(
            subject=_("Provisioning failed for booking %(ref)s") % {"ref": str(booking.pk)[:8]},
            message=_(
                "The center %(center)s could not provision %(devices)s × %(accelerator)s for %(consumer)s "
                "(%(start)s – %(end)s UTC).\n\nThe center's agent reported: %(message)s"
            )
            % {
                "center": booking.offering.center.name,
                "devices": booking.devices,
                "accelerator": booking.offering.accelerator.model,
                "consumer": booking.consumer.name,
                "start": booking.start.strftime("%Y-%m-%d %H:%M"),
                "end": booking.end.strftime("%Y-%m-%d %H:%M"),
                "message": allocation.message or _("no details"),
            },
            from_email=None,
            recipient_list=recipients,
        )


@shared_task(name="marketplace.outbox_relay", ignore_result=True, soft_time_limit=120, time_limit=150)
def outbox_relay_task() -> int:
    """Publish the tasks whose publish after commit failed (Redis was down) or never happened (by beat)."""
    from marketplace.outbox import relay

    return relay(now=timezone.now())
