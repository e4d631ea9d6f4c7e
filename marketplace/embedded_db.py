"""The zero-setup database: an embedded PostgreSQL from the `pgserver` package, kept in `.data/`.

The server is started on first use and left running (cleanup_mode=None) so that the web process, a shell and the
test runner reattach to the same instance instead of paying for a start each time. It listens on a Unix socket
only, inside the data directory, so it never collides with a PostgreSQL already on the machine.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

DATABASE_NAME = "computenet"


def embedded_database(data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine here.
        warnings.simplefilter("ignore")
        import pgserver

        server = pgserver.get_server(data_dir / "pg", cleanup_mode=None)
    socket_dir = str(server.get_postmaster_info().socket_dir)
    _ensure_database(socket_dir)
    return {"NAME": DATABASE_NAME, "USER": "postgres", "PASSWORD": "", "HOST": socket_dir, "PORT": ""}


def _ensure_database(socket_dir: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
