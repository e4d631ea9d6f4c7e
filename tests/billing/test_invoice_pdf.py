"""Invoices as PDF (WeasyPrint): what the PDF's text says, in English and in Chinese, that its fonts are embedded,
that it is A4, and that it is made without reaching any URL."""

from __future__ import annotations

import io
import re

import pytest
from django.conf import settings
from django.utils import translation
from pypdf import PdfReader

from accounts.models import Role
from billing.pdf import render_invoice_html, render_invoice_pdf
from tests.accounts.page_helpers import browser_as
from tests.billing.invoice_pages import closed_october, credit
from tests.factories import OrganizationFactory, member_of

pytestmark = pytest.mark.django_db

CHINESE_NAME = "蓝鹭机器人有限公司"


def text_of_pdf(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def embedded_font_files(data: bytes) -> list[str]:
    """The font file streams (FontFile, FontFile2, FontFile3) of every font the PDF's pages use."""
    found = []
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            descriptors = [font.get("/FontDescriptor")]
            descriptors += [d.get_object().get("/FontDescriptor") for d in font.get("/DescendantFonts", [])]
            for descriptor in filter(None, descriptors):
                descriptor = descriptor.get_object()
                found += [f"{font['/BaseFont']} {key}" for key in descriptor if key.startswith("/FontFile")]
    return found


def test_the_pdf_says_what_the_invoice_says_with_the_chinese_name_exactly():
    october = closed_october(legal_name=CHINESE_NAME, tax_id="91330106MA2B0000X1")

    data = render_invoice_pdf(october.invoice, language="en")

    text = text_of_pdf(data)
    assert data.startswith(b"%PDF-")
    assert CHINESE_NAME in text
    for expected in [
        "AI Computing Network Platform Co., Ltd.",
        "Tax id: 91330100MA2DEMO00X",
        "Tax id: 91330106MA2B0000X1",
        "INV-2026-10-000001",
        "Period 2026-10",
        "Status Finalized",
        "Due 2026-12-02",
        "Usage 32.0000 12.50 400.00",
        "Subtotal 400.00 CNY",
        "Voucher: Compute voucher 2026 (Zhejiang Compute Fund) −200.00 CNY",
        "Total 200.00 CNY",
        "Prices include VAT; of which VAT 6 %: 22.64 CNY",
        "Bank Bank of Hangzhou, Xixi branch",
        "Account 3301 0401 6000 0000 000",
        "Payment reference INV-2026-10-000001",
    ]:
        assert expected in text, expected


def test_the_fonts_are_embedded_and_the_page_is_a4():
    october = closed_october(legal_name=CHINESE_NAME)

    data = render_invoice_pdf(october.invoice, language="en")

    fonts = embedded_font_files(data)
    assert fonts, "no embedded font"
    assert all("Noto-Sans-CJK-SC" in font for font in fonts), fonts
    page = PdfReader(io.BytesIO(data)).pages[0]
    assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)  # 210 × 297 mm


def test_the_pdf_in_chinese():
    october = closed_october(legal_name=CHINESE_NAME)

    text = text_of_pdf(render_invoice_pdf(october.invoice, language="zh-hans"))

    assert CHINESE_NAME in text
    assert "INV-2026-10-000001" in text
    assert "状态" in text  # "Status"
    assert "币种 CNY" in text  # "Currency"
    assert "卡时" in text  # "Device-hours"
    assert "金额" in text  # "Amount"
    assert "400.00" in text


def test_the_language_defaults_to_the_active_one():
    october = closed_october()

    with translation.override("zh-hans"):
        html = render_invoice_html(october.invoice)

    assert '<html lang="zh-hans">' in html
    assert "币种" in html


def test_the_template_names_no_url_and_the_fonts_start_with_noto_sans_cjk_sc():
    october = closed_october()

    html = render_invoice_html(october.invoice, language="en")

    assert not re.search(r"https?://|url\(|<link|<img|<script", html)
    assert 'font-family: "Noto Sans CJK SC",' in html


def test_a_draft_says_so_and_has_no_payment_instructions():
    october = closed_october(finalize=False, voucher=False)

    text = text_of_pdf(render_invoice_pdf(october.invoice, language="en"))

    assert "DRAFT: not yet final" in text
    assert "Status Draft" in text
    assert "Total 400.00 CNY" in text
    assert "Payment reference" not in text


def test_credit_notes_are_listed_and_reduce_the_amount_due():
    october = closed_october()
    credit(october.invoice, "50.00")

    text = text_of_pdf(render_invoice_pdf(october.invoice, language="en"))

    assert "Credited −50.00 CNY" in text
    assert "Amount due 150.00 CNY" in text
    assert "CN-2026-11-000001 2026-11-10 two hours lost to a failed node −50.00" in text
    assert "Amount 150.00 CNY" in text


# --- the download -------------------------------------------------------------------------------------------------


def test_the_consumer_downloads_the_pdf_in_their_language():
    october = closed_october(legal_name=CHINESE_NAME)
    browser = browser_as(member_of(october.consumer, Role.VIEWER), october.consumer)

    english = browser.get(f"/billing/invoices/{october.invoice.pk}/pdf/")
    browser.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    chinese = browser.get(f"/billing/invoices/{october.invoice.pk}/pdf/")

    assert english.status_code == 200
    assert english["Content-Type"] == "application/pdf"
    assert english["Content-Disposition"] == 'inline; filename="INV-2026-10-000001.pdf"'
    assert english["Cache-Control"] == "private, no-store"
    assert "Status Finalized" in text_of_pdf(english.content)
    assert "状态" in text_of_pdf(chinese.content)
    assert CHINESE_NAME in text_of_pdf(chinese.content)


def test_another_organizations_invoice_pdf_is_a_404():
    october = closed_october()
    stranger = OrganizationFactory(name="Qingluo Biotech")

    response = browser_as(member_of(stranger, Role.OWNER), stranger).get(f"/billing/invoices/{october.invoice.pk}/pdf/")

    assert response.status_code == 404
