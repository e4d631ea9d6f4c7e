"""Routes of the accounts API, included at `/api/v1/`. Paths have no trailing slash, as in API.md.

The last pattern answers every other path under `/api/v1/` with a JSON 404. It must therefore stay the last
`/api/v1/` include in `marketplace/urls.py`: other apps' API routes are included before it.
"""

from django.urls import path

from accounts import api

urlpatterns = [
    path("me", api.MeView.as_view(), name="api-me"),
    path("organization", api.OrganizationView.as_view(), name="api-organization"),
    path("members", api.MemberListView.as_view(), name="api-members"),
    path("members/<str:id>", api.MemberDetailView.as_view(), name="api-member"),
    path("invitations", api.InvitationListView.as_view(), name="api-invitations"),
    path("invitations/<str:id>", api.InvitationDetailView.as_view(), name="api-invitation"),
    path("invitations/<str:id>/revoke", api.InvitationRevokeView.as_view(), name="api-invitation-revoke"),
    path("tokens", api.TokenListView.as_view(), name="api-tokens"),
    path("tokens/<str:id>", api.TokenDetailView.as_view(), name="api-token"),
    path("tokens/<str:id>/revoke", api.TokenRevokeView.as_view(), name="api-token-revoke"),
    path("audit-events", api.AuditEventListView.as_view(), name="api-audit-events"),
    path("audit-events/<str:id>", api.AuditEventDetailView.as_view(), name="api-audit-event"),
]
