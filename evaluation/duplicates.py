"""``evaluate duplicates``: labelled image pairs built from an H&M-style catalog.

Pairs (all built with a seeded RNG, so a run is reproducible):

- positives — each image against an edited copy of itself, one copy per kind in :data:`EDITS`
  (resized to 50–80 %, JPEG re-encoded at quality 30–60, cropped 5–15 % per side, brightness ×1.25 and
  ×0.75, and a combination: crop 3–10 % + resize + JPEG 40–80);
- hard negatives — every pair of articles of one design (``group_id``) whose ``colour`` differs: the
  two original photos (``other colour``), and the first photo against an edited copy of the second
  (``other colour, edited``);
- easy negatives — each image against a random product of another design (``other product``);
- near negatives — each image against the most similar photo (ImageNet embedding) of another design
  (``nearest other product``): what the pipeline's duplicate stage really compares an upload with;
- not scored, shown for information: articles of one design with the same colour name (often another
  print or trim; sometimes the same photo reused).

``overall`` scores every pair above; ``as specified`` leaves out the ``other colour, edited`` and
``nearest other product`` kinds (the pair set as first specified: positives, other-colour originals and
random other products).

Methods, each judged on the same pairs: the shop's rule (:func:`vision.duplicates.is_duplicate` with
its default thresholds), pHash distance alone and embedding cosine alone (thresholds
:data:`BASELINE_THRESHOLDS`, tuned on the train split). ``--tune`` searches all thresholds on the
train split (``--tune-limit`` articles), prints them and uses them for this run.

Per kind, each slice is that kind's pairs against all scored pairs of the other class (so a positive
kind's precision counts every false alarm); ``accuracy`` is the share of that kind's pairs decided
correctly (recall for positive kinds, 1 − false-alarm rate for negative kinds).

Embeddings are cached in ``var/cache/duplicates/`` (keyed by article, edit and seed).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance
from tqdm import tqdm

from vision import duplicates as dup
from vision.assets import REPO
from vision.metrics import f1_precision_recall

DEFAULT_MANIFEST = REPO.parent / "shared" / "data" / "hm" / "manifest.csv"
EDITS = ("resize", "jpeg", "crop", "brighter", "darker", "combined")
POSITIVE = "positive"
NEGATIVE_KINDS = ("other colour", "other colour, edited", "other product", "nearest other product")
INFO_KIND = "same design, same colour name"
# Baselines' thresholds, found by `evaluate duplicates --tune` on the H&M train split.
BASELINE_THRESHOLDS = {"phash_max": 21, "embedding_min": 0.89}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST, help="H&M-style manifest.csv")
    parser.add_argument("--split", default="dev", help="split to report on (default dev)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many articles (whole designs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune", action="store_true", help="tune all thresholds on the train split first")
    parser.add_argument("--tune-limit", type=int, default=1500, help="train articles used by --tune")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--no-cache", action="store_true", help="recompute embeddings")


# ---------------------------------------------------------------- items and edits


@dataclass(frozen=True)
class Item:
    item_id: str
    group_id: str
    colour: str
    path: Path


def load_items(manifest: Path, split: str, limit: int | None) -> list[Item]:
    """Articles of ``split`` (whole designs, in catalog.hm's stable order, at most ``limit``)."""
    from catalog.hm import select_rows

    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    chosen = select_rows(rows, split=split, limit=limit)
    root = manifest.parent
    return [Item(r["item_id"], r["group_id"], r["colour"], root / r["file"]) for r in chosen]


def _rng(seed: int, *parts: str) -> random.Random:
    return random.Random(hashlib.sha256(":".join([str(seed), *parts]).encode()).hexdigest())


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def _crop(image: Image.Image, rng: random.Random, low: float, high: float) -> Image.Image:
    w, h = image.size
    left, right = (int(w * rng.uniform(low, high)) for _ in range(2))
    top, bottom = (int(h * rng.uniform(low, high)) for _ in range(2))
    return image.crop((left, top, w - right, h - bottom))


def _resize(image: Image.Image, rng: random.Random) -> Image.Image:
    f = rng.uniform(0.5, 0.8)
    method = rng.choice([Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS])
    return image.resize((max(1, round(image.width * f)), max(1, round(image.height * f))), method)


def edit(image: Image.Image, kind: str, rng: random.Random) -> Image.Image:
    """One edited copy of ``image`` (see the module docstring for the kinds)."""
    image = image.convert("RGB")
    if kind == "resize":
        return _resize(image, rng)
    if kind == "jpeg":
        return _jpeg(image, rng.randint(30, 60))
    if kind == "crop":
        return _crop(image, rng, 0.05, 0.15)
    if kind == "brighter":
        return ImageEnhance.Brightness(image).enhance(1.25)
    if kind == "darker":
        return ImageEnhance.Brightness(image).enhance(0.75)
    if kind == "combined":
        return _jpeg(_resize(_crop(image, rng, 0.03, 0.10), rng), rng.randint(40, 80))
    raise ValueError(f"unknown edit {kind!r}; choose from {EDITS}")


def variants_of(item: Item, seed: int) -> dict[str, Image.Image]:
    """The original ("orig") and one copy per edit kind."""
    with Image.open(item.path) as im:
        original = dup.to_rgb(im)
    out = {"orig": original}
    for kind in EDITS:
        out[kind] = edit(original, kind, _rng(seed, item.item_id, kind))
    return out


# ---------------------------------------------------------------- features


@dataclass
class Features:
    keys: list[str]  # "<item_id>/<variant>"
    phash: np.ndarray  # uint64 (n,)
    embedding: np.ndarray  # float32 (n, 1280)
    colour: np.ndarray  # float32 (n, c)
    keypoints: list[dup.Keypoints]
    thumbnails: np.ndarray  # uint8 (n, h, w) grey thumbnails

    def index(self) -> dict[str, int]:
        return {k: i for i, k in enumerate(self.keys)}


def _cache_file(seed: int) -> Path:
    from django.conf import settings

    return Path(settings.DATA_DIR) / "cache" / "duplicates" / f"embeddings-{dup.EMBEDDING_VERSION}-s{seed}.npz"


def _load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return dict(zip(data["keys"].tolist(), data["embeddings"], strict=True))


def _save_cache(path: Path, cache: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(cache)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, keys=np.array(keys), embeddings=np.stack([cache[k] for k in keys]).astype(np.float32))
    tmp.replace(path)


def compute_features(
    items: list[Item], seed: int, batch_size: int, use_cache: bool, log: Callable[[str], None]
) -> Features:
    """pHash, colour and (cached) embedding of every article's original and edited copies."""
    cache_path = _cache_file(seed)
    cache = _load_cache(cache_path) if use_cache else {}
    keys: list[str] = []
    hashes: list[int] = []
    colours: list[np.ndarray] = []
    keypoints: list[dup.Keypoints] = []
    thumbnails: list[np.ndarray] = []
    pending: list[tuple[str, Image.Image]] = []
    fresh = 0
    for item in tqdm(items, desc="signatures", unit="article"):
        for variant, image in variants_of(item, seed).items():
            key = f"{item.item_id}/{variant}"
            keys.append(key)
            hashes.append(dup.phash_of(image))
            colours.append(dup.colour_signature(image))
            keypoints.append(dup.keypoints_of(image))
            thumbnails.append(dup.thumbnail_of(image))
            if key not in cache:
                pending.append((key, image))
        if len(pending) >= 4 * batch_size:
            fresh += _embed_into(cache, pending, batch_size)
            pending = []
    fresh += _embed_into(cache, pending, batch_size)
    if fresh and use_cache:
        _save_cache(cache_path, cache)
    log(f"{len(keys)} images ({len(items)} articles); {fresh} embeddings computed, {len(keys) - fresh} cached")
    return Features(
        keys=keys,
        phash=np.array(hashes, dtype=np.uint64),
        embedding=np.stack([cache[k] for k in keys]).astype(np.float32),
        colour=np.stack(colours).astype(np.float32),
        keypoints=keypoints,
        thumbnails=np.stack(thumbnails),
    )


def _embed_into(cache: dict[str, np.ndarray], pending: list[tuple[str, Image.Image]], batch_size: int) -> int:
    if not pending:
        return 0
    vectors = dup.embed_images([im for _, im in pending], batch_size=batch_size)
    for (key, _), vec in zip(pending, vectors, strict=True):
        cache[key] = vec
    return len(pending)


# ---------------------------------------------------------------- pairs


@dataclass
class Pairs:
    a: np.ndarray  # int indices into Features
    b: np.ndarray
    label: np.ndarray  # bool: duplicate?
    kind: list[str]  # edit kind for positives, negative kind otherwise

    def __len__(self) -> int:
        return len(self.kind)


def build_pairs(items: list[Item], features: Features, seed: int) -> Pairs:
    idx = features.index()
    a: list[int] = []
    b: list[int] = []
    label: list[bool] = []
    kind: list[str] = []

    def add(x: str, y: str, is_dup: bool, k: str) -> None:
        a.append(idx[x])
        b.append(idx[y])
        label.append(is_dup)
        kind.append(k)

    for item in items:
        for edit_kind in EDITS:
            add(f"{item.item_id}/orig", f"{item.item_id}/{edit_kind}", True, edit_kind)
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.group_id].append(item)
    for members in groups.values():
        for x, y in itertools.combinations(members, 2):
            if x.colour.strip().lower() == y.colour.strip().lower():
                add(f"{x.item_id}/orig", f"{y.item_id}/orig", False, INFO_KIND)
                continue
            add(f"{x.item_id}/orig", f"{y.item_id}/orig", False, "other colour")
            variant = _rng(seed, "hard", x.item_id, y.item_id).choice(EDITS)
            add(f"{x.item_id}/orig", f"{y.item_id}/{variant}", False, "other colour, edited")
    if len(groups) > 1:
        for item in items:
            rng = _rng(seed, "easy", item.item_id)
            other = rng.choice(items)
            while other.group_id == item.group_id:
                other = rng.choice(items)
            add(f"{item.item_id}/orig", f"{other.item_id}/orig", False, "other product")
        # What the pipeline really compares: each photo against its nearest photos in the catalog.
        origs = np.array([idx[f"{item.item_id}/orig"] for item in items])
        emb = features.embedding[origs].astype(np.float32)
        sims = emb @ emb.T
        design = np.array([item.group_id for item in items])
        sims[design[:, None] == design[None, :]] = -np.inf
        for i, j in enumerate(np.argmax(sims, axis=1)):
            add(f"{items[i].item_id}/orig", f"{items[int(j)].item_id}/orig", False, "nearest other product")
    return Pairs(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64), np.array(label, dtype=bool), kind)


