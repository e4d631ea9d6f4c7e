"""The demo network's organizations and people, for `manage.py seed_demo`, with one login per role.

Every organization, person and link below is fictional. The command is idempotent: objects are looked up by
their natural key (slug, e-mail address) and only created when missing, so a second run changes nothing and
existing demo data that someone edited by hand is left as it is.

It is built from `STEPS`, functions that each seed one section and share a `DemoSeed`. The command (in the app
that sees every section) runs these and the later sections' steps (sites, offerings, bookings, vouchers); a step
may read what earlier ones put in the `DemoSeed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from accounts import services
from accounts.models import Membership, Organization, OrganizationKind, Role, User

DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105 (printed on purpose: the demo's one shared password)

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc(body: str) -> str:
    """Complete a 17-character unified social credit code with its GB 32100-2015 check character.

    The demo's codes are invented, but a well-formed code keeps validation that may come later from tripping
    over the demo data.
    """
    total = sum(_USCC_ALPHABET.index(char) * weight for char, weight in zip(body, _USCC_WEIGHTS, strict=True))
    return body + _USCC_ALPHABET[(31 - total % 31) % 31]


@dataclass(frozen=True)
class DemoOrganization:
    key: str
    kind: str
    name: str
    slug: str
    legal_name: str
    tax_id: str
    region: str
    credit_limit: Decimal | None = None


@dataclass(frozen=True)
class DemoPerson:
    email: str
    name: str
    memberships: tuple[tuple[str, str], ...]  # (organization key, role); the first is where they land
    staff: bool = False
    language: str = "en"


ORGANIZATIONS = (
    DemoOrganization(
        "operator",
        OrganizationKind.OPERATOR,
        "Northstar Compute Exchange",
        "northstar-compute-exchange",
        "Northstar Compute Exchange (Shanghai) Co., Ltd.",
        uscc("91310115MA1H7Q3K2"),
        "cn-east",
    ),
    DemoOrganization(
        "lakeside",
        OrganizationKind.CENTER,
        "Lakeside AI Computing Center",
        "lakeside-ai-computing-center",
        "Hangzhou Lakeside Intelligent Computing Co., Ltd.",
        uscc("91330106MA2KD8L4X"),
        "cn-east",
    ),
    DemoOrganization(
        "guizhou",
        OrganizationKind.CENTER,
        "Guizhou Highland Data Park",
        "guizhou-highland-data-park",
        "Gui'an Highland Data Park Operations Co., Ltd.",
        uscc("91520900MA6HR27N5"),
        "cn-southwest",
    ),
    DemoOrganization(
        "ulanqab",
        OrganizationKind.CENTER,
        "Ulanqab Grassland Compute Hub",
        "ulanqab-grassland-compute-hub",
        "Ulanqab Grassland Computing Power Co., Ltd.",
        uscc("91150902MA0Q4W6T8"),
        "cn-north",
    ),
    DemoOrganization(
        "pearl-bay",
        OrganizationKind.CENTER,
        "Pearl Bay GPU Cloud",
        "pearl-bay-gpu-cloud",
        "Shenzhen Pearl Bay Cloud Computing Co., Ltd.",
        uscc("91440300MA5G9JX13"),
        "cn-south",
    ),
    DemoOrganization(
        "blue-heron",
        OrganizationKind.ENTERPRISE,
        "Blue Heron Robotics",
        "blue-heron-robotics",
        "Hangzhou Blue Heron Robotics Technology Co., Ltd.",
        uscc("91330108MA2J0PB7Y"),
        "cn-east",
        Decimal("200000.00"),
    ),
    DemoOrganization(
        "qingluo",
        OrganizationKind.ENTERPRISE,
        "Qingluo Biotech",
        "qingluo-biotech",
        "Guangzhou Qingluo Biotechnology Co., Ltd.",
        uscc("91440101MA9UT53C6"),
        "cn-south",
        Decimal("80000.00"),
    ),
    DemoOrganization(
        "eastlake",
        OrganizationKind.UNIVERSITY,
        "Eastlake University",
        "eastlake-university",
        "Eastlake University",
        uscc("12420000MB1D83625"),
        "cn-central",
        Decimal("500000.00"),
    ),
    DemoOrganization(
        "yangtze",
        OrganizationKind.INSTITUTE,
        "Yangtze Institute for Computational Materials",
        "yangtze-institute-computational-materials",
        "Yangtze Institute for Computational Materials",
        uscc("12320000MB0F52941"),
        "cn-east",
        Decimal("150000.00"),
    ),
    DemoOrganization(
        "voucher-fund",
        OrganizationKind.SPONSOR,
        "Municipal AI Compute Voucher Fund",
        "municipal-ai-compute-voucher-fund",
        "Hangzhou Municipal AI Compute Voucher Fund Office",
        uscc("11330100MB1A27G48"),
        "cn-east",
    ),
)

# Organizations under common control: vouchers do not pay for compute bought from a related party.
RELATED_PARTIES = (("blue-heron", "lakeside"),)

PEOPLE = (
    DemoPerson("admin@northstar.demo", "Zhou Min", (("operator", Role.OWNER),), staff=True),
    DemoPerson("finance@northstar.demo", "Gao Yan", (("operator", Role.FINANCE),)),
    DemoPerson("owner@lakeside.demo", "Shen Hao", (("lakeside", Role.OWNER),)),
    DemoPerson("ops@lakeside.demo", "Lin Jie", (("lakeside", Role.MEMBER),)),
    DemoPerson("finance@lakeside.demo", "Wu Fang", (("lakeside", Role.FINANCE),)),
    DemoPerson("owner@guizhou-highland.demo", "Yang Bo", (("guizhou", Role.OWNER),)),
    DemoPerson("owner@ulanqab.demo", "Bai Yun", (("ulanqab", Role.OWNER),)),
    DemoPerson("owner@pearlbay.demo", "Chan Ka-yan", (("pearl-bay", Role.OWNER),)),
    DemoPerson("owner@blueheron.demo", "Xu Lan", (("blue-heron", Role.OWNER),)),
    DemoPerson("engineer@blueheron.demo", "Tang Rui", (("blue-heron", Role.MEMBER),)),
    DemoPerson("finance@blueheron.demo", "He Qing", (("blue-heron", Role.FINANCE),)),
    DemoPerson("viewer@blueheron.demo", "Luo Ping", (("blue-heron", Role.VIEWER),)),
    DemoPerson("owner@qingluo.demo", "Feng Yu", (("qingluo", Role.OWNER),)),
    DemoPerson("admin@eastlake.demo", "Prof. Ma Lei", (("eastlake", Role.ADMIN),)),
    DemoPerson("owner@yangtze-institute.demo", "Dr. Qian Wen", (("yangtze", Role.OWNER),)),
    DemoPerson("officer@voucherfund.demo", "Sun Li", (("voucher-fund", Role.OWNER),)),
    # A university lab head who also advises the start-up: two organizations, to show the switcher.
    DemoPerson(
        "li.wei@eastlake.demo",
        "Li Wei",
        (("eastlake", Role.OWNER), ("blue-heron", Role.MEMBER)),
        language="zh-hans",
    ),
)


@dataclass(frozen=True)
class Login:
    email: str
    organization: str
    role: str
    also: str = ""


@dataclass
class DemoSeed:
    """What the steps share: the objects seeded so far, by key, and the logins to print at the end."""

    organizations: dict[str, Organization] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    logins: list[Login] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.created[what] = self.created.get(what, 0) + 1


def seed_organizations(seed: DemoSeed) -> None:
    for spec in ORGANIZATIONS:
        # A deployment has one operator, possibly bootstrapped earlier by create_org under another name.
        lookup: dict[str, Any] = {"kind": spec.kind} if spec.kind == OrganizationKind.OPERATOR else {}
        organization = Organization.objects.filter(**(lookup or {"slug": spec.slug})).first()
        if organization is None:
            organization = services.organization_create(
                kind=spec.kind,
                name=spec.name,
                slug=spec.slug,
                legal_name=spec.legal_name,
                tax_id=spec.tax_id,
                region=spec.region,
                credit_limit=spec.credit_limit,
                verified=True,
            )
            seed.count("organizations")
        seed.organizations[spec.key] = organization
    for left, right in RELATED_PARTIES:
        seed.organizations[left].related_parties.add(seed.organizations[right])


def seed_people(seed: DemoSeed) -> None:
    for person in PEOPLE:
        user = User.objects.filter(email=person.email).first()
        if user is None:
            user = User.objects.create_user(
                email=person.email,
                password=DEMO_PASSWORD,
                name=person.name,
                preferred_language=person.language,
                # Platform staff run the Django admin of the deployment.
                is_staff=person.staff,
                is_superuser=person.staff,
            )
            seed.count("people")
        seed.users[person.email] = user
        for key, role in person.memberships:
            _membership, created = Membership.objects.get_or_create(
                user=user, organization=seed.organizations[key], defaults={"role": role}
            )
            if created:
                seed.count("memberships")
        landing_key, landing_role = _landing(person)
        others = [f"{seed.organizations[key].name} ({role})" for key, role in person.memberships if key != landing_key]
        seed.logins.append(
            Login(person.email, seed.organizations[landing_key].name, landing_role, also=", ".join(others))
        )


def _landing(person: DemoPerson) -> tuple[str, str]:
    # A session without a picked organization acts as the person's first organization by name
    # (accounts.authentication.active_membership); the table says where each login really lands.
    by_name = {spec.key: spec.name for spec in ORGANIZATIONS}
    return min(person.memberships, key=lambda membership: by_name[membership[0]])


Step = Callable[[DemoSeed], None]

STEPS: list[Step] = [
    seed_organizations,
    seed_people,
]


def login_table(logins: list[Login]) -> str:
    header = ("email", "password", "organization", "role", "also member of")
    rows = [header, *((x.email, DEMO_PASSWORD, x.organization, x.role, x.also or "-") for x in logins)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
