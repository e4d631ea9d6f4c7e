"""The catalog in the browser: filters that make a shareable URL, htmx partials, sorting, the offering page with
its prices and availability, quotes, and booking from the page.

The market is small enough to compute every number by hand:

- h100: Lakeside, east site (cn-east, PUE 1.25, 520 g/kWh, 40 % green); H100 SXM (989.4 TFLOPS, 700 W);
  12.50 CNY per device-hour → 12.50 / 0.9894 = 12.63 per PFLOP-hour; 0.7 × 1.25 × 0.52 × 0.6 = 0.273 kg CO2e.
- 910b: Westhill, west site (cn-west, PUE 1.10, 300 g/kWh, 80 % green); Ascend 910B (353.9 TFLOPS, 400 W,
  domestic); 6.00 CNY → 6 / 0.3539 = 16.95 per PFLOP-hour; 0.4 × 1.10 × 0.30 × 0.2 = 0.026 kg CO2e.
- 4090: Westhill, west site; RTX 4090 (165.2 TFLOPS, 450 W); 2.40 CNY → 2.40 / 0.1652 = 14.53 per PFLOP-hour;
  0.45 × 1.10 × 0.30 × 0.2 = 0.0297 kg CO2e.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import pytest
import time_machine
from django.test import Client

from accounts.models import OrganizationKind, Role
from marketplace.models import Booking, BookingEvent, BookingStatus, OfferingStatus
from tests.accounts.page_helpers import browser_as, text_of
from tests.billing.vouchers import grant
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import (
    AcceleratorModelFactory,
    BookingFactory,
    CenterFactory,
    OfferingFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
ROW = re.compile(r'<tr data-offering-id="([0-9a-f-]+)"')


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def market():
    lakeside = CenterFactory(name="Lakeside AI Computing Center", slug="lakeside")
    westhill = CenterFactory(name="Westhill Cloud", slug="westhill")
    east = SiteFactory(
        center=lakeside,
        name="East hall",
        region="cn-east",
        pue=Decimal("1.25"),
        carbon_intensity_g_per_kwh=Decimal("520"),
        green_power_share=Decimal("0.4"),
    )
    west = SiteFactory(
        center=westhill,
        name="West hall",
        region="cn-west",
        pue=Decimal("1.10"),
        carbon_intensity_g_per_kwh=Decimal("300"),
        green_power_share=Decimal("0.8"),
    )
    h100 = OfferingFactory(
        center=lakeside,
        site=east,
        external_id="h100",
        accelerator=AcceleratorModelFactory(code="nvidia-h100-sxm"),
        devices=16,
        devices_per_node=8,
        cpu_cores_per_node=128,
        ram_gb_per_node=2048,
        local_disk_gb_per_node=15360,
        interconnect="8× NVLink, 400 Gb/s InfiniBand",
        software_stack="CUDA 12.4, driver 550",
        description="Hall A, liquid cooled.",
        price_per_device_hour=Decimal("12.50"),
        min_commit_fraction=Decimal("0.5"),
    )
    ascend = OfferingFactory(
        center=westhill,
        site=west,
        external_id="910b",
        accelerator=AcceleratorModelFactory(code="huawei-ascend-910b"),
        devices=32,
        price_per_device_hour=Decimal("6.00"),
    )
    rtx = OfferingFactory(
        center=westhill,
        site=west,
        external_id="4090",
        accelerator=AcceleratorModelFactory(code="nvidia-rtx-4090"),
        devices=8,
        price_per_device_hour=Decimal("2.40"),
    )
    OfferingFactory(center=westhill, site=west, external_id="draft", status=OfferingStatus.DRAFT)
    OfferingFactory(center=westhill, site=west, external_id="paused", status=OfferingStatus.PAUSED)
    return {"h100": h100, "910b": ascend, "4090": rtx, "lakeside": lakeside, "westhill": westhill}


def listed(response) -> list[str]:
    return ROW.findall(response.content.decode())


def ids(*offerings) -> list[str]:
    return [str(offering.pk) for offering in offerings]


# --- the catalog ----------------------------------------------------------------------------------------------


def test_anyone_may_browse_the_published_offerings_cheapest_first(client, market):
    response = client.get("/catalog/")

    assert response.status_code == 200
    assert listed(response) == ids(market["4090"], market["910b"], market["h100"])
    text = text_of(response)
    assert "3 offerings match." in text
    assert "12.50 CNY" in text
    assert "12.63 CNY" in text  # per PFLOP-hour
    assert "Lakeside AI Computing Center East hall · cn-east" in text


def test_filters_narrow_the_list_and_the_same_url_gives_the_same_list(client, market):
    query = "?vendor=NVIDIA&region=cn-west&max_pue=1.2&currency=CNY&max_price_per_device_hour=5"

    response = client.get(f"/catalog/{query}")
    shared = Client().get(f"/catalog/{query}")

    assert listed(response) == ids(market["4090"])
    assert listed(shared) == listed(response)
    assert 'value="cn-west" selected' in response.content.decode()


def test_domestic_chips_memory_and_accelerator_filters(client, market):
    assert listed(client.get("/catalog/?domestic=true")) == ids(market["910b"])
    assert listed(client.get("/catalog/?domestic=false")) == ids(market["4090"], market["h100"])
    assert listed(client.get("/catalog/?min_memory_gb=64")) == ids(market["910b"], market["h100"])
    assert listed(client.get("/catalog/?accelerator=nvidia-h100-sxm")) == ids(market["h100"])


def test_an_htmx_search_returns_only_the_results_and_varies_on_htmx(client, market):
    response = client.get("/catalog/?domestic=false", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert 'id="catalog-filters"' not in html
    assert listed(response) == ids(market["4090"], market["h100"])
    assert "HX-Request" in response["Vary"]


def test_htmx_restoring_its_history_gets_the_whole_page(client, market):
    response = client.get("/catalog/?domestic=false", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")

    assert "<html" in response.content.decode()
    assert listed(response) == ids(market["4090"], market["h100"])


def test_the_filter_form_pushes_its_url_so_a_search_can_be_shared(client, market):
    html = client.get("/catalog/").content.decode()

    form = re.search(r'<form method="get" action="/catalog/" id="catalog-filters"[^>]*>', html).group(0)
    assert 'hx-get="/catalog/"' in form
    assert 'hx-push-url="true"' in form
    assert 'hx-target="#catalog-results"' in form


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("price_per_device_hour", ["4090", "910b", "h100"]),
        ("-price_per_device_hour", ["h100", "910b", "4090"]),
        ("price_per_pflop_hour", ["h100", "4090", "910b"]),
        ("-price_per_pflop_hour", ["910b", "4090", "h100"]),
        ("carbon", ["910b", "4090", "h100"]),
        ("-carbon", ["h100", "4090", "910b"]),
    ],
)
def test_sorting(client, market, ordering, expected):
    assert listed(client.get(f"/catalog/?ordering={ordering}")) == ids(*(market[key] for key in expected))


def test_a_window_lists_only_offerings_with_enough_free_devices_and_shows_them(client, market):
    start = NOW + timedelta(hours=2)
    BookingFactory(offering=market["4090"], devices=6, start=start, end=start + timedelta(hours=4))

    response = client.get("/catalog/?devices=4&start=2026-11-03T09:00&end=2026-11-03T12:00")

    assert listed(response) == ids(market["910b"], market["h100"])
    assert "Free devices" in text_of(response)
    assert "32 / 32" in text_of(response)
    links = re.findall(r'href="(/catalog/[0-9a-f-]+/\?[^"]+)"', response.content.decode())
    assert parse_qs(urlparse(links[0].replace("&amp;", "&")).query) == {
        "start": ["2026-11-03T09:00"],
        "end": ["2026-11-03T12:00"],
        "devices": ["4"],
    }


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("min_memory_gb=lots", "Memory at least (GB): Enter a whole number."),
        ("start=2026-11-03T10:00", "Until (UTC): Give the start and the end of the window together."),
        ("start=2026-11-03T10:00&end=2026-11-03T09:00", "Until (UTC): The end must come after the start."),
        ("devices=4", "From (UTC): Give a window (start and end) to search for free devices."),
        ("ordering=cheapest", "Sort by: Select a valid choice. cheapest is not one of the available choices."),
        ("start=yesterday&end=today", "From (UTC): Enter a valid date/time."),
        ("max_pue=0.5", "PUE at most: Ensure this value is greater than or equal to 1."),
    ],
)
def test_bad_filter_values_show_a_clear_message_and_no_results(client, market, query, message):
    response = client.get(f"/catalog/?{query}")
    partial = client.get(f"/catalog/?{query}", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert message in text_of(response)
    assert listed(response) == []
    assert partial.status_code == 200  # htmx swaps only 2xx answers: the message must reach the page
    assert message in text_of(partial)


def test_a_region_without_offerings_from_a_shared_url_finds_nothing_instead_of_failing(client, market):
    response = client.get("/catalog/?region=cn-nowhere")

    assert listed(response) == []
    assert "Nothing matches these filters." in text_of(response)


def test_results_are_paginated_and_pages_keep_the_filters(client, market):
    for n in range(22):
        OfferingFactory(
            center=market["westhill"],
            site=market["910b"].site,
            external_id=f"extra-{n}",
            price_per_device_hour=Decimal("30") + n,
        )

    first = client.get("/catalog/?currency=CNY")
    second = client.get("/catalog/?currency=CNY&page=2")

    assert len(listed(first)) == 20
    assert len(listed(second)) == 5
    assert set(listed(first)).isdisjoint(listed(second))
    assert "Page 1 of 2" in text_of(first)
    assert 'href="/catalog/?currency=CNY&amp;page=2"' in first.content.decode()


# --- the offering page ----------------------------------------------------------------------------------------


def test_the_offering_page_shows_specs_site_and_both_prices(client, market):
    offering = market["h100"]

    response = client.get(f"/catalog/{offering.pk}/")

    text = text_of(response)
    expected_per_pflop = (Decimal("12.50") / (Decimal("989.4") / 1000)).quantize(Decimal("0.01"))
    assert expected_per_pflop == Decimal("12.63")
    assert re.search(r'data-testid="price-per-pflop-hour">12.63 CNY<', response.content.decode())
    assert re.search(r'data-testid="price">12.50 CNY<', response.content.decode())
    for fact in (
        "Chip NVIDIA H100 SXM 80GB",
        "Memory per device 80 GB",
        "FP16/BF16 dense TFLOPS per device 989.4",
        "Node shape 8 devices per node · 128 CPU cores · 2048 GB RAM · 15360 GB local disk",
        "Interconnect 8× NVLink, 400 Gb/s InfiniBand",
        "Software stack CUDA 12.4, driver 550",
        "Hall A, liquid cooled.",
        "Region cn-east",
        "PUE 1.25",
        "Green power share 40%",
        "Grid carbon intensity 520 gCO₂e/kWh",
        "Estimated carbon per device-hour 0.273 kg CO₂e",
        "Minimum commitment 50% of the booked device-hours",
    ):
        assert fact in text, fact
    assert "Times are in UTC" in text


@pytest.mark.parametrize("which", ["draft", "paused", "unknown", "garbage"])
def test_offerings_outside_the_catalog_are_not_found(client, market, which):
    from marketplace.models import Offering

    target = {
        "draft": lambda: str(Offering.objects.get(external_id="draft").pk),
        "paused": lambda: str(Offering.objects.get(external_id="paused").pk),
        "unknown": lambda: "7d0b7a52-58a1-4ad4-9a59-0c1f7c4e8f10",
        "garbage": lambda: "not-an-id",
    }[which]()

    assert client.get(f"/catalog/{target}/").status_code == 404
    assert client.get(f"/catalog/{target}/quote/", HTTP_HX_REQUEST="true").status_code == 404


def test_the_availability_chart_data_counts_free_devices_per_six_hours(client, market):
    offering = market["h100"]
    BookingFactory(offering=offering, devices=10, start=NOW + timedelta(hours=7), end=NOW + timedelta(hours=9))
    BookingFactory(
        offering=offering,
        devices=6,
        start=NOW + timedelta(hours=1),
        end=NOW + timedelta(hours=30),
        status=BookingStatus.PENDING_APPROVAL,
    )
    BookingFactory(
        offering=offering,
        devices=16,
        start=NOW + timedelta(hours=40),
        end=NOW + timedelta(hours=41),
        status=BookingStatus.CANCELLED,
    )

    response = client.get(f"/catalog/{offering.pk}/")

    html = response.content.decode()
    data = json.loads(re.search(r'id="availability-data" type="application/json">(.*?)</script>', html).group(1))
    # NOW is 08:00: slots start at 06:00, 12:00, 18:00, 00:00 (next day), 06:00, ...
    assert data["slots"][:5] == [
        "2026-11-03T06:00Z",
        "2026-11-03T12:00Z",
        "2026-11-03T18:00Z",
        "2026-11-04T00:00Z",
        "2026-11-04T06:00Z",
    ]
    assert len(data["slots"]) == 56
    assert data["booked"][:6] == [6, 16, 6, 6, 6, 6]
    assert data["free"][:6] == [10, 0, 10, 10, 10, 10]
    assert data["booked"][6:] == [0] * 50
    assert "16 of 16 devices are free now; at the busiest moment of the next 14 days, 0 are free." in text_of(response)


# --- quotes ---------------------------------------------------------------------------------------------------


def test_the_quote_partial_shows_the_amounts_computed_by_hand(client, market):
    offering = market["h100"]

    response = client.get(
        f"/catalog/{offering.pk}/quote/",
        {"devices": "8", "start": "2026-11-04T10:00", "end": "2026-11-04T13:30"},
        HTTP_HX_REQUEST="true",
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div class="card sticky-lg-top quote-card" id="quote-card">')
    # 8 devices × 3.5 h = 28 device-hours; × 12.50 = 350.00; commitment 50 % = 175.00;
    # energy 28 × 0.7 kW × PUE 1.25 = 24.5 kWh; CO2 24.5 × 0.52 × (1 − 0.4) = 7.644 kg.
    assert re.search(r'data-testid="quote-device-hours">28<', html)
    assert re.search(r'data-testid="quote-amount">350.00 CNY<', html)
    assert re.search(r'data-testid="quote-min-commit">175.00 CNY<', html)
    assert re.search(r'data-testid="quote-energy">24.5 kWh<', html)
    assert re.search(r'data-testid="quote-co2">7.644 kg<', html)
    assert re.search(r'data-testid="quote-voucher">no voucher program applies<', html)
    assert "16 of 16 devices are free over this whole window." in text_of(response)


def test_the_offering_page_opens_with_a_quote_for_a_default_window(client, market):
    response = client.get(f"/catalog/{market['h100'].pk}/")

    html = response.content.decode()
    # 8 devices (one node) for 24 hours from the next whole hour: 192 device-hours × 12.50 = 2400.00.
    assert 'name="start" value="2026-11-03T09:00"' in html
    assert 'name="end" value="2026-11-04T09:00"' in html
    assert re.search(r'data-testid="quote-amount">2400.00 CNY<', html)


def test_a_quote_outside_the_offerings_rules_explains_them_on_the_fields(client, market):
    offering = market["h100"]
    offering.min_hours = 4
    offering.save()

    response = client.get(
        f"/catalog/{offering.pk}/",
        {"devices": "20", "start": "2026-11-03T09:00", "end": "2026-11-03T11:00"},
    )

    form = response.context["quote_form"]
    assert form.errors == {
        "devices": ["This offering has 16 devices in all; you asked for 20."],
        "end": ["Book at least 4 hours of this offering (this window is 2 hours)."],
    }
    assert 'id="quote-result"' not in response.content.decode()


def test_a_quote_for_a_full_window_says_how_many_devices_are_free(client, market):
    offering = market["h100"]
    BookingFactory(offering=offering, devices=12, start=NOW + timedelta(hours=2), end=NOW + timedelta(hours=5))

    response = client.get(
        f"/catalog/{offering.pk}/quote/",
        {"devices": "8", "start": "2026-11-03T09:00", "end": "2026-11-03T12:00"},
        HTTP_HX_REQUEST="true",
    )

    assert "Only 4 of 16 devices are free over this whole window; you asked for 8." in text_of(response)
    assert 'id="book-form"' not in response.content.decode()


# --- booking from the page ------------------------------------------------------------------------------------

WINDOW = {"devices": "8", "start": "2026-11-04T10:00", "end": "2026-11-04T14:00"}


@pytest.fixture
def consumer():
    return OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")


def test_a_signed_in_consumer_sees_what_its_voucher_would_cover_and_a_visitor_does_not(client, market, consumer):
    grant(consumer, rate="0.50", amount="150.00")
    quote = {"devices": "8", "start": "2026-11-04T10:00", "end": "2026-11-04T13:30"}
    url = f"/catalog/{market['h100'].pk}/quote/"

    signed_in = browser_as(member_of(consumer, Role.MEMBER), consumer).get(url, quote, HTTP_HX_REQUEST="true")
    anonymous = client.get(url, quote, HTTP_HX_REQUEST="true")

    # 350.00 of voucher-eligible H100 time at a 50 % rate = 175.00, capped by the 150.00 granted.
    assert re.search(r'data-testid="quote-amount">350.00 CNY<', signed_in.content.decode())
    assert re.search(r'data-testid="quote-voucher">−150.00 CNY<', signed_in.content.decode())
    assert re.search(r'data-testid="quote-voucher">no voucher program applies<', anonymous.content.decode())


def test_anonymous_visitors_are_offered_a_login_that_comes_back_to_the_quote(client, market):
    offering = market["h100"]

    response = client.get(f"/catalog/{offering.pk}/", WINDOW)

    html = response.content.decode()
    assert 'id="book-form"' not in html
    link = re.search(r'href="([^"]+)" id="login-to-book"', html)
    assert link.group(1) == (
        f"/accounts/login/?next=%2Fcatalog%2F{offering.pk}%2F%3Fdevices%3D8%26start%3D2026-11-04T10%253A00"
        "%26end%3D2026-11-04T14%253A00"
    )


def test_an_anonymous_booking_is_sent_to_log_in_and_creates_nothing(client, market):
    response = client.post(f"/catalog/{market['h100'].pk}/book/", WINDOW)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert Booking.objects.count() == 0


def test_booking_from_the_page_creates_the_booking_and_opens_it(market, consumer):
    booker = member_of(consumer, Role.MEMBER, email="tang.rui@blueheron.test")
    browser = browser_as(booker, consumer)
    page = browser.get(f"/catalog/{market['h100'].pk}/", WINDOW).content.decode()
    assert 'id="book-form"' in page

    response = browser.post(f"/catalog/{market['h100'].pk}/book/", WINDOW)

    booking = Booking.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/bookings/{booking.pk}/"
    assert (booking.consumer, booking.offering, booking.devices, booking.status, booking.created_by) == (
        consumer,
        market["h100"],
        8,
        BookingStatus.CONFIRMED,
        booker,
    )
    assert (booking.start, booking.end) == (
        datetime(2026, 11, 4, 10, tzinfo=UTC),
        datetime(2026, 11, 4, 14, tzinfo=UTC),
    )
    assert booking.unit_price == Decimal("12.50")
    detail = browser.get(response["Location"])
    assert "Your booking is confirmed." in text_of(detail)


def test_booking_an_offering_that_needs_approval_says_so(market, consumer):
    market["h100"].requires_approval = True
    market["h100"].save()
    browser = browser_as(member_of(consumer, Role.MEMBER), consumer)

    response = browser.post(f"/catalog/{market['h100'].pk}/book/", WINDOW, follow=True)

    assert Booking.objects.get().status == BookingStatus.PENDING_APPROVAL
    assert "Your booking request was sent. The center approves it before it starts." in text_of(response)


def test_booking_more_than_is_free_shows_the_message_and_creates_nothing(market, consumer):
    offering = market["h100"]
    BookingFactory(
        offering=offering,
        devices=12,
        start=datetime(2026, 11, 4, 12, tzinfo=UTC),
        end=datetime(2026, 11, 4, 16, tzinfo=UTC),
    )
    browser = browser_as(member_of(consumer, Role.MEMBER), consumer)

    response = browser.post(f"/catalog/{offering.pk}/book/", WINDOW)

    assert response.status_code == 409
    assert "Only 4 of 16 devices are free over that whole window; you asked for 8." in text_of(response)
    assert 'value="2026-11-04T10:00"' in response.content.decode()  # the form keeps what was typed
    assert Booking.objects.filter(consumer=consumer).count() == 0
    assert BookingEvent.objects.filter(booking__consumer=consumer).count() == 0


def test_booking_over_the_credit_limit_shows_the_numbers(market, consumer):
    consumer.credit_limit = Decimal("450.00")
    consumer.save()
    BookingFactory(consumer=consumer, offering=market["910b"], devices=4, start=NOW + timedelta(hours=1))
    browser = browser_as(member_of(consumer, Role.MEMBER), consumer)

    response = browser.post(f"/catalog/{market['h100'].pk}/book/", WINDOW)

    # Already committed: 4 devices × 4 h × 6.00 = 96.00; this booking: 8 × 4 h × 12.50 = 400.00.
    assert response.status_code == 422
    assert (
        "This booking (400.00 CNY) would take your exposure to 496.00 CNY, over your credit limit of 450.00 CNY "
        "(already committed: 96.00 CNY)." in text_of(response)
    )
    assert Booking.objects.filter(consumer=consumer).count() == 1


def test_a_window_in_the_past_is_refused_on_its_field(market, consumer):
    browser = browser_as(member_of(consumer, Role.MEMBER), consumer)

    response = browser.post(
        f"/catalog/{market['h100'].pk}/book/", {"devices": "8", "start": "2026-11-02T10:00", "end": "2026-11-02T14:00"}
    )

    assert response.status_code == 400
    assert response.context["quote_form"].errors == {"start": ["The start lies in the past."]}
    assert Booking.objects.count() == 0


@pytest.mark.parametrize("role", [Role.FINANCE, Role.VIEWER])
def test_consumer_roles_without_booking_rights_cannot_book(market, consumer, role):
    browser = browser_as(member_of(consumer, role), consumer)
    page = browser.get(f"/catalog/{market['h100'].pk}/", WINDOW)

    response = browser.post(f"/catalog/{market['h100'].pk}/book/", WINDOW)

    assert 'id="book-form"' not in page.content.decode()
    assert "Only members of enterprises, universities and institutes with booking rights can book." in text_of(page)
    assert response.status_code == 403
    assert Booking.objects.count() == 0


def test_a_center_cannot_book_from_the_page(market):
    center_owner = member_of(market["westhill"], Role.OWNER)
    browser = browser_as(center_owner, market["westhill"])

    response = browser.post(f"/catalog/{market['h100'].pk}/book/", WINDOW)

    assert response.status_code == 403
    assert Booking.objects.count() == 0


def test_the_catalog_and_an_offering_speak_chinese_when_chosen(client, settings, market):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"

    catalog = text_of(client.get("/catalog/?ordering=price_per_pflop_hour"))
    offering = text_of(client.get(f"/catalog/{market['h100'].pk}/"))

    assert "共有 3 个算力产品符合条件。" in catalog
    assert "每 PFLOP 时价格从低到高" in catalog
    assert "最低承诺用量 预订卡时的 50%" in offering
    assert "每节点 8 个设备" in offering
    assert "时间均为 UTC（北京时间为 UTC+8）。报价不会预留任何资源。" in offering
    assert "没有适用的算力券计划" in offering


@pytest.mark.parametrize("status", ["paused", "retired"])
def test_booking_an_offering_withdrawn_since_the_quote_says_so(market, consumer, status):
    offering = market["h100"]
    offering.status = status
    offering.save()
    browser = browser_as(member_of(consumer, Role.MEMBER), consumer)

    response = browser.post(f"/catalog/{offering.pk}/book/", WINDOW, follow=True)

    assert response.redirect_chain == [("/catalog/", 302)]
    assert f"This offering is {offering.get_status_display()} and takes no bookings." in text_of(response)
    assert Booking.objects.filter(consumer=consumer).count() == 0


def test_the_same_book_form_sent_twice_books_once(market, consumer):
    browser = browser_as(member_of(consumer, Role.MEMBER), consumer)
    form = {**WINDOW, "submission": "book-form-1"}

    first = browser.post(f"/catalog/{market['h100'].pk}/book/", form)
    again = browser.post(f"/catalog/{market['h100'].pk}/book/", form, follow=True)

    booking = Booking.objects.get(consumer=consumer)
    assert first.status_code == 302
    assert again.redirect_chain == [(f"/bookings/{booking.pk}/", 302)]
    assert "This booking was already submitted." in text_of(again)
    assert Booking.objects.filter(consumer=consumer).count() == 1


def test_a_refused_book_form_may_be_sent_again(market, consumer):
    browser = browser_as(member_of(consumer, Role.MEMBER), consumer)
    refused = browser.post(f"/catalog/{market['h100'].pk}/book/", {**WINDOW, "devices": "99", "submission": "f-2"})

    retried = browser.post(f"/catalog/{market['h100'].pk}/book/", {**WINDOW, "submission": "f-2"})

    assert refused.status_code == 400
    assert retried.status_code == 302
    assert Booking.objects.filter(consumer=consumer).count() == 1
