"""Facts of the search database that every search reads and that change slowly (the catalog's
vocabularies, sizes, departments, price quantiles): kept per process and read again once they are
``ttl`` seconds old."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings

T = TypeVar("T")

_lock = threading.RLock()  # a fact's load may read another fact
_cache: dict[str, tuple[float, object]] = {}


def catalog_fact(name: str, load: Callable[[], T], ttl: float = 300.0) -> T:
    """``load()`` for the search database, kept for ``ttl`` seconds."""
    key = f"{name}:{settings.SEARCH_DB_ALIAS}"
    with _lock:
        entry = _cache.get(key)
        if entry is None or time.monotonic() - entry[0] > ttl:
            entry = (time.monotonic(), load())
            _cache[key] = entry
        return entry[1]  # type: ignore[return-value]


def catalog_facts_reset() -> None:
    with _lock:
        _cache.clear()
