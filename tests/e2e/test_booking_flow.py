"""A consumer in a real browser: searches the catalog with filters (the URL keeps them), opens an offering, gets a
quote, books it, watches the center approve it live over the WebSocket without reloading, and cancels it after
seeing the fee.

The center approves from its own browser, through the live server: the server process has its own in-memory
channel layer, so only a change made through it reaches the consumer's socket.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from playwright.sync_api import expect

from accounts.models import OrganizationKind, Role
from marketplace.models import Booking, BookingStatus
from tests.factories import PASSWORD, OrganizationFactory, member_of
from tests.marketplace.factories import AcceleratorModelFactory, CenterFactory, OfferingFactory, SiteFactory


def log_in(page, email: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))


def chip(code: str, vendor: str, model: str, memory_gb: int, tflops: str):
    # Spelled out: a browser test flushes the tables afterwards, so the seeded chip catalog may be gone.
    return AcceleratorModelFactory(
        code=code, vendor=vendor, model=model, memory_gb=memory_gb, fp16_tflops=Decimal(tflops), domestic=False
    )


def listed(page) -> list[str]:
    return page.locator("#catalog-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.offeringId)")


def test_search_quote_book_watch_the_approval_live_and_cancel(browser, page, live_server_url):
    consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name="Blue Heron Robotics")
    member_of(consumer, Role.MEMBER, email="tang.rui@blueheron.test")
    center = CenterFactory(name="Lakeside AI Computing Center")
    member_of(center, Role.ADMIN, email="ops@lakeside.test")
    site = SiteFactory(center=center, name="East hall", region="cn-east")
    h100 = OfferingFactory(
        center=center,
        site=site,
        accelerator=chip("nvidia-h100-sxm", "NVIDIA", "H100 SXM 80GB", 80, "989.4"),
        devices=16,
        price_per_device_hour=Decimal("20.00"),
        min_commit_fraction=Decimal("0.5"),
        cancel_notice_hours=48,
        requires_approval=True,
    )
    OfferingFactory(
        center=center, site=site, accelerator=chip("nvidia-rtx-4090", "NVIDIA", "GeForce RTX 4090", 24, "165.2")
    )
    OfferingFactory(
        center=center, site=site, accelerator=chip("huawei-ascend-910b", "Huawei", "Ascend 910B", 64, "353.9")
    )
    start = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    window = {"start": start.strftime("%Y-%m-%dT%H:%M"), "end": (start + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M")}

    # The consumer searches: NVIDIA chips with at least 80 GB; the list updates in place and the URL keeps the filters.
    log_in(page, "tang.rui@blueheron.test")
    page.goto("/catalog/")
    expect(page.locator("#catalog-table tbody tr")).to_have_count(3)
    page.select_option("#id_vendor", "NVIDIA")
    page.wait_for_url(re.compile(r"vendor=NVIDIA"))
    page.fill("#id_min_memory_gb", "80")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(r"min_memory_gb=80"))
    expect(page.locator("#catalog-table tbody tr")).to_have_count(1)
    assert listed(page) == [str(h100.pk)]
    assert "accelerator=" not in page.url  # empty filters stay out of the shared URL
    shared = page.url
    page.goto(shared)
    assert listed(page) == [str(h100.pk)]

    # The offering page and a quote, updated in place: 4 devices × 3 h × 20.00 = 240.00, commitment 120.00.
    page.get_by_role("link", name="NVIDIA H100 SXM 80GB").click()
    page.wait_for_url(re.compile(rf"/catalog/{h100.pk}/"))
    expect(page.locator("#offering-title")).to_have_text("NVIDIA H100 SXM 80GB")
    expect(page.locator("canvas[data-chart=availability]")).to_be_visible()
    page.fill("#id_devices", "4")
    page.fill("#id_start", window["start"])
    page.fill("#id_end", window["end"])
    page.locator("#quote-button").click()
    expect(page.locator("[data-testid=quote-amount]")).to_have_text("240.00 CNY")
    expect(page.locator("[data-testid=quote-min-commit]")).to_have_text("120.00 CNY")
    expect(page.locator("[data-testid=quote-voucher]")).to_have_text("no voucher program applies")
    assert page.url.endswith(f"/catalog/{h100.pk}/")  # the quote came by htmx, not by loading a page

    # Booking it: the center must approve it first.
    page.get_by_role("button", name="Request this booking").click()
    page.wait_for_url(re.compile(r"/bookings/[0-9a-f-]+/$"))
    booking = Booking.objects.get(consumer=consumer)
    assert (booking.devices, booking.status, booking.start) == (4, BookingStatus.PENDING_APPROVAL, start)
    expect(page.locator("#booking-body [data-booking-status]").first).to_have_text("Pending approval")

    # My bookings lists it; the page stays open while the center approves from its own browser.
    page.get_by_role("link", name="My bookings").first.click()
    page.wait_for_url(re.compile(r"/bookings/$"))
    row = page.locator(f'tr[data-booking-id="{booking.pk}"]')
    expect(row.locator("[data-booking-status]")).to_have_text("Pending approval")
    expect(page.locator("html")).to_have_attribute("data-live", "connected")
    page.evaluate("window.notReloaded = true")

    center_context = browser.new_context(base_url=live_server_url, locale="en-US")
    center_page = center_context.new_page()
    center_page.set_default_timeout(15_000)
    log_in(center_page, "ops@lakeside.test")
    center_page.goto("/center/bookings/")
    center_page.locator(f'tr[data-booking-id="{booking.pk}"] [data-action=approve]').click()
    center_page.wait_for_url(re.compile(r"/center/bookings/"))
    expect(center_page.locator(f'tr[data-booking-id="{booking.pk}"] [data-booking-status]')).to_have_text("Confirmed")
    center_context.close()

    expect(row.locator("[data-booking-status]")).to_have_text("Confirmed")
    assert page.evaluate("window.notReloaded") is True
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED

    # Cancelling shows the fee first (inside the 48-hour notice: the 50 % commitment, 120.00), then cancels.
    row.get_by_role("link", name="Cancel").click()
    page.wait_for_url(re.compile(r"/cancel/$"))
    expect(page.locator("#cancellation-fee")).to_have_text("120.00 CNY")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CONFIRMED
    page.locator("#confirm-cancel").click()
    page.wait_for_url(re.compile(rf"/bookings/{booking.pk}/$"))
    expect(page.locator("#messages")).to_contain_text("A cancellation fee of 120.00 CNY applies.")
    expect(page.locator("#booking-body [data-booking-status]").first).to_have_text("Cancelled")
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
