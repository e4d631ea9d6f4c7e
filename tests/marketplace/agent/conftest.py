"""Fixtures for the agent's tests: a frozen clock, the in-thread fake marketplace, configs and fake commands.

None of them needs the database: the agent is standard-library code that runs without Django.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from marketplace.agent.config import AgentConfig
from tests.marketplace.agent.fake_center import TOKEN, FakeCenter

SAMPLES = Path(__file__).resolve().parent / "samples"
REPO = Path(__file__).resolve().parents[3]


class FrozenClock:
    """The agent's clock, moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 3, 12, 0, tzinfo=UTC))


@pytest.fixture
def fake_center(clock: FrozenClock) -> Iterator[FakeCenter]:
    center = FakeCenter(clock=clock).start()
    yield center
    center.stop()


@pytest.fixture
def make_config(tmp_path: Path, fake_center: FakeCenter):
    def make(**overrides) -> AgentConfig:
        config = AgentConfig(
            server_url=fake_center.url,
            token=TOKEN,
            name="node3",
            collector="simulated",
            interval=60,
            state_dir=tmp_path / "state",
            batch_size=1000,
            hostname="node3.lakeside.example",
            timeout=5,
        )
        return replace(config, **overrides)

    return make


def fake_command(directory: Path, output: bytes | str, *, status: int = 0, name: str = "cmd") -> tuple[str, ...]:
    """An argv that prints `output` and exits with `status`, appending its arguments to `<name>.args`."""
    data = directory / f"{name}.out"
    data.write_bytes(output.encode() if isinstance(output, str) else output)
    script = directory / f"{name}.py"
    script.write_text(
        "import sys\n"
        f"open({str(directory / (name + '.args'))!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"sys.stdout.buffer.write(open({str(data)!r}, 'rb').read())\n"
        f"sys.stderr.write('failure from {name}\\n' if {status} else '')\n"
        f"sys.exit({status})\n"
    )
    return (sys.executable, str(script))
