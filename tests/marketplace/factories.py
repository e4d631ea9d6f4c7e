"""Factories for the market: sites, offerings and bookings, each consistent with its parents by default.

An offering's site belongs to the offering's center, and a booking snapshots its offering's terms, so a test
only states what it is about (`OfferingFactory(devices=8)`, `BookingFactory(offering=o, devices=3, ...)`).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from accounts.models import OrganizationKind
from marketplace.models import AcceleratorModel, Booking, BookingStatus, Offering, OfferingStatus, Site
from tests.factories import OrganizationFactory


def _next_hour():
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    return now + timedelta(hours=1)


class CenterFactory(OrganizationFactory):
    kind = OrganizationKind.CENTER
    name = factory.Sequence(lambda n: f"Computing Center {n}")


class AcceleratorModelFactory(factory.django.DjangoModelFactory):
    """The seeded catalog row for `code` (migrations load it), or a new chip for an unseen code."""

    class Meta:
        model = AcceleratorModel
        django_get_or_create = ("code",)

    code = "nvidia-h100-sxm"
    vendor = "NVIDIA"
    model = factory.LazyAttribute(lambda o: o.code)
    memory_gb = 80
    fp16_tflops = Decimal("989.40")
    tdp_watts = 700
    domestic = False


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    center = factory.SubFactory(CenterFactory)
    external_id = factory.Sequence(lambda n: f"site-{n}")
    name = factory.Sequence(lambda n: f"Data hall {n}")
    region = "cn-east"
    pue = Decimal("1.25")
    carbon_intensity_g_per_kwh = Decimal("520.0")
    green_power_share = Decimal("0.400")
    hub = ""


class OfferingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Offering

    center = factory.SubFactory(CenterFactory)
    site = factory.SubFactory(SiteFactory, center=factory.SelfAttribute("..center"))
    external_id = factory.Sequence(lambda n: f"pool-{n}")
    accelerator = factory.SubFactory(AcceleratorModelFactory)
    devices = 64
    devices_per_node = 8
    price_per_device_hour = Decimal("12.5000")
    currency = "CNY"
    min_hours = 1
    max_hours = 720
    lead_time_hours = 0
    cancel_notice_hours = 24
    min_commit_fraction = Decimal("0.500")
    requires_approval = False
    voucher_eligible = True
    status = OfferingStatus.PUBLISHED


class BookingFactory(factory.django.DjangoModelFactory):
    """A confirmed booking of the next whole hour onwards, with its offering's terms snapshotted."""

    class Meta:
        model = Booking

    consumer = factory.SubFactory(OrganizationFactory, kind=OrganizationKind.ENTERPRISE)
    offering = factory.SubFactory(OfferingFactory)
    devices = 8
    start = factory.LazyFunction(_next_hour)
    end = factory.LazyAttribute(lambda o: o.start + timedelta(hours=4))
    status = BookingStatus.CONFIRMED
    unit_price = factory.LazyAttribute(lambda o: o.offering.price_per_device_hour)
    currency = factory.LazyAttribute(lambda o: o.offering.currency)
    min_commit_fraction = factory.LazyAttribute(lambda o: o.offering.min_commit_fraction)
    cancel_notice_hours = factory.LazyAttribute(lambda o: o.offering.cancel_notice_hours)
    confirmed_at = factory.LazyAttribute(
        lambda o: timezone.now() if o.status != BookingStatus.PENDING_APPROVAL else None
    )
