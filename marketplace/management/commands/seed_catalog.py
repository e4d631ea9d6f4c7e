"""`manage.py seed_catalog`: load the accelerator catalog CSV into the database (safe to run again)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from marketplace.catalog import CATALOG_CSV, load_catalog
from marketplace.models import AcceleratorModel


class Command(BaseCommand):
    help = "Upsert the accelerator catalog from its CSV. Rows already up to date are left alone."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", type=Path, default=CATALOG_CSV, help=f"The catalog CSV (default: {CATALOG_CSV.name})."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        try:
            # All rows or none: a bad row halfway must not leave a half-updated catalog.
            with transaction.atomic():
                changed = load_catalog(AcceleratorModel, path)
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise CommandError(f"Cannot read the catalog {path}: {exc!r}") from exc
        total = AcceleratorModel.objects.count()
        self.stdout.write(f"Accelerator catalog: {changed} created or updated, {total} in total.")
