"""The public catalog, an offering's page, its quote and booking: the consumers' front door.

Anyone may browse and get a quote (a quote reserves nothing); booking needs a consumer organization and a role
with the booking scope. The catalog calls `catalog_offerings`, the selector behind the catalog API, so a filter
means the same on the page and in the API.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from accounts.errors import DomainError, NotFound
from accounts.forms import apply_domain_error
from accounts.selectors import as_uuid
from accounts.views import actor_required
from billing.selectors.settlement import voucher_estimate
from marketplace.forms import CatalogFilterForm, QuoteForm, datetime_local
from marketplace.models import BookingStatus, Offering, OfferingStatus
from marketplace.selectors.availability import chart_data, offering_slots
from marketplace.selectors.capacity import peak_devices
from marketplace.selectors.catalog import catalog_offering_get, catalog_offerings
from marketplace.services.bookings import Quote, booking_create, booking_quote
from marketplace.views_support import can_book, vary_on_htmx, wants_partial

CATALOG_PAGE_SIZE = 20
AVAILABILITY_DAYS = 14
AVAILABILITY_STEP = timedelta(hours=6)
DEFAULT_QUOTE_HOURS = 24


# --- catalog ------------------------------------------------------------------------------------------------


@require_GET
def catalog(request: HttpRequest) -> HttpResponse:
    form = CatalogFilterForm(request.GET)
    page = None
    if form.is_valid():
        offerings = catalog_offerings(**form.selector_filters())
        page = Paginator(offerings, CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "has_window": bool(form.is_valid() and form.cleaned_data.get("start")),
        "offering_query": urlencode(form.window_query()) if form.is_valid() else "",
    }
    template = "marketplace/catalog/_results.html" if wants_partial(request) else "marketplace/catalog/list.html"
    return vary_on_htmx(render(request, template, context))


# --- an offering, its quote and booking ---------------------------------------------------------------------


def _published_offering(offering_id: Any) -> Offering:
    try:
        return catalog_offering_get(offering_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _default_window(offering: Offering, now: datetime) -> dict[str, Any]:
    # The first whole hour the center's lead time allows, for a day or the offering's shortest booking if longer.
    start = (now + timedelta(hours=offering.lead_time_hours + 1)).replace(minute=0, second=0, microsecond=0)
    hours = min(max(DEFAULT_QUOTE_HOURS, offering.min_hours), offering.max_hours)
    return {
        "devices": min(offering.devices_per_node, offering.devices),
        "start": datetime_local(start),
        "end": datetime_local(start + timedelta(hours=hours)),
    }


def _quote_form(request: HttpRequest, offering: Offering, data: Any = None) -> QuoteForm:
    if data is not None:
        return QuoteForm(data)
    if any(name in request.GET for name in ("devices", "start", "end")):
        return QuoteForm(request.GET)
    # Bound, so the page opens with a quote for a sensible window instead of an empty card.
    return QuoteForm(_default_window(offering, timezone.now()))


def _quote(offering: Offering, form: QuoteForm) -> Quote | None:
    if not form.is_bound or not form.is_valid():
        return None
    try:
        return booking_quote(offering_id=offering.pk, **form.window())
    except DomainError as exc:
        apply_domain_error(form, exc)
        return None


def _voucher_estimate(request: HttpRequest, quote: Quote | None) -> Decimal | None:
    """What the signed-in consumer's voucher would cover of the quote (billing rule 5); zero for anyone else."""
    if quote is None:
        return None
    actor = request.actor
    return voucher_estimate(
        consumer=actor.organization if actor is not None else None,
        offering=quote.offering,
        amount=quote.amount,
        currency=quote.currency,
        start=quote.window.start,
    )


def _quote_context(request: HttpRequest, offering: Offering, form: QuoteForm, quote: Quote | None) -> dict:
    # After logging in, the person comes back to the same quote.
    back = reverse("market:offering", args=[offering.pk])
    if form.is_bound:
        back += "?" + urlencode({name: form.data.get(name, "") for name in ("devices", "start", "end")})
    return {
        "offering": offering,
        "quote_form": form,
        "quote": quote,
        "voucher_estimate": _voucher_estimate(request, quote),
        "can_book": can_book(request.actor),
        "login_url": f"{reverse('accounts:login')}?{urlencode({'next': back})}",
        # One value per rendered Book button: a second POST of the same form finds the booking already made.
        "submission": secrets.token_urlsafe(24),
    }


