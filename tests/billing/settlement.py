"""Helpers for settlement tests: a small market with hand-picked terms, usage reported through the real ingestion
service, and periods closed through the real close service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection

from accounts.actor import Actor
from accounts.models import OrganizationKind
from billing.models import BillingPeriod, Invoice, JournalLine, Statement
from billing.periods_calendar import next_month
from billing.services.periods import CloseResult, period_close
from billing.services.usage import usage_ingest
from marketplace.catalog import load_catalog
from marketplace.models import AcceleratorModel, Booking, BookingStatus
from tests.factories import OrganizationFactory
from tests.marketplace.factories import BookingFactory, CenterFactory, OfferingFactory, SiteFactory

OCT = datetime(2026, 10, 1, tzinfo=UTC)
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    """An instant written "2026-10-05 10:00" (UTC)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def center_actor(center) -> Actor:
    return Actor(organization=center, scopes=frozenset({"agent"}))


def book(offering, consumer, start: str, end: str, devices: int, **fields) -> Booking:
    """A confirmed booking of `offering` over [start, end) with the offering's terms snapshotted."""
    return BookingFactory(offering=offering, consumer=consumer, start=at(start), end=at(end), devices=devices, **fields)


def cancel(booking: Booking, when: str) -> Booking:
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = at(when)
    booking.save(update_fields=["status", "cancelled_at"])
    return booking


def meter(booking: Booking, start: str, end: str, devices: int, *, record_id: str | None = None) -> None:
    """Report one usage record for `booking` through the ingestion service, as its center's agent; it must be
    accepted."""
    record = {
        "id": record_id or f"{booking.pk}-{start}-{end}-{devices}",
        "booking": str(booking.pk),
        "start": at(start).isoformat(),
        "end": at(end).isoformat(),
        "devices": devices,
    }
    result = usage_ingest(
        actor=center_actor(booking.offering.center), records=[record], now=max(at(end), booking.end) + timedelta(days=1)
    )
    assert (result.accepted, result.rejected) == (1, []), result


def close(month: datetime, *, now: datetime | None = None) -> CloseResult:
    return period_close(start=month, now=now or next_month(month) + timedelta(days=1), actor_label="test")


def invoice_of(consumer, month: datetime, currency: str = "CNY") -> Invoice:
    return Invoice.objects.get(consumer=consumer, period__start=month, currency=currency)


def lines_of(invoice: Invoice) -> list[tuple]:
    """(booking, kind, late, device-hours to 6 places, unit price, amount) per line, in the invoice's order."""
    return [
        (
            line.booking_id,
            line.kind,
            line.late,
            (line.device_seconds / Decimal(3600)).quantize(Decimal("0.000001")),
            line.unit_price,
            line.amount,
        )
        for line in invoice.lines.order_by("id")
    ]


def statement_of(center, month: datetime, currency: str = "CNY") -> Statement:
    return Statement.objects.get(center=center, period__start=month, currency=currency)


def trial_balance() -> dict[str, Decimal]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT currency, sum(amount) FROM billing_journalline GROUP BY currency ORDER BY currency")
        return dict(cursor.fetchall())


def balance(organization, role: str, currency: str = "CNY") -> Decimal:
    return sum(
        JournalLine.objects.filter(
            account__organization=organization, account__role=role, account__currency=currency
        ).values_list("amount", flat=True),
        Decimal(0),
    )


def period(month: datetime) -> BillingPeriod:
    return BillingPeriod.objects.get(start=month)


def chip(code: str) -> AcceleratorModel:
    """A chip of the seeded catalog, seeding it again when a transactional test before this one flushed it."""
    if not AcceleratorModel.objects.filter(code=code).exists():
        load_catalog(AcceleratorModel)
    return AcceleratorModel.objects.get(code=code)


def market(*, price="12.5000", currency="CNY", fraction="0.500", notice=24, **offering_fields):
    """A center with one offering (H100 by default) and a consumer enterprise."""
    center = CenterFactory(name="Lakeside AI Computing Center")
    site = SiteFactory(center=center, region=offering_fields.pop("region", "cn-east"))
    accelerator = offering_fields.pop("accelerator", None) or chip("nvidia-h100-sxm")
    offering = OfferingFactory(
        center=center,
        site=site,
        accelerator=accelerator,
        price_per_device_hour=Decimal(price),
        currency=currency,
        min_commit_fraction=Decimal(fraction),
        cancel_notice_hours=notice,
        **offering_fields,
    )
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")
    return center, offering, consumer
