"""The agents API (API.md, Agents): heartbeats register agents; the allocation feed and reports; alerts."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from accounts.models import AuditEvent, OrganizationKind, Role
from marketplace.models import Agent, Allocation, AllocationState, BookingStatus
from marketplace.realtime import organization_group
from tests.accounts.api_helpers import rows, with_token
from tests.factories import OrganizationFactory, member_of, token_for
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory

NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def center(db):
    return CenterFactory(name="Shanghai AI Computing Center")


@pytest.fixture
def agent(center):
    return with_token(token_for(center, "agent"))


def booking_of(center, *, hours_from_now: float = -1, hours: float = 4, **kwargs):
    start = NOW + timedelta(hours=hours_from_now)
    kwargs.setdefault("status", BookingStatus.ACTIVE if start <= NOW else BookingStatus.CONFIRMED)
    return BookingFactory(
        offering=kwargs.pop("offering", None) or OfferingFactory(center=center, external_id="h100-pool"),
        start=start,
        end=start + timedelta(hours=hours),
        **kwargs,
    )


DEVICE = {
    "index": 0,
    "uuid": "GPU-3b5e2c1a-8f0d-4c52-9d3e-1a2b3c4d5e01",
    "model": "NVIDIA H100 80GB HBM3",
    "utilization": "0.97",
    "memory_used_mb": 71234,
    "memory_total_mb": 81559,
    "healthy": True,
}


def heartbeat(client, name="node1", devices=(DEVICE,), **extra):
    body = {"agent": name, "version": "1.4.0", "hostname": "gpu-node-01", "devices": list(devices), **extra}
    return client.post("/api/v1/agent/heartbeat", body, format="json")


@pytest.fixture
def live_events(django_capture_on_commit_callbacks):
    """`with live_events(a, b) as (a_events, b_events):` collects the live events that the block's commits send to
    each organization's group."""

    @contextmanager
    def collect(*organizations):
        layer = get_channel_layer()
        channels = [async_to_sync(layer.new_channel)() for _ in organizations]
        for organization, channel in zip(organizations, channels, strict=True):
            async_to_sync(layer.group_add)(organization_group(organization.pk), channel)
        received: list[list[dict]] = [[] for _ in organizations]
        with django_capture_on_commit_callbacks(execute=True):
            yield received
        for organization, channel, events in zip(organizations, channels, received, strict=True):
            async_to_sync(_drain)(layer, channel, events)
            async_to_sync(layer.group_discard)(organization_group(organization.pk), channel)

    return collect


async def _drain(layer, channel, events):
    while True:
        try:
            message = await asyncio.wait_for(layer.receive(channel), timeout=0.3)
        except TimeoutError:
            return
        events.append({key: value for key, value in message.items() if key != "type"})


# --- heartbeats ----------------------------------------------------------------------------------------------------


def test_the_first_heartbeat_registers_the_agent_with_its_devices(agent, center):
    response = heartbeat(agent)

    assert response.status_code == 200
    stored = Agent.objects.get()
    assert response.json() == {
        "agent": "node1",
        "id": str(stored.pk),
        "registered": True,
        "server_time": "2026-11-03T12:00:00Z",
        "stale_after_seconds": 180,
    }
    assert (stored.center, stored.name, stored.version, stored.hostname) == (center, "node1", "1.4.0", "gpu-node-01")
    assert stored.first_seen_at == stored.last_seen_at == NOW
    assert stored.devices == [{**DEVICE, "utilization": "0.9700", "booking": None}]
    assert AuditEvent.objects.filter(organization=center, action="agent.registered").count() == 1


def test_later_heartbeats_update_the_same_agent(agent, center):
    heartbeat(agent)
    unhealthy = {**DEVICE, "utilization": None, "memory_used_mb": None, "healthy": False}

    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        response = heartbeat(agent, devices=[unhealthy], version="1.5.0")

    assert response.json()["registered"] is False
    stored = Agent.objects.get()
    assert (stored.version, stored.first_seen_at, stored.last_seen_at) == ("1.5.0", NOW, NOW + timedelta(minutes=1))
    assert stored.devices == [{**unhealthy, "booking": None}]