@dataclass
class PairScores:
    """The three measurements of every pair, vectorised."""

    phash_distance: np.ndarray  # int
    cosine: np.ndarray  # float
    colour_distance: np.ndarray  # float
    chroma_distance: np.ndarray  # float
    inliers: np.ndarray  # int: geometrically consistent keypoint matches
    exposure_difference: np.ndarray  # float: grey thumbnails' difference at the best exposure gain


def pair_scores(features: Features, pairs: Pairs) -> PairScores:
    xor = features.phash[pairs.a] ^ features.phash[pairs.b]
    distance = np.array([int(v).bit_count() for v in xor], dtype=np.int64)
    cos = np.einsum("ij,ij->i", features.embedding[pairs.a], features.embedding[pairs.b]).astype(np.float64)
    diff = features.colour[pairs.a].astype(np.float64) - features.colour[pairs.b].astype(np.float64)
    colour = np.linalg.norm(diff, axis=1)
    chroma = np.linalg.norm(diff[:, 1:], axis=1)
    inliers = np.array(
        [
            dup.geometric_inliers(features.keypoints[i], features.keypoints[j])
            for i, j in tqdm(zip(pairs.a, pairs.b, strict=True), total=len(pairs), desc="keypoint matches")
        ],
        dtype=np.int64,
    )
    thumbs = features.thumbnails
    exposure = np.array([dup.exposure_match(thumbs[i], thumbs[j])[1] for i, j in zip(pairs.a, pairs.b, strict=True)])
    return PairScores(distance, cos, colour, chroma, inliers, exposure)


