"""Page-test helpers for billing tables: one row's visible text, and bare invoices and statements for lists."""

from __future__ import annotations

import html
import re
from datetime import datetime
from decimal import Decimal

from billing.models import Invoice, Statement
from billing.services.periods import period_for


def row_text(response, attribute: str, value) -> str:
    """The visible text of the table row marked `attribute="value"`, whitespace collapsed."""
    page = response.content.decode()
    match = re.search(rf'<tr {attribute}="{value}"[^>]*>(.*?)</tr>', page, flags=re.S)
    assert match, f"no row with {attribute}={value}"
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))).strip()


def rows_marked(response, attribute: str) -> list[str]:
    return re.findall(rf'<tr {attribute}="([^"]+)"', response.content.decode())


def bare_invoice(consumer, month: datetime, total: str) -> Invoice:
    """A draft invoice with no lines, for list tests only (no money rule is exercised through it)."""
    amount = Decimal(total)
    return Invoice.objects.create(
        consumer=consumer,
        period=period_for(month),
        currency="CNY",
        subtotal=amount,
        voucher_amount=0,
        total=amount,
        vat_rate=Decimal("0.06"),
        vat_amount=0,
        issued_at=month,
        finalize_after=month,
    )


def bare_statement(center, month: datetime, gross: str) -> Statement:
    amount = Decimal(gross)
    return Statement.objects.create(
        center=center,
        period=period_for(month),
        currency="CNY",
        gross=amount,
        fee_rate=Decimal("0.10"),
        fee=0,
        payout=amount,
        net_payout=amount,
        issued_at=month,
    )
