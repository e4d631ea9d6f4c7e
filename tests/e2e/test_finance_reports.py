"""The operator's finance clerk reads the reports in a real browser: the aging chart stacks each consumer's debt by
days past due, the cash chart sets net invoiced beside net received per month, and the XLSX download holds the
table's rows. The data (tests/billing/reports_scenario.py, `payouts_and_claims`) lies in October and November
2026: the pages are read as of the real clock's today."""

from __future__ import annotations

import io
import re
from pathlib import Path

import openpyxl

from tests.billing.reports_scenario import payouts_and_claims
from tests.e2e.test_finance_flow import log_in, off_the_event_loop

CHART_OF = (
    "(selector) => { const c = document.querySelector(selector); return c && c.chart ? {labels: "
    "c.chart.data.labels, sets: c.chart.data.datasets.map((d) => [d.label, d.data])} : null; }"
)


def test_a_clerk_reads_the_charts_and_downloads_a_report(page):
    scenario = off_the_event_loop(payouts_and_claims)
    log_in(page, scenario.clerk.user.email)

    page.goto("/billing/finance/reports/")
    page.locator("#report-list").get_by_role("link", name="Cash vs invoiced").click()
    page.wait_for_url(re.compile(r"/billing/finance/reports/cash-vs-invoiced/$"))
    page.fill("#id_first", "2026-10")
    page.fill("#id_last", "2026-11")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"first=2026-10"))
    page.wait_for_function(
        "() => { const c = document.querySelector('canvas[data-chart=cash]'); return c && c.chart; }"
    )
    cash = page.evaluate(CHART_OF, "canvas[data-chart=cash]")
    # Blue Heron's October invoice (1,000.00 at Lakeside + 800.00 at Riverside) and November's (500.00).
    assert cash == {
        "labels": ["2026-10", "2026-11"],
        "sets": [["Net invoiced", [1800, 500]], ["Net received", [0, 0]]],
    }

    page.locator("#report-tabs").get_by_role("link", name="AR aging").click()
    page.wait_for_url(re.compile(r"/billing/finance/reports/ar-aging/$"))
    page.wait_for_function(
        "() => { const c = document.querySelector('canvas[data-chart=aging]'); return c && c.chart; }"
    )
    aging = page.evaluate(CHART_OF, "canvas[data-chart=aging]")
    assert aging["labels"] == ["Blue Heron Robotics"]
    assert [name for name, _data in aging["sets"]] == [
        "Current",
        "1–30 days",
        "31–60 days",
        "61–90 days",
        "Over 90 days",
    ]
    table = [
        [cell.strip() for cell in row]
        for row in page.locator("#report-table tbody tr").evaluate_all(
            "(rows) => rows.map((r) => [...r.cells].map((c) => c.textContent))"
        )
    ]
    assert sum(sum(data) for _name, data in aging["sets"]) == float(table[0][7])

    with page.expect_download() as download:
        page.locator("#download-xlsx").click()
    workbook = openpyxl.load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    rows = list(workbook.active.iter_rows(values_only=True))
    assert download.value.suggested_filename.startswith("ar-aging-") and download.value.suggested_filename.endswith(
        ".xlsx"
    )
    assert rows[0][:2] == ("Consumer", "Currency")
    assert [(row[0], row[1], row[7]) for row in rows[1:]] == [(r[0], r[1], float(r[7])) for r in table]
