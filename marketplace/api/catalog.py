"""The public catalog API (API.md, Catalog): published offerings of every center, for anyone to browse.

Reads need no credentials (`PublicRead`); the filters are the selector's (`selectors.catalog.catalog_offerings`),
validated here into 400s that name the bad parameter.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import schema as _schema
from accounts.api_support import paginated_response, paginated_schema
from accounts.permissions import PublicRead
from marketplace.selectors import catalog as selectors
from marketplace.serializers import CatalogFilterSerializer, CatalogOfferingSerializer, CatalogWindowSerializer

errors = _schema.error_responses


def _query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    # A plain dict, not the QueryDict: a QueryDict makes DRF read an absent boolean as false, not as "any".
    serializer = serializer_class(data=request.query_params.dict())
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class CatalogListView(APIView):
    permission_classes = [PublicRead]

    @extend_schema(
        operation_id="catalog_list",
        summary="Search published offerings across all centers",
        description=(
            "Filters combine with AND. With a window (`start` and `end`, RFC 3339, half-open), only offerings "
            "that can take `devices` (default 1) over the whole window are listed, and `available_devices` is "
            "the devices free over all of it; without a window it is null. `max_price_per_device_hour` compares "
            "amounts in each offering's own currency, so pair it with `currency`. Bad values are a 400 naming "
            "the parameter. Sorted by `ordering`, then by price and id. Public: no credentials needed."
        ),
        parameters=[CatalogFilterSerializer],
        responses={200: paginated_schema(CatalogOfferingSerializer), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        filters = _query(CatalogFilterSerializer, request)
        filters.pop("page", None)
        filters.pop("page_size", None)
        return paginated_response(self, request, selectors.catalog_offerings(**filters), CatalogOfferingSerializer)


class CatalogDetailView(APIView):
    permission_classes = [PublicRead]

    @extend_schema(
        operation_id="catalog_retrieve",
        summary="One published offering",
        description="By its platform `id`. An offering that is not published (draft, paused, retired) is a 404 "
        "like an unknown id. With `start` and `end`, `available_devices` is the devices free over that window.",
        parameters=[
            OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The offering's id."),
            CatalogWindowSerializer,
        ],
        responses={200: CatalogOfferingSerializer, **errors(400, 404)},
    )
    def get(self, request: Request, id: str) -> Response:
        window = _query(CatalogWindowSerializer, request)
        offering = selectors.catalog_offering_get(id, start=window.get("start"), end=window.get("end"))
        return Response(CatalogOfferingSerializer(offering).data)


urlpatterns = [
    path("catalog", CatalogListView.as_view(), name="api-catalog"),
    path("catalog/<str:id>", CatalogDetailView.as_view(), name="api-catalog-offering"),
]
