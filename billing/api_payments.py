"""Payments API (API.md, Billing) and the Stripe webhook.

- `GET /api/v1/payments`: the acting consumer's payments (the operator's finance: everyone's), each with how it was
  applied to invoices and refunded. `billing` scope; reads also allowed to `read`.
- `POST /api/v1/stripe/webhook`: Stripe's endpoint. No session, token or CSRF: Stripe proves itself with the
  `Stripe-Signature` HMAC over the raw body (`STRIPE_WEBHOOK_SECRET`), checked before anything is read or stored;
  a missing, stale or wrong signature is a 400 in the API's error shape and stores nothing. A verified event is
  stored once and handled by a task after commit, so the answer is quick and a redelivery changes nothing.
"""

from __future__ import annotations

from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_support import DefaultPagination, paginated_response, paginated_schema
from accounts.models import CONSUMER_KINDS, OrganizationKind, Scope
from accounts.schema import error_responses
from billing import stripe_gateway
from billing.models import PaymentStatus
from billing.selectors.consumer_payments import payment_list
from billing.serializers import PaymentSerializer
from billing.services.stripe_events import stripe_event_receive


class PaymentListView(APIView):
    required_scope = Scope.BILLING
    allowed_kinds = CONSUMER_KINDS | {OrganizationKind.OPERATOR}
    pagination_class = DefaultPagination

    @extend_schema(
        operation_id="payment_list",
        summary="Payments, newest first",
        description="A consumer's own payments (card and bank transfer, received, pending and failed); the platform "
        "operator's: everyone's. Each with its allocations to invoices (negative: a credit note gave credit back) "
        "and refunds.",
        parameters=[
            OpenApiParameter("status", str, enum=PaymentStatus.values, required=False),
            OpenApiParameter("invoice", str, required=False, description="Only payments meant for this invoice."),
        ],
        responses={200: paginated_schema(PaymentSerializer), **error_responses(400, 403)},
        tags=["billing"],
    )
    def get(self, request: Request) -> Response:
        queryset = payment_list(
            request.auth,
            status=request.query_params.get("status") or None,
            invoice_id=request.query_params.get("invoice") or None,
        )
        return paginated_response(self, request, queryset, PaymentSerializer)


class RawBodyParser(BaseParser):
    """The webhook's signature is over the exact bytes Stripe sent: nothing may parse them before it is checked."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # pragma: no cover - the view reads request.body
        return {}


class StripeWebhookAckSerializer(serializers.Serializer):
    received = serializers.BooleanField()
    duplicate = serializers.BooleanField(help_text="True when this event id was received before (nothing changed).")


class StripeWebhookView(APIView):
    # Stripe authenticates by signature, not by a session (so no CSRF either) nor an organization token.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Stripe retries failed deliveries and may send bursts: a throttled (429) delivery would only come back.
    throttle_classes: list = []
    parser_classes = [RawBodyParser]

    @extend_schema(
        operation_id="stripe_webhook",
        summary="Stripe webhook endpoint",
        description="Verifies `Stripe-Signature` against `STRIPE_WEBHOOK_SECRET` on the raw body (400 "
        "`missing_signature` or `invalid_signature` when missing, stale or wrong; nothing is stored), stores the "
        "event once under its id, answers 200 at once and handles it asynchronously; the same event again answers "
        "200 and changes nothing.",
        request={
            "application/json": {
                "type": "object",
                "description": "A Stripe event, exactly as Stripe signed it.",
                "required": ["id", "type"],
                "properties": {
                    "id": {"type": "string", "example": "evt_1"},
                    "type": {"type": "string", "example": "payment_intent.succeeded"},
                    "data": {"type": "object", "properties": {"object": {"type": "object"}}},
                },
            }
        },
        responses={200: StripeWebhookAckSerializer, 400: OpenApiResponse(description="Bad signature or body.")},
        tags=["payments"],
        auth=[],
    )
    def post(self, request: Request) -> Response:
        event = stripe_gateway.event_verify(payload=request.body, signature=request.headers.get("Stripe-Signature"))
        _stored, created = stripe_event_receive(event=event, now=timezone.now())
        return Response({"received": True, "duplicate": not created})


urlpatterns = [
    path("payments", PaymentListView.as_view(), name="api-payments"),
    path("stripe/webhook", StripeWebhookView.as_view(), name="api-stripe-webhook"),
]
