"""Benchmarks: `make bench` (or `python -m tests.bench`) measures the product on real PostgreSQL against a real ASGI
server process, and compares each figure with a limit measured in the same run (docs/performance.md).

Nothing here is a test: no module is named `test_*.py`, so pytest collects nothing from this package and no test
depends on timings. A scenario is one module of `tests.bench.scenarios`, listed in its `SCENARIOS`.
"""
