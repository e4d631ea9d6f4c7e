"""The platform operator's finance workbench: periods, invoices, ledger."""

from __future__ import annotations

from django.http import Http404
from django.urls import path


def _not_yet(request, **kwargs):
    raise Http404("not built yet")


urlpatterns = [
    path("billing/finance/", _not_yet, name="finance"),
    path("billing/finance/invoices/", _not_yet, name="finance_invoices"),
    path("billing/finance/ledger/", _not_yet, name="trial_balance"),
    path("billing/finance/balances/", _not_yet, name="balances"),
]