def test_agents_are_per_center_and_name(agent, center):
    other_center = CenterFactory()
    heartbeat(agent, name="node1")
    heartbeat(agent, name="node2")
    heartbeat(with_token(token_for(other_center, "agent")), name="node1")

    assert sorted(Agent.objects.values_list("center__name", "name")) == sorted(
        [(center.name, "node1"), (center.name, "node2"), (other_center.name, "node1")]
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": ""}, "agent"),
        ({"agent": "x" * 101}, "agent"),
        ({"agent": "n", "devices": "all"}, "devices"),
        ({"agent": "n", "devices": [{**DEVICE, "utilization": "97"}]}, "devices"),
        ({"agent": "n", "devices": [{**DEVICE, "index": -1}]}, "devices"),
        ({"agent": "n", "devices": [{**DEVICE, "healthy": "maybe"}]}, "devices"),
        ({"agent": "n", "devices": [{**DEVICE, "booking": "nope"}]}, "devices"),
    ],
)
def test_a_malformed_heartbeat_is_a_400_and_registers_nothing(agent, body, field):
    response = agent.post("/api/v1/agent/heartbeat", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["errors"]) == [field]
    assert not Agent.objects.exists()


def test_a_heartbeat_pushes_utilization_to_the_consumer_of_the_booking_a_device_serves(agent, center, live_events):
    booking = booking_of(center)
    stranger = booking_of(CenterFactory())  # another center's booking: never forwarded, never stored
    devices = [
        {**DEVICE, "index": 0, "utilization": "0.90", "booking": str(booking.pk)},
        {**DEVICE, "index": 1, "utilization": "0.70", "booking": str(booking.pk)},
        {**DEVICE, "index": 2, "utilization": "0.10", "booking": str(stranger.pk)},
    ]

    with live_events(booking.consumer, stranger.consumer) as (consumer_events, stranger_events):
        heartbeat(agent, devices=devices)

    assert consumer_events == [
        {
            "event": "usage.utilization",
            "booking": str(booking.pk),
            "utilization": "0.8000",
            "devices": 2,
            "at": "2026-11-03T12:00:00Z",
        }
    ]
    assert stranger_events == []
    assert [device["booking"] for device in Agent.objects.get().devices] == [str(booking.pk), str(booking.pk), None]


@pytest.mark.parametrize(
    ("kind", "scopes"),
    [(OrganizationKind.CENTER, ["inventory"]), (OrganizationKind.ENTERPRISE, ["agent"])],
)
def test_only_center_tokens_with_the_agent_scope_send_heartbeats(db, kind, scopes):
    client = with_token(token_for(OrganizationFactory(kind=kind), *scopes))

    assert heartbeat(client).status_code == 403
    assert not Agent.objects.exists()


# --- the allocation feed --------------------------------------------------------------------------------------------


def feed(client) -> list[dict]:
    response = client.get("/api/v1/agent/allocations")
    assert response.status_code == 200
    return response.json()["results"]


def test_the_feed_lists_what_to_provision_with_the_contracts_fields(agent, center):
    booking = booking_of(center, devices=8)

    items = feed(agent)

    assert items == [
        {
            "id": str(booking.pk),
            "offering": "h100-pool",
            "devices": 8,
            "start": "2026-11-03T11:00:00Z",
            "end": "2026-11-03T15:00:00Z",
            "status": "active",
            "consumer": booking.consumer.slug,
            "action": "provision",
            "allocation": {"state": "pending", "access": {}, "message": ""},
            "slurm_account": f"bk-{booking.pk.hex[:6]}",
        }
    ]


