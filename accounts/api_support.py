"""API plumbing shared by every app: the error shape, pagination, throttling and idempotency keys."""

from __future__ import annotations

import hashlib
import json
import logging
from functools import wraps
from typing import Any

import orjson
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers, status
from rest_framework.exceptions import ParseError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle

from accounts.actor import Actor
from accounts.errors import Conflict, DomainError, InvalidInput

logger = logging.getLogger(__name__)


# --- errors ---------------------------------------------------------------------------------------------------


def _first_code(codes: Any) -> str | None:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, list | tuple) and codes:
        return _first_code(codes[0])
    if isinstance(codes, dict) and codes:
        return _first_code(next(iter(codes.values())))
    return None


def _field_errors(detail: Any) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {
            str(field): [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
            if not isinstance(msgs, dict)
            else [json.dumps(msgs, default=str)]
            for field, msgs in detail.items()
        }
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def error_body(detail: str, code: str, errors: dict | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


def exception_handler(exc: Exception, context: dict) -> Response:
    """Every API error, 500s included, as `{"detail", "code"}` (+ `"errors"` for field validation)."""
    # Imported here: rest_framework.views resolves DEFAULT_THROTTLE_CLASSES (a class of this module) while it
    # loads, so importing it at the top would be circular whenever this module is the first to be imported.
    from rest_framework.views import set_rollback

    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        # Raised when a view first reads a body over DATA_UPLOAD_MAX_MEMORY_SIZE: bad input (API.md), not a 500.
        set_rollback()
        return Response(error_body(_("The request body is too large."), "request_too_large"), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        set_rollback()
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, exceptions.ValidationError):
            errors = _field_errors(exc.detail)
            # One stable machine code for every field error; what went wrong per field is in "errors".
            body = error_body(_("Some fields are invalid."), "invalid", errors)
            return Response(body, status=exc.status_code, headers=headers)
        code = _first_code(exc.get_codes()) or exc.default_code
        if isinstance(exc, exceptions.ParseError):
            code = "malformed_json"
        return Response(error_body(str(exc.detail), code), status=exc.status_code, headers=headers)
    set_rollback()
    view = context.get("view")
    logger.exception("api.unhandled_error", extra={"view": type(view).__name__ if view else None})
    return Response(
        error_body(_("Internal server error. The error was logged; try again later."), "server_error"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


# --- lists and limits -----------------------------------------------------------------------------------------


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with orjson underneath: several times faster on large bodies (usage batches of thousands
    of records), and as strict (no NaN or Infinity). Malformed JSON is a ParseError, hence `malformed_json`.
    Subclassing DRF's keeps its handling of the body (read through `request.body`, which enforces
    DATA_UPLOAD_MAX_MEMORY_SIZE)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return orjson.loads(stream.read() if stream is not None else b"")
        except orjson.JSONDecodeError as exc:
            raise ParseError(_("JSON parse error: %(error)s") % {"error": exc}) from None


class DefaultPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


_PAGE_SCHEMAS: dict[str, type] = {}


def paginated_schema(item: type) -> type:
    """The documented shape of one page of `item`s, as `DefaultPagination` renders it."""
    from rest_framework import serializers

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


def paginated_response(view, request, queryset, serializer_class, **context: Any) -> Response:
    """One page of `queryset` (`?page=`, `?page_size=` up to 500) in the `count/next/previous/results` shape."""
    paginator = DefaultPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    data = serializer_class(page, many=True, context={"request": request, **context}).data
    return paginator.get_paginated_response(data)


class OrganizationRateThrottle(SimpleRateThrottle):
    """A request budget per organization (all its tokens and members together)."""

    scope = "organization"

    def get_cache_key(self, request, view) -> str | None:
        actor = request.auth
        if not isinstance(actor, Actor):
            return None
        return self.cache_format % {"scope": self.scope, "ident": actor.organization.pk}


class TokenScopeRateThrottle(SimpleRateThrottle):
    """A request budget per credential on the machine APIs: the view's `required_scope` names the rate
    (`agent`, `inventory` in DEFAULT_THROTTLE_RATES), counted per API token, or per person for a browser session.

    One runaway agent or sync script then hits its own limit long before it eats its organization's budget
    (OrganizationRateThrottle) and starves the organization's other agents. Views of other scopes are not
    counted here.
    """

    THROTTLED_SCOPES = frozenset({"agent", "inventory"})

    def __init__(self) -> None:
        # The rate depends on the view: it is read in allow_request, like DRF's ScopedRateThrottle does.
        pass

    def allow_request(self, request, view) -> bool:
        scope = getattr(view, "required_scope", None)
        if scope not in self.THROTTLED_SCOPES:
            return True
        self.scope = str(scope)
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str | None:
        actor = request.auth
        if not isinstance(actor, Actor):
            return None
        ident = f"token:{actor.token.pk}" if actor.token is not None else f"user:{actor.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


# --- idempotency keys -----------------------------------------------------------------------------------------

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_LENGTH = 255


def _request_fingerprint(request) -> str:
    try:
        canonical = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        canonical = request.body.decode("utf-8", "replace")
    payload = f"{request.method}\n{request.path}\n{canonical}"
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def idempotent(handler):
    """Make a creating POST honour `Idempotency-Key` (API.md, Conventions).

    The key is claimed by inserting its row inside the same transaction as the handler's writes. A concurrent
    request with the same key blocks on the unique index until the first commits, then replays its response;
    if the first fails, its row rolls back with its writes and the retry runs afresh. Only successful responses
    are kept: a refused request (4xx) leaves nothing behind and may be retried with the same key.
    """

    @wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        from accounts.models import IdempotencyRecord

        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
            raise InvalidInput(
                _("The Idempotency-Key header must be 1 to %(n)s characters.") % {"n": MAX_IDEMPOTENCY_KEY_LENGTH},
                code="invalid_idempotency_key",
            )
        actor: Actor = request.auth
        fingerprint = _request_fingerprint(request)
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        organization=actor.organization,
                        key=key,
                        method=request.method,
                        path=request.path,
                        request_hash=fingerprint,
                    )
            except IntegrityError:
                record = IdempotencyRecord.objects.get(organization=actor.organization, key=key)
                if record.request_hash != fingerprint or record.response_status is None:
                    raise Conflict(
                        _("This Idempotency-Key was already used with a different request."),
                        code="idempotency_conflict",
                    ) from None
                return Response(
                    record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"}
                )
            response = handler(view, request, *args, **kwargs)
            if 200 <= response.status_code < 300:
                record.response_status = response.status_code
                record.response_body = json.loads(json.dumps(response.data, default=str))
                record.save(update_fields=["response_status", "response_body"])
            else:
                transaction.set_rollback(True)
            return response

    return wrapper
