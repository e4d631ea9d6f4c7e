"""`python -m marketplace.agent`: run one or several center agents until SIGTERM/SIGINT, or once with `--once`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from marketplace.agent.config import ENVIRONMENT, AgentConfig, ConfigError, load_config
from marketplace.agent.runner import Agent
from marketplace.agent.spool import StateDirBusy
from marketplace.agent.version import VERSION

logger = logging.getLogger("marketplace.agent")

EXIT_OK, EXIT_UNREACHABLE, EXIT_CONFIG = 0, 1, 2
# After a stop signal, how long a step in flight (an HTTP request, a collector command) may take to finish.
# Every write is atomic, so abandoning a step after this costs at most a repeat of it on the next start.
STOP_GRACE_SECONDS = 5.0

DESCRIPTION = """\
The reference center agent of the AI computing network. Next to a center's scheduler it sends heartbeats with
the host's devices, provisions and releases booked capacity, and reports metered usage to the marketplace.
It needs only the Python standard library."""

EPILOG = f"""\
configuration:
  A TOML file (--config) and/or environment variables; the environment wins. Keys:
    server_url   marketplace base URL, e.g. https://market.example.org       (required)
    token        the center's API token with the 'agent' scope               (required)
    name         agent name, unique per center (default: short host name); appears in record ids
    collector    simulated | nvidia-smi | slurm                             (default: simulated)
    interval     seconds between iterations                                  (default: 60)
    state_dir    spool and state (default: $XDG_STATE_HOME/marketplace-agent/<name>); relative to the file
    batch_size   usage records per upload, 1-5000                            (default: 1000)
    hostname     host name reported in heartbeats                            (default: this host's)
    timeout      HTTP timeout in seconds (default: 30); backoff_cap: longest retry wait (default: 300)
    [nvidia_smi] command = "nvidia-smi"
    [slurm]      sacct_command = "sacct", timezone = "UTC" (sacct prints local times), partition = "...",
                 provision_command / release_command = ["sacctmgr", "-i", "add", "account", "{{account}}"]
                 (argv lists, no shell; placeholders {{account}} {{booking}} {{devices}} {{partition}})
    [simulated]  devices = 8, model = "NVIDIA H100 80GB HBM3", seed = 1, backfill_hours = 6, slot_minutes = 5
  Environment overrides: {", ".join(ENVIRONMENT)}.
  A commented example: marketplace/agent/agent.example.toml.

state dir:
  agent.lock (held while running), state.json (allocations, cursors, collector state), spool/seg-*.jsonl
  (usage not yet accepted by the server), rejected.jsonl (records the server rejected, with code and detail).

behaviour:
  Each iteration: heartbeat, provision/release allocations and report them, collect usage into the spool,
  upload the spool in batches. Usage is spooled before it is sent and kept until the server answers, so an
  outage loses nothing and a resend is counted once. Failures back off exponentially with jitter (honouring
  Retry-After). SIGTERM or SIGINT stops cleanly after the current step.

exit status:
  0  stopped by a signal, or --once succeeded
  1  --once could not complete its server steps (unreachable, refused)
  2  bad configuration, or the state dir is in use by another agent
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m marketplace.agent",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="PATH",
        help="agent configuration file (TOML); repeat to run several agents in this process, one thread each",
    )
    parser.add_argument("--once", action="store_true", help="run one iteration per agent and exit")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default: INFO)",
    )
    parser.add_argument("--version", action="version", version=f"marketplace-agent {VERSION}")
    return parser


def load_configs(paths: Sequence[str]) -> list[AgentConfig]:
    """Every config, checked for clashes: agents in one process need distinct names and state dirs."""
    configs = [load_config(path) for path in paths] if paths else [load_config(None)]
    names: dict[str, str] = {}
    dirs: dict[str, str] = {}
    for config in configs:
        if config.name in names:
            raise ConfigError(f"{config.source}: agent name {config.name!r} is also used by {names[config.name]}")
        state_dir = str(config.state_dir.resolve())
        if state_dir in dirs:
            raise ConfigError(f"{config.source}: state_dir {state_dir} is also used by {dirs[state_dir]}")
        names[config.name] = dirs[state_dir] = config.source
    return configs


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z"
    )
    try:
        configs = load_configs(args.config)
    except ConfigError as error:
        print(f"marketplace-agent: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG

    agents: list[Agent] = []
    try:
        for config in configs:
            agents.append(Agent(config))
    except (StateDirBusy, OSError) as error:
        for agent in agents:
            agent.close()
        print(f"marketplace-agent: cannot start {config.name}: {error}", file=sys.stderr)
        return EXIT_CONFIG

    stop = threading.Event()
    _install_signal_handlers(stop)
    if args.once:
        return _run_once(agents, stop)
    threads = [
        threading.Thread(target=agent.run, args=(stop,), name=f"agent-{agent.config.name}", daemon=True)
        for agent in agents
    ]
    for thread in threads:
        thread.start()
    while not stop.is_set() and any(thread.is_alive() for thread in threads):
        stop.wait(0.5)
    stop.set()
    _join(threads)
    return EXIT_OK


def _run_once(agents: list[Agent], stop: threading.Event) -> int:
    outcomes: dict[str, bool] = {}

    def once(agent: Agent) -> None:
        try:
            result = agent.run_once(stop)
            outcomes[agent.config.name] = result.ok
            if not result.ok:
                agent.log.error("iteration incomplete (spooled=%d): %s", result.spooled, result.error)
        except Exception:
            agent.log.exception("iteration failed unexpectedly")
            outcomes[agent.config.name] = False
        finally:
            agent.close()

    threads = [threading.Thread(target=once, args=(agent,), name=f"agent-{agent.config.name}") for agent in agents]
    for thread in threads:
        thread.daemon = True
        thread.start()
    while not stop.is_set() and any(thread.is_alive() for thread in threads):
        stop.wait(0.2)
    _join(threads)
    ok = all(outcomes.get(agent.config.name) for agent in agents)
    return EXIT_OK if ok else EXIT_UNREACHABLE


def _join(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        logger.warning("abandoning a step in flight in %s; its state on disk is consistent", ", ".join(stuck))


def _install_signal_handlers(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # embedded use: whoever owns the main thread owns the signals

    def handle(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            logger.info("stopping on %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
