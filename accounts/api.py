"""The accounts JSON API (`/api/v1/`): the caller, the organization, members, invitations, tokens, audit log.

Each view validates with a serializer, calls one service or selector and renders. Objects named in the URL are
loaded through `accounts.selectors`, so another organization's object is a 404 exactly like a missing one.

Permissions (`accounts.permissions`): `/me` and reading the organization need only an acting organization;
member reads need the `read` scope (every role has it); everything that manages the organization is
`admin_only`: signed-in owners and admins, never API tokens.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from accounts import schema as _schema  # registers the authentication schemes with drf-spectacular
from accounts import selectors, services
from accounts.actor import Actor
from accounts.api_support import DefaultPagination, idempotent, paginated_response
from accounts.models import Scope
from accounts.serializers import (
    ApiTokenCreatedSerializer,
    ApiTokenCreateSerializer,
    ApiTokenSerializer,
    AuditEventSerializer,
    InvitationCreateSerializer,
    InvitationSerializer,
    MemberMeSerializer,
    MembershipRoleSerializer,
    MembershipSerializer,
    OrganizationSerializer,
    OrganizationUpdateSerializer,
    TokenMeSerializer,
    TokenSummarySerializer,
    UserSerializer,
)

errors = _schema.error_responses


def _actor(request: Request) -> Actor:
    # ActsForOrganization has already refused any request without an Actor.
    return request.auth


def _validated(serializer_class: type[Serializer], request: Request, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class AccountsAPIView(APIView):
    # Declared so the schema documents list responses in the pagination envelope.
    pagination_class = DefaultPagination


class AdminWritesMixin:
    """Reads follow the view's scope; every write needs a signed-in owner or admin."""

    request: Request

    @property
    def admin_only(self) -> bool:
        return self.request.method not in SAFE_METHODS


# --- me -----------------------------------------------------------------------------------------------------


class MeView(AccountsAPIView):
    """Who the credentials act as. Needs no scope: any token may ask which organization it belongs to."""

    @extend_schema(
        operation_id="me_retrieve",
        summary="The caller",
        description="For a signed-in person: the user, the organization they act as, their role and the "
        "scopes that role grants. For an API token: its organization, the token (never its secret) and its "
        "scopes.",
        responses={
            200: PolymorphicProxySerializer(
                component_name="Me",
                serializers=[MemberMeSerializer, TokenMeSerializer],
                resource_type_field_name=None,
            ),
            **errors(403),
        },
    )
    def get(self, request: Request) -> Response:
        actor = _actor(request)
        organization = OrganizationSerializer(selectors.organization_of(actor)).data
        scopes = sorted(actor.scopes)
        if actor.token is not None:
            return Response(
                {
                    "organization": organization,
                    "token": TokenSummarySerializer(actor.token).data,
                    "scopes": scopes,
                }
            )
        return Response(
            {
                "user": UserSerializer(actor.user).data,
                "organization": organization,
                "role": actor.role,
                "scopes": scopes,
            }
        )


# --- organization -------------------------------------------------------------------------------------------


class OrganizationView(AdminWritesMixin, AccountsAPIView):
    @extend_schema(
        operation_id="organization_retrieve",
        summary="The acting organization",
        responses={200: OrganizationSerializer, **errors(403)},
    )
    def get(self, request: Request) -> Response:
        return Response(OrganizationSerializer(selectors.organization_of(_actor(request))).data)

    @extend_schema(
        operation_id="organization_update",
        summary="Change the organization's settings",
        description="Owners and admins, signed in. Credit limit, kind and verification are set by the "
        "operator and are refused here as unknown fields.",
        request=OrganizationUpdateSerializer,
        responses={200: OrganizationSerializer, **errors(400, 403)},
    )
    def patch(self, request: Request) -> Response:
        changes = _validated(OrganizationUpdateSerializer, request, partial=True)
        organization = services.organization_update(actor=_actor(request), changes=changes)
        return Response(OrganizationSerializer(organization).data)


# --- members ------------------------------------------------------------------------------------------------


