"""A consumer's bookings: the list, one booking's page, and cancelling with the fee shown first.

Bookings are always loaded through `selectors.bookings` for the acting organization: another organization's
booking is a 404, exactly like a missing one.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.errors import DomainError
from accounts.views import scoped_object
from marketplace.forms import BookingStatusFilterForm, CancelForm
from marketplace.models import BOOKING_TRANSITIONS, Booking, BookingStatus
from marketplace.selectors.bookings import booking_get_for_consumer, bookings_for_consumer
from marketplace.services.bookings import booking_cancel, cancellation_fee
from marketplace.views_support import (
    booking_write_required,
    can_book,
    consumer_required,
    vary_on_htmx,
    wants_partial,
)

BOOKINGS_PAGE_SIZE = 25


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
    partial = wants_partial(request)
    template = "marketplace/bookings/_detail_body.html" if partial else "marketplace/bookings/detail.html"
    return vary_on_htmx(render(request, template, context))


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
