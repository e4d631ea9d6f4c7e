"""The agent's version, sent in every heartbeat."""

VERSION = "0.1.0"
