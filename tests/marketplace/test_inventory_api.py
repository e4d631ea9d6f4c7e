"""The inventory API (API.md, Inventory): chips, sites, offerings, sync; validation, capacity, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db.models import Model
from rest_framework.test import APIClient

from accounts.models import AuditEvent, OrganizationKind, Scope
from marketplace.models import Booking, BookingStatus, Offering, OfferingStatus, Site
from tests.factories import OrganizationFactory, token_for
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory, SiteFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
NOW_JSON = "2026-11-03T08:00:00Z"

SITE_BODY = {
    "name": "Lakeside hall 1",
    "region": "cn-east",
    "pue": "1.25",
    "carbon_intensity_g_per_kwh": "520",
    "green_power_share": "0.40",
}

OFFERING_BODY = {
    "site": "hall-1",
    "accelerator": "nvidia-h100-sxm",
    "devices": 64,
    "devices_per_node": 8,
    "price_per_device_hour": "12.50",
    "currency": "CNY",
    "min_hours": 1,
    "max_hours": 720,
    "cancel_notice_hours": 24,
    "min_commit_fraction": "0.50",
    "requires_approval": False,
    "voucher_eligible": True,
    "status": "published",
}

INVALID = "Some fields are invalid."


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def client_for(organization, *scopes: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(organization, *scopes)}")
    return client


@pytest.fixture
def center_client(center) -> APIClient:
    return client_for(center, Scope.INVENTORY)


@pytest.fixture
def site(center) -> Site:
    return SiteFactory(center=center, external_id="hall-1", name="Lakeside hall 1")


def rows(model: type[Model], **filters: Any) -> list[dict[str, Any]]:
    """Every column of every matching row: compare before and after a refused request."""
    return list(model.objects.filter(**filters).order_by("pk").values())


def inventory_state() -> dict[str, list[dict[str, Any]]]:
    return {
        "sites": rows(Site),
        "offerings": rows(Offering),
        "bookings": rows(Booking),
        "audit": rows(AuditEvent, action__startswith="offering.") + rows(AuditEvent, action__startswith="site."),
    }


def offering_json(offering: Offering, **overrides: Any) -> dict[str, Any]:
    """The expected response body for OFFERING_BODY as stored in `offering`."""
    return {
        "id": str(offering.pk),
        "external_id": offering.external_id,
        "site": "hall-1",
        "accelerator": "nvidia-h100-sxm",
        "devices": 64,
        "devices_per_node": 8,
        "cpu_cores_per_node": None,
        "ram_gb_per_node": None,
        "local_disk_gb_per_node": None,
        "interconnect": "",
        "software_stack": "",
        "description": "",
        "price_per_device_hour": "12.50",
        "currency": "CNY",
        "min_hours": 1,
        "max_hours": 720,
        "lead_time_hours": 0,
        "cancel_notice_hours": 24,
        "min_commit_fraction": "0.500",
        "requires_approval": False,
        "voucher_eligible": True,
        "status": "published",
        "created_at": NOW_JSON,
        "updated_at": NOW_JSON,
        **overrides,
    }


# --- accelerators -------------------------------------------------------------------------------------------


def test_the_chip_catalog_is_public(api_client):
    response = api_client.get("/api/v1/accelerators")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 12
    h100 = next(chip for chip in body["results"] if chip["code"] == "nvidia-h100-sxm")
    assert h100 == {
        "code": "nvidia-h100-sxm",
        "vendor": "NVIDIA",
        "model": "H100 SXM 80GB",
        "memory_gb": 80,
        "fp16_tflops": "989.40",
        "tdp_watts": 700,
        "domestic": False,
    }
    ascend_910c = next(chip for chip in body["results"] if chip["code"] == "huawei-ascend-910c")
    assert ascend_910c["tdp_watts"] is None


# --- sites --------------------------------------------------------------------------------------------------


def test_putting_a_new_site_creates_it(center_client, center):
    response = center_client.put("/api/v1/sites/hall-1", SITE_BODY, format="json")

    assert response.status_code == 201
    site = Site.objects.get()
    assert response.json() == {
        "id": str(site.pk),
        "external_id": "hall-1",
        "name": "Lakeside hall 1",
        "region": "cn-east",
        "pue": "1.25",
        "carbon_intensity_g_per_kwh": "520.0",
        "green_power_share": "0.400",
        "hub": "",
        "created_at": NOW_JSON,
        "updated_at": NOW_JSON,
    }
    assert (site.center, site.external_id, site.pue, site.green_power_share) == (
        center,
        "hall-1",
        Decimal("1.25"),
        Decimal("0.4"),
    )
    assert list(AuditEvent.objects.filter(action__startswith="site.").values_list("action", flat=True)) == [
        "site.created"
    ]


def test_repeating_a_site_put_changes_nothing(center_client, frozen_clock):
    first = center_client.put("/api/v1/sites/hall-1", SITE_BODY, format="json").json()
    frozen_clock.shift(timedelta(hours=1))
    before = inventory_state()

    response = center_client.put("/api/v1/sites/hall-1", SITE_BODY, format="json")

    assert response.status_code == 200
    assert response.json() == first
    assert inventory_state() == before


def test_a_site_put_replaces_every_field(center_client, frozen_clock):
    center_client.put("/api/v1/sites/hall-1", {**SITE_BODY, "hub": "Yangtze Delta"}, format="json")
    frozen_clock.shift(timedelta(hours=1))

    response = center_client.put("/api/v1/sites/hall-1", {**SITE_BODY, "pue": "1.4"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["pue"], body["hub"], body["created_at"], body["updated_at"]) == (
        "1.40",
        "",
        NOW_JSON,
        "2026-11-03T09:00:00Z",
    )
    site = Site.objects.get()
    assert (site.pue, site.hub) == (Decimal("1.40"), "")
    event = AuditEvent.objects.get(action="site.updated")
    assert (event.before, event.after) == ({"pue": "1.25", "hub": "Yangtze Delta"}, {"pue": "1.40", "hub": ""})


def test_a_center_reads_its_own_sites_only(center_client, site):
    SiteFactory(external_id="elsewhere")

    listed = center_client.get("/api/v1/sites")
    one = center_client.get("/api/v1/sites/hall-1")
    foreign = center_client.get("/api/v1/sites/elsewhere")

    assert listed.status_code == 200
    assert [s["external_id"] for s in listed.json()["results"]] == ["hall-1"]
    assert one.status_code == 200
    assert one.json()["id"] == str(site.pk)
    assert foreign.status_code == 404
    assert foreign.json() == {"detail": "Not found.", "code": "not_found"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 201),
        ("region", None),
        ("region", "x" * 65),
        ("pue", "0.99"),
        ("pue", "5.01"),
        ("pue", "1.255"),
        ("pue", "abc"),
        ("pue", 1.25),
        ("carbon_intensity_g_per_kwh", "-1"),
        ("carbon_intensity_g_per_kwh", "2000.1"),
        ("green_power_share", "1.01"),
        ("green_power_share", "-0.1"),
        ("green_power_share", "NaN"),
        ("hub", "x" * 101),
        ("external_id", "hall-2"),
        ("colour", "blue"),
    ],
)
def test_each_bad_site_field_is_a_400_naming_it(center_client, field, value):
    response = center_client.put("/api/v1/sites/hall-1", {**SITE_BODY, field: value}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert (body["code"], list(body["errors"])) == ("invalid", [field])
    assert Site.objects.count() == 0


@pytest.mark.parametrize("field", ["name", "region", "pue", "carbon_intensity_g_per_kwh", "green_power_share"])
def test_each_required_site_field_is_required(center_client, field):
    body = {name: value for name, value in SITE_BODY.items() if name != field}

    response = center_client.put("/api/v1/sites/hall-1", body, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert Site.objects.count() == 0


# --- offerings: create and replace --------------------------------------------------------------------------


def test_putting_a_new_offering_creates_it_with_its_platform_id(center_client, center, site):
    response = center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")

    assert response.status_code == 201
    offering = Offering.objects.get()
    assert response.json() == offering_json(offering)
    assert (offering.center, offering.site, offering.accelerator.code, offering.devices) == (
        center,
        site,
        "nvidia-h100-sxm",
        64,
    )
    assert (offering.price_per_device_hour, offering.min_commit_fraction, offering.status) == (
        Decimal("12.50"),
        Decimal("0.5"),
        "published",
    )
    event = AuditEvent.objects.get(action="offering.created")
    assert (event.organization, event.target_id, event.before) == (center, str(offering.pk), None)
    assert event.after["price_per_device_hour"] == "12.5000"
    assert event.after["site"] == "hall-1"


def test_repeating_an_offering_put_changes_nothing(center_client, site, frozen_clock):
    first = center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json").json()
    frozen_clock.shift(timedelta(hours=1))
    before = inventory_state()

    response = center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")

    assert response.status_code == 200
    assert response.json() == first
    assert response.json()["updated_at"] == NOW_JSON
    assert inventory_state() == before


def test_a_replace_saves_the_new_values_and_audits_only_what_changed(center_client, site, frozen_clock):
    center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    frozen_clock.shift(timedelta(hours=1))

    response = center_client.put(
        "/api/v1/offerings/pool-a", {**OFFERING_BODY, "price_per_device_hour": "11.00", "devices": 80}, format="json"
    )

    assert response.status_code == 200
    offering = Offering.objects.get()
    assert response.json() == offering_json(
        offering, devices=80, price_per_device_hour="11.00", updated_at="2026-11-03T09:00:00Z"
    )
    assert (offering.devices, offering.price_per_device_hour) == (80, Decimal("11.00"))
    event = AuditEvent.objects.get(action="offering.updated")
    assert (event.before, event.after) == (
        {"devices": 64, "price_per_device_hour": "12.5000"},
        {"devices": 80, "price_per_device_hour": "11.0000"},
    )


def test_omitted_optional_fields_go_back_to_their_defaults(center_client, site):
    full = {
        **OFFERING_BODY,
        "cpu_cores_per_node": 192,
        "ram_gb_per_node": 2048,
        "local_disk_gb_per_node": 30720,
        "interconnect": "8× 400G InfiniBand",
        "software_stack": "CUDA 12.4",
        "description": "Training pool",
        "lead_time_hours": 2,
    }
    center_client.put("/api/v1/offerings/pool-a", full, format="json")
    required = {
        name: OFFERING_BODY[name]
        for name in ("site", "accelerator", "devices", "devices_per_node", "price_per_device_hour", "currency")
    }

    response = center_client.put("/api/v1/offerings/pool-a", required, format="json")

    assert response.status_code == 200
    offering = Offering.objects.get()
    assert response.json() == offering_json(offering, min_commit_fraction="0.000", status="draft")
    assert (offering.cpu_cores_per_node, offering.interconnect, offering.status, offering.min_commit_fraction) == (
        None,
        "",
        OfferingStatus.DRAFT,
        Decimal("0"),
    )


def test_the_offering_may_move_to_another_of_the_centers_sites(center_client, center, site):
    center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    other = SiteFactory(center=center, external_id="hall-2")

    response = center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, "site": "hall-2"}, format="json")

    assert (response.status_code, response.json()["site"]) == (200, "hall-2")
    assert Offering.objects.get().site == other


def test_a_price_change_never_touches_existing_bookings(center_client, site):
    center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    booking = BookingFactory(offering=Offering.objects.get(), devices=8)

    center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, "price_per_device_hour": "20"}, format="json")

    booking.refresh_from_db()
    assert booking.unit_price == Decimal("12.5000")
    assert Offering.objects.get().price_per_device_hour == Decimal("20")


def test_a_new_offering_can_be_listed_in_another_supported_currency(center_client, site):
    response = center_client.put(
        "/api/v1/offerings/pool-a", {**OFFERING_BODY, "currency": "JPY", "price_per_device_hour": "1800"}, format="json"
    )

    assert response.status_code == 201
    assert (response.json()["currency"], response.json()["price_per_device_hour"]) == ("JPY", "1800")


# --- offerings: validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site", ""),
        ("site", "x" * 129),
        ("site", None),
        ("accelerator", "x" * 65),
        ("accelerator", ["nvidia-h100-sxm"]),
        ("devices", 0),
        ("devices", -1),
        ("devices", 1_000_001),
        ("devices", 10**30),
        ("devices", "many"),
        ("devices", True),
        ("devices", None),
        ("devices_per_node", 0),
        ("devices_per_node", 1025),
        ("price_per_device_hour", "-0.01"),
        ("price_per_device_hour", "abc"),
        ("price_per_device_hour", 12.5),
        ("price_per_device_hour", "1e20"),
        ("price_per_device_hour", "12.34567"),
        ("price_per_device_hour", "Infinity"),
        ("price_per_device_hour", None),
        ("currency", "XXX"),
        ("currency", "cny"),
        ("currency", ""),
        ("currency", "CNYY"),
        ("min_hours", 0),
        ("min_hours", "one"),
        ("max_hours", 0),
        ("max_hours", 87_601),
        ("cancel_notice_hours", -1),
        ("lead_time_hours", -1),
        ("lead_time_hours", 87_601),
        ("min_commit_fraction", "1.01"),
        ("min_commit_fraction", "-0.1"),
        ("min_commit_fraction", "0.1234"),
        ("min_commit_fraction", 0.5),
        ("requires_approval", "perhaps"),
        ("voucher_eligible", []),
        ("status", "archived"),
        ("status", "PUBLISHED"),
        ("cpu_cores_per_node", 0),
        ("ram_gb_per_node", -1),
        ("local_disk_gb_per_node", "big"),
        ("interconnect", "x" * 201),
        ("software_stack", "x" * 501),
        ("description", "x" * 10_001),
        ("external_id", "pool-b"),
        ("id", "8f1c2b7e-0000-4000-8000-000000000000"),
    ],
)
def test_each_bad_offering_field_is_a_400_naming_it(center_client, site, field, value):
    response = center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, field: value}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert (body["detail"], body["code"], list(body["errors"])) == (INVALID, "invalid", [field])
    assert Offering.objects.count() == 0


@pytest.mark.parametrize(
    "field", ["site", "accelerator", "devices", "devices_per_node", "price_per_device_hour", "currency"]
)
def test_each_required_offering_field_is_required(center_client, site, field):
    body = {name: value for name, value in OFFERING_BODY.items() if name != field}

    response = center_client.put("/api/v1/offerings/pool-a", body, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert Offering.objects.count() == 0


def test_max_hours_below_min_hours_is_refused(center_client, site):
    response = center_client.put(
        "/api/v1/offerings/pool-a", {**OFFERING_BODY, "min_hours": 10, "max_hours": 9}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == {"max_hours": ["Must be at least min_hours (10)."]}
    assert Offering.objects.count() == 0


def test_an_unsupported_currency_is_named(center_client, site):
    response = center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, "currency": "XAU"}, format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "currency": ["Unsupported currency. Use one of: CHF, CNY, EUR, GBP, HKD, JPY, KRW, SGD, USD."]
    }


def test_an_unknown_site_or_chip_is_a_400_naming_the_field(center_client, site):
    response = center_client.put(
        "/api/v1/offerings/pool-a", {**OFFERING_BODY, "site": "hall-9", "accelerator": "acme-x1"}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": INVALID,
        "code": "invalid",
        "errors": {
            "site": ["No site of yours has this external id; PUT /sites/{external_id} first."],
            "accelerator": ["Unknown accelerator code; see GET /accelerators."],
        },
    }
    assert Offering.objects.count() == 0


def test_malformed_json_and_wrong_body_types_are_400s(center_client, site):
    malformed = center_client.put("/api/v1/offerings/pool-a", "{not json", content_type="application/json")
    a_list = center_client.put("/api/v1/offerings/pool-a", [OFFERING_BODY], format="json")

    assert (malformed.status_code, malformed.json()["code"]) == (400, "malformed_json")
    assert (a_list.status_code, a_list.json()["code"]) == (400, "invalid")
    assert Offering.objects.count() == 0


def test_a_bad_external_id_in_the_url_is_refused(center_client, site):
    put = center_client.put("/api/v1/offerings/pool%00a", OFFERING_BODY, format="json")
    too_long = center_client.put("/api/v1/offerings/" + "x" * 129, OFFERING_BODY, format="json")
    get = center_client.get("/api/v1/offerings/pool%00a")

    assert (put.status_code, list(put.json()["errors"])) == (400, ["external_id"])
    assert (too_long.status_code, list(too_long.json()["errors"])) == (400, ["external_id"])
    assert get.status_code == 404
    assert Offering.objects.count() == 0


# --- offerings: capacity ------------------------------------------------------------------------------------


@pytest.fixture
def booked_offering(center_client, site):
    """64 devices; holding bookings peak at 30 from now on (10 + 20 overlapping), plus ones that do not count."""
    center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    offering = Offering.objects.get()
    hour = timedelta(hours=1)
    BookingFactory(offering=offering, devices=10, start=NOW + hour, end=NOW + 5 * hour)
    BookingFactory(
        offering=offering, devices=20, start=NOW + 3 * hour, end=NOW + 8 * hour, status=BookingStatus.PENDING_APPROVAL
    )
    BookingFactory(offering=offering, devices=5, start=NOW + 6 * hour, end=NOW + 9 * hour, status=BookingStatus.ACTIVE)
    BookingFactory(
        offering=offering, devices=50, start=NOW + 2 * hour, end=NOW + 4 * hour, status=BookingStatus.CANCELLED
    )
    BookingFactory(offering=offering, devices=60, start=NOW - 5 * hour, end=NOW - hour, status=BookingStatus.COMPLETED)
    return offering


def test_lowering_devices_below_what_bookings_hold_is_refused(center_client, booked_offering):
    before = inventory_state()

    response = center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, "devices": 29}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "Bookings hold up to 30 devices of this offering at some instant from now on, so its devices "
        "cannot be lowered from 64 to 29.",
        "code": "capacity_in_use",
        "errors": {"devices": ["Must be at least 30, the devices booked."]},
        "devices_in_use": 30,
        "devices_requested": 29,
    }
    assert inventory_state() == before


def test_lowering_devices_to_exactly_what_bookings_hold_is_allowed(center_client, booked_offering):
    response = center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, "devices": 30}, format="json")

    assert response.status_code == 200
    assert response.json()["devices"] == 30
    booked_offering.refresh_from_db()
    assert booked_offering.devices == 30


def test_bookings_that_have_ended_no_longer_hold_devices(center_client, booked_offering, frozen_clock):
    frozen_clock.shift(timedelta(hours=5))  # the 10-device booking has ended; 20 + 5 still overlap

    refused = center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, "devices": 24}, format="json")
    allowed = center_client.put("/api/v1/offerings/pool-a", {**OFFERING_BODY, "devices": 25}, format="json")

    assert (refused.status_code, refused.json()["devices_in_use"]) == (409, 25)
    assert allowed.status_code == 200


# --- offerings: reads and isolation -------------------------------------------------------------------------


def test_a_center_lists_its_own_offerings_in_every_status_newest_first(center_client, center, site, frozen_clock):
    for external_id, status in [("old", "retired"), ("mid", "draft"), ("new", "paused")]:
        center_client.put(f"/api/v1/offerings/{external_id}", {**OFFERING_BODY, "status": status}, format="json")
        frozen_clock.shift(timedelta(minutes=1))
    OfferingFactory(external_id="someone-elses")

    response = center_client.get("/api/v1/offerings")

    assert response.status_code == 200
    body = response.json()
    assert (body["count"], body["next"], body["previous"]) == (3, None, None)
    assert [(o["external_id"], o["status"]) for o in body["results"]] == [
        ("new", "paused"),
        ("mid", "draft"),
        ("old", "retired"),
    ]


def test_a_center_reads_one_of_its_offerings_by_external_id(center_client, site):
    created = center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json").json()

    response = center_client.get("/api/v1/offerings/pool-a")

    assert response.status_code == 200
    assert response.json() == created


def test_another_center_cannot_read_an_offering_by_its_external_id(center_client, site):
    center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    other_center = client_for(CenterFactory(), Scope.INVENTORY)

    response = other_center.get("/api/v1/offerings/pool-a")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_another_center_putting_the_same_external_id_creates_its_own(center_client, site):
    center_client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    mine = rows(Offering)
    other = CenterFactory()
    SiteFactory(center=other, external_id="hall-1")

    response = client_for(other, Scope.INVENTORY).put(
        "/api/v1/offerings/pool-a", {**OFFERING_BODY, "devices": 4}, format="json"
    )

    assert response.status_code == 201
    assert Offering.objects.filter(center=other).get().devices == 4
    assert rows(Offering, pk=mine[0]["id"]) == mine


def test_another_centers_site_cannot_be_named(site):
    other = CenterFactory()

    response = client_for(other, Scope.INVENTORY).put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["site"]
    assert Offering.objects.count() == 0


def test_a_consumer_organization_cannot_use_the_inventory_api(site):
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    client = client_for(consumer, Scope.INVENTORY)
    before = inventory_state()

    put = client.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    get = client.get("/api/v1/offerings")

    assert put.status_code == get.status_code == 403
    assert put.json() == {
        "detail": "This is not available to organizations of kind “enterprise”.",
        "code": "wrong_organization_kind",
    }
    assert inventory_state() == before


def test_the_inventory_scope_is_needed_to_write(center, site):
    booking_only = client_for(center, Scope.BOOKING)
    read_only = client_for(center, Scope.READ)
    before = inventory_state()

    refused = booking_only.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    read_put = read_only.put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")
    read_get = read_only.get("/api/v1/sites/hall-1")
    anonymous = APIClient().put("/api/v1/offerings/pool-a", OFFERING_BODY, format="json")

    assert (refused.status_code, refused.json()["code"]) == (403, "scope_required")
    assert (read_put.status_code, read_put.json()["code"]) == (403, "scope_required")
    assert read_get.status_code == 200
    assert anonymous.status_code == 401
    assert inventory_state() == before


# --- sync ---------------------------------------------------------------------------------------------------


def sync_item(external_id: str, **overrides: Any) -> dict[str, Any]:
    return {**OFFERING_BODY, "external_id": external_id, **overrides}


def test_a_sync_of_twenty_offerings_puts_them_all_in_the_catalog(center_client, site):
    items = [sync_item(f"pool-{n:02d}", price_per_device_hour=f"{10 + n}.00") for n in range(20)]

    response = center_client.post("/api/v1/inventory/sync", {"offerings": items}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"created": 20, "updated": 0, "unchanged": 0, "retired": 0}
    assert body["retired"] == []
    assert [o["external_id"] for o in body["offerings"]] == [f"pool-{n:02d}" for n in range(20)]
    assert Offering.objects.filter(status="published").count() == 20
    catalog = APIClient().get("/api/v1/catalog").json()
    assert catalog["count"] == 20
    assert sorted(item["id"] for item in catalog["results"]) == sorted(o["id"] for o in body["offerings"])


def test_a_bare_list_is_accepted_as_a_sync_body(center_client, site):
    response = center_client.post("/api/v1/inventory/sync", [sync_item("a"), sync_item("b")], format="json")

    assert response.status_code == 200
    assert response.json()["counts"] == {"created": 2, "updated": 0, "unchanged": 0, "retired": 0}
    assert set(Offering.objects.values_list("external_id", flat=True)) == {"a", "b"}


def test_a_repeated_sync_changes_nothing(center_client, site, frozen_clock):
    items = [sync_item("a"), sync_item("b")]
    first = center_client.post("/api/v1/inventory/sync", items, format="json").json()
    frozen_clock.shift(timedelta(hours=1))
    before = inventory_state()

    response = center_client.post("/api/v1/inventory/sync", items, format="json")

    assert response.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 2, "retired": 0}
    assert response.json()["offerings"] == first["offerings"]
    assert inventory_state() == before


def test_one_bad_item_refuses_the_whole_sync_and_names_it(center_client, site):
    items = [sync_item(f"pool-{n}") for n in range(5)]
    items[3]["price_per_device_hour"] = "-1"
    before = inventory_state()

    response = center_client.post("/api/v1/inventory/sync", {"offerings": items}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Invalid offerings, so nothing was applied: offerings[3] (“pool-3”).",
        "code": "invalid",
        "errors": {"offerings[3].price_per_device_hour": ["Ensure this value is greater than or equal to 0."]},
    }
    assert inventory_state() == before


def test_an_item_naming_an_unknown_site_rolls_back_the_items_before_it(center_client, site):
    items = [sync_item("a"), sync_item("b"), sync_item("c", site="hall-9")]
    before = inventory_state()

    response = center_client.post("/api/v1/inventory/sync", items, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Offering 2 (external id “c”): Some fields are invalid.",
        "code": "invalid",
        "errors": {"offerings[2].site": ["No site of yours has this external id; PUT /sites/{external_id} first."]},
        "index": 2,
    }
    assert inventory_state() == before


def test_an_item_lowering_devices_below_its_bookings_refuses_the_whole_sync(center_client, booked_offering):
    before = inventory_state()

    response = center_client.post(
        "/api/v1/inventory/sync", [sync_item("new-pool"), sync_item("pool-a", devices=10)], format="json"
    )

    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["errors"], body["index"], body["devices_in_use"]) == (
        "capacity_in_use",
        {"offerings[1].devices": ["Must be at least 30, the devices booked."]},
        1,
        30,
    )
    assert inventory_state() == before


def test_an_external_id_twice_in_one_sync_is_refused(center_client, site):
    response = center_client.post(
        "/api/v1/inventory/sync", [sync_item("a"), sync_item("b"), sync_item("a")], format="json"
    )

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Offering 2 repeats the external id “a” of offering 0.",
        "code": "duplicate_external_id",
        "errors": {"offerings[2].external_id": ["Duplicate of offerings[0]."]},
    }
    assert Offering.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"offerings": [{k: v for k, v in OFFERING_BODY.items()}]}, ["offerings[0].external_id"]),
        ({"offerings": ["pool-a"]}, ["offerings[0]"]),
        ({"offerings": "pool-a"}, ["offerings"]),
        ({"prune": True}, ["offerings"]),
        ({"offerings": [], "prune": "sometimes"}, ["prune"]),
        ({"offerings": [], "colour": "blue"}, ["colour"]),
        ("pool-a", ["non_field_errors"]),
    ],
)
def test_malformed_sync_bodies_are_400s(center_client, site, body, errors):
    response = center_client.post("/api/v1/inventory/sync", body, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == errors
    assert Offering.objects.count() == 0


def test_a_sync_of_too_many_offerings_is_refused(center_client, site):
    response = center_client.post("/api/v1/inventory/sync", [sync_item(f"p{n}") for n in range(1001)], format="json")

    assert response.status_code == 400
    assert response.json()["errors"] == {"offerings": ["At most 1000 offerings per sync."]}
    assert Offering.objects.count() == 0


def test_prune_retires_exactly_the_offerings_missing_from_the_list(center_client, center, site):
    center_client.post(
        "/api/v1/inventory/sync",
        [
            sync_item("keep"),
            sync_item("drop"),
            sync_item("paused", status="paused"),
            sync_item("gone", status="retired"),
        ],
        format="json",
    )
    untouched = OfferingFactory(external_id="drop")  # another center's offering with a missing key

    response = center_client.post(
        "/api/v1/inventory/sync",
        {"offerings": [sync_item("keep", devices=96), sync_item("fresh")], "prune": True},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["counts"] == {"created": 1, "updated": 1, "unchanged": 0, "retired": 2}
    assert sorted(body["retired"]) == ["drop", "paused"]
    assert dict(Offering.objects.filter(center=center).values_list("external_id", "status")) == {
        "keep": "published",
        "fresh": "published",
        "drop": "retired",
        "paused": "retired",
        "gone": "retired",
    }
    assert Offering.objects.get(pk=untouched.pk).status == "published"
    retirements = AuditEvent.objects.filter(action="offering.retired").values_list("before", "after")
    assert sorted(retirements, key=lambda pair: pair[0]["status"]) == [
        ({"status": "paused"}, {"status": "retired"}),
        ({"status": "published"}, {"status": "retired"}),
    ]


def test_without_prune_missing_offerings_stay_as_they_are(center_client, center, site):
    center_client.post("/api/v1/inventory/sync", [sync_item("a"), sync_item("b")], format="json")

    response = center_client.post("/api/v1/inventory/sync", {"offerings": [sync_item("a")]}, format="json")

    assert response.json()["counts"] == {"created": 0, "updated": 0, "unchanged": 1, "retired": 0}
    assert set(Offering.objects.values_list("status", flat=True)) == {"published"}


def test_a_sync_replayed_with_its_idempotency_key_returns_the_first_response(center_client, site):
    items = [sync_item("a")]

    first = center_client.post("/api/v1/inventory/sync", items, format="json", HTTP_IDEMPOTENCY_KEY="sync-1")
    replay = center_client.post("/api/v1/inventory/sync", items, format="json", HTTP_IDEMPOTENCY_KEY="sync-1")
    conflict = center_client.post(
        "/api/v1/inventory/sync", [sync_item("b")], format="json", HTTP_IDEMPOTENCY_KEY="sync-1"
    )

    assert (first.status_code, replay.status_code, conflict.status_code) == (200, 200, 409)
    assert replay.json() == first.json()
    assert first.json()["counts"]["created"] == 1
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert conflict.json()["code"] == "idempotency_conflict"
    assert list(Offering.objects.values_list("external_id", flat=True)) == ["a"]


def test_a_consumer_cannot_sync(site):
    client = client_for(OrganizationFactory(kind=OrganizationKind.UNIVERSITY), Scope.INVENTORY)

    response = client.post("/api/v1/inventory/sync", [sync_item("a")], format="json")

    assert (response.status_code, response.json()["code"]) == (403, "wrong_organization_kind")
    assert Offering.objects.count() == 0
