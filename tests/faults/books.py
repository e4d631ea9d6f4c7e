"""A snapshot of the books for comparing two runs of the same work: every payment, allocation, journal entry
(with its lines), bank line, match, exception, invoice and statement, described by what it means — invoice
numbers, organization names, bank line numbers, amounts, statuses — not by ids or timestamps, which differ between
two runs of the same work."""

from __future__ import annotations

import re
from typing import Any

from billing.models import (
    BankStatement,
    BankStatementLine,
    Invoice,
    JournalEntry,
    Payment,
    PaymentAllocation,
    ReconciliationException,
    ReconciliationMatch,
    Statement,
)

_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b\d+\b")


def _line_number(line) -> int | None:
    return line.line_number if line is not None else None


def _number(invoice) -> str | None:
    return invoice.number if invoice is not None else None


def _payment(payment) -> tuple | None:
    if payment is None:
        return None
    return (payment.method, payment.amount, payment.currency, _line_number(payment.bank_line), payment.reference)


def books() -> dict[str, Any]:
    entries = []
    for entry in JournalEntry.objects.select_related("period").prefetch_related("lines__account__organization"):
        lines = sorted(
            (line.account.role, line.account.organization.name if line.account.organization else "", line.amount)
            for line in entry.lines.all()
        )
        # The key names our own rows by id: keep its shape (payment:<id>), not the id.
        entries.append((entry.kind, _ID.sub("#", entry.key), entry.period.start.date().isoformat(), tuple(lines)))
    return {
        "statements": sorted(
            (s.filename, s.status, s.line_count, s.credits, s.debits) for s in BankStatement.objects.all()
        ),
        "bank_lines": list(
            BankStatementLine.objects.order_by("line_number").values_list("line_number", "amount", "status")
        ),
        "payments": sorted(
            (*_payment(p), p.status, _number(p.invoice), p.consumer.name if p.consumer_id else "", p.period.start)
            for p in Payment.objects.select_related("bank_line", "invoice", "consumer", "period")
        ),
        "allocations": sorted(
            (_payment(a.payment), _number(a.invoice), a.amount, a.period.start)
            for a in PaymentAllocation.objects.select_related("payment__bank_line", "invoice", "period")
        ),
        "journal": sorted(entries),
        "matches": sorted(
            (_line_number(m.bank_line), _number(m.invoice), _payment(m.payment), m.amount, m.method, m.status)
            for m in ReconciliationMatch.objects.select_related("bank_line", "invoice", "payment__bank_line")
        ),
        "exceptions": sorted(
            (
                e.kind,
                _ID.sub("#", e.subject),
                e.status,
                e.amount,
                _line_number(e.bank_line),
                _number(e.invoice),
                _payment(e.payment),
                e.detail,
            )
            for e in ReconciliationException.objects.select_related("bank_line", "invoice", "payment__bank_line")
        ),
        "invoices": sorted(
            (i.number, i.consumer.name, i.status, i.subtotal, i.total, tuple(i.lines.values_list("kind", "amount")))
            for i in Invoice.objects.select_related("consumer")
        ),
        "center_statements": sorted(
            (s.center.name, s.status, s.gross, s.fee, s.payout) for s in Statement.objects.select_related("center")
        ),
    }
