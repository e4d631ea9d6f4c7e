"""`python -m tests.bench.profile DIR/usage_ingestion-stored0.txt`: where the web process's Python time went, from
the collapsed stacks `--profile` records (py-spy `--format raw`, GIL holder only).

Each sample is put in one layer: walking from the outermost frame inwards, the innermost frame that belongs to a
known layer decides, except that a few layers claim everything beneath them (record parsing, live events), so
that a `uuid` or `datetime` call inside them counts as theirs.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

USAGE = "billing/services/usage.py"
PARSING = {"parse_record", "payload_hash", "_timestamp", "_decimal"}

# (layer, claims everything beneath it)
LAYERS = {
    "sql_parameters": ("SQL parameters: psycopg client-side binding (quoting every array element)", False),
    "sql_execution": ("SQL execution and fetching (psycopg, Python side)", False),
    "json": ("JSON parsing of the request body", True),
    "parsing": ("record parsing and hashing (parse_record)", True),
    "live": ("live events after commit (_push_live, channel layer)", True),
    "judging": ("judging and batching in usage.py (locks, occupancy, verdicts, arrays)", False),
    "orm": ("Django database wrapper (connections, cursors, transactions)", False),
    "drf": ("DRF view, authentication, permissions, throttling", False),
    "django": ("Django request handling and middleware", False),
    "server": ("ASGI server and threads (Daphne, Twisted, asgiref)", False),
}


def layer_of(frame: str) -> str | None:
    match = re.match(r"(?P<function>\S+) \((?P<path>[^)]*)\)", frame)
    if match is None:
        return None
    function, path = match["function"], match["path"]
    if "psycopg/_queries.py" in path or "psycopg/adapt.py" in path or "psycopg/types/" in path:
        return "sql_parameters"
    if "psycopg/" in path:
        return "sql_execution"
    if path.startswith("json/") or "/json/" in path or "rest_framework/parsers.py" in path:
        return "json"
    if USAGE in path:
        if function in PARSING:
            return "parsing"
        if function == "_push_live" or function.startswith("_push_live."):
            return "live"
        return "judging"
    if "marketplace/realtime.py" in path or "channels/" in path:
        return "live"
    if "django/db/" in path:
        return "orm"
    if "rest_framework/" in path or path.startswith(("accounts/", "billing/api.py")):
        return "drf"
    if "django/" in path or "whitenoise/" in path:
        return "django"
    if any(part in path for part in ("daphne", "twisted/", "asgiref/", "asyncio/", "threading.py", "concurrent/")):
        return "server"
    return None


def summarize(path: Path) -> tuple[int, Counter, Counter]:
    layers: Counter = Counter()
    leaves: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, count_text = line.rsplit(" ", 1)
        count = int(count_text)
        total += count
        frames = stack.split(";")
        found = "other"
        for frame in frames:
            layer = layer_of(frame)
            if layer is not None:
                found = layer
                if LAYERS[layer][1]:
                    break
        layers[found] += count
        leaves[re.sub(r":\d+\)$", ")", frames[-1])] += count
    return total, layers, leaves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=15, help="how many functions to list by own time")
    args = parser.parse_args(argv)
    for path in args.files:
        total, layers, leaves = summarize(path)
        print(f"{path}: {total} samples of the GIL holder")
        for layer, count in layers.most_common():
            name = LAYERS[layer][0] if layer in LAYERS else layer
            print(f"  {100 * count / total:5.1f}%  {name}")
        print("  functions by own time:")
        for frame, count in leaves.most_common(args.top):
            print(f"  {100 * count / total:5.1f}%  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
