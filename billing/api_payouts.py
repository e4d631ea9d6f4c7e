"""The payouts API: centers read their own payouts; the platform operator reads every center's, creates a closed
period's payouts, marks a payout paid with the bank's reference and records a sponsor's voucher claim payment
received (the same services as the finance pages, `billing.services.payouts`).

Objects named in a URL are loaded through scoped selectors, so another organization's payout is a 404 exactly like a
missing one. Everything needs the `billing` scope (reads also `read`); writes are the operator's finance staff's,
which the services and views check (`require_platform_finance`).
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.actor import Actor
from accounts.api_support import DefaultPagination, paginated_response, paginated_schema
from accounts.models import OrganizationKind, Scope
from accounts.schema import error_responses, id_parameter
from accounts.serializers import StrictInputSerializer
from billing.models import Payout, PayoutStatus, VoucherClaim
from billing.periods_calendar import parse_label
from billing.selectors.payouts import payout_get, payout_list
from billing.selectors.vouchers import voucher_claim_get
from billing.serializers import MoneyString, PeriodLabel, RenderedSerializer, Timestamp, VoucherClaimSerializer, money
from billing.services.invoices import require_platform_finance
from billing.services.payouts import (
    claim_reference,
    payout_mark_paid,
    payout_reference,
    payouts_create,
    voucher_claim_mark_paid,
)
from marketplace.api.bookings import UtcDateTimeField
from marketplace.timestamps import rfc3339

OPERATOR = OrganizationKind.OPERATOR
PAYOUT_READERS = frozenset({OrganizationKind.CENTER, OPERATOR})
TAGS = ["payouts"]
PAYOUT_ID = id_parameter("uuid", "payout")


def _actor(request: Request) -> Actor:
    return request.auth


class PayoutSerializer(RenderedSerializer):
    id = serializers.UUIDField()
    center = serializers.CharField(help_text="The center's slug.")
    statement = serializers.UUIDField(help_text="The statement it pays out.")
    period = PeriodLabel(help_text="The statement's period.")
    currency = serializers.CharField()
    amount = MoneyString(help_text="The statement's net payout.")
    method = serializers.CharField(help_text="`bank` or `stripe` (a Stripe Connect transfer).")
    status = serializers.CharField(help_text="`pending`, `in_transit`, `paid` or `failed`.")
    reference = serializers.CharField(help_text="What the bank transfer carries, e.g. `PO-2026-10-3F2A9C1B`.")
    transfer_group = serializers.CharField(help_text="`period-YYYY-MM`, the Stripe transfer group.")
    stripe_transfer = serializers.CharField(allow_null=True, help_text="The Connect transfer's id, once made.")
    bank_file = serializers.CharField(allow_null=True, help_text="The number of the bank file that lists it.")
    bank_reference = serializers.CharField(help_text="The bank's (or Stripe's) reference once paid.")
    paid_at = Timestamp(allow_null=True)
    booked_in = PeriodLabel(allow_null=True, help_text="The month the payment is booked in (the first unlocked one).")
    failure_message = serializers.CharField()
    created_at = Timestamp()

    @staticmethod
    def render(payout: Payout, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(payout.pk),
            "center": payout.center.slug,
            "statement": str(payout.statement_id),
            "period": payout.transfer_group.removeprefix("period-"),
            "currency": payout.currency,
            "amount": money(payout.amount, payout.currency),
            "method": payout.method,
            "status": payout.status,
            "reference": payout_reference(payout),
            "transfer_group": payout.transfer_group,
            "stripe_transfer": payout.stripe_transfer,
            "bank_file": payout.batch.number if payout.batch_id else None,
            "bank_reference": payout.bank_reference,
            "paid_at": rfc3339(payout.paid_at),
            "booked_in": payout.period.label if payout.period_id else None,
            "failure_message": payout.failure_message,
            "created_at": rfc3339(payout.created_at),
        }


class SkippedStatementSerializer(serializers.Serializer):
    statement = serializers.UUIDField()
    center = serializers.CharField()
    net_payout = MoneyString()
    currency = serializers.CharField()


class PayoutsCreatedSerializer(serializers.Serializer):
    period = PeriodLabel()
    created = PayoutSerializer(many=True)
    existing = serializers.IntegerField(help_text="Payouts the period already had (creating again adds none).")
    skipped = SkippedStatementSerializer(many=True, help_text="Statements with nothing to pay (net payout ≤ 0).")


class ReceivedInputSerializer(StrictInputSerializer):
    bank_reference = serializers.CharField(max_length=200, help_text="The bank's reference of the transfer.")
    paid_at = UtcDateTimeField(help_text="When the money left (or arrived), RFC 3339.")


class VoucherClaimReceivedSerializer(VoucherClaimSerializer):
    reference = serializers.CharField(help_text="What the sponsor's transfer should carry, e.g. `VC-2026-10-…`.")

    @staticmethod
    def render(claim: VoucherClaim, context: dict[str, Any]) -> dict[str, Any]:
        return {**VoucherClaimSerializer.render(claim, context), "reference": claim_reference(claim)}


class PayoutView(APIView):
    required_scope = Scope.BILLING
    pagination_class = DefaultPagination


class PayoutListView(PayoutView):
    allowed_kinds = PAYOUT_READERS

    @extend_schema(
        operation_id="payout_list",
        summary="Payouts to centers, newest period first",
        description="A center's own; the platform operator's: every center's.",
        parameters=[
            OpenApiParameter("period", str, required=False, description="A month, YYYY-MM."),
            OpenApiParameter("status", str, enum=PayoutStatus.values, required=False),
        ],
        responses={200: paginated_schema(PayoutSerializer), **error_responses(400, 403)},
        tags=TAGS,
    )
    def get(self, request: Request) -> Response:
        period = request.query_params.get("period") or None
        if period:
            parse_label(period)
        status = request.query_params.get("status") or None
        if status is not None and status not in PayoutStatus.values:
            raise serializers.ValidationError({"status": [f"One of: {', '.join(PayoutStatus.values)}."]})
        queryset = payout_list(_actor(request), period=period, status=status)
        return paginated_response(self, request, queryset, PayoutSerializer)


class PayoutDetailView(PayoutView):
    allowed_kinds = PAYOUT_READERS

    @extend_schema(
        operation_id="payout_get",
        summary="One payout",
        parameters=[PAYOUT_ID],
        responses={200: PayoutSerializer, **error_responses(403, 404)},
        tags=TAGS,
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(PayoutSerializer(payout_get(_actor(request), id)).data)


class PayoutsCreateView(PayoutView):
    allowed_kinds = frozenset({OPERATOR})

    @extend_schema(
        operation_id="payouts_create",
        summary="Create a closed period's payouts",
        description="One payout per statement with a positive net payout, by the center's payout method. Creating "
        "again creates only what is missing. A period not closed: 409 `period_not_closed`.",
        parameters=[OpenApiParameter("period", str, OpenApiParameter.PATH, description="YYYY-MM.")],
        request=None,
        responses={200: PayoutsCreatedSerializer, **error_responses(400, 403, 404, 409)},
        tags=TAGS,
    )
    def post(self, request: Request, period: str) -> Response:
        result = payouts_create(period=period, now=timezone.now(), actor=_actor(request))
        return Response(
            {
                "period": result.period.label,
                "created": PayoutSerializer(result.created, many=True).data,
                "existing": len(result.existing),
                "skipped": [
                    {
                        "statement": str(s.pk),
                        "center": s.center.slug,
                        "net_payout": money(s.net_payout, s.currency),
                        "currency": s.currency,
                    }
                    for s in result.skipped
                ],
            }
        )


class PayoutPaidView(PayoutView):
    allowed_kinds = frozenset({OPERATOR})

    @extend_schema(
        operation_id="payout_mark_paid",
        summary="Mark a payout paid, with the bank's reference",
        description="Posts the payout to the ledger once, in the first unlocked month of `paid_at`. Marking a paid "
        "payout paid again changes nothing.",
        parameters=[PAYOUT_ID],
        request=ReceivedInputSerializer,
        responses={200: PayoutSerializer, **error_responses(400, 403, 404, 409)},
        tags=TAGS,
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        payout = payout_get(actor, id)
        require_platform_finance(actor)
        data = ReceivedInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payout_mark_paid(
            payout_id=payout.pk,
            bank_reference=data.validated_data["bank_reference"],
            paid_at=data.validated_data["paid_at"],
            now=timezone.now(),
            actor_label=actor.label,
            actor=actor,
        )
        return Response(PayoutSerializer(payout_get(actor, payout.pk)).data)


class VoucherClaimReceivedView(PayoutView):
    allowed_kinds = frozenset({OPERATOR})

    @extend_schema(
        operation_id="voucher_claim_received",
        summary="Record a sponsor's payment of a voucher claim received",
        description="Posts Dr cash, Cr the sponsor's voucher receivable once, in the first unlocked month of "
        "`paid_at`. A paid claim changes nothing.",
        parameters=[id_parameter("uuid", "voucher claim")],
        request=ReceivedInputSerializer,
        responses={200: VoucherClaimReceivedSerializer, **error_responses(400, 403, 404)},
        tags=["vouchers"],
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        claim = voucher_claim_get(actor, id)
        require_platform_finance(actor)
        data = ReceivedInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        voucher_claim_mark_paid(
            claim_id=claim.pk,
            bank_reference=data.validated_data["bank_reference"],
            paid_at=data.validated_data["paid_at"],
            now=timezone.now(),
            actor_label=actor.label,
            actor=actor,
        )
        return Response(VoucherClaimReceivedSerializer(voucher_claim_get(actor, claim.pk)).data)


urlpatterns = [
    path("payouts", PayoutListView.as_view(), name="api-payouts"),
    path("payouts/<str:id>", PayoutDetailView.as_view(), name="api-payout"),
    path("payouts/<str:id>/paid", PayoutPaidView.as_view(), name="api-payout-paid"),
    path("periods/<str:period>/payouts", PayoutsCreateView.as_view(), name="api-period-payouts"),
    path("voucher-claims/<str:id>/received", VoucherClaimReceivedView.as_view(), name="api-voucher-claim-received"),
]
