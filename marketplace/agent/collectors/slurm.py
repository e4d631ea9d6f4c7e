"""Slurm clusters: bookings become Slurm accounts, usage is read back from `sacct`.

Provisioning a booking creates (through an optional configured command, e.g. `sacctmgr`) the account
`bk-<first 6 hex of the booking id>`; consumers submit jobs under it. Each loop the agent reads the jobs of
those accounts with `sacct --allocations` and reports GPU-seconds: one record per job and interval, clipped to the
booking's window and to what was already reported, so a running job is reported incrementally.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from marketplace.agent.collectors.base import Collector, CollectorError, run_command
from marketplace.agent.model import Access, Allocation, DeviceFact, UsageBatch, usage_record
from marketplace.agent.timeutil import compact_utc

logger = logging.getLogger("marketplace.agent")

SACCT_FIELDS = ("JobID", "Account", "User", "Partition", "Start", "End", "Elapsed", "AllocTRES", "State")
SACCT_ARGS = ("--allusers", "--allocations", "--parsable2", "--format=" + ",".join(SACCT_FIELDS))
SOURCE = "sacct"
# sacct prints these where a job has no such instant (not started yet, still running).
_NO_INSTANT = {"none", "unknown", ""}
_ELAPSED_RE = re.compile(r"^(?:(?P<days>\d+)-)?(?:(?P<hours>\d+):)?(?P<minutes>\d+):(?P<seconds>\d+)(?:\.\d+)?$")
_SACCT_TIME = "%Y-%m-%dT%H:%M:%S"


@dataclass(frozen=True)
class SacctJob:
    """One `sacct --allocations` line. `start`/`end` are aware UTC, None when sacct has no such instant."""

    line: int
    job_id: str
    account: str
    user: str
    partition: str
    start: datetime | None
    end: datetime | None
    elapsed_seconds: int
    gpus: int
    state: str


@dataclass
class SacctOutput:
    """Parsed jobs, and the lines that could not be trusted (each a `CollectorError` naming its line)."""

    jobs: list[SacctJob] = field(default_factory=list)
    problems: list[CollectorError] = field(default_factory=list)


def parse_elapsed(text: str) -> int:
    """`[D-][HH:]MM:SS` as seconds; raises ValueError otherwise."""
    match = _ELAPSED_RE.match(text.strip())
    if not match:
        raise ValueError(f"elapsed {text!r} is not [D-]HH:MM:SS")
    parts = {key: int(value or 0) for key, value in match.groupdict().items()}
    if parts["minutes"] >= 60 or parts["seconds"] >= 60:
        raise ValueError(f"elapsed {text!r} is not [D-]HH:MM:SS")
    return ((parts["days"] * 24 + parts["hours"]) * 60 + parts["minutes"]) * 60 + parts["seconds"]


def parse_gpus(tres: str) -> int:
    """GPUs in an AllocTRES string: the untyped `gres/gpu=N` total, else the sum of the typed `gres/gpu:<t>=N`.

    On `--allocations` lines AllocTRES is the job's total over all its nodes, so no multiplication by `node`.
    """
    untyped: int | None = None
    typed = 0
    for item in filter(None, (part.strip() for part in tres.split(","))):
        name, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"AllocTRES item {item!r} has no '='")
        if name == "gres/gpu" or name.startswith("gres/gpu:"):
            if not value.isdigit():
                raise ValueError(f"AllocTRES {name}={value!r} is not a whole number")
            if name == "gres/gpu":
                untyped = int(value)
            else:
                typed += int(value)
    return untyped if untyped is not None else typed


def _instant(text: str, zone: ZoneInfo, column: str) -> datetime | None:
    if text.strip().lower() in _NO_INSTANT:
        return None
    try:
        # sacct prints the cluster's local time without an offset: the configured zone supplies it.
        local = datetime.strptime(text.strip(), _SACCT_TIME).replace(tzinfo=zone)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not YYYY-MM-DDTHH:MM:SS") from None
    return local.astimezone(UTC)


def parse_sacct(text: str, timezone: str = "UTC") -> SacctOutput:
    """Parse `sacct --parsable2` output whose header names (at least) the columns in `SACCT_FIELDS`.

    A missing or wrong header raises `CollectorError` (nothing in the output can be trusted then). A bad data
    line (wrong column count, unreadable time, elapsed or TRES) is skipped and reported in `problems`: one odd
    job must not stop the metering of every other.
    """
    zone = ZoneInfo(timezone)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise CollectorError("no header line (empty output); expected " + "|".join(SACCT_FIELDS), line=1, source=SOURCE)
    header = [name.strip() for name in lines[0].split("|")]
    missing = [name for name in SACCT_FIELDS if name not in header]
    if missing or len(set(header)) != len(header):
        raise CollectorError(
            f"bad header {lines[0][:120]!r}: expected columns {'|'.join(SACCT_FIELDS)}", line=1, source=SOURCE
        )
    position = {name: header.index(name) for name in SACCT_FIELDS}
    output = SacctOutput()
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        values = raw.split("|")
        if len(values) != len(header):
            output.problems.append(
                CollectorError(
                    f"expected {len(header)} '|'-separated values, found {len(values)}", line=number, source=SOURCE
                )
            )
            continue
        value = {name: values[position[name]].strip() for name in SACCT_FIELDS}
        if "." in value["JobID"]:
            continue  # a job step: --allocations should hide them, and the allocation line already counts it
        try:
            if not value["JobID"]:
                raise ValueError("JobID is empty")
            job = SacctJob(
                line=number,
                job_id=value["JobID"],
                account=value["Account"],
                user=value["User"],
                partition=value["Partition"],
                start=_instant(value["Start"], zone, "Start"),
                end=_instant(value["End"], zone, "End"),
                elapsed_seconds=parse_elapsed(value["Elapsed"]),
                gpus=parse_gpus(value["AllocTRES"]),
                state=value["State"],
            )
        except ValueError as error:
            output.problems.append(CollectorError(str(error), line=number, source=SOURCE))
            continue
        output.jobs.append(job)
    return output


class SlurmCollector(Collector):
    """Collector state: none beyond the agent's cursors, keyed `<booking id>/<job id>`."""

    kind = "slurm"

    def devices(self) -> list[DeviceFact]:
        # The agent runs on a login or controller node, which has no accelerators of its own to report.
        return []

    def _command(self, template: tuple[str, ...] | None, allocation: Allocation, what: str) -> None:
        if not template:
            return
        values = {
            "account": allocation.slurm_account,
            "booking": allocation.id,
            "devices": str(allocation.devices),
            "partition": self.config.slurm.partition or "",
        }
        argv = [argument.format_map(values) for argument in template]
        run_command(argv, timeout=self.config.slurm.timeout, what=what)

    def provision(self, allocation: Allocation) -> Access:
        self._command(self.config.slurm.provision_command, allocation, "slurm provision_command")
        access: Access = {"slurm_account": allocation.slurm_account}
        if self.config.slurm.partition:
            access["partition"] = self.config.slurm.partition
        return access

    def release(self, allocation: Allocation) -> None:
        self._command(self.config.slurm.release_command, allocation, "slurm release_command")

    def read_jobs(self, starttime: datetime) -> SacctOutput:
        settings = self.config.slurm
        local_start = starttime.astimezone(ZoneInfo(settings.timezone)).strftime(_SACCT_TIME)
        argv = (*settings.sacct_command, *SACCT_ARGS, f"--starttime={local_start}", "--endtime=now")
        return parse_sacct(run_command(argv, timeout=settings.timeout, what=SOURCE), settings.timezone)

    def usage(self, allocations: Sequence[Allocation], since: Mapping[str, datetime], now: datetime) -> UsageBatch:
        batch = UsageBatch()
        by_account: dict[str, list[Allocation]] = {}
        for allocation in allocations:
            by_account.setdefault(allocation.slurm_account, []).append(allocation)
        if not by_account:
            return batch
        # A job still running started before now; anything older than the earliest booking cannot be billed.
        output = self.read_jobs(min(allocation.start for allocation in allocations) - timedelta(minutes=1))
        for problem in output.problems:
            logger.warning("sacct line skipped: %s", problem)
        for job in output.jobs:
            candidates = by_account.get(job.account, [])
            if not candidates:
                logger.debug("sacct job %s: account %r is no provisioned booking; ignored", job.job_id, job.account)
                continue
            if len(candidates) > 1:
                # Two bookings sharing 6 hex digits: the job cannot be attributed, so neither gets a guess.
                logger.error("sacct job %s: account %s maps to several bookings; skipped", job.job_id, job.account)
                continue
            allocation = candidates[0]
            if job.start is None or job.gpus == 0:
                continue  # never started, or used no GPU: nothing to bill
            key = f"{allocation.id}/{job.job_id}"
            begin = max(job.start, allocation.start, since.get(key, job.start))
            end = min(job.end or now, allocation.end, now)
            if end <= begin:
                continue
            batch.records.append(
                usage_record(
                    record_id=f"{self.config.name}-job{job.job_id}-{compact_utc(begin)}-{compact_utc(end)}",
                    booking=allocation.id,
                    start=begin,
                    end=end,
                    devices=job.gpus,
                )
            )
            batch.cursors[key] = end
        return batch
