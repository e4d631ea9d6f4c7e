"""The choices a catalog search offers: chips, vendors and regions. Public reference data, like the catalog.

Regions come from published offerings only, so the filter never offers a region where nothing can be booked;
chips and vendors come from the whole chip catalog, so a shared search for a chip that is sold out everywhere
still reads the same (with no results) instead of turning into an error.
"""

from __future__ import annotations

from django.db.models import QuerySet

from marketplace.models import AcceleratorModel, Offering, OfferingStatus


def catalog_accelerators() -> QuerySet[AcceleratorModel]:
    return AcceleratorModel.objects.order_by("vendor", "model", "code")


def catalog_vendors() -> list[str]:
    return list(AcceleratorModel.objects.order_by("vendor").values_list("vendor", flat=True).distinct())


def catalog_regions() -> list[str]:
    return list(
        Offering.objects.filter(status=OfferingStatus.PUBLISHED)
        .order_by("site__region")
        .values_list("site__region", flat=True)
        .distinct()
    )
