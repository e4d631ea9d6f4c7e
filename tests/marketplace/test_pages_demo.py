"""The demo market (`marketplace.demo.seed_market`): a realistic catalog for the demo network, created once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.demo import DemoSeed, seed_organizations, seed_people
from accounts.models import AuditEvent, Organization
from marketplace.demo import seed_market
from marketplace.models import Booking, BookingEvent, BookingStatus, Offering, OfferingStatus, Site
from marketplace.selectors.catalog import catalog_offerings
from tests.factories import OrganizationFactory
from tests.marketplace.factories import CenterFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 3, 8, 17, 42, tzinfo=UTC)


@pytest.fixture
def network():
    seed = DemoSeed()
    seed_organizations(seed)
    seed_people(seed)
    return seed.organizations


def test_the_demo_market_spreads_sites_and_offerings_over_the_demo_centers(network):
    created = seed_market(now=NOW)

    assert created == {"sites": 9, "offerings": 13, "bookings": 2}
    for key in ("lakeside", "guizhou", "ulanqab", "pearl-bay"):
        sites = Site.objects.filter(center=network[key])
        assert 2 <= sites.count() <= 3, key
        assert len({site.region for site in sites}) >= 2, key
        assert Offering.objects.filter(center=network[key]).count() >= 3, key
    for site in Site.objects.all():
        assert Decimal("1.15") <= site.pue <= Decimal("1.45")
        assert Decimal(300) <= site.carbon_intensity_g_per_kwh <= Decimal(650)
        assert Decimal("0.1") <= site.green_power_share <= Decimal("0.8")
    prices = {o.external_id: o.price_per_device_hour for o in Offering.objects.all()}
    assert Decimal(14) <= prices["hz-h100-a"] <= Decimal(22)
    assert Decimal(8) <= prices["ga-910b"] <= Decimal(12)
    assert Decimal(2) <= prices["sz-4090"] <= Decimal(3)
    assert list(Offering.objects.filter(requires_approval=True).values_list("external_id", flat=True)) == ["ga-910c"]
    assert list(Offering.objects.filter(status=OfferingStatus.PAUSED).values_list("external_id", flat=True)) == [
        "qy-l40s"
    ]
    assert catalog_offerings().count() == 12
    assert AuditEvent.objects.filter(action="offering.created").count() == 13


def test_the_demo_enterprise_has_an_upcoming_and_a_running_booking(network):
    seed_market(now=NOW)

    bookings = Booking.objects.filter(consumer=network["blue-heron"]).order_by("start")
    assert [(b.offering.external_id, b.devices, b.status, b.start, b.end) for b in bookings] == [
        (
            "ga-910b",
            32,
            BookingStatus.ACTIVE,
            datetime(2026, 11, 3, 8, 17, tzinfo=UTC),
            datetime(2026, 11, 6, 8, 17, tzinfo=UTC),
        ),
        (
            "sz-4090",
            16,
            BookingStatus.CONFIRMED,
            datetime(2026, 11, 4, 1, 0, tzinfo=UTC),
            datetime(2026, 11, 6, 1, 0, tzinfo=UTC),
        ),
    ]
    assert {b.created_by.email for b in bookings} == {"engineer@blueheron.demo"}
    assert list(BookingEvent.objects.filter(booking=bookings[0]).values_list("to_status", flat=True)) == [
        "confirmed",
        "active",
    ]


def test_seeding_twice_changes_nothing(network):
    seed_market(now=NOW)
    snapshot = (
        list(Site.objects.order_by("pk").values()),
        list(Offering.objects.order_by("pk").values()),
        list(Booking.objects.order_by("pk").values()),
        AuditEvent.objects.count(),
    )

    again = seed_market(now=NOW)

    assert again == {"sites": 0, "offerings": 0, "bookings": 0}
    assert snapshot == (
        list(Site.objects.order_by("pk").values()),
        list(Offering.objects.order_by("pk").values()),
        list(Booking.objects.order_by("pk").values()),
        AuditEvent.objects.count(),
    )


def test_without_the_demo_network_it_uses_whatever_centers_exist():
    first, second = CenterFactory(name="North"), CenterFactory(name="South")
    OrganizationFactory(name="Some Start-up")

    created = seed_market(now=NOW)

    assert created == {"sites": 5, "offerings": 7, "bookings": 1}  # the first two demo centers' share
    assert set(Site.objects.values_list("center", flat=True)) == {first.pk, second.pk}
    assert Organization.objects.count() == 3
