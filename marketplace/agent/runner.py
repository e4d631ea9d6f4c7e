"""The agent loop: heartbeat, allocations, usage, upload, sleep; and the backoff between failed iterations.

Guarantees the loop keeps, whatever the server or the host does:

* Usage is spooled to disk before any upload, and leaves the spool only once the server answered 200 for the
  batch holding it. A resend carries the same ids and payloads, so the server counts it once (as duplicates).
* Usage keeps being collected while the server is unreachable; nothing is lost, the spool just grows.
* Every state change of an allocation is saved locally first, then reported; an unreported change is reported
  again on the next iteration until the server acknowledges or refuses it (a refusal is logged, not retried).
* No collector or server failure ends the loop: each is logged on one line and the loop backs off.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from marketplace.agent.client import ApiError, CenterClient, PermanentError, TransientError
from marketplace.agent.collectors import Collector, CollectorError, make_collector
from marketplace.agent.config import AgentConfig
from marketplace.agent.model import Access, Allocation, DeviceFact, UsageBatch
from marketplace.agent.spool import RejectedLog, Spool, StateDirLock, StateStore, remove_stale_temporaries
from marketplace.agent.timeutil import format_utc, parse_utc, utc_now
from marketplace.agent.version import VERSION

logger = logging.getLogger("marketplace.agent")

BACKOFF_BASE = 2.0  # seconds: the first retry comes within this, then the ceiling doubles up to the cap
RETRY_AFTER_LIMIT = 3600.0  # a server asking for more than an hour is more likely wrong than serious
KEEP_FINISHED = timedelta(days=7)  # how long released/failed allocations stay in state.json
# A failed provision is tried again this long after (GPUs free up, a command's cause gets fixed), while the
# server still lists the booking for provisioning.
PROVISION_RETRY = timedelta(minutes=5)
CLOCK_SKEW_WARNING = timedelta(minutes=2)  # the server rejects records ending > 5 minutes in its future
# Server refusals that concern one allocation only; anything else (401, 403) concerns the agent as a whole.
_ITEM_REFUSALS = {400, 404, 409, 410, 422}


class AgentLog(logging.LoggerAdapter):
    """Prefixes every line with the agent's name (several agents may share one process) and tags the record."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs.setdefault("extra", {})["agent"] = self.extra["agent"] if self.extra else ""
        return f"[{kwargs['extra']['agent']}] {msg}", kwargs


def backoff_delay(
    attempt: int,
    *,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    base: float | None = None,
) -> float:
    """Seconds to wait after `attempt` consecutive failures: full jitter, i.e. uniform in [0, min(cap, base·2ⁿ⁻¹)].

    Jitter spreads the retries of many agents after a server outage; `retry_after` (the server's `Retry-After`)
    is a floor, since the server said when it can take us again.
    """
    base = BACKOFF_BASE if base is None else base
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_LIMIT))
    return delay


