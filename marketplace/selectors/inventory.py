"""Reads of a center's own inventory, always scoped to the acting organization.

External ids are per center: another center's site or offering with the same external id is simply not there,
exactly like a missing one (tenant isolation, ARCHITECTURE.md invariant 6).
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import NotFound
from accounts.selectors import scoped
from marketplace.external_ids import is_valid_external_id
from marketplace.models import AcceleratorModel, Offering, Site


def accelerator_list() -> QuerySet[AcceleratorModel]:
    """The chip catalog is public reference data: the same for every organization."""
    return AcceleratorModel.objects.order_by("vendor", "model", "code")


def site_list(actor: Actor) -> QuerySet[Site]:
    return scoped(Site.objects.all(), actor, field="center").order_by("-created_at", "-pk")


def site_get(actor: Actor, external_id: str) -> Site:
    # A malformed key (a NUL byte, say) cannot name anything; it must not reach the database either.
    site = site_list(actor).filter(external_id=external_id).first() if is_valid_external_id(external_id) else None
    if site is None:
        raise NotFound(_("Not found."))
    return site


def offering_list(actor: Actor) -> QuerySet[Offering]:
    """The center's offerings in every status, newest first."""
    return scoped(Offering.objects.select_related("site", "accelerator"), actor, field="center").order_by(
        "-created_at", "-pk"
    )


def offering_get(actor: Actor, external_id: str) -> Offering:
    offering = (
        offering_list(actor).filter(external_id=external_id).first() if is_valid_external_id(external_id) else None
    )
    if offering is None:
        raise NotFound(_("Not found."))
    return offering
