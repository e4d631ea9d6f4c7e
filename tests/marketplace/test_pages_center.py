"""A center's pages: sites and offerings with the inventory API's rules, status buttons, capacity, incoming
bookings with approval, and nobody else's hands on any of it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from accounts.models import AuditEvent, OrganizationKind, Role
from marketplace.models import Booking, BookingEvent, BookingStatus, Offering, OfferingStatus, Site
from tests.accounts.page_helpers import browser_as, row, text_of
from tests.factories import OrganizationFactory, member_of
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory, SiteFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)

SITE = {
    "external_id": "hz-dc1",
    "name": "Hangzhou hall 1",
    "region": "cn-east",
    "pue": "1.25",
    "carbon_intensity_g_per_kwh": "520",
    "green_power_share": "0.40",
    "hub": "Yangtze Delta",
}


def offering_form(of_site: Site, **changes) -> dict:
    data = {
        "external_id": "h100-a",
        "site": of_site.external_id,
        "accelerator": "nvidia-h100-sxm",
        "devices": "64",
        "devices_per_node": "8",
        "cpu_cores_per_node": "128",
        "ram_gb_per_node": "2048",
        "local_disk_gb_per_node": "15360",
        "interconnect": "8× NVLink",
        "software_stack": "CUDA 12.4",
        "description": "Liquid cooled.",
        "price_per_device_hour": "16.80",
        "currency": "cny",
        "min_hours": "2",
        "max_hours": "336",
        "lead_time_hours": "4",
        "cancel_notice_hours": "12",
        "min_commit_fraction": "0.25",
        "requires_approval": "on",
        "voucher_eligible": "on",
        "status": "published",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def center():
    return CenterFactory(name="Lakeside AI Computing Center")


@pytest.fixture
def operator(center):
    return member_of(center, Role.MEMBER, email="ops@lakeside.test")


@pytest.fixture
def browser(center, operator):
    return browser_as(operator, center)


@pytest.fixture
def site(center):
    return SiteFactory(center=center, external_id="hz-dc1", name="Hangzhou hall 1")


# --- sites ----------------------------------------------------------------------------------------------------


def test_a_center_creates_a_site(center, browser):
    response = browser.post("/center/sites/new/", SITE)

    assert response.status_code == 302
    assert response["Location"] == "/center/sites/"
    site = Site.objects.get(center=center)
    assert (site.external_id, site.name, site.region, site.hub) == (
        "hz-dc1",
        "Hangzhou hall 1",
        "cn-east",
        "Yangtze Delta",
    )
    assert (site.pue, site.carbon_intensity_g_per_kwh, site.green_power_share) == (
        Decimal("1.25"),
        Decimal("520.0"),
        Decimal("0.400"),
    )
    assert AuditEvent.objects.filter(organization=center, action="site.created").count() == 1
    listing = browser.get("/center/sites/")
    assert "Hangzhou hall 1 hz-dc1 cn-east 1.25 520 40% Yangtze Delta 0" in text_of(listing)


def test_site_field_errors_are_shown_on_the_form_and_nothing_is_created(center, browser):
    response = browser.post(
        "/center/sites/new/",
        {**SITE, "external_id": "has space", "pue": "0.9", "green_power_share": "1.5", "name": ""},
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "external_id": ["Use 1 to 128 characters without spaces, slashes or control characters."],
        "name": ["This field is required."],
        "pue": ["Ensure this value is greater than or equal to 1."],
        "green_power_share": ["Ensure this value is less than or equal to 1."],
    }
    assert 'class="form-control is-invalid"' in response.content.decode()
    assert Site.objects.count() == 0


def test_a_site_key_already_used_is_refused_rather_than_replaced(center, browser, site):
    before = row(site)

    response = browser.post("/center/sites/new/", {**SITE, "name": "Another hall"})

    assert response.context["form"].errors == {"external_id": ["You already have a site with this external id."]}
    assert row(site) == before


def test_a_center_edits_its_site_under_the_same_key(center, browser, site):
    response = browser.post(f"/center/sites/{site.external_id}/edit/", {**SITE, "name": "Hall 1 (east)", "pue": "1.18"})

    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.external_id, site.name, site.pue) == ("hz-dc1", "Hall 1 (east)", Decimal("1.18"))
    assert AuditEvent.objects.filter(organization=center, action="site.updated").count() == 1


# --- offerings ------------------------------------------------------------------------------------------------


def test_a_center_creates_an_offering_with_every_field(center, browser, site):
    response = browser.post("/center/offerings/new/", offering_form(site))

    assert response.status_code == 302
    offering = Offering.objects.get(center=center)
    assert {
        name: getattr(offering, name)
        for name in (
            "external_id",
            "devices",
            "devices_per_node",
            "cpu_cores_per_node",
            "ram_gb_per_node",
            "local_disk_gb_per_node",
            "interconnect",
            "software_stack",
            "description",
            "price_per_device_hour",
            "currency",
            "min_hours",
            "max_hours",
            "lead_time_hours",
            "cancel_notice_hours",
            "min_commit_fraction",
            "requires_approval",
            "voucher_eligible",
            "status",
        )
    } == {
        "external_id": "h100-a",
        "devices": 64,
        "devices_per_node": 8,
        "cpu_cores_per_node": 128,
        "ram_gb_per_node": 2048,
        "local_disk_gb_per_node": 15360,
        "interconnect": "8× NVLink",
        "software_stack": "CUDA 12.4",
        "description": "Liquid cooled.",
        "price_per_device_hour": Decimal("16.8000"),
        "currency": "CNY",
        "min_hours": 2,
        "max_hours": 336,
        "lead_time_hours": 4,
        "cancel_notice_hours": 12,
        "min_commit_fraction": Decimal("0.250"),
        "requires_approval": True,
        "voucher_eligible": True,
        "status": "published",
    }
    assert (offering.site, offering.accelerator.code) == (site, "nvidia-h100-sxm")


def test_offering_errors_follow_the_inventory_api_rules(center, browser, site):
    response = browser.post(
        "/center/offerings/new/",
        offering_form(site, min_hours="48", max_hours="24", currency="XYZ", price_per_device_hour="-1"),
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "price_per_device_hour": ["Ensure this value is greater than or equal to 0."]
    }
    response = browser.post(
        "/center/offerings/new/", offering_form(site, min_hours="48", max_hours="24", currency="XYZ")
    )
    assert response.context["form"].errors == {
        "currency": ["Unsupported currency. Use one of: CHF, CNY, EUR, GBP, HKD, JPY, KRW, SGD, USD."],
    }
    response = browser.post("/center/offerings/new/", offering_form(site, min_hours="48", max_hours="24"))
    assert response.context["form"].errors == {"max_hours": ["Must be at least min_hours (48)."]}
    assert Offering.objects.count() == 0


def test_an_offering_cannot_name_another_centers_site(center, browser, site):
    foreign = SiteFactory(center=CenterFactory(), external_id="theirs")

    response = browser.post("/center/offerings/new/", offering_form(site, site=foreign.external_id))

    assert response.context["form"].errors == {
        "site": ["Select a valid choice. That choice is not one of the available choices."]
    }
    assert Offering.objects.count() == 0


def test_creating_an_offering_without_a_site_leads_to_the_site_form(browser):
    response = browser.get("/center/offerings/new/")

    assert response.status_code == 302
    assert response["Location"] == "/center/sites/new/"


def test_a_center_edits_an_offering_and_keeps_its_status(center, browser, site):
    offering = OfferingFactory(center=center, site=site, external_id="h100-a", status=OfferingStatus.PAUSED)

    response = browser.post(
        "/center/offerings/h100-a/edit/", offering_form(site, price_per_device_hour="18.00", external_id=None)
    )

    assert response.status_code == 302
    offering.refresh_from_db()
    assert (offering.price_per_device_hour, offering.status, offering.lead_time_hours) == (
        Decimal("18.0000"),
        OfferingStatus.PAUSED,
        4,
    )


def test_lowering_devices_below_the_bookings_shows_the_capacity_message(center, browser, site):
    offering = OfferingFactory(center=center, site=site, external_id="h100-a", devices=64)
    BookingFactory(offering=offering, devices=40, start=NOW + timedelta(hours=2))
    before = row(offering)

    response = browser.post("/center/offerings/h100-a/edit/", offering_form(site, devices="32", external_id=None))

    assert response.status_code == 409
    assert response.context["form"].errors == {
        "devices": ["Must be at least 40, the devices booked."],
        "__all__": [
            "Bookings hold up to 40 devices of this offering at some instant from now on, so its devices cannot "
            "be lowered from 64 to 32."
        ],
    }
    assert row(offering) == before


def test_the_offerings_list_shows_status_devices_price_and_devices_booked_now(center, browser, site):
    offering = OfferingFactory(center=center, site=site, external_id="h100-a", devices=64)
    BookingFactory(offering=offering, devices=24, start=NOW - timedelta(hours=1), status=BookingStatus.ACTIVE)
    BookingFactory(offering=offering, devices=8, start=NOW + timedelta(hours=5))  # later, not now
    OfferingFactory(center=CenterFactory(), external_id="someone-else")

    response = browser.get("/center/offerings/")

    html = response.content.decode()
    assert "someone-else" not in html
    assert re.search(r'data-testid="booked-now">24<', html)
    assert "h100-a" in text_of(response)
    assert "Published" in text_of(response)
    assert "12.50 CNY" in text_of(response)


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [
        (OfferingStatus.PUBLISHED, "pause", OfferingStatus.PAUSED),
        (OfferingStatus.PAUSED, "publish", OfferingStatus.PUBLISHED),
        (OfferingStatus.DRAFT, "publish", OfferingStatus.PUBLISHED),
        (OfferingStatus.PUBLISHED, "retire", OfferingStatus.RETIRED),
    ],
)
def test_status_buttons_move_an_offering(center, browser, site, start, action, end):
    offering = OfferingFactory(center=center, site=site, external_id="h100-a", status=start)

    response = browser.post("/center/offerings/h100-a/status/", {"action": action}, follow=True)

    offering.refresh_from_db()
    assert offering.status == end
    assert response.status_code == 200
    assert AuditEvent.objects.filter(organization=center, target_id=str(offering.pk)).count() == 1


def test_a_status_move_that_is_not_offered_changes_nothing(center, browser, site):
    offering = OfferingFactory(center=center, site=site, external_id="h100-a", status=OfferingStatus.RETIRED)
    before = row(offering)

    response = browser.post("/center/offerings/h100-a/status/", {"action": "pause"}, follow=True)

    assert "An offering that is Retired cannot be changed that way." in text_of(response)
    assert row(offering) == before


def test_the_capacity_page_charts_booked_and_free_devices_for_four_weeks(center, browser, site):
    offering = OfferingFactory(center=center, site=site, external_id="h100-a", devices=16)
    BookingFactory(
        offering=offering,
        devices=10,
        start=NOW + timedelta(hours=7),
        end=NOW + timedelta(hours=9),
        consumer__name="Qingluo",
    )

    response = browser.get("/center/offerings/h100-a/capacity/")

    html = response.content.decode()
    data = json.loads(re.search(r'id="capacity-data" type="application/json">(.*?)</script>', html).group(1))
    assert len(data["slots"]) == 28 * 4
    assert data["booked"][:3] == [0, 10, 0]
    assert data["free"][:3] == [16, 6, 16]
    assert "bookings hold at most 10 of them at once" in text_of(response)
    assert "Qingluo Confirmed 10 2026-11-03 15:00 → 2026-11-03 17:00" in text_of(response)


# --- who may do what ------------------------------------------------------------------------------------------


def test_another_centers_site_and_offering_are_not_found(browser):
    other = CenterFactory(name="Westhill Cloud")
    site = SiteFactory(center=other, external_id="wh-1")
    offering = OfferingFactory(center=other, site=site, external_id="wh-pool")
    before = (row(site), row(offering))

    assert browser.get("/center/sites/wh-1/edit/").status_code == 404
    assert browser.post("/center/sites/wh-1/edit/", {**SITE, "name": "Mine now"}).status_code == 404
    assert browser.get("/center/offerings/wh-pool/edit/").status_code == 404
    assert browser.post("/center/offerings/wh-pool/status/", {"action": "pause"}).status_code == 404
    assert browser.get("/center/offerings/wh-pool/capacity/").status_code == 404
    assert "wh-pool" not in browser.get("/center/offerings/").content.decode()
    assert (row(site), row(offering)) == before


def test_consumers_and_strangers_cannot_reach_a_centers_pages(client, center, site):
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE)
    browser = browser_as(member_of(consumer, Role.OWNER), consumer)
    offering = OfferingFactory(center=center, site=site, external_id="h100-a")
    before = row(offering)

    for url in ("/center/sites/", "/center/offerings/", "/center/bookings/", "/center/offerings/h100-a/capacity/"):
        assert browser.get(url).status_code == 403, url
        assert client.get(url).status_code == 302, url
    assert browser.post("/center/offerings/h100-a/status/", {"action": "pause"}).status_code == 403
    assert browser.post("/center/sites/new/", SITE).status_code == 403
    assert row(offering) == before
    assert Site.objects.count() == 1


@pytest.mark.parametrize("role", [Role.FINANCE, Role.VIEWER])
def test_finance_and_viewers_read_the_inventory_but_cannot_change_it(center, site, role):
    offering = OfferingFactory(center=center, site=site, external_id="h100-a")
    pending = BookingFactory(offering=offering, status=BookingStatus.PENDING_APPROVAL)
    before = (row(site), row(offering), row(pending))
    browser = browser_as(member_of(center, role), center)

    assert browser.get("/center/sites/").status_code == 200
    listing = browser.get("/center/offerings/")
    assert listing.status_code == 200
    assert "/edit/" not in listing.content.decode()
    assert 'name="action"' not in listing.content.decode()
    assert "/approve/" not in browser.get("/center/bookings/").content.decode()
    assert browser.get("/center/sites/new/").status_code == 403
    assert browser.post("/center/sites/new/", {**SITE, "external_id": "new"}).status_code == 403
    assert browser.post("/center/sites/hz-dc1/edit/", {**SITE, "name": "x"}).status_code == 403
    assert browser.get("/center/offerings/new/").status_code == 403
    assert browser.post("/center/offerings/h100-a/edit/", offering_form(site, devices="1")).status_code == 403
    assert browser.post("/center/offerings/h100-a/status/", {"action": "pause"}).status_code == 403
    assert browser.post(f"/center/bookings/{pending.pk}/approve/").status_code == 403
    assert browser.post(f"/center/bookings/{pending.pk}/reject/", {"reason": "no"}).status_code == 403
    assert (row(site), row(offering), row(pending)) == before
    assert Site.objects.count() == 1


# --- incoming bookings ----------------------------------------------------------------------------------------


@pytest.fixture
def offering(center, site):
    return OfferingFactory(center=center, site=site, external_id="h100-a", requires_approval=True)


def pending_booking(offering, **fields):
    booking = BookingFactory(
        offering=offering,
        status=BookingStatus.PENDING_APPROVAL,
        approval_expires_at=NOW + timedelta(hours=24),
        consumer__name="Blue Heron Robotics",
        **fields,
    )
    BookingEvent.objects.create(booking=booking, from_status="", to_status=booking.status, at=NOW)
    return booking


def test_incoming_bookings_lists_the_centers_bookings_only_and_filters_by_status(browser, offering):
    pending = pending_booking(offering)
    confirmed = BookingFactory(offering=offering)
    foreign = BookingFactory()

    everything = browser.get("/center/bookings/").content.decode()
    only_pending = browser.get("/center/bookings/?status=pending_approval").content.decode()

    assert f'data-booking-id="{pending.pk}"' in everything
    assert f'data-booking-id="{confirmed.pk}"' in everything
    assert str(foreign.pk) not in everything
    assert f'data-booking-id="{pending.pk}"' in only_pending
    assert str(confirmed.pk) not in only_pending
    assert f'action="/center/bookings/{pending.pk}/approve/"' in everything
    assert f'action="/center/bookings/{confirmed.pk}/approve/"' not in everything


def test_the_incoming_list_reloads_as_a_partial_for_live_updates(browser, offering):
    pending = pending_booking(offering)

    response = browser.get("/center/bookings/", HTTP_HX_REQUEST="true")

    assert "<html" not in response.content.decode()
    assert f'<tr data-booking-id="{pending.pk}">' in response.content.decode()


def test_a_center_approves_a_pending_booking(browser, offering, operator):
    booking = pending_booking(offering)

    response = browser.post(
        f"/center/bookings/{booking.pk}/approve/", {"next": "/center/bookings/?status=pending_approval"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/center/bookings/?status=pending_approval"
    booking.refresh_from_db()
    assert (booking.status, booking.confirmed_at) == (BookingStatus.CONFIRMED, NOW)
    event = booking.events.order_by("-id").first()
    assert (event.from_status, event.to_status, event.actor_label) == ("pending_approval", "confirmed", operator.email)
    page = browser.get("/center/bookings/")
    assert f"Booking {str(booking.pk)[:8]} of Blue Heron Robotics is confirmed." in text_of(page)


def test_a_center_rejects_a_pending_booking_with_a_reason(browser, offering):
    booking = pending_booking(offering)

    browser.post(f"/center/bookings/{booking.pk}/reject/", {"reason": "Maintenance window that week"})

    booking.refresh_from_db()
    assert booking.status == BookingStatus.REJECTED
    assert booking.events.order_by("-id").first().reason == "Maintenance window that week"


def test_a_booking_already_confirmed_cannot_be_rejected(browser, offering):
    booking = BookingFactory(offering=offering)
    before = row(booking)

    response = browser.post(f"/center/bookings/{booking.pk}/reject/", {"reason": "changed my mind"}, follow=True)

    assert "A booking that is Confirmed cannot become Rejected." in text_of(response)
    assert row(booking) == before


def test_another_centers_booking_cannot_be_approved(browser):
    foreign = pending_booking(OfferingFactory(requires_approval=True))
    before = row(foreign)

    assert browser.post(f"/center/bookings/{foreign.pk}/approve/").status_code == 404
    assert browser.post(f"/center/bookings/{foreign.pk}/reject/").status_code == 404
    assert row(foreign) == before
    assert Booking.objects.filter(status=BookingStatus.PENDING_APPROVAL).count() == 1
