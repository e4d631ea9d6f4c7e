"""A consumer's bookings: the list, one booking's page (with its usage so far, a live usage chart and the access
details the center's agent reported), and cancelling with the fee shown first.

Bookings are always loaded through `selectors.bookings` for the acting organization: another organization's
booking is a 404, exactly like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.errors import DomainError
from accounts.views import actor_required, scoped_object
from billing.selectors.usage import UsageSoFar, bucket_size, hours_shown, usage_series, usage_so_far
from marketplace.forms import BookingStatusFilterForm, CancelForm
from marketplace.models import BOOKING_TRANSITIONS, Allocation, AllocationState, Booking, BookingStatus
from marketplace.money import format_money
from marketplace.selectors.bookings import booking_get_for_consumer, bookings_for_consumer
from marketplace.services.bookings import booking_cancel, cancellation_fee
from marketplace.timestamps import rfc3339
from marketplace.views_support import (
    booking_write_required,
    can_book,
    consumer_required,
    vary_on_htmx,
    wants_partial,
)

BOOKINGS_PAGE_SIZE = 25
# Bookings the center's agent must provision: until it reports, their allocation is waiting for the center.
PROVISIONED_STATUSES = frozenset({BookingStatus.CONFIRMED, BookingStatus.ACTIVE})


def is_cancellable(booking: Booking) -> bool:
    return BookingStatus.CANCELLED in BOOKING_TRANSITIONS[booking.status]


def _status_filter(request: HttpRequest) -> tuple[BookingStatusFilterForm, str | None]:
    form = BookingStatusFilterForm(request.GET)
    # An unknown status in the URL shows the form's error and the unfiltered list, never a server error.
    status = (form.cleaned_data["status"] or None) if form.is_valid() else None
    return form, status


@consumer_required
@require_GET
def my_bookings(request: HttpRequest) -> HttpResponse:
    form, status = _status_filter(request)
    page = Paginator(bookings_for_consumer(request.actor, status=status), BOOKINGS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {"form": form, "page": page, "can_book": can_book(request.actor), "now": timezone.now()}
    template = "marketplace/bookings/_table.html" if wants_partial(request) else "marketplace/bookings/list.html"
    return vary_on_htmx(render(request, template, context))


# --- usage and access, as the booking page shows them ------------------------------------------------------


def usage_payload(booking: Booking, usage: UsageSoFar | None = None) -> dict[str, Any]:
    """A scoped booking's usage so far and its usage per time bucket: the chart's data, initial and refetched."""
    usage = usage or usage_so_far([booking])[booking.pk]
    return {
        "booking": str(booking.pk),
        **usage.figures(),
        "unit_price": format_money(booking.unit_price, booking.currency),
        "bucket_seconds": int(bucket_size(booking).total_seconds()),
        "points": [
            {
                "start": rfc3339(point.start),
                "device_hours": hours_shown(point.device_hours),
                "cumulative_device_hours": hours_shown(point.cumulative_device_hours),
                "utilization": None if point.utilization is None else str(point.utilization),
            }
            for point in usage_series(booking)
        ],
    }


@dataclass(frozen=True)
class AccessDetail:
    key: str
    value: str
    is_link: bool  # only http(s) URLs become links; anything else an agent sends stays text


@dataclass(frozen=True)
class AccessState:
    state: str | None  # None: nothing is (or was) to be provisioned for this booking
    label: str
    message: str
    details: list[AccessDetail]
    at: datetime | None


def _detail_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return str(value)


def _is_web_link(text: str) -> bool:
    lowered = text.strip().lower()
    return lowered.startswith(("http://", "https://")) and not any(character.isspace() for character in text.strip())


def access_state(booking: Booking) -> AccessState:
    """What the center's agent reported for the booking; `pending` until it reports, for a booking to provision."""
    try:
        allocation = booking.allocation
    except Allocation.DoesNotExist:
        allocation = None
    if allocation is None:
        state = AllocationState.PENDING if booking.status in PROVISIONED_STATUSES else None
        label = AllocationState(state).label if state else ""
        return AccessState(state=state, label=str(label), message="", details=[], at=None)
    details = []
    if allocation.state == AllocationState.PROVISIONED:
        # jsonb keeps no key order of its own: alphabetical is at least the same order on every visit.
        for key, value in sorted((allocation.access or {}).items(), key=lambda item: (str(item[0]).lower(), item[0])):
            text = _detail_text(value)
            link = isinstance(value, str) and _is_web_link(text)
            details.append(AccessDetail(key=str(key), value=text, is_link=link))
    return AccessState(
        state=allocation.state,
        label=str(AllocationState(allocation.state).label),
        message=allocation.message,
        details=details,
        at=allocation.updated_at,
    )


