"""The models a process serves with, as the registry says: loaded once per process per version.

* :func:`parser_serving` — the active garment parser (a trained checkpoint or the fallback);
* :func:`embedder_for_space` — the embedder that wrote a given embedding space: a query is always
  encoded by the model of the space it is compared with (checked, not assumed);
* :func:`embedders_writing` — what the pipeline writes: the active space and, while a new embedder
  fills its space, that one too;
* :func:`query_embedder_for_space` and :func:`query_parser` — what answers a shopper's query. With
  ``SHOP_QUERY_RUNTIME=onnx`` (the default) these are the same models exported to ONNX
  (:mod:`vision.onnx_export`) and run by onnxruntime, so that a web process never imports torch; the
  export is made once per model version (by the worker, or by the first web process that needs it, in a
  child process) under ``<models>/serving/``. A model that cannot be exported (a hub CLIP model without
  a Hugging Face tokenizer, the untrained fallback parser) is served by torch, and the log says so.

The pipeline (workers) always runs the torch models: they train and write the catalog's vectors.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace
from lifecycle import selectors
from lifecycle.models import ModelKind, ModelVersion
from vision.assets import models_dir
from vision.onnx_serving import OnnxEmbedder, OnnxParser, QueryEmbedder, export_current, source_fingerprint
from vision.parsing import FALLBACK_PREFIX, Parser, fallback_parser, parser_at

if TYPE_CHECKING:
    from vision.clip import Embedder

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
    from vision.clip import load_embedder

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


# ------------------------------------------------------------------------------------------ queries


def _export_folder(kind: str, location: str) -> Path:
    """Where a model version's ONNX export lives: one folder per model folder (its name and a digest
    of its path), beside the trained models."""
    digest = hashlib.sha1(str(Path(location).resolve()).encode()).hexdigest()[:10]
    return models_dir() / "serving" / kind / f"{Path(location).name}-{digest}"


# models this process found it cannot export (with their weights' fingerprint): not tried again per query
_unexportable: set[tuple[str, str, str]] = set()


def _export_ensure(kind: str, location: str) -> Path | None:
    """The ONNX export of the model in ``location`` (made now when missing or stale), or None when the
    model cannot be exported (the reason is logged once: its queries are then answered by torch). One
    process exports at a time (a file lock); a process without torch exports in a child process."""
    model, out = Path(location), _export_folder(kind, location)
    if export_current(model, out):
        return out
    key = (kind, str(model), repr(source_fingerprint(model)))
    if key in _unexportable:
        return None
    started = time.perf_counter()
    try:
        _export_now(kind, model, out)
    except (ValueError, OSError, subprocess.SubprocessError) as exc:
        _unexportable.add(key)
        logger.warning("%s %s not exported to ONNX (%s): torch answers its queries", kind, model.name, exc)
        return None
    logger.info("%s %s served by onnxruntime (%s, %.1f s)", kind, model.name, out, time.perf_counter() - started)
    return out


def _export_now(kind: str, model: Path, out: Path) -> None:
    import fasteners

    out.parent.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(out) + ".lock"):
        if export_current(model, out):  # another process finished it while this one waited
            return
        if "torch" in sys.modules:  # a worker: export in this process
            from vision import onnx_export

            (onnx_export.export_embedder if kind == "embedder" else onnx_export.export_parser)(model, out)
            return
        done = subprocess.run(
            [sys.executable, "-m", "vision.onnx_export", kind, str(model), str(out)],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        if done.returncode != 0:
            raise ValueError((done.stderr.strip().splitlines() or ["the export printed nothing"])[-1])


# per kind, the model folder whose export this process answers queries with, and that export loaded:
# a model switched out is dropped, not kept beside its successor
_onnx_serving: dict[str, tuple[str, OnnxEmbedder | OnnxParser]] = {}


def _onnx(kind: str, location: str) -> Any:
    """The exported model of ``location`` this process serves queries with (made and loaded once; a
    query after that touches no file), or None when torch answers."""
    if settings.SHOP_QUERY_RUNTIME != "onnx" or location.startswith(FALLBACK_PREFIX):
        return None
    held = _onnx_serving.get(kind)
    if held is not None and held[0] == location:
        return held[1]
    with _lock:
        held = _onnx_serving.get(kind)
        if held is not None and held[0] == location:  # another request thread loaded it meanwhile
            return held[1]
        folder = _export_ensure(kind, location) if Path(location).is_dir() else None
        if folder is None:
            return None
        loader = OnnxEmbedder.load if kind == "embedder" else OnnxParser.load
        _onnx_serving[kind] = (location, loader(folder, threads=max(1, int(settings.SHOP_QUERY_MODEL_THREADS))))
        return _onnx_serving[kind][1]


def query_embedder_for_space(space: EmbeddingSpace) -> QueryEmbedder:
    """What encodes a shopper's words and photo for ``space``: its embedder exported to ONNX, or the
    torch model when ``SHOP_QUERY_RUNTIME=torch`` or the model cannot be exported. Checked like
    :func:`embedder_for_space`: the model that wrote the space, never another."""
    row = selectors.version_get(ModelKind.EMBEDDER, space.name)
    if row is None:
        raise ModelMismatch(f"no registered embedder wrote space {space.name!r}; run `manage.py models status`")
    if row.card.get("hub_model"):
        return embedder_for_space(space)
    emb = _onnx("embedder", row.location)
    if emb is None:
        return embedder_for_space(space)
    if space.model_name not in (emb.version[:120], emb.name) or emb.dim != space.dim:
        raise ModelMismatch(
            f"space {space.name!r} was written by {space.model_name} ({space.dim}-d), the exported model is "
            f"{emb.name} ({emb.dim}-d)"
        )
    return emb


def query_parser() -> Parser:
    """What parses a shopper's photo: the active parser exported to ONNX, else as :func:`parser_serving`."""
    from lifecycle.services import models_ensure

    row = selectors.version_active(ModelKind.PARSER) or models_ensure()[ModelKind.PARSER]
    if row.location.startswith(FALLBACK_PREFIX):
        return fallback_parser(lean=True)
    parser = _onnx("parser", row.location)
    if parser is not None:
        if fallback_parser.cache_info().currsize:  # served until this parser was trained: let it go
            fallback_parser.cache_clear()
        return parser
    return parser_serving()[0]


