"""`manage.py create_org`: onboard an organization by script (API.md, "Bootstrap").

stdout carries exactly one JSON object, `{"org": "<slug>", "id": "<uuid>", "token": "<secret or null>"}`, so a
provisioning script can parse it; everything meant for people goes to stderr. Either everything is created or
nothing is.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts import services
from accounts.errors import DomainError
from accounts.models import Organization, OrganizationKind, Scope, User

# The database column is NUMERIC(18, 2): at most 16 digits before the point and 2 after.
CREDIT_LIMIT_MAX_INTEGER_DIGITS = 16
NAME_MAX_LENGTH = Organization._meta.get_field("name").max_length


def parse_credit_limit(raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        amount = Decimal(raw.strip())
    except InvalidOperation:
        raise CommandError(f"--credit-limit must be a decimal amount such as 50000.00, got {raw!r}") from None
    if not amount.is_finite():
        raise CommandError(f"--credit-limit must be a finite amount, got {raw!r}")
    if amount < 0:
        raise CommandError(f"--credit-limit cannot be negative, got {raw!r}")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        raise CommandError(f"--credit-limit has at most 2 decimal places, got {raw!r}")
    if amount.adjusted() >= CREDIT_LIMIT_MAX_INTEGER_DIGITS:
        raise CommandError(f"--credit-limit is too large, got {raw!r}")
    return amount


def parse_scopes(raw: str | None) -> list[str]:
    if raw is None:
        return []
    scopes = [s.strip() for s in raw.split(",") if s.strip()]
    if not scopes:
        raise CommandError(f"--token-scopes needs at least one of: {', '.join(Scope.values)}")
    unknown = [s for s in scopes if s not in Scope.values]
    if unknown:
        raise CommandError(f"Unknown scope {', '.join(unknown)}; choose from: {', '.join(Scope.values)}")
    return sorted(set(scopes))


def parse_email(raw: str | None) -> str | None:
    if raw is None:
        return None
    email = raw.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise CommandError(f"--admin-email is not a valid e-mail address: {raw!r}") from None
    return email


class Command(BaseCommand):
    help = (
        "Create an organization (optionally with its first owner and an API token) and print "
        '{"org": slug, "id": uuid, "token": secret-or-null} as JSON on stdout.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", required=True, choices=OrganizationKind.values)
        parser.add_argument("--name", required=True)
        parser.add_argument("--currency", default="CNY", help="ISO 4217 billing currency (default CNY).")
        parser.add_argument("--credit-limit", help="Most the organization may owe, e.g. 50000.00; none if omitted.")
        parser.add_argument(
            "--token-scopes",
            help=f"Issue an API token with these comma-separated scopes ({','.join(Scope.values)}).",
        )
        parser.add_argument(
            "--admin-email",
            help="Make this person the owner; a new account gets an e-mailed link to choose a password.",
        )
        parser.add_argument(
            "--base-url",
            default="http://localhost:8000",
            help="Where the product is served, for the link in the new owner's e-mail (default %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Everything is checked before the first write, so a typo never leaves half an organization behind.
        name = options["name"].strip()
        if len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"--name is limited to {NAME_MAX_LENGTH} characters")
        credit_limit = parse_credit_limit(options["credit_limit"])
        scopes = parse_scopes(options["token_scopes"])
        email = parse_email(options["admin_email"])

        try:
            with transaction.atomic():
                owner, owner_is_new = self._owner(email)
                organization = services.organization_create(
                    kind=options["kind"],
                    name=name,
                    currency=options["currency"],
                    credit_limit=credit_limit,
                    owner=owner,
                )
                secret = None
                if scopes:
                    secret = services.api_token_issue(
                        organization=organization, name="create_org", scopes=scopes, created_by=owner
                    ).secret
        except DomainError as exc:
            raise CommandError(self._describe(exc)) from exc

        # Mail goes out only once the account it points at has been committed.
        if owner is not None and owner_is_new:
            self._send_password_link(owner, organization, options["base_url"])
        if owner is not None:
            self.stderr.write(f"{owner.email} is the owner of {organization.name}.")
        self.stdout.write(json.dumps({"org": organization.slug, "id": str(organization.pk), "token": secret}))

    def _owner(self, email: str | None) -> tuple[User | None, bool]:
        if email is None:
            return None, False
        existing = User.objects.filter(email=email).first()
        if existing is not None:
            return existing, False
        # No password: the person picks one through the e-mailed link, so none ever travels through a shell.
        user = User.objects.create_user(email=email, password=None, name=email.split("@")[0])
        return user, True

    def _send_password_link(self, user: User, organization: Organization, base_url: str) -> None:
        path = reverse(
            "accounts:password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        send_mail(
            subject=f"Your account for {organization.name} on the AI Computing Network",
            message=(
                f"An account was created for you as the owner of {organization.name}.\n\n"
                f"Choose your password here: {base_url.rstrip('/')}{path}\n\n"
                "If the link has expired, use “Forgot password” on the login page."
            ),
            from_email=None,
            recipient_list=[user.email],
        )
        self.stderr.write(f"Sent {user.email} a link to choose a password.")

    @staticmethod
    def _describe(exc: DomainError) -> str:
        details = [str(exc.detail)]
        for field, messages in (exc.errors or {}).items():
            details.append(f"{field}: {' '.join(messages)}")
        return " ".join(details)
