"""Quotes and bookings API (API.md, "Catalog and booking"), and the centers' side of bookings."""

from __future__ import annotations

from datetime import UTC

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_support import idempotent, paginated_response, paginated_schema
from accounts.models import CONSUMER_KINDS, OrganizationKind, Scope
from accounts.schema import IDEMPOTENCY_KEY_PARAMETER, error_responses
from billing.selectors.settlement import voucher_estimate
from billing.selectors.usage import no_usage, usage_so_far
from marketplace.models import AllocationState, Booking, BookingStatus
from marketplace.money import format_money
from marketplace.selectors.bookings import (
    booking_get_for_consumer,
    bookings_for_center,
    bookings_for_consumer,
)
from marketplace.services.bookings import (
    booking_approve,
    booking_cancel,
    booking_create,
    booking_quote,
    booking_reject,
    cancellation_fee,
)
from marketplace.timestamps import rfc3339

MAX_DEVICES = 1_000_000


class UtcDateTimeField(serializers.DateTimeField):
    """RFC 3339 in, UTC out; a timestamp without an offset is read as UTC."""

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        return parsed.astimezone(UTC)

    def to_representation(self, value):
        return rfc3339(value)


class WindowRequestSerializer(serializers.Serializer):
    offering = serializers.UUIDField()
    devices = serializers.IntegerField(min_value=1, max_value=MAX_DEVICES)
    start = UtcDateTimeField()
    end = UtcDateTimeField()


class QuoteSerializer(serializers.Serializer):
    offering = serializers.UUIDField(source="offering.pk")
    devices = serializers.IntegerField(source="window.devices")
    start = UtcDateTimeField(source="window.start")
    end = UtcDateTimeField(source="window.end")
    device_hours = serializers.DecimalField(max_digits=20, decimal_places=4)
    amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    currency = serializers.CharField()
    min_commit_amount = serializers.DecimalField(max_digits=20, decimal_places=2)
    voucher_estimate = serializers.SerializerMethodField()
    estimated_energy_kwh = serializers.DecimalField(max_digits=20, decimal_places=3, allow_null=True)
    estimated_co2_kg = serializers.DecimalField(max_digits=20, decimal_places=3, allow_null=True)
    available = serializers.BooleanField()
    available_devices = serializers.IntegerField()

    def get_voucher_estimate(self, quote) -> str:
        """What the consumer's applicable voucher would cover of this amount (billing rule 5, this booking
        alone); "0.00" without a signed-in consumer or a voucher that applies."""
        amount = voucher_estimate(
            consumer=self.context.get("consumer"),
            offering=quote.offering,
            amount=quote.amount,
            currency=quote.currency,
            start=quote.window.start,
        )
        return format_money(amount, quote.currency)


class BookingUsageSerializer(serializers.Serializer):
    device_hours = serializers.CharField(help_text="Device-hours metered so far (to 4 decimals).")
    device_seconds = serializers.CharField(help_text="Device-seconds metered so far, exact.")
    amount = serializers.CharField(help_text="round(device-hours × unit price), billing rule 2.")
    currency = serializers.CharField()
    records = serializers.IntegerField()
    last_end = serializers.CharField(allow_null=True, help_text="The end of the latest metered interval.")


class BookingAllocationSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=AllocationState.choices)
    access = serializers.DictField(help_text="How to reach the devices, as the center's agent reported it.")
    message = serializers.CharField()