# ---------------------------------------------------------------- methods


def shop_rule(scores: PairScores, t: dup.DuplicateThresholds) -> np.ndarray:
    """Vectorised :func:`vision.duplicates.is_duplicate` (kept equal to it by the tests)."""
    same_colour = scores.colour_distance <= t.colour_max
    structure = (scores.phash_distance <= t.phash_max) | (scores.cosine >= t.embedding_min)
    verified = scores.inliers >= t.min_inliers
    relit = (scores.phash_distance <= t.relit_phash_max) & (scores.cosine >= t.relit_embedding_min)
    same_pixels = same_colour & (scores.exposure_difference <= t.exposure_mae_max)
    return same_pixels | (same_colour & structure & verified) | (relit & (scores.chroma_distance <= t.chroma_max))


def predictions(scores: PairScores, t: dup.DuplicateThresholds, baselines: dict[str, float]) -> dict[str, np.ndarray]:
    return {
        "shop rule": shop_rule(scores, t),
        "pHash alone": scores.phash_distance <= baselines["phash_max"],
        "embedding alone": scores.cosine >= baselines["embedding_min"],
    }


def score(pred: np.ndarray, pairs: Pairs) -> dict[str, Any]:
    """Overall and per-kind precision / recall / F1 (see the module docstring for the slices)."""
    kinds = np.array(pairs.kind)
    scored = kinds != INFO_KIND
    label = pairs.label

    def counts(mask: np.ndarray) -> dict[str, Any]:
        tp = int((pred & label & mask).sum())
        fp = int((pred & ~label & mask).sum())
        fn = int((~pred & label & mask).sum())
        tn = int((~pred & ~label & mask).sum())
        f1, precision, recall = f1_precision_recall(tp, fp, fn)
        return {"f1": f1, "precision": precision, "recall": recall, "tp": tp, "fp": fp, "fn": fn, "tn": tn}

    out: dict[str, Any] = {
        "overall": counts(scored),
        # the brief's pair set: without the "other colour, edited" and "nearest other product" kinds
        "as specified: positives, other colour, other product": counts(
            scored & (kinds != "other colour, edited") & (kinds != "nearest other product")
        ),
        "kinds": {},
    }
    for kind in [*EDITS, *NEGATIVE_KINDS, INFO_KIND]:
        own = kinds == kind
        if not own.any():
            continue
        if kind == INFO_KIND:
            row: dict[str, Any] = {"pairs": int(own.sum()), "flagged": int((pred & own).sum())}
        else:
            other_class = scored & (label != label[own][0])
            row = counts(own | other_class)
            row["pairs"] = int(own.sum())
            row["accuracy"] = float((pred[own] == label[own]).mean())
        out["kinds"][kind] = row
    return out


