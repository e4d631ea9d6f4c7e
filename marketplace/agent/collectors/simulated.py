"""A synthetic center for demos and tests: healthy devices, plausible usage, fully deterministic records.

Usage is cut into fixed slots aligned to the clock (5 minutes by default). A slot's record depends only on
(seed, booking, slot), so an agent that restarts, or replays a slot, produces byte-identical records.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from marketplace.agent.collectors.base import Collector, DeviceAssignments
from marketplace.agent.config import AgentConfig
from marketplace.agent.model import Access, Allocation, DeviceFact, UsageBatch, usage_record
from marketplace.agent.timeutil import compact_utc, format_utc

# A plausible board power for a busy data-center GPU, used for the energy figure (kW per device at 100%).
KW_PER_DEVICE = Decimal("0.7")
LOW, HIGH = Decimal("0.55"), Decimal("0.98")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def slot_utilization(seed: int, booking_id: str, slot_start: datetime) -> Decimal:
    """A utilization in [0.55, 0.98] (two decimals) that depends only on its arguments."""
    digest = hashlib.sha256(f"{seed}:{booking_id}:{format_utc(slot_start)}".encode()).digest()
    steps = int((HIGH - LOW) * 100) + 1
    return LOW + Decimal(int.from_bytes(digest[:8], "big") % steps) / 100


class SimulatedCollector(Collector):
    """Collector state: `assignments` {booking: [device index]} for the heartbeat's `booking` field."""

    kind = "simulated"

    def __init__(self, config: AgentConfig, state: dict[str, Any], clock: Callable[[], datetime]) -> None:
        super().__init__(config, state, clock)
        settings = config.simulated
        # Not security-sensitive: a seeded generator so that a demo run looks the same every time.
        self._rng = random.Random(f"{settings.seed}:{config.name}")  # noqa: S311
        self._levels = [self._rng.uniform(float(LOW), float(HIGH)) for _ in range(settings.devices)]

    @property
    def host(self) -> str:
        return f"sim-{self.config.name}.local"

    def devices(self) -> list[DeviceFact]:
        settings = self.config.simulated
        assignments = DeviceAssignments(self.state)
        facts = []
        for index in range(settings.devices):
            booking = assignments.booking_of(index)
            if booking:
                # A random walk keeps a live chart moving without jumping around.
                drift = self._rng.uniform(-0.04, 0.04)
                self._levels[index] = min(float(HIGH), max(float(LOW), self._levels[index] + drift))
                utilization = Decimal(str(round(self._levels[index], 2)))
                used = int(settings.memory_total_mb * (0.3 + 0.65 * self._levels[index]))
            else:
                utilization, used = Decimal(0), 0
            facts.append(
                DeviceFact(
                    index=index,
                    uuid="GPU-" + str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.host}/{settings.seed}/{index}")),
                    model=settings.model,
                    utilization=utilization,
                    memory_used_mb=used,
                    memory_total_mb=settings.memory_total_mb,
                    healthy=True,
                    booking=booking,
                )
            )
        return facts

    def provision(self, allocation: Allocation) -> Access:
        # A booking larger than the simulated host still provisions: the demo market sells whole pools.
        DeviceAssignments(self.state).assign(allocation.id, allocation.devices, range(self.config.simulated.devices))
        return {
            "host": self.host,
            "ssh": f"ssh {allocation.consumer or 'user'}@{self.host}",
            "slurm_account": allocation.slurm_account,
        }

    def release(self, allocation: Allocation) -> None:
        self.forget(allocation.id)

    def forget(self, booking_id: str) -> None:
        DeviceAssignments(self.state).release(booking_id)

    def usage(self, allocations: Sequence[Allocation], since: Mapping[str, datetime], now: datetime) -> UsageBatch:
        settings = self.config.simulated
        slot = timedelta(minutes=settings.slot_minutes)
        backfill_floor = now - timedelta(hours=settings.backfill_hours)
        batch = UsageBatch()
        for allocation in allocations:
            cursor = since.get(allocation.id)
            # Never further back than the backfill horizon, so a long-stopped demo does not flood the server.
            begin = max(allocation.start, backfill_floor) if cursor is None else max(cursor, backfill_floor)
            if begin == backfill_floor and begin > allocation.start:
                # Whole slots only: a record's bounds must not depend on when the agent happened to start.
                begin = self._align_up(begin, slot)
            stop = min(now, allocation.end)
            slot_start = self._align_down(begin, slot)
            last_end: datetime | None = None
            while slot_start < stop:
                slot_end = slot_start + slot
                start, end = max(slot_start, allocation.start, begin), min(slot_end, allocation.end)
                if end > now:
                    break  # the slot is still running
                if end > start:
                    utilization = slot_utilization(settings.seed, allocation.id, slot_start)
                    hours = Decimal(int((end - start).total_seconds())) / 3600
                    slot_label = compact_utc(slot_start, seconds=False)
                    batch.records.append(
                        usage_record(
                            record_id=f"{self.config.name}-{allocation.id[:8]}-{slot_label}",
                            booking=allocation.id,
                            start=start,
                            end=end,
                            devices=allocation.devices,
                            utilization=utilization,
                            energy_kwh=allocation.devices * KW_PER_DEVICE * hours * utilization,
                        )
                    )
                    last_end = end
                slot_start = slot_end
            if last_end is not None:
                batch.cursors[allocation.id] = last_end
        return batch

    @staticmethod
    def _align_down(instant: datetime, slot: timedelta) -> datetime:
        return instant - (instant - _EPOCH) % slot

    @classmethod
    def _align_up(cls, instant: datetime, slot: timedelta) -> datetime:
        floor = cls._align_down(instant, slot)
        return floor if floor == instant else floor + slot
