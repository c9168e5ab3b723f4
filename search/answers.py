"""Answers shoppers ask for again (a search, a product list, a product's similar items: the API's
bodies and the storefront's result pages) kept in the shared cache (Redis), so that the same request
is answered without ranking or reading the catalog again.

An answer is stored under a key made of the catalog's version (``catalog.selectors.catalog_version``:
a random UUID, new with each committed transaction that changed products, stock, photos, vectors,
categories or spaces, kept by database triggers), the models that answer searches, the release of the code (a digest
of its source, or ``SHOP_RELEASE``), and the request's full URL (host included: answers hold absolute
links). A committed change gives every later request a new key, so an answer is never older than the
catalog it is read from; entries of earlier versions expire after ``SHOP_ANSWER_CACHE_S`` seconds
(0 switches the cache off).

Callers share only answers that are the same for every shopper (never a staff member's), and nothing
is cached from inside a transaction, which may see its own uncommitted writes. An error raised while
an answer is computed is not cached."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import caches
from django.db import connections

from catalog import selectors as catalog_selectors
from search.services import models_served

T = TypeVar("T")

SOURCE_DIRS = ("api", "catalog", "lifecycle", "search", "shop", "staff", "templates", "vision", "workers")
SOURCE_SUFFIXES = (".py", ".html", ".json", ".txt")


@functools.cache
def release_id() -> str:
    """``SHOP_RELEASE`` when set (an image tag, a commit), else 16 hex digits of SHA-256 over the path
    and bytes of every source file answers come from (modules, templates, the tuned weights)."""
    given = os.environ.get("SHOP_RELEASE", "").strip()
    if given:
        return given
    digest = hashlib.sha256()
    for name in SOURCE_DIRS:
        for path in sorted((settings.BASE_DIR / name).rglob("*")):
            if path.suffix in SOURCE_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(settings.BASE_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def answer_key(kind: str, url: str) -> str | None:
    """The shared key of the answer of ``kind`` ("api", "page") to ``url`` now, or None when answers
    are not to be shared now (the cache is off, or a transaction is open)."""
    if settings.SHOP_ANSWER_CACHE_S <= 0:
        return None
    if connections[settings.SEARCH_DB_ALIAS].in_atomic_block or connections["default"].in_atomic_block:
        return None
    served = json.dumps(models_served(), sort_keys=True)
    what = "\n".join((kind, release_id(), catalog_selectors.catalog_version(), served, url))
    return f"answer:{kind}:" + hashlib.sha256(what.encode()).hexdigest()


def answer_cached(key: str | None, compute: Callable[[], T]) -> T:
    """The answer stored under ``key``, else ``compute()`` (stored under ``key`` unless it is None)."""
    if key is None:
        return compute()
    cache = caches[settings.SHOP_ANSWER_CACHE]
    answer = cache.get(key)
    if answer is None:
        answer = compute()
        cache.set(key, answer, settings.SHOP_ANSWER_CACHE_S)
    return answer