# --- one booking ------------------------------------------------------------------------------------------


@consumer_required
@require_GET
@scoped_object(booking_get_for_consumer, kwarg="booking_id", to="booking")
def booking_detail(request: HttpRequest, booking: Booking) -> HttpResponse:
    now = timezone.now()
    cancellable = is_cancellable(booking)
    context = {
        "booking": booking,
        "events": booking.events.all(),
        "cancellable": cancellable and can_book(request.actor),
        "fee": cancellation_fee(booking, now) if cancellable else None,
        "now": now,
    }
    if wants_partial(request):
        # The live reload after a status change swaps the header, terms and history only: the usage chart and
        # the access region beside them keep their own live updates.
        return vary_on_htmx(render(request, "marketplace/bookings/_detail_body.html", context))
    usage = usage_so_far([booking])[booking.pk]
    usage_data = usage_payload(booking, usage)
    context.update(
        usage=usage,
        usage_data=usage_data,
        bucket_minutes=usage_data["bucket_seconds"] // 60,
        access=access_state(booking),
    )
    return vary_on_htmx(render(request, "marketplace/bookings/detail.html", context))


@consumer_required
@require_GET
@scoped_object(booking_get_for_consumer, kwarg="booking_id", to="booking")
def booking_access(request: HttpRequest, booking: Booking) -> HttpResponse:
    """The access region alone: the booking page reloads it when the center's agent reports."""
    context = {"booking": booking, "access": access_state(booking)}
    return render(request, "marketplace/bookings/_access.html", context)


# Any organization may ask; only the booking's consumer finds it. A center asking for its own booking's consumer
# view gets the same 404 as a stranger: this URL never tells whether a booking exists.
@actor_required
@require_GET
@scoped_object(booking_get_for_consumer, kwarg="booking_id", to="booking")
def booking_usage_json(request: HttpRequest, booking: Booking) -> HttpResponse:
    response = JsonResponse(usage_payload(booking))
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["GET", "POST"])
@consumer_required
@scoped_object(booking_get_for_consumer, kwarg="booking_id", to="booking")
@booking_write_required
def booking_cancel_confirm(request: HttpRequest, booking: Booking) -> HttpResponse:
    """GET shows what cancelling now costs; POST cancels, unless the fee grew since the page was shown."""
    now = timezone.now()
    if not is_cancellable(booking):
        messages.error(
            request,
            _("This booking is %(status)s and can no longer be cancelled.") % {"status": booking.get_status_display()},
        )
        return redirect("market:booking_detail", booking_id=booking.pk)
    fee = cancellation_fee(booking, now)
    fee_changed = False
    if request.method == "POST":
        form = CancelForm(request.POST)
        # The fee only grows with time (the notice period runs out); cancelling at a higher fee than the one the
        # person agreed to must be confirmed again. A second or two between this check and the cancellation
        # cannot cross a whole-hour notice boundary unnoticed often enough to warrant a lock here.
        if form.is_valid() and fee <= form.cleaned_data["expected_fee"]:
            try:
                booking = booking_cancel(actor=request.actor, booking_id=booking.pk, now=now)
            except DomainError as exc:
                messages.error(request, exc.detail)
            else:
                messages.success(request, _cancelled_message(fee, booking.currency))
            return redirect("market:booking_detail", booking_id=booking.pk)
        fee_changed = form.is_valid()
    context = {"booking": booking, "fee": fee, "fee_changed": fee_changed, "now": now}
    return render(request, "marketplace/bookings/cancel.html", context, status=409 if fee_changed else 200)


def _cancelled_message(fee: Decimal, currency: str) -> str:
    if fee > 0:
        return _("The booking was cancelled. A cancellation fee of %(fee)s %(currency)s applies.") % {
            "fee": fee,
            "currency": currency,
        }
    return _("The booking was cancelled free of charge.")
