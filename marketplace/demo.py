"""The demo market: sites, offerings and a couple of bookings for the demo network of `seed_demo`.

`seed_market()` is idempotent: sites and offerings are looked up by their center and external id and only created
when missing (through the inventory services, so they are audited like any other), and a demo booking is only
made when the demo consumer holds none on that offering yet. Demo data someone edited by hand is left as it is.

Figures are plausible for Chinese computing centers in 2026: PUE 1.15-1.45, grid carbon intensity 300-650
gCO2e/kWh, green power shares 10-80 %, and CNY prices per device-hour in line with public list prices.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.actor import ALL_SCOPES, ROLE_SCOPES, Actor
from accounts.models import CONSUMER_KINDS, ApiToken, Membership, Organization, OrganizationKind, Role, Scope
from accounts.secrets import hash_secret
from accounts.services import api_token_issue
from marketplace.models import HOLDING_STATUSES, Booking, BookingStatus, Offering, OfferingStatus, Site
from marketplace.services.bookings import booking_create, booking_transition
from marketplace.services.inventory import offering_put, site_put

# The demo centers and consumer of `manage.py seed_demo`, by slug.
CENTER_SLUGS = {
    "lakeside": "lakeside-ai-computing-center",
    "guizhou": "guizhou-highland-data-park",
    "ulanqab": "ulanqab-grassland-compute-hub",
    "pearl-bay": "pearl-bay-gpu-cloud",
}
CONSUMER_SLUG = "blue-heron-robotics"
BOOKER_EMAIL = "engineer@blueheron.demo"


@dataclass(frozen=True)
class DemoSite:
    center: str
    external_id: str
    name: str
    region: str
    pue: str
    carbon_intensity_g_per_kwh: str
    green_power_share: str
    hub: str


@dataclass(frozen=True)
class DemoOffering:
    center: str
    site: str
    external_id: str
    accelerator: str
    devices: int
    price_per_device_hour: str
    devices_per_node: int = 8
    cpu_cores_per_node: int | None = 128
    ram_gb_per_node: int | None = 1024
    local_disk_gb_per_node: int | None = 7680
    interconnect: str = ""
    software_stack: str = ""
    description: str = ""
    min_hours: int = 1
    max_hours: int = 720
    lead_time_hours: int = 0
    cancel_notice_hours: int = 24
    min_commit_fraction: str = "0.25"
    requires_approval: bool = False
    voucher_eligible: bool = True
    status: str = OfferingStatus.PUBLISHED


SITES = (
    DemoSite("lakeside", "hz-xixi", "Hangzhou Xixi hall", "cn-east", "1.32", "580", "0.18", "Yangtze River Delta"),
    DemoSite("lakeside", "qy-west", "Qingyang west campus", "cn-northwest", "1.21", "470", "0.55", "Gansu"),
    DemoSite("guizhou", "ga-cave-1", "Gui'an cave hall 1", "cn-southwest", "1.16", "420", "0.62", "Guizhou"),
    DemoSite("guizhou", "ga-cave-2", "Gui'an cave hall 2", "cn-southwest", "1.19", "420", "0.62", "Guizhou"),
    DemoSite("guizhou", "zw-desert", "Zhongwei desert site", "cn-northwest", "1.15", "610", "0.45", "Ningxia"),
    DemoSite("ulanqab", "uq-grass-a", "Ulanqab grassland A", "cn-north", "1.17", "650", "0.35", "Inner Mongolia"),
    DemoSite("ulanqab", "hrb-cold", "Harbin cold-climate hall", "cn-northeast", "1.24", "540", "0.80", ""),
    DemoSite("pearl-bay", "sz-nanshan", "Shenzhen Nanshan hall", "cn-south", "1.45", "520", "0.10", "Greater Bay Area"),
    DemoSite("pearl-bay", "cd-tianfu", "Chengdu Tianfu", "cn-southwest", "1.26", "300", "0.70", "Chengdu-Chongqing"),
)

_NVLINK_IB = "8× NVLink, 4× 400 Gb/s InfiniBand NDR per node"
_HCCS_ROCE = "HCCS within the node, 8× 200 Gb/s RoCE v2 between nodes"

# fmt: off
OFFERINGS = (
    DemoOffering(
        "lakeside", "hz-xixi", "hz-h100-a", "nvidia-h100-sxm", 64, "18.50",
        cpu_cores_per_node=192, ram_gb_per_node=2048, local_disk_gb_per_node=30720,
        interconnect=_NVLINK_IB, software_stack="Driver 550, CUDA 12.4, PyTorch 2.4 and NeMo images",
        description="HGX H100 nodes in a liquid-cooled hall; Slurm with exclusive nodes.",
        min_hours=4, cancel_notice_hours=48, min_commit_fraction="0.50",
    ),
    DemoOffering(
        "lakeside", "hz-xixi", "hz-a800", "nvidia-a800-80g", 128, "9.80",
        interconnect="8× NVLink (400 GB/s), 2× 200 Gb/s InfiniBand HDR", software_stack="Driver 535, CUDA 12.2",
    ),
    DemoOffering(
        "lakeside", "qy-west", "qy-910b", "huawei-ascend-910b", 256, "9.50",
        cpu_cores_per_node=192, ram_gb_per_node=1536, interconnect=_HCCS_ROCE,
        software_stack="CANN 8.0, MindSpore 2.4, PyTorch adapter", description="Atlas 800T A2 servers.",
    ),
    DemoOffering(
        "lakeside", "qy-west", "qy-l40s", "nvidia-l40s", 32, "6.20",
        devices_per_node=4, cpu_cores_per_node=64, ram_gb_per_node=512, local_disk_gb_per_node=3840,
        interconnect="PCIe Gen4, 100 Gb/s Ethernet", software_stack="Driver 550, CUDA 12.4",
        description="Inference and rendering nodes; paused while the hall is re-cabled.",
        status=OfferingStatus.PAUSED,
    ),
    DemoOffering(
        "guizhou", "ga-cave-1", "ga-910b", "huawei-ascend-910b", 512, "8.20",
        cpu_cores_per_node=192, ram_gb_per_node=1536, interconnect=_HCCS_ROCE,
        software_stack="CANN 8.0, MindSpore 2.4", description="Cave-cooled hall, free cooling most of the year.",
        min_commit_fraction="0.30",
    ),
    DemoOffering(
        "guizhou", "ga-cave-2", "ga-910c", "huawei-ascend-910c", 128, "15.80",
        cpu_cores_per_node=192, ram_gb_per_node=2048, interconnect=_HCCS_ROCE, software_stack="CANN 8.1",
        description="Atlas 900 A3 SuperPoD slices; each booking is reviewed by our operations team.",
        min_hours=24, lead_time_hours=12, cancel_notice_hours=72, min_commit_fraction="0.60", requires_approval=True,
    ),
    DemoOffering(
        "guizhou", "zw-desert", "zw-h20", "nvidia-h20", 96, "6.90",
        interconnect="8× NVLink, 2× 200 Gb/s RoCE", software_stack="Driver 550, CUDA 12.4, vLLM images",
        description="Inference-oriented H20 nodes with 96 GB per device.",
    ),
    DemoOffering(
        "ulanqab", "uq-grass-a", "uq-h800", "nvidia-h800", 128, "16.90",
        cpu_cores_per_node=192, ram_gb_per_node=2048, local_disk_gb_per_node=30720,
        interconnect=_NVLINK_IB, software_stack="Driver 550, CUDA 12.4", min_hours=8, min_commit_fraction="0.50",
    ),
    DemoOffering(
        "ulanqab", "uq-grass-a", "uq-mlu370", "cambricon-mlu370-x8", 64, "3.60",
        cpu_cores_per_node=96, ram_gb_per_node=768, interconnect="MLU-Link, 100 Gb/s Ethernet",
        software_stack="Cambricon Neuware 3.x, PyTorch adapter",
    ),
    DemoOffering(
        "ulanqab", "hrb-cold", "hrb-a100", "nvidia-a100-80g", 64, "9.20",
        interconnect="8× NVLink, 4× 200 Gb/s InfiniBand HDR", software_stack="Driver 535, CUDA 12.2",
        description="Free air cooling most of the year; 80 % wind power.",
    ),
    DemoOffering(
        "pearl-bay", "sz-nanshan", "sz-4090", "nvidia-rtx-4090", 160, "2.40",
        cpu_cores_per_node=64, ram_gb_per_node=512, local_disk_gb_per_node=3840,
        interconnect="PCIe Gen4, 25 Gb/s Ethernet", software_stack="Driver 550, CUDA 12.4, Jupyter images",
        description="Consumer cards for fine-tuning, inference and teaching labs.", cancel_notice_hours=2,
        min_commit_fraction="0",
    ),
    DemoOffering(
        "pearl-bay", "sz-nanshan", "sz-l20", "nvidia-l20", 48, "4.20",
        devices_per_node=4, cpu_cores_per_node=64, ram_gb_per_node=512, local_disk_gb_per_node=3840,
        interconnect="PCIe Gen4, 100 Gb/s Ethernet", software_stack="Driver 550, CUDA 12.4",
    ),
    DemoOffering(
        "pearl-bay", "cd-tianfu", "cd-h100", "nvidia-h100-sxm", 32, "21.50",
        cpu_cores_per_node=192, ram_gb_per_node=2048, interconnect=_NVLINK_IB,
        software_stack="Driver 550, CUDA 12.4", min_hours=2, cancel_notice_hours=24, min_commit_fraction="0.50",
    ),
)
# fmt: on


@dataclass(frozen=True)
class DemoBooking:
    offering: str  # external id; all demo offerings' keys are distinct across centers
    devices: int
    starts_in: timedelta
    hours: int
    active: bool


BOOKINGS = (
    # Upcoming: starts tomorrow at 01:00 UTC (09:00 in Beijing).
    DemoBooking("sz-4090", devices=16, starts_in=timedelta(days=1), hours=48, active=False),
    # Running now.
    DemoBooking("ga-910b", devices=32, starts_in=timedelta(0), hours=72, active=True),
)


def _centers() -> dict[str, Organization]:
    """The demo centers by key: by their seed_demo slug, else (before seed_demo has run) any centers in order."""
    found = {key: Organization.objects.filter(slug=slug).first() for key, slug in CENTER_SLUGS.items()}
    spare = list(
        Organization.objects.filter(kind=OrganizationKind.CENTER)
        .exclude(pk__in=[center.pk for center in found.values() if center])
        .order_by("created_at", "pk")
    )
    return {key: center or spare.pop(0) for key, center in found.items() if center or spare}


def _consumer() -> Organization | None:
    consumer = Organization.objects.filter(slug=CONSUMER_SLUG).first()
    return consumer or Organization.objects.filter(kind__in=CONSUMER_KINDS).order_by("created_at", "pk").first()


def _center_actor(center: Organization) -> Actor:
    owner = Membership.objects.filter(organization=center, role=Role.OWNER).select_related("user").first()
    if owner is None:
        return Actor(organization=center, scopes=ALL_SCOPES)
    return Actor.for_member(user=owner.user, organization=center, role=owner.role)


def _booker(consumer: Organization) -> Actor:
    memberships = Membership.objects.filter(organization=consumer, role__in=[Role.MEMBER, Role.ADMIN, Role.OWNER])
    membership = memberships.filter(user__email=BOOKER_EMAIL).first() or memberships.order_by("created_at").first()
    if membership is None:
        return Actor(organization=consumer, scopes=ROLE_SCOPES[Role.MEMBER])
    return Actor.for_member(user=membership.user, organization=consumer, role=membership.role)


def _site_data(spec: DemoSite) -> dict[str, Any]:
    return {
        "name": spec.name,
        "region": spec.region,
        "pue": Decimal(spec.pue),
        "carbon_intensity_g_per_kwh": Decimal(spec.carbon_intensity_g_per_kwh),
        "green_power_share": Decimal(spec.green_power_share),
        "hub": spec.hub,
    }


def _offering_data(spec: DemoOffering) -> dict[str, Any]:
    return {
        "site": spec.site,
        "accelerator": spec.accelerator,
        "devices": spec.devices,
        "devices_per_node": spec.devices_per_node,
        "cpu_cores_per_node": spec.cpu_cores_per_node,
        "ram_gb_per_node": spec.ram_gb_per_node,
        "local_disk_gb_per_node": spec.local_disk_gb_per_node,
        "interconnect": spec.interconnect,
        "software_stack": spec.software_stack,
        "description": spec.description,
        "price_per_device_hour": Decimal(spec.price_per_device_hour),
        "currency": "CNY",
        "min_hours": spec.min_hours,
        "max_hours": spec.max_hours,
        "lead_time_hours": spec.lead_time_hours,
        "cancel_notice_hours": spec.cancel_notice_hours,
        "min_commit_fraction": Decimal(spec.min_commit_fraction),
        "requires_approval": spec.requires_approval,
        "voucher_eligible": spec.voucher_eligible,
        "status": spec.status,
    }


def seed_market(*, now: datetime | None = None) -> dict[str, int]:
    """Create what is missing of the demo market; returns how many sites, offerings and bookings it created."""
    now = now or timezone.now()
    created = {"sites": 0, "offerings": 0, "bookings": 0}
    centers = _centers()
    with transaction.atomic():
        for spec in SITES:
            center = centers.get(spec.center)
            if center is None or Site.objects.filter(center=center, external_id=spec.external_id).exists():
                continue
            site_put(actor=_center_actor(center), external_id=spec.external_id, data=_site_data(spec), now=now)
            created["sites"] += 1
        for spec in OFFERINGS:
            center = centers.get(spec.center)
            if center is None or Offering.objects.filter(center=center, external_id=spec.external_id).exists():
                continue
            offering_put(actor=_center_actor(center), external_id=spec.external_id, data=_offering_data(spec), now=now)
            created["offerings"] += 1
        created["bookings"] = _seed_bookings(centers, now)
    return created


def _has_current_booking(consumer: Organization, offering: Offering, now: datetime) -> bool:
    # A demo seeded days ago has let its bookings run out: seed_demo then books again, so that the demo always
    # has a running booking for the simulated agents to meter and an upcoming one.
    return Booking.objects.filter(
        consumer=consumer, offering=offering, status__in=HOLDING_STATUSES, end__gt=now
    ).exists()


def _seed_bookings(centers: dict[str, Organization], now: datetime) -> int:
    consumer = _consumer()
    if consumer is None:
        return 0
    booker = _booker(consumer)
    by_key = {spec.external_id: centers.get(spec.center) for spec in OFFERINGS}
    made = 0
    for spec in BOOKINGS:
        center = by_key.get(spec.offering)
        offering = Offering.objects.filter(center=center, external_id=spec.offering).first() if center else None
        if offering is None or _has_current_booking(consumer, offering, now):
            continue
        if spec.active:
            start = now.replace(second=0, microsecond=0)
        else:
            start = (now + spec.starts_in).replace(hour=1, minute=0, second=0, microsecond=0)
        booking = booking_create(
            actor=booker,
            offering_id=offering.pk,
            devices=spec.devices,
            start=start,
            end=start + timedelta(hours=spec.hours),
            now=now,
        )
        if spec.active and booking.status == BookingStatus.CONFIRMED:
            booking_transition(
                booking_id=booking.pk, to_status=BookingStatus.ACTIVE, now=now, actor_label="system", reason="demo"
            )
        made += 1
    return made


# --- simulated agents --------------------------------------------------------------------------------------------

AGENT_TOKEN_NAME = "Demo simulated agent"  # noqa: S105 (a label, not a secret)


def _agent_config(center: Organization, token: str) -> str:
    devices = sum(Offering.objects.filter(center=center).values_list("devices", flat=True)) or 8
    return (
        f"# The demo's simulated agent of {center.name}, written by seed_demo. `make run` starts it; the server\n"
        "# URL comes from AGENT_SERVER_URL.\n"
        'server_url = "http://127.0.0.1:8000"\n'
        f'token = "{token}"\n'
        f'name = "{center.slug}-sim"\n'
        'collector = "simulated"\n'
        "interval = 10\n"
        f'state_dir = "state/{center.slug}"\n'
        "\n[simulated]\n"
        f"devices = {min(max(devices, 8), 64)}\n"
        "backfill_hours = 2\n"
        "slot_minutes = 1\n"
    )


def _token_in(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            token = tomllib.load(file).get("token")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return token if isinstance(token, str) else None


def seed_agents(*, directory: Path) -> list[Path]:
    """Write one simulated agent configuration per demo center into `directory`, each with an `agent`-scoped
    token. A file whose token still works is kept as it is; otherwise a new token is issued and the file
    rewritten (tokens are stored hashed, so a lost file cannot be recovered, only replaced)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for center in _centers().values():
        path = directory / f"{center.slug}.toml"
        token = _token_in(path)
        usable = (
            token is not None
            and ApiToken.objects.filter(
                organization=center,
                token_hash=hash_secret(token),
                revoked_at__isnull=True,
                scopes__contains=[Scope.AGENT],
            ).exists()
        )
        if not usable:
            # One live demo agent token per center: the one a lost or broken file held is revoked, not left behind.
            ApiToken.objects.filter(organization=center, name=AGENT_TOKEN_NAME, revoked_at__isnull=True).update(
                revoked_at=timezone.now()
            )
            issued = api_token_issue(organization=center, name=AGENT_TOKEN_NAME, scopes=[Scope.AGENT])
            path.write_text(_agent_config(center, issued.secret), encoding="utf-8")
            path.chmod(0o600)
        paths.append(path)
    return paths
