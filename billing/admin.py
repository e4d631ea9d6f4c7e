"""The platform staff's Django admin for settlement data: read-only, since usage records are append-only evidence
and every write goes through the services."""

from __future__ import annotations

from django.contrib import admin

from billing.models import BookingUsage, UsageRecord
from marketplace.admin import ReadOnlyAdminMixin


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("record_id", "center", "booking", "start", "end", "devices", "utilization", "received_at")
    list_select_related = ("center", "booking")
    search_fields = ("record_id", "booking__id")
    date_hierarchy = "start"


@admin.register(BookingUsage)
class BookingUsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("booking", "records", "device_seconds", "last_end", "updated_at")
    list_select_related = ("booking",)