def test_the_feed_holds_only_what_needs_the_agent_now(agent, center):
    offering = OfferingFactory(center=center)
    running = booking_of(center, offering=offering)
    soon = booking_of(center, offering=offering, hours_from_now=0.2)  # within the 15-minute lead
    booking_of(center, offering=offering, hours_from_now=2)  # later: not yet
    booking_of(center, offering=offering, hours_from_now=-6, hours=2, status=BookingStatus.COMPLETED)
    booking_of(center, offering=offering, hours_from_now=1, status=BookingStatus.PENDING_APPROVAL)
    booking_of(CenterFactory())  # another center's
    cancelled = booking_of(center, offering=offering, hours_from_now=-0.5, status=BookingStatus.CANCELLED)
    Allocation.objects.create(booking=cancelled, state=AllocationState.PROVISIONED, updated_at=NOW)
    ended = booking_of(center, offering=offering, hours_from_now=-5, hours=4)  # ended an hour ago
    Allocation.objects.create(booking=ended, state=AllocationState.PROVISIONED, updated_at=NOW)
    released = booking_of(center, offering=offering, hours_from_now=-3, hours=1, status=BookingStatus.COMPLETED)
    Allocation.objects.create(booking=released, state=AllocationState.RELEASED, updated_at=NOW)

    items = feed(agent)

    assert [(item["id"], item["action"]) for item in items] == [
        (str(ended.pk), "release"),
        (str(running.pk), "provision"),
        (str(cancelled.pk), "release"),
        (str(soon.pk), "provision"),
    ]


def test_the_feed_is_paginated(agent, center):
    offering = OfferingFactory(center=center)
    for _ in range(3):
        booking_of(center, offering=offering, devices=1)

    response = agent.get("/api/v1/agent/allocations?page_size=2")

    assert (response.json()["count"], len(response.json()["results"])) == (3, 2)
    assert response.json()["next"].endswith("/api/v1/agent/allocations?page=2&page_size=2")


# --- allocation reports --------------------------------------------------------------------------------------------


def report(client, booking, state, **body):
    return client.post(f"/api/v1/agent/allocations/{booking.pk}", {"state": state, **body}, format="json")


def test_provisioned_with_access_details_reaches_the_consumer(agent, center, live_events):
    booking = booking_of(center)
    access = {"ssh": "ssh alice@gpu-node-01.sh.example.cn -p 2222", "slurm_account": "bk-7c1e9a", "gpus": 8}

    with live_events(booking.consumer) as (events,):
        response = report(agent, booking, "provisioned", access=access, message="8 GPUs on gpu-node-01")

    assert response.status_code == 200
    assert response.json()["allocation"] == {
        "state": "provisioned",
        "access": access,
        "message": "8 GPUs on gpu-node-01",
    }
    allocation = Allocation.objects.get(booking=booking)
    assert (allocation.state, allocation.provisioned_at, allocation.access) == ("provisioned", NOW, access)
    assert events == [
        {
            "event": "allocation.state",
            "booking": str(booking.pk),
            "state": "provisioned",
            "message": "8 GPUs on gpu-node-01",
        }
    ]
    consumer_view = with_token(token_for(booking.consumer, "booking")).get(f"/api/v1/bookings/{booking.pk}")
    assert consumer_view.json()["allocation"] == {
        "state": "provisioned",
        "access": access,
        "message": "8 GPUs on gpu-node-01",
    }


def test_reporting_the_same_state_again_changes_nothing(agent, center):
    booking = booking_of(center)
    report(agent, booking, "provisioned", access={"host": "a"})
    before = rows(Allocation)
    audits = AuditEvent.objects.count()

    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        response = report(agent, booking, "provisioned", access={"host": "a"})

    assert response.status_code == 200
    assert rows(Allocation) == before
    assert AuditEvent.objects.count() == audits


def test_released_ends_the_allocation_and_is_final(agent, center):
    booking = booking_of(center)
    report(agent, booking, "provisioned", access={"host": "a"})

    released = report(agent, booking, "released")
    again = report(agent, booking, "provisioned", access={"host": "b"})

    assert released.status_code == 200
    assert released.json()["allocation"]["state"] == "released"
    assert again.status_code == 409
    assert again.json() == {
        "detail": "The allocation is Released; it cannot become Provisioned.",
        "code": "invalid_state",
    }
    assert Allocation.objects.get(booking=booking).released_at == NOW


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.PENDING_APPROVAL, BookingStatus.REJECTED])
def test_a_booking_that_does_not_hold_capacity_cannot_be_provisioned(agent, center, status):
    booking = booking_of(center, status=status)

    response = report(agent, booking, "provisioned")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert not Allocation.objects.exists()


