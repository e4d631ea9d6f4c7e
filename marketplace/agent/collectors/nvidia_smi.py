"""Bare-metal GPU hosts read through `nvidia-smi --query-gpu`.

The agent hands whole GPUs to bookings (their indexes become `CUDA_VISIBLE_DEVICES`) and meters each booking
once per loop iteration: the interval since its last record, with the utilization and power sampled now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from marketplace.agent.collectors.base import Collector, CollectorError, DeviceAssignments, run_command
from marketplace.agent.model import Access, Allocation, DeviceFact, UsageBatch, usage_record
from marketplace.agent.timeutil import compact_utc, format_utc, parse_utc

QUERY_FIELDS = ("index", "uuid", "name", "utilization.gpu", "memory.used", "memory.total", "power.draw")
QUERY_ARGS = ("--query-gpu=" + ",".join(QUERY_FIELDS), "--format=csv,noheader,nounits")
SOURCE = "nvidia-smi"

# A value the driver could not read means the device is in trouble; "[Not Supported]" only means the board
# does not report that quantity (many do not report power), which says nothing about its health.
_NOT_SUPPORTED = "[not supported]"


def _reading(value: str, column: str, line: int) -> tuple[Decimal | None, bool]:
    """(number, unreadable): `[N/A]` and other bracketed driver messages are None and unreadable."""
    if value.lower() == _NOT_SUPPORTED:
        return None, False
    if value.upper() in {"N/A", "[N/A]"} or (value.startswith("[") and value.endswith("]")):
        return None, True
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CollectorError(f"{column}: {value!r} is not a number", line=line, source=SOURCE) from None
    if not number.is_finite() or number < 0:
        raise CollectorError(f"{column}: {value!r} is not a non-negative number", line=line, source=SOURCE)
    return number, False


def _whole(number: Decimal | None, column: str, line: int) -> int | None:
    if number is None:
        return None
    if number != number.to_integral_value():
        raise CollectorError(f"{column}: {number} is not a whole number of MiB", line=line, source=SOURCE)
    return int(number)


def parse_query_gpu(text: str) -> list[DeviceFact]:
    """Parse `--format=csv,noheader,nounits` output of the query in `QUERY_FIELDS`.

    Blank lines and stray spaces are ignored. A device whose utilization or memory cannot be read is reported
    with those values None and `healthy=False`. Anything else unexpected (a wrong column count, a non-number,
    a duplicate index, no device at all) raises `CollectorError` naming the line.
    """
    devices: list[DeviceFact] = []
    seen: set[int] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        values = [value.strip() for value in raw.split(",")]
        if len(values) != len(QUERY_FIELDS):
            raise CollectorError(
                f"found {len(values)} comma-separated values, expected {len(QUERY_FIELDS)} ({', '.join(QUERY_FIELDS)})",
                line=number,
                source=SOURCE,
            )
        index_text, uuid, name, utilization_text, used_text, total_text, power_text = values
        if not index_text.isdigit():
            raise CollectorError(f"index: {index_text!r} is not a device index", line=number, source=SOURCE)
        index = int(index_text)
        if index in seen:
            raise CollectorError(f"index {index} appears twice", line=number, source=SOURCE)
        seen.add(index)
        if not uuid or uuid.startswith("["):
            raise CollectorError(f"uuid: {uuid!r} is not a device uuid", line=number, source=SOURCE)
        percent, utilization_unreadable = _reading(utilization_text, "utilization.gpu", number)
        if percent is not None and percent > 100:
            raise CollectorError(f"utilization.gpu: {percent} is over 100%", line=number, source=SOURCE)
        used, used_unreadable = _reading(used_text, "memory.used", number)
        total, _ = _reading(total_text, "memory.total", number)
        power, _ = _reading(power_text, "power.draw", number)
        devices.append(
            DeviceFact(
                index=index,
                uuid=uuid,
                model=name,
                utilization=None if percent is None else percent / 100,
                memory_used_mb=_whole(used, "memory.used", number),
                memory_total_mb=_whole(total, "memory.total", number),
                healthy=not (utilization_unreadable or used_unreadable),
                power_w=power,
            )
        )
    if not devices:
        raise CollectorError("no device in the output (empty)", line=1, source=SOURCE)
    return devices


class NvidiaSmiCollector(Collector):
    """Collector state: `assignments` {booking: [gpu index]}, `provisioned_at` {booking: RFC 3339}."""

    kind = "nvidia-smi"

    @property
    def _assignments(self) -> DeviceAssignments:
        return DeviceAssignments(self.state)

    @property
    def _provisioned_at(self) -> dict[str, Any]:
        return self.state.setdefault("provisioned_at", {})

    def sample(self) -> list[DeviceFact]:
        settings = self.config.nvidia_smi
        return parse_query_gpu(run_command((*settings.command, *QUERY_ARGS), timeout=settings.timeout, what=SOURCE))

    def devices(self) -> list[DeviceFact]:
        assignments = self._assignments
        return [replace(device, booking=assignments.booking_of(device.index)) for device in self.sample()]

    def provision(self, allocation: Allocation) -> Access:
        assignments = self._assignments
        granted = assignments.of(allocation.id)
        if not granted:
            devices = self.sample()
            healthy = [device.index for device in devices if device.healthy]
            granted = assignments.assign(allocation.id, allocation.devices, healthy)
            if not granted:
                assignments.release(allocation.id)
                busy = len(healthy)
                raise CollectorError(
                    f"no free healthy GPU on {self.config.hostname} ({busy} healthy, all assigned; "
                    f"{len(devices) - busy} unhealthy)",
                    source=SOURCE,
                )
            self._provisioned_at[allocation.id] = format_utc(self.clock())
        gpus = ",".join(str(index) for index in granted)
        return {"host": self.config.hostname, "gpus": gpus, "cuda_visible_devices": gpus}

    def release(self, allocation: Allocation) -> None:
        self.forget(allocation.id)

    def forget(self, booking_id: str) -> None:
        self._assignments.release(booking_id)
        self._provisioned_at.pop(booking_id, None)

    def usage(self, allocations: Sequence[Allocation], since: Mapping[str, datetime], now: datetime) -> UsageBatch:
        batch = UsageBatch()
        assignments = self._assignments
        metered = [allocation for allocation in allocations if assignments.of(allocation.id)]
        if not metered:
            return batch
        sample = {device.index: device for device in self.sample()}
        for allocation in metered:
            provisioned = self._provisioned_at.get(allocation.id)
            # Billing starts when the GPUs were handed over, not at the booking start the agent may have missed.
            begin = since.get(allocation.id) or max(allocation.start, parse_utc(provisioned) if provisioned else now)
            begin = max(begin, allocation.start)
            end = min(now, allocation.end)
            if end <= begin:
                continue
            indexes = assignments.of(allocation.id)
            readings = [sample.get(index) for index in indexes]
            utilizations = [device.utilization for device in readings if device and device.utilization is not None]
            utilization = sum(utilizations, Decimal(0)) / len(utilizations) if utilizations else None
            powers = [device.power_w for device in readings if device and device.power_w is not None]
            energy = None
            if len(powers) == len(indexes):
                hours = Decimal((end - begin).total_seconds()) / 3600
                energy = sum(powers, Decimal(0)) * hours / 1000
            batch.records.append(
                usage_record(
                    record_id=f"{self.config.name}-{allocation.id[:8]}-{compact_utc(begin)}-{compact_utc(end)}",
                    booking=allocation.id,
                    start=begin,
                    end=end,
                    devices=len(indexes),
                    utilization=utilization,
                    energy_kwh=energy,
                )
            )
            batch.cursors[allocation.id] = end
        return batch
