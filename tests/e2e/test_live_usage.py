"""A consumer watches a running booking in a real browser while the center's agent reports through the API: the usage
figures, the chart and the current utilization update over the WebSocket without a reload, and a failed allocation
shows its alert.

The agent's calls go over HTTP to the live server: its process has its own in-memory channel layer, so only a change
made through it reaches the consumer's socket.
"""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from playwright.sync_api import expect

from accounts.models import OrganizationKind, Role
from marketplace.models import BookingStatus
from tests.factories import PASSWORD, OrganizationFactory, member_of, token_for
from tests.marketplace.factories import AcceleratorModelFactory, BookingFactory, CenterFactory, OfferingFactory

CHART = 'canvas[data-chart="usage"]'


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


def agent_post(base_url: str, token: str, path: str, body: dict) -> dict:
    # The test's own live server, over http: no other scheme can reach these calls.
    request = urllib.request.Request(  # noqa: S310
        f"{base_url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310
        return json.loads(response.read())


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_usage_utilization_and_a_failed_allocation_arrive_live(page, live_server_url):
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")
    member_of(consumer, Role.MEMBER, email="tang.rui@blueheron.test")
    center = CenterFactory(name="Lakeside AI Computing Center")
    token = token_for(center, "agent")
    chip = AcceleratorModelFactory(
        code="nvidia-h100-sxm", vendor="NVIDIA", model="H100 SXM 80GB", memory_gb=80, fp16_tflops=Decimal("989.4")
    )
    offering = OfferingFactory(center=center, accelerator=chip, price_per_device_hour=Decimal("12.50"))
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    booking = BookingFactory(
        consumer=consumer,
        offering=offering,
        devices=8,
        start=start,
        end=start + timedelta(hours=6),
        status=BookingStatus.ACTIVE,
    )

    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    log_in(page, "tang.rui@blueheron.test")
    page.goto(f"/bookings/{booking.pk}/")
    expect(page.locator("html")).to_have_attribute("data-live", "connected")
    figures = page.locator("#usage-figures")
    expect(figures.locator("[data-usage-figure=device_hours]")).to_have_text("—")
    expect(page.locator("#usage-empty")).to_be_visible()
    expect(page.locator(CHART)).to_have_attribute("data-points", "0")
    expect(page.locator("#usage-now")).to_be_hidden()
    page.evaluate("window.notReloaded = true")

    # The agent uploads two records: 8 devices × 30 min + 4 devices × 30 min = 6 device-hours, × 12.50 = 75.00 CNY.
    result = agent_post(
        live_server_url,
        token,
        "/api/v1/agent/usage",
        {
            "records": [
                {
                    "id": "node1-a",
                    "booking": str(booking.pk),
                    "start": iso(start),
                    "end": iso(start + timedelta(minutes=30)),
                    "devices": 8,
                    "utilization": "0.80",
                },
                {
                    "id": "node1-b",
                    "booking": str(booking.pk),
                    "start": iso(start + timedelta(minutes=30)),
                    "end": iso(start + timedelta(minutes=60)),
                    "devices": 4,
                    "utilization": "0.60",
                },
            ]
        },
    )
    assert (result["accepted"], result["rejected"]) == (2, [])

    expect(figures.locator("[data-usage-figure=device_hours]")).to_have_text("6.0000")
    expect(figures.locator("[data-usage-figure=amount]")).to_have_text("75.00 CNY")
    expect(figures.locator("[data-usage-figure=records]")).to_have_text("2")
    last_end = start + timedelta(minutes=60)
    expect(figures.locator("[data-usage-figure=last_end]")).to_have_text(f"{last_end:%Y-%m-%d %H:%M} UTC")
    expect(page.locator("#usage-empty")).to_be_hidden()
    # The chart refetched its series: one point per 5-minute bucket a record starts in.
    expect(page.locator(CHART)).to_have_attribute("data-points", "2")
    chart = page.evaluate(
        f"""() => {{
            const chart = document.querySelector('{CHART}').chart;
            return {{utilization: chart.data.datasets[0].data, cumulative: chart.data.datasets[1].data}};
        }}"""
    )
    assert chart == {"utilization": [80, 60], "cumulative": [4, 6]}

    # A heartbeat whose devices serve the booking: its mean utilization now.
    agent_post(
        live_server_url,
        token,
        "/api/v1/agent/heartbeat",
        {
            "agent": "node1",
            "version": "1.4.0",
            "hostname": "node1.lakeside.test",
            "devices": [
                {"index": 0, "utilization": "0.8000", "booking": str(booking.pk)},
                {"index": 1, "utilization": "0.8200", "booking": str(booking.pk)},
                {"index": 2, "utilization": "0.1000"},
            ],
        },
    )
    expect(page.locator("#usage-now")).to_be_visible()
    expect(page.locator("#usage-now")).to_have_text(re.compile(r"^Utilization now: 81% at \d\d:\d\d:\d\d UTC$"))

    # The agent could not provision the booking: the access region reloads with the alert.
    expect(page.locator("#booking-access")).to_contain_text("Waiting for the center")
    agent_post(
        live_server_url,
        token,
        f"/api/v1/agent/allocations/{booking.pk}",
        {"state": "failed", "message": "Node 3 failed its health check"},
    )
    expect(page.locator("#access-failed")).to_be_visible()
    expect(page.locator("#access-failed")).to_contain_text("Node 3 failed its health check")
    expect(page.locator("#booking-access [data-allocation-state]")).to_have_text("Failed")

    # Everything above arrived without loading the page again.
    assert page.evaluate("window.notReloaded") is True
    expect(figures.locator("[data-usage-figure=device_hours]")).to_have_text("6.0000")
    assert errors == []
