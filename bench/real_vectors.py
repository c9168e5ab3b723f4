"""Real products to build a large synthetic catalog from: the H&M train split (``../shared/data/hm``),
their photos and texts encoded by the shop's serving embedder, as the shop would store them.

A catalog of any size is drawn from these: each synthetic product copies one real article's title,
description, colour, pattern and category, and its image and text vectors are the article's plus
Gaussian noise. The noise is as large as the gap between a real article and its nearest other real
article (the median over the set), so the copies of one article spread like a family of new designs
around it and stay in the region of the vector space that real products occupy, where the queries
the shop's text tower and image tower produce land too (random vectors would leave every query far
from everything, a case no index handles well and no shop meets).

The encodings are kept under ``var/bench/`` by the embedder's version, so a second run does not
encode the photos again.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HM = REPO.parent / "shared" / "data" / "hm"
CACHE = REPO / "var" / "bench"


@dataclass
class RealProducts:
    """Real articles: their manifest rows, the catalog fields the shop's H&M import gives each
    (``catalog.hm.catalog_rows``: title, description, colour, pattern, "group > type" category), their
    image and text vectors, and the noise scale of each kind."""

    rows: list[dict[str, str]]
    products: list[dict[str, str]]
    image: np.ndarray
    text: np.ndarray
    image_noise: float
    text_noise: float

    def draw(self, rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``k`` synthetic products: which article each copies, and its image and text vectors."""
        base = rng.integers(0, len(self.rows), k)
        dim = self.image.shape[1]
        image = unit(self.image[base] + self.image_noise * rng.normal(size=(k, dim)) / np.sqrt(dim))
        text = unit(self.text[base] + self.text_noise * rng.normal(size=(k, dim)) / np.sqrt(dim))
        return base, image.astype(np.float32), text.astype(np.float32)


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@functools.cache
def _manifest() -> list[dict[str, str]]:
    from catalog.hm import SourceError, read_manifest

    try:
        return read_manifest(HM)
    except SourceError as exc:
        raise SystemExit(f"the bench builds its catalog from the H&M set in ../shared/data/hm: {exc}") from exc


def manifest_rows(split: str) -> list[dict[str, str]]:
    return [r for r in _manifest() if r["split"] == split]


def catalog_products(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """The catalog fields the shop's H&M import gives each article."""
    from catalog.hm import catalog_rows

    return list(catalog_rows(rows))


def category_path(product: dict[str, str]) -> list[str]:
    """A catalog product's category path, root first (the import's "group > type")."""
    return [part.strip() for part in product["category"].split(">") if part.strip()]


def product_text(product: dict[str, str]) -> str:
    """What the shop encodes as the text vector of a product with these fields."""
    from catalog.models import Category, Product
    from catalog.services import product_text_for_embedding

    leaf = Category(name=category_path(product)[-1])
    fields = {key: product[key] for key in ("title", "description", "colour", "pattern")}
    return product_text_for_embedding(Product(**fields, category=leaf))


def median_gap(vectors: np.ndarray) -> float:
    """The median distance from a vector to its nearest other vector of the set."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1.0)
    nearest = sims.max(axis=1)
    return float(np.median(np.sqrt(np.clip(2.0 - 2.0 * nearest, 0.0, None))))


def _encoded(encoder: Any, rows: list[dict[str, str]], what: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    key = hashlib.sha1(f"{encoder.version}|{what}|{len(rows)}|{rows[0]['item_id']}".encode()).hexdigest()[:16]
    cached = CACHE / f"real-vectors-{key}.npz"
    if cached.is_file():
        with np.load(cached) as kept:
            return kept["image"], kept["text"]
    t0 = time.perf_counter()
    images = []
    batch = 64
    for start in range(0, len(rows), batch):
        photos = [Image.open(HM / r["file"]).convert("RGB") for r in rows[start : start + batch]]
        images.append(encoder.encode_images(photos))
        done = min(len(rows), start + batch)
        if done % 1024 < batch or done == len(rows):
            print(f"  encoding {what} photos: {done:,} / {len(rows):,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    text = encoder.encode_texts([product_text(p) for p in catalog_products(rows)])
    image = np.concatenate(images).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, image=image, text=text.astype(np.float32))
    return image, text.astype(np.float32)


def real_products(encoder: Any, split: str = "train") -> RealProducts:
    """The ``split``'s articles encoded by ``encoder`` (the shop's serving embedder)."""
    rows = manifest_rows(split)
    image, text = _encoded(encoder, rows, split)
    return RealProducts(rows, catalog_products(rows), image, text, median_gap(image), median_gap(text))


def real_photo_vectors(encoder: Any, split: str = "dev") -> np.ndarray:
    """Image vectors of real product photos no synthetic product copies (``split``): recall queries."""
    return _encoded(encoder, manifest_rows(split), split)[0]


def attribute_queries(n: int, seed: int = 1, where: Callable[[dict[str, str]], bool] | None = None) -> list[str]:
    """``n`` shopper queries "<colour> <pattern> <type>" of train articles (what the catalog sells),
    of those whose catalog fields ``where`` keeps when given."""
    products = [p for p in catalog_products(manifest_rows("train")) if where is None or where(p)]
    picks = np.random.default_rng(seed).integers(0, len(products), n)
    return [f"{products[i]['colour']} {products[i]['pattern']} {category_path(products[i])[-1]}".lower() for i in picks]
