"""Browser pages of accounts: sign-up and login, invitations, the organization's settings, people and tokens.

Views stay thin: they check the request's shape, call one service or selector, and render. Objects named in
a URL are always loaded through `accounts.selectors` for the acting organization first, so another
organization's member, invitation or token is a 404 for everyone, before a role check could reveal it exists.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, time
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import get_language, gettext_lazy, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.i18n import set_language as django_set_language

from accounts import ratelimit, selectors, services
from accounts.actor import Actor, client_ip
from accounts.authentication import SESSION_ORG_KEY
from accounts.errors import DomainError, NotFound
from accounts.forms import (
    ApiTokenCreateForm,
    EmailAuthenticationForm,
    InvitationCreateForm,
    InvitationSignUpForm,
    MemberRoleForm,
    OrganizationCreateForm,
    OrganizationSettingsForm,
    PasswordResetForm,
    SetPasswordForm,
    SignUpForm,
    apply_domain_error,
)
from accounts.models import Language, Role

View = Callable[..., HttpResponse]

AUDIT_PAGE_SIZE = 50

INVITATION_STATUS_LABELS = {
    "pending": gettext_lazy("Pending"),
    "accepted": gettext_lazy("Accepted"),
    "revoked": gettext_lazy("Revoked"),
    "expired": gettext_lazy("Expired"),
}
TOKEN_STATUS_LABELS = {
    "active": gettext_lazy("Active"),
    "revoked": gettext_lazy("Revoked"),
    "expired": gettext_lazy("Expired"),
}


# --- helpers ------------------------------------------------------------------------------------------------


def _login_backend() -> str:
    return settings.AUTHENTICATION_BACKENDS[0]


def set_language_cookie(response: HttpResponse, language: str) -> HttpResponse:
    """Make the next pages render in `language`, with the same cookie Django's set_language view writes."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,
    )
    return response


def _act_as(request: HttpRequest, organization_id: Any) -> None:
    request.session[SESSION_ORG_KEY] = str(organization_id)


