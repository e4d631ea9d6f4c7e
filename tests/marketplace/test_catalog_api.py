"""The public catalog (API.md, Catalog): filters, availability over a window, normalized prices, ordering.

The market below is small enough to compute every expected number by hand
(per PFLOP-hour = price ÷ (TFLOPS / 1000); kg CO2e per device-hour = TDP kW × PUE × kgCO2/kWh × (1 − green)):

- h100: Lakeside, east site (cn-east, PUE 1.25, 520 g/kWh, 40 % green); H100 SXM (989.4 TFLOPS, 80 GB, 700 W);
  12.50 CNY → 12.50 / 0.9894 = 12.6339 per PFLOP-hour; 0.7 × 1.25 × 0.52 × 0.6 = 0.2730 kg.
- a100: Lakeside, east site; A100 80GB (312 TFLOPS, 80 GB, 400 W); 1.80 USD → 1.80 / 0.312 = 5.7692;
  0.4 × 1.25 × 0.52 × 0.6 = 0.1560 kg.
- 910b: Westhill, west site (cn-west, PUE 1.10, 300 g/kWh, 80 % green); Ascend 910B (353.9 TFLOPS, 64 GB,
  400 W, domestic); 6.00 CNY → 6 / 0.3539 = 16.9539; 0.4 × 1.10 × 0.30 × 0.2 = 0.0264 kg.
- 910c: Westhill, west site; Ascend 910C (780 TFLOPS, 128 GB, TDP unknown, domestic); 9.00 CNY → 9 / 0.78 =
  11.5385; carbon unknown (null).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.models import OrganizationKind, Scope
from marketplace.models import BookingStatus, OfferingStatus
from tests.factories import OrganizationFactory, token_for
from tests.marketplace.factories import (
    AcceleratorModelFactory,
    BookingFactory,
    CenterFactory,
    OfferingFactory,
    SiteFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


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
        hub="Yangtze Delta",
    )
    west = SiteFactory(
        center=westhill,
        name="West hall",
        region="cn-west",
        pue=Decimal("1.10"),
        carbon_intensity_g_per_kwh=Decimal("300"),
        green_power_share=Decimal("0.8"),
    )

    def offer(center, site, code, price, currency, devices, **extra):
        return OfferingFactory(
            center=center,
            site=site,
            accelerator=AcceleratorModelFactory(code=code),
            price_per_device_hour=Decimal(price),
            currency=currency,
            devices=devices,
            **extra,
        )

    market = {
        "h100": offer(lakeside, east, "nvidia-h100-sxm", "12.50", "CNY", 16),
        "a100": offer(lakeside, east, "nvidia-a100-80g", "1.80", "USD", 8),
        "910b": offer(westhill, west, "huawei-ascend-910b", "6.00", "CNY", 32),
        "910c": offer(westhill, west, "huawei-ascend-910c", "9.00", "CNY", 8),
    }
    for status in (OfferingStatus.DRAFT, OfferingStatus.PAUSED, OfferingStatus.RETIRED):
        market[status.value] = offer(lakeside, east, "nvidia-h100-sxm", "0.10", "CNY", 99, status=status)
    return market


def names(response, market) -> list[str]:
    by_id = {str(offering.pk): name for name, offering in market.items()}
    return [by_id[item["id"]] for item in response.json()["results"]]


def catalog(query: str = ""):
    return APIClient().get(f"/api/v1/catalog{query}")


# --- what an item shows -------------------------------------------------------------------------------------


def test_anyone_can_browse_the_published_offerings(market):
    response = catalog()

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (4, None, None)
    assert names(response, market) == ["a100", "910b", "910c", "h100"]


def test_an_item_carries_center_site_chip_and_normalized_price(market):
    h100 = market["h100"]

    item = catalog("?accelerator=nvidia-h100-sxm").json()["results"][0]

    assert item == {
        "id": str(h100.pk),
        "center": {"slug": "lakeside", "name": "Lakeside AI Computing Center"},
        "site": {
            "name": "East hall",
            "region": "cn-east",
            "hub": "Yangtze Delta",
            "pue": "1.25",
            "carbon_intensity_g_per_kwh": "520.0",
            "green_power_share": "0.400",
        },
        "accelerator": {
            "code": "nvidia-h100-sxm",
            "vendor": "NVIDIA",
            "model": "H100 SXM 80GB",
            "memory_gb": 80,
            "fp16_tflops": "989.40",
            "tdp_watts": 700,
            "domestic": False,
        },
        "devices": 16,
        "devices_per_node": 8,
        "cpu_cores_per_node": None,
        "ram_gb_per_node": None,
        "local_disk_gb_per_node": None,
        "interconnect": "",
        "software_stack": "",
        "description": "",
        "price_per_device_hour": "12.50",
        "currency": "CNY",
        "price_per_pflop_hour": "12.6339",
        "carbon_kg_per_device_hour": "0.2730",
        "available_devices": None,
        "min_hours": 1,
        "max_hours": 720,
        "lead_time_hours": 0,
        "cancel_notice_hours": 24,
        "min_commit_fraction": "0.500",
        "requires_approval": False,
        "voucher_eligible": True,
        "updated_at": "2026-11-03T08:00:00Z",
    }


def test_prices_per_pflop_hour_and_carbon_are_computed_per_chip_and_site(market):
    items = catalog().json()["results"]

    assert {
        item["accelerator"]["code"]: (item["price_per_pflop_hour"], item["carbon_kg_per_device_hour"]) for item in items
    } == {
        "nvidia-h100-sxm": ("12.6339", "0.2730"),
        "nvidia-a100-80g": ("5.7692", "0.1560"),
        "huawei-ascend-910b": ("16.9539", "0.0264"),
        "huawei-ascend-910c": ("11.5385", None),
    }


def test_a_consumer_token_sees_the_same_catalog(market):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(OrganizationFactory(), Scope.BOOKING)}")

    response = client.get("/api/v1/catalog")

    assert response.status_code == 200
    assert names(response, market) == ["a100", "910b", "910c", "h100"]


def test_the_catalog_is_paginated(market):
    first = catalog("?page_size=3")
    second = catalog("?page_size=3&page=2")

    assert (first.json()["count"], len(first.json()["results"])) == (4, 3)
    assert first.json()["next"] == "http://testserver/api/v1/catalog?page=2&page_size=3"
    assert names(first, market) + names(second, market) == ["a100", "910b", "910c", "h100"]


# --- filters ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("accelerator=nvidia-h100-sxm", ["h100"]),
        ("accelerator=acme-x1", []),
        ("vendor=huawei", ["910b", "910c"]),
        ("vendor=NVIDIA", ["a100", "h100"]),
        ("region=cn-west", ["910b", "910c"]),
        ("min_memory_gb=80", ["a100", "910c", "h100"]),
        ("min_memory_gb=100", ["910c"]),
        ("max_price_per_device_hour=9", ["a100", "910b", "910c"]),
        ("max_price_per_device_hour=5.99", ["a100"]),
        ("currency=USD", ["a100"]),
        ("currency=cny", ["910b", "910c", "h100"]),
        ("domestic=true", ["910b", "910c"]),
        ("domestic=false", ["a100", "h100"]),
        ("max_pue=1.2", ["910b", "910c"]),
        ("max_pue=1.25", ["a100", "910b", "910c", "h100"]),
        ("vendor=nvidia&currency=CNY&max_price_per_device_hour=20", ["h100"]),
    ],
)
def test_each_filter_narrows_the_catalog(market, query, expected):
    response = catalog(f"?{query}")

    assert response.status_code == 200
    assert names(response, market) == expected


# --- availability -------------------------------------------------------------------------------------------


def at(hour: float) -> datetime:
    return datetime(2026, 11, 3, tzinfo=UTC) + timedelta(hours=hour)


WINDOW = "start=2026-11-03T10:00:00Z&end=2026-11-03T14:00:00Z"


@pytest.fixture
def booked(market):
    """Bookings of the 16-device H100 offering around the window [10:00, 14:00)."""
    h100 = market["h100"]
    BookingFactory(offering=h100, devices=10, start=at(8), end=at(10))  # ends at the window's start
    BookingFactory(offering=h100, devices=6, start=at(10), end=at(12))
    BookingFactory(offering=h100, devices=4, start=at(11), end=at(13), status=BookingStatus.ACTIVE)
    BookingFactory(offering=h100, devices=2, start=at(12.5), end=at(14), status=BookingStatus.PENDING_APPROVAL)
    BookingFactory(offering=h100, devices=16, start=at(10), end=at(14), status=BookingStatus.CANCELLED)
    BookingFactory(offering=h100, devices=16, start=at(14), end=at(16))  # starts at the window's end
    # Peak inside the window: [11:00, 12:00) holds 6 + 4 = 10, so 16 − 10 = 6 devices are free throughout.
    return market


def available(response, market) -> dict[str, int]:
    by_id = {str(offering.pk): name for name, offering in market.items()}
    return {by_id[item["id"]]: item["available_devices"] for item in response.json()["results"]}


def test_a_window_shows_the_devices_free_over_all_of_it(booked):
    response = catalog(f"?{WINDOW}")

    assert response.status_code == 200
    assert available(response, booked) == {"a100": 8, "910b": 32, "910c": 8, "h100": 6}


def test_only_offerings_that_can_take_the_devices_over_the_whole_window_are_listed(booked):
    six = catalog(f"?devices=6&{WINDOW}")
    seven = catalog(f"?devices=7&{WINDOW}")
    nine = catalog(f"?devices=9&{WINDOW}")

    assert available(six, booked) == {"a100": 8, "910b": 32, "910c": 8, "h100": 6}
    assert available(seven, booked) == {"a100": 8, "910b": 32, "910c": 8}
    assert available(nine, booked) == {"910b": 32}


def test_a_booking_ending_exactly_at_the_window_start_does_not_count(booked):
    before = catalog("?accelerator=nvidia-h100-sxm&start=2026-11-03T09:00:00Z&end=2026-11-03T10:00:00Z")
    from_ten = catalog("?accelerator=nvidia-h100-sxm&start=2026-11-03T10:00:00Z&end=2026-11-03T11:00:00Z")

    assert available(before, booked) == {"h100": 6}  # [8, 10) holds 10
    assert available(from_ten, booked) == {"h100": 10}  # only [10, 12) holds 6


def test_a_fully_booked_window_lists_nothing_of_that_offering(booked):
    response = catalog("?accelerator=nvidia-h100-sxm&start=2026-11-03T14:00:00Z&end=2026-11-03T16:00:00Z")

    assert response.json()["count"] == 0


def test_a_utc_offset_whose_plus_arrived_as_a_space_is_read_as_plus(booked):
    # "+08:00" unencoded in a query string decodes to " 08:00"; 18:00+08:00 is 10:00Z.
    response = catalog("?devices=7&start=2026-11-03T18:00:00+08:00&end=2026-11-03T22:00:00+08:00")

    assert response.status_code == 200
    assert available(response, booked) == {"a100": 8, "910b": 32, "910c": 8}


# --- ordering -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("price_per_device_hour", ["a100", "910b", "910c", "h100"]),
        ("-price_per_device_hour", ["h100", "910c", "910b", "a100"]),
        ("price_per_pflop_hour", ["a100", "910c", "h100", "910b"]),
        ("-price_per_pflop_hour", ["910b", "h100", "910c", "a100"]),
        # The 910C's TDP is unknown, so it has no carbon estimate: last in both directions.
        ("carbon", ["910b", "a100", "h100", "910c"]),
        ("-carbon", ["h100", "a100", "910b", "910c"]),
    ],
)
def test_the_catalog_sorts_by_each_key(market, ordering, expected):
    response = catalog(f"?ordering={ordering}")

    assert response.status_code == 200
    assert names(response, market) == expected


# --- bad filters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("min_memory_gb=lots", ["min_memory_gb"]),
        ("min_memory_gb=-1", ["min_memory_gb"]),
        ("max_price_per_device_hour=cheap", ["max_price_per_device_hour"]),
        ("max_price_per_device_hour=-1", ["max_price_per_device_hour"]),
        ("max_pue=0.5", ["max_pue"]),
        ("max_pue=low", ["max_pue"]),
        ("domestic=maybe", ["domestic"]),
        ("currency=YUAN", ["currency"]),
        ("ordering=cheapest", ["ordering"]),
        ("devices=0&" + WINDOW, ["devices"]),
        ("devices=eight&" + WINDOW, ["devices"]),
        ("devices=8", ["start", "end"]),
        ("start=2026-11-03T10:00:00Z", ["end"]),
        ("end=2026-11-03T10:00:00Z", ["start"]),
        ("start=tomorrow&end=2026-11-03T10:00:00Z", ["start"]),
        ("start=2026-11-03T10:00:00&end=2026-11-03T14:00:00Z", ["start"]),
        ("start=2026-11-03T10:00:00Z&end=2026-11-03T10:00:00Z", ["end"]),
        ("start=2026-11-03T10:00:00Z&end=2026-11-03T09:00:00Z", ["end"]),
        ("page=0", ["page"]),
        ("page_size=501", ["page_size"]),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(market, query, fields):
    response = catalog(f"?{query}")

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], sorted(body["errors"])) == ("invalid", sorted(fields))


# --- one offering -------------------------------------------------------------------------------------------


def test_one_published_offering_by_its_id(market):
    listed = catalog("?accelerator=nvidia-h100-sxm").json()["results"][0]

    response = catalog(f"/{market['h100'].pk}")

    assert response.status_code == 200
    assert response.json() == listed


def test_one_offering_with_a_window_shows_its_free_devices(booked):
    response = catalog(f"/{booked['h100'].pk}?{WINDOW}")

    assert (response.status_code, response.json()["available_devices"]) == (200, 6)


@pytest.mark.parametrize("name", ["draft", "paused", "retired"])
def test_an_offering_that_is_not_published_is_not_found(market, name):
    response = catalog(f"/{market[name].pk}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_a_malformed_or_unknown_id_is_not_found(market):
    assert catalog("/not-a-uuid").status_code == 404
    assert catalog("/8f1c2b7e-0000-4000-8000-000000000000").status_code == 404


def test_a_bad_window_on_one_offering_is_a_400(market):
    response = catalog(f"/{market['h100'].pk}?start=2026-11-03T10:00:00Z")

    assert (response.status_code, list(response.json()["errors"])) == (400, ["end"])


def test_a_center_organization_sees_the_catalog_too(market):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {token_for(OrganizationFactory(kind=OrganizationKind.CENTER), Scope.INVENTORY)}"
    )

    assert client.get("/api/v1/catalog").json()["count"] == 4
