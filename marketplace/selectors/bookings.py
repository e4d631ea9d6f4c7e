"""Reads of bookings, scoped to the acting organization: a consumer sees its own, a center those of
its offerings."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import InvalidInput, NotFound
from accounts.selectors import as_uuid
from marketplace.models import Booking, BookingStatus


def _with_status(queryset: QuerySet[Booking], status: str | None) -> QuerySet[Booking]:
    if not status:
        return queryset
    if status not in BookingStatus.values:
        raise InvalidInput(
            _("Unknown booking status “%(s)s”.") % {"s": status},
            errors={"status": [_("Choose from: %(all)s.") % {"all": ", ".join(BookingStatus.values)}]},
        )
    return queryset.filter(status=status)


def _base() -> QuerySet[Booking]:
    return Booking.objects.select_related(
        "offering__center", "offering__accelerator", "offering__site", "consumer", "allocation"
    )


def bookings_for_consumer(actor: Actor, *, status: str | None = None) -> QuerySet[Booking]:
    return _with_status(_base().filter(consumer=actor.organization), status).order_by("-created_at")


def bookings_for_center(actor: Actor, *, status: str | None = None) -> QuerySet[Booking]:
    return _with_status(_base().filter(offering__center=actor.organization), status).order_by("-created_at")


def booking_get_for_consumer(actor: Actor, booking_id: Any) -> Booking:
    booking = _base().filter(consumer=actor.organization, pk=as_uuid(booking_id)).first()
    if booking is None:
        raise NotFound(_("Not found."))
    return booking


def booking_get_for_center(actor: Actor, booking_id: Any) -> Booking:
    booking = _base().filter(offering__center=actor.organization, pk=as_uuid(booking_id)).first()
    if booking is None:
        raise NotFound(_("Not found."))
    return booking
