"""The benchmark scenarios, in the order `make bench` runs them.

A scenario is a module with `NAME` (its name in the JSON and in `--only`), `DESCRIPTION` and
`run(bench: Bench) -> Iterator[Result]`, yielding one result per measured configuration (for example per
`--stored` table size). It builds its own data with the harness's seed, measures its limit in the same run, and
sets `Result.error` when a correctness check fails. Add a module here to add a scenario.
"""

from __future__ import annotations

from types import ModuleType

from tests.bench.scenarios import (
    booking_contention,
    catalog_search,
    mixed_load,
    period_close,
    task_workers,
    usage_ingestion,
)

SCENARIOS: dict[str, ModuleType] = {
    module.NAME: module
    for module in (usage_ingestion, period_close, booking_contention, catalog_search, mixed_load, task_workers)
}
