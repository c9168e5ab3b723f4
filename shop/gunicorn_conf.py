"""gunicorn settings the local stack passes with ``--config``: every web process loads the models the
registry serves (parser, embedder) and builds the search's spelling lexicon and vocabularies before it
accepts its first request, so the first search is as fast as the tenth. ``SHOP_PRELOAD_MODELS=0`` skips it.

Memory a request has freed goes back to the operating system: after the warm-up and after every
request, glibc's ``malloc_trim`` returns the free pages of the heap, which a long-running process with
several threads otherwise keeps (measured on the demo: 390 → 328 MB resident after five photo searches;
against a million products, the larger of the two processes 332 → 283 MB proportional; 0.1 ms a call).
And blocks above ``SHOP_WEB_MMAP_THRESHOLD`` bytes (a photo, the parser's activations) are mapped on
their own and unmapped when freed: glibc otherwise raises that threshold to the largest block freed so
far (up to 32 MB), and the heap that then holds a photo's buffers stays fragmented (demo shop, 20 studio
photos and four of 12 megapixels: the larger process 285–335 MB resident in four runs with glibc's own
threshold, 280–282 MB in two with 4 MB fixed; a 12-megapixel photo about 40 ms slower; docs/search.md)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None on a C library without it."""
    return getattr(_libc(), "malloc_trim", None)


def mmap_threshold_fix(size: int) -> bool:
    """Blocks of ``size`` bytes or more are mapped on their own from now on (glibc's ``mallopt``, which
    also stops glibc from raising the threshold itself); 0 leaves glibc's own. True when it was set."""
    mallopt = getattr(_libc(), "mallopt", None)
    if size <= 0 or mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(size)))


def heap_trim() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    heap_trim()


def post_worker_init(worker: Any) -> None:
    from django.conf import settings

    if mmap_threshold_fix(settings.SHOP_WEB_MMAP_THRESHOLD):
        worker.log.info("blocks of %d bytes or more are mapped on their own", settings.SHOP_WEB_MMAP_THRESHOLD)
    if not settings.SHOP_PRELOAD_MODELS:
        return
    from lifecycle.serving import serving_preload

    seconds = serving_preload(queries=True)
    worker.log.info("models loaded in %.1f s before taking requests", seconds)
    from search.services import search_warm

    seconds = search_warm()
    worker.log.info("search warmed (spelling lexicon, catalog vocabularies) in %.1f s", seconds)
    import gc

    gc.collect()  # the warm-up's temporary lists and arrays, then their pages back to the system
    heap_trim()
