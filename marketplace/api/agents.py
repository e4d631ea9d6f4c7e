"""The agents API (API.md, Agents): heartbeats and the allocation feed. Usage uploads are metering, in
`billing.api`. Centers' agents call it with a token carrying the `agent` scope."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_support import paginated_response, paginated_schema
from accounts.errors import InvalidInput
from accounts.models import OrganizationKind, Scope
from accounts.schema import error_responses
from marketplace.api.bookings import UtcDateTimeField
from marketplace.models import Allocation, AllocationState, Booking
from marketplace.selectors.agents import allocation_action, allocations_for_center
from marketplace.services.agents import agent_heartbeat, allocation_report
from marketplace.timestamps import rfc3339

MAX_DEVICES_PER_HEARTBEAT = 4096
MAX_ACCESS_KEYS = 32
MAX_ACCESS_VALUE = 2000


@extend_schema_field(OpenApiTypes.STR)
class FractionField(serializers.Field):
    """A fraction 0–1 as a decimal string (or a JSON number), kept to 4 decimals; null when unknown."""

    default_error_messages = {
        "invalid": _('A fraction between 0 and 1, such as "0.83".'),
    }

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        try:
            value = Decimal(str(data))
        except InvalidOperation:
            self.fail("invalid")
        if not value.is_finite() or not 0 <= value <= 1:
            self.fail("invalid")
        return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)

    def to_representation(self, value):
        return None if value is None else str(value)


class DeviceSerializer(serializers.Serializer):
    index = serializers.IntegerField(min_value=0, max_value=65535)
    uuid = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    model = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    utilization = FractionField(required=False, allow_null=True, default=None)
    memory_used_mb = serializers.IntegerField(
        min_value=0, max_value=10**9, required=False, allow_null=True, default=None
    )
    memory_total_mb = serializers.IntegerField(
        min_value=0, max_value=10**9, required=False, allow_null=True, default=None
    )
    healthy = serializers.BooleanField(required=False, default=True)
    booking = serializers.UUIDField(
        required=False, allow_null=True, default=None, help_text="The booking this device serves now, if any."
    )

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        # Stored as JSON: strings for the fraction and the booking id.
        if values["utilization"] is not None:
            values["utilization"] = str(values["utilization"])
        if values["booking"] is not None:
            values["booking"] = str(values["booking"])
        return values


class HeartbeatSerializer(serializers.Serializer):
    agent = serializers.CharField(max_length=100, help_text="The agent's name, unique within the center.")
    version = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    hostname = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    devices = serializers.ListField(
        child=DeviceSerializer(), required=False, default=list, max_length=MAX_DEVICES_PER_HEARTBEAT
    )


class HeartbeatResultSerializer(serializers.Serializer):
    agent = serializers.CharField()
    id = serializers.UUIDField()
    registered = serializers.BooleanField(help_text="True on the heartbeat that registered the agent.")
    server_time = serializers.CharField()
    stale_after_seconds = serializers.IntegerField()


class AllocationStateSerializer(serializers.Serializer):
    state = serializers.CharField()
    access = serializers.DictField()
    message = serializers.CharField()


class AllocationItemSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="pk", help_text="The booking id.")
    offering = serializers.CharField(source="offering.external_id", help_text="The offering's external id.")
    devices = serializers.IntegerField()
    start = UtcDateTimeField()
    end = serializers.SerializerMethodField(
        help_text="When the devices are to be released: the booking's end, or its cancellation time when cancelled "
        "earlier."
    )
    status = serializers.CharField(help_text="The booking's status.")
    consumer = serializers.CharField(source="consumer.slug")
    action = serializers.ChoiceField(
        choices=["provision", "release"],
        help_text="provision: should be provisioned now; release: provisioned, but ended or cancelled.",
    )
    allocation = serializers.SerializerMethodField()
    slurm_account = serializers.SerializerMethodField(
        help_text="The Slurm account the reference agent creates for the booking."
    )

    @extend_schema_field(AllocationStateSerializer)
    def get_allocation(self, booking: Booking) -> dict:
        allocation = _allocation_of(booking)
        if allocation is None:
            return {"state": AllocationState.PENDING, "access": {}, "message": ""}
        return {"state": allocation.state, "access": allocation.access, "message": allocation.message}

    def get_end(self, booking: Booking) -> str:
        end = booking.end
        if booking.cancelled_at is not None and booking.cancelled_at < end:
            end = max(booking.cancelled_at, booking.start)
        return UtcDateTimeField().to_representation(end)

    def get_slurm_account(self, booking: Booking) -> str:
        return f"bk-{booking.pk.hex[:6]}"


def _allocation_of(booking: Booking) -> Allocation | None:
    try:
        return booking.allocation
    except Allocation.DoesNotExist:
        return None


class AccessField(serializers.DictField):
    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if len(values) > MAX_ACCESS_KEYS:
            raise serializers.ValidationError(_("At most %(max)d access details.") % {"max": MAX_ACCESS_KEYS})
        for key, value in values.items():
            if not key or len(key) > 64:
                raise serializers.ValidationError(_("Keys are 1 to 64 characters."))
            if value is not None and not isinstance(value, str | int | float | bool):
                raise serializers.ValidationError(
                    _("“%(key)s”: values are strings, numbers or booleans.") % {"key": key[:64]}
                )
            if isinstance(value, str) and len(value) > MAX_ACCESS_VALUE:
                raise serializers.ValidationError(
                    _("“%(key)s” is longer than %(max)d characters.") % {"key": key[:64], "max": MAX_ACCESS_VALUE}
                )
        return values


class AllocationReportSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=[AllocationState.PROVISIONED, AllocationState.RELEASED, AllocationState.FAILED]
    )
    access = AccessField(
        required=False, allow_null=True, default=None, help_text="How the consumer reaches the devices."
    )
    message = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")
    agent = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class AgentView(APIView):
    required_scope = Scope.AGENT
    allowed_kinds = frozenset({OrganizationKind.CENTER})


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class HeartbeatView(AgentView):
    @extend_schema(
        operation_id="agent_heartbeat",
        summary="Register the agent (first time) and report its devices",
        request=HeartbeatSerializer,
        responses={200: HeartbeatResultSerializer, **error_responses(400, 401, 403)},
        tags=["agents"],
    )
    def post(self, request):
        data = _valid(HeartbeatSerializer, request.data)
        now = timezone.now()
        agent, created = agent_heartbeat(
            actor=request.auth,
            name=data["agent"],
            version=data["version"],
            hostname=data["hostname"],
            devices=data["devices"],
            now=now,
        )
        return Response(
            {
                "agent": agent.name,
                "id": str(agent.pk),
                "registered": created,
                "server_time": rfc3339(now),
                "stale_after_seconds": settings.AGENT_STALE_AFTER_SECONDS,
            }
        )


class AllocationListView(AgentView):
    @extend_schema(
        operation_id="agent_allocation_list",
        summary="The center's bookings to provision or release, soonest first",
        parameters=[
            OpenApiParameter(
                "agent",
                str,
                required=False,
                description="The asking agent's name: bookings another agent of the center took are left out.",
            )
        ],
        responses={200: paginated_schema(AllocationItemSerializer), **error_responses(401, 403)},
        tags=["agents"],
    )
    def get(self, request):
        agent = request.query_params.get("agent") or None
        if agent is not None and len(agent) > 100:
            raise InvalidInput(_("agent must be the agent's name."), errors={"agent": [_("At most 100 characters.")]})
        queryset = allocations_for_center(request.auth, now=timezone.now(), agent_name=agent)
        return paginated_response(self, request, queryset, AllocationItemSerializer)


class AllocationReportView(AgentView):
    @extend_schema(
        operation_id="agent_allocation_report",
        summary="Report that a booking was provisioned (with access details), released, or failed",
        request=AllocationReportSerializer,
        responses={200: AllocationItemSerializer, **error_responses(400, 401, 403, 404, 409)},
        tags=["agents"],
    )
    def post(self, request, booking_id):
        data = _valid(AllocationReportSerializer, request.data)
        now = timezone.now()
        allocation = allocation_report(
            actor=request.auth,
            booking_id=booking_id,
            state=data["state"],
            access=data["access"],
            message=data["message"],
            agent_name=data["agent"] or None,
            now=now,
        )
        booking = allocation.booking
        booking.action = allocation_action(booking, now)
        return Response(AllocationItemSerializer(booking).data)


urlpatterns = [
    path("agent/heartbeat", HeartbeatView.as_view(), name="api-agent-heartbeat"),
    path("agent/allocations", AllocationListView.as_view(), name="api-agent-allocations"),
    path("agent/allocations/<str:booking_id>", AllocationReportView.as_view(), name="api-agent-allocation"),
]
