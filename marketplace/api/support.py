"""Small pieces the market's API modules share: paginated responses and their OpenAPI shape."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_support import DefaultPagination

_PAGE_SCHEMAS: dict[str, type[serializers.Serializer]] = {}


def paginated_schema(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The documented shape of one page of `item`s, as `DefaultPagination` renders it."""
    name = f"Paginated{item.__name__.removesuffix('Serializer')}List"
    if name not in _PAGE_SCHEMAS:
        _PAGE_SCHEMAS[name] = type(
            name,
            (serializers.Serializer,),
            {
                "count": serializers.IntegerField(help_text="Items on all pages."),
                "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last."),
                "previous": serializers.URLField(allow_null=True, help_text="The previous page, or null."),
                "results": item(many=True),
                "__module__": __name__,
            },
        )
    return _PAGE_SCHEMAS[name]


def paginated_response(
    view: APIView, request: Request, queryset: QuerySet, serializer_class: type[serializers.Serializer], **context: Any
) -> Response:
    """One page of `queryset` (`?page=`, `?page_size=` up to 500) in the `count/next/previous/results` shape."""
    paginator = DefaultPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    data = serializer_class(page, many=True, context={"request": request, **context}).data
    return paginator.get_paginated_response(data)
