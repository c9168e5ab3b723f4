"""What the shop answers while a dependency is down (the fault policy in docs/production.md).

* PostgreSQL: every page answers ``503`` with ``Retry-After`` and a page that needs no database
  (:func:`server_error_page`, Django's ``handler500``); the API answers ``503 service_unavailable`` in its
  own JSON body (``api.errors.server_error_response``). Both recover by themselves: Django opens a new
  connection for the next request.
* Redis as a cache (the API's throttle counts): :class:`FailOpenRedisCache` serves from a per-process
  memory cache while Redis does not answer, logged and counted, and goes back to Redis once it answers.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from typing import Any

import redis
from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader

logger = logging.getLogger(__name__)

REDIS_RETRY_S = 5.0  # a cache that found Redis down tries it again after this long
LOG_EVERY_S = 60.0

# per-process counts of operations a fail-open cache served from memory, by cache alias, and when each
# alias last logged (Django makes a cache object per thread; these are shared by the process's threads)
fail_open_counts: Counter[str] = Counter()
_logged_at: dict[str, float] = {}
_log_lock = threading.Lock()


def database_down(exc: BaseException | None) -> bool:
    """Whether ``exc`` says the database cannot be reached or stopped answering (Django wraps the
    driver's connection errors, a server shutting down and a cancelled statement in these)."""
    return isinstance(exc, OperationalError | InterfaceError)


def server_error_page(request: HttpRequest) -> HttpResponse:
    """Django's ``handler500`` for pages: ``503`` with ``Retry-After`` and a page that reads nothing from
    the database while the database is down; the shop's 500 page otherwise. (Django calls it while
    handling the exception, so the exception is the one being handled here.)"""
    exc = sys.exc_info()[1]
    if database_down(exc):
        logger.warning("database down: %s %s answered 503 (%s)", request.method, request.path, exc)
        response = HttpResponse(loader.render_to_string("503.html"), status=503)
        response["Retry-After"] = str(settings.SHOP_RETRY_AFTER_S)
        return response
    return HttpResponse(loader.render_to_string("500.html"), status=500)


class FailOpenRedisCache(RedisCache):
    """Django's Redis cache that never fails a request because Redis is down: while Redis does not
    answer, each operation is served from a memory cache of this process (counts shared by fewer
    processes, so a rate limit is per process for that while), logged once a minute with the count;
    Redis is tried again every ``REDIS_RETRY_S`` seconds, and used again as soon as it answers."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        options = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0, **params.get("OPTIONS", {})}
        super().__init__(server, {**params, "OPTIONS": options})
        self._alias = str(params.get("KEY_PREFIX") or server)
        # one memory per alias and process (a LocMemCache's name is its storage), whichever thread asks
        self._memory = LocMemCache(f"fail-open-{self._alias}", {"TIMEOUT": params.get("TIMEOUT", 300)})
        self._down_until = 0.0  # this thread's object tries Redis again after this moment

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() >= self._down_until:
            try:
                return getattr(super(), name)(*args, **kwargs)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                self._down_until = time.monotonic() + REDIS_RETRY_S
                self._note(f"Redis is not answering ({exc})")
        fail_open_counts[self._alias] += 1
        self._note("")
        return getattr(self._memory, name)(*args, **kwargs)

    def _note(self, reason: str) -> None:
        now = time.monotonic()
        with _log_lock:
            if now - _logged_at.get(self._alias, -LOG_EVERY_S) < LOG_EVERY_S:
                return
            _logged_at[self._alias] = now
        logger.warning(
            "cache %s: served from this process's memory (%d operations so far)%s",
            self._alias,
            fail_open_counts[self._alias],
            f": {reason}" if reason else "",
        )

    def memory_clear(self) -> None:
        """Forget what was counted in this process's memory while Redis was down."""
        self._memory.clear()

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._call("add", key, value, timeout, version)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._call("get", key, default, version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._call("set", key, value, timeout, version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._call("touch", key, timeout, version)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._call("delete", key, version)

    def get_many(self, keys: Any, version: int | None = None) -> dict[Any, Any]:
        return self._call("get_many", keys, version)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._call("has_key", key, version)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self._call("incr", key, delta, version)

    def set_many(self, data: dict[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> list[Any]:
        return self._call("set_many", data, timeout, version)

    def delete_many(self, keys: Any, version: int | None = None) -> None:
        self._call("delete_many", keys, version)

    def clear(self) -> None:
        self._call("clear")
