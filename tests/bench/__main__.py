"""`python -m tests.bench [--scale small|default] [--only NAME,...] [--stored N,...] [--profile DIR]`

Creates a fresh bench database (`<DATABASE_URL's name>_bench`, or `computenet_bench` on the embedded PostgreSQL),
migrates it, runs the scenarios and prints one JSON object per scenario run on stdout and a summary table on
stderr. Exits 1 when a scenario failed to run or failed a correctness check; a missed target is `"pass": false`
in the JSON and does not change the exit status (docs/performance.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.bench import harness
from tests.bench.harness import Bench, BenchError, Result


def _sizes(raw: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated record counts, got {raw!r}") from None
    if not sizes or any(size < 0 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected comma-separated record counts ≥ 0, got {raw!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    from tests.bench.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[1])
    parser.add_argument("--scale", choices=harness.SCALES, default="default")
    parser.add_argument("--only", help=f"comma-separated scenarios to run (of: {', '.join(SCENARIOS)})")
    parser.add_argument(
        "--stored",
        type=_sizes,
        default=[0],
        help="records already in the usage table when measuring, e.g. 100000,1000000,3000000 (default 0)",
    )
    parser.add_argument(
        "--repeat", type=int, help="measure each configuration N times and report medians (default: per scale)"
    )
    parser.add_argument("--seed", type=int, default=harness.SEED)
    parser.add_argument("--profile", type=Path, help="sample the server with py-spy during each API phase into DIR")
    parser.add_argument(
        "--server-db-options",
        default="",
        help="query options added to the web process's DATABASE_URL only, e.g. server_side_binding=true",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)

    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.list:
        for name, module in SCENARIOS.items():
            print(f"{name}: {module.DESCRIPTION}", file=sys.stderr)
        return 0
    names = [name.strip() for name in args.only.split(",")] if args.only else list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s bench %(message)s", "%H:%M:%S"))
    harness.log.addHandler(handler)
    harness.log.setLevel(logging.INFO)
    harness.log.propagate = False

    began = time.perf_counter()
    url = harness.bench_database_url(os.environ.get("DATABASE_URL"))
    harness.recreate_database(url)
    harness.migrate(url)
    harness.django_setup(url)
    work_dir = Path(tempfile.mkdtemp(prefix="computenet-bench-"))
    bench = Bench(
        scale=args.scale,
        seed=args.seed,
        database_url=url,
        work_dir=work_dir,
        stored=sorted(set(args.stored)),
        profile_dir=args.profile,
        server_db_options=args.server_db_options,
        repeat=args.repeat,
        environment=harness.describe_environment(url),
    )
    harness.log.info("scale %s, database %s, server logs in %s", args.scale, harness.database_name(url), bench.work_dir)

    results: list[Result] = []
    for name in names:
        try:
            for result in SCENARIOS[name].run(bench):
                results.append(result)
                print(result.as_json(), flush=True)
        except Exception as error:  # one scenario's failure is reported, the next one still runs
            if not isinstance(error, BenchError):
                traceback.print_exc(file=sys.stderr)
            result = Result(
                name=name,
                parameters={"scale": args.scale, "seed": args.seed},
                error=f"{type(error).__name__}: {error}",
                environment=bench.environment,
            )
            results.append(result)
            print(result.as_json(), flush=True)
    harness.print_table(results)
    print(f"\n{len(results)} scenario run(s) in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
