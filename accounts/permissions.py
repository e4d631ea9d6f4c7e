"""The one permission layer: organization kind, token scope and member role, declared on each view.

An API view states what it needs:

    class OfferingList(APIView):
        required_scope = Scope.INVENTORY
        allowed_kinds = {OrganizationKind.CENTER}
        admin_only = False

`ActsForOrganization` (the default permission class) enforces it. Reads (GET, HEAD, OPTIONS) are also allowed to
a token with the `read` scope. `admin_only` views serve signed-in owners and admins only, never tokens: a token
must not be able to mint tokens or change who belongs to the organization.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.actor import Actor


class ActsForOrganization(BasePermission):
    def has_permission(self, request, view) -> bool:
        actor = request.auth
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated()
        if not isinstance(actor, Actor):
            raise exceptions.PermissionDenied(
                _("You are not a member of any organization yet."), code="no_organization"
            )
        check_actor(actor, view, read_only=request.method in SAFE_METHODS)
        return True


def check_actor(actor: Actor, view, *, read_only: bool) -> None:
    kinds = getattr(view, "allowed_kinds", None)
    if kinds and actor.organization.kind not in kinds:
        raise exceptions.PermissionDenied(
            _("This is not available to organizations of kind “%(kind)s”.") % {"kind": actor.organization.kind},
            code="wrong_organization_kind",
        )
    if getattr(view, "admin_only", False):
        if actor.token is not None:
            raise exceptions.PermissionDenied(
                _("API tokens cannot manage the organization; sign in as an admin."), code="role_required"
            )
        if not actor.is_admin:
            raise exceptions.PermissionDenied(
                _("Only the organization's owners and admins can do this."), code="role_required"
            )
    scope = getattr(view, "required_scope", None)
    if scope and not actor.allows(scope, read_only=read_only):
        raise exceptions.PermissionDenied(
            _("This needs the “%(scope)s” scope.") % {"scope": scope}, code="scope_required"
        )


class PublicRead(ActsForOrganization):
    """Anyone may read (the catalog); writing still needs an organization with the view's scope."""

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().has_permission(request, view)
