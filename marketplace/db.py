"""Database connections across fork(): a child must not use the sockets or the pool it inherits."""

from __future__ import annotations

import os


def forget_inherited_connections() -> None:
    """In a freshly forked process, drop (without closing) the connections and connection pools copied from the
    parent: closing them would end the parent's sessions, and a pool's worker threads do not survive fork. The
    child opens its own on first use."""
    from django.db import connections
    from django.db.backends.postgresql.base import DatabaseWrapper

    for alias in connections:
        connections[alias].connection = None
    DatabaseWrapper._connection_pools.clear()


def install_fork_guard() -> None:
    """Run `forget_inherited_connections` in every child forked from this process: Celery's prefork workers,
    multiprocessing children, a test's forked server."""
    os.register_at_fork(after_in_child=forget_inherited_connections)
