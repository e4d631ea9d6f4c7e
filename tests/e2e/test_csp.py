"""The Content-Security-Policy in a real browser (issue 8, abuse suite): the pages with the most script on them
(charts, live updates over the WebSocket, htmx, stripe.js from localstripe) work under it without a single
violation, and the browser really enforces it: a script injected into the page does not run."""

from __future__ import annotations

from playwright.sync_api import expect

from accounts.models import Role
from tests.billing.payments import finance_clerk, october_invoice
from tests.billing.stripe_server import localstripe, localstripe_url  # noqa: F401 (fixtures)
from tests.e2e.test_finance_flow import log_in, off_the_event_loop
from tests.factories import member_of

INJECT = (
    "() => { const s = document.createElement('script'); s.textContent = 'window.__injected = true;';"
    " document.head.appendChild(s); return window.__injected === true; }"
)


def _violations(page) -> list[str]:
    """The browser's reports of what the policy blocked on `page`, from now on."""
    seen: list[str] = []

    def record(message) -> None:
        if "Content Security Policy" in message.text:
            seen.append(message.text)

    page.on("console", record)
    return seen


def test_the_busiest_pages_run_under_the_policy_without_a_violation(localstripe, page):  # noqa: F811
    invoice, _center, consumer = off_the_event_loop(october_invoice)
    member_of(consumer, Role.FINANCE, email="finance@blueheron.test")
    clerk = off_the_event_loop(finance_clerk)
    booking = invoice.lines.first().booking
    violations = _violations(page)

    log_in(page, "finance@blueheron.test")
    page.goto("/catalog/")
    page.goto(f"/catalog/{booking.offering_id}/")
    page.goto(f"/bookings/{booking.pk}/")
    page.wait_for_function("() => { const c = document.querySelector('canvas'); return !c || !!c.chart; }")
    page.goto(f"/billing/invoices/{invoice.pk}/")
    page.get_by_role("button", name="Pay 1000.00 CNY by card").click()
    expect(page.locator("#payment-element input").first).to_be_visible()  # stripe.js loaded and mounted its form
    page.goto("/accounts/organization/members/")

    page.context.clear_cookies()
    log_in(page, clerk.user.email)
    page.goto("/billing/finance/reports/ar-aging/?as_of=2026-11-30")
    page.wait_for_function("() => { const c = document.querySelector('canvas[data-chart]'); return !c || !!c.chart; }")
    page.goto("/billing/finance/reconciliation/")
    page.goto(f"/billing/finance/invoices/{invoice.pk}/")

    assert violations == []


def test_the_browser_refuses_a_script_injected_into_a_page(page):
    violations = _violations(page)
    page.goto("/accounts/login/")

    ran = page.evaluate(INJECT)

    assert ran is False
    assert any("script-src 'self'" in text for text in violations), violations
