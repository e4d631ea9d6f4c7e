"""Typed readers for settings from the environment.

Each helper fails loudly with ImproperlyConfigured on a value it cannot read, so a typo in a deployment's
environment stops the process at start instead of surfacing later as odd behaviour.
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false/1/0), got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


def env_decimal(name: str, default: str, *, minimum: str | None = None, maximum: str | None = None) -> Decimal:
    value = os.environ.get(name)
    raw = default if value is None or value.strip() == "" else value.strip()
    try:
        number = Decimal(raw)
    except InvalidOperation as exc:
        raise ImproperlyConfigured(f"{name} must be a decimal number, got {raw!r}") from exc
    if not number.is_finite():
        raise ImproperlyConfigured(f"{name} must be a finite decimal number, got {raw!r}")
    if minimum is not None and number < Decimal(minimum):
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {raw}")
    if maximum is not None and number > Decimal(maximum):
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {raw}")
    return number


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_url(name: str, *, schemes: tuple[str, ...]) -> str | None:
    """A URL whose scheme must be one of `schemes`; None when unset or empty."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        allowed = ", ".join(f"{s}://" for s in schemes)
        raise ImproperlyConfigured(f"{name} must start with one of {allowed}; got {value.split('://')[0]!r}")
    return value
