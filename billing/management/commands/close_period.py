"""`python manage.py close_period YYYY-MM` (API.md, Billing): close a period that has ended."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.errors import DomainError
from billing.periods_calendar import parse_label
from billing.services.periods import period_close


class Command(BaseCommand):
    help = (
        "Close a billing period that has ended: rate all of its usage, issue invoices, statements and voucher "
        "claims, and post the ledger. Running it twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("period", help="the month to close, YYYY-MM (UTC)")

    def handle(self, *args, **options):
        try:
            result = period_close(start=parse_label(options["period"]), now=timezone.now(), actor_label="close_period")
        except DomainError as error:
            raise CommandError(error.detail) from None
        summary = {
            "period": result.period.label,
            "status": result.period.status,
            "already_closed": result.already_closed,
            "invoices": result.invoices,
            "statements": result.statements,
            "voucher_claims": result.claims,
            "redemptions": result.redemptions,
            "totals": result.totals,
        }
        self.stdout.write(json.dumps(summary))
