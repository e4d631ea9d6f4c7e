"""Helpers for bank statement and reconciliation tests: invoices of several consumers in October (and September),
and statement files in the documented format."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from accounts.models import OrganizationKind
from billing.models import Invoice
from billing.services.bank_statements import statement_upload
from billing.services.invoices import invoice_finalize
from tests.billing.settlement import OCT, book, close, invoice_of, market, meter
from tests.factories import OrganizationFactory

SEP = datetime(2026, 9, 1, tzinfo=UTC)
FINALIZED_AT = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
UPLOADED_AT = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
HEADER = ["date", "amount", "currency", "counterparty", "counterparty_account", "remittance", "bank_reference"]


def october_invoices(*consumers: tuple[str, int], september: tuple[str, int] | None = None) -> dict[str, Invoice]:
    """Finalized October invoices, one per (consumer name, hours): 8 H100 × hours × 12.50 CNY = 100.00 × hours.
    With `september` (a name among them and hours), that consumer also has a September invoice, keyed
    "<name> (September)"."""
    _center, offering, first = market(fraction="0")
    made: dict[str, object] = {}
    for index, (name, hours) in enumerate(consumers):
        if index == 0:
            first.name = name
            first.save(update_fields=["name"])
            consumer = first
        else:
            consumer = OrganizationFactory(kind=OrganizationKind.ENTERPRISE, name=name)
        made[name] = consumer
        day = f"2026-10-{5 + index:02d}"
        booking = book(offering, consumer, f"{day} 00:00", f"{day} {hours:02d}:00", 8)
        meter(booking, f"{day} 00:00", f"{day} {hours:02d}:00", 8)
    if september is not None:
        name, hours = september
        booking = book(offering, made[name], "2026-09-10 00:00", f"2026-09-10 {hours:02d}:00", 8)
        meter(booking, "2026-09-10 00:00", f"2026-09-10 {hours:02d}:00", 8)
        close(SEP)
    close(OCT)
    invoices = {
        name: invoice_finalize(invoice_id=invoice_of(consumer, OCT).pk, now=FINALIZED_AT)
        for name, consumer in made.items()
    }
    if september is not None:
        invoices[f"{september[0]} (September)"] = invoice_finalize(
            invoice_id=invoice_of(made[september[0]], SEP).pk, now=FINALIZED_AT
        )
    return invoices


def statement_csv(*rows: tuple, header: list[str] = HEADER, bom: bool = False) -> bytes:
    """A statement file: each row (date, amount, counterparty, remittance[, bank_reference]) in CNY."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for number, row in enumerate(rows, start=1):
        date, amount, counterparty, remittance, *rest = row
        reference = rest[0] if rest else f"BR{number:04d}"
        writer.writerow([date, amount, "CNY", counterparty, "6222000000000001", remittance, reference])
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode()


def upload(clerk, *rows: tuple, filename: str = "november.csv", now: datetime = UPLOADED_AT):
    return statement_upload(actor=clerk, filename=filename, content=statement_csv(*rows), now=now)
