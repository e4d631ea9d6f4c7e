"""`manage.py seed_demo`: a small, realistic network to click through, with one login per role.

Idempotent: every step looks objects up by their natural key and creates only what is missing. The command lives
in the settlement app, the top layer, because it runs the steps of every layer (accounts, the market, then
settlement: vouchers and last month's closed books).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.demo import STEPS as ACCOUNT_STEPS
from accounts.demo import DemoSeed, Step, login_table
from billing.demo import seed_billing, seed_sample_statement
from marketplace.demo import seed_agents, seed_market


def seed_market_step(seed: DemoSeed) -> None:
    for what, n in seed_market().items():
        if n:
            seed.created[what] = seed.created.get(what, 0) + n


def seed_billing_step(seed: DemoSeed) -> None:
    for what, n in seed_billing().items():
        if n:
            seed.created[what] = seed.created.get(what, 0) + n


def seed_sample_statement_step(seed: DemoSeed) -> None:
    """The reconciliation workbench's sample bank statement, rendered with this demo's invoice numbers."""
    written = seed_sample_statement()
    if written is not None and written[1]:
        seed.created["sample bank statement"] = 1


STEPS: list[Step] = [*ACCOUNT_STEPS, seed_market_step, seed_billing_step, seed_sample_statement_step]


class Command(BaseCommand):
    help = "Seed a demo network with one login per role. Safe to run again; refused in production."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--agents-dir",
            type=Path,
            help="Also write a simulated agent configuration per demo center here (each with an agent token); "
            "`make run` starts them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo writes well-known demo logins and is refused when DJANGO_ENV=production.")
        seed = DemoSeed()
        with transaction.atomic():
            for step in STEPS:
                step(seed)
        if options.get("agents_dir"):
            paths = seed_agents(directory=options["agents_dir"])
            self.stderr.write(f"Simulated agents: {len(paths)} configurations in {options['agents_dir']}.")
        summary = ", ".join(f"{n} {what}" for what, n in seed.created.items()) or "nothing new"
        self.stderr.write(f"Demo data ready ({summary}).")
        self.stdout.write(login_table(seed.logins))
