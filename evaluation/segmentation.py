"""``python manage.py evaluate segmentation --manifest M.csv [--limit N]``: garment-vs-rest masks.

The manifest is a CSV with columns ``image,mask`` (paths relative to the manifest's folder, or
absolute); a mask pixel ≥ 128 is garment. Every method runs on the same images: the shop's garment
parser (newest checkpoint, or ``--checkpoint``), rembg ``u2netp``, the PAN clothes channel and u2netp
minus PAN skin/hair. Per image Dice and IoU (vision.metrics) are averaged per method; the report is
``segmentation.json``, ``segmentation.md`` and ``segmentation.png`` in the output folder.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from evaluation.report import bar_plot, write_report
from vision.assets import AssetMissing
from vision.metrics import dice, iou

NAME = "segmentation"
METHODS = ("shop-parser", "u2netp", "pan", "u2netp-minus-pan-skin-hair")
DEPENDS_ON: dict[str, tuple[str, ...]] = {
    "u2netp": ("u2netp",),
    "pan": ("pan",),
    "u2netp-minus-pan-skin-hair": ("u2netp", "pan"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manifest", type=Path, required=True, help="CSV with columns image,mask (mask ≥128 = garment)"
    )
    parser.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {', '.join(METHODS)} (default: all)",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="parser checkpoint (default: the newest)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch / onnxruntime")


def read_manifest(path: Path) -> list[tuple[Path, Path]]:
    """(image, mask) absolute paths of an ``image,mask`` CSV."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"image", "mask"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"manifest {path} lacks the column(s) {', '.join(sorted(missing))}")
        rows = [(row["image"].strip(), row["mask"].strip()) for row in reader]
    base = path.parent
    return [((base / image).resolve(), (base / mask).resolve()) for image, mask in rows if image and mask]


def load_pair(image_path: Path, mask_path: Path) -> tuple[Image.Image, np.ndarray]:
    """The EXIF-transposed RGB photo and its bool garment mask (resized to the photo if it differs)."""
    with Image.open(image_path) as im:
        image = ImageOps.exif_transpose(im).convert("RGB")
    with Image.open(mask_path) as m:
        mask = m.convert("L")
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.Resampling.NEAREST)
        gt = np.asarray(mask) >= 128
    return image, gt


def _build_methods(
    wanted: list[str], checkpoint: Path | None, threads: int | None, log: Callable[[str], None]
) -> tuple[dict[str, Callable[[Image.Image, dict[str, Any]], np.ndarray]], dict[str, str], dict[str, Any]]:
    """Predictors (image, per-image cache) → bool mask; reasons for methods that cannot run; extra info."""
    predictors: dict[str, Callable[[Image.Image, dict[str, Any]], np.ndarray]] = {}
    skipped: dict[str, str] = {}
    info: dict[str, Any] = {}

    if "shop-parser" in wanted:
        try:
            from vision.parser import GarmentParser

            parser = GarmentParser.load(checkpoint)
            info["parser_version"] = parser.version
            info["parser_checkpoint"] = str(parser.path)
            predictors["shop-parser"] = lambda image, cache: parser.parse(image).garment_mask()
        except (AssetMissing, ValueError) as exc:
            skipped["shop-parser"] = str(exc)

    u2 = pan = None
    if {"u2netp", "u2netp-minus-pan-skin-hair"} & set(wanted):
        try:
            from vision.baselines import U2NetPBaseline

            u2 = U2NetPBaseline(threads=threads)
        except AssetMissing as exc:
            skipped["u2netp"] = str(exc)
    if {"pan", "u2netp-minus-pan-skin-hair"} & set(wanted):
        try:
            from vision.baselines import PanBaseline

            pan = PanBaseline(threads=threads)
        except AssetMissing as exc:
            skipped["pan"] = str(exc)

    # u2netp and PAN outputs are shared between methods within one image; their run time is kept under
    # cache["seconds"] so that each method is charged the full cost of what it uses.
    def salient(image: Image.Image, cache: dict[str, Any]) -> np.ndarray:
        if "u2netp" not in cache:
            assert u2 is not None
            t0 = time.perf_counter()
            cache["u2netp"] = u2.garment_mask(image)
            cache["seconds"]["u2netp"] = time.perf_counter() - t0
        return cache["u2netp"]

    def pan_masks(image: Image.Image, cache: dict[str, Any]) -> dict[str, np.ndarray]:
        if "pan" not in cache:
            assert pan is not None
            t0 = time.perf_counter()
            cache["pan"] = pan.masks(image)
            cache["seconds"]["pan"] = time.perf_counter() - t0
        return cache["pan"]

    if u2 is not None and "u2netp" in wanted:
        predictors["u2netp"] = salient
    if pan is not None and "pan" in wanted:
        predictors["pan"] = lambda image, cache: pan_masks(image, cache)["clothes"]
    if "u2netp-minus-pan-skin-hair" in wanted:
        if u2 is not None and pan is not None:
            from vision.baselines import U2NetPMinusPanBaseline

            predictors["u2netp-minus-pan-skin-hair"] = lambda image, cache: U2NetPMinusPanBaseline.combine(
                salient(image, cache), pan_masks(image, cache)
            )
        else:
            skipped["u2netp-minus-pan-skin-hair"] = "needs both u2netp and PAN"
    for name, reason in skipped.items():
        log(f"skipping {name}: {reason}")
    return predictors, skipped, info


