"""The inventory API (API.md, Inventory): the chip catalog, and centers' sites and offerings by their own keys.

Centers call it with a token carrying the `inventory` scope. External ids are per center: a key another center
uses is simply free for the caller, so a PUT creates the caller's own object and a GET is a 404.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import schema as _schema
from accounts.actor import Actor
from accounts.api_support import idempotent, paginated_response, paginated_schema
from accounts.errors import InvalidInput
from accounts.models import OrganizationKind, Scope
from accounts.permissions import PublicRead
from marketplace.external_ids import is_valid_external_id
from marketplace.selectors import inventory as selectors
from marketplace.serializers import (
    MAX_SYNC_ITEMS,
    AcceleratorSerializer,
    InventorySyncResultSerializer,
    InventorySyncSerializer,
    OfferingInputSerializer,
    OfferingSerializer,
    OfferingSyncItemSerializer,
    SiteInputSerializer,
    SiteSerializer,
)
from marketplace.services import inventory as services

errors = _schema.error_responses


def _actor(request: Request) -> Actor:
    # ActsForOrganization has already refused any request without an Actor.
    return request.auth


def _put_input(serializer_class: type[serializers.Serializer], request: Request, external_id: str) -> dict:
    if not is_valid_external_id(external_id):
        raise InvalidInput(
            _("Some fields are invalid."),
            code="invalid",
            errors={"external_id": [_("Use 1 to 128 characters without spaces, slashes or control characters.")]},
        )
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    data = dict(serializer.validated_data)
    if data.pop("external_id", external_id) != external_id:
        raise InvalidInput(
            _("Some fields are invalid."),
            code="invalid",
            errors={"external_id": [_("Must equal the external id in the URL.")]},
        )
    return data


class InventoryView(APIView):
    required_scope = Scope.INVENTORY
    allowed_kinds = frozenset({OrganizationKind.CENTER})


def _external_id_parameter(described: str) -> OpenApiParameter:
    return OpenApiParameter(
        "external_id",
        OpenApiTypes.STR,
        OpenApiParameter.PATH,
        description=f"The center's own key for the {described}: 1 to 128 characters without spaces, slashes "
        "or control characters. Keys are per center.",
    )


SITE_EXTERNAL_ID = _external_id_parameter("site")
OFFERING_EXTERNAL_ID = _external_id_parameter("offering")

_PUT_DESCRIPTION = (
    "Creates the object (201) or replaces it whole (200): an optional field left out goes back to its default, "
    "it is not kept. A PUT that changes nothing saves nothing (`updated_at` stays). An `external_id` in the body "
    "is optional and must equal the one in the URL. Unknown fields are refused (400)."
)


# --- accelerators -------------------------------------------------------------------------------------------


class AcceleratorListView(APIView):
    permission_classes = [PublicRead]

    @extend_schema(
        operation_id="accelerators_list",
        summary="The chip catalog",
        description="Every accelerator model offerings may name by `code`, with its FP16/BF16 dense TFLOPS "
        "(the basis of the PFLOP-hour). Public: no credentials needed.",
        responses={200: paginated_schema(AcceleratorSerializer), **errors(404)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.accelerator_list(), AcceleratorSerializer)


# --- sites --------------------------------------------------------------------------------------------------


class SiteListView(InventoryView):
    @extend_schema(
        operation_id="sites_list",
        summary="The center's sites, newest first",
        responses={200: paginated_schema(SiteSerializer), **errors(403, 404)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.site_list(_actor(request)), SiteSerializer)


class SiteDetailView(InventoryView):
    @extend_schema(
        operation_id="sites_retrieve",
        summary="One of the center's sites",
        parameters=[SITE_EXTERNAL_ID],
        responses={200: SiteSerializer, **errors(403, 404)},
    )
    def get(self, request: Request, external_id: str) -> Response:
        return Response(SiteSerializer(selectors.site_get(_actor(request), external_id)).data)

    @extend_schema(
        operation_id="sites_put",
        summary="Create or replace a site",
        description=_PUT_DESCRIPTION,
        parameters=[SITE_EXTERNAL_ID],
        request=SiteInputSerializer,
        responses={200: SiteSerializer, 201: SiteSerializer, **errors(400, 403)},
    )
    def put(self, request: Request, external_id: str) -> Response:
        data = _put_input(SiteInputSerializer, request, external_id)
        site, outcome = services.site_put(actor=_actor(request), external_id=external_id, data=data)
        return Response(
            SiteSerializer(site).data, status=status.HTTP_201_CREATED if outcome == "created" else status.HTTP_200_OK
        )


# --- offerings ----------------------------------------------------------------------------------------------


class OfferingListView(InventoryView):
    @extend_schema(
        operation_id="offerings_list",
        summary="The center's offerings, newest first",
        description="Every status, retired included.",
        responses={200: paginated_schema(OfferingSerializer), **errors(403, 404)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.offering_list(_actor(request)), OfferingSerializer)


class OfferingDetailView(InventoryView):
    @extend_schema(
        operation_id="offerings_retrieve",
        summary="One of the center's offerings",
        parameters=[OFFERING_EXTERNAL_ID],
        responses={200: OfferingSerializer, **errors(403, 404)},
    )
    def get(self, request: Request, external_id: str) -> Response:
        return Response(OfferingSerializer(selectors.offering_get(_actor(request), external_id)).data)

    @extend_schema(
        operation_id="offerings_put",
        summary="Create or replace an offering",
        description=_PUT_DESCRIPTION
        + "\n\nThe response carries the platform `id` (consumers book by it). `site` must be one of the "
        "center's sites and `accelerator` a catalog code (else 400 naming the field). Lowering `devices` "
        "below what bookings hold at any instant from now on is refused with 409 `capacity_in_use` (the body "
        "adds `devices_in_use` and `devices_requested`). A price change applies only to bookings made after "
        "it: bookings keep the price they were made at.",
        parameters=[OFFERING_EXTERNAL_ID],
        request=OfferingInputSerializer,
        responses={200: OfferingSerializer, 201: OfferingSerializer, **errors(400, 403, 409)},
    )
    def put(self, request: Request, external_id: str) -> Response:
        data = _put_input(OfferingInputSerializer, request, external_id)
        offering, outcome = services.offering_put(actor=_actor(request), external_id=external_id, data=data)
        return Response(
            OfferingSerializer(offering).data,
            status=status.HTTP_201_CREATED if outcome == "created" else status.HTTP_200_OK,
        )


# --- sync ---------------------------------------------------------------------------------------------------


def _sync_input(data: Any) -> tuple[list[dict[str, Any]], bool]:
    """The items and `prune` of a sync body: `{"offerings": [...], "prune": bool}` or a bare list."""
    if isinstance(data, list):
        raw_items, prune = data, False
    elif isinstance(data, dict):
        unknown = sorted(set(data) - {"offerings", "prune"})
        field_errors = {name: [_("Unknown field, or one that cannot be set here.")] for name in unknown}
        raw_items = data.get("offerings")
        if not isinstance(raw_items, list):
            field_errors["offerings"] = [_("Required: a list of offerings.")]
        try:
            prune = serializers.BooleanField().run_validation(data.get("prune", False))
        except serializers.ValidationError as exc:
            field_errors["prune"] = [str(message) for message in exc.detail]
        if field_errors:
            raise InvalidInput(_("Some fields are invalid."), code="invalid", errors=field_errors)
    else:
        raise InvalidInput(
            _("Send a list of offerings, or an object with “offerings” and “prune”."),
            code="invalid",
            errors={"non_field_errors": [_("Expected a list or an object.")]},
        )
    if len(raw_items) > MAX_SYNC_ITEMS:
        raise InvalidInput(
            _("Some fields are invalid."),
            code="invalid",
            errors={"offerings": [_("At most %(n)s offerings per sync.") % {"n": MAX_SYNC_ITEMS}]},
        )

    items: list[dict[str, Any]] = []
    field_errors: dict[str, list[str]] = {}
    bad: list[str] = []
    for index, raw in enumerate(raw_items):
        serializer = OfferingSyncItemSerializer(data=raw)
        if serializer.is_valid():
            items.append(dict(serializer.validated_data))
            continue
        external_id = raw.get("external_id") if isinstance(raw, dict) else None
        bad.append(f"offerings[{index}]" + (f" (“{external_id}”)" if isinstance(external_id, str) else ""))
        for name, messages in serializer.errors.items():
            key = f"offerings[{index}]" if name == "non_field_errors" else f"offerings[{index}].{name}"
            field_errors[key] = [str(message) for message in messages]
    if field_errors:
        raise InvalidInput(
            _("Invalid offerings, so nothing was applied: %(items)s.") % {"items": ", ".join(bad)},
            code="invalid",
            errors=field_errors,
        )
    return items, prune


class InventorySyncView(InventoryView):
    @extend_schema(
        operation_id="inventory_sync",
        summary="Upsert many offerings at once",
        description=(
            'The body is `{"offerings": [...], "prune": false}` or just the list. Each offering is as in '
            "PUT /offerings/{external_id} plus its `external_id`, and is created or replaced the same way. All "
            "or nothing: one bad item is a 400 (or 409 `capacity_in_use`) whose `errors` keys name it, e.g. "
            "`offerings[3].price_per_device_hour`, and nothing is applied. An external id listed twice is a "
            "400 `duplicate_external_id`. With `prune: true` the center's offerings missing from the list are "
            "retired (status `retired`; bookings are untouched)."
        ),
        parameters=[_schema.IDEMPOTENCY_KEY_PARAMETER],
        request=InventorySyncSerializer,
        responses={200: InventorySyncResultSerializer, **errors(400, 403, 409)},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        items, prune = _sync_input(request.data)
        result = services.inventory_sync(actor=_actor(request), items=items, prune=prune)
        return Response(
            {
                "counts": {
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "retired": len(result.retired),
                },
                "offerings": OfferingSerializer(result.offerings, many=True).data,
                "retired": result.retired,
            }
        )


urlpatterns = [
    path("accelerators", AcceleratorListView.as_view(), name="api-accelerators"),
    path("sites", SiteListView.as_view(), name="api-sites"),
    path("sites/<str:external_id>", SiteDetailView.as_view(), name="api-site"),
    path("offerings", OfferingListView.as_view(), name="api-offerings"),
    path("offerings/<str:external_id>", OfferingDetailView.as_view(), name="api-offering"),
    path("inventory/sync", InventorySyncView.as_view(), name="api-inventory-sync"),
]
