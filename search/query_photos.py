"""Shoppers' query photos: checked like any upload, normalised, kept a while under
``MEDIA_ROOT/queries/<token>.jpg`` (never in the database) so the result page's URL can be shared
and reloaded. Old ones are removed as new ones arrive."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from PIL import Image

from catalog.image_checks import image_check_and_decode
from catalog.selectors import ProductFilters
from search.services import GarmentResult, search_photo

QUERY_DIR = "queries"
KEEP_SECONDS = 24 * 3600
MAX_SIDE = 1600  # larger photos are scaled down before they are kept: the parser needs no more
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


class PhotoNotFound(LookupError):
    """No kept photo has this token (a bad link, or it expired)."""


def _folder() -> Path:
    return Path(settings.MEDIA_ROOT) / QUERY_DIR


def query_photo_path(token: str) -> Path:
    if not TOKEN_RE.match(token):
        raise PhotoNotFound("this photo link is not valid")
    return _folder() / f"{token}.jpg"


def query_photo_store(content: bytes, source_name: str = "", content_type: str = "") -> str:
    """Check and keep a shopper's photo; returns its token. Raises :class:`ImageRejected` with the
    same reasons an upload gets. Nothing is left behind for a refused file."""
    image = image_check_and_decode(content, source_name or "your photo", content_type)
    folder = _folder()
    folder.mkdir(parents=True, exist_ok=True)
    query_photo_prune()
    token = secrets.token_hex(16)
    target = folder / f"{token}.jpg"
    partial = folder / f"{token}.part"
    try:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
        image.save(partial, "JPEG", quality=90)
        partial.replace(target)  # the photo appears whole or not at all
    finally:
        partial.unlink(missing_ok=True)
    return token


def query_photo_open(token: str) -> Image.Image:
    path = query_photo_path(token)
    if not path.is_file():
        raise PhotoNotFound("this photo is no longer kept (photos are kept for a day); upload it again")
    with Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def query_photo_url(token: str) -> str:
    query_photo_path(token)
    return f"{settings.MEDIA_URL}{QUERY_DIR}/{token}.jpg"


def query_photo_prune(max_age_s: int = KEEP_SECONDS) -> int:
    """Remove kept photos older than ``max_age_s``; returns how many."""
    folder = _folder()
    if not folder.is_dir():
        return 0
    cutoff = time.time() - max_age_s
    removed = 0
    for path in folder.iterdir():
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


RESULTS_CACHE_SECONDS = 120


def query_photo_search(token: str, filters: ProductFilters | None, limit: int) -> list[GarmentResult]:
    """The garments found on a kept photo and the products for each, as ``search_photo`` gives them;
    kept in the cache for a short while so that picking a garment, reloading or going back does not
    parse and embed the same photo again."""
    key = "photo-search:" + hashlib.sha1(f"{token}|{filters!r}|{limit}".encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached
    results = search_photo(query_photo_open(token), limit=limit, filters=filters)
    cache.set(key, results, RESULTS_CACHE_SECONDS)
    return results
