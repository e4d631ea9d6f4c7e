"""What the market's pages share: who may see and change what, and how htmx requests are answered.

Access follows the API: a center's pages need a center organization, a consumer's pages a consumer one; reading
needs the `read` scope of the person's role, changing needs `inventory` (centers) or `booking` (consumers), so
finance and viewer members read and never write (accounts.actor.ROLE_SCOPES). Objects named in a URL are loaded
for the acting organization before any role check, so another organization's object is a 404 for everyone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.models import Scope
from accounts.views import actor_required

View = Callable[..., HttpResponse]


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def wants_partial(request: HttpRequest) -> bool:
    """An htmx swap asks for a fragment; htmx restoring its history after a cache miss needs the whole page."""
    return is_htmx(request) and request.headers.get("HX-History-Restore-Request") != "true"


def vary_on_htmx(response: HttpResponse) -> HttpResponse:
    # The same URL answers with a page or a fragment: caches must keep the two apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def can_book(actor: Actor | None) -> bool:
    return actor is not None and actor.organization.is_consumer and actor.allows(Scope.BOOKING, read_only=False)


def can_manage_inventory(actor: Actor | None) -> bool:
    return actor is not None and actor.organization.is_center and actor.allows(Scope.INVENTORY, read_only=False)


def _kind_required(check: Callable[[Actor], bool], refusal: Callable[[], str]) -> View:
    def decorator(view: View) -> View:
        @actor_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.actor):
                raise PermissionDenied(refusal())
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


center_required = _kind_required(
    lambda actor: actor.organization.is_center and actor.allows(Scope.INVENTORY, read_only=True),
    lambda: _("These pages belong to computing centers."),
)
consumer_required = _kind_required(
    lambda actor: actor.organization.is_consumer and actor.allows(Scope.BOOKING, read_only=True),
    lambda: _("These pages belong to enterprises, universities and institutes that book compute."),
)


def inventory_write_required(view: View) -> View:
    """Inside `center_required` (and after the URL's object is loaded): the role may change inventory."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_manage_inventory(request.actor):
            raise PermissionDenied(_("Your role can read this center's inventory but not change it."))
        return view(request, *args, **kwargs)

    return wrapper


def booking_write_required(view: View) -> View:
    """Inside `consumer_required` (and after the URL's object is loaded): the role may book and cancel."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not can_book(request.actor):
            raise PermissionDenied(_("Your role can read your organization's bookings but not change them."))
        return view(request, *args, **kwargs)

    return wrapper