class BookingSerializer(serializers.ModelSerializer):
    offering = serializers.UUIDField(source="offering_id")
    offering_external_id = serializers.CharField(source="offering.external_id")
    center = serializers.SerializerMethodField()
    consumer = serializers.CharField(source="consumer.slug")
    start = UtcDateTimeField()
    end = UtcDateTimeField()
    unit_price = serializers.DecimalField(max_digits=12, decimal_places=4)
    min_commit_fraction = serializers.DecimalField(max_digits=4, decimal_places=3)
    created_at = UtcDateTimeField()
    confirmed_at = UtcDateTimeField(allow_null=True)
    cancelled_at = UtcDateTimeField(allow_null=True)
    approval_expires_at = UtcDateTimeField(allow_null=True)
    usage = serializers.SerializerMethodField()
    allocation = serializers.SerializerMethodField()
    cancellation_fee = serializers.SerializerMethodField()

    class Meta:
        model = Booking
        fields = [
            "id",
            "status",
            "offering",
            "offering_external_id",
            "center",
            "consumer",
            "devices",
            "start",
            "end",
            "unit_price",
            "currency",
            "min_commit_fraction",
            "cancel_notice_hours",
            "created_at",
            "confirmed_at",
            "cancelled_at",
            "approval_expires_at",
            "usage",
            "allocation",
            "cancellation_fee",
        ]

    def get_center(self, booking) -> dict:
        center = booking.offering.center
        return {"slug": center.slug, "name": center.name}

    @extend_schema_field(BookingUsageSerializer)
    def get_usage(self, booking) -> dict:
        """Metered usage so far (device-hours, and billing rule 2's amount at the booking's price)."""
        known = self.context.setdefault("_usage", {})
        if booking.pk not in known:
            # One query for the whole page when listing, rather than one per booking.
            page = self.parent.instance if self.parent is not None else [booking]
            known.update(usage_so_far(list(page)))
        return known[booking.pk].figures()

    @extend_schema_field(BookingAllocationSerializer)
    def get_allocation(self, booking) -> dict:
        """What the center's agent reported: the state and, once provisioned, how to reach the devices."""
        allocation = getattr(booking, "allocation", None)
        if allocation is None:
            return {"state": AllocationState.PENDING, "access": {}, "message": ""}
        return {"state": allocation.state, "access": allocation.access, "message": allocation.message}

    def get_cancellation_fee(self, booking) -> str | None:
        """The most cancelling now would cost (API.md billing rule 4); null once it cannot be cancelled."""
        if booking.status not in {
            BookingStatus.PENDING_APPROVAL,
            BookingStatus.CONFIRMED,
            BookingStatus.ACTIVE,
        }:
            return None
        return str(cancellation_fee(booking, self.context.get("now") or timezone.now()))


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)


class ConsumerView(APIView):
    required_scope = Scope.BOOKING
    allowed_kinds = CONSUMER_KINDS


class QuoteView(ConsumerView):
    @extend_schema(
        operation_id="quote_create",
        summary="Price a window and check it fits; reserves nothing",
        request=WindowRequestSerializer,
        responses={200: QuoteSerializer, **error_responses(400, 403, 404, 409)},
        tags=["bookings"],
    )
    def post(self, request):
        data = _valid(WindowRequestSerializer, request.data)
        quote = booking_quote(
            offering_id=data["offering"], devices=data["devices"], start=data["start"], end=data["end"]
        )
        return Response(QuoteSerializer(quote, context={"consumer": request.auth.organization}).data)


class BookingListView(ConsumerView):
    @extend_schema(
        operation_id="booking_list",
        summary="The organization's bookings, newest first",
        parameters=[OpenApiParameter("status", str, enum=BookingStatus.values, required=False)],
        responses={200: paginated_schema(BookingSerializer), **error_responses(400, 403)},
        tags=["bookings"],
    )
    def get(self, request):
        status = request.query_params.get("status")
        return paginated_response(self, request, bookings_for_consumer(request.auth, status=status), BookingSerializer)

    @extend_schema(
        operation_id="booking_create",
        summary="Book devices of an offering over [start, end)",
        description="201 with the booking (`confirmed`, or `pending_approval` when the offering requires the "
        "center's approval) or 409 `insufficient_capacity`. Accepts an `Idempotency-Key` header.",
        request=WindowRequestSerializer,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={201: BookingSerializer, **error_responses(400, 403, 404, 409, 422)},
        tags=["bookings"],
    )
    @idempotent
    def post(self, request):
        data = _valid(WindowRequestSerializer, request.data)
        booking = booking_create(
            actor=request.auth,
            offering_id=data["offering"],
            devices=data["devices"],
            start=data["start"],
            end=data["end"],
        )
        return Response(_new_booking_data(booking), status=201)


