"""The metering API (API.md, Agents: `POST /api/v1/agent/usage`). Centers' agents call it with a token carrying
the `agent` scope. The batch is judged by `billing.services.usage.usage_ingest`; this view only reads the body."""

from __future__ import annotations

from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.errors import InvalidInput
from accounts.models import OrganizationKind, Scope
from accounts.schema import error_responses
from billing import api_payment_settings, api_payments, api_payouts, api_reconcile, api_settlement
from billing.services.usage import MAX_BATCH, usage_ingest


class UsageRecordInputSerializer(serializers.Serializer):
    """Documentation only: records are judged one by one by the service, so that one bad record never costs the
    batch its good ones."""

    id = serializers.CharField(max_length=200, help_text="The agent's record id, unique within the center.")
    booking = serializers.UUIDField()
    start = serializers.DateTimeField(help_text="RFC 3339 with an offset.")
    end = serializers.DateTimeField(help_text="RFC 3339 with an offset; after start.")
    devices = serializers.IntegerField(min_value=1)
    utilization = serializers.CharField(required=False, allow_null=True, help_text='A fraction 0–1, e.g. "0.83".')
    energy_kwh = serializers.CharField(required=False, allow_null=True, help_text='e.g. "1.9".')


class UsageBatchSerializer(serializers.Serializer):
    agent = serializers.CharField(required=False, help_text="The sending agent's name (optional).")
    records = UsageRecordInputSerializer(many=True, help_text=f"At most {MAX_BATCH:,} records.")


class RejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    id = serializers.CharField(allow_null=True)
    code = serializers.ChoiceField(
        choices=["unknown_booking", "outside_window", "in_future", "too_many_devices", "id_conflict", "invalid"]
    )
    detail = serializers.CharField()


class UsageResultSerializer(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = RejectionSerializer(many=True)


class UsageUploadView(APIView):
    required_scope = Scope.AGENT
    allowed_kinds = frozenset({OrganizationKind.CENTER})

    @extend_schema(
        operation_id="agent_usage_upload",
        summary="Upload a batch of metered usage records",
        description="Each record is judged on its own: good records are kept even when others are rejected. A "
        "record id accepted before with the same payload counts as a duplicate and changes nothing. More than "
        f"{MAX_BATCH:,} records: 413 `batch_too_large`.",
        request=UsageBatchSerializer,
        responses={200: UsageResultSerializer, **error_responses(400, 401, 403, 413)},
        tags=["agents"],
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict) or "records" not in body:
            raise InvalidInput(
                _("Send a JSON object with a list of records."), errors={"records": [_("This field is required.")]}
            )
        agent = body.get("agent")
        if agent is not None and (not isinstance(agent, str) or len(agent) > 100):
            raise InvalidInput(_("agent must be the agent's name."), errors={"agent": [_("At most 100 characters.")]})
        result = usage_ingest(actor=request.auth, records=body["records"], agent_name=agent or None, now=timezone.now())
        return Response(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": [
                    {"index": r.index, "id": r.id, "code": r.code, "detail": r.detail} for r in result.rejected
                ],
            }
        )


urlpatterns = [path("agent/usage", UsageUploadView.as_view(), name="api-agent-usage")]
# Settlement and vouchers (API.md, Billing): invoices, statements, periods, the ledger, voucher programs.
urlpatterns += api_settlement.urlpatterns
urlpatterns += api_payments.urlpatterns
urlpatterns += api_payouts.urlpatterns
urlpatterns += api_reconcile.urlpatterns
urlpatterns += api_payment_settings.urlpatterns