# ---------------------------------------------------------------- tuning


COLOUR_GRID = np.round(np.arange(2.0, 20.01, 0.5), 2)
PHASH_GRID = np.arange(0, 25)
EMBEDDING_GRID = np.round(np.arange(0.60, 0.9951, 0.01), 3)
RELIT_PHASH_GRID = np.arange(0, 13, 2)
RELIT_EMBEDDING_GRID = np.round(np.arange(0.85, 0.9951, 0.01), 3)
CHROMA_GRID = np.round(np.arange(2.0, 40.01, 2.0), 1)
INLIER_GRID = np.array([0, 6, 8, 10, 12, 15, 20, 25, 30, 40])
EXPOSURE_GRID = np.round(np.arange(0.0, 0.0301, 0.0025), 4)


def _f1_rows(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """F1 of each row of a (settings × pairs) prediction matrix."""
    tp = (pred & label).sum(axis=-1)
    fp = (pred & ~label).sum(axis=-1)
    fn = (~pred & label).sum(axis=-1)
    return np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)


def _robust_argmax(surface: np.ndarray) -> tuple[int, ...]:
    """Among the cells with the best F1, the one whose 3×3(×3) neighbourhood scores best on average —
    a setting away from a cliff edge."""
    from scipy.ndimage import uniform_filter

    smooth = uniform_filter(surface, size=3, mode="nearest")
    ties = np.argwhere(surface >= surface.max() - 1e-9)
    best = max(ties, key=lambda c: smooth[tuple(c)])
    return tuple(int(v) for v in best)