def serving_export_ensure(row: ModelVersion) -> bool:
    """The version's export for query serving, made when missing (a worker's task); False when the
    version is not served by onnxruntime (a hub model, the fallback parser, ``SHOP_QUERY_RUNTIME=torch``)."""
    if settings.SHOP_QUERY_RUNTIME != "onnx" or row.card.get("hub_model") or row.location.startswith(FALLBACK_PREFIX):
        return False
    if not Path(row.location).is_dir():
        return False
    kind = "parser" if row.kind == ModelKind.PARSER else "embedder"
    with _lock:
        return _export_ensure(kind, row.location) is not None


def serving_preload(queries: bool = False) -> float:
    """Load the active parser and embedder (and the filling one) before the process takes traffic;
    returns the seconds it took. ``queries``: what answers shoppers' queries (a web process), else what
    the pipeline runs (a worker, which also makes the query models' exports). A failure is logged, never
    raised: the process still starts."""
    started = time.perf_counter()
    try:
        if queries:
            query_parser()
            space = catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)
            if space is not None:
                query_embedder_for_space(space).encode_texts(["warm up"])
        else:
            _, row = parser_serving()
            serving_export_ensure(row)  # what the web processes will serve queries with
            for writing in embedders_writing():
                writing.embedder.encode_texts(["warm up"])  # first call builds the tokenizer's caches
                serving_export_ensure(writing.version)
    except Exception:
        logger.exception("models not preloaded; the first request loads them")
    seconds = time.perf_counter() - started
    logger.info("models loaded in %.1f s", seconds)
    return seconds


def serving_caches_clear() -> None:
    _embedder_loaded.cache_clear()
    _onnx_serving.clear()
    parser_at.cache_clear()
