"""Collectors: how the agent sees one kind of host (simulated, bare `nvidia-smi`, a Slurm cluster)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from marketplace.agent.collectors.base import Collector, CollectorError, DeviceAssignments, decode_output, run_command
from marketplace.agent.collectors.nvidia_smi import NvidiaSmiCollector, parse_query_gpu
from marketplace.agent.collectors.simulated import SimulatedCollector
from marketplace.agent.collectors.slurm import SacctJob, SacctOutput, SlurmCollector, parse_sacct
from marketplace.agent.config import AgentConfig

COLLECTOR_CLASSES: dict[str, type[Collector]] = {
    SimulatedCollector.kind: SimulatedCollector,
    NvidiaSmiCollector.kind: NvidiaSmiCollector,
    SlurmCollector.kind: SlurmCollector,
}


def make_collector(config: AgentConfig, state: dict[str, Any], clock: Callable[[], datetime]) -> Collector:
    """The collector the config names, sharing `state` (persisted by the agent) and the agent's clock."""
    return COLLECTOR_CLASSES[config.collector](config, state, clock)


__all__ = [
    "COLLECTOR_CLASSES",
    "Collector",
    "CollectorError",
    "DeviceAssignments",
    "NvidiaSmiCollector",
    "SacctJob",
    "SacctOutput",
    "SimulatedCollector",
    "SlurmCollector",
    "decode_output",
    "make_collector",
    "parse_query_gpu",
    "parse_sacct",
    "run_command",
]
