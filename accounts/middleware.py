from __future__ import annotations

from accounts.actor import Actor, client_ip
from accounts.authentication import active_membership


class ActiveOrganizationMiddleware:
    """Give every browser request `request.actor`: the signed-in person acting as one organization (or None)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.actor = _actor_for(request)
        return self.get_response(request)


def _actor_for(request) -> Actor | None:
    user = request.user
    if not user.is_authenticated:
        return None
    membership = active_membership(request, user)
    if membership is None:
        return None
    return Actor.for_member(
        user=user, organization=membership.organization, role=membership.role, ip_address=client_ip(request)
    )
