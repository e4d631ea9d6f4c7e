"""A whole market for the catalog and mixed-load scenarios: many centers and offerings across regions, chips and
currencies, and a crowd of bookings around today, generated reproducibly from the seed.

Organizations are made by the project's services, sites and offerings through the models (in bulk), and the
bookings by PostgreSQL itself (`INSERT … SELECT … generate_series`, `setseed`): hundreds of thousands of rows in a
few seconds, not timed. Bookings never overfill an offering: each offering's bookings run in four lanes of at most
a quarter of its devices, back to back within a lane, so the data respects invariant 1 as real data would.

Built once per bench database and scale: a second scenario of the same run finds it (`market_ensure`).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tests.bench.harness import Bench

log = logging.getLogger("bench")

# (offerings, bookings) per scale: the catalog issue's 2,000 offerings and 200,000 bookings by default.
SIZES = {"small": (500, 50_000), "default": (2_000, 200_000)}
OFFERINGS_PER_CENTER = 10
CONSUMERS = 20
REGIONS = ("cn-north", "cn-east", "cn-south", "cn-west", "cn-central", "ap-southeast", "eu-west", "us-east")
DEVICE_COUNTS = (8, 16, 32, 64, 128, 256, 512)
LANES = 4  # bookings of one offering run in this many lanes of ≤ devices/LANES each
LANE_SLOT = timedelta(hours=24)  # a lane holds one booking per slot
HISTORY = timedelta(days=5)  # the bookings start this long before today's midnight

HOLDING = ["pending_approval", "confirmed", "active"]


@dataclass
class Market:
    offerings: int
    bookings: int
    anchor: datetime  # the first lane slot's start
    horizon: datetime  # the last lane slot's end
    published: list[tuple[uuid.UUID, int]] = field(default_factory=list)  # (id, devices)
    vendors: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)
    accelerators: list[str] = field(default_factory=list)
    consumer_ids: list[uuid.UUID] = field(default_factory=list)


_BUILT: dict[tuple[str, str], Market] = {}


def market_ensure(bench: Bench) -> Market:
    """The market of this scale in the bench database, built on first use."""
    key = (bench.database_url, bench.scale)
    if key not in _BUILT:
        _BUILT[key] = _build(bench, *SIZES[bench.scale])
    return _BUILT[key]


def _build(bench: Bench, offerings: int, bookings: int) -> Market:
    from accounts.models import OrganizationKind
    from accounts.services import organization_create
    from marketplace.models import AcceleratorModel, Offering, OfferingStatus, Site

    started = time.perf_counter()
    rng = random.Random(bench.seed + 7)
    now = datetime.now(UTC)
    anchor = now.replace(hour=0, minute=0, second=0, microsecond=0) - HISTORY
    per_offering = bookings // offerings
    slots = -(-per_offering // LANES)
    market = Market(offerings=offerings, bookings=per_offering * offerings, anchor=anchor, horizon=anchor)
    market.horizon = anchor + slots * LANE_SLOT

    chips = list(AcceleratorModel.objects.order_by("code"))
    centers = [
        organization_create(
            kind=OrganizationKind.CENTER,
            name=f"Market Bench Center {number:03d}",
            slug=f"market-bench-center-{number:03d}",
            region=REGIONS[number % len(REGIONS)],
            verified=True,
        )
        for number in range(-(-offerings // OFFERINGS_PER_CENTER))
    ]
    kinds = (OrganizationKind.ENTERPRISE, OrganizationKind.UNIVERSITY, OrganizationKind.INSTITUTE)
    market.consumer_ids = [
        organization_create(
            kind=kinds[number % len(kinds)],
            name=f"Market Bench Consumer {number:02d}",
            slug=f"market-bench-consumer-{number:02d}",
        ).pk
        for number in range(CONSUMERS)
    ]
    sites = Site.objects.bulk_create(
        Site(
            center=center,
            external_id="market-bench-site",
            name=f"{center.name} site",
            region=rng.choice(REGIONS),
            pue=Decimal(rng.randint(110, 160)) / 100,
            carbon_intensity_g_per_kwh=Decimal(rng.randint(300, 700)),
            green_power_share=Decimal(rng.randint(0, 80)) / 100,
        )
        for center in centers
    )
    rows = []
    for number in range(offerings):
        center = number // OFFERINGS_PER_CENTER
        usd = rng.random() < 0.15
        status = OfferingStatus.PUBLISHED
        if rng.random() < 0.08:
            status = rng.choice([OfferingStatus.PAUSED, OfferingStatus.DRAFT, OfferingStatus.RETIRED])
        rows.append(
            Offering(
                center=centers[center],
                site=sites[center],
                external_id=f"market-bench-pool-{number:04d}",
                accelerator=rng.choice(chips),
                devices=rng.choice(DEVICE_COUNTS),
                devices_per_node=8,
                price_per_device_hour=Decimal(rng.randint(20_000, 800_000)) / 10_000 / (7 if usd else 1),
                currency="USD" if usd else "CNY",
                max_hours=720,
                status=status,
            )
        )
    created = Offering.objects.bulk_create(rows)
    market.published = [(row.pk, row.devices) for row in created if row.status == OfferingStatus.PUBLISHED]
    market.vendors = sorted({chip.vendor for chip in chips})
    market.accelerators = sorted({row.accelerator.code for row in created})
    market.regions = sorted(set(REGIONS))
    _insert_bookings(bench, market, [row.pk for row in created], per_offering, now)
    log.info(
        "market: %d offerings (%d published), %d bookings generated in %.1f s",
        offerings,
        len(market.published),
        market.bookings,
        time.perf_counter() - started,
    )
    return market


def _insert_bookings(bench: Bench, market: Market, offering_ids: list[uuid.UUID], per_offering: int, now) -> None:
    """Booking k of an offering runs in lane k % 4, slot k / 4: it starts 0–11 hours into its day-long slot and
    lasts 1–12 hours, so a lane's bookings never overlap and four lanes of ≤ a quarter of the devices never
    overfill the offering. Ended bookings are completed (a few cancelled); the others mostly confirmed, some
    cancelled or pending approval."""
    with bench.connect() as conn:
        conn.execute("SELECT setseed(%s)", [(bench.seed % 1000) / 1000])
        conn.execute(
            """
            INSERT INTO marketplace_booking
                (id, consumer_id, offering_id, devices, start, "end", status, unit_price, currency,
                 min_commit_fraction, cancel_notice_hours, created_at, updated_at, confirmed_at)
            SELECT gen_random_uuid(), consumers[1 + (k %% array_length(consumers, 1))], o.id,
                   1 + floor(random() * greatest(o.devices / 4, 1))::int,
                   s.start, s.start + (1 + floor(random() * 12)::int) * interval '1 hour',
                   CASE WHEN s.start + interval '12 hours' < %(now)s
                            THEN CASE WHEN random() < 0.05 THEN 'cancelled' ELSE 'completed' END
                        WHEN random() < 0.8 THEN 'confirmed'
                        WHEN random() < 0.5 THEN 'cancelled'
                        ELSE 'pending_approval'
                   END,
                   o.price_per_device_hour, o.currency, 0, 24, %(anchor)s, %(anchor)s, %(anchor)s
            FROM marketplace_offering o
            CROSS JOIN generate_series(0, %(per)s - 1) AS k
            CROSS JOIN LATERAL (SELECT %(anchor)s + (k / 4) * interval '1 day'
                                       + floor(random() * 12)::int * interval '1 hour' AS start) AS s
            CROSS JOIN (SELECT %(consumers)s::uuid[] AS consumers) AS c
            WHERE o.id = ANY(%(offerings)s)
            """,
            {
                "now": now,
                "anchor": market.anchor,
                "per": per_offering,
                "consumers": market.consumer_ids,
                "offerings": offering_ids,
            },
        )
        conn.execute("VACUUM ANALYZE marketplace_booking")
        conn.execute("VACUUM ANALYZE marketplace_offering")
