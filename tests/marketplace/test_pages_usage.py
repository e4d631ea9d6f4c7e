"""What a consumer sees of a running booking: usage so far (API.md billing rules 1 and 2, figures computed by hand),
the usage chart's data and its JSON endpoint, and the access details the center's agent reported; and what the
center sees of the same in its bookings table.

Usage goes in through the metering service and allocations through the agent service, exactly as the agent API
does it, so every record here passed the same checks as a real upload.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.actor import Actor
from accounts.models import OrganizationKind, Role, Scope
from billing.services.usage import usage_ingest
from marketplace.models import BookingStatus
from marketplace.services.agents import allocation_report
from tests.accounts.page_helpers import browser_as, text_of
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
RECORD_IDS = itertools.count(1)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def center():
    return CenterFactory(name="Lakeside AI Computing Center")


@pytest.fixture
def consumer():
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")


@pytest.fixture
def browser(consumer):
    return browser_as(member_of(consumer, Role.MEMBER, email="tang.rui@blueheron.test"), consumer)


@pytest.fixture
def booking(center, consumer):
    """8 devices at 12.50 CNY per device-hour, running since 06:00 until 10:00 (a 5-minute chart bucket)."""
    offering = OfferingFactory(center=center, price_per_device_hour=Decimal("12.50"))
    return BookingFactory(
        consumer=consumer,
        offering=offering,
        devices=8,
        start=NOW - timedelta(hours=2),
        end=NOW + timedelta(hours=2),
        status=BookingStatus.ACTIVE,
    )


def agent(center) -> Actor:
    return Actor(organization=center, scopes=frozenset({Scope.AGENT}))


def meter(center, booking, *records: tuple[str, str, int, str | None]) -> None:
    """Usage records (start HH:MM, end HH:MM, devices, utilization) of 2026-11-03, all accepted."""
    batch = [
        {
            "id": f"rec-{next(RECORD_IDS)}",
            "booking": str(booking.pk),
            "start": f"2026-11-03T{start}:00Z",
            "end": f"2026-11-03T{end}:00Z",
            "devices": devices,
            "utilization": utilization,
        }
        for start, end, devices, utilization in records
    ]
    result = usage_ingest(actor=agent(center), records=batch, now=NOW)
    assert (result.accepted, result.rejected) == (len(records), [])


def report(center, booking, state: str, *, access=None, message="") -> None:
    allocation_report(
        actor=agent(center),
        booking_id=booking.pk,
        state=state,
        access=access,
        message=message,
        agent_name=None,
        now=NOW - timedelta(minutes=90),
    )


# --- usage so far ---------------------------------------------------------------------------------------------


def test_the_booking_page_shows_usage_so_far_at_the_bookings_price(center, booking, browser):
    # 8 devices × 30 min = 4 device-hours; × 12.50 = 50.00 CNY.
    meter(center, booking, ("06:00", "06:30", 8, "0.8000"))

    response = browser.get(f"/bookings/{booking.pk}/")

    text = text_of(response)
    assert (
        "Usage so far Device-hours metered 4.0000 Amount so far 50.00 CNY Usage records 1 "
        "Last metered 2026-11-03 06:30 UTC"
    ) in text
    assert "priced at 12.50 CNY per device-hour" in text
    assert "No usage reported yet." not in text


def test_usage_so_far_adds_every_record_and_rounds_the_amount_once(center, booking, browser):
    # 4 + 2 + 2 + 3 × 7 / 60 = 8.35 device-hours (rule 2: exact); × 12.50 = 104.375 → 104.38 CNY (half-up, once).
    meter(
        center,
        booking,
        ("06:00", "06:30", 8, "0.8000"),
        ("06:30", "07:00", 4, "0.6000"),
        ("07:00", "07:15", 8, None),
        ("07:15", "07:22", 3, None),
    )

    text = text_of(browser.get(f"/bookings/{booking.pk}/"))

    assert (
        "Device-hours metered 8.3500 Amount so far 104.38 CNY Usage records 4 Last metered 2026-11-03 07:22 UTC"
    ) in text


def test_without_usage_the_page_says_so_and_shows_dashes(booking, browser):
    response = browser.get(f"/bookings/{booking.pk}/")

    text = text_of(response)
    assert (
        "Usage so far No usage reported yet. Device-hours metered — Amount so far — Usage records — Last metered —"
        in (text)
    )
    assert 'data-points="0"' in response.content.decode()


# --- the chart and its data -----------------------------------------------------------------------------------

# Counted in the 5-minute bucket each starts in: 8 × 30 min, 4 × 30 min, 8 × 15 min without a utilization.
THREE_RECORDS = (("06:00", "06:30", 8, "0.8000"), ("06:30", "07:00", 4, "0.6000"), ("07:00", "07:15", 8, None))
SERIES = {
    "records": 3,
    "device_hours": "8.0000",
    "device_seconds": "28800",  # 8 × 1,800 + 4 × 1,800 + 8 × 900
    "amount": "100.00",
    "currency": "CNY",
    "last_end": "2026-11-03T07:15:00Z",
    "unit_price": "12.50",
    "bucket_seconds": 300,
    "points": [
        {
            "start": "2026-11-03T06:00:00Z",
            "device_hours": "4.0000",
            "cumulative_device_hours": "4.0000",
            "utilization": "0.8000",
        },
        {
            "start": "2026-11-03T06:30:00Z",
            "device_hours": "2.0000",
            "cumulative_device_hours": "6.0000",
            "utilization": "0.6000",
        },
        {
            "start": "2026-11-03T07:00:00Z",
            "device_hours": "2.0000",
            "cumulative_device_hours": "8.0000",
            "utilization": None,
        },
    ],
}


def test_usage_json_gives_the_usage_so_far_and_the_series_per_bucket(center, booking, browser):
    meter(center, booking, *THREE_RECORDS)

    response = browser.get(f"/bookings/{booking.pk}/usage.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"booking": str(booking.pk), **SERIES}


def test_the_page_draws_the_chart_from_the_same_data_without_inline_script(center, booking, browser):
    meter(center, booking, *THREE_RECORDS)

    response = browser.get(f"/bookings/{booking.pk}/")

    html, page_text = response.content.decode(), text_of(response)
    embedded = re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', html, re.S)
    assert json.loads(embedded.group(1)) == {"booking": str(booking.pk), **SERIES}
    assert f'data-url="/bookings/{booking.pk}/usage.json" data-points="3"' in html
    assert "Bars: the devices' mean utilization in each 5-minute interval" in page_text
    for script in ("vendor/chartjs/chart.umd.js", "js/live.js", "js/usage.js"):
        assert f'<script src="/static/{script}" defer></script>' in html
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert all("src=" in tag or 'type="application/json"' in tag for tag in scripts), scripts
    assert f'data-usage-now-for="{booking.pk}"' in html
    assert 'data-template="Utilization now: {percent} at {time} UTC"' in html


def test_usage_json_of_an_empty_booking(booking, browser):
    assert browser.get(f"/bookings/{booking.pk}/usage.json").json() == {
        "booking": str(booking.pk),
        "records": 0,
        "device_hours": "0.0000",
        "device_seconds": "0",
        "amount": "0.00",
        "currency": "CNY",
        "last_end": None,
        "unit_price": "12.50",
        "bucket_seconds": 300,
        "points": [],
    }


def test_usage_json_is_not_found_for_anyone_but_the_bookings_consumer(client, center, booking):
    other = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Qingluo Biotech")
    stranger = browser_as(member_of(other, Role.OWNER), other)
    the_center = browser_as(member_of(center, Role.OWNER), center)
    url = f"/bookings/{booking.pk}/usage.json"

    assert stranger.get(url).status_code == 404
    assert the_center.get(url).status_code == 404
    assert client.get(url).status_code == 302
    assert stranger.get("/bookings/not-a-uuid/usage.json").status_code == 404
    assert stranger.get(f"/bookings/{booking.pk}/access/").status_code == 404


# --- access -------------------------------------------------------------------------------------------------


def test_until_the_agent_reports_the_booking_waits_for_the_center(booking, browser):
    response = browser.get(f"/bookings/{booking.pk}/")

    assert (
        "Access Waiting for the center The center's agent publishes access details here once the devices are "
        "provisioned."
    ) in text_of(response)
    html = response.content.decode()
    assert (
        f'data-live-reload="allocation.state" data-live-booking="{booking.pk}"\n'
        f'           hx-get="/bookings/{booking.pk}/access/" hx-trigger="allocation-state"'
    ) in html


def test_provisioned_access_details_are_a_table_with_only_web_links_linked(center, booking, browser):
    report(
        center,
        booking,
        "provisioned",
        access={
            "ssh": "ssh -p 2222 bk-1@login.lakeside.test",
            "jupyter": "https://jupyter.lakeside.test/bk-1",
            "script": "javascript:alert(1)",
            "note": "<b>bring your own image</b>",
            "gpus": 8,
            "mig": False,
        },
    )

    response = browser.get(f"/bookings/{booking.pk}/")

    text = text_of(response)
    assert "Access Provisioned The center provisioned your devices (2026-11-03 06:30 UTC)." in text
    assert (  # in alphabetical order of the keys
        "Reach them with these details: gpus 8 jupyter https://jupyter.lakeside.test/bk-1 mig no "
        "note <b>bring your own image</b> script javascript:alert(1) ssh ssh -p 2222 bk-1@login.lakeside.test Usage"
    ) in text
    html = response.content.decode()
    assert (
        '<a href="https://jupyter.lakeside.test/bk-1" rel="noopener noreferrer" target="_blank">'
        "https://jupyter.lakeside.test/bk-1</a>"
    ) in html
    assert 'href="javascript' not in html
    assert "<code>javascript:alert(1)</code>" in html
    assert "<code>&lt;b&gt;bring your own image&lt;/b&gt;</code>" in html
    assert "<b>bring" not in html


def test_a_failed_allocation_shows_the_centers_message_in_a_red_alert(center, booking, browser):
    report(center, booking, "failed", message="Node 3 failed its health check <again>")

    response = browser.get(f"/bookings/{booking.pk}/")

    html = response.content.decode()
    alert = re.search(
        r'<div class="alert alert-danger" role="alert" id="access-failed">(.*?)</div>\s*</div>', html, re.S
    )
    assert alert is not None
    assert "Node 3 failed its health check &lt;again&gt;" in alert.group(1)
    assert (
        "Access Failed The center could not provision your devices (2026-11-03 06:30 UTC). "
        "Node 3 failed its health check <again>"
    ) in text_of(response)


def test_released_access_has_ended_and_shows_no_details(center, booking, browser):
    report(center, booking, "provisioned", access={"ssh": "ssh bk-1@login"})
    report(center, booking, "released")

    text = text_of(browser.get(f"/bookings/{booking.pk}/"))

    assert "Access Released The center released the devices at 2026-11-03 06:30 UTC; access has ended." in text
    assert "ssh bk-1@login" not in text


def test_a_booking_that_never_ran_has_nothing_to_provision(consumer, browser):
    rejected = BookingFactory(consumer=consumer, status=BookingStatus.REJECTED)

    text = text_of(browser.get(f"/bookings/{rejected.pk}/"))

    assert "Access No devices were provisioned for this booking." in text
    assert "Waiting for the center" not in text


def test_the_access_region_reloads_alone(center, booking, browser):
    report(center, booking, "failed", message="Out of quota")

    response = browser.get(f"/bookings/{booking.pk}/access/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "Access Failed The center could not provision your devices" in text_of(response)


def test_the_status_reload_leaves_usage_and_access_alone(center, booking, browser):
    meter(center, booking, ("06:00", "06:30", 8, "0.8000"))

    partial = browser.get(f"/bookings/{booking.pk}/", HTTP_HX_REQUEST="true").content.decode()

    # The chart and the access region live outside the status-reloaded body, so a swap never destroys them.
    assert "usage-data" not in partial
    assert "Usage so far" not in partial
    assert "Terms" in partial


# --- the center's bookings table ------------------------------------------------------------------------------


def test_the_centers_bookings_show_allocation_state_and_device_hours_so_far(center, consumer, booking):
    meter(center, booking, ("06:00", "06:30", 8, "0.8000"))
    report(center, booking, "provisioned", access={"ssh": "ssh bk@login"})
    waiting = BookingFactory(
        offering=booking.offering, consumer=consumer, start=NOW + timedelta(hours=3), end=NOW + timedelta(hours=5)
    )
    failed = BookingFactory(
        offering=booking.offering, consumer=consumer, start=NOW + timedelta(hours=6), end=NOW + timedelta(hours=8)
    )
    report(center, failed, "failed", message="No free nodes")
    pending = BookingFactory(
        offering=booking.offering,
        consumer=consumer,
        status=BookingStatus.PENDING_APPROVAL,
        start=NOW + timedelta(hours=9),
        end=NOW + timedelta(hours=10),
    )
    browser = browser_as(member_of(center, Role.VIEWER), center)

    response = browser.get("/center/bookings/")

    html = response.content.decode()
    text = text_of(response)
    assert "Window (UTC) Allocation Device-hours so far" in text
    assert "2026-11-03 06:00 → 2026-11-03 10:00 Provisioned 4.0000" in text
    assert "2026-11-03 11:00 → 2026-11-03 13:00 Waiting for your agent —" in text
    assert "2026-11-03 14:00 → 2026-11-03 16:00 Failed No free nodes —" in text
    assert "2026-11-03 17:00 → 2026-11-03 18:00 — —" in text
    assert f'<td class="text-end" data-usage-for="{booking.pk}" data-usage-figure="device_hours">4.0000</td>' in html
    assert f'data-usage-for="{waiting.pk}"' in html
    assert str(pending.pk) in html
    assert '<script src="/static/js/usage.js" defer></script>' in html
    assert 'data-live-reload="booking.status allocation.state"' in html


def test_the_centers_bookings_page_reads_usage_and_allocations_in_a_fixed_number_of_queries(center, consumer, booking):
    browser = browser_as(member_of(center, Role.MEMBER), center)
    browser.get("/center/bookings/")  # the session and the translations are loaded once
    with CaptureQueriesContext(connection) as one_booking:
        browser.get("/center/bookings/")
    for hours in (3, 6, 9, 12):
        extra = BookingFactory(
            offering=booking.offering,
            consumer=consumer,
            start=NOW + timedelta(hours=hours),
            end=NOW + timedelta(hours=hours + 2),
        )
        report(center, extra, "failed", message="No free nodes")
    meter(center, booking, ("06:00", "06:30", 8, "0.8000"))

    with CaptureQueriesContext(connection) as five_bookings:
        browser.get("/center/bookings/")

    assert len(five_bookings) == len(one_booking)
