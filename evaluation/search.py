"""``evaluate search``: a catalog CSV and labelled queries, through the shop's real code.

The catalog is imported with ``import_catalog``'s service into a fresh database of its own (created
beside the shop's on the same server and dropped afterwards), every image is processed with the real
pipeline code (``workers.services.image_pipeline_run``), and each query runs through
``search.services``: text queries once per signal alone (``image``, ``text``, ``keyword``) and fused
(``hybrid``); photo queries through the garment parser (``photo``).

Queries are JSON lines: ``{"id": ..., "text": "black striped t-shirt", "relevant": ["SKU", ...]}`` or
``{"id": ..., "image": "path.jpg", "relevant": [...]}`` (paths relative to the queries file or absolute);
an optional ``"family"`` groups queries in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from PIL import Image
from tqdm import tqdm

from search.query_photos import MAX_SIDE as PHONE_PHOTO_SIDE
from vision.images import resized_to_long_side

# Each photo query also runs scaled up to the size the storefront keeps a phone's photo at
# (search/query_photos.py): the shop parses it at SEARCH_PHOTO_MAX_SIDE, and it should find what the
# photo as taken finds.
PHONE_MODE = f"photo-{PHONE_PHOTO_SIDE}px"
# The baseline of the shop's parse size (SEARCH_PHOTO_PARSE_SIZE): each photo as taken, read by the
# parser at its own working size.
PARSER_SIZE_MODE = "photo-parser-size"
TEXT_MODES = {
    "image": ("image",),
    "text": ("text",),
    "keyword": ("keyword",),
    "attributes": ("attributes",),
    "categories": ("categories",),
    "hybrid": ("image", "text", "keyword", "attributes", "categories"),
    # the image-only index: the photos' vectors and the attributes predicted from the photos; no
    # titles, descriptions or catalog labels are searched
    "predicted": ("predicted",),
    "image+predicted": ("image", "predicted"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalog", type=Path, required=True, help="catalog CSV (import_catalog format)")
    parser.add_argument("--queries", type=Path, required=True, help="JSON lines of queries")
    parser.add_argument("--images-root", type=Path, default=None, help="default: the catalog's folder")
    parser.add_argument(
        "--modes",
        default="image,text,keyword,attributes,categories,hybrid,predicted,image+predicted",
        help="text-query modes to report",
    )
    parser.add_argument("--limit-queries", type=int, default=None)
    parser.add_argument(
        "--tune-fusion",
        action="store_true",
        help="also grid-search the fusion weights per query profile on these (train!) queries and report them",
    )
    parser.add_argument(
        "--write-weights",
        type=Path,
        default=None,
        help="with --tune-fusion: write the tuned table here (the shop reads search/fusion_weights.json)",
    )
    add_database_arguments(parser)


@contextmanager
def fresh_database(keep: bool = False) -> Iterator[str]:
    """Point the default connection at a new, migrated database; drop it afterwards."""
    import psycopg

    db = settings.DATABASES["default"]
    name = f"shop_eval_{os.getpid()}_{int(time.time())}"
    dsn: dict[str, Any] = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "password": db["PASSWORD"]}
    with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with use_database(name):
            call_command("migrate", verbosity=0, interactive=False)
            yield name
    finally:
        if not keep:
            with psycopg.connect(dbname="postgres", autocommit=True, **dsn) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def use_database(name: str) -> Iterator[str]:
    """Point the default connection at an existing (evaluation) database for a while."""
    db = settings.DATABASES["default"]
    original = db["NAME"]
    connections["default"].close()
    db["NAME"] = connections["default"].settings_dict["NAME"] = name
    try:
        yield name
    finally:
        connections["default"].close()
        db["NAME"] = connections["default"].settings_dict["NAME"] = original


@contextmanager
def catalog_database(options: dict[str, Any], log: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """A database holding ``--catalog`` with every image processed by the real pipeline: a fresh one
    (dropped afterwards unless ``--keep-db``), or the one ``--reuse-db NAME`` names (kept by an earlier
    run), which skips the import and the processing."""
    from catalog.services import catalog_import_csv

    settings.SHOP_PIPELINE = "off"  # the evaluation processes the images itself, in its own database
    if options.get("reuse_db"):
        with use_database(options["reuse_db"]) as name:
            call_command("migrate", verbosity=0, interactive=False)  # kept by an older version of the code
            log(f"reusing evaluation database {name} (import and processing skipped)")
            yield {"database": name, "import": "reused", "images": "reused"}
        return
    catalog: Path = options["catalog"]
    with fresh_database(keep=options.get("keep_db", False)) as name:
        log(
            f"evaluation database {name}"
            + (" (kept: pass --reuse-db to use it again)" if options.get("keep_db") else "")
        )
        report = catalog_import_csv(catalog, options.get("images_root") or catalog.resolve().parent)
        log(f"catalog: {report.summary()}")
        outcomes = process_all_images(log)
        yield {"database": name, "import": report.summary(), "images": outcomes}


def add_database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-db", action="store_true", help="keep the evaluation database afterwards")
    parser.add_argument(
        "--reuse-db", default="", help="use this kept evaluation database (skips import and processing)"
    )


def load_queries(path: Path, limit: int | None) -> list[dict[str, Any]]:
    queries = []
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                q = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {line_no}: not JSON ({exc})") from exc
            nonsense = q.get("family") == "nonsense"  # nothing is relevant: the shop should say so
            if not (q.get("relevant") or nonsense) or not (q.get("text") or q.get("image")):
                raise ValueError(f"{path} line {line_no}: needs 'relevant' and either 'text' or 'image'")
            if q.get("image"):
                image = Path(q["image"])
                q["image"] = str(image if image.is_absolute() else path.parent / image)
            queries.append(q)
    return queries[:limit] if limit else queries


def process_all_images(log: Callable[[str], None]) -> dict[str, int]:
    from catalog.selectors import images_with_status
    from workers.services import image_pipeline_run

    ids = list(images_with_status("pending", "processing").values_list("pk", flat=True))
    outcomes: dict[str, int] = defaultdict(int)
    for image_id in tqdm(ids, desc="processing images (real pipeline)", unit="img"):
        outcomes[image_pipeline_run(image_id)] += 1
    log(f"processed {len(ids)} images: {dict(outcomes)}")
    return dict(outcomes)


FUSION_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
MIN_PROFILE_QUERIES = 8  # a profile with fewer tuning queries keeps the default weights


def _objective(ranked: list[str], relevant: set[str], family: str) -> float:
    """What tuning maximises per query: P@10, or the reciprocal rank for a navigational query (one
    right answer: P@10 could never pass 0.1)."""
    from vision.metrics import precision_at_k, reciprocal_rank

    return reciprocal_rank(ranked[:10], relevant) if family == "navigational" else precision_at_k(ranked, relevant, 10)


def tune_fusion(
    queries: list[dict[str, Any]],
    sku_of: dict[int, str],
    log: Callable[[str], None],
    write: Path | None = None,
    source: str = "",
) -> dict[str, Any]:
    """The signals' fusion weights per query profile (:func:`search.services.fusion_profile`), by grid
    search (keyword weight 1, the others from :data:`FUSION_GRID`) maximising the mean of
    :func:`_objective` over the profile's queries; ties go to the weights closest to the defaults.
    Tune on the **train** split's queries only. ``write``: save the table there (search reads
    search/fusion_weights.json)."""
    import itertools

    from search.services import DEFAULT_SIGNALS, FUSION_WEIGHTS, fuse, signal_lists

    texts = [q for q in queries if q.get("text") and q.get("relevant")]
    per_query = []
    for q in tqdm(texts, desc="signal lists for tuning", unit="q"):
        ranking = signal_lists(q["text"], pool=100)
        per_query.append((ranking.profile, ranking.lists, set(q["relevant"]), q.get("family", "text")))
    by_profile: dict[str, list[tuple[dict[str, Any], set[str], str]]] = defaultdict(list)
    for profile, lists, relevant, family in per_query:
        by_profile[profile].append((lists, relevant, family))

    def score(weights: dict[str, float], cases: list[tuple[dict[str, Any], set[str], str]]) -> float:
        total = 0.0
        for lists, relevant, family in cases:
            ranked = [sku_of[h.product_id] for h in fuse(lists, 10, weights)]
            total += _objective(ranked, relevant, family)
        return total / max(1, len(cases))

    default = {k: FUSION_WEIGHTS[k] for k in DEFAULT_SIGNALS}
    table: dict[str, dict[str, float]] = {}
    report: dict[str, Any] = {}
    for profile, cases in sorted(by_profile.items()):
        before = score(default, cases)
        if len(cases) < MIN_PROFILE_QUERIES:
            report[profile] = {"queries": len(cases), "default": round(before, 4), "tuned": None}
            continue
        best = (before, 0.0, default)
        for wi, wt, wa, wc in itertools.product(FUSION_GRID, FUSION_GRID, FUSION_GRID, FUSION_GRID):
            weights = {"image": wi, "text": wt, "keyword": 1.0, "attributes": wa, "categories": wc}
            closeness = -sum(abs(weights[k] - default[k]) for k in weights)
            candidate = (round(score(weights, cases), 4), closeness, weights)
            if candidate[:2] > best[:2]:
                best = candidate
        table[profile] = best[2]
        report[profile] = {"queries": len(cases), "default": round(before, 4), "tuned": best[0], "weights": best[2]}
        log(
            f"fusion profile {profile}: {len(cases)} queries, {before:.4f} with the default weights, "
            f"{best[0]:.4f} with {best[2]}"
        )
    if write is not None:
        write.write_text(
            json.dumps(
                {
                    "about": "fusion weights per query profile (search.services.fusion_profile), tuned by "
                    "`manage.py evaluate search --tune-fusion --write-weights` on the train split's queries",
                    "tuned_on": f"{len(texts)} queries of {source or 'the given file'}",
                    "report": report,
                    "profiles": table,
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        log(f"fusion weights written to {write}")
    return {"profiles": report, "table": table}


def _query_row(query: dict[str, Any], ranked: list[str], relevant: set[str]) -> dict[str, Any]:
    top = ranked[:10]
    return {
        "id": query.get("id"),
        "query": query.get("text") or query.get("image"),
        "hits@10": sum(sku in relevant for sku in top),
        "top10": [sku if sku in relevant else f"{sku} (not relevant)" for sku in top],
    }


def run(options: dict[str, Any], out_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from catalog.selectors import product_prices, product_skus_by_id
    from evaluation.report import bar_plot, write_report
    from search.services import merge_garment_results, search_photo, search_products, search_text
    from vision.metrics import summarise_ranking

    catalog: Path = options["catalog"]
    queries = load_queries(options["queries"], options.get("limit_queries"))
    modes = [m.strip() for m in options["modes"].split(",") if m.strip()]
    bad = [m for m in modes if m not in TEXT_MODES]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}; choose from {sorted(TEXT_MODES)}")
    started = time.time()
    with catalog_database(options, log) as prepared:
        sku_of = product_skus_by_id()
        runs: dict[str, list[tuple[list[str], set[str]]]] = defaultdict(list)
        by_family: dict[str, dict[str, list[tuple[list[str], set[str]]]]] = defaultdict(lambda: defaultdict(list))
        timings: dict[str, list[float]] = defaultdict(list)
        # each query's top 10 per mode, with the relevant ones marked, to see what a mode gets wrong
        per_query: dict[str, list[dict[str, Any]]] = defaultdict(list)
        within: dict[str, list[float]] = defaultdict(list)  # price queries: share of results within the bound
        nonsense: list[dict[str, Any]] = []
        for q in tqdm(queries, desc="queries", unit="q"):
            relevant = set(q["relevant"])
            family = q.get("family", "text" if q.get("text") else "photo")
            if family == "nonsense":
                answer = search_products(q["text"], page_size=10)
                nonsense.append(
                    {
                        "query": q["text"],
                        "said_no_match": bool(answer.note) or answer.total == 0,
                        "did_you_mean": answer.corrected_query,
                    }
                )
                continue
            if q.get("text"):
                for mode in modes:
                    t0 = time.perf_counter()
                    hits = search_text(q["text"], signals=TEXT_MODES[mode], limit=10)
                    timings[mode].append(time.perf_counter() - t0)
                    ranked = [sku_of[h.product_id] for h in hits]
                    runs[mode].append((ranked, relevant))
                    by_family[family][mode].append((ranked, relevant))
                    per_query[mode].append(_query_row(q, ranked, relevant))
                    if q.get("price_max") is not None:
                        prices = product_prices([h.product_id for h in hits])
                        within[mode].append(
                            sum(prices[h.product_id] <= q["price_max"] for h in hits) / max(1, len(hits))
                        )
            else:
                with Image.open(q["image"]) as im:
                    image = im.convert("RGB")
                # the photo as taken, and scaled up to the size a phone's photo is kept at (the shop
                # parses it at SEARCH_PHOTO_MAX_SIDE): the same answers are expected of both
                phone = resized_to_long_side(image, PHONE_PHOTO_SIDE)
                for mode, photo, parse_size in (
                    ("photo", image, settings.SEARCH_PHOTO_PARSE_SIZE),
                    (PHONE_MODE, phone, settings.SEARCH_PHOTO_PARSE_SIZE),
                    (PARSER_SIZE_MODE, image, 0),
                ):
                    t0 = time.perf_counter()
                    with override_settings(SEARCH_PHOTO_PARSE_SIZE=parse_size):
                        hits = merge_garment_results(search_photo(photo, limit=20), limit=10)
                    timings[mode].append(time.perf_counter() - t0)
                    ranked = [sku_of[h.product_id] for h in hits]
                    runs[mode].append((ranked, relevant))
                    by_family[family][mode].append((ranked, relevant))
                    per_query[mode].append(_query_row(q, ranked, relevant))
        tuning = None
        if options.get("tune_fusion"):
            tuning = tune_fusion(queries, sku_of, log, options.get("write_weights"), options["queries"].name)
    metrics = {mode: {**summarise_ranking(r), "queries": len(r)} for mode, r in runs.items()}
    families = {
        fam: {mode: {**summarise_ranking(r), "queries": len(r)} for mode, r in per_mode.items()}
        for fam, per_mode in by_family.items()
    }
    latency = {mode: round(1000 * sum(v) / len(v), 1) for mode, v in timings.items() if v}
    rows = [
        {"mode": mode, **{k: round(v, 4) for k, v in m.items()}, "mean_ms": latency.get(mode)}
        for mode, m in metrics.items()
    ]
    for fam, per_mode in families.items():
        if fam.endswith("-typo") and fam[: -len("-typo")] in families:  # the same queries spelt right
            for mode, m in per_mode.items():
                right = families[fam[: -len("-typo")]].get(mode)
                if right:
                    m["p@10_vs_spelt_right"] = m["precision@10"] - right["precision@10"]
    if within:
        families.setdefault("price", {})
        for mode, shares in within.items():
            families["price"].setdefault(mode, {})["results_within_bound"] = sum(shares) / len(shares)
    if nonsense:
        families["nonsense"] = {
            "hybrid": {
                "said_no_match": sum(n["said_no_match"] for n in nonsense) / len(nonsense),
                "did_you_mean": sum(bool(n["did_you_mean"]) for n in nonsense) / len(nonsense),
                "queries": len(nonsense),
            }
        }
    kinds_table = kind_table(families)
    for fam, per_mode in families.items():
        for mode, m in per_mode.items():
            rows.append({"mode": f"{fam}/{mode}", **{k: round(v, 4) for k, v in m.items()}})
    result = {
        "catalog": str(catalog),
        "queries": str(options["queries"]),
        "import": prepared["import"],
        "images": prepared["images"],
        "metrics": metrics,
        "families": families,
        "mean_latency_ms": latency,
        "fusion_tuning": tuning,
        "seconds": round(time.time() - started, 1),
        "per_query": per_query,
        "nonsense": nonsense,
        "kinds": kinds_table,
    }
    write_report(out_dir, "search", result, rows)
    bar_plot(
        out_dir,
        "search",
        {mode: {k: v for k, v in m.items() if k != "queries"} for mode, m in metrics.items()},
        f"search quality: {options['queries'].name}",
    )
    for row in rows:
        log("  ".join(f"{k}={v}" for k, v in row.items()))
    if kinds_table:
        log("\n" + kinds_table)
        with (out_dir / "search.md").open("a", encoding="utf-8") as fh:
            fh.write("\n## P@10 per kind of query (R@1 for navigational)\n\n" + kinds_table + "\n")
    return result


def kind_table(families: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per kind of query, one column per signal and the fused result: P@10 (navigational:
    R@1; price: P@10 and the share of results within the bound; nonsense: how often the shop said it
    found no match)."""
    modes = [m for m in TEXT_MODES if any(m in per_mode for per_mode in families.values())]
    if not modes:
        return ""
    lines = ["| kind | queries | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]
    for fam in sorted(families):
        per_mode = families[fam]
        if fam == "nonsense":
            h = per_mode["hybrid"]
            note = f"said no match {h['said_no_match']:.2f}, did you mean {h['did_you_mean']:.2f}"
            lines.append(
                f"| nonsense | {h['queries']} | " + " | ".join(note if m == "hybrid" else "" for m in modes) + " |"
            )
            continue
        key = "recall@1" if fam == "navigational" else "precision@10"
        cells = []
        for mode in modes:
            m = per_mode.get(mode)
            if not m or key not in m:
                cells.append("")
                continue
            cell = f"{m[key]:.3f}"
            if "results_within_bound" in m:
                cell += f" ({m['results_within_bound']:.2f} in bound)"
            cells.append(cell)
        count = next((int(m["queries"]) for m in per_mode.values() if "queries" in m), 0)
        lines.append(f"| {fam} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
