"""Agent configuration: a TOML file, then `AGENT_*` environment overrides, validated into one frozen object.

Every problem is reported as a `ConfigError` whose message is one line naming the file and the key, so the CLI can
print it and exit 2 without a traceback.

Example file (every key but `server_url` and `token` has a default)::

    server_url = "https://market.example.org"
    token = "agt_..."
    name = "lakeside-node3"
    collector = "nvidia-smi"        # simulated | nvidia-smi | slurm
    interval = 60                   # seconds between loop iterations
    state_dir = "/var/lib/marketplace-agent"   # relative paths are relative to this file
    batch_size = 1000               # usage records per upload (at most 5000)

    [nvidia_smi]
    command = "nvidia-smi"

    [slurm]
    sacct_command = "sacct"
    timezone = "Europe/Berlin"      # sacct prints local times without an offset
    partition = "h100"
    provision_command = ["sacctmgr", "-i", "add", "account", "{account}"]
    release_command = ["sacctmgr", "-i", "delete", "account", "{account}"]

    [simulated]
    devices = 8
    model = "NVIDIA H100 80GB HBM3"
    seed = 1
    backfill_hours = 6
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

COLLECTORS = ("simulated", "nvidia-smi", "slurm")
MAX_BATCH_SIZE = 5000  # the server's limit per usage request (API.md)

# Names end up in record ids, log lines and file names: keep them to characters that are safe in all three.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# Placeholders a provision/release command may use; each is agent-derived or validated, never free text.
COMMAND_PLACEHOLDERS = frozenset({"account", "booking", "devices", "partition"})

ENVIRONMENT = {
    "AGENT_SERVER_URL": "server_url",
    "AGENT_TOKEN": "token",
    "AGENT_NAME": "name",
    "AGENT_COLLECTOR": "collector",
    "AGENT_INTERVAL": "interval",
    "AGENT_STATE_DIR": "state_dir",
    "AGENT_BATCH_SIZE": "batch_size",
}


class ConfigError(Exception):
    """A configuration problem, phrased for the person who wrote the file."""


@dataclass(frozen=True)
class NvidiaSmiConfig:
    command: tuple[str, ...] = ("nvidia-smi",)
    timeout: float = 30.0


@dataclass(frozen=True)
class SlurmConfig:
    sacct_command: tuple[str, ...] = ("sacct",)
    timezone: str = "UTC"
    partition: str | None = None
    provision_command: tuple[str, ...] | None = None
    release_command: tuple[str, ...] | None = None
    timeout: float = 60.0


@dataclass(frozen=True)
class SimulatedConfig:
    devices: int = 8
    model: str = "NVIDIA H100 80GB HBM3"
    memory_total_mb: int = 81559
    seed: int = 1
    backfill_hours: float = 6.0
    slot_minutes: int = 5


@dataclass(frozen=True)
class AgentConfig:
    """One agent's settings. `api_base` always ends with `/api/v1/`."""

    server_url: str
    token: str = field(repr=False)
    name: str
    collector: str = "simulated"
    interval: float = 60.0
    state_dir: Path = Path()
    batch_size: int = 1000
    hostname: str = ""
    timeout: float = 30.0
    backoff_cap: float = 300.0
    nvidia_smi: NvidiaSmiConfig = field(default_factory=NvidiaSmiConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    simulated: SimulatedConfig = field(default_factory=SimulatedConfig)
    source: str = "environment"

    @property
    def api_base(self) -> str:
        base = self.server_url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        return base + "/"


_TOP_KEYS = {
    "server_url",
    "token",
    "name",
    "collector",
    "interval",
    "state_dir",
    "batch_size",
    "hostname",
    "timeout",
    "backoff_cap",
    "nvidia_smi",
    "slurm",
    "simulated",
}
_SECTION_KEYS = {
    "nvidia_smi": {"command", "timeout"},
    "slurm": {"sacct_command", "timezone", "partition", "provision_command", "release_command", "timeout"},
    "simulated": {"devices", "model", "memory_total_mb", "seed", "backfill_hours", "slot_minutes"},
}


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> AgentConfig:
    """Read `path` (optional), apply `AGENT_*` overrides from `environ` (default `os.environ`), validate.

    Raises `ConfigError` with a one-line message on any problem; never returns a half-valid config.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source = "environment"
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        source = str(file)
        try:
            with file.open("rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{source}: no such file") from None
        except OSError as error:
            raise ConfigError(f"{source}: cannot read: {error.strerror or error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{source}: not valid TOML: {error}") from None
        base_dir = file.resolve().parent
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_TOP_KEYS))})")

    # Environment values override the file; relative paths from the environment are relative to the working dir.
    state_dir_base = base_dir
    for variable, key in ENVIRONMENT.items():
        value = environ.get(variable, "").strip()
        if value:
            raw[key] = value
            if key == "state_dir":
                state_dir_base = Path.cwd()
    try:
        return _build(raw, source, state_dir_base)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def _build(raw: dict[str, Any], source: str, base_dir: Path) -> AgentConfig:
    server_url = _string(raw, "server_url", required=True, hint="set server_url or AGENT_SERVER_URL")
    parts = urlsplit(server_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"server_url {server_url!r} is not an http(s) URL like https://market.example.org")
    token = _string(raw, "token", required=True, hint="set token or AGENT_TOKEN to the center's agent token")
    if any(character.isspace() for character in token):
        raise ConfigError("token contains whitespace; paste the token exactly as shown once at creation")

    hostname = _string(raw, "hostname") or socket.gethostname()
    name = _string(raw, "name") or hostname.split(".")[0]
    if not _NAME_RE.match(name):
        raise ConfigError(f"name {name!r} must be 1-63 letters, digits, '.', '_' or '-' (it appears in record ids)")
    collector = _string(raw, "collector") or "simulated"
    if collector not in COLLECTORS:
        raise ConfigError(f"collector {collector!r} is unknown; use one of: {', '.join(COLLECTORS)}")

    interval = _number(raw, "interval", 60.0)
    if interval <= 0:
        raise ConfigError(f"interval must be a positive number of seconds, not {raw['interval']!r}")
    batch_size = _integer(raw, "batch_size", 1000)
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
    timeout = _number(raw, "timeout", 30.0)
    if timeout <= 0:
        raise ConfigError("timeout must be a positive number of seconds")
    backoff_cap = _number(raw, "backoff_cap", 300.0)
    if backoff_cap <= 0:
        raise ConfigError("backoff_cap must be a positive number of seconds")

    state_dir_text = _string(raw, "state_dir")
    if state_dir_text:
        state_dir = Path(state_dir_text).expanduser()
        if not state_dir.is_absolute():
            state_dir = base_dir / state_dir
    else:
        state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        state_dir = Path(state_home) / "marketplace-agent" / name

    return AgentConfig(
        server_url=server_url,
        token=token,
        name=name,
        collector=collector,
        interval=interval,
        state_dir=state_dir,
        batch_size=batch_size,
        hostname=hostname,
        timeout=timeout,
        backoff_cap=backoff_cap,
        nvidia_smi=_nvidia_smi(_section(raw, "nvidia_smi")),
        slurm=_slurm(_section(raw, "slurm")),
        simulated=_simulated(_section(raw, "simulated")),
        source=source,
    )


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    section = raw.get(name, {})
    if not isinstance(section, dict):
        raise ConfigError(f"[{name}] must be a table")
    unknown = sorted(set(section) - _SECTION_KEYS[name])
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in [{name}] (known: {', '.join(sorted(_SECTION_KEYS[name]))})")
    return {f"{name}.{key}": value for key, value in section.items()}


def _nvidia_smi(raw: dict[str, Any]) -> NvidiaSmiConfig:
    timeout = _number(raw, "nvidia_smi.timeout", 30.0)
    if timeout <= 0:
        raise ConfigError("nvidia_smi.timeout must be positive")
    return NvidiaSmiConfig(command=_argv(raw, "nvidia_smi.command") or ("nvidia-smi",), timeout=timeout)


def _slurm(raw: dict[str, Any]) -> SlurmConfig:
    timezone = _string(raw, "slurm.timezone") or "UTC"
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"slurm.timezone {timezone!r} is not a known IANA zone like 'Europe/Berlin'") from None
    timeout = _number(raw, "slurm.timeout", 60.0)
    if timeout <= 0:
        raise ConfigError("slurm.timeout must be positive")
    return SlurmConfig(
        sacct_command=_argv(raw, "slurm.sacct_command") or ("sacct",),
        timezone=timezone,
        partition=_string(raw, "slurm.partition"),
        provision_command=_template(raw, "slurm.provision_command"),
        release_command=_template(raw, "slurm.release_command"),
        timeout=timeout,
    )


def _simulated(raw: dict[str, Any]) -> SimulatedConfig:
    devices = _integer(raw, "simulated.devices", 8)
    if not 0 <= devices <= 4096:
        raise ConfigError("simulated.devices must be between 0 and 4096")
    memory = _integer(raw, "simulated.memory_total_mb", 81559)
    if memory <= 0:
        raise ConfigError("simulated.memory_total_mb must be positive")
    backfill = _number(raw, "simulated.backfill_hours", 6.0)
    if backfill < 0:
        raise ConfigError("simulated.backfill_hours must not be negative")
    slot = _integer(raw, "simulated.slot_minutes", 5)
    if slot <= 0 or 1440 % slot:
        raise ConfigError("simulated.slot_minutes must divide a day (1, 5, 15, 60, ...)")
    return SimulatedConfig(
        devices=devices,
        model=_string(raw, "simulated.model") or SimulatedConfig.model,
        memory_total_mb=memory,
        seed=_integer(raw, "simulated.seed", 1),
        backfill_hours=backfill,
        slot_minutes=slot,
    )


def _string(raw: dict[str, Any], key: str, *, required: bool = False, hint: str = "") -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{key.split('.')[-1]} is missing: {hint}")
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value.strip()


def _number(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool):
        raise ConfigError(f"{key} must be a number, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, not {value!r}") from None


def _integer(raw: dict[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool | float):
        raise ConfigError(f"{key} must be a whole number, not {value!r}")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a whole number, not {value!r}") from None


def _argv(raw: dict[str, Any], key: str) -> tuple[str, ...] | None:
    """A command as a list of arguments, or a string split like a shell would (but never run through one)."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as error:
            raise ConfigError(f"{key}: {error}") from None
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        argv = list(value)
    else:
        raise ConfigError(f"{key} must be a string or a list of strings")
    if not argv or not argv[0]:
        raise ConfigError(f"{key} is empty")
    return tuple(argv)


def _template(raw: dict[str, Any], key: str) -> tuple[str, ...] | None:
    argv = _argv(raw, key)
    if argv is None:
        return None
    for argument in argv:
        try:
            fields = [name for _, name, _, _ in string.Formatter().parse(argument) if name is not None]
        except ValueError as error:
            raise ConfigError(f"{key}: {argument!r}: {error}") from None
        for name in fields:
            if name not in COMMAND_PLACEHOLDERS:
                known = ", ".join("{" + placeholder + "}" for placeholder in sorted(COMMAND_PLACEHOLDERS))
                raise ConfigError(f"{key}: unknown placeholder {{{name}}} in {argument!r} (known: {known})")
    return argv
