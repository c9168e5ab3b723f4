"""Similar items for any product, and in-stock alternatives for an out-of-stock one.

Candidates: the product's nearest products by image vector and by text vector (HNSW), plus every
product of the same design. Each candidate is scored

    score = W_LOOK · image similarity + W_TEXT · text similarity + W_PRICE · price closeness
            + W_CATEGORY · (same category, or 0.5 · same parent category) + W_DESIGN · same design

and the list is picked by maximal marginal relevance (MMR, λ = ``MMR_LAMBDA``) on the image vectors,
so five alternatives are not five near-identical shots. Alternatives keep only products in stock
(in the shopper's size first when given) of a compatible category: the same leaf first, a sibling
leaf (same parent) only to fill the list; the same design in another colour, when in stock, comes
first. Each result says why in a short reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace
from catalog.selectors import ProductBrief

W_LOOK = 0.55
W_TEXT = 0.30
W_PRICE = 0.10
W_CATEGORY = 0.15
W_DESIGN = 0.20
MMR_LAMBDA = 0.75
CANDIDATES = 120


@dataclass
class Alternative:
    product_id: int
    score: float
    reason: str
    look: float  # image similarity
    in_size: bool
    same_category: bool = False  # the same leaf category as the source


def _unit_rows(ids: Sequence[int], vectors: dict[int, np.ndarray], dim: int) -> np.ndarray:
    """The vectors of ``ids`` as unit rows of one matrix; a product without a vector is a zero row
    (its cosine with anything is 0)."""
    rows = np.zeros((len(ids), dim), dtype=np.float32)
    for i, pid in enumerate(ids):
        vec = vectors.get(pid)
        if vec is not None:
            rows[i] = vec
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)


def _cosines(source: np.ndarray | None, ids: Sequence[int], vectors: dict[int, np.ndarray]) -> np.ndarray:
    """The cosine of ``source`` with each of these products' vectors (0 where either is missing)."""
    if source is None or not len(ids):
        return np.zeros(len(ids), dtype=np.float32)
    norm = float(np.linalg.norm(source))
    if not norm:
        return np.zeros(len(ids), dtype=np.float32)
    return _unit_rows(ids, vectors, source.shape[0]) @ (np.asarray(source, dtype=np.float32) / norm)


def _price_closeness(a: float, b: float) -> float:
    if a <= 0 or b <= 0:
        return 0.0
    return float(min(a, b) / max(a, b))


def _reason(source: ProductBrief, other: ProductBrief, look: float) -> str:
    if source.design_group and other.design_group == source.design_group:
        if other.colour and other.colour.lower() != source.colour.lower():
            return f"same design in {other.colour.lower()}"
        return "same design"
    same_colour = bool(source.colour) and other.colour.lower() == source.colour.lower()
    price_note = ""
    if float(source.price) > 0 and float(other.price) < 0.8 * float(source.price):
        price_note = ", for less"
    if same_colour and look >= 0.6:
        return f"similar colour and cut{price_note}"
    if look >= 0.6:
        return f"similar cut in {other.colour.lower() or 'another colour'}{price_note}"
    if same_colour:
        return f"same colour, similar style{price_note}"
    return f"similar style{price_note}"


def _category_match(source: ProductBrief, other: ProductBrief) -> float:
    if source.category_id is None or other.category_id is None:
        return 0.0
    if other.category_id == source.category_id:
        return 1.0
    if source.parent_path and other.parent_path == source.parent_path:
        return 0.5
    return 0.0


