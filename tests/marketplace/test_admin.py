"""The market's Django admin and the seed_catalog command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from marketplace.models import AcceleratorModel, BookingEvent, BookingStatus, Offering
from tests.factories import UserFactory
from tests.marketplace.factories import BookingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_seeding_the_catalog_twice_changes_nothing_the_second_time():
    AcceleratorModel.objects.filter(code="nvidia-h100-sxm").update(tdp_watts=1)
    first, second = StringIO(), StringIO()

    call_command("seed_catalog", stdout=first)
    call_command("seed_catalog", stdout=second)

    assert first.getvalue() == "Accelerator catalog: 1 created or updated, 12 in total.\n"
    assert second.getvalue() == "Accelerator catalog: 0 created or updated, 12 in total.\n"
    assert AcceleratorModel.objects.get(code="nvidia-h100-sxm").tdp_watts == 700


def test_staff_can_add_a_chip_to_the_catalog(staff_client):
    response = staff_client.post(
        "/admin/marketplace/acceleratormodel/add/",
        {
            "code": "acme-x1",
            "vendor": "Acme",
            "model": "X1",
            "memory_gb": "96",
            "fp16_tflops": "500.00",
            "tdp_watts": "",
            "note": "",
        },
    )

    assert response.status_code == 302
    chip = AcceleratorModel.objects.get(code="acme-x1")
    assert (chip.vendor, chip.tdp_watts, chip.domestic) == ("Acme", None, False)


def test_inventory_and_bookings_are_read_only_in_the_admin(staff_client):
    booking = BookingFactory()
    BookingEvent.objects.create(booking=booking, to_status=BookingStatus.CONFIRMED, at=booking.created_at)
    offering = booking.offering

    pages = [
        "/admin/marketplace/acceleratormodel/",
        "/admin/marketplace/site/",
        "/admin/marketplace/offering/",
        "/admin/marketplace/booking/",
        f"/admin/marketplace/offering/{offering.pk}/change/",
        f"/admin/marketplace/booking/{booking.pk}/change/",
    ]
    assert [staff_client.get(page).status_code for page in pages] == [200] * len(pages)
    refused = staff_client.post(f"/admin/marketplace/offering/{offering.pk}/change/", {"devices": "1"})

    assert refused.status_code == 403
    assert Offering.objects.get(pk=offering.pk).devices == 64
    assert staff_client.get("/admin/marketplace/offering/add/").status_code == 403


def test_agents_allocations_and_usage_are_read_only_in_the_admin(staff_client):
    from accounts.actor import Actor
    from accounts.models import Scope
    from billing.models import UsageRecord
    from billing.services.usage import usage_ingest
    from marketplace.models import Agent, Allocation, AllocationState

    booking = BookingFactory(status=BookingStatus.ACTIVE)
    now = booking.start + timedelta(hours=1)
    center = booking.offering.center
    agent = Agent.objects.create(center=center, name="node1", first_seen_at=now, last_seen_at=now)
    Allocation.objects.create(booking=booking, agent=agent, state=AllocationState.PROVISIONED, updated_at=now)
    usage_ingest(
        actor=Actor(organization=center, scopes=frozenset({Scope.AGENT})),
        records=[
            {
                "id": "r1",
                "booking": str(booking.pk),
                "start": booking.start.isoformat(),
                "end": (booking.start + timedelta(minutes=5)).isoformat(),
                "devices": 8,
            }
        ],
        now=now,
    )
    record = UsageRecord.objects.get()

    pages = [
        "/admin/marketplace/agent/",
        f"/admin/marketplace/agent/{agent.pk}/change/",
        "/admin/marketplace/allocation/",
        "/admin/billing/usagerecord/",
        f"/admin/billing/usagerecord/{record.pk}/change/",
        "/admin/billing/bookingusage/",
    ]
    assert [staff_client.get(page).status_code for page in pages] == [200] * len(pages)
    assert staff_client.post(f"/admin/billing/usagerecord/{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageRecord.objects.count() == 1
