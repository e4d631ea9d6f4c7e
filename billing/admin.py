"""The platform staff's Django admin for settlement data: read-only, since usage records are append-only evidence
and every write goes through the services."""

from __future__ import annotations

from django.contrib import admin

from billing.models import BookingUsage, Payment, ReconciliationException, StripeEvent, UsageRecord
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


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "consumer", "method", "status", "amount", "currency", "reference", "received_at")
    list_filter = ("method", "status", "currency")
    list_select_related = ("consumer",)
    search_fields = ("reference", "stripe_payment_intent", "stripe_charge", "consumer__name")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The webhook inbox, for staff tracing what Stripe sent and how each event was handled."""

    list_display = ("received_at", "event_id", "type", "status", "attempts", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("event_id",)


@admin.register(ReconciliationException)
class ReconciliationExceptionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("opened_at", "kind", "status", "amount", "currency", "detail", "resolution", "resolved_by")
    list_filter = ("kind", "status")
    search_fields = ("subject", "detail")