class MemberListView(AccountsAPIView):
    required_scope = Scope.READ

    @extend_schema(
        operation_id="members_list",
        summary="Members of the organization",
        description="Ordered by e-mail address. Needs the `read` scope (every member has it).",
        responses={200: MembershipSerializer(many=True), **errors(403, 404)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.member_list(_actor(request)), MembershipSerializer)


MEMBER_ID = _schema.id_parameter("int", "membership")


class MemberDetailView(AccountsAPIView):
    required_scope = Scope.READ

    @property
    def admin_only(self) -> bool:
        # DELETE is left to the service: anyone may leave an organization (remove their own membership), only
        # admins may remove others; tokens are people-less and so always refused there.
        return self.request.method == "PATCH"

    @extend_schema(
        operation_id="members_retrieve",
        summary="One member",
        parameters=[MEMBER_ID],
        responses={200: MembershipSerializer, **errors(403, 404)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(MembershipSerializer(selectors.member_get(_actor(request), id)).data)

    @extend_schema(
        operation_id="members_change_role",
        summary="Change a member's role",
        description="Owners and admins; only an owner grants or takes away `owner`. The last owner cannot be "
        "demoted (422 `last_owner`).",
        parameters=[MEMBER_ID],
        request=MembershipRoleSerializer,
        responses={200: MembershipSerializer, **errors(400, 403, 404, 422)},
    )
    def patch(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        membership = selectors.member_get(actor, id)
        role = _validated(MembershipRoleSerializer, request)["role"]
        membership = services.membership_change_role(actor=actor, membership_id=membership.pk, role=role)
        return Response(MembershipSerializer(membership).data)

    @extend_schema(
        operation_id="members_remove",
        summary="Remove a member (or leave)",
        description="Owners and admins remove others (only an owner removes an owner); any signed-in member "
        "may remove their own membership. The last owner cannot leave (422 `last_owner`).",
        parameters=[MEMBER_ID],
        request=None,
        responses={204: None, **errors(403, 404, 422)},
    )
    def delete(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        membership = selectors.member_get(actor, id)
        services.membership_remove(actor=actor, membership_id=membership.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- invitations --------------------------------------------------------------------------------------------


INVITATION_ID = _schema.id_parameter("uuid", "invitation")


class InvitationListView(AccountsAPIView):
    admin_only = True

    @extend_schema(
        operation_id="invitations_list",
        summary="Invitations, newest first",
        responses={200: InvitationSerializer(many=True), **errors(403, 404)},
    )
    def get(self, request: Request) -> Response:
        actor = _actor(request)
        return paginated_response(
            self, request, selectors.invitation_list(actor), InvitationSerializer, now=timezone.now()
        )

    @extend_schema(
        operation_id="invitations_create",
        summary="Invite someone by e-mail",
        description="E-mails a link valid for `INVITATION_TTL_DAYS` days; re-inviting an address replaces "
        "its open invitation. The link's secret is only in the e-mail, never in a response.",
        parameters=[_schema.IDEMPOTENCY_KEY_PARAMETER],
        request=InvitationCreateSerializer,
        responses={201: InvitationSerializer, **errors(400, 403, 409)},
    )
    @idempotent
    def post(self, request: Request) -> Response:
        actor = _actor(request)
        data = _validated(InvitationCreateSerializer, request)
        issued = services.invitation_create(
            actor=actor, email=data["email"], role=data["role"], base_url=request.build_absolute_uri("/")
        )
        return Response(InvitationSerializer(issued.invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailView(AccountsAPIView):
    admin_only = True

    @extend_schema(
        operation_id="invitations_retrieve",
        summary="One invitation",
        parameters=[INVITATION_ID],
        responses={200: InvitationSerializer, **errors(403, 404)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(InvitationSerializer(selectors.invitation_get(_actor(request), id)).data)


class InvitationRevokeView(AccountsAPIView):
    admin_only = True

    @extend_schema(
        operation_id="invitations_revoke",
        summary="Revoke an open invitation",
        description="The link stops working at once. An accepted or already revoked invitation is a 409 "
        "`invitation_closed`.",
        parameters=[INVITATION_ID],
        request=None,
        responses={200: InvitationSerializer, **errors(403, 404, 409)},
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        invitation = selectors.invitation_get(actor, id)
        invitation = services.invitation_revoke(actor=actor, invitation_id=invitation.pk)
        return Response(InvitationSerializer(invitation).data)


# --- API tokens ---------------------------------------------------------------------------------------------


TOKEN_ID = _schema.id_parameter("uuid", "token")


class TokenListView(AccountsAPIView):
    """API tokens of the organization.

    Creating a token with an `Idempotency-Key`: the stored response for the key never holds the secret (a
    database leak must not hand out working tokens), so a replay answers with `secret: null`. The secret is
    added to the live response only after the idempotency record has been written.
    """

    admin_only = True

    @extend_schema(
        operation_id="tokens_list",
        summary="API tokens, newest first",
        description="Never includes secrets; `prefix` tells tokens apart.",
        responses={200: ApiTokenSerializer(many=True), **errors(403, 404)},
    )
    def get(self, request: Request) -> Response:
        actor = _actor(request)
        return paginated_response(
            self, request, selectors.api_token_list(actor), ApiTokenSerializer, now=timezone.now()
        )

    @extend_schema(
        operation_id="tokens_create",
        summary="Create an API token",
        description=(
            "Owners and admins, signed in. The response carries the token's `secret`: the only time it is "
            "ever shown; only its SHA-256 is stored.\n\n"
            "`Idempotency-Key` is honoured, but because the secret is never stored, a replay returns the "
            "first response with `secret: null` (and `Idempotent-Replayed: true`). A client that lost the "
            "first response should revoke that token (its `id` is in the replay) and create a new one."
        ),
        parameters=[_schema.IDEMPOTENCY_KEY_PARAMETER],
        request=ApiTokenCreateSerializer,
        responses={201: ApiTokenCreatedSerializer, **errors(400, 403, 409)},
    )
    def post(self, request: Request) -> Response:
        self._issued_secret: str | None = None
        response = self._create(request)
        if self._issued_secret is not None:
            response.data = {**response.data, "secret": self._issued_secret}
        return response

    @idempotent
    def _create(self, request: Request) -> Response:
        data = _validated(ApiTokenCreateSerializer, request)
        issued = services.api_token_create(
            actor=_actor(request), name=data["name"], scopes=data["scopes"], expires_at=data.get("expires_at")
        )
        self._issued_secret = issued.secret
        body = ApiTokenSerializer(issued.token, context={"now": issued.token.created_at}).data
        return Response({**body, "secret": None}, status=status.HTTP_201_CREATED)


class TokenDetailView(AccountsAPIView):
    admin_only = True

    @extend_schema(
        operation_id="tokens_retrieve",
        summary="One API token",
        parameters=[TOKEN_ID],
        responses={200: ApiTokenSerializer, **errors(403, 404)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(ApiTokenSerializer(selectors.api_token_get(_actor(request), id)).data)


class TokenRevokeView(AccountsAPIView):
    admin_only = True

    @extend_schema(
        operation_id="tokens_revoke",
        summary="Revoke an API token",
        description="The token stops authenticating at once (401 `token_revoked`). Revoking twice changes nothing.",
        parameters=[TOKEN_ID],
        request=None,
        responses={200: ApiTokenSerializer, **errors(403, 404)},
    )
    def post(self, request: Request, id: str) -> Response:
        actor = _actor(request)
        token = selectors.api_token_get(actor, id)
        token = services.api_token_revoke(actor=actor, token_id=token.pk)
        return Response(ApiTokenSerializer(token).data)


# --- audit log ----------------------------------------------------------------------------------------------


class AuditEventListView(AccountsAPIView):
    admin_only = True

    @extend_schema(
        operation_id="audit_events_list",
        summary="The audit log, newest first",
        responses={200: AuditEventSerializer(many=True), **errors(403, 404)},
    )
    def get(self, request: Request) -> Response:
        return paginated_response(self, request, selectors.audit_event_list(_actor(request)), AuditEventSerializer)


class AuditEventDetailView(AccountsAPIView):
    admin_only = True

    @extend_schema(
        operation_id="audit_events_retrieve",
        summary="One audit event",
        parameters=[_schema.id_parameter("int", "audit event")],
        responses={200: AuditEventSerializer, **errors(403, 404)},
    )
    def get(self, request: Request, id: str) -> Response:
        return Response(AuditEventSerializer(selectors.audit_event_get(_actor(request), id)).data)


# --- unknown paths ------------------------------------------------------------------------------------------
