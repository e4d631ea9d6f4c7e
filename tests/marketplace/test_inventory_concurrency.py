"""Inventory writes against concurrent bookings and syncs, each on its own PostgreSQL connection."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.utils import timezone

from accounts.actor import Actor
from accounts.errors import Conflict
from accounts.models import Scope
from marketplace.models import Offering
from marketplace.services.inventory import inventory_sync, offering_lock, offering_put
from tests.concurrency import run_at_once
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory, SiteFactory

pytestmark = pytest.mark.django_db(transaction=True)


def actor_of(center) -> Actor:
    return Actor(organization=center, scopes=frozenset({Scope.INVENTORY}))


def put_body(offering: Offering, **overrides) -> dict:
    body = {
        "site": offering.site.external_id,
        "accelerator": offering.accelerator.code,
        "devices": offering.devices,
        "devices_per_node": offering.devices_per_node,
        "cpu_cores_per_node": None,
        "ram_gb_per_node": None,
        "local_disk_gb_per_node": None,
        "interconnect": "",
        "software_stack": "",
        "description": "",
        "price_per_device_hour": offering.price_per_device_hour,
        "currency": offering.currency,
        "min_hours": offering.min_hours,
        "max_hours": offering.max_hours,
        "lead_time_hours": offering.lead_time_hours,
        "cancel_notice_hours": offering.cancel_notice_hours,
        "min_commit_fraction": offering.min_commit_fraction,
        "requires_approval": offering.requires_approval,
        "voucher_eligible": offering.voucher_eligible,
        "status": offering.status,
    }
    return {**body, **overrides}


def test_lowering_devices_waits_for_a_booking_in_flight_and_then_sees_it():
    offering = OfferingFactory(devices=64)
    locked, release = threading.Event(), threading.Event()

    def booker():
        # Stands in for booking_create: takes the offering's lock, inserts, and commits a little later.
        try:
            with transaction.atomic():
                offering_lock(offering.pk)
                start = timezone.now() + timedelta(hours=1)
                BookingFactory(offering=offering, devices=40, start=start, end=start + timedelta(hours=2))
                locked.set()
                release.wait(timeout=10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=booker)
    thread.start()
    assert locked.wait(timeout=10)
    # The PUT blocks on the row lock until the booking commits; release it from a timer, not from this thread.
    threading.Timer(0.3, release.set).start()

    with pytest.raises(Conflict) as refused:
        offering_put(
            actor=actor_of(offering.center), external_id=offering.external_id, data=put_body(offering, devices=30)
        )
    thread.join(timeout=10)

    assert (refused.value.code, refused.value.extra["devices_in_use"]) == ("capacity_in_use", 40)
    assert Offering.objects.get(pk=offering.pk).devices == 64


def test_concurrent_syncs_of_one_center_never_deadlock():
    center = CenterFactory()
    site = SiteFactory(center=center, external_id="hall-1")
    template = OfferingFactory(center=center, site=site, external_id="template")
    external_ids = [f"pool-{n}" for n in range(12)]
    inventory_sync(
        actor=actor_of(center), items=[{**put_body(template), "external_id": e} for e in external_ids], prune=False
    )
    rng = random.Random(7)

    def syncer(index: int):
        # Each sync writes the same rows in its own shuffled order, with a price that differs per sync.
        order = external_ids[:]
        rng.shuffle(order)
        items = [{**put_body(template, price_per_device_hour=Decimal(10 + index)), "external_id": e} for e in order]
        return lambda: inventory_sync(actor=actor_of(center), items=items, prune=True)

    results = run_at_once(*[syncer(i) for i in range(6)])

    assert [type(result).__name__ for result in results] == ["SyncResult"] * len(results)
    # Serialized, the syncs leave one of their prices on every row, and `template` (unlisted) retired.
    prices = set(Offering.objects.filter(external_id__in=external_ids).values_list("price_per_device_hour", flat=True))
    assert len(prices) == 1
    assert Offering.objects.get(external_id="template").status == "retired"
