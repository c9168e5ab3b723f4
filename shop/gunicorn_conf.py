"""gunicorn settings the local stack passes with ``--config``: every web process loads the models the
registry serves (parser, embedder) and builds the search's spelling lexicon and vocabularies before it
accepts its first request, so the first search is as fast as the tenth. ``SHOP_PRELOAD_MODELS=0`` skips it."""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    from django.conf import settings

    if not settings.SHOP_PRELOAD_MODELS:
        return
    from lifecycle.serving import serving_preload

    seconds = serving_preload(queries=True)
    worker.log.info("models loaded in %.1f s before taking requests", seconds)
    from search.services import search_warm

    seconds = search_warm()
    worker.log.info("search warmed (spelling lexicon, catalog vocabularies) in %.1f s", seconds)
