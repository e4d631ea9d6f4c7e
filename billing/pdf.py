"""Invoices as PDF, rendered with WeasyPrint from a Django template (`templates/billing/pdf/invoice.html`).

The PDF is made offline: the template carries its own stylesheet, and the URL fetcher refuses every URL except
inline `data:` ones, so rendering never reaches the network or the file system. Fonts come from fontconfig;
"Noto Sans CJK SC" comes first so that Chinese names and the Chinese page render, and WeasyPrint embeds only the
glyphs used (a subset), which keeps a CJK invoice around a hundred kilobytes.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation

from billing.documents import invoice_document
from billing.models import Invoice

TEMPLATE = "billing/pdf/invoice.html"

# WeasyPrint logs each of its seven rendering steps at INFO: noise next to the product's own events.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)


def render_invoice_html(invoice: Invoice, *, language: str | None = None) -> str:
    """The HTML the PDF is rendered from, in `language` (default: the active language)."""
    language = language or translation.get_language() or settings.LANGUAGE_CODE
    with translation.override(language):
        return render_to_string(TEMPLATE, {"doc": invoice_document(invoice), "language": language})


def render_invoice_pdf(invoice: Invoice, *, language: str | None = None) -> bytes:
    """The invoice as an A4 PDF in `language` (default: the active language), with its fonts embedded."""
    # Imported here: WeasyPrint loads Pango through cffi, which only PDF rendering needs (not every process).
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    html = render_invoice_html(invoice, language=language)
    offline = URLFetcher(allowed_protocols=frozenset({"data"}))
    return HTML(string=html, url_fetcher=offline).write_pdf()


def pdf_filename(invoice: Invoice) -> str:
    """ASCII: an invoice number, or the period and currency of a draft."""
    if invoice.number:
        return f"{invoice.number}.pdf"
    return f"invoice-draft-{invoice.period.label}-{invoice.currency}.pdf"
