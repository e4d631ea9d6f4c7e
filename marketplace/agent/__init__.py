"""The reference center agent: runs next to a center's scheduler, reports devices and usage, provisions bookings.

Standard library only: it must run on a center's host where neither Django nor Celery is installed.

In-process use (tests, the demo)::

    config = load_config("agent.toml")            # or AgentConfig(...)
    with Agent(config) as agent:                  # locks the state dir
        result = agent.run_once()                 # one iteration; result.ok, result.accepted, ...

    stop = threading.Event()
    threading.Thread(target=run, args=(config, stop)).start()   # loops until stop.set()

Command line: `python -m marketplace.agent --help`.
"""

from marketplace.agent.config import AgentConfig, ConfigError, load_config
from marketplace.agent.runner import Agent, IterationResult, run
from marketplace.agent.version import VERSION

__version__ = VERSION

__all__ = ["Agent", "AgentConfig", "ConfigError", "IterationResult", "__version__", "load_config", "run"]