def tune(scores: PairScores, pairs: Pairs) -> tuple[dup.DuplicateThresholds, dict[str, float], dict[str, Any]]:
    """Thresholds maximising F1 on these (train) pairs, by grid search.

    Baselines: one threshold each. The shop rule, by coordinate ascent: (1) ``colour_max`` ×
    ``phash_max`` × ``embedding_min`` with the relit tier off; (2) the relit tier (``relit_phash_max``
    × ``relit_embedding_min`` × ``chroma_max``) given (1); (3) step (1) again given (2). Each step
    takes the best F1, ties broken towards the flattest neighbourhood (:func:`_robust_argmax`); then
    (4) the exposure tier's ``exposure_mae_max`` given (3) and (5) step (1) once more given all."""
    scored = np.array([k != INFO_KIND for k in pairs.kind])
    label = pairs.label[scored]
    d = scores.phash_distance[scored]
    cos = scores.cosine[scored]
    col = scores.colour_distance[scored]
    chroma = scores.chroma_distance[scored]
    inl = scores.inliers[scored]
    exposure = scores.exposure_difference[scored]

    phash_f1 = _f1_rows(d[None, :] <= PHASH_GRID[:, None], label)
    emb_f1 = _f1_rows(cos[None, :] >= EMBEDDING_GRID[:, None], label)
    baselines = {
        "phash_max": int(PHASH_GRID[_robust_argmax(phash_f1)[0]]),
        "embedding_min": float(EMBEDDING_GRID[_robust_argmax(emb_f1)[0]]),
    }

    by_embedding = cos[None, :] >= EMBEDDING_GRID[:, None]

    def main_tier(relit: np.ndarray, x: float) -> tuple[float, int, float, int, float]:
        surface = np.zeros((len(COLOUR_GRID), len(PHASH_GRID), len(INLIER_GRID), len(EMBEDDING_GRID)))
        for ci, c in enumerate(COLOUR_GRID):
            same_pixels = relit | ((col <= c) & (exposure <= x))
            for ki, k in enumerate(INLIER_GRID):
                gate = (col <= c) & (inl >= k)
                by_emb = gate[None, :] & by_embedding
                for pi, p in enumerate(PHASH_GRID):
                    base = same_pixels | (gate & (d <= p))
                    surface[ci, pi, ki] = _f1_rows(base[None, :] | by_emb, label)
        ci, pi, ki, ei = _robust_argmax(surface)
        best = float(surface.max())
        return float(COLOUR_GRID[ci]), int(PHASH_GRID[pi]), float(EMBEDDING_GRID[ei]), int(INLIER_GRID[ki]), best

    def relit_tier(main: np.ndarray) -> tuple[int, float, float, float]:
        surface = np.zeros((len(RELIT_PHASH_GRID), len(RELIT_EMBEDDING_GRID), len(CHROMA_GRID)))
        by_chroma = chroma[None, :] <= CHROMA_GRID[:, None]
        for pi, p in enumerate(RELIT_PHASH_GRID):
            for ei, e in enumerate(RELIT_EMBEDDING_GRID):
                same = (d <= p) & (cos >= e)
                surface[pi, ei] = _f1_rows(main[None, :] | (same[None, :] & by_chroma), label)
        pi, ei, ki = _robust_argmax(surface)
        return int(RELIT_PHASH_GRID[pi]), float(RELIT_EMBEDDING_GRID[ei]), float(CHROMA_GRID[ki]), float(surface.max())

    def main_pred(c: float, p: int, e: float, k: int) -> np.ndarray:
        return (col <= c) & (inl >= k) & ((d <= p) | (cos >= e))

    def exposure_tier(others: np.ndarray, c: float) -> tuple[float, float]:
        surface = _f1_rows(others[None, :] | ((col <= c) & (exposure[None, :] <= EXPOSURE_GRID[:, None])), label)
        (xi,) = _robust_argmax(surface)
        return float(EXPOSURE_GRID[xi]), float(surface.max())

    off = np.zeros_like(label)
    c, p, e, k, f1_1 = main_tier(off, -1.0)
    rp, re, rc, f1_2 = relit_tier(main_pred(c, p, e, k))
    relit = (d <= rp) & (cos >= re) & (chroma <= rc)
    c, p, e, k, f1_3 = main_tier(relit, -1.0)
    x, f1_4 = exposure_tier(relit | main_pred(c, p, e, k), c)
    c, p, e, k, f1_5 = main_tier(relit, x)
    chosen = dup.DuplicateThresholds(
        phash_max=p,
        embedding_min=e,
        colour_max=c,
        relit_phash_max=rp,
        relit_embedding_min=re,
        chroma_max=rc,
        min_inliers=k,
        exposure_mae_max=x,
    )
    detail = {
        "train_pairs": int(scored.sum()),
        "shop rule train F1 by step": [round(v, 4) for v in (f1_1, f1_2, f1_3, f1_4, f1_5)],
        "pHash alone train F1": round(float(phash_f1.max()), 4),
        "embedding alone train F1": round(float(emb_f1.max()), 4),
    }
    return chosen, baselines, detail


