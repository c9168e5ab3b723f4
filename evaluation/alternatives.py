"""``evaluate alternatives``: in-stock alternatives for out-of-stock products, on an H&M-style catalog.

The catalog (the ``import_catalog`` format, e.g. ``var/eval/sets/hm_dev_catalog.csv``) is imported into a
fresh database of its own and every image goes through the real pipeline, as ``evaluate search`` does.
Then, for each product (``--limit-items`` of them, in file order), the product is marked out of stock
and the shop's :func:`search.alternatives.alternatives_for` is asked for ``--k`` alternatives.

Metrics (each method on the same items):

* ``same_type@k`` — share of returned slots whose category (the H&M product type) equals the item's;
* ``other_colour_hit@k`` — among items with another colour of the same design in stock, the share
  whose top k contains one;
* ``in_stock`` — share of returned products that are in stock (must be 1.0);
* ``filled`` — share of the k slots filled.

Baselines: ``nearest look`` (the k nearest products by image vector, in stock, nothing else) and
``same category by price`` (in-stock products of the same category, closest in price).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import transaction
from tqdm import tqdm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, required=True, help="catalog CSV (import_catalog format)")
    parser.add_argument("--images-root", type=Path, default=None, help="folder the image paths are relative to")
    parser.add_argument("--k", type=int, default=5, help="alternatives asked for (default 5)")
    parser.add_argument("--limit-items", type=int, default=None, help="evaluate only the first N products")
    from evaluation.search import add_database_arguments

    add_database_arguments(parser)


def _baseline_nearest_look(product_id: int, k: int) -> list[int]:
    from catalog import selectors
    from catalog.models import EmbeddingSpace

    space = selectors.embedding_space_active(EmbeddingSpace.Modality.IMAGE_TEXT)
    if space is None:
        return []
    vec = selectors.product_vectors([product_id], space, "image").get(product_id)
    if vec is None:
        return []
    filters = selectors.ProductFilters(in_stock=True, exclude_ids=(product_id,))
    hits = selectors.vector_nearest(table="product", space=space, kind="image", query=vec, k=k, filters=filters)
    return [h.owner_id for h in hits]


def _baseline_category_price(product_id: int, k: int, briefs: dict[int, Any]) -> list[int]:
    source = briefs[product_id]
    same = [b for pid, b in briefs.items() if pid != product_id and b.category_id == source.category_id and b.in_stock]
    same.sort(key=lambda b: (abs(float(b.price) - float(source.price)), b.id))
    return [b.id for b in same[:k]]


def run(options: dict[str, Any], out_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from catalog import selectors
    from catalog.services import product_set_stock
    from evaluation.report import bar_plot, write_report
    from evaluation.search import catalog_database
    from search.alternatives import alternatives_for

    catalog: Path = options["catalog"]
    k = int(options.get("k") or 5)
    started = time.time()
    with catalog_database(options, log) as prepared:
        products = list(selectors.product_list(active_only=True).order_by("id"))
        if options.get("limit_items"):
            products = products[: int(options["limit_items"])]
        all_ids = list(selectors.product_list(active_only=True).values_list("id", flat=True))
        briefs = selectors.product_briefs(all_ids)
        methods: dict[str, Callable[[int], list[int]]] = {
            "shop alternatives": lambda pid: [a.product_id for a in alternatives_for(pid, limit=k)],
            "nearest look": lambda pid: _baseline_nearest_look(pid, k),
            "same category by price": lambda pid: _baseline_category_price(pid, k, briefs),
        }
        totals = {m: {"slots": 0, "same_type": 0, "in_stock": 0, "design_items": 0, "design_hits": 0} for m in methods}
        reasons: dict[str, int] = {}
        for product in tqdm(products, desc="alternatives", unit="item"):
            source = briefs.get(product.pk)
            if source is None:
                continue
            stock_before = {v.size: v.stock for v in product.variants.all()}
            with transaction.atomic():
                product_set_stock(product, dict.fromkeys(stock_before, 0))  # out of stock now
            briefs[product.pk] = selectors.product_briefs([product.pk])[product.pk]
            other_colours = {
                pid
                for pid, b in briefs.items()
                if pid != product.pk
                and source.design_group
                and b.design_group == source.design_group
                and b.colour.lower() != source.colour.lower()
                and b.in_stock
            }
            for name, method in methods.items():
                chosen = method(product.pk)
                t = totals[name]
                t["slots"] += len(chosen)
                t["same_type"] += sum(1 for pid in chosen if briefs[pid].category_id == source.category_id)
                t["in_stock"] += sum(1 for pid in chosen if briefs[pid].in_stock)
                t.setdefault("asked", 0)
                t["asked"] += k
                if other_colours:
                    t["design_items"] += 1
                    t["design_hits"] += int(bool(other_colours & set(chosen)))
            for alt in alternatives_for(product.pk, limit=k):
                key = alt.reason.split(" in ")[0].split(",")[0]
                reasons[key] = reasons.get(key, 0) + 1
            with transaction.atomic():
                product_set_stock(product, stock_before)
            briefs[product.pk] = source
    metrics = {
        name: {
            "same_type@k": t["same_type"] / max(1, t["slots"]),
            "other_colour_hit@k": t["design_hits"] / max(1, t["design_items"]),
            "in_stock": t["in_stock"] / max(1, t["slots"]),
            "filled": t["slots"] / max(1, t["asked"]),
            "items": len(products),
            "items_with_other_colour_in_stock": t["design_items"],
        }
        for name, t in totals.items()
    }
    rows = [{"method": name, **{key: round(v, 4) for key, v in m.items()}} for name, m in metrics.items()]
    result = {
        "catalog": str(catalog),
        "k": k,
        "import": prepared["import"],
        "images": prepared["images"],
        "metrics": metrics,
        "reasons": reasons,
        "seconds": round(time.time() - started, 1),
    }
    write_report(out_dir, "alternatives", result, rows)
    bar_plot(
        out_dir,
        "alternatives",
        {
            n: {key: m[key] for key in ("same_type@k", "other_colour_hit@k", "in_stock", "filled")}
            for n, m in metrics.items()
        },
        f"out-of-stock alternatives (k={k})",
    )
    for row in rows:
        log("  ".join(f"{key}={value}" for key, value in row.items()))
    return result