@dataclass
class LocalAllocation:
    """What this agent did for a booking, saved before it is reported.

    `reported` is True once the server acknowledged `state` (or refused it: `refused` then says so, and the
    agent stops insisting).
    """

    allocation: Allocation
    state: str  # provisioned | released | failed
    access: Access = field(default_factory=dict)
    message: str = ""
    reported: bool = False
    refused: bool = False
    updated_at: datetime | None = None

    def to_state(self) -> dict[str, Any]:
        return {
            "allocation": self.allocation.to_state(),
            "state": self.state,
            "access": self.access,
            "message": self.message,
            "reported": self.reported,
            "refused": self.refused,
            "updated_at": format_utc(self.updated_at) if self.updated_at else None,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> LocalAllocation:
        return cls(
            allocation=Allocation.from_state(data["allocation"]),
            state=data["state"],
            access=dict(data.get("access") or {}),
            message=data.get("message") or "",
            reported=bool(data.get("reported")),
            refused=bool(data.get("refused")),
            updated_at=parse_utc(data["updated_at"]) if data.get("updated_at") else None,
        )


@dataclass
class IterationResult:
    """What one `run_once` did. `ok` means every server step succeeded (collector trouble alone does not count)."""

    reached_server: bool = False
    error: str | None = None
    retry_after: float | None = None
    devices: int = 0
    provisioned: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    collected: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    batches: int = 0
    spooled: int = 0
    collector_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


class Agent:
    """One center agent: its config, state dir, collector and server connection.

    The state dir is locked for the agent's lifetime (`close()` or the `with` block releases it), so two agents
    never share a spool. `run_once()` is one loop iteration; `run(stop_event)` loops until the event is set.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        client: CenterClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.log = AgentLog(logger, {"agent": config.name})
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock: StateDirLock | None = StateDirLock(config.state_dir)
        try:
            self._load(client)
            self.save()
        except BaseException:
            self._lock.release()
            self._lock = None
            raise

    def _load(self, client: CenterClient | None) -> None:
        config = self.config
        remove_stale_temporaries(config.state_dir)
        self._store = StateStore(config.state_dir)
        self.spool = Spool(config.state_dir)
        self.rejected_log = RejectedLog(config.state_dir)
        state = self._store.load()
        self.allocations: dict[str, LocalAllocation] = {}
        for booking_id, data in (state.get("allocations") or {}).items():
            try:
                self.allocations[booking_id] = LocalAllocation.from_state(data)
            except (KeyError, TypeError, ValueError) as error:
                self.log.error("state.json: allocation %s unreadable (%s); forgotten", booking_id, error)
        self.cursors: dict[str, datetime] = {}
        for key, text in (state.get("cursors") or {}).items():
            try:
                self.cursors[key] = parse_utc(text)
            except (TypeError, ValueError):
                self.log.error("state.json: cursor %s unreadable; dropped", key)
        # The spool may hold cursors state.json never saw (a crash between the two writes): take the later one.
        for key, instant in self.spool.cursors().items():
            if key not in self.cursors or instant > self.cursors[key]:
                self.cursors[key] = instant
        if state.get("collector_kind") not in {None, config.collector}:
            self.log.warning("collector changed from %s to %s", state.get("collector_kind"), config.collector)
        self.collector_state: dict[str, Any] = state.get("collector") or {}
        self.collector: Collector = make_collector(config, self.collector_state, self.clock)
        self.client = client or CenterClient(config.api_base, config.token, timeout=config.timeout)
        self._last_devices: list[DeviceFact] = []
        self._last_collect: datetime | None = None
        self._warned: set[str] = set()
        self._stop: threading.Event | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Persist the state and release the state dir. Idempotent."""
        if self._lock is None:
            return
        try:
            self.save()
        finally:
            self._lock.release()
            self._lock = None

    def save(self) -> None:
        """Write `state.json` atomically: allocations, cursors and the collector's own state."""
        self._store.save(
            {
                "agent": self.config.name,
                "collector_kind": self.config.collector,
                "allocations": {key: local.to_state() for key, local in self.allocations.items()},
                "cursors": {key: format_utc(value) for key, value in sorted(self.cursors.items())},
                "collector": self.collector_state,
            }
        )

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    # -- the loop --------------------------------------------------------------------------------------------

    def run(self, stop_event: threading.Event) -> None:
        """Loop until `stop_event` is set, then persist and release the state dir. Never raises on failures."""
        failures = 0
        self.log.info(
            "agent started version=%s collector=%s server=%s interval=%gs spooled=%d",
            VERSION,
            self.config.collector,
            self.config.server_url,
            self.config.interval,
            len(self.spool),
        )
        try:
            while not stop_event.is_set():
                try:
                    result = self.run_once(stop_event)
                except Exception as error:  # a bug must cost one iteration, not the agent
                    self.log.exception("iteration failed unexpectedly: %s", error)
                    result = IterationResult(error=str(error))
                if stop_event.is_set():
                    break
                if result.ok:
                    failures = 0
                    delay = self.config.interval
                else:
                    failures += 1
                    delay = backoff_delay(
                        failures, cap=self.config.backoff_cap, retry_after=result.retry_after, rng=self._rng
                    )
                    reason = "server unreachable" if not result.reached_server else "server step failed"
                    self.log.warning(
                        "%s, retrying in %.1fs (spooled=%d): %s", reason, delay, result.spooled, result.error
                    )
                stop_event.wait(delay)
        finally:
            self.close()
            self.log.info("agent stopped spooled=%d", len(self.spool))

    def run_once(self, stop_event: threading.Event | None = None) -> IterationResult:
        """One iteration: heartbeat, provision/release, collect usage into the spool, upload the spool.

        Usage is collected even when the server cannot be reached (it waits in the spool). Returns what was done;
        `result.ok` is False when a server step failed, with `error` and any `retry_after`.
        """
        self._stop = stop_event
        now = self.clock()
        result = IterationResult()
        try:
            self._heartbeat(now, result)
            if not self._stopping():
                self._sync_allocations(now, result)
        except ApiError as error:
            self._server_failed(error, result)
        if not self._stopping():
            self._collect(now, result)
        if result.ok and not self._stopping():
            try:
                self._upload(now, result)
            except ApiError as error:
                self._server_failed(error, result)
        self._prune(now)
        self.save()
        result.spooled = len(self.spool)
        return result

    def _server_failed(self, error: ApiError, result: IterationResult) -> None:
        result.error = str(error)
        if isinstance(error, TransientError):
            result.retry_after = error.retry_after
        elif isinstance(error, PermanentError):
            hint = " (check the agent token and its 'agent' scope)" if error.status in {401, 403} else ""
            self.log.error("server refused: %s%s", error, hint)

    # -- heartbeat -------------------------------------------------------------------------------------------

    def _heartbeat(self, now: datetime, result: IterationResult) -> None:
        try:
            devices = self.collector.devices()
            self._last_devices = devices
        except CollectorError as error:
            # Still prove we are alive, and say the devices could not be read instead of pretending they vanished.
            self.log.error("devices unreadable: %s", error)
            result.collector_errors.append(str(error))
            devices = [
                replace(device, utilization=None, memory_used_mb=None, healthy=False) for device in self._last_devices
            ]
        result.devices = len(devices)
        answer = self.client.heartbeat(
            {
                "agent": self.config.name,
                "version": VERSION,
                "hostname": self.config.hostname,
                "devices": [device.to_heartbeat() for device in devices],
            }
        )
        result.reached_server = True
        healthy = sum(1 for device in devices if device.healthy)
        self.log.info(
            "heartbeat ok devices=%d healthy=%d registered=%s",
            len(devices),
            healthy,
            str(bool(answer.get("registered"))).lower(),
        )
        stale_after = answer.get("stale_after_seconds")
        if isinstance(stale_after, int | float) and self.config.interval >= stale_after and "stale" not in self._warned:
            self._warned.add("stale")
            self.log.warning(
                "interval %gs is not below the server's stale_after_seconds=%s: the agent will look stale",
                self.config.interval,
                stale_after,
            )
        try:
            server_time = parse_utc(str(answer.get("server_time")))
        except ValueError:
            return
        if abs(server_time - now) > CLOCK_SKEW_WARNING and "skew" not in self._warned:
            self._warned.add("skew")
            self.log.warning(
                "clock differs from the server's by %ds: usage may be rejected as in_future or outside_window",
                int((now - server_time).total_seconds()),
            )

    # -- allocations -----------------------------------------------------------------------------------------

    def _sync_allocations(self, now: datetime, result: IterationResult) -> None:
        items = self.client.allocations(self.config.name)
        for item in items:
            if self._stopping():
                return
            try:
                allocation = Allocation.from_api(item)
            except ValueError as error:
                self.log.error("allocation item skipped: %s", error)
                continue
            if allocation.action == "provision":
                self._provision(allocation, now, result)
            else:
                self._release(allocation, now, result)
        # Changes whose report was lost while the server stopped listing the booking still get reported.
        for local in list(self.allocations.values()):
            if self._stopping():
                return
            self._report(local)

    def _provision(self, allocation: Allocation, now: datetime, result: IterationResult) -> None:
        local = self.allocations.get(allocation.id)
        retry = (
            local is not None
            and local.state == "failed"
            and local.reported
            and (allocation.state == "pending" or local.updated_at is None or now - local.updated_at >= PROVISION_RETRY)
        )
        if local is None or retry:
            try:
                access = self.collector.provision(allocation)
            except Exception as error:  # a failed provision is reported to the server, whatever its cause
                if not isinstance(error, CollectorError):
                    self.log.exception("provision crashed booking=%s", allocation.id)
                local = LocalAllocation(allocation, "failed", message=f"provision failed: {error}", updated_at=now)
                result.failed.append(allocation.id)
                self.log.error("provision failed booking=%s: %s", allocation.id, error)
            else:
                local = LocalAllocation(allocation, "provisioned", access=access, updated_at=now)
                result.provisioned.append(allocation.id)
                self.log.info(
                    "provisioned booking=%s devices=%d consumer=%s",
                    allocation.id,
                    allocation.devices,
                    allocation.consumer,
                )
            self.allocations[allocation.id] = local
            self.save()
        else:
            local.allocation = allocation  # the window may have moved (an end brought forward)
            if local.state == "provisioned" and allocation.state != "provisioned" and not local.refused:
                local.reported = False  # the server lost or never got our report: say it again
            elif local.state == "released":
                self.log.debug("booking=%s listed for provisioning but already released here", allocation.id)
        self._report(local)

    def _release(self, allocation: Allocation, now: datetime, result: IterationResult) -> None:
        local = self.allocations.get(allocation.id)
        if local is not None and local.state in {"released", "failed"} and local.reported:
            if local.state == "released" and not local.refused and allocation.state == "provisioned":
                local.reported = False  # the server still has it provisioned: our report did not arrive
            self._report(local)
            return
        if local is not None and local.state == "provisioned":
            # The last partial interval belongs to the consumer too: meter it before the capacity goes away.
            local.allocation = allocation
            self._collect_for([allocation], now, result)
        try:
            self.collector.release(allocation)
        except Exception as error:
            if not isinstance(error, CollectorError):
                self.log.exception("release crashed booking=%s", allocation.id)
            local = LocalAllocation(allocation, "failed", message=f"release failed: {error}", updated_at=now)
            result.failed.append(allocation.id)
            self.log.error("release failed booking=%s: %s", allocation.id, error)
        else:
            local = LocalAllocation(allocation, "released", updated_at=now)
            result.released.append(allocation.id)
            self.log.info("released booking=%s", allocation.id)
        self.collector.forget(allocation.id)
        self.allocations[allocation.id] = local
        self.save()
        self._report(local)

    def _report(self, local: LocalAllocation) -> None:
        """Tell the server about `local.state` unless it already knows (or refused it)."""
        if local.reported:
            return
        booking_id = local.allocation.id
        try:
            self.client.report_allocation(
                booking_id,
                local.state,
                access=local.access if local.state == "provisioned" else None,
                message=local.message or None,
                agent=self.config.name,
            )
        except PermanentError as error:
            if error.status not in _ITEM_REFUSALS:
                raise
            # e.g. 409 invalid_state when the booking was cancelled meanwhile: retrying would be refused forever.
            local.reported = local.refused = True
            self.save()
            self.log.warning("allocation report refused booking=%s state=%s: %s", booking_id, local.state, error)
            return
        local.reported = True
        self.save()
        self.log.info("allocation reported booking=%s state=%s", booking_id, local.state)

    # -- usage -----------------------------------------------------------------------------------------------

    def _collect(self, now: datetime, result: IterationResult) -> None:
        # Retries after a failure come faster than the interval; metering them would only make tiny records.
        if self._last_collect is not None and now - self._last_collect < timedelta(seconds=self.config.interval):
            return
        provisioned = [local.allocation for local in self.allocations.values() if local.state == "provisioned"]
        self._collect_for(provisioned, now, result)
        self._last_collect = now

    def _collect_for(self, allocations: list[Allocation], now: datetime, result: IterationResult) -> None:
        if not allocations:
            return
        try:
            batch = self.collector.usage(allocations, dict(self.cursors), now)
        except CollectorError as error:
            self.log.error("usage collection failed: %s", error)
            result.collector_errors.append(str(error))
            return
        except Exception as error:  # a collector bug must not stop heartbeats and uploads
            self.log.exception("usage collection crashed: %s", error)
            result.collector_errors.append(str(error))
            return
        self._spool(batch, result)

    def _spool(self, batch: UsageBatch, result: IterationResult) -> None:
        if not batch.records and not batch.cursors:
            return
        # Records and cursors land on disk together, then state.json catches up (see spool.py for why).
        added = self.spool.add(batch.records, batch.cursors)
        for key, instant in batch.cursors.items():
            if key not in self.cursors or instant > self.cursors[key]:
                self.cursors[key] = instant
        self.save()
        result.collected += added
        self.log.info("usage collected records=%d spooled=%d", added, len(self.spool))

    def _upload(self, now: datetime, result: IterationResult) -> None:
        while len(self.spool) and not self._stopping():
            batch = self.spool.pending(self.config.batch_size)
            answer = self.client.upload_usage(self.config.name, batch)
            by_id = {record["id"]: record for record in batch}
            entries = []
            for item in answer.get("rejected") or []:
                if not isinstance(item, dict):
                    continue
                index = item.get("index")
                record = by_id.get(str(item.get("id")))
                if record is None and isinstance(index, int) and 0 <= index < len(batch):
                    record = batch[index]
                code, detail = str(item.get("code") or ""), str(item.get("detail") or "")
                entries.append({"rejected_at": format_utc(now), "code": code, "detail": detail, "record": record})
                self.log.warning(
                    "usage record rejected id=%s code=%s: %s", record["id"] if record else item.get("id"), code, detail
                )
            # Log the rejections before dropping the batch: a crash in between repeats a line, never loses one.
            self.rejected_log.append(entries)
            self.spool.remove(by_id)
            result.batches += 1
            result.accepted += _count(answer.get("accepted"))
            result.duplicates += _count(answer.get("duplicates"))
            result.rejected += len(entries)
        if result.batches:
            self.log.info(
                "usage uploaded accepted=%d duplicates=%d rejected=%d spooled=%d batches=%d",
                result.accepted,
                result.duplicates,
                result.rejected,
                len(self.spool),
                result.batches,
            )

    # -- housekeeping ----------------------------------------------------------------------------------------

    def _prune(self, now: datetime) -> None:
        for booking_id, local in list(self.allocations.items()):
            finished = local.state in {"released", "failed"} and local.reported
            if finished and local.allocation.end < now - KEEP_FINISHED:
                del self.allocations[booking_id]
                self.collector.forget(booking_id)
                for key in [key for key in self.cursors if key == booking_id or key.startswith(booking_id + "/")]:
                    del self.cursors[key]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def run(config: AgentConfig, stop_event: threading.Event, **options: Any) -> None:
    """Run one agent until `stop_event` is set (e.g. in a thread); `options` go to `Agent` (clock, client, rng)."""
    Agent(config, **options).run(stop_event)