class BookingDetailView(ConsumerView):
    @extend_schema(
        operation_id="booking_get", responses={200: BookingSerializer, **error_responses(403, 404)}, tags=["bookings"]
    )
    def get(self, request, booking_id):
        return Response(BookingSerializer(booking_get_for_consumer(request.auth, booking_id)).data)


class BookingCancelView(ConsumerView):
    @extend_schema(
        operation_id="booking_cancel",
        summary="Cancel a booking that has not completed (billing rule 4)",
        request=None,
        responses={200: BookingSerializer, **error_responses(400, 403, 404, 409)},
        tags=["bookings"],
    )
    def post(self, request, booking_id):
        booking = booking_cancel(actor=request.auth, booking_id=booking_id)
        return Response(BookingSerializer(booking).data)


class CenterView(APIView):
    required_scope = Scope.INVENTORY
    allowed_kinds = frozenset({OrganizationKind.CENTER})


class CenterBookingListView(CenterView):
    @extend_schema(
        operation_id="center_booking_list",
        summary="Bookings of the center's offerings, newest first",
        parameters=[OpenApiParameter("status", str, enum=BookingStatus.values, required=False)],
        responses={200: paginated_schema(BookingSerializer), **error_responses(400, 403)},
        tags=["center bookings"],
    )
    def get(self, request):
        queryset = bookings_for_center(request.auth, status=request.query_params.get("status"))
        return paginated_response(self, request, queryset, BookingSerializer)


class CenterBookingApproveView(CenterView):
    @extend_schema(
        operation_id="center_booking_approve",
        request=None,
        responses={200: BookingSerializer, **error_responses(400, 403, 404, 409)},
        tags=["center bookings"],
    )
    def post(self, request, booking_id):
        booking = booking_approve(actor=request.auth, booking_id=booking_id)
        return Response(BookingSerializer(booking).data)


class CenterBookingRejectView(CenterView):
    @extend_schema(
        operation_id="center_booking_reject",
        request=RejectSerializer,
        responses={200: BookingSerializer, **error_responses(400, 403, 404, 409)},
        tags=["center bookings"],
    )
    def post(self, request, booking_id):
        data = _valid(RejectSerializer, request.data)
        booking = booking_reject(actor=request.auth, booking_id=booking_id, reason=data.get("reason", ""))
        return Response(BookingSerializer(booking).data)


def _new_booking_data(booking: Booking) -> dict:
    """A booking just made, as the API shows it, without reading back what cannot exist yet: it has no
    allocation (its center's agent has not seen it) and nothing metered."""
    Booking.allocation.related.set_cached_value(booking, None)
    return BookingSerializer(booking, context={"_usage": {booking.pk: no_usage(booking)}}).data


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


urlpatterns = [
    path("quotes", QuoteView.as_view(), name="api-quotes"),
    path("bookings", BookingListView.as_view(), name="api-bookings"),
    path("bookings/<str:booking_id>", BookingDetailView.as_view(), name="api-booking"),
    path("bookings/<str:booking_id>/cancel", BookingCancelView.as_view(), name="api-booking-cancel"),
    path("center/bookings", CenterBookingListView.as_view(), name="api-center-bookings"),
    path(
        "center/bookings/<str:booking_id>/approve",
        CenterBookingApproveView.as_view(),
        name="api-center-approve",
    ),
    path("center/bookings/<str:booking_id>/reject", CenterBookingRejectView.as_view(), name="api-center-reject"),
]
