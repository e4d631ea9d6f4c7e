from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/done/", views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    # The invitee's side: the link e-mailed by accounts.services.invitation_create.
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("switch/", views.organization_switch, name="organization_switch"),
    path("organizations/new/", views.organization_create, name="organization_create"),
    path("organization/", views.organization_settings, name="organization_settings"),
    path("organization/members/", views.members, name="members"),
    path("organization/members/<str:membership_id>/role/", views.member_change_role, name="member_change_role"),
    path("organization/members/<str:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("organization/invitations/", views.invitations, name="invitations"),
    path("organization/invitations/new/", views.invitation_create, name="invitation_create"),
    path(
        "organization/invitations/<str:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("organization/tokens/", views.api_tokens, name="api_tokens"),
    path("organization/tokens/new/", views.api_token_create, name="api_token_create"),
    path("organization/tokens/<str:token_id>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("organization/audit/", views.audit_log, name="audit_log"),
]
