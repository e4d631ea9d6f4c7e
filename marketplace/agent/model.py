"""The facts the agent exchanges with the server: devices, allocations and usage records."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from marketplace.agent.timeutil import format_utc, parse_utc

AccessValue = str | int | bool
Access = dict[str, AccessValue]

_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def slurm_account_for(booking_id: str) -> str:
    """The Slurm account a booking runs under: `bk-` + the first 6 hex digits of its id (the server's contract)."""
    return "bk-" + booking_id.replace("-", "")[:6].lower()


def fraction(value: Decimal | None, places: str = "0.01") -> str | None:
    """A fraction as the decimal string the API expects (`"0.97"`), or None when unknown."""
    if value is None:
        return None
    return str(value.quantize(Decimal(places), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class DeviceFact:
    """One accelerator as the heartbeat reports it. `utilization` is a fraction 0-1; None means unknown."""

    index: int
    uuid: str
    model: str
    utilization: Decimal | None
    memory_used_mb: int | None
    memory_total_mb: int | None
    healthy: bool
    power_w: Decimal | None = None
    booking: str | None = None

    def to_heartbeat(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "model": self.model,
            "utilization": fraction(self.utilization),
            "memory_used_mb": self.memory_used_mb,
            "memory_total_mb": self.memory_total_mb,
            "healthy": self.healthy,
            "booking": self.booking,
        }


@dataclass(frozen=True)
class Allocation:
    """A booking the server asks this center to provision or release, as listed by `GET agent/allocations`."""

    id: str
    offering: str
    devices: int
    start: datetime
    end: datetime
    status: str
    consumer: str
    action: str
    state: str = "pending"
    access: Access = field(default_factory=dict)
    message: str = ""
    slurm_account: str = ""

    @classmethod
    def from_api(cls, item: Any) -> Allocation:
        """Parse one list item; raises ValueError naming the bad field, so one odd item never stops the loop."""
        if not isinstance(item, dict):
            raise ValueError("allocation item is not an object")
        try:
            booking_id = str(uuid.UUID(str(item["id"])))
        except (KeyError, ValueError):
            raise ValueError(f"allocation id {item.get('id')!r} is not a UUID") from None
        devices = item.get("devices")
        if not isinstance(devices, int) or isinstance(devices, bool) or devices <= 0:
            raise ValueError(f"allocation {booking_id}: devices {devices!r} is not a positive integer")
        try:
            start, end = parse_utc(str(item["start"])), parse_utc(str(item["end"]))
        except (KeyError, ValueError) as error:
            raise ValueError(f"allocation {booking_id}: bad start/end: {error}") from None
        # Records carry whole seconds: shrink a fractional window inward so they can never fall outside it.
        if start.microsecond:
            start = start.replace(microsecond=0) + timedelta(seconds=1)
        end = end.replace(microsecond=0)
        if end <= start:
            raise ValueError(f"allocation {booking_id}: end is not after start")
        action = item.get("action")
        if action not in {"provision", "release"}:
            raise ValueError(f"allocation {booking_id}: unknown action {action!r}")
        allocation = item.get("allocation") or {}
        if not isinstance(allocation, dict):
            raise ValueError(f"allocation {booking_id}: 'allocation' is not an object")
        account = item.get("slurm_account")
        # The server names the account; a value unsafe as a command argument falls back to the documented rule.
        if not isinstance(account, str) or not _ACCOUNT_RE.match(account):
            account = slurm_account_for(booking_id)
        access = allocation.get("access")
        return cls(
            id=booking_id,
            offering=str(item.get("offering") or ""),
            devices=devices,
            start=start,
            end=end,
            status=str(item.get("status") or ""),
            consumer=str(item.get("consumer") or ""),
            action=action,
            state=str(allocation.get("state") or "pending"),
            access=dict(access) if isinstance(access, dict) else {},
            message=str(allocation.get("message") or ""),
            slurm_account=account,
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "offering": self.offering,
            "devices": self.devices,
            "start": format_utc(self.start),
            "end": format_utc(self.end),
            "status": self.status,
            "consumer": self.consumer,
            "action": self.action,
            "state": self.state,
            "access": self.access,
            "message": self.message,
            "slurm_account": self.slurm_account,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Allocation:
        return cls(
            id=data["id"],
            offering=data.get("offering", ""),
            devices=int(data["devices"]),
            start=parse_utc(data["start"]),
            end=parse_utc(data["end"]),
            status=data.get("status", ""),
            consumer=data.get("consumer", ""),
            action=data.get("action", "provision"),
            state=data.get("state", "pending"),
            access=dict(data.get("access") or {}),
            message=data.get("message", ""),
            slurm_account=data.get("slurm_account") or slurm_account_for(data["id"]),
        )


def usage_record(
    *,
    record_id: str,
    booking: str,
    start: datetime,
    end: datetime,
    devices: int,
    utilization: Decimal | None = None,
    energy_kwh: Decimal | None = None,
) -> dict[str, Any]:
    """A usage record exactly as `POST agent/usage` takes it. Same inputs, same dict: ids and payloads are stable."""
    if end <= start:
        raise ValueError(f"record {record_id}: end {end} is not after start {start}")
    return {
        "id": record_id,
        "booking": booking,
        "start": format_utc(start),
        "end": format_utc(end),
        "devices": devices,
        "utilization": fraction(utilization),
        "energy_kwh": fraction(energy_kwh, "0.001"),
    }


@dataclass
class UsageBatch:
    """Records a collector produced plus the cursors (per booking or per Slurm job) they advance to.

    A cursor key is the booking id, or `<booking id>/<job>` for per-job collectors, so a released booking's cursors
    can be dropped together. The agent spools records and cursors in one durable write.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    cursors: dict[str, datetime] = field(default_factory=dict)
