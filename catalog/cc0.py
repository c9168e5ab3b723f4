"""Convert the CC0 clothing photo set (``manifest.csv`` + ``images/``) to the shop's catalog CSV.

The set (crowd-sourced photos of real garments, CC0) has a coarse category per photo and nothing
else, so titles and descriptions are built from the category, and prices and stock are made up
deterministically from the item id as for the H&M demo (same input, same output). It is the one
demo catalog whose pictures may be shipped, e.g. in the README's screenshots.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from catalog.csv_format import KNOWN_COLUMNS
from catalog.hm import SourceError, synthetic_price, synthetic_stock

GROUPS = {  # cc0 category -> (category group, display name, H&M-style price group)
    "T-Shirt": ("Tops", "T-shirt", "Garment Upper body"),
    "Longsleeve": ("Tops", "Long-sleeve top", "Garment Upper body"),
    "Polo": ("Tops", "Polo shirt", "Garment Upper body"),
    "Shirt": ("Tops", "Shirt", "Garment Upper body"),
    "Top": ("Tops", "Top", "Garment Upper body"),
    "Blouse": ("Tops", "Blouse", "Garment Upper body"),
    "Hoodie": ("Tops", "Hoodie", "Garment Upper body"),
    "Undershirt": ("Underwear", "Undershirt", "Underwear"),
    "Body": ("Underwear", "Body", "Underwear"),
    "Outwear": ("Outerwear", "Jacket", "Garment Upper body"),
    "Blazer": ("Outerwear", "Blazer", "Garment Upper body"),
    "Pants": ("Bottoms", "Trousers", "Garment Lower body"),
    "Shorts": ("Bottoms", "Shorts", "Garment Lower body"),
    "Skirt": ("Bottoms", "Skirt", "Garment Lower body"),
    "Dress": ("Dresses", "Dress", "Garment Full body"),
    "Shoes": ("Shoes", "Shoes", "Shoes"),
    "Hat": ("Accessories", "Hat", "Accessories"),
}


def cc0_rows(source: Path, *, limit: int | None = None) -> list[dict[str, str]]:
    manifest = source / "manifest.csv"
    if not manifest.is_file():
        raise SourceError(f"{source} has no manifest.csv; point --source at the CC0 folder (shared/data/cc0)")
    with manifest.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("category") in GROUPS]
    if not rows:
        raise SourceError(f"{manifest} has no rows with a known category ({', '.join(sorted(GROUPS))})")
    # one photo per duplicate group, in a stable mixed order
    seen: set[str] = set()
    chosen = []
    for r in sorted(rows, key=lambda r: hashlib.sha1(r["item_id"].encode()).hexdigest()):
        if r.get("dup_group", r["item_id"]) in seen:
            continue
        seen.add(r.get("dup_group", r["item_id"]))
        chosen.append(r)
    return chosen[:limit] if limit else chosen


def catalog_row(r: dict[str, str]) -> dict[str, str]:
    group, name, price_group = GROUPS[r["category"]]
    kids = r.get("kids", "").lower() == "true"
    audience = "Kids" if kids else "Adults"
    number = int(hashlib.sha1(r["item_id"].encode()).hexdigest()[:4], 16) % 900 + 100
    title = f"{'Kids’ ' if kids else ''}{name} no. {number}"
    return {
        "sku": "CC0-" + r["item_id"].split("-")[0].upper(),
        "title": title,
        "description": f"{name} ({audience.lower()}), photographed as sold second hand: a real garment, laid flat.",
        "category": f"{audience} > {group} > {name}",
        "colour": "",
        "pattern": "",
        "price": synthetic_price(r["item_id"], price_group),
        "currency": "EUR",
        "stock": synthetic_stock(r["item_id"], price_group),
        "group": "",
        "images": r["file"],
    }


def cc0_to_catalog_csv(source: Path, out: Path, *, limit: int | None = None) -> int:
    """Write the catalog CSV (images relative to ``source``). Returns the number of products."""
    rows = cc0_rows(source, limit=limit)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(KNOWN_COLUMNS))
        writer.writeheader()
        writer.writerows(catalog_row(r) for r in rows)
    return len(rows)


def is_cc0_folder(source: Path) -> bool:
    """True when ``source/manifest.csv`` has the CC0 set's columns (and not the H&M set's)."""
    try:
        with (source / "manifest.csv").open(newline="", encoding="utf-8") as fh:
            header = set(next(csv.reader(fh)))
    except (OSError, StopIteration):
        return False
    return {"item_id", "category", "kids"} <= header and "title" not in header