def _safe_next(request: HttpRequest, fallback: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def actor_required(view: View) -> View:
    """Signed in and acting as an organization; a person without one is shown how to create one."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if getattr(request, "actor", None) is None:
            status = 200 if request.method in ("GET", "HEAD") else 403
            return render(request, "accounts/no_organization.html", {"form": OrganizationCreateForm()}, status=status)
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view: View) -> View:
    """`actor_required`, and the person is an owner or admin of the acting organization (else 403)."""

    @actor_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.actor.is_admin:
            raise PermissionDenied(_("Only the organization's owners and admins can do this."))
        return view(request, *args, **kwargs)

    return wrapper


def scoped_object(selector: Callable[[Actor, Any], Any], *, kwarg: str, to: str) -> Callable[[View], View]:
    """Load the URL's `kwarg` through `selector` for the acting organization and pass it on as `to`.

    Applied inside `actor_required` and outside `admin_required`: a foreign id is a 404 whatever the role.
    """

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                kwargs[to] = selector(request.actor, kwargs.pop(kwarg))
            except NotFound as exc:
                raise Http404(exc.detail) from exc
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# --- language -----------------------------------------------------------------------------------------------


def set_language(request: HttpRequest) -> HttpResponse:
    """Django's set_language, which also remembers a signed-in person's choice for their next login."""
    response = django_set_language(request)
    language = request.POST.get("language", "")
    if request.method == "POST" and request.user.is_authenticated and language in Language.values:
        services.user_set_language(user=request.user, language=language)
    return response


# --- sign-up, login, password reset -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST or None, initial={"language": get_language()})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = services.signup(
                email=data["email"],
                name=data["name"],
                password=data["password1"],
                organization_name=data["organization_name"],
                organization_kind=data["organization_kind"],
                language=data["language"],
                ip_address=client_ip(request),
            )
        except DomainError as exc:
            apply_domain_error(
                form, exc, {"password": "password1", "name": "organization_name", "kind": "organization_kind"}
            )
        else:
            auth_login(request, result.user, backend=_login_backend())
            _act_as(request, result.organization.pk)
            messages.success(request, _("Welcome! %(org)s is ready.") % {"org": result.organization.name})
            return set_language_cookie(redirect("home"), result.user.preferred_language)
    return render(request, "accounts/signup.html", {"form": form})


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # A locked account or address is refused before its password is even checked: a lock that still
        # answered "right" or "wrong" would leave guessing as fast as before (accounts.ratelimit).
        typed = (request.POST.get("username") or "").strip()
        wait = ratelimit.login_locked_for(email=typed, ip_address=client_ip(request))
        if wait:
            return self._locked(typed, wait)
        return super().post(request, *args, **kwargs)

    def _locked(self, typed: str, wait: int) -> HttpResponse:
        minutes = max(1, -(-wait // 60))
        form = self.get_form_class()(self.request, initial={"username": typed})
        context = self.get_context_data(form=form)
        context["lockout_message"] = ngettext(
            "Too many failed logins. Try again in %(minutes)s minute.",
            "Too many failed logins. Try again in %(minutes)s minutes.",
            minutes,
        ) % {"minutes": minutes}
        response = self.render_to_response(context, status=429)
        response["Retry-After"] = str(wait)
        return response

    def form_valid(self, form: EmailAuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        user = form.get_user()
        ratelimit.login_succeeded(email=form.data.get("username"))
        services.audit_login(user=user, ip_address=client_ip(self.request))
        return set_language_cookie(response, user.preferred_language)

    def form_invalid(self, form: EmailAuthenticationForm) -> HttpResponse:
        typed = (form.data.get("username") or "").strip()
        if typed:  # an empty submission is a slip, not an attempt on an account
            ip_address = client_ip(self.request)
            services.audit_failed_login(email=typed, ip_address=ip_address)
            if ratelimit.login_failed(email=typed, ip_address=ip_address):
                ratelimit.audit_login_locked(email=typed, ip_address=ip_address)
                return self._locked(typed, ratelimit.login_locked_for(email=typed, ip_address=ip_address))
        return super().form_invalid(form)


class LogoutView(auth_views.LogoutView):
    pass  # POST only (Django's default): a link or an image tag must not be able to sign people out


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset_form.html"
    email_template_name = "accounts/email/password_reset_email.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    form_class = PasswordResetForm
    success_url = reverse_lazy("accounts:password_reset_done")


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    form_class = SetPasswordForm
    success_url = reverse_lazy("accounts:password_reset_complete")

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        services.audit_password_reset(user=form.user, ip_address=client_ip(self.request))
        return response


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"


# --- invitations (the invitee's side) -----------------------------------------------------------------------


def _invitation_invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/invitation_invalid.html", status=404)


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_find_open(secret=token)
    except NotFound:
        return _invitation_invalid(request)
    user = request.user
    signup_form = None if user.is_authenticated else InvitationSignUpForm(initial={"language": get_language()})

    if request.method == "POST" and user.is_authenticated:
        try:
            membership = services.invitation_accept(secret=token, user=user, ip_address=client_ip(request))
        except NotFound:
            return _invitation_invalid(request)
        except DomainError as exc:
            messages.error(request, exc.detail)
            return redirect(request.path)
        _act_as(request, membership.organization_id)
        messages.success(
            request,
            _("You joined %(org)s as %(role)s.") % _membership_words(membership.organization.name, membership.role),
        )
        return redirect("home")

    if request.method == "POST":
        signup_form = InvitationSignUpForm(request.POST)
        if signup_form.is_valid():
            data = signup_form.cleaned_data
            try:
                result = services.signup_with_invitation(
                    secret=token,
                    name=data["name"],
                    password=data["password1"],
                    language=data["language"],
                    ip_address=client_ip(request),
                )
            except NotFound:
                return _invitation_invalid(request)
            except DomainError as exc:
                apply_domain_error(signup_form, exc, {"password": "password1"})
            else:
                auth_login(request, result.user, backend=_login_backend())
                _act_as(request, result.organization.pk)
                messages.success(
                    request,
                    _("Welcome! You joined %(org)s as %(role)s.")
                    % _membership_words(result.organization.name, invitation.role),
                )
                return set_language_cookie(redirect("home"), result.user.preferred_language)

    context = {
        "invitation": invitation,
        "role_label": Role(invitation.role).label,
        "is_invitee": user.is_authenticated and user.email.lower() == invitation.email.lower(),
        "signup_form": signup_form,
        "login_url": f"{reverse('accounts:login')}?{urlencode({'next': request.path})}",
    }
    return render(request, "accounts/invitation_accept.html", context)


def _membership_words(org_name: str, role: str) -> dict[str, str]:
    return {"org": org_name, "role": str(Role(role).label)}


# --- organizations ------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def organization_create(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    form = OrganizationCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.organization_create(
                kind=form.cleaned_data["kind"], name=form.cleaned_data["name"], owner=request.user
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            _act_as(request, organization.pk)
            messages.success(request, _("%(org)s is ready. You are its owner.") % {"org": organization.name})
            return redirect("home")
    return render(request, "accounts/organization_create.html", {"form": form})


@require_POST
def organization_switch(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("home"))
    try:
        membership = services.active_membership_for(user=request.user, organization_id=request.POST.get("organization"))
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    _act_as(request, membership.organization_id)
    messages.info(request, _("You are now acting as %(org)s.") % {"org": membership.organization.name})
    return HttpResponseRedirect(_safe_next(request, reverse("home")))


@actor_required
@require_http_methods(["GET", "POST"])
def organization_settings(request: HttpRequest) -> HttpResponse:
    actor = request.actor
    organization = selectors.organization_of(actor)
    form = None
    if actor.is_admin:
        initial = {field: getattr(organization, field) for field in services.ORGANIZATION_SETTINGS_FIELDS}
        form = OrganizationSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if form is None:
            raise PermissionDenied(_("Only the organization's owners and admins can do this."))
        if form.is_valid():
            try:
                # Only what the admin changed, so the audit event shows just that.
                changes = {name: form.cleaned_data[name] for name in form.changed_data}
                services.organization_update(actor=actor, changes=changes)
            except DomainError as exc:
                apply_domain_error(form, exc, {"currency": "billing_currency"})
            else:
                messages.success(request, _("The organization's settings were saved."))
                return redirect("accounts:organization_settings")
    return render(request, "accounts/organization_settings.html", {"organization": organization, "form": form})


# --- members ------------------------------------------------------------------------------------------------


def _role_choices(actor: Actor) -> list[tuple[str, str]]:
    # Only an owner may hand out or take away the owner role; others are not offered it.
    return [choice for choice in Role.choices if actor.is_owner or choice[0] != Role.OWNER]


def _member_row(actor: Actor, membership: Any) -> dict[str, Any]:
    is_self = membership.user_id == actor.user.pk
    may_manage = actor.is_admin and (actor.is_owner or membership.role != Role.OWNER)
    return {
        "membership": membership,
        "is_self": is_self,
        "can_change_role": may_manage,
        "can_remove": may_manage and not is_self,
    }


@actor_required
@require_GET
def members(request: HttpRequest) -> HttpResponse:
    actor = request.actor
    rows = [_member_row(actor, m) for m in selectors.member_list(actor)]
    return render(request, "accounts/members.html", {"rows": rows, "role_choices": _role_choices(actor)})


@require_POST
@actor_required
@scoped_object(selectors.member_get, kwarg="membership_id", to="membership")
@admin_required
def member_change_role(request: HttpRequest, membership: Any) -> HttpResponse:
    actor = request.actor
    form = MemberRoleForm(request.POST)
    feedback: tuple[str, str] | None = None
    if not form.is_valid():
        feedback = ("error", _("Choose a role from the list."))
    else:
        try:
            membership = services.membership_change_role(
                actor=actor, membership_id=membership.pk, role=form.cleaned_data["role"]
            )
        except DomainError as exc:
            feedback = ("error", exc.detail)
        else:
            feedback = (
                "success",
                _("%(email)s is now %(role)s.") % {"email": membership.user.email, "role": Role(membership.role).label},
            )
    changed_own_role = feedback[0] == "success" and membership.user_id == request.user.pk
    if _is_htmx(request) and changed_own_role:
        # What the page may offer depends on the person's own role: reload it whole.
        getattr(messages, feedback[0])(request, feedback[1])
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    if _is_htmx(request):
        # The row is swapped in place; a flash message would only show up on some later page.
        membership = selectors.member_get(actor, membership.pk)
        context = {
            "row": _member_row(actor, membership),
            "role_choices": _role_choices(actor),
            "feedback": feedback,
        }
        return render(request, "accounts/partials/member_row.html", context)
    getattr(messages, feedback[0])(request, feedback[1])
    return redirect("accounts:members")


@require_POST
@actor_required
@scoped_object(selectors.member_get, kwarg="membership_id", to="membership")
def member_remove(request: HttpRequest, membership: Any) -> HttpResponse:
    actor = request.actor
    leaving = membership.user_id == request.user.pk
    if not leaving and not actor.is_admin:
        raise PermissionDenied(_("Only the organization's owners and admins can do this."))
    try:
        services.membership_remove(actor=actor, membership_id=membership.pk)
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("accounts:members")
    if leaving:
        request.session.pop(SESSION_ORG_KEY, None)
        messages.success(request, _("You left %(org)s.") % {"org": actor.organization.name})
        return redirect("home")
    messages.success(request, _("%(email)s was removed.") % {"email": membership.user.email})
    return redirect("accounts:members")


# --- invitations (the organization's side) ------------------------------------------------------------------


def _invitations_page(request: HttpRequest, form: InvitationCreateForm | None, status: int = 200) -> HttpResponse:
    actor = request.actor
    now = timezone.now()
    rows = []
    for invitation in selectors.invitation_list(actor):
        state = invitation.status_at(now)
        rows.append({"invitation": invitation, "status": state, "status_label": INVITATION_STATUS_LABELS[state]})
    return render(request, "accounts/invitations.html", {"rows": rows, "form": form}, status=status)


@actor_required
@require_GET
def invitations(request: HttpRequest) -> HttpResponse:
    form = InvitationCreateForm(can_grant_owner=request.actor.is_owner) if request.actor.is_admin else None
    return _invitations_page(request, form)


@require_POST
@admin_required
def invitation_create(request: HttpRequest) -> HttpResponse:
    actor = request.actor
    form = InvitationCreateForm(request.POST, can_grant_owner=actor.is_owner)
    if form.is_valid():
        try:
            issued = services.invitation_create(
                actor=actor,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=request.build_absolute_uri("/"),
            )
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            messages.success(request, _("An invitation was sent to %(email)s.") % {"email": issued.invitation.email})
            return redirect("accounts:invitations")
    return _invitations_page(request, form)


@require_POST
@actor_required
@scoped_object(selectors.invitation_get, kwarg="invitation_id", to="invitation")
@admin_required
def invitation_revoke(request: HttpRequest, invitation: Any) -> HttpResponse:
    try:
        services.invitation_revoke(actor=request.actor, invitation_id=invitation.pk)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, _("The invitation to %(email)s was revoked.") % {"email": invitation.email})
    return redirect("accounts:invitations")


# --- API tokens ---------------------------------------------------------------------------------------------


@actor_required
@require_GET
def api_tokens(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = []
    for token in selectors.api_token_list(request.actor):
        state = token.status_at(now)
        rows.append({"token": token, "status": state, "status_label": TOKEN_STATUS_LABELS[state]})
    return render(request, "accounts/api_tokens.html", {"rows": rows})


def _expiry(day: Any) -> datetime | None:
    return datetime.combine(day, time.min, tzinfo=UTC) if day else None


@require_http_methods(["GET", "POST"])
@admin_required
def api_token_create(request: HttpRequest) -> HttpResponse:
    form = ApiTokenCreateForm(request.POST or None, initial={"submission": secrets.token_urlsafe(24)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # cache.add is atomic: of two submissions of one form, however close together, only the first creates.
        if not cache.add(f"token-form:{request.user.pk}:{data['submission']}", 1, timeout=24 * 3600):
            messages.info(
                request, _("This token was already created. Its secret was shown once and cannot be shown again.")
            )
            return redirect("accounts:api_tokens")
        try:
            issued = services.api_token_create(
                actor=request.actor,
                name=data["name"],
                scopes=list(data["scopes"]),
                expires_at=_expiry(data["expires_on"]),
            )
        except DomainError as exc:
            apply_domain_error(form, exc, {"expires_at": "expires_on"})
        else:
            # The secret exists only in this response: it is never stored, redirected with or put in the
            # session, and no cache (browser or proxy) may keep a copy of the page.
            response = render(
                request, "accounts/api_token_created.html", {"token": issued.token, "secret": issued.secret}
            )
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "accounts/api_token_create.html", {"form": form})


@require_POST
@actor_required
@scoped_object(selectors.api_token_get, kwarg="token_id", to="token")
@admin_required
def api_token_revoke(request: HttpRequest, token: Any) -> HttpResponse:
    try:
        services.api_token_revoke(actor=request.actor, token_id=token.pk)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, _("The token “%(name)s” was revoked.") % {"name": token.name})
    return redirect("accounts:api_tokens")


# --- audit log ----------------------------------------------------------------------------------------------


@admin_required
@require_GET
def audit_log(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.audit_event_list(request.actor), AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/audit_log.html", {"page": page})
