"""Reads for a center's own pages, scoped to the acting organization like the rest of `selectors.inventory`."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from accounts.actor import Actor
from marketplace.models import HOLDING_STATUSES, Booking, Offering, Site
from marketplace.selectors.inventory import offering_list, site_list


def sites_with_offering_counts(actor: Actor) -> QuerySet[Site]:
    return site_list(actor).annotate(offering_count=Count("offerings"))


def offerings_with_use_now(actor: Actor, now: datetime) -> QuerySet[Offering]:
    """The center's offerings, each with `booked_now`: devices that holding bookings cover at `now`."""
    held = (
        Booking.objects.filter(offering=OuterRef("pk"), status__in=HOLDING_STATUSES, start__lte=now, end__gt=now)
        .order_by()
        .values("offering")
        .annotate(total=Sum("devices"))
        .values("total")
    )
    return offering_list(actor).annotate(
        booked_now=Coalesce(Subquery(held, output_field=IntegerField()), Value(0)),
    )


def offering_upcoming_bookings(actor: Actor, offering: Offering, now: datetime) -> QuerySet[Booking]:
    """The bookings holding capacity of the center's `offering` that have not ended, soonest first."""
    return (
        Booking.objects.filter(
            offering=offering, offering__center=actor.organization, status__in=HOLDING_STATUSES, end__gt=now
        )
        .select_related("consumer")
        .order_by("start", "pk")
    )
