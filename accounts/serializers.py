"""The JSON shapes of the accounts API: input serializers validate, output serializers render. No rules here.

Every input serializer refuses fields it does not know: a client sending `credit_limit` in a settings PATCH
must learn that it was not applied instead of getting a silent 200.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, Role, Scope, User

# --- errors -------------------------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (API.md, Conventions)."""

    detail = serializers.CharField(help_text="A sentence for people.")
    code = serializers.CharField(help_text="A stable machine code, e.g. `not_found`, `role_required`.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per-field messages, present on validation errors only.",
    )


# --- input --------------------------------------------------------------------------------------------------


class StrictInputSerializer(serializers.Serializer):
    # Refuses unknown keys, so typos and read-only fields are reported rather than ignored.

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [_("Unknown field, or one that cannot be set here.")] for name in unknown},
                    code="unknown_field",
                )
        return super().to_internal_value(data)


class UpperCaseCharField(serializers.CharField):
    """Codes people type in either case (tax id, currency), upper-cased before they are validated."""

    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data).upper()


class OrganizationUpdateSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200, required=False)
    legal_name = serializers.CharField(max_length=300, required=False, allow_blank=True)
    tax_id = UpperCaseCharField(
        max_length=32,
        required=False,
        allow_blank=True,
        validators=[RegexValidator(r"^[0-9A-Z-]*$", _("Use digits, capital letters and dashes only."))],
    )
    region = serializers.CharField(max_length=64, required=False, allow_blank=True)
    billing_currency = UpperCaseCharField(
        min_length=3, max_length=3, required=False, help_text="ISO 4217 code, e.g. `CNY`."
    )


class MembershipRoleSerializer(StrictInputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationCreateSerializer(StrictInputSerializer):
    email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class ApiTokenCreateSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices),
        allow_empty=False,
        min_length=1,
        max_length=len(Scope.values),
    )
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="RFC 3339; omit or null for a token that does not expire."
    )


# --- output -------------------------------------------------------------------------------------------------


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name", "preferred_language"]
        read_only_fields = fields


class MemberUserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "name"]
        read_only_fields = fields


class OrganizationSerializer(serializers.ModelSerializer):
    credit_limit = serializers.DecimalField(
        max_digits=18,
        decimal_places=2,
        allow_null=True,
        read_only=True,
        help_text="Money as a string in `billing_currency`; null means no limit.",
    )

    class Meta:
        model = Organization
        fields = [
            "id",
            "kind",
            "name",
            "slug",
            "legal_name",
            "tax_id",
            "region",
            "billing_currency",
            "verified",
            "credit_limit",
        ]
        read_only_fields = fields


class MembershipSerializer(serializers.ModelSerializer):
    user = MemberUserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = fields


class _StatusAtNowMixin:
    # Status depends on the clock (expiry): a list view passes one `now`, so all rows share one instant.

    def get_status(self, obj) -> str:
        return obj.status_at(self.context.get("now") or timezone.now())


class InvitationSerializer(_StatusAtNowMixin, serializers.ModelSerializer):
    """An invitation to join the organization. The link's secret is never part of it."""

    status = serializers.SerializerMethodField(help_text="One of `pending`, `accepted`, `revoked`, `expired`.")
    invited_by = serializers.SlugRelatedField(slug_field="email", read_only=True)

    class Meta:
        model = Invitation
        fields = [
            "id",
            "email",
            "role",
            "status",
            "invited_by",
            "created_at",
            "expires_at",
            "accepted_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiTokenSerializer(_StatusAtNowMixin, serializers.ModelSerializer):
    """An API token as listed: never its secret, only the prefix that tells tokens apart."""

    status = serializers.SerializerMethodField(help_text="One of `active`, `revoked`, `expired`.")
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), read_only=True)
    created_by = serializers.SlugRelatedField(
        slug_field="email",
        read_only=True,
        allow_null=True,
        help_text="Who created it; null for tokens issued from the command line or whose creator was deleted.",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "status",
            "created_by",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = fields


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    """A token just created, with its secret (shown in this response only)."""

    secret = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The token itself, shown in this response only. Null when the response is an "
        "Idempotency-Key replay: the secret is never stored, so it cannot be shown again.",
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class TokenSummarySerializer(serializers.ModelSerializer):
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scopes"]
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer):
    actor_user = serializers.PrimaryKeyRelatedField(source="actor", read_only=True, allow_null=True)
    actor_token = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "action",
            "actor_label",
            "actor_user",
            "actor_token",
            "target_type",
            "target_id",
            "before",
            "after",
            "ip_address",
            "created_at",
        ]
        read_only_fields = fields


class MemberMeSerializer(serializers.Serializer):
    """GET /me for a signed-in person."""

    user = UserSerializer()
    organization = OrganizationSerializer()
    role = serializers.ChoiceField(choices=Role.choices)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices))


class TokenMeSerializer(serializers.Serializer):
    """GET /me for an API token."""

    organization = OrganizationSerializer()
    token = TokenSummarySerializer()
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices))
