"""Vouchers: sponsors' programs, applications and claims; consumers' grants and reimbursements."""

from __future__ import annotations

from django.http import Http404
from django.urls import path


def _not_yet(request, **kwargs):
    raise Http404("not built yet")


urlpatterns = [
    path("billing/vouchers/", _not_yet, name="vouchers"),
    path("billing/programs/", _not_yet, name="programs"),
    path("billing/claims/", _not_yet, name="claims"),
]
