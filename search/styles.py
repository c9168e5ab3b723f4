"""Style clusters of the catalog for the staff health page: spherical k-means over the products'
image vectors, each cluster with the products nearest its centre."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from catalog import selectors as catalog_selectors
from catalog.models import EmbeddingSpace


@dataclass
class StyleCluster:
    number: int
    size: int
    label: str  # the commonest category and colour among its products
    products: list[dict[str, object]]  # nearest the centre first: id, sku, title, picture URL, distance


@dataclass
class StyleClusters:
    clusters: list[StyleCluster]
    products: int  # products with an image vector that were clustered
    space: str
    key: str  # the catalog's last-change key the result was computed (and cached) for
    cached: bool
    seconds: float


def _kmeans(matrix: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means (cosine) with k-means++ seeding; deterministic for a given seed.
    Returns (labels, unit-length centres)."""
    rng = np.random.default_rng(seed)
    n = matrix.shape[0]
    centres = [matrix[int(rng.integers(n))]]
    for _ in range(1, k):
        sims = np.max(matrix @ np.stack(centres).T, axis=1)
        weights = np.clip(1.0 - sims, 0.0, None) ** 2
        total = float(weights.sum())
        pick = int(rng.choice(n, p=weights / total)) if total > 1e-12 else int(rng.integers(n))
        centres.append(matrix[pick])
    centre_matrix = np.stack(centres)
    labels = np.full(n, -1)
    for _ in range(iterations):
        new_labels = np.argmax(matrix @ centre_matrix.T, axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for c in range(k):
            members = matrix[labels == c]
            if len(members):
                mean = members.mean(axis=0)
                centre_matrix[c] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return labels, centre_matrix


def catalog_style_clusters(*, k: int | None = None, per_cluster: int = 6) -> StyleClusters:
    """Style clusters of the catalog: k-means over the products' image vectors (active image
    space), each with the products nearest its centre. Cached (Django cache) under the catalog's
    last-change key, so k-means runs once per catalog change, never on every page view."""
    import time

    from django.core.cache import cache

    space = catalog_selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)
    key = catalog_selectors.catalog_last_change()
    if space is None:
        return StyleClusters([], 0, "", key, False, 0.0)
    cache_key = f"staff:style-clusters:{space.pk}:{k}:{per_cluster}:{key}"
    found = cache.get(cache_key)
    if found is not None:
        found.cached = True
        return found
    started = time.monotonic()
    rows = catalog_selectors.product_image_vectors(space)
    if not rows:
        return StyleClusters([], 0, space.name, key, False, 0.0)
    ids = [pid for pid, _ in rows]
    matrix = np.asarray([np.asarray(v, dtype=np.float32) for _, v in rows])
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    n_clusters = min(len(ids), k or max(2, min(12, round(math.sqrt(len(ids) / 2)))))
    labels, centres = _kmeans(matrix, n_clusters)
    products, pictures = catalog_selectors.products_with_pictures(ids)
    clusters: list[StyleCluster] = []
    for c in range(n_clusters):
        members = np.flatnonzero(labels == c)
        if not len(members):
            continue
        distance = 1.0 - matrix[members] @ centres[c]
        order = members[np.argsort(distance, kind="stable")]
        categories = Counter(str(products[ids[i]].category or "") for i in members if products[ids[i]].category)
        colours = Counter(products[ids[i]].colour for i in members if products[ids[i]].colour)
        label = " · ".join(x for x in (_commonest(categories), _commonest(colours)) if x) or "mixed"
        clusters.append(
            StyleCluster(
                number=0,
                size=len(members),
                label=label,
                products=[
                    {
                        "id": ids[i],
                        "sku": products[ids[i]].sku,
                        "title": products[ids[i]].title,
                        "picture": pictures.get(ids[i], ""),
                        "distance": round(float(1.0 - matrix[i] @ centres[c]), 3),
                    }
                    for i in order[:per_cluster]
                ],
            )
        )
    clusters.sort(key=lambda cl: -cl.size)
    for number, cluster in enumerate(clusters, start=1):
        cluster.number = number
    result = StyleClusters(clusters, len(ids), space.name, key, False, round(time.monotonic() - started, 3))
    cache.set(cache_key, result, timeout=24 * 3600)
    return result


def _commonest(counter: Counter[str]) -> str:
    if not counter:
        return ""
    value, n = counter.most_common(1)[0]
    return f"{value} ({n})"
