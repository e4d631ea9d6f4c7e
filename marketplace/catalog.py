"""The accelerator catalog seed: `marketplace/data/accelerators.csv`, a copy of the shared reference data.

Loading is an upsert keyed on `code`, so re-running it (a migration, `seed_catalog`) changes nothing unless the
file changed; models operator staff added by hand are left alone.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

CATALOG_CSV = Path(__file__).resolve().parent / "data" / "accelerators.csv"


def read_catalog(path: Path = CATALOG_CSV) -> list[dict]:
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            rows.append(
                {
                    "code": row["code"].strip(),
                    "vendor": row["vendor"].strip(),
                    "model": row["model"].strip(),
                    # Empty cells are unknown, not zero (data/README.md).
                    "memory_gb": int(row["memory_gb"]) if row["memory_gb"].strip() else None,
                    "fp16_tflops": Decimal(row["fp16_tflops"].strip()),
                    "tdp_watts": int(row["tdp_watts"]) if row["tdp_watts"].strip() else None,
                    "domestic": row["domestic"].strip().lower() == "true",
                    "note": row.get("note", "").strip(),
                }
            )
    return rows


def load_catalog(accelerator_model, path: Path = CATALOG_CSV) -> int:
    """Upsert every row into `accelerator_model` (the model class, or a migration's historical one)."""
    changed = 0
    for row in read_catalog(path):
        code = row.pop("code")
        obj, created = accelerator_model.objects.get_or_create(code=code, defaults=row)
        if created:
            changed += 1
            continue
        stale = {field: value for field, value in row.items() if getattr(obj, field) != value}
        if stale:
            for field, value in stale.items():
                setattr(obj, field, value)
            obj.save(update_fields=list(stale))
            changed += 1
    return changed
