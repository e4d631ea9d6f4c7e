"""A computing center's pages: its sites and offerings, their capacity, and the bookings that come in.

Writes go through the same services as the inventory API (`site_put`, `offering_put`), after the forms have run
the API's input serializers, so a center gets the same answer on the page and from its scripts. Owners, admins
and members change inventory; finance and viewers read it (see `views_support`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.errors import Conflict, DomainError, NotFound
from accounts.forms import apply_domain_error
from accounts.views import scoped_object
from billing.selectors.usage import hours_shown, usage_so_far
from marketplace.forms import BookingStatusFilterForm, OfferingForm, RejectForm, SiteForm, offering_service_data
from marketplace.models import Booking, BookingStatus, Offering, OfferingStatus, Site
from marketplace.selectors import inventory
from marketplace.selectors.availability import chart_data, offering_slots
from marketplace.selectors.bookings import booking_get_for_center, bookings_for_center
from marketplace.selectors.center import (
    offering_upcoming_bookings,
    offerings_with_use_now,
    sites_with_offering_counts,
)
from marketplace.services.bookings import booking_approve, booking_reject
from marketplace.services.inventory import offering_put, site_put
from marketplace.views_bookings import access_state
from marketplace.views_support import (
    can_manage_inventory,
    center_required,
    inventory_write_required,
    vary_on_htmx,
    wants_partial,
)

CAPACITY_DAYS = 28
CAPACITY_STEP = timedelta(hours=6)
BOOKINGS_PAGE_SIZE = 25

# The buttons on an offering: the status each one sets and the statuses it is offered from.
STATUS_ACTIONS: dict[str, tuple[str, frozenset[str]]] = {
    "publish": (OfferingStatus.PUBLISHED, frozenset({OfferingStatus.DRAFT, OfferingStatus.PAUSED})),
    "pause": (OfferingStatus.PAUSED, frozenset({OfferingStatus.PUBLISHED})),
    "retire": (
        OfferingStatus.RETIRED,
        frozenset({OfferingStatus.DRAFT, OfferingStatus.PUBLISHED, OfferingStatus.PAUSED}),
    ),
}
STATUS_DONE = {
    "publish": gettext_lazy("“%(name)s” is published: consumers can find and book it in the catalog."),
    "pause": gettext_lazy("“%(name)s” is paused: it left the catalog and takes no new bookings."),
    "retire": gettext_lazy("“%(name)s” is retired. Existing bookings keep their terms."),
}


def _show_service_error(form: Any, exc: DomainError) -> None:
    apply_domain_error(form, exc)
    if exc.errors and exc.code != "invalid":
        # A refusal such as capacity_in_use explains itself in a sentence the field error alone would lose.
        form.add_error(None, exc.detail)


# --- sites --------------------------------------------------------------------------------------------------


@center_required
@require_GET
def sites(request: HttpRequest) -> HttpResponse:
    context = {"sites": sites_with_offering_counts(request.actor), "can_edit": can_manage_inventory(request.actor)}
    return render(request, "marketplace/center/sites.html", context)


@require_http_methods(["GET", "POST"])
@center_required
@inventory_write_required
def site_create(request: HttpRequest) -> HttpResponse:
    form = SiteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if inventory.site_list(request.actor).filter(external_id=form.key).exists():
            form.add_error("external_id", _("You already have a site with this external id."))
        else:
            return _site_save(request, form)
    return render(request, "marketplace/center/site_form.html", {"form": form, "site": None})


@require_http_methods(["GET", "POST"])
@center_required
@scoped_object(inventory.site_get, kwarg="external_id", to="site")
@inventory_write_required
def site_edit(request: HttpRequest, site: Site) -> HttpResponse:
    form = SiteForm(request.POST or None, site=site)
    if request.method == "POST" and form.is_valid():
        return _site_save(request, form)
    return render(request, "marketplace/center/site_form.html", {"form": form, "site": site})


def _site_save(request: HttpRequest, form: SiteForm) -> HttpResponse:
    try:
        site, outcome = site_put(actor=request.actor, external_id=form.key, data=form.service_data)
    except DomainError as exc:
        _show_service_error(form, exc)
        return render(request, "marketplace/center/site_form.html", {"form": form, "site": form.site}, status=400)
    if outcome == "created":
        messages.success(request, _("The site “%(name)s” was created.") % {"name": site.name})
    elif outcome == "updated":
        messages.success(request, _("The site “%(name)s” was saved.") % {"name": site.name})
    else:
        messages.info(request, _("Nothing changed."))
    return redirect("market:center_sites")


# --- offerings ----------------------------------------------------------------------------------------------


@center_required
@require_GET
def offerings(request: HttpRequest) -> HttpResponse:
    actor = request.actor
    rows = list(offerings_with_use_now(actor, timezone.now()))
    for offering in rows:
        offering.status_actions = [name for name, (_s, sources) in STATUS_ACTIONS.items() if offering.status in sources]
    context = {
        "offerings": rows,
        "can_edit": can_manage_inventory(actor),
        "has_sites": inventory.site_list(actor).exists(),
    }
    return render(request, "marketplace/center/offerings.html", context)


def _offering_form(request: HttpRequest, offering: Offering | None) -> OfferingForm:
    return OfferingForm(
        request.POST or None,
        sites=inventory.site_list(request.actor).order_by("name"),
        accelerators=inventory.accelerator_list(),
        offering=offering,
    )


@require_http_methods(["GET", "POST"])
@center_required
@inventory_write_required
def offering_create(request: HttpRequest) -> HttpResponse:
    if not inventory.site_list(request.actor).exists():
        messages.info(request, _("Create a site first: every offering runs at one of your sites."))
        return redirect("market:center_site_create")
    form = _offering_form(request, None)
    if request.method == "POST" and form.is_valid():
        # A create must not silently replace an offering of the same key (a PUT would); the unique constraint
        # on (center, external_id) backs this check against a concurrent create.
        if inventory.offering_list(request.actor).filter(external_id=form.key).exists():
            form.add_error("external_id", _("You already have an offering with this external id."))
        else:
            return _offering_save(request, form)
    return render(request, "marketplace/center/offering_form.html", {"form": form, "offering": None})


@require_http_methods(["GET", "POST"])
@center_required
@scoped_object(inventory.offering_get, kwarg="external_id", to="offering")
@inventory_write_required
def offering_edit(request: HttpRequest, offering: Offering) -> HttpResponse:
    form = _offering_form(request, offering)
    if request.method == "POST" and form.is_valid():
        return _offering_save(request, form)
    return render(request, "marketplace/center/offering_form.html", {"form": form, "offering": offering})


def _offering_save(request: HttpRequest, form: OfferingForm) -> HttpResponse:
    try:
        offering, outcome = offering_put(actor=request.actor, external_id=form.key, data=form.service_data)
    except DomainError as exc:
        _show_service_error(form, exc)
        context = {"form": form, "offering": form.offering}
        return render(request, "marketplace/center/offering_form.html", context, status=exc.status_code)
    name = _offering_name(offering)
    if outcome == "created":
        messages.success(request, _("The offering “%(name)s” was created.") % {"name": name})
    elif outcome == "updated":
        messages.success(request, _("The offering “%(name)s” was saved.") % {"name": name})
    else:
        messages.info(request, _("Nothing changed."))
    return redirect("market:center_offerings")


def _offering_name(offering: Offering) -> str:
    return f"{offering.external_id} · {offering.accelerator}"


@require_POST
@center_required
@scoped_object(inventory.offering_get, kwarg="external_id", to="offering")
@inventory_write_required
def offering_set_status(request: HttpRequest, offering: Offering) -> HttpResponse:
    action = request.POST.get("action", "")
    target, sources = STATUS_ACTIONS.get(action, (None, frozenset()))
    if target is None or offering.status not in sources:
        messages.error(
            request,
            _("An offering that is %(status)s cannot be changed that way.") % {"status": offering.get_status_display()},
        )
        return redirect("market:center_offerings")
    data = {**offering_service_data(offering), "status": target}
    try:
        offering_put(actor=request.actor, external_id=offering.external_id, data=data)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, STATUS_DONE[action] % {"name": _offering_name(offering)})
    return redirect("market:center_offerings")


@center_required
@require_GET
@scoped_object(inventory.offering_get, kwarg="external_id", to="offering")
def offering_capacity(request: HttpRequest, offering: Offering) -> HttpResponse:
    now = timezone.now()
    first = now.replace(hour=now.hour - now.hour % 6, minute=0, second=0, microsecond=0)
    slots = offering_slots(offering, start=first, slots=CAPACITY_DAYS * 4, step=CAPACITY_STEP)
    context = {
        "offering": offering,
        "chart": chart_data(slots, devices=offering.devices),
        "peak_booked": max((slot.booked for slot in slots), default=0),
        "bookings": offering_upcoming_bookings(request.actor, offering, now)[:200],
        "days": CAPACITY_DAYS,
    }
    return render(request, "marketplace/center/capacity.html", context)


# --- incoming bookings --------------------------------------------------------------------------------------


@center_required
@require_GET
def incoming_bookings(request: HttpRequest) -> HttpResponse:
    form = BookingStatusFilterForm(request.GET)
    status = (form.cleaned_data["status"] or None) if form.is_valid() else None
    bookings = bookings_for_center(request.actor, status=status).select_related("allocation")
    page = Paginator(bookings, BOOKINGS_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    usage = usage_so_far(page.object_list)  # one query for the whole page
    for booking in page.object_list:
        booking.metered_records = usage[booking.pk].records
        booking.metered_hours = hours_shown(usage[booking.pk].device_hours)
        booking.access_view = access_state(booking)
    context = {
        "form": form,
        "page": page,
        "can_edit": can_manage_inventory(request.actor),
        "reject_form": RejectForm(),
        "pending": BookingStatus.PENDING_APPROVAL,
    }
    partial = wants_partial(request)
    template = "marketplace/center/_bookings_table.html" if partial else "marketplace/center/bookings.html"
    return vary_on_htmx(render(request, template, context))


def _back_to_list(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(reverse("market:center_bookings"))


def _short(booking: Booking) -> str:
    return str(booking.pk)[:8]


@require_POST
@center_required
@scoped_object(booking_get_for_center, kwarg="booking_id", to="booking")
@inventory_write_required
def booking_approve_view(request: HttpRequest, booking: Booking) -> HttpResponse:
    try:
        booking_approve(actor=request.actor, booking_id=booking.pk)
    except (Conflict, NotFound) as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request,
            _("Booking %(id)s of %(consumer)s is confirmed.") % {"id": _short(booking), "consumer": booking.consumer},
        )
    return _back_to_list(request)


@require_POST
@center_required
@scoped_object(booking_get_for_center, kwarg="booking_id", to="booking")
@inventory_write_required
def booking_reject_view(request: HttpRequest, booking: Booking) -> HttpResponse:
    form = RejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Give a reason of at most 500 characters."))
        return _back_to_list(request)
    try:
        booking_reject(actor=request.actor, booking_id=booking.pk, reason=form.cleaned_data["reason"])
    except (Conflict, NotFound) as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request,
            _("Booking %(id)s of %(consumer)s was rejected; its devices are free again.")
            % {"id": _short(booking), "consumer": booking.consumer},
        )
    return _back_to_list(request)
