"""The platform staff's Django admin for the market.

Operator staff curate the chip catalog here. Sites, offerings and bookings are shown read-only: their writes must
go through the services (a center's inventory API, the booking state machine), which check capacity under the
offering's row lock, snapshot prices and write audit and history rows. An admin form would bypass all of it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from marketplace.models import AcceleratorModel, Agent, Allocation, Booking, BookingEvent, Offering, Site


class ReadOnlyAdminMixin:
    """Viewable by staff with the view permission; never added, changed or deleted from the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AcceleratorModel)
class AcceleratorModelAdmin(admin.ModelAdmin):
    list_display = ("code", "vendor", "model", "memory_gb", "fp16_tflops", "tdp_watts", "domestic")
    list_filter = ("vendor", "domestic")
    search_fields = ("code", "vendor", "model")
    ordering = ("vendor", "model")

    def get_readonly_fields(self, request: HttpRequest, obj: AcceleratorModel | None = None) -> tuple[str, ...]:
        # Centers' inventory systems name chips by code: renaming one would break their next PUT.
        return ("code",) if obj is not None else ()


@admin.register(Site)
class SiteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "center", "external_id", "region", "hub", "pue", "green_power_share", "updated_at")
    list_filter = ("region", "hub")
    search_fields = ("name", "external_id", "center__name", "center__slug")
    list_select_related = ("center",)


@admin.register(Offering)
class OfferingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "external_id",
        "center",
        "site",
        "accelerator",
        "devices",
        "price_per_device_hour",
        "currency",
        "status",
        "updated_at",
    )
    list_filter = ("status", "currency", "accelerator__vendor", "requires_approval", "voucher_eligible")
    search_fields = ("id", "external_id", "center__name", "center__slug", "site__name", "accelerator__code")
    list_select_related = ("center", "site", "accelerator")
    date_hierarchy = "created_at"


class BookingEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = BookingEvent
    extra = 0
    fields = ("at", "from_status", "to_status", "actor_label", "reason")
    readonly_fields = fields
    ordering = ("at", "id")


@admin.register(Booking)
class BookingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "consumer", "offering", "devices", "start", "end", "status", "unit_price", "currency")
    list_filter = ("status", "currency")
    search_fields = ("id", "consumer__name", "consumer__slug", "offering__external_id", "offering__center__name")
    list_select_related = ("consumer", "offering", "offering__center")
    date_hierarchy = "start"
    inlines = [BookingEventInline]


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "center", "version", "hostname", "last_seen_at")
    list_select_related = ("center",)
    search_fields = ("name", "hostname", "center__name")


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("booking", "state", "agent", "updated_at")
    list_filter = ("state",)
    list_select_related = ("booking", "agent")
