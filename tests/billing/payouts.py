"""Helpers for payout tests: a closed October with two centers, built through the real services.

Lakeside AI Computing Center sells H100 hours at 12.50 CNY and Blue Heron Robotics meters 8 devices × 10 h = 80
device-hours = 1,000.00 (fee 10 %: 100.00, net payout 900.00); Yangtze GPU Cloud sells at 20.00 and Blue Heron meters
4 devices × 5 h = 20 device-hours = 400.00 (fee 40.00, net payout 360.00). Lakeside is paid by bank, Yangtze (when a
test says so) through its Stripe Connect account `acct_1YangtzeGPU`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounts.models import Organization
from billing.models import PaymentProfile
from tests.billing.settlement import OCT, book, chip, close, market, meter
from tests.marketplace.factories import CenterFactory, OfferingFactory, SiteFactory

YANGTZE_ACCOUNT = "acct_1YangtzeGPU"


@dataclass
class October:
    lakeside: Organization
    yangtze: Organization
    heron: Organization


def october_two_centers(*, yangtze_by_stripe: bool = False) -> October:
    lakeside, offering, heron = market(fraction="0")
    yangtze = CenterFactory(name="Yangtze GPU Cloud", legal_name="Yangtze GPU Cloud Ltd.")
    yangtze_offering = OfferingFactory(
        center=yangtze,
        site=SiteFactory(center=yangtze, region="cn-central"),
        accelerator=chip("nvidia-h100-sxm"),
        price_per_device_hour=Decimal("20.0000"),
        min_commit_fraction=Decimal("0"),
    )
    meter(book(offering, heron, "2026-10-05 00:00", "2026-10-05 10:00", 8), "2026-10-05 00:00", "2026-10-05 10:00", 8)
    meter(
        book(yangtze_offering, heron, "2026-10-07 00:00", "2026-10-07 05:00", 4),
        "2026-10-07 00:00",
        "2026-10-07 05:00",
        4,
    )
    PaymentProfile.objects.create(
        organization=lakeside,
        payout_method="bank",
        bank_account_name="Lakeside AI Computing Center Co., Ltd.",
        bank_name="Bank of Hangzhou",
        bank_account_number="3301040160000123456",
        bank_code="313331000014",
    )
    PaymentProfile.objects.create(
        organization=yangtze,
        payout_method="stripe" if yangtze_by_stripe else "bank",
        stripe_account_id=YANGTZE_ACCOUNT if yangtze_by_stripe else None,
        # A name a spreadsheet would run as a formula: the bank file must write it as text.
        bank_account_name="=Yangtze GPU Cloud",
        bank_name="China Merchants Bank",
        bank_account_number="6222000011112222",
        bank_code="308584000013",
    )
    close(OCT)
    return October(lakeside=lakeside, yangtze=yangtze, heron=heron)
