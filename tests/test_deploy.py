"""Production mode: the deployment checks pass cleanly and unsafe settings refuse to start."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY"}}
    return subprocess.run(  # noqa: S603 (fixed argv)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "ALLOWED_HOSTS": "compute.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/computenet",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def test_check_deploy_is_clean_in_production_mode():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=secrets.token_urlsafe(64), **PRODUCTION_ENV
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_refuses_a_missing_secret_key():
    result = _manage("check", **PRODUCTION_ENV)

    assert result.returncode != 0
    assert "SECRET_KEY must be set to a random value of at least 50 characters in production" in result.stderr


def test_a_malformed_setting_stops_the_process_with_its_name():
    result = _manage("check", PLATFORM_FEE_RATE="ten percent")

    assert result.returncode != 0
    assert "PLATFORM_FEE_RATE must be a decimal number, got 'ten percent'" in result.stderr


def test_a_database_url_of_another_engine_is_refused():
    result = _manage("check", DATABASE_URL="sqlite:///db.sqlite3")

    assert result.returncode != 0
    assert "DATABASE_URL must start with one of postgres://, postgresql://" in result.stderr
