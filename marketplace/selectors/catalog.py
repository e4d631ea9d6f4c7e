"""The public catalog: published offerings of every center, filtered, priced per PFLOP-hour, sorted by SQL.

Unlike every other selector this one takes no acting organization: the catalog is what anyone may browse
(API.md: catalog reads need no scope). The API and the browser catalog page call the same function, so a
filter means the same thing in both.

Availability is the sweep the booking service runs under its lock (`selectors.capacity`): for a search, run once
for every candidate offering (`free_devices_many`, one set-based query) and handed to the count and the page as a
constant; for one offering, as a correlated subquery (`peak_devices_expression`).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.db.models import DecimalField, ExpressionWrapper, F, IntegerField, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Round
from django.utils.translation import gettext as _

from accounts.errors import NotFound
from accounts.selectors import as_uuid
from marketplace.models import Offering, OfferingStatus
from marketplace.selectors.capacity import free_devices_many, peak_devices_expression

CATALOG_ORDERINGS = (
    "price_per_device_hour",
    "-price_per_device_hour",
    "price_per_pflop_hour",
    "-price_per_pflop_hour",
    "carbon",
    "-carbon",
)
DEFAULT_ORDERING = "price_per_device_hour"

_DECIMAL = DecimalField(max_digits=30, decimal_places=10)

# price ÷ (TFLOPS / 1000): multiplying first keeps the division exact to PostgreSQL's numeric precision.
_PRICE_PER_PFLOP_HOUR = ExpressionWrapper(
    F("price_per_device_hour") * Value(Decimal(1000)) / F("accelerator__fp16_tflops"), output_field=_DECIMAL
)
# kg CO2e per device-hour = TDP W/1000 × PUE × gCO2e/kWh / 1000 × (1 − green share); NULL when TDP is unknown.
_CARBON_KG_PER_DEVICE_HOUR = ExpressionWrapper(
    F("accelerator__tdp_watts")
    * F("site__pue")
    * F("site__carbon_intensity_g_per_kwh")
    * (Value(Decimal(1)) - F("site__green_power_share"))
    / Value(Decimal(1_000_000)),
    output_field=_DECIMAL,
)

_ORDER_KEYS = {
    "price_per_device_hour": F("price_per_device_hour"),
    "price_per_pflop_hour": _PRICE_PER_PFLOP_HOUR,
    "carbon": _CARBON_KG_PER_DEVICE_HOUR,
}


def _published() -> QuerySet[Offering]:
    return (
        Offering.objects.filter(status=OfferingStatus.PUBLISHED)
        .select_related("center", "site", "accelerator")
        .annotate(
            price_per_pflop_hour=Round(_PRICE_PER_PFLOP_HOUR, 4, output_field=_DECIMAL),
            carbon_kg_per_device_hour=Round(_CARBON_KG_PER_DEVICE_HOUR, 4, output_field=_DECIMAL),
        )
    )


def _with_availability(queryset: QuerySet[Offering], start: datetime | None, end: datetime | None):
    if start is None or end is None:
        return queryset.annotate(available_devices=Value(None, output_field=IntegerField()))
    return queryset.annotate(
        available_devices=ExpressionWrapper(
            F("devices") - peak_devices_expression(start, end), output_field=IntegerField()
        )
    )


def catalog_offerings(
    *,
    accelerator: str | None = None,
    vendor: str | None = None,
    region: str | None = None,
    min_memory_gb: int | None = None,
    max_price_per_device_hour: Decimal | None = None,
    currency: str | None = None,
    domestic: bool | None = None,
    max_pue: Decimal | None = None,
    devices: int | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    ordering: str = DEFAULT_ORDERING,
) -> QuerySet[Offering]:
    """Published offerings matching every given filter (None means "any"), sorted by `ordering`.

    Each row carries `price_per_pflop_hour` and `carbon_kg_per_device_hour` (both rounded to 4 decimals, the
    latter NULL when the chip's TDP is unknown) and `available_devices`: the devices free over the whole of
    [start, end) when a window is given, else NULL. With a window, only offerings with at least `devices`
    (default 1) free are kept. `max_price_per_device_hour` compares amounts as given, so pair it with
    `currency`. The caller validates values (window ordered, ordering known); this raises ValueError otherwise.
    """
    if (start is None) != (end is None) or (start is not None and end <= start):
        raise ValueError("a window needs both start and end, with end later than start")
    if ordering not in CATALOG_ORDERINGS:
        raise ValueError(f"unknown ordering {ordering!r}")

    filters: dict[str, Any] = {}
    if accelerator is not None:
        filters["accelerator__code"] = accelerator
    if vendor is not None:
        filters["accelerator__vendor__iexact"] = vendor
    if region is not None:
        filters["site__region"] = region
    if min_memory_gb is not None:
        filters["accelerator__memory_gb__gte"] = min_memory_gb
    if max_price_per_device_hour is not None:
        filters["price_per_device_hour__lte"] = max_price_per_device_hour
    if currency is not None:
        filters["currency"] = currency
    if domestic is not None:
        filters["accelerator__domestic"] = domestic
    if max_pue is not None:
        filters["site__pue__lte"] = max_pue

    queryset = _published().filter(**filters)
    if start is None:
        queryset = _with_availability(queryset, None, None)
    else:
        # Availability of every candidate from one set-based sweep, handed to the count and the page as a constant
        # (a jsonb object looked up per row) instead of a sweep per offering in each of those two queries.
        free = free_devices_many(queryset, start, end)
        queryset = queryset.annotate(
            available_devices=RawSQL(  # noqa: S611 (constant SQL; the figures are one parameter)
                f'(%s::jsonb ->> "{Offering._meta.db_table}"."id"::text)::integer',
                [json.dumps({str(pk): value for pk, value in free.items()})],
                output_field=IntegerField(),
            )
        ).filter(available_devices__gte=devices or 1)

    descending = ordering.startswith("-")
    key = _ORDER_KEYS[ordering.lstrip("-")]
    # Offerings without a carbon estimate go last in both directions: unknown is not "cleanest" nor "dirtiest".
    primary = key.desc(nulls_last=True) if descending else key.asc(nulls_last=True)
    # The id makes the order total, so pages never repeat or skip an offering.
    return queryset.order_by(primary, "price_per_device_hour", "id")


def catalog_offering_get(offering_id: Any, *, start: datetime | None = None, end: datetime | None = None) -> Offering:
    """One published offering by its platform id; any other status is as missing as an unknown id."""
    pk: UUID = as_uuid(offering_id)
    if (start is None) != (end is None) or (start is not None and end <= start):
        raise ValueError("a window needs both start and end, with end later than start")
    offering = _with_availability(_published(), start, end).filter(pk=pk).first()
    if offering is None:
        raise NotFound(_("Not found."))
    return offering


def network_summary() -> dict[str, int]:
    """Figures of the live network for the front page: what is published right now, nothing estimated."""
    from django.db.models import Count, Sum

    published = Offering.objects.filter(status=OfferingStatus.PUBLISHED)
    figures = published.aggregate(
        offerings=Count("id"),
        devices=Sum("devices"),
        centers=Count("center", distinct=True),
        regions=Count("site__region", distinct=True),
    )
    return {key: value or 0 for key, value in figures.items()}
