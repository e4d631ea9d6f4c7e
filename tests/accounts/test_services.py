"""The membership rules the services guarantee, including under concurrency."""

from __future__ import annotations

import pytest

from accounts import services
from accounts.errors import Conflict, Forbidden, InvalidInput, RuleViolation
from accounts.models import AuditEvent, Membership, Organization, Role, Scope
from tests.accounts.api_helpers import organization_state
from tests.concurrency import run_at_once
from tests.factories import actor_for, member_of


def _role(user) -> str:
    return Membership.objects.get(user=user).role


@pytest.mark.django_db
def test_the_last_owner_cannot_be_demoted(enterprise, enterprise_owner):
    membership = Membership.objects.get(user=enterprise_owner)
    before = organization_state(enterprise)

    with pytest.raises(RuleViolation) as refused:
        services.membership_change_role(
            actor=actor_for(enterprise_owner, enterprise), membership_id=membership.pk, role=Role.ADMIN
        )

    assert (refused.value.code, refused.value.status_code) == ("last_owner", 422)
    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_the_last_owner_cannot_leave(enterprise, enterprise_owner):
    membership = Membership.objects.get(user=enterprise_owner)
    before = organization_state(enterprise)

    with pytest.raises(RuleViolation) as refused:
        services.membership_remove(actor=actor_for(enterprise_owner, enterprise), membership_id=membership.pk)

    assert refused.value.code == "last_owner"
    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_an_owner_may_leave_once_there_is_another_owner(enterprise, enterprise_owner):
    second = member_of(enterprise, Role.ADMIN)
    owner = actor_for(enterprise_owner, enterprise)
    services.membership_change_role(actor=owner, membership_id=Membership.objects.get(user=second).pk, role=Role.OWNER)

    services.membership_remove(actor=owner, membership_id=Membership.objects.get(user=enterprise_owner).pk)

    assert list(Membership.objects.filter(organization=enterprise).values_list("user", "role")) == [
        (second.pk, Role.OWNER)
    ]


@pytest.mark.django_db
def test_only_owners_grant_the_owner_role(enterprise, enterprise_owner, enterprise_admin):
    member = member_of(enterprise, Role.MEMBER)
    membership_id = Membership.objects.get(user=member).pk
    before = organization_state(enterprise)

    with pytest.raises(Forbidden) as refused:
        services.membership_change_role(
            actor=actor_for(enterprise_admin, enterprise), membership_id=membership_id, role=Role.OWNER
        )
    assert refused.value.code == "role_required"
    assert organization_state(enterprise) == before

    services.membership_change_role(
        actor=actor_for(enterprise_owner, enterprise), membership_id=membership_id, role=Role.OWNER
    )
    assert _role(member) == Role.OWNER


@pytest.mark.django_db
def test_an_admin_can_neither_demote_nor_remove_an_owner(enterprise, enterprise_owner, enterprise_admin):
    admin = actor_for(enterprise_admin, enterprise)
    owner_membership = Membership.objects.get(user=enterprise_owner).pk
    before = organization_state(enterprise)

    with pytest.raises(Forbidden):
        services.membership_change_role(actor=admin, membership_id=owner_membership, role=Role.VIEWER)
    with pytest.raises(Forbidden):
        services.membership_remove(actor=admin, membership_id=owner_membership)

    assert organization_state(enterprise) == before


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_people_who_are_not_admins_change_no_roles(enterprise, role):
    person = member_of(enterprise, role)
    other = member_of(enterprise, Role.VIEWER)
    before = organization_state(enterprise)

    with pytest.raises(Forbidden):
        services.membership_change_role(
            actor=actor_for(person, enterprise),
            membership_id=Membership.objects.get(user=other).pk,
            role=Role.MEMBER,
        )

    assert organization_state(enterprise) == before


