"""What every benchmark scenario shares: a fresh database, Django in this process (to generate data through the
models and services), a real ASGI server process, an optional profiler, and the report.

stdout carries exactly one JSON object per scenario run, so that a script (or CI) can parse it; everything meant
for people (progress, the summary table) goes to stderr.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parents[2]
BIN_DIR = Path(sys.executable).parent
SEED = 20_261_126
SCALES = ("small", "default")
EMBEDDED_BENCH_DATABASE = "computenet_bench"
SERVER_START_TIMEOUT = 60.0
# Read before `django_setup` removes it from this process's environment: the broker of the task-worker scenario.
REDIS_URL = os.environ.get("REDIS_URL")

log = logging.getLogger("bench")


class BenchError(Exception):
    """A scenario could not run, or ran and produced a wrong result: the run must exit non-zero."""


# --- results ------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One scenario run. `ratio` is the product's figure divided by the limit measured in the same run; the
    scenario passes when nothing failed and `ratio >= target` (or `ratio <= target` when `target_is_maximum`: a
    duration compared with the limit's). `error` set means the run itself failed (an exception, a wrong count):
    that makes the whole bench exit non-zero, a missed target does not."""

    name: str
    parameters: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None
    target: float | None = None
    checks: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    headline: str = ""  # one line for the summary table; not part of the JSON
    target_is_maximum: bool = False  # the ratio must stay at or below the target (a time, not a rate)

    @property
    def passed(self) -> bool:
        if self.error is not None or self.ratio is None or self.target is None:
            return False
        return self.ratio <= self.target if self.target_is_maximum else self.ratio >= self.target

    def as_json(self) -> str:
        document = {
            "name": self.name,
            "parameters": self.parameters,
            "figures": self.figures,
            "ratio": self.ratio,
            "target": self.target,
            "pass": self.passed,
            "checks": self.checks,
            "error": self.error,
            "environment": self.environment,
        }
        if self.target_is_maximum:
            # Said only for a maximum: a ratio of rates (the default, a minimum) keeps the plain shape.
            document["target_is"] = "maximum"
        return json.dumps(document, sort_keys=False)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: the figure is one that was actually measured)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def print_table(results: list[Result]) -> None:
    rows = [("scenario", "parameters", "figures", "ratio", "target", "result")]
    for result in results:
        shown = {k: v for k, v in result.parameters.items() if k in ("scale", "stored")}
        outcome = "ERROR" if result.error else ("pass" if result.passed else "MISS")
        rows.append(
            (
                result.name,
                " ".join(f"{k}={v}" for k, v in shown.items()),
                result.headline or "-",
                "-" if result.ratio is None else f"{result.ratio:.3f}",
                "-" if result.target is None else f"{'<=' if result.target_is_maximum else '>='} {result.target}",
                outcome,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    print("\n" + "\n".join(lines), file=sys.stderr)
    for result in results:
        if result.error:
            print(f"\n{result.name}: {result.error}", file=sys.stderr)


# --- the database -----------------------------------------------------------------------------------------------


def bench_database_url(source_url: str | None) -> str:
    """The URL of the bench database: `<name>_bench` on the server of `source_url`, or `computenet_bench` on the
    project's embedded PostgreSQL when no URL is given. The database itself is made by `recreate_database`."""
    if source_url:
        parts = urlsplit(source_url)
        name = parts.path.lstrip("/") or "computenet"
        return urlunsplit(parts._replace(path=f"/{name}_bench"))
    from marketplace.embedded_db import embedded_database

    data_dir = Path(os.environ.get("DATA_DIR") or BASE_DIR / ".data")
    socket_dir = embedded_database(data_dir)["HOST"]
    # libpq and dj-database-url both read a percent-encoded host starting with "/" as a Unix socket directory.
    return f"postgresql://postgres@{quote(socket_dir, safe='')}/{EMBEDDED_BENCH_DATABASE}"


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def recreate_database(url: str) -> None:
    """Drop the bench database (whatever a previous run left) and create it empty."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    name = database_name(url)
    if not name.endswith("_bench"):
        raise BenchError(f"refusing to drop {name!r}: the bench only drops databases named *_bench")
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of the processes the bench starts: the bench database, no Redis (tasks in-process,
    in-memory channel layer), debug off."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SETTINGS_MODULE="marketplace.settings",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def stop(process: subprocess.Popen, *, timeout: float) -> None:
    """Terminate a process the bench started, and kill it when it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def migrate(url: str) -> None:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 (a fixed command line: this interpreter and the project's manage.py)
        [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--noinput", "-v", "0"],
        cwd=BASE_DIR,
        env=server_env(url),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"manage.py migrate failed:\n{done.stdout}\n{done.stderr}")
    log.info("migrated %s in %.1f s", database_name(url), time.perf_counter() - started)


def django_setup(url: str) -> None:
    """Django in the bench process, on the bench database, to create data through the project's own code."""
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ["DEBUG"] = "false"  # no query log kept in memory while generating data
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")
    import django

    django.setup()
    # The project's logging config sends every INFO line to stderr; the bench's own progress is what matters here.
    logging.getLogger().setLevel(logging.WARNING)


# --- the bench context --------------------------------------------------------------------------------------


@dataclass
class Server:
    base_url: str
    host: str
    port: int
    pid: int
    log_path: Path


@dataclass
class Bench:
    """What a scenario gets: the scale, the seed, the bench database and ways to start a server and profile it."""

    scale: str
    seed: int
    database_url: str
    work_dir: Path
    stored: list[int]
    profile_dir: Path | None = None
    # Query options added to the server's DATABASE_URL only (dj-database-url turns them into the database's
    # OPTIONS), to measure a configuration before adopting it, e.g. "server_side_binding=true".
    server_db_options: str = ""
    repeat: int | None = None  # measurements per configuration; None: the scenario's default for the scale
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def server_database_url(self) -> str:
        if not self.server_db_options:
            return self.database_url
        parts = urlsplit(self.database_url)
        query = "&".join(part for part in (parts.query, self.server_db_options) if part)
        return urlunsplit(parts._replace(query=query))

    def connect(self, *, autocommit: bool = True):
        import psycopg

        return psycopg.connect(self.database_url, autocommit=autocommit)

    def fresh_database(self) -> None:
        """Drop, recreate and migrate the bench database, for a scenario that needs a database holding only its own
        data (a period close bills everything in the month). Django's connections in this process are closed
        first and reopen on the next query."""
        from django.db import connections

        connections.close_all()
        recreate_database(self.database_url)
        migrate(self.database_url)

    def checkpoint(self) -> None:
        """Start each measured phase with no dirty pages pending, so that a checkpoint triggered by the previous
        phase's writes does not land in the next one. Needs superuser; without it the phase just runs."""
        import psycopg

        with self.connect() as conn:
            try:
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                log.info("CHECKPOINT refused (not a superuser): phases may share a checkpoint")

    @contextmanager
    def asgi_server(self, label: str) -> Iterator[Server]:
        """A Daphne process serving the project on a free local port, exactly as `make run` starts it but with
        debug off; stopped (and its log kept in the work directory) on exit."""
        port = _free_port()
        log_path = self.work_dir / f"daphne-{label}.log"
        command = [str(BIN_DIR / "daphne"), "-b", "127.0.0.1", "-p", str(port), "marketplace.asgi:application"]
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(  # noqa: S603 (a fixed command line: the venv's daphne)
                command,
                cwd=BASE_DIR,
                env=server_env(self.server_database_url),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_for_port(process, port, log_path)
            log.info("daphne pid %d listening on 127.0.0.1:%d (log %s)", process.pid, port, log_path)
            yield Server(f"http://127.0.0.1:{port}", "127.0.0.1", port, process.pid, log_path)
        finally:
            stop(process, timeout=15)

    @contextmanager
    def profiled(self, pid: int, label: str) -> Iterator[None]:
        """Sample `pid` with py-spy while the block runs, when `--profile DIR` was given: the collapsed stacks
        land in DIR/<label>.txt (`python -m tests.bench.profile` summarizes them; speedscope opens them). Only
        the thread holding the GIL is sampled (`--gil`): that is the web process's Python work, the part that
        cannot run in parallel."""
        if self.profile_dir is None:
            yield
            return
        py_spy = shutil.which("py-spy", path=f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}")
        if py_spy is None:
            raise BenchError("--profile needs py-spy: .venv/bin/pip install py-spy")
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        output = self.profile_dir / f"{label}.txt"
        command = [py_spy, "record", "--pid", str(pid), "--gil", "--rate", "100", "--format", "raw", "-o", str(output)]
        recorder = subprocess.Popen(  # noqa: S603 (py-spy from the venv or PATH, fixed arguments)
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(1.0)  # py-spy attaches before the measured phase starts
        try:
            yield
        finally:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            try:
                recorder.wait(timeout=60)
            except subprocess.TimeoutExpired:
                recorder.kill()
            log.info("profile of %s written to %s", label, self.profile_dir)


CPU_PARTS = ("server", "postgres", "bench", "machine")


@dataclass
class CpuSeconds:
    """CPU seconds spent during a block: by the server process, by PostgreSQL, by the bench process itself, and by
    the whole machine (every process, ours or not: when it is well above the sum of the others, something else was
    running). PostgreSQL is only counted when it runs on this machine (its postmaster's /proc entry is readable),
    and counts every session of that server, not only the bench's. Filled in when the block ends."""

    server: float | None = None
    postgres: float | None = None
    bench: float | None = None
    machine: float | None = None

    def __add__(self, other: CpuSeconds) -> CpuSeconds:
        def both(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        return CpuSeconds(*(both(getattr(self, part), getattr(other, part)) for part in CPU_PARTS))

    def per_thousand(self, items: int) -> dict[str, float | None]:
        """Milliseconds of CPU per 1,000 items (records, requests…)."""
        return {
            part: None if (value := getattr(self, part)) is None else round(value * 1_000_000 / items, 1)
            for part in CPU_PARTS
        }


@contextmanager
def cpu_seconds(bench: Bench, server_pid: int | None = None) -> Iterator[CpuSeconds]:
    postmaster = _postmaster_pid(bench)
    before = _cpu_snapshot(server_pid, postmaster)
    usage = CpuSeconds()
    yield usage
    # Backends of connections closed at the end of the block may still be exiting: counted neither as live nor as
    # reaped by the postmaster until it has waited for them.
    time.sleep(0.5)
    after = _cpu_snapshot(server_pid, postmaster)
    for part in CPU_PARTS:
        if after[part] is not None and before[part] is not None:
            setattr(usage, part, after[part] - before[part])


def _postmaster_pid(bench: Bench) -> int | None:
    with bench.connect() as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        stat = _proc_stat(backend)
    return None if stat is None else int(stat[1])


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3… of /proc/<pid>/stat (state, ppid, …), or None when the process is not visible here."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _cpu_snapshot(server_pid: int | None, postmaster: int | None) -> dict[str, float | None]:
    tick = os.sysconf("SC_CLK_TCK")

    def own(stat: list[str]) -> float:  # utime + stime
        return (int(stat[11]) + int(stat[12])) / tick

    def reaped(stat: list[str]) -> float:  # cutime + cstime: children that have exited
        return (int(stat[13]) + int(stat[14])) / tick

    snapshot: dict[str, float | None] = dict.fromkeys(CPU_PARTS)
    times = os.times()
    snapshot["bench"] = times.user + times.system
    try:
        # user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        snapshot["machine"] = (sum(fields) - fields[3] - fields[4]) / tick
    except (OSError, ValueError, IndexError):
        pass
    if server_pid is not None and (stat := _proc_stat(server_pid)) is not None:
        snapshot["server"] = own(stat) + reaped(stat)
    if postmaster is not None and (stat := _proc_stat(postmaster)) is not None:
        # Backends come and go (the web process connects per request): the live ones count by their own times,
        # the ones that exited by the postmaster's children's times.
        total = own(stat) + reaped(stat)
        for entry in Path("/proc").iterdir():
            if (
                entry.name.isdigit()
                and (child := _proc_stat(int(entry.name))) is not None
                and child[1] == str(postmaster)
            ):
                total += own(child)
        snapshot["postgres"] = total
    return snapshot


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(process: subprocess.Popen, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"daphne exited with {process.returncode} at start:\n{tail(log_path)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"daphne did not listen on port {port} within {SERVER_START_TIMEOUT:.0f} s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def describe_environment(url: str) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                [["shared_buffers", "synchronous_commit", "max_wal_size", "fsync"]],
            ).fetchall()
        )
    return {
        "commit": _commit(),
        "cpus": os.cpu_count(),
        "postgres": version,
        "postgres_settings": settings,
        "python": sys.version.split()[0],
    }


def _commit() -> str | None:
    """The code measured: the commit, with "+changes" when the working tree differs from it."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        head = subprocess.run(  # noqa: S603 (git from PATH, fixed arguments)
            [git, "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 (git from PATH, fixed arguments)
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+changes" if dirty else head
