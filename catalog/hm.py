"""Convert the H&M product set (``manifest.csv`` + ``images/``) to the shop's catalog CSV.

The H&M data has no prices or stock, so both are made up deterministically from the article
id (same input, same output): prices by product group within a plausible range, stock per size
with roughly one article in seven sold out, so that "out of stock" and alternatives can be shown.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from catalog.csv_format import KNOWN_COLUMNS

PRICE_RANGES = {  # category_group -> (low, high) in EUR
    "Garment Upper body": (9.99, 59.99),
    "Garment Lower body": (14.99, 69.99),
    "Garment Full body": (19.99, 89.99),
    "Underwear": (4.99, 29.99),
    "Socks & Tights": (2.99, 14.99),
    "Shoes": (19.99, 99.99),
    "Accessories": (4.99, 39.99),
    "Swimwear": (9.99, 39.99),
    "Nightwear": (9.99, 39.99),
}
CLOTHING_SIZES = ("XS", "S", "M", "L", "XL")
SHOE_SIZES = ("36", "37", "38", "39", "40", "41", "42")
EXTRA_COLUMNS = ("colour_name", "colour_value", "department", "index_group", "section", "garment_group", "split")


class SourceError(ValueError):
    """The source folder is not an H&M-style folder."""


def _unit(key: str, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) for ``key``."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def synthetic_price(item_id: str, category_group: str) -> str:
    low, high = PRICE_RANGES.get(category_group, (9.99, 49.99))
    steps = int((high - low) // 5)
    price = low + 5 * int(_unit(item_id, "price") * (steps + 1))
    return f"{min(price, high):.2f}"


def synthetic_stock(item_id: str, category_group: str) -> str:
    if category_group == "Shoes":
        sizes: tuple[str, ...] = SHOE_SIZES
    elif category_group in {"Accessories"}:
        sizes = ("one size",)
    else:
        sizes = CLOTHING_SIZES
    sold_out = _unit(item_id, "soldout") < 0.15
    parts = []
    for size in sizes:
        u = _unit(f"{item_id}:{size}", "stock")
        units = 0 if sold_out or u < 0.2 else int(u * 12)
        parts.append(f"{size}:{units}")
    return "|".join(parts)


def read_manifest(source: Path) -> list[dict[str, str]]:
    manifest = source / "manifest.csv"
    if not manifest.is_file():
        raise SourceError(f"{source} has no manifest.csv; point --source at the H&M folder (shared/data/hm)")
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    needed = {"file", "item_id", "group_id", "category", "category_group", "colour", "pattern", "title"}
    missing = needed - set(rows[0] if rows else {})
    if missing:
        raise SourceError(f"{manifest} lacks columns {sorted(missing)}")
    return rows


def select_rows(rows: list[dict[str, str]], *, split: str = "all", limit: int | None = None) -> list[dict[str, str]]:
    """Whole design groups (so colour variants stay together) in a stable mixed order."""
    if split != "all":
        rows = [r for r in rows if r.get("split") == split]
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        groups[row["group_id"]].append(row)
    chosen: list[dict[str, str]] = []
    for group_id in sorted(groups, key=lambda g: hashlib.sha1(g.encode()).hexdigest()):
        members = sorted(groups[group_id], key=lambda r: r["item_id"])
        if limit is not None and len(chosen) + len(members) > limit and chosen:
            continue
        chosen.extend(members)
        if limit is not None and len(chosen) >= limit:
            break
    return chosen


def catalog_rows(rows: list[dict[str, str]]) -> Iterator[dict[str, str]]:
    for r in rows:
        out = {
            "sku": r["item_id"],
            "title": r["title"].strip() or r["category"],
            "description": r.get("description", "").strip(),
            "category": f"{r['category_group']} > {r['category']}",
            # The shopper-facing colour is H&M's master colour (18 names: Blue, Grey, ...); the
            # merchandising shade ("Dark Blue", "Off White") is kept as the colour_name attribute.
            "colour": r.get("colour_master") or r["colour"],
            "pattern": r["pattern"],
            "price": synthetic_price(r["item_id"], r["category_group"]),
            "currency": "EUR",
            "stock": synthetic_stock(r["item_id"], r["category_group"]),
            "group": r["group_id"],
            "images": r["file"],
        }
        out.update({col: r.get(col, "") for col in EXTRA_COLUMNS})
        out["colour_name"] = r["colour"]
        yield out


def hm_to_catalog_csv(source: Path, out: Path, *, split: str = "all", limit: int | None = None) -> int:
    """Write the catalog CSV (images relative to ``source``). Returns the number of products."""
    rows = select_rows(read_manifest(source), split=split, limit=limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*KNOWN_COLUMNS, *EXTRA_COLUMNS])
        writer.writeheader()
        writer.writerows(catalog_rows(rows))
    return len(rows)
