"""The models a process serves with, as the registry says: loaded once per process per version.

* :func:`parser_serving` — the active garment parser (a trained checkpoint or the fallback);
* :func:`embedder_for_space` — the embedder that wrote a given embedding space: a query is always
  encoded by the model of the space it is compared with (checked, not assumed);
* :func:`embedders_writing` — what the pipeline writes: the active space and, while a new embedder
  fills its space, that one too.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass

from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace
from lifecycle import selectors
from lifecycle.models import ModelKind, ModelVersion
from vision.clip import Embedder, load_embedder
from vision.parser import Parser, parser_at

logger = logging.getLogger(__name__)

_lock = threading.Lock()


class ModelMismatch(RuntimeError):
    """The loaded model is not the one that wrote the space (never compare across spaces)."""


def _spec(row: ModelVersion) -> tuple[str, str | None]:
    if row.card.get("hub_model"):
        return str(row.card["hub_model"]), row.card.get("pretrained") or None
    return f"local-dir:{row.location}", None


@functools.lru_cache(maxsize=3)
def _embedder_loaded(spec: str, pretrained: str | None) -> Embedder:
    return load_embedder(spec, pretrained)


def embedder_of(row: ModelVersion) -> Embedder:
    spec, pretrained = _spec(row)
    with _lock:  # one load per process, however many request threads ask at once
        return _embedder_loaded(spec, pretrained)


def embedder_for_space(space: EmbeddingSpace) -> Embedder:
    """The embedder of ``space`` (the registry's version of the same name)."""
    row = selectors.version_get(ModelKind.EMBEDDER, space.name)
    if row is None:
        raise ModelMismatch(f"no registered embedder wrote space {space.name!r}; run `manage.py models status`")
    emb = embedder_of(row)
    # spaces name their model by version (before the registry: by its open_clip name)
    if space.model_name not in (emb.version[:120], emb.name) or emb.dim != space.dim:
        raise ModelMismatch(
            f"space {space.name!r} was written by {space.model_name} ({space.dim}-d), the loaded model is "
            f"{emb.name} ({emb.dim}-d)"
        )
    return emb


def embedder_trained(space: EmbeddingSpace) -> bool:
    """Whether the space's text and image vectors share one space (False for the untrained bootstrap
    embedder: text search must not compare a query's text vector with its image vectors)."""
    row = selectors.version_get(ModelKind.EMBEDDER, space.name)
    return bool(row and row.card.get("trained", True) and not row.fallback)


@dataclass(frozen=True)
class Writing:
    space: EmbeddingSpace
    embedder: Embedder
    version: ModelVersion


def embedders_writing() -> list[Writing]:
    """The spaces the pipeline writes (active first, then the filling one), each with its model."""
    from lifecycle.services import models_ensure

    models_ensure()
    out = []
    for row in (selectors.version_active(ModelKind.EMBEDDER), selectors.version_filling()):
        if row is None:
            continue
        space = catalog_selectors.embedding_space_get(row.version)
        if space is None:
            continue
        out.append(Writing(space, embedder_for_space(space), row))
    return out


def parser_serving() -> tuple[Parser, ModelVersion]:
    """The active garment parser (trained or fallback) and its registry row."""
    from lifecycle.services import models_ensure

    row = selectors.version_active(ModelKind.PARSER) or models_ensure()[ModelKind.PARSER]
    with _lock:
        return parser_at(row.location), row


def serving_preload() -> float:
    """Load the active parser and embedder (and the filling one) before the process takes traffic;
    returns the seconds it took. A failure is logged, never raised: the process still starts."""
    started = time.perf_counter()
    try:
        parser_serving()
        for writing in embedders_writing():
            writing.embedder.encode_texts(["warm up"])  # first call builds the tokenizer's caches
    except Exception:
        logger.exception("models not preloaded; the first request loads them")
    seconds = time.perf_counter() - started
    logger.info("models loaded in %.1f s", seconds)
    return seconds


def serving_caches_clear() -> None:
    _embedder_loaded.cache_clear()
    parser_at.cache_clear()
