"""A center's agents page: which agents report, which went stale, what their devices do, and nobody else's agents.

Agents come into being the way they do in production: through the heartbeat service. An agent is stale once it
has sent no heartbeat for `AGENT_STALE_AFTER_SECONDS` (180 here).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from accounts.actor import Actor
from accounts.models import OrganizationKind, Role, Scope
from marketplace.models import Agent
from marketplace.services.agents import agent_heartbeat
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock(settings):
    settings.AGENT_STALE_AFTER_SECONDS = 180
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def center():
    return CenterFactory(name="Lakeside AI Computing Center")


@pytest.fixture
def browser(center):
    return browser_as(member_of(center, Role.MEMBER, email="ops@lakeside.test"), center)


def agent_actor(center) -> Actor:
    return Actor(organization=center, scopes=frozenset({Scope.AGENT}))


def device(index: int, **fields) -> dict:
    """One device as the heartbeat API stores it."""
    return {
        "index": index,
        "uuid": f"GPU-{index:04d}-aaaa",
        "model": "NVIDIA H100 80GB HBM3",
        "utilization": "0.9000",
        "memory_used_mb": 40960,
        "memory_total_mb": 81920,
        "healthy": True,
        "booking": None,
        **fields,
    }


def heartbeat(center, name: str, *, at: datetime, devices: list[dict], version="1.4.0", hostname="") -> Agent:
    agent, _created = agent_heartbeat(
        actor=agent_actor(center),
        name=name,
        version=version,
        hostname=hostname or f"{name}.lakeside.test",
        devices=devices,
        now=at,
    )
    return agent


# --- the list -------------------------------------------------------------------------------------------------


def test_the_agents_page_tells_online_agents_from_stale_ones(center, browser):
    heartbeat(center, "node-a", at=NOW - timedelta(days=2), devices=[])
    heartbeat(
        center,
        "node-a",
        at=NOW - timedelta(seconds=60),
        devices=[
            device(0, utilization="0.9700"),
            device(1, utilization="0.8000"),
            device(2, utilization=None, healthy=False),
        ],
    )
    heartbeat(center, "node-b", at=NOW - timedelta(minutes=10), devices=[device(0, utilization="0.1250")])

    response = browser.get("/center/agents/")

    assert response.status_code == 200
    text = text_of(response)
    # Mean utilization over the devices that reported one: (97 + 80) / 2 = 88.5 → 89% (half-up).
    assert (
        "node-a Online 1.4.0 node-a.lakeside.test 2026-11-01 08:00 a minute ago 2026-11-03 07:59:00 UTC "
        "3 2 healthy · 1 unhealthy 89%"
    ) in text
    assert (
        "node-b Stale 1.4.0 node-b.lakeside.test 2026-11-03 07:50 10 minutes ago 2026-11-03 07:50:00 UTC "
        "1 1 healthy · 0 unhealthy 13%"
    ) in text
    assert "An agent is stale when it has sent no heartbeat for 180 seconds." in text
    html = response.content.decode()
    assert html.count('data-agent-status="online"') == 1
    assert html.count('data-agent-status="stale"') == 1


def test_an_agent_turns_stale_once_its_heartbeats_stop_for_longer_than_the_limit(center, browser):
    heartbeat(center, "node-a", at=NOW, devices=[device(0)])

    with time_machine.travel(NOW + timedelta(seconds=180), tick=False):
        still_online = browser.get("/center/agents/")
    with time_machine.travel(NOW + timedelta(seconds=181), tick=False):
        stale = browser.get("/center/agents/")

    assert "node-a Online" in text_of(still_online)
    assert "node-a Stale" in text_of(stale)
    assert "3 minutes ago 2026-11-03 08:00:00 UTC" in text_of(stale)


def test_the_list_polls_every_30_seconds_and_answers_htmx_with_the_table_alone(center, browser):
    agent = heartbeat(center, "node-a", at=NOW, devices=[device(0)])

    page = browser.get("/center/agents/").content.decode()
    partial = browser.get("/center/agents/", HTTP_HX_REQUEST="true")

    assert 'hx-get="/center/agents/" hx-trigger="every 30s"' in page
    assert "This list refreshes every 30 seconds." in text_of(browser.get("/center/agents/"))
    assert "<html" not in partial.content.decode()
    assert f'<tr data-agent-id="{agent.pk}">' in partial.content.decode()
    assert "HX-Request" in partial["Vary"]


def test_without_agents_the_page_says_how_to_run_one(browser):
    response = browser.get("/center/agents/")

    text = text_of(response)
    assert "No agent has reported yet" in text
    assert "python -m marketplace.agent --config agent.toml" in text
    assert (
        "The configuration file names this market's address and an API token with the agent scope. "
        "Your center's admins create one on the API tokens page"
    ) in text
    assert '<a href="/accounts/organization/tokens/">API tokens page</a>' in response.content.decode()


def test_the_center_tabs_lead_to_the_agents_page(browser):
    response = browser.get("/center/sites/")

    assert '<a class="nav-link" href="/center/agents/" id="tab-agents">Agents</a>' in response.content.decode()
    assert 'class="nav-link active" href="/center/agents/"' in browser.get("/center/agents/").content.decode()


def test_another_centers_agents_are_neither_listed_nor_found(center, browser):
    other = CenterFactory(name="Westhill Cloud")
    theirs = heartbeat(other, "westhill-1", at=NOW, devices=[device(0)])
    before = row(theirs)

    listing = browser.get("/center/agents/").content.decode()

    assert "westhill-1" not in listing
    assert str(theirs.pk) not in listing
    assert browser.get(f"/center/agents/{theirs.pk}/").status_code == 404
    assert browser.get(f"/center/agents/{theirs.pk}/", HTTP_HX_REQUEST="true").status_code == 404
    assert browser.get("/center/agents/not-a-uuid/").status_code == 404
    assert row(theirs) == before


# --- one agent ------------------------------------------------------------------------------------------------


def test_the_agent_page_lists_each_device_and_the_booking_it_serves(center, browser):
    offering = OfferingFactory(center=center)
    booking = BookingFactory(offering=offering, consumer__name="Blue Heron Robotics")
    agent = heartbeat(
        center,
        "node-a",
        at=NOW - timedelta(seconds=30),
        version="1.4.0",
        devices=[
            device(1, uuid="GPU-1111", utilization=None, memory_used_mb=None, healthy=False),
            device(0, uuid="GPU-0000", utilization="0.8150", memory_used_mb=61440, booking=str(booking.pk)),
        ],
    )

    response = browser.get(f"/center/agents/{agent.pk}/")

    assert response.status_code == 200
    text = text_of(response)
    assert "node-a Online" in text
    assert "Version 1.4.0 Host node-a.lakeside.test" in text
    assert "Last seen 30 seconds ago (2026-11-03 07:59:30 UTC)" in text
    assert "Devices 2: 1 healthy · 1 unhealthy Mean utilization 82%" in text
    # Devices in index order; utilization in whole percent, half-up; memory in GiB.
    assert (
        f"0 NVIDIA H100 80GB HBM3 GPU-0000 Healthy 82% 60.0 / 80.0 GiB {str(booking.pk)[:8]} Blue Heron Robotics"
    ) in text
    assert "1 NVIDIA H100 80GB HBM3 GPU-1111 Unhealthy — — / 80.0 GiB —" in text
    html = response.content.decode()
    assert f'<code title="{booking.pk}">{str(booking.pk)[:8]}</code>' in html
    assert f'hx-get="/center/agents/{agent.pk}/" hx-trigger="every 30s"' in html


def test_a_device_naming_another_centers_booking_shows_no_booking(center, browser):
    foreign = BookingFactory(consumer__name="Qingluo Biotech")
    agent = heartbeat(center, "node-a", at=NOW, devices=[device(0, booking=str(foreign.pk))])

    text = text_of(browser.get(f"/center/agents/{agent.pk}/"))

    # The heartbeat drops ids that are not this center's bookings; the page never names another's consumer.
    assert "Qingluo Biotech" not in text
    assert str(foreign.pk)[:8] not in text
    assert "0 NVIDIA H100 80GB HBM3 GPU-0000-aaaa Healthy 90% 40.0 / 80.0 GiB —" in text


def test_an_agent_without_devices_says_so(center, browser):
    agent = heartbeat(center, "node-a", at=NOW, devices=[])

    text = text_of(browser.get(f"/center/agents/{agent.pk}/"))

    assert "Devices 0: 0 healthy · 0 unhealthy Mean utilization —" in text
    assert "The agent's latest heartbeat reported no devices." in text


# --- who may look ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.FINANCE, Role.VIEWER])
def test_every_center_member_may_read_the_agents(center, role):
    agent = heartbeat(center, "node-a", at=NOW, devices=[device(0)])
    browser = browser_as(member_of(center, role), center)

    assert browser.get("/center/agents/").status_code == 200
    assert browser.get(f"/center/agents/{agent.pk}/").status_code == 200


def test_consumers_and_strangers_cannot_reach_the_agents_pages(client, center):
    agent = heartbeat(center, "node-a", at=NOW, devices=[device(0)])
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    browser = browser_as(member_of(consumer, Role.OWNER), consumer)

    for url in ("/center/agents/", f"/center/agents/{agent.pk}/"):
        assert browser.get(url).status_code == 403, url
        assert client.get(url).status_code == 302, url
    assert "node-a" not in browser.get("/center/agents/").content.decode()
