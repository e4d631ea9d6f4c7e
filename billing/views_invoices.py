"""A consumer's invoices and upcoming invoice, and a center's statements."""

from __future__ import annotations

from django.http import Http404
from django.urls import path


def _not_yet(request, **kwargs):
    raise Http404("not built yet")


urlpatterns = [
    path("billing/invoices/", _not_yet, name="invoices"),
    path("billing/invoices.csv", _not_yet, name="invoices_csv"),
    path("billing/invoices/<str:invoice_id>/", _not_yet, name="invoice"),
    path("billing/invoices/<str:invoice_id>/pdf/", _not_yet, name="invoice_pdf"),
    path("billing/invoices/<str:invoice_id>/lines.csv", _not_yet, name="invoice_csv"),
    path("billing/upcoming/", _not_yet, name="upcoming"),
    path("billing/statements/", _not_yet, name="statements"),
    path("billing/statements.csv", _not_yet, name="statements_csv"),
    path("billing/statements/<str:statement_id>/", _not_yet, name="statement"),
    path("billing/statements/<str:statement_id>/lines.csv", _not_yet, name="statement_csv"),
]
