"""What every collector offers the agent loop, and the helpers they share."""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from marketplace.agent.config import AgentConfig
from marketplace.agent.model import Access, Allocation, DeviceFact, UsageBatch


class CollectorError(Exception):
    """A collector could not do its job: a command failed or printed something it cannot trust.

    `line` is the 1-based line of the command's output that was wrong, when one line is to blame. The loop logs
    these and carries on; they never stop the agent.
    """

    def __init__(self, message: str, *, line: int | None = None, source: str = "") -> None:
        self.message = message
        self.line = line
        self.source = source
        where = source + (f" line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}" if where else message)


class Collector(ABC):
    """The interface between the agent loop and one kind of host.

    `state` is a JSON-serializable dict the collector owns (device assignments, provisioning times); the agent
    persists it in `state.json` after every call that may change it, so it survives restarts. `clock` is the
    agent's clock (aware UTC datetimes), injectable so tests can freeze time.
    """

    kind: ClassVar[str]

    def __init__(self, config: AgentConfig, state: dict[str, Any], clock: Callable[[], datetime]) -> None:
        self.config = config
        self.state = state
        self.clock = clock

    @abstractmethod
    def devices(self) -> list[DeviceFact]:
        """The host's devices for the heartbeat, each with the booking it serves (if any)."""

    @abstractmethod
    def provision(self, allocation: Allocation) -> Access:
        """Make the booking usable and return the access details shown to the consumer. Idempotent."""

    @abstractmethod
    def release(self, allocation: Allocation) -> None:
        """Take the booking's capacity back. Idempotent: releasing an unknown booking is not an error."""

    @abstractmethod
    def usage(self, allocations: Sequence[Allocation], since: Mapping[str, datetime], now: datetime) -> UsageBatch:
        """Records for the provisioned `allocations` after the `since` cursors, up to `now`.

        Guaranteed: every record lies inside its booking's window and ends at or before `now`; calling again
        with the returned cursors yields no record twice; the same interval always yields the same id and payload.
        """

    def forget(self, booking_id: str) -> None:  # noqa: B027 - optional hook, most collectors keep nothing
        """Drop whatever the collector keeps for a booking that is gone for good."""


def run_command(argv: Sequence[str], *, timeout: float, what: str) -> str:
    """Run `argv` (no shell) and return its standard output as text; any failure is a `CollectorError`."""
    try:
        completed = subprocess.run(  # noqa: S603 - argv from the agent's own config file, never from the network
            list(argv), capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise CollectorError(f"command not found: {argv[0]!r}", source=what) from None
    except PermissionError:
        raise CollectorError(f"command not executable: {argv[0]!r}", source=what) from None
    except subprocess.TimeoutExpired:
        raise CollectorError(f"no answer within {timeout:g}s", source=what) from None
    except OSError as error:
        raise CollectorError(f"cannot run {argv[0]!r}: {error}", source=what) from None
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        last = stderr[-1] if stderr else "no message"
        raise CollectorError(f"exited with status {completed.returncode}: {last}", source=what)
    return decode_output(completed.stdout, what=what)


def decode_output(data: bytes, *, what: str) -> str:
    """Decode a command's output as UTF-8; binary junk is a `CollectorError` naming the line it starts on."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise CollectorError("output is not text (invalid UTF-8)", line=line, source=what) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise CollectorError("output is not text (NUL byte)", line=line, source=what)
    return text


class DeviceAssignments:
    """Which device indexes serve which booking, kept in the collector's persisted state."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._by_booking: dict[str, list[int]] = state.setdefault("assignments", {})

    def of(self, booking_id: str) -> list[int]:
        return list(self._by_booking.get(booking_id, []))

    def booking_of(self, index: int) -> str | None:
        for booking_id, indexes in self._by_booking.items():
            if index in indexes:
                return booking_id
        return None

    def assign(self, booking_id: str, wanted: int, candidates: Sequence[int]) -> list[int]:
        """Give the booking up to `wanted` of the `candidates` no other booking holds; an existing grant stands."""
        if booking_id in self._by_booking:
            return self.of(booking_id)
        taken = {index for indexes in self._by_booking.values() for index in indexes}
        chosen = [index for index in sorted(candidates) if index not in taken][:wanted]
        self._by_booking[booking_id] = chosen
        return list(chosen)

    def release(self, booking_id: str) -> None:
        self._by_booking.pop(booking_id, None)

    def bookings(self) -> list[str]:
        return list(self._by_booking)
