"""Payments API and the Stripe webhook (filled in by its area)."""

from __future__ import annotations

urlpatterns: list = []