# ---------------------------------------------------------------- run


def run(options: dict[str, Any], out_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from evaluation.report import bar_plot, write_report

    started = time.time()
    manifest: Path = options.get("manifest") or DEFAULT_MANIFEST
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found; pass --manifest (an H&M-style manifest.csv)")
    seed = int(options.get("seed") or 0)
    batch_size = int(options.get("batch_size") or 32)
    use_cache = not options.get("no_cache")
    thresholds = dup.DuplicateThresholds()
    baselines = dict(BASELINE_THRESHOLDS)
    tuning: dict[str, Any] | None = None
    if options.get("tune"):
        train_items = load_items(manifest, "train", options.get("tune_limit"))
        log(f"tuning on the train split: {len(train_items)} articles")
        train_features = compute_features(train_items, seed, batch_size, use_cache, log)
        train_pairs = build_pairs(train_items, train_features, seed)
        thresholds, baselines, detail = tune(pair_scores(train_features, train_pairs), train_pairs)
        tuning = {"thresholds": asdict(thresholds), "baselines": baselines, **detail}
        log(f"tuned on train: {thresholds}; baselines {baselines}; {detail}")
    split = options.get("split") or "dev"
    items = load_items(manifest, split, options.get("limit"))
    if not items:
        raise ValueError(f"{manifest} has no articles in split {split!r}")
    log(f"evaluating on split {split}: {len(items)} articles")
    features = compute_features(items, seed, batch_size, use_cache, log)
    pairs = build_pairs(items, features, seed)
    scores = pair_scores(features, pairs)
    results = {name: score(pred, pairs) for name, pred in predictions(scores, thresholds, baselines).items()}

    pair_counts: dict[str, int] = defaultdict(int)
    for kind in pairs.kind:
        pair_counts[kind] += 1
    rows: list[dict[str, Any]] = []
    for name, res in results.items():
        for slice_name in ("overall", "as specified: positives, other colour, other product"):
            o = res[slice_name]
            total = o["tp"] + o["fp"] + o["fn"] + o["tn"]
            rows.append({"method": name, "slice": slice_name, "pairs": total, **_fmt(o)})
        for kind, k in res["kinds"].items():
            rows.append({"method": name, "slice": kind, **_fmt(k)})
    metrics = {
        "manifest": str(manifest),
        "split": split,
        "articles": len(items),
        "seed": seed,
        "pairs": dict(pair_counts),
        "thresholds": asdict(thresholds),
        "baseline_thresholds": baselines,
        "tuning": tuning,
        "results": results,
        "seconds": round(time.time() - started, 1),
    }
    write_report(out_dir, "duplicates", metrics, rows)
    groups = {
        name: {
            "overall F1": res["overall"]["f1"],
            "F1, as specified": res["as specified: positives, other colour, other product"]["f1"],
            **{f"acc: {k}": v["accuracy"] for k, v in res["kinds"].items() if "accuracy" in v},
        }
        for name, res in results.items()
    }
    bar_plot(out_dir, "duplicates", groups, f"near-duplicates, H&M {split} ({len(items)} articles)")
    for name, res in results.items():
        o = res["overall"]
        b = res["as specified: positives, other colour, other product"]
        log(
            f"{name}: F1 {o['f1']:.4f}  precision {o['precision']:.4f}  recall {o['recall']:.4f}"
            f"  (as specified: F1 {b['f1']:.4f}, precision {b['precision']:.4f})"
        )
    return metrics


def _fmt(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
