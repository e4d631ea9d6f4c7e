from __future__ import annotations

import secrets
from datetime import timedelta

import factory
from django.utils import timezone
from django.utils.text import slugify

from accounts.actor import Actor
from accounts.models import Invitation, Membership, Organization, OrganizationKind, Role, User
from accounts.secrets import hash_secret
from accounts.services import api_token_issue

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.test")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    kind = OrganizationKind.ENTERPRISE
    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.LazyAttribute(lambda o: slugify(o.name))
    billing_currency = "CNY"


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.MEMBER


class InvitationFactory(factory.django.DjangoModelFactory):
    """An open invitation; its link's secret is not kept (tests that follow the link use the service)."""

    class Meta:
        model = Invitation

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.test")
    role = Role.MEMBER
    token_hash = factory.LazyFunction(lambda: hash_secret(secrets.token_urlsafe(32)))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


def member_of(organization: Organization, role: str = Role.MEMBER, **user_fields) -> User:
    """A new person with `role` in `organization`."""
    return MembershipFactory(organization=organization, role=role, user=UserFactory(**user_fields)).user


def actor_for(user: User, organization: Organization) -> Actor:
    membership = Membership.objects.get(user=user, organization=organization)
    return Actor.for_member(user=user, organization=organization, role=membership.role)


def token_for(organization: Organization, *scopes: str, **kwargs) -> str:
    """The secret of a new API token of `organization` with `scopes`."""
    return api_token_issue(organization=organization, name="test token", scopes=list(scopes), **kwargs).secret
