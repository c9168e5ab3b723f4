"""Search: text queries over image vectors, product-text vectors and keywords, fused; photo
queries through the garment parser. Used by the storefront, the API and ``evaluate search``.

Signals for a text query (each can be asked for alone):

* ``image`` – the query's text vector against the products' image vectors (CLIP-style: the
  pictures alone, no titles or descriptions);
* ``text`` – the query's text vector against the products' text vectors (title, description,
  attributes);
* ``keyword`` – PostgreSQL full-text search over title, description, colour, pattern, category.

``hybrid`` fuses the lists by reciprocal-rank fusion (RRF, k = 60).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connections
from PIL import Image

from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace

logger = logging.getLogger(__name__)

SIGNALS = ("image", "text", "keyword")
RRF_K = 60


@dataclass
class Hit:
    product_id: int
    score: float
    signals: dict[str, int] = field(default_factory=dict)  # signal -> rank (1-based)


def _space() -> EmbeddingSpace | None:
    return catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)


def encode_query_text(text: str) -> np.ndarray:
    from vision.clip import embedder

    return embedder().encode_texts([text])[0]


def vector_signal(vector: Sequence[float], kind: str, limit: int) -> list[Hit]:
    space = _space()
    if space is None:
        return []
    hits = catalog_selectors.vector_nearest(
        table="product", space=space, kind=kind, query=list(vector), k=limit, ef_search=max(100, limit)
    )
    return [Hit(h.owner_id, 1.0 - h.distance, {kind: rank}) for rank, h in enumerate(hits, start=1)]


def keyword_signal(query: str, limit: int) -> list[Hit]:
    sql = """
        SELECT p.id, ts_rank_cd(doc, q) AS rank
        FROM catalog_product p
        LEFT JOIN catalog_category c ON c.id = p.category_id,
        LATERAL to_tsvector('english', concat_ws(' ', p.title, p.description, p.colour, p.pattern, c.full_name)) doc,
        LATERAL websearch_to_tsquery('english', %s) q
        WHERE p.is_active AND doc @@ q
        ORDER BY rank DESC, p.id
        LIMIT %s
    """
    # Every word optional (OR), so that "black striped dress" still finds black dresses.
    words = " OR ".join(w for w in query.replace('"', " ").split() if w)
    if not words:
        return []
    with connections[settings.SEARCH_DB_ALIAS].cursor() as cursor:
        cursor.execute(sql, [words, limit])
        rows = cursor.fetchall()
    return [Hit(pid, float(score), {"keyword": rank}) for rank, (pid, score) in enumerate(rows, start=1)]


def fuse(lists: dict[str, list[Hit]], limit: int) -> list[Hit]:
    """Reciprocal-rank fusion of several ranked lists."""
    fused: dict[int, Hit] = {}
    for name, hits in lists.items():
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.product_id, Hit(hit.product_id, 0.0))
            entry.score += 1.0 / (RRF_K + rank)
            entry.signals[name] = rank
    return sorted(fused.values(), key=lambda h: (-h.score, h.product_id))[:limit]


def search_text(query: str, *, signals: Sequence[str] = SIGNALS, limit: int = 50) -> list[Hit]:
    """Ranked products for a text query, by the given signals (one signal = that list alone)."""
    query = query.strip()
    if not query:
        return []
    unknown = set(signals) - set(SIGNALS)
    if unknown:
        raise ValueError(f"unknown signal(s) {sorted(unknown)}; choose from {SIGNALS}")
    pool = max(limit, 100)
    lists: dict[str, list[Hit]] = {}
    vector = encode_query_text(query) if {"image", "text"} & set(signals) else None
    for signal in signals:
        if signal == "keyword":
            lists[signal] = keyword_signal(query, pool)
        else:
            lists[signal] = vector_signal(vector, signal, pool)  # type: ignore[arg-type]
    if len(lists) == 1:
        return next(iter(lists.values()))[:limit]
    return fuse(lists, limit)


@dataclass
class GarmentResult:
    label: str
    box: tuple[int, int, int, int]
    hits: list[Hit]


# Which garment a photo shows can only be one of a product's kind: a skirt in a street photo is
# not looked for among tops. Parser classes that may stand for one another:
COMPATIBLE_GARMENTS: dict[str, frozenset[str]] = {
    "top": frozenset({"top", "outerwear", "dress"}),
    "outerwear": frozenset({"top", "outerwear", "dress"}),
    "dress": frozenset({"top", "outerwear", "dress", "bottom"}),
    "bottom": frozenset({"bottom", "dress"}),
    "footwear": frozenset({"footwear"}),
    "bag": frozenset({"bag"}),
    "accessory": frozenset({"accessory"}),
}


def search_photo(image: Image.Image, *, limit: int = 20) -> list[GarmentResult]:
    """A shopper's photo → each garment the parser finds → products of a compatible kind (by the
    garment class the parser found in the products' own photos) that look like it."""
    from vision.clip import embedder
    from vision.parser import cutout, garment_parser

    parsed = garment_parser().parse(image.convert("RGB"))
    garments = [g for g in parsed.garments if g.label not in {"background", "skin", "hair"}]
    if not garments:
        return []
    vectors = embedder().encode_images([cutout(image, g.mask) for g in garments])
    results = []
    for garment, vector in zip(garments, vectors, strict=True):
        hits = vector_signal(vector, "image", limit * 4)
        kinds = catalog_selectors.product_garment_classes([h.product_id for h in hits])
        allowed = COMPATIBLE_GARMENTS.get(garment.label)
        if allowed is not None:
            hits = [h for h in hits if kinds.get(h.product_id) in allowed or h.product_id not in kinds]
        box = tuple(int(v) for v in garment.box)
        results.append(GarmentResult(garment.label, box, hits[:limit]))  # type: ignore[arg-type]
    return results


def merge_garment_results(results: list[GarmentResult], limit: int) -> list[Hit]:
    """One list for a whole photo: each product's best similarity over the garments."""
    best: dict[int, Hit] = {}
    for result in results:
        for hit in result.hits:
            if hit.product_id not in best or hit.score > best[hit.product_id].score:
                best[hit.product_id] = Hit(hit.product_id, hit.score, {result.label: hit.signals.get("image", 0)})
    return sorted(best.values(), key=lambda h: (-h.score, h.product_id))[:limit]