def run(options: dict[str, Any], out_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    manifest = Path(options["manifest"])
    pairs = read_manifest(manifest)
    limit = options.get("limit")
    if limit:
        pairs = pairs[: int(limit)]
    if not pairs:
        raise ValueError(f"manifest {manifest} lists no image,mask rows")
    wanted = [m.strip() for m in str(options.get("methods") or ",".join(METHODS)).split(",") if m.strip()]
    unknown = sorted(set(wanted) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    threads = options.get("threads")
    predictors, skipped, info = _build_methods(wanted, options.get("checkpoint"), threads, log)
    if threads:  # after the baselines are built: importing rembg (numba) resets torch's thread count
        import torch

        torch.set_num_threads(int(threads))
    if not predictors:
        raise ValueError("no method could run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    scores: dict[str, dict[str, list[float]]] = {m: {"dice": [], "iou": []} for m in predictors}
    seconds: dict[str, float] = dict.fromkeys(predictors, 0.0)
    per_image: list[dict[str, Any]] = []
    for image_path, mask_path in tqdm(pairs, desc="segmentation", mininterval=10):
        image, gt = load_pair(image_path, mask_path)
        cache: dict[str, Any] = {"seconds": {}}
        row: dict[str, Any] = {"image": str(image_path)}
        for method, predict in predictors.items():
            shared_before = sum(cache["seconds"].values())
            t0 = time.perf_counter()
            pred = predict(image, cache)
            own = time.perf_counter() - t0 - (sum(cache["seconds"].values()) - shared_before)
            seconds[method] += own + sum(cache["seconds"].get(dep, 0.0) for dep in DEPENDS_ON.get(method, ()))
            d, j = dice(pred, gt), iou(pred, gt)
            scores[method]["dice"].append(d)
            scores[method]["iou"].append(j)
            row[method] = {"dice": round(d, 4), "iou": round(j, 4)}
        per_image.append(row)

    n = len(pairs)
    methods = {
        m: {
            "dice": float(np.mean(s["dice"])),
            "iou": float(np.mean(s["iou"])),
            "dice_median": float(np.median(s["dice"])),
            "iou_median": float(np.median(s["iou"])),
            "n": n,
            "ms_per_image": 1000.0 * seconds[m] / n,
        }
        for m, s in scores.items()
    }
    metrics: dict[str, Any] = {
        "manifest": str(manifest.resolve()),
        "n_images": n,
        "methods": methods,
        "skipped": skipped,
        **info,
        "per_image": per_image,
    }
    rows = [
        {
            "method": m,
            "dice": v["dice"],
            "iou": v["iou"],
            "dice (median)": v["dice_median"],
            "iou (median)": v["iou_median"],
            "images": n,
            "ms/image": round(v["ms_per_image"], 1),
        }
        for m, v in sorted(methods.items(), key=lambda kv: -kv[1]["dice"])
    ]
    write_report(out_dir, NAME, metrics, rows)
    bar_plot(
        out_dir,
        NAME,
        {m: {"dice": v["dice"], "iou": v["iou"]} for m, v in methods.items()},
        f"garment-vs-rest on {manifest.name} ({n} images)",
    )
    log(f"garment-vs-rest segmentation, {n} images from {manifest}")
    for line in _table_lines(rows):
        log(line)
    return metrics


def _table_lines(rows: list[dict[str, Any]]) -> list[str]:
    from evaluation.report import markdown_table

    return markdown_table(rows).rstrip("\n").splitlines()
