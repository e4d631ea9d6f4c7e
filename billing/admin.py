"""The platform staff's Django admin for settlement data: read-only, since usage records are append-only evidence
and every write goes through the services."""

from __future__ import annotations

from django.contrib import admin

from billing.models import (
    BookingUsage,
    Payment,
    PaymentProfile,
    ReconciliationException,
    StripeEvent,
    UsageRecord,
)
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


@admin.register(PaymentProfile)
class PaymentProfileAdmin(admin.ModelAdmin):
    """Platform staff set a center's Stripe Connect account (and may switch its payout method); the card and bank
    details belong to the organization's own payment settings page and are read-only here. Each change is audited."""

    list_display = ("organization", "payout_method", "stripe_account_id", "autopay", "updated_at")
    list_select_related = ("organization",)
    search_fields = ("organization__name", "stripe_account_id", "stripe_customer_id")
    fields = (
        "organization",
        "stripe_account_id",
        "payout_method",
        "stripe_customer_id",
        "default_payment_method",
        "autopay",
        "bank_account_name",
        "bank_name",
        "bank_account_number",
        "bank_code",
        "updated_at",
    )
    readonly_fields = tuple(name for name in fields if name not in ("stripe_account_id", "payout_method"))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        from django.db import transaction

        from accounts.services import audit_record

        with transaction.atomic():
            before = {name: form.initial.get(name) for name in form.changed_data}
            obj.stripe_account_id = obj.stripe_account_id or None  # blank is "none" (the column is unique)
            super().save_model(request, obj, form, change)
            audit_record(
                action="payment_profile.operator_change",
                organization=obj.organization,
                user=request.user,
                target=obj,
                before=before,
                after={name: getattr(obj, name) for name in form.changed_data},
            )