@pytest.mark.django_db(transaction=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner(enterprise, enterprise_owner):
    # given two owners
    second = member_of(enterprise, Role.OWNER, email="second.owner@blueheron.test")
    first_membership = Membership.objects.get(user=enterprise_owner).pk
    second_membership = Membership.objects.get(user=second).pk
    first_actor = actor_for(enterprise_owner, enterprise)
    second_actor = actor_for(second, enterprise)

    # when each demotes the other at the same instant
    results = run_at_once(
        lambda: services.membership_change_role(actor=first_actor, membership_id=second_membership, role=Role.ADMIN),
        lambda: services.membership_change_role(actor=second_actor, membership_id=first_membership, role=Role.ADMIN),
    )

    # then one demotion wins; the other runs after it, by someone no longer an owner, and is refused
    refusals = [r for r in results if isinstance(r, Exception)]
    assert len(refusals) == 1
    assert isinstance(refusals[0], Forbidden)
    assert refusals[0].code == "role_required"
    roles = sorted(Membership.objects.filter(organization=enterprise).values_list("role", flat=True))
    assert roles == [Role.ADMIN, Role.OWNER]
    assert AuditEvent.objects.filter(action="membership.role_changed").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_owners_removing_each_other_at_once_leave_one_owner(enterprise, enterprise_owner):
    second = member_of(enterprise, Role.OWNER, email="second.owner@blueheron.test")
    first_actor = actor_for(enterprise_owner, enterprise)
    second_actor = actor_for(second, enterprise)
    first_membership = Membership.objects.get(user=enterprise_owner).pk
    second_membership = Membership.objects.get(user=second).pk

    results = run_at_once(
        lambda: services.membership_remove(actor=first_actor, membership_id=second_membership),
        lambda: services.membership_remove(actor=second_actor, membership_id=first_membership),
    )

    refusals = [r for r in results if isinstance(r, Exception)]
    assert [(type(r), r.code) for r in refusals] == [(Forbidden, "role_required")]
    assert list(Membership.objects.filter(organization=enterprise).values_list("role", flat=True)) == [Role.OWNER]


@pytest.mark.django_db
def test_an_owner_demoted_while_their_request_waited_can_no_longer_act_as_owner(enterprise, enterprise_owner):
    # given three owners, and the second one's request already authenticated (as an owner)
    second = member_of(enterprise, Role.OWNER)
    third = member_of(enterprise, Role.OWNER)
    second_request = actor_for(second, enterprise)

    # when the first owner's demotion of the second commits before the second's request takes the lock
    services.membership_change_role(
        actor=actor_for(enterprise_owner, enterprise),
        membership_id=Membership.objects.get(user=second).pk,
        role=Role.ADMIN,
    )
    before = organization_state(enterprise)

    # then the second, now an admin, can neither take the owner role from the third nor remove them
    with pytest.raises(Forbidden):
        services.membership_change_role(
            actor=second_request, membership_id=Membership.objects.get(user=third).pk, role=Role.ADMIN
        )
    with pytest.raises(Forbidden):
        services.membership_remove(actor=second_request, membership_id=Membership.objects.get(user=third).pk)
    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_a_removed_admin_whose_request_was_in_flight_changes_nothing(enterprise, enterprise_owner, enterprise_admin):
    in_flight = actor_for(enterprise_admin, enterprise)
    viewer = member_of(enterprise, Role.VIEWER)
    services.membership_remove(
        actor=actor_for(enterprise_owner, enterprise), membership_id=Membership.objects.get(user=enterprise_admin).pk
    )
    before = organization_state(enterprise)

    with pytest.raises(Forbidden):
        services.membership_change_role(
            actor=in_flight, membership_id=Membership.objects.get(user=viewer).pk, role=Role.MEMBER
        )
    with pytest.raises(Forbidden):
        services.membership_remove(actor=in_flight, membership_id=Membership.objects.get(user=viewer).pk)
    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_organization_settings_refuse_fields_reserved_to_the_operator(enterprise, enterprise_owner):
    before = organization_state(enterprise)

    with pytest.raises(InvalidInput):
        services.organization_update(actor=actor_for(enterprise_owner, enterprise), changes={"verified": True})

    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_an_unchanged_setting_writes_no_audit_event(enterprise, enterprise_owner):
    before = organization_state(enterprise)

    services.organization_update(actor=actor_for(enterprise_owner, enterprise), changes={"name": enterprise.name})

    assert organization_state(enterprise) == before


@pytest.mark.django_db
def test_only_one_operator_organization_can_exist(db):
    services.organization_create(kind="operator", name="Northstar Compute Exchange")

    with pytest.raises(Conflict) as refused:
        services.organization_create(kind="operator", name="Second Exchange")

    assert refused.value.code == "operator_exists"
    assert Organization.objects.filter(kind="operator").count() == 1


@pytest.mark.django_db
def test_an_issued_token_keeps_only_the_hash_of_its_secret(enterprise):
    issued = services.api_token_issue(organization=enterprise, name="agent", scopes=[Scope.AGENT, Scope.AGENT])

    assert issued.token.scopes == ["agent"]
    assert issued.secret not in {issued.token.token_hash, issued.token.prefix, issued.token.name}
    assert len(issued.token.token_hash) == 64
