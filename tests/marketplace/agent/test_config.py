"""Configuration: a TOML file, AGENT_* overrides, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.agent.config import ConfigError, load_config

FULL = """
server_url = "https://market.example.org/"
token = "agt_secret"
name = "lakeside-node3"
collector = "slurm"
interval = 30
state_dir = "state"
batch_size = 500

[nvidia_smi]
command = "/usr/bin/nvidia-smi -i 0,1"

[slurm]
sacct_command = ["/opt/slurm/bin/sacct"]
timezone = "Europe/Berlin"
partition = "h100"
provision_command = ["sacctmgr", "-i", "add", "account", "{account}"]

[simulated]
devices = 4
model = "Ascend 910B"
seed = 3
backfill_hours = 2
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_a_full_file_is_read(tmp_path):
    config = load_config(_write(tmp_path, FULL), environ={})

    assert config.server_url == "https://market.example.org/"
    assert config.api_base == "https://market.example.org/api/v1/"
    assert config.token == "agt_secret"
    assert (config.name, config.collector, config.interval, config.batch_size) == ("lakeside-node3", "slurm", 30, 500)
    assert config.state_dir == tmp_path / "state"  # relative to the file
    assert config.nvidia_smi.command == ("/usr/bin/nvidia-smi", "-i", "0,1")
    assert config.slurm.sacct_command == ("/opt/slurm/bin/sacct",)
    assert config.slurm.timezone == "Europe/Berlin"
    assert config.slurm.provision_command == ("sacctmgr", "-i", "add", "account", "{account}")
    assert config.slurm.release_command is None
    assert (config.simulated.devices, config.simulated.model, config.simulated.seed) == (4, "Ascend 910B", 3)
    assert config.simulated.backfill_hours == 2
    assert "agt_secret" not in repr(config)


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    environ = {
        "AGENT_SERVER_URL": "http://127.0.0.1:8000",
        "AGENT_TOKEN": "from-env",
        "AGENT_NAME": "env-agent",
        "AGENT_COLLECTOR": "nvidia-smi",
        "AGENT_INTERVAL": "5.5",
        "AGENT_STATE_DIR": "env-state",
        "AGENT_BATCH_SIZE": "20",
    }

    config = load_config(_write(tmp_path, FULL), environ=environ)

    assert (config.server_url, config.token, config.name, config.collector) == (
        "http://127.0.0.1:8000",
        "from-env",
        "env-agent",
        "nvidia-smi",
    )
    assert (config.interval, config.batch_size) == (5.5, 20)
    assert config.state_dir == tmp_path / "env-state"


def test_environment_alone_is_enough_and_defaults_apply(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    config = load_config(None, environ={"AGENT_SERVER_URL": "http://localhost:8000", "AGENT_TOKEN": "t"})

    assert (config.collector, config.interval, config.batch_size) == ("simulated", 60, 1000)
    assert config.state_dir == tmp_path / "marketplace-agent" / config.name
    assert config.api_base == "http://localhost:8000/api/v1/"


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ('server_url = "http://x"', {}, "token is missing: set token or AGENT_TOKEN"),
        ('token = "t"', {}, "server_url is missing: set server_url or AGENT_SERVER_URL"),
        ('server_url = "ftp://x"\ntoken = "t"', {}, "server_url 'ftp://x' is not an http(s) URL"),
        ('server_url = "market.example.org"\ntoken = "t"', {}, "is not an http(s) URL"),
        ('server_url = "http://x"\ntoken = "t"\ncollector = "k8s"', {}, "collector 'k8s' is unknown; use one of"),
        ('server_url = "http://x"\ntoken = "t"\ninterval = 0', {}, "interval must be a positive number of seconds"),
        ('server_url = "http://x"\ntoken = "t"', {"AGENT_INTERVAL": "-1"}, "interval must be a positive number"),
        ('server_url = "http://x"\ntoken = "t"', {"AGENT_INTERVAL": "soon"}, "interval must be a number"),
        ('server_url = "http://x"\ntoken = "t"\nbatch_size = 6000', {}, "batch_size must be between 1 and 5000"),
        ('server_url = "http://x"\ntoken = "t"\nintervall = 5', {}, "unknown key 'intervall'"),
        ('server_url = "http://x"\ntoken = "t"\nname = "node 3"', {}, "name 'node 3' must be"),
        ('server_url = "http://x"\ntoken = "a b"', {}, "token contains whitespace"),
        ('server_url = "http://x"\ntoken = "t"\n[slurm]\ntimezone = "Mars/Olympus"', {}, "not a known IANA zone"),
        ('server_url = "http://x"\ntoken = "t"\n[slurm]\nrelease_command = ["rm", "{user}"]', {}, "{user}"),
        ('server_url = "http://x"\ntoken = "t"\n[slurm]\nsacct = "x"', {}, "unknown key 'sacct' in [slurm]"),
        ('server_url = "http://x"\ntoken = "t"\n[simulated]\ndevices = "eight"', {}, "must be a whole number"),
        ('server_url = "http://x"\ntoken = = "t"', {}, "not valid TOML"),
    ],
)
def test_mistakes_are_one_clear_line_naming_the_file(tmp_path, text, environ, message):
    path = _write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)

    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", environ={})


def test_the_example_file_shipped_with_the_agent_is_valid():
    example = Path(__file__).resolve().parents[3] / "marketplace" / "agent" / "agent.example.toml"

    config = load_config(example, environ={})

    assert (config.collector, config.name, config.interval) == ("nvidia-smi", "node3", 60)
    assert config.slurm.release_command == ("sacctmgr", "-i", "delete", "account", "{account}")