def test_a_failed_allocation_alerts_the_consumer_and_the_center(agent, center, mailoutbox, live_events):
    booking = booking_of(center)
    consumer_admin = member_of(booking.consumer, Role.ADMIN, email="ops@blueheron.example.com")
    center_admin = member_of(center, Role.OWNER, email="noc@shaicc.example.cn")
    member_of(booking.consumer, Role.VIEWER, email="viewer@blueheron.example.com")

    with live_events(booking.consumer, center) as (consumer_events, center_events):
        response = report(agent, booking, "failed", message="node gpu-node-03: GPU 3 fell off the bus")

    assert response.status_code == 200
    expected = {
        "event": "allocation.state",
        "booking": str(booking.pk),
        "state": "failed",
        "message": "node gpu-node-03: GPU 3 fell off the bus",
    }
    assert consumer_events == center_events == [expected]
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.subject == f"Provisioning failed for booking {str(booking.pk)[:8]}"
    assert sorted(mail.to) == sorted([consumer_admin.email, center_admin.email])
    assert "The center's agent reported: node gpu-node-03: GPU 3 fell off the bus" in mail.body
    # The same failure reported again is a retry: no second alert.
    report(agent, booking, "failed", message="node gpu-node-03: GPU 3 fell off the bus")
    assert len(mailoutbox) == 1


def test_an_agent_cannot_touch_another_centers_booking(agent):
    foreign = booking_of(CenterFactory())

    response = report(agent, foreign, "provisioned", access={"host": "x"})

    assert response.status_code == 404
    assert response.json() == {"detail": "No such booking.", "code": "not_found"}
    assert not Allocation.objects.exists()
    assert feed(agent) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "exploded"}, "state"),
        ({"state": "pending"}, "state"),
        ({"state": "provisioned", "access": "ssh here"}, "access"),
        ({"state": "provisioned", "access": {"nested": {"a": 1}}}, "access"),
        ({"state": "provisioned", "access": {f"k{i}": "v" for i in range(33)}}, "access"),
        ({"state": "failed", "message": "x" * 1001}, "message"),
    ],
)
def test_a_malformed_report_is_a_400(agent, center, body, field):
    booking = booking_of(center)

    response = agent.post(f"/api/v1/agent/allocations/{booking.pk}", body, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert not Allocation.objects.exists()


def test_a_report_for_a_malformed_booking_id_is_a_404(agent):
    response = agent.post("/api/v1/agent/allocations/not-a-booking", {"state": "released"}, format="json")

    assert response.status_code == 404


def test_a_booking_one_agent_took_is_left_out_of_another_agents_feed(agent, center):
    taken = booking_of(center)
    free = booking_of(center, offering=taken.offering, hours_from_now=-0.5)
    heartbeat(agent, name="node1")
    report(agent, taken, "provisioned", access={"host": "node1"}, agent="node1")

    node1 = [item["id"] for item in agent.get("/api/v1/agent/allocations?agent=node1").json()["results"]]
    node2 = [item["id"] for item in agent.get("/api/v1/agent/allocations?agent=node2").json()["results"]]
    everyone = [item["id"] for item in feed(agent)]

    assert node1 == everyone == [str(taken.pk), str(free.pk)]
    assert node2 == [str(free.pk)]
    refused = report(agent, taken, "released", agent="node2")
    assert refused.status_code == 409
    assert refused.json() == {
        "detail": "Agent node1 provisioned this booking; only it can report on it.",
        "code": "invalid_state",
    }
    assert Allocation.objects.get(booking=taken).state == AllocationState.PROVISIONED


def test_a_cancelled_booking_is_released_at_its_cancellation_time(agent, center):
    booking = booking_of(center, status=BookingStatus.CANCELLED, cancelled_at=NOW - timedelta(minutes=20))
    Allocation.objects.create(booking=booking, state=AllocationState.PROVISIONED, updated_at=NOW)

    (item,) = feed(agent)

    assert (item["action"], item["start"], item["end"]) == ("release", "2026-11-03T11:00:00Z", "2026-11-03T11:40:00Z")
