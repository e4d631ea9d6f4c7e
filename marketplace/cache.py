"""The Redis cache, failing open: when Redis cannot be reached, pages and the API keep serving instead of failing
with a 500 on the first throttle counter or one-time form token they touch.

What the cache holds here is protective or advisory — API throttle counters, one-time submission tokens, a close
request's marker, reconciliation previews — and each has a database-backed guard behind it (unique keys,
conditional updates, idempotent services). So a read that cannot reach Redis answers "nothing cached", a write is
dropped, and `add` answers "added": during the outage throttling and double-submit suppression are off, every
request is still served, and every failure is logged (`cache.unavailable`, at most once per operation and 10 s
per process so an outage does not flood the log). `incr`/`decr` still raise (their callers already handle a
missing counter).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)
LOG_EVERY_SECONDS = 10.0


class ResilientRedisCache(RedisCache):
    _last_logged: dict[str, float] = {}

    def _unavailable(self, operation: str, error: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_logged.get(operation, 0.0) >= LOG_EVERY_SECONDS:
            self._last_logged[operation] = now
            detail = f"{type(error).__name__}: {error}"
            logger.error("cache.unavailable", extra={"operation": operation, "error": detail})

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        try:
            return super().get(key, default, version)
        except UNREACHABLE as error:
            self._unavailable("get", error)
            return default

    def get_many(self, keys: Any, version: int | None = None) -> dict:
        try:
            return super().get_many(keys, version)
        except UNREACHABLE as error:
            self._unavailable("get_many", error)
            return {}

    def has_key(self, key: Any, version: int | None = None) -> bool:
        try:
            return super().has_key(key, version)
        except UNREACHABLE as error:
            self._unavailable("has_key", error)
            return False

    def add(self, key: Any, value: Any, timeout: Any = 300, version: int | None = None) -> bool:
        try:
            return super().add(key, value, timeout, version)
        except UNREACHABLE as error:
            self._unavailable("add", error)
            return True

    def set(self, key: Any, value: Any, timeout: Any = 300, version: int | None = None) -> None:
        try:
            super().set(key, value, timeout, version)
        except UNREACHABLE as error:
            self._unavailable("set", error)

    def set_many(self, data: dict, timeout: Any = 300, version: int | None = None) -> list:
        try:
            return super().set_many(data, timeout, version)
        except UNREACHABLE as error:
            self._unavailable("set_many", error)
            return list(data)

    def touch(self, key: Any, timeout: Any = 300, version: int | None = None) -> bool:
        try:
            return super().touch(key, timeout, version)
        except UNREACHABLE as error:
            self._unavailable("touch", error)
            return False

    def delete(self, key: Any, version: int | None = None) -> bool:
        try:
            return super().delete(key, version)
        except UNREACHABLE as error:
            self._unavailable("delete", error)
            return False

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        try:
            super().delete_many(keys, version)
        except UNREACHABLE as error:
            self._unavailable("delete_many", error)
