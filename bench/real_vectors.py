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

import csv
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
    """Real articles (manifest rows) with their image and text vectors, and the noise scale of each kind."""

    rows: list[dict[str, str]]
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


def manifest_rows(split: str) -> list[dict[str, str]]:
    manifest = HM / "manifest.csv"
    if not manifest.is_file():
        raise SystemExit(f"{manifest} is missing: the bench builds its catalog from the H&M set in ../shared/data/hm")
    with manifest.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def category_path(row: dict[str, str]) -> list[str]:
    """The article's category as the demo catalog files it (``catalog.hm``): group, then type."""
    return [row["category_group"], row["category"]]


def colour(row: dict[str, str]) -> str:
    return row.get("colour_master") or row["colour"]


def product_text(row: dict[str, str]) -> str:
    """What the shop encodes as a product's text vector (``product_text_for_embedding``)."""
    facts = " ".join(f for f in (colour(row), row["pattern"], row["category"]) if f)
    return ". ".join(p.strip() for p in (row["title"], row.get("description", ""), facts) if p and p.strip())


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
    text = encoder.encode_texts([product_text(r) for r in rows])
    image = np.concatenate(images).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cached, image=image, text=text.astype(np.float32))
    return image, text.astype(np.float32)


def real_products(encoder: Any, split: str = "train") -> RealProducts:
    """The ``split``'s articles encoded by ``encoder`` (the shop's serving embedder)."""
    rows = manifest_rows(split)
    image, text = _encoded(encoder, rows, split)
    return RealProducts(rows, image, text, median_gap(image), median_gap(text))


def real_photo_vectors(encoder: Any, split: str = "dev") -> np.ndarray:
    """Image vectors of real product photos no synthetic product copies (``split``): recall queries."""
    return _encoded(encoder, manifest_rows(split), split)[0]


def attribute_queries(n: int, seed: int = 1, where: Callable[[dict[str, str]], bool] | None = None) -> list[str]:
    """``n`` shopper queries "<colour> <pattern> <type>" of train articles (what the catalog sells),
    of those ``where`` keeps when given."""
    rows = [r for r in manifest_rows("train") if where is None or where(r)]
    picks = np.random.default_rng(seed).integers(0, len(rows), n)
    return [f"{colour(rows[i])} {rows[i]['pattern']} {rows[i]['category']}".lower() for i in picks]