def _offering_page(request: HttpRequest, offering: Offering, form: QuoteForm, quote: Quote | None, status: int = 200):
    now = timezone.now()
    # Slots start on a 6-hour boundary of UTC, so the chart's bars line up with the days under them.
    first = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0)
    slots = offering_slots(offering, start=first, slots=AVAILABILITY_DAYS * 4, step=AVAILABILITY_STEP)
    context = {
        **_quote_context(request, offering, form, quote),
        "availability": chart_data(slots, devices=offering.devices),
        "free_now": max(offering.devices - peak_devices(offering.pk, now, now + timedelta(seconds=1)), 0),
        "min_free": min((slot.free for slot in slots), default=offering.devices),
    }
    return render(request, "marketplace/catalog/offering.html", context, status=status)


@require_GET
def offering_detail(request: HttpRequest, offering_id: str) -> HttpResponse:
    offering = _published_offering(offering_id)
    form = _quote_form(request, offering)
    return _offering_page(request, offering, form, _quote(offering, form))


@require_GET
def offering_quote(request: HttpRequest, offering_id: str) -> HttpResponse:
    """The quote card alone, for htmx; without htmx the offering page shows the same quote."""
    offering = _published_offering(offering_id)
    form = _quote_form(request, offering, request.GET)
    quote = _quote(offering, form)
    if not wants_partial(request):
        return redirect(f"{reverse('market:offering', args=[offering.pk])}?{request.GET.urlencode()}")
    return vary_on_htmx(
        render(request, "marketplace/catalog/_quote.html", _quote_context(request, offering, form, quote))
    )


@require_POST
def offering_book(request: HttpRequest, offering_id: str) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("market:offering", args=[offering_id]))
    return _offering_book(request, offering_id)


@actor_required
def _offering_book(request: HttpRequest, offering_id: str) -> HttpResponse:
    try:
        offering = catalog_offering_get(offering_id)
    except NotFound as exc:
        # Paused or retired since the page was shown: say so rather than answer as if it never existed.
        withdrawn = Offering.objects.filter(
            pk=as_uuid(offering_id), status__in=[OfferingStatus.PAUSED, OfferingStatus.RETIRED]
        ).first()
        if withdrawn is None:
            raise Http404(exc.detail) from exc
        messages.error(
            request,
            _("This offering is %(status)s and takes no bookings.") % {"status": withdrawn.get_status_display()},
        )
        return redirect("market:catalog")
    if not can_book(request.actor):
        raise PermissionDenied(
            _("Only members of enterprises, universities and institutes with booking rights can book.")
        )
    form = QuoteForm(request.POST)
    status = 400
    submission = request.POST.get("submission", "")[:64]
    claim = f"book-form:{request.user.pk}:{submission}" if submission else None
    if claim and not cache.add(claim, "", timeout=24 * 3600):
        # The same Book form again (double click, reload, back button): show what the first submission made.
        earlier = cache.get(claim)
        messages.info(request, _("This booking was already submitted."))
        if earlier:
            return redirect("market:booking_detail", booking_id=earlier)
        return redirect("market:my_bookings")
    if form.is_valid():
        try:
            booking = booking_create(actor=request.actor, offering_id=offering.pk, **form.window())
        except DomainError as exc:
            apply_domain_error(form, exc)
            status = exc.status_code
        else:
            if claim:
                cache.set(claim, str(booking.pk), timeout=24 * 3600)
            if booking.status == BookingStatus.PENDING_APPROVAL:
                messages.success(request, _("Your booking request was sent. The center approves it before it starts."))
            else:
                messages.success(request, _("Your booking is confirmed."))
            return redirect("market:booking_detail", booking_id=booking.pk)
    if claim:
        cache.delete(claim)  # refused: a corrected retry of the same form may go through
    return _offering_page(request, offering, form, None, status=status)