def similar_products(
    product_id: int,
    *,
    limit: int = 8,
    in_stock_only: bool = False,
    size: str = "",
    compatible_category: bool = False,
) -> list[Alternative]:
    """Products like this one, best first, diverse (MMR)."""
    if limit < 1:
        return []
    space = catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)
    source = catalog_selectors.product_briefs([product_id]).get(product_id)
    if source is None:
        raise LookupError(f"no active product with id {product_id}")
    candidate_ids: set[int] = set(catalog_selectors.product_ids_in_design(source.design_group))
    image_vec = text_vec = None
    if space is not None:
        image_vec = _vectors([product_id], space, "image").get(product_id)
        text_vec = _vectors([product_id], space, "text").get(product_id)
        for kind, vec in (("image", image_vec), ("text", text_vec)):
            if vec is not None:
                hits = catalog_selectors.vector_nearest(
                    table="product", space=space, kind=kind, query=vec, k=CANDIDATES, ef_search=CANDIDATES
                )
                candidate_ids.update(h.owner_id for h in hits)
    candidate_ids.discard(product_id)
    briefs = catalog_selectors.product_briefs(sorted(candidate_ids))
    if in_stock_only:
        briefs = {pid: b for pid, b in briefs.items() if b.in_stock}
    if compatible_category and source.category_id is not None:
        compatible = {pid: b for pid, b in briefs.items() if _category_match(source, b) > 0 or _same_design(source, b)}
        briefs = compatible or briefs
    if not briefs:
        return []
    image_vecs = _vectors(list(briefs), space, "image") if space else {}
    text_vecs = _vectors(list(briefs), space, "text") if space else {}

    ids = list(briefs)
    looks = _cosines(image_vec, ids, image_vecs)
    texts = _cosines(text_vec, ids, text_vecs)
    scored: list[tuple[float, Alternative]] = []
    for pid, look_, text_ in zip(ids, looks.tolist(), texts.tolist(), strict=True):
        brief = briefs[pid]
        in_size = not size or size.lower() in (s.lower() for s in brief.sizes_in_stock)
        same_design = _same_design(source, brief)
        score = (
            W_LOOK * look_
            + W_TEXT * text_
            + W_PRICE * _price_closeness(float(source.price), float(brief.price))
            + W_CATEGORY * _category_match(source, brief)
            + W_DESIGN * same_design
            + (0.05 if in_size and size else 0.0)
        )
        alt = Alternative(
            pid,
            round(score, 4),
            _reason(source, brief, look_),
            round(look_, 4),
            in_size,
            same_category=_category_match(source, brief) == 1.0,
        )
        # The same design in another colour, when allowed here, always comes first.
        priority = 1.0 if same_design and brief.colour.lower() != source.colour.lower() else 0.0
        scored.append((priority, alt))
    return _mmr(scored, image_vecs, limit)


def _vectors(product_ids: list[int], space: EmbeddingSpace, kind: str) -> dict[int, np.ndarray]:
    """These products' vectors of ``kind``: from the copy this process keeps (unit length, float16,
    search.vector_memory) when it keeps one, else from the database."""
    from search.vector_memory import memory_vectors  # loads torch: only where vectors are asked for

    store = memory_vectors(space)
    if store is not None:
        return store.vectors(kind, product_ids)
    return catalog_selectors.product_vectors(product_ids, space, kind)


def _same_design(source: ProductBrief, other: ProductBrief) -> bool:
    return bool(source.design_group) and other.design_group == source.design_group


def _mmr(scored: list[tuple[float, Alternative]], vectors: dict[int, np.ndarray], limit: int) -> list[Alternative]:
    """Maximal marginal relevance over the image vectors; priority items (same design, other colour)
    are taken first, by score. A candidate's redundancy is its highest cosine with a product already
    chosen (0 while none is); ties go to the lower product id."""
    pool = sorted(scored, key=lambda pa: (-pa[0], -pa[1].score, pa[1].product_id))
    chosen: list[Alternative] = [alt for priority, alt in pool if priority > 0][:limit]
    rest = [alt for priority, alt in pool if priority <= 0]
    if not rest or len(chosen) >= limit:
        return chosen
    dim = next((len(v) for v in vectors.values()), 1)
    units = _unit_rows([alt.product_id for alt in rest], vectors, dim)
    scores = np.array([alt.score for alt in rest], dtype=np.float64)
    ids = np.array([alt.product_id for alt in rest], dtype=np.int64)
    redundancy = np.full(len(rest), -np.inf)
    if chosen:
        priority = _unit_rows([alt.product_id for alt in chosen], vectors, dim)
        redundancy = (units @ priority.T).max(axis=1)
    taken = np.zeros(len(rest), dtype=bool)
    while len(chosen) < limit and not taken.all():
        seen = redundancy if chosen else np.zeros(len(rest))
        value = MMR_LAMBDA * scores - (1 - MMR_LAMBDA) * seen
        value[taken] = -np.inf
        best = int(np.lexsort((ids, -value))[0])  # highest value, then the lowest id
        taken[best] = True
        chosen.append(rest[best])
        redundancy = np.maximum(redundancy, units @ units[best])
    return chosen


def alternatives_for(product_id: int, *, size: str = "", limit: int = 5) -> list[Alternative]:
    """In-stock alternatives for a product (typically one that is out of stock, or out of the
    shopper's ``size``): compatible category, close in look, description and price, diverse;
    in the shopper's size first when one is given."""
    found = similar_products(product_id, limit=limit * 3, in_stock_only=True, size=size, compatible_category=True)

    # The same design in another colour first, then the shopper's size, then the same leaf category
    # before sibling ones; the sort is stable, so MMR order decides within each group.
    def rank(alt: Alternative) -> tuple[int, int, int]:
        design = 0 if alt.reason.startswith("same design") else 1
        return (design, 0 if (alt.in_size or not size) else 1, 0 if alt.same_category else 1)

    ranked = sorted(found, key=rank)
    return ranked[:limit]
