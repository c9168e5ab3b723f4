"""Evaluation sets built at run time from ``../shared/data`` (never copied into the repository).

:func:`build_eval_sets` writes into one folder (default ``var/eval/sets``):

- ``hm_dev_catalog.csv`` — the H&M dev split in the shop's catalog CSV format (``catalog.hm``);
  images relative to the **H&M folder** (the catalog format's ``--images-root``).
- ``hm_dev_attribute_queries.jsonl`` — text queries ``{"id", "family", "text", "attributes",
  "relevant": [SKU, ...]}``.
- ``hm_dev_search_queries.jsonl`` — queries of every kind a shopper types (attribute, natural, both
  with typos, navigational, department, price, nonsense: :mod:`vision.query_sets`).
- ``hm_train_catalog.csv`` and ``hm_train_search_queries.jsonl`` — the same for 1,500 train articles
  (whole designs), to tune the search on; never report on them.
- ``hm_dev_attributes.csv`` and ``hm_train_attributes.csv`` — ``image,category,colour,pattern,colour_name,item_id``
  (``colour`` = the catalog's master colour); image absolute. The train file fits the baselines only.
- ``viton_dev_catalog.csv`` — VITON dev product photos as products (sku = item_id); images relative to
  the **VITON folder**.
- ``viton_dev_person_queries.jsonl`` — ``{"id", "family", "image", "relevant": [item_id, ...]}``; image
  absolute.
- ``ccp_dev_segmentation.csv`` — ``image,mask``: CCP dev photos and binary garment masks (0/255 PNG in
  ``ccp_dev_masks/``; garment = every label whose kind in ccp/labels.csv is ``garment``); both absolute.
- ``viton_dev_product_segmentation.csv`` — ``image,mask``: VITON dev product photos with
  ``mask_quality=ok``; both absolute; the masks are grayscale JPEGs, garment = value ≥ 128.
- ``index.json`` — every file's row count and, for the catalogs, the images root to import them with.

Manifest-style files (JSONL, segmentation and attribute CSVs) hold absolute paths. The catalog CSVs
cannot (the catalog format takes paths relative to ``--images-root``): index.json names their roots.

Attribute queries use the catalog's own vocabulary: the H&M ``colour_master`` (what the shop's catalog
calls ``colour``; the merchandising shade such as "Light Grey" is its ``colour_name`` attribute),
``pattern`` (graphical appearance) and ``category`` (product type), lowercased. Only value combinations
with at least ``MIN_RELEVANT`` (10) dev articles become queries, so that P@10 can reach 1. Family
``colour+pattern+category``: "<colour> <pattern> <category>"; family ``colour+category``: "<colour>
<category>". Every dev article with exactly those values is relevant. Each family is capped at half of
``max_queries`` (a seeded sample).

VITON: byte-identical copies share a ``pair_group``, so a person query's relevant set is every dev
product of its pair group, and byte-identical person photos make one query.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from catalog.hm import hm_to_catalog_csv, select_rows, synthetic_price
from vision.query_sets import search_queries

QUERY_FAMILIES = {
    "colour+pattern+category": ("colour_master", "pattern", "category"),
    "colour+category": ("colour_master", "category"),
}
# P@10 divides by 10: a query with fewer relevant items could never reach 1.0, so such queries are
# left out (their count is reported).
MIN_RELEVANT = 10
# The train split's search queries are built on a subset of its articles (whole designs): processing
# all 4,999 photos for every tuning run would take about half an hour on 2 cores.
TRAIN_SEARCH_ARTICLES = 1500
VITON_TITLE = "upper-body top (women)"
VITON_CATEGORY = "Women > Tops"


class DataMissing(FileNotFoundError):
    """A data folder or manifest the evaluation sets need is absent."""


@dataclass
class BuildResult:
    out: Path
    counts: dict[str, int] = field(default_factory=dict)
    images_roots: dict[str, str] = field(default_factory=dict)


def _read_manifest(folder: Path) -> list[dict[str, str]]:
    path = folder / "manifest.csv"
    if not path.is_file():
        raise DataMissing(f"{path} not found; point --data at the shared data folder")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> int:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> int:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def _norm(value: str) -> str:
    return " ".join(value.lower().split())


# ---------------------------------------------------------------- H&M


def attribute_queries(
    rows: list[dict[str, str]], max_queries: int = 400, seed: int = 0, min_relevant: int = MIN_RELEVANT
) -> list[dict[str, Any]]:
    """Text queries from the articles' attribute values (see the module docstring)."""
    per_family = max(1, max_queries // len(QUERY_FAMILIES))
    queries: list[dict[str, Any]] = []
    for family, attrs in QUERY_FAMILIES.items():
        relevant: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for row in rows:
            values = tuple(_norm(row[a]) for a in attrs)
            if all(values):
                relevant[values].append(row["item_id"])
        keys = sorted(k for k, v in relevant.items() if len(v) >= min_relevant)
        if len(keys) > per_family:
            keys = sorted(random.Random(f"{seed}:{family}").sample(keys, per_family))
        for i, key in enumerate(keys):
            queries.append(
                {
                    "id": f"hm-{family.replace('+', '-')}-{i:03d}",
                    "family": family,
                    "text": " ".join(key),
                    "attributes": dict(zip([a.replace("colour_master", "colour") for a in attrs], key, strict=True)),
                    "relevant": sorted(relevant[key]),
                }
            )
    return queries


def build_hm(data: Path, out: Path, max_queries: int, seed: int, result: BuildResult) -> None:
    source = data / "hm"
    rows = [r for r in _read_manifest(source) if r.get("split") == "dev"]
    result.counts["hm_dev_catalog.csv"] = hm_to_catalog_csv(source, out / "hm_dev_catalog.csv", split="dev")
    result.images_roots["hm_dev_catalog.csv"] = str(source.resolve())
    queries = attribute_queries(rows, max_queries=max_queries, seed=seed)
    result.counts["hm_dev_attribute_queries.jsonl"] = _write_jsonl(out / "hm_dev_attribute_queries.jsonl", queries)

    def attribute_rows(split_rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [
            {
                "image": str((source / r["file"]).resolve()),
                "category": r["category"],
                "colour": r.get("colour_master") or r["colour"],
                "pattern": r["pattern"],
                "colour_name": r["colour"],
                "item_id": r["item_id"],
            }
            for r in sorted(split_rows, key=lambda r: r["item_id"])
        ]

    def with_prices(split_rows: list[dict[str, str]]) -> list[dict[str, str]]:
        return [{**r, "price": synthetic_price(r["item_id"], r["category_group"])} for r in split_rows]

    # queries of every kind (vision.query_sets): dev to report; a train subset's to tune on
    kinds = search_queries(with_prices(rows), queries, "dev", seed=seed)
    result.counts["hm_dev_search_queries.jsonl"] = _write_jsonl(out / "hm_dev_search_queries.jsonl", kinds)
    train_subset = select_rows(_read_manifest(source), split="train", limit=TRAIN_SEARCH_ARTICLES)
    result.counts["hm_train_catalog.csv"] = hm_to_catalog_csv(
        source, out / "hm_train_catalog.csv", split="train", limit=TRAIN_SEARCH_ARTICLES
    )
    result.images_roots["hm_train_catalog.csv"] = str(source.resolve())
    train_kinds = search_queries(
        with_prices(train_subset),
        attribute_queries(train_subset, max_queries=max_queries, seed=seed),
        "train",
        seed=seed,
    )
    result.counts["hm_train_search_queries.jsonl"] = _write_jsonl(out / "hm_train_search_queries.jsonl", train_kinds)

    attr_rows = attribute_rows(rows)
    columns = ["image", "category", "colour", "pattern", "colour_name", "item_id"]
    train_rows = [r for r in _read_manifest(source) if r.get("split") == "train"]
    result.counts["hm_train_attributes.csv"] = _write_csv(
        out / "hm_train_attributes.csv", columns, attribute_rows(train_rows)
    )
    result.counts["hm_dev_attributes.csv"] = _write_csv(out / "hm_dev_attributes.csv", columns, attr_rows)


# ---------------------------------------------------------------- VITON


def build_viton(data: Path, out: Path, result: BuildResult) -> None:
    source = data / "viton"
    rows = [r for r in _read_manifest(source) if r.get("split") == "dev"]
    products = sorted((r for r in rows if r["role"] == "product"), key=lambda r: r["item_id"])
    persons = sorted((r for r in rows if r["role"] == "person"), key=lambda r: r["item_id"])
    catalog = [
        {
            "sku": r["item_id"],
            "title": VITON_TITLE,
            "description": "",
            "category": VITON_CATEGORY,
            "colour": "",
            "pattern": "",
            "price": "10",
            "currency": "EUR",
            "stock": "1",
            "group": "",
            "images": r["file"],
        }
        for r in products
    ]
    columns = ["sku", "title", "description", "category", "colour", "pattern", "price", "currency", "stock", "group"]
    result.counts["viton_dev_catalog.csv"] = _write_csv(out / "viton_dev_catalog.csv", [*columns, "images"], catalog)
    result.images_roots["viton_dev_catalog.csv"] = str(source.resolve())

    products_of_group: dict[str, list[str]] = defaultdict(list)
    for r in products:
        products_of_group[r["pair_group"]].append(r["item_id"])
    queries = []
    seen: set[str] = set()
    for r in persons:
        key = r.get("sha256") or r["file"]
        relevant = sorted(products_of_group.get(r["pair_group"], []))
        if key in seen or not relevant:
            continue
        seen.add(key)
        queries.append(
            {
                "id": f"viton-{r['item_id']}",
                "family": "person photo",
                "image": str((source / r["file"]).resolve()),
                "relevant": relevant,
            }
        )
    result.counts["viton_dev_person_queries.jsonl"] = _write_jsonl(out / "viton_dev_person_queries.jsonl", queries)

    seg = [
        {"image": str((source / r["file"]).resolve()), "mask": str((source / r["mask_file"]).resolve())}
        for r in products
        if r.get("mask_quality") == "ok" and r.get("mask_file")
    ]
    result.counts["viton_dev_product_segmentation.csv"] = _write_csv(
        out / "viton_dev_product_segmentation.csv", ["image", "mask"], seg
    )


# ---------------------------------------------------------------- CCP


def garment_label_ids(labels_csv: Path) -> set[int]:
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        return {int(r["index"]) for r in csv.DictReader(fh) if r["kind"].strip() == "garment"}


def garment_mask(label_map: np.ndarray, garment_ids: set[int]) -> np.ndarray:
    """uint8 mask: 255 where the label is a garment, else 0."""
    return np.where(np.isin(label_map, sorted(garment_ids)), 255, 0).astype(np.uint8)


def build_ccp(data: Path, out: Path, result: BuildResult, log: Callable[[str], None]) -> None:
    source = data / "ccp"
    if not (source / "labels.csv").is_file():
        raise DataMissing(f"{source / 'labels.csv'} not found")
    garment_ids = garment_label_ids(source / "labels.csv")
    masks_dir = out / "ccp_dev_masks"
    masks_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in sorted((r for r in _read_manifest(source) if r.get("split") == "dev"), key=lambda r: r["item_id"]):
        with Image.open(source / r["mask_file"]) as im:
            label_map = np.asarray(im)
        if label_map.ndim != 2:
            raise ValueError(f"{source / r['mask_file']}: expected a single-channel label map")
        target = masks_dir / f"{Path(r['file']).stem}.png"
        Image.fromarray(garment_mask(label_map, garment_ids), mode="L").save(target)
        rows.append({"image": str((source / r["file"]).resolve()), "mask": str(target.resolve())})
    result.counts["ccp_dev_segmentation.csv"] = _write_csv(out / "ccp_dev_segmentation.csv", ["image", "mask"], rows)
    log(f"ccp: {len(rows)} garment masks in {masks_dir} (garment labels: {len(garment_ids)})")


# ---------------------------------------------------------------- all


def build_eval_sets(
    data: Path, out: Path, max_queries: int = 400, seed: int = 0, log: Callable[[str], None] = print
) -> BuildResult:
    """Write every evaluation file (module docstring) from ``data`` into ``out``."""
    data = Path(data)
    if not data.is_dir():
        raise DataMissing(f"{data} is not a folder; point --data at the shared data folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = BuildResult(out=out.resolve())
    build_hm(data, out, max_queries, seed, result)
    build_viton(data, out, result)
    build_ccp(data, out, result, log)
    index = {
        "data": str(data.resolve()),
        "paths": "manifest-style files hold absolute paths; catalog CSVs are relative to images_roots[file]",
        "counts": result.counts,
        "images_roots": result.images_roots,
        "seed": seed,
        "max_queries": max_queries,
    }
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return result
