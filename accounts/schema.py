"""OpenAPI documentation helpers: how the API authenticates, and the error responses every endpoint shares.

Imported by `accounts.api`, so the authentication extensions are registered before the schema is generated.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from accounts.api_support import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY_LENGTH
from accounts.serializers import ErrorSerializer


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token of one organization: `Authorization: Bearer cn_…`. Its scopes limit "
            "what it may call; tokens never manage members, invitations or other tokens.",
        }


class OrganizationSessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.OrganizationSessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The browser session (send the CSRF token on writes), acting as the organization "
            "picked in the organization switcher.",
        }


_ERROR_DESCRIPTIONS = {
    400: "Bad input: malformed JSON, wrong types, unknown fields or enum values (`errors` names the fields).",
    401: "No credentials, or an invalid, expired or revoked token (`WWW-Authenticate: Bearer`).",
    403: "The credentials lack the scope or role this needs (`scope_required`, `role_required`).",
    404: "Not found, or not the acting organization's: the two are indistinguishable.",
    409: "Conflicts with the current state (e.g. `idempotency_conflict`).",
    422: "Refused by a rule (e.g. `last_owner`).",
    413: "Too large (e.g. `batch_too_large`: more records than one batch may hold).",
    429: "Too many requests; retry after `Retry-After` seconds.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """The error responses of an operation, all in the shared `{"detail", "code", "errors"?}` shape."""
    wanted = {401, 429, *statuses}
    return {
        status: OpenApiResponse(response=ErrorSerializer, description=_ERROR_DESCRIPTIONS[status])
        for status in sorted(wanted)
    }


def id_parameter(kind: str, described: str) -> OpenApiParameter:
    return OpenApiParameter(
        "id",
        OpenApiTypes.UUID if kind == "uuid" else OpenApiTypes.INT,
        OpenApiParameter.PATH,
        description=f"The {described}'s id. A malformed id or another organization's is a 404.",
    )


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description=f"Up to {MAX_IDEMPOTENCY_KEY_LENGTH} characters. The same key with the same body returns the "
    "first successful response (with `Idempotent-Replayed: true`); with a different body, 409 "
    "`idempotency_conflict`. Refused requests keep nothing, so a corrected retry may reuse the key.",
)


_PAGE_PARAMETERS = [
    {
        "name": "page",
        "required": False,
        "in": "query",
        "description": "A page number within the paginated result set.",
        "schema": {"type": "integer"},
    },
    {
        "name": "page_size",
        "required": False,
        "in": "query",
        "description": "Number of results to return per page.",
        "schema": {"type": "integer"},
    },
]


def document_pagination(result, generator, request, public):
    """Postprocessing hook (SPECTACULAR_SETTINGS): every list that answers one page of a `Paginated…` component
    through `paginated_schema` documents `page` and `page_size`, and the 404 of a page past the end, as the lists
    drf-spectacular paginates itself do. Without it a client (or the API fuzzer) could not know `?page=` exists, and
    `?page=9` answered an undocumented 404."""
    for path_item in result.get("paths", {}).values():
        operation = path_item.get("get")
        if not operation:
            continue
        ok = operation.get("responses", {}).get("200", {})
        ref = ok.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
        if not ref.startswith("#/components/schemas/Paginated"):
            continue
        parameters = operation.setdefault("parameters", [])
        present = {parameter.get("name") for parameter in parameters if parameter.get("in") == "query"}
        parameters.extend(dict(parameter) for parameter in _PAGE_PARAMETERS if parameter["name"] not in present)
        operation["responses"].setdefault(
            "404",
            {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                "description": _ERROR_DESCRIPTIONS[404],
            },
        )
        operation["responses"] = dict(sorted(operation["responses"].items()))
    return result
