"""A computing center's agents: which ones report, whether they are still alive, and what their devices do.

Agents register themselves with their first heartbeat (`services.agents.agent_heartbeat`); these pages only read
what the latest heartbeat said. Nothing pushes heartbeats to browsers, so the tables reload every 30 seconds
through htmx (the same URL answers an htmx request with the table alone); an agent turns stale on the page at the
first reload after `AGENT_STALE_AFTER_SECONDS` without a heartbeat. Every center member may read these pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.actor import Actor
from accounts.views import scoped_object
from marketplace.models import Agent, Booking
from marketplace.selectors.agents import agent_get_for_center, agent_is_stale, agents_for_center
from marketplace.selectors.bookings import bookings_for_center
from marketplace.views_support import center_required, vary_on_htmx, wants_partial

HUNDRED = Decimal(100)
MIB_PER_GIB = Decimal(1024)
POLL_SECONDS = 30


def percent(fraction: Any) -> int | None:
    """A fraction as whole percent, half-up ("0.8150" → 82); None when the agent did not report one."""
    if fraction is None or fraction == "":
        return None
    return int((Decimal(str(fraction)) * HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def gib(mebibytes: Any) -> Decimal | None:
    if mebibytes is None:
        return None
    return (Decimal(mebibytes) / MIB_PER_GIB).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class AgentRow:
    agent: Agent
    stale: bool
    devices: int
    healthy: int
    unhealthy: int
    mean_utilization: int | None  # whole percent, over the devices that reported one


@dataclass(frozen=True)
class DeviceRow:
    index: int
    model: str
    uuid: str
    healthy: bool
    utilization: int | None
    memory_used_gib: Decimal | None
    memory_total_gib: Decimal | None
    booking_id: str | None
    booking: Booking | None  # None when the id is not (or no longer) one of this center's bookings


def agent_row(agent: Agent, now: datetime) -> AgentRow:
    devices = agent.devices or []
    healthy = sum(1 for device in devices if device.get("healthy", True))
    readings = [Decimal(str(d["utilization"])) for d in devices if d.get("utilization") not in (None, "")]
    mean = percent(sum(readings) / len(readings)) if readings else None
    return AgentRow(
        agent=agent,
        stale=agent_is_stale(agent, now),
        devices=len(devices),
        healthy=healthy,
        unhealthy=len(devices) - healthy,
        mean_utilization=mean,
    )


def device_rows(actor: Actor, agent: Agent) -> list[DeviceRow]:
    devices = sorted(agent.devices or [], key=lambda device: device.get("index", 0))
    served = {str(device["booking"]) for device in devices if device.get("booking")}
    # The heartbeat kept only this center's booking ids; loading them through the center's selector keeps that
    # promise on the page too, and names the consumer in one query.
    bookings = (
        {str(booking.pk): booking for booking in bookings_for_center(actor).filter(pk__in=served)} if served else {}
    )
    return [
        DeviceRow(
            index=device.get("index", 0),
            model=device.get("model") or "",
            uuid=device.get("uuid") or "",
            healthy=bool(device.get("healthy", True)),
            utilization=percent(device.get("utilization")),
            memory_used_gib=gib(device.get("memory_used_mb")),
            memory_total_gib=gib(device.get("memory_total_mb")),
            booking_id=str(device["booking"]) if device.get("booking") else None,
            booking=bookings.get(str(device["booking"])) if device.get("booking") else None,
        )
        for device in devices
    ]


def _page_context(now: datetime) -> dict[str, Any]:
    return {"now": now, "stale_after": settings.AGENT_STALE_AFTER_SECONDS, "poll_seconds": POLL_SECONDS}


@center_required
@require_GET
def agents(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = [agent_row(agent, now) for agent in agents_for_center(request.actor)]
    context = {**_page_context(now), "rows": rows}
    template = "marketplace/center/agents_table.html" if wants_partial(request) else "marketplace/center/agents.html"
    return vary_on_htmx(render(request, template, context))


@center_required
@require_GET
@scoped_object(agent_get_for_center, kwarg="agent_id", to="agent")
def agent_detail(request: HttpRequest, agent: Agent) -> HttpResponse:
    now = timezone.now()
    context = {**_page_context(now), "row": agent_row(agent, now), "devices": device_rows(request.actor, agent)}
    partial = wants_partial(request)
    template = "marketplace/center/agents_detail_body.html" if partial else "marketplace/center/agents_detail.html"
    return vary_on_htmx(render(request, template, context))
