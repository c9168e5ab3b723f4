"""``evaluate attributes``: top-1 accuracy of the predicted category, colour and pattern.

Each image goes through the same steps as in the pipeline (garment parser → cutout → embedder
trunk features of the cutout and the whole photo + the cutout's colour descriptor → attribute
heads). Baselines in the same run, fitted on a sample of the train split: the majority label; a
linear classifier on the ImageNet EfficientNet-Lite0 features alone; and one on the colour
histogram alone.

Input: a CSV with ``image,category,colour,pattern`` (paths relative to the CSV or absolute), e.g.
``hm_dev_attributes.csv`` from ``build_eval_sets``; the baselines' training CSV (``--train``) has
the same columns.

``--annotations A.csv`` (repeatable): a second annotator's labels for a sample of the manifest's items
(``item_id`` and any of ``category,colour,pattern``, e.g. from ``scripts/label_audit.py``). For each
labelled attribute the report gives how often that annotator agrees with the manifest and, on the
very same items, the shop's and each baseline's accuracy: the agreement of a person who reads only
the photo is the ceiling an image model can be held to on these labels.
"""

from __future__ import annotations

import argparse
import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from vision.colour import SIZE

ATTRS = ("category", "colour", "pattern")
ANNOTATOR = "second annotator"
BASELINES = ("majority", "imagenet_features", "colour_histogram")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="CSV: image,category,colour,pattern")
    parser.add_argument("--train", type=Path, default=None, help="CSV of the same kind to fit the baselines on")
    parser.add_argument("--train-limit", type=int, default=1500, help="baseline training sample size")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--annotations",
        type=Path,
        action="append",
        default=[],
        help="CSV of a second annotator's labels (item_id + category/colour/pattern) for a sample; repeatable",
    )


def read_rows(path: Path, limit: int | None) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"image", *ATTRS} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}")
    for row in rows:
        image = Path(row["image"])
        row["image"] = str(image if image.is_absolute() else path.parent / image)
    return rows[:limit] if limit else rows


def shop_view(image: Image.Image) -> Image.Image:
    """The pipeline's cutout of a product photo (all items the parser finds; the fallback parser where
    no parser has been trained yet)."""
    from vision.parser import cutout, parser_newest_or_fallback

    mask = parser_newest_or_fallback().parse(image).item_mask()
    return cutout(image, mask) if mask.sum() > 0.002 * mask.size else image


def read_annotations(path: Path) -> dict[str, dict[str, str]]:
    """``item_id`` -> {attribute: label} from an annotator's CSV (blank cells are left out)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    columns = set(rows[0] if rows else {})
    if "item_id" not in columns or not columns & set(ATTRS):
        raise ValueError(f"{path} needs an item_id column and at least one of {', '.join(ATTRS)}")
    return {r["item_id"]: {a: r[a].strip() for a in ATTRS if (r.get(a) or "").strip()} for r in rows if r["item_id"]}


def agreement_on_sample(
    truth: dict[str, str], annotator: dict[str, str], methods: dict[str, dict[str, str]]
) -> dict[str, float]:
    """On the items both the manifest (``truth``) and the annotator label: how often the annotator
    agrees with the manifest, and each method's accuracy on those same items (``methods``: name ->
    item_id -> predicted label). ``items`` counts them."""
    shared = sorted(set(truth) & set(annotator))
    out: dict[str, float] = {"items": len(shared)}
    if not shared:
        return out
    out["annotator"] = round(sum(annotator[i] == truth[i] for i in shared) / len(shared), 4)
    for name, predicted in methods.items():
        out[name] = round(sum(predicted.get(i) == truth[i] for i in shared) / len(shared), 4)
    return out


@dataclass
class Features:
    trunk: np.ndarray  # the shop embedder's trunk features of the cutouts
    whole: np.ndarray  # ... and of the whole photos
    colour: np.ndarray  # colour descriptors of the cutouts (the histogram is its first SIZE values)
    imagenet: np.ndarray  # ImageNet EfficientNet-Lite0 pooled features of the cutouts (a baseline)


def features(rows: list[dict[str, str]], desc: str, shop: bool = True) -> Features:
    """What the pipeline's attribute stage reads for each row (as in workers.services), and the
    ImageNet baseline's features. ``shop=False`` (the baselines' training rows) skips the shop
    embedder: its trunk features come back empty."""
    import torch

    from vision.backbone import efficientnet_lite0
    from vision.clip import embedder, encode_with_trunk, to_rgb_on_white
    from vision.colour import colour_descriptor

    emb = embedder()
    imagenet = efficientnet_lite0(num_classes=0).eval()
    trunk, whole, colour, base = [], [], [], []
    for row in tqdm(rows, desc=desc, unit="img"):
        with Image.open(row["image"]) as im:
            image = im.convert("RGB")
        cut = shop_view(image)
        if shop:
            t, _ = encode_with_trunk(emb.model, emb.preprocess, [cut, image])
            trunk.append(t[0])
            whole.append(t[1])
        colour.append(colour_descriptor(cut))
        with torch.inference_mode():
            base.append(imagenet(emb.preprocess(to_rgb_on_white(cut)).unsqueeze(0))[0].numpy())
    empty = np.zeros((len(rows), 0), np.float32)
    return Features(
        np.stack(trunk) if shop else empty,
        np.stack(whole) if shop else empty,
        np.stack(colour),
        np.stack(base),
    )


def fit_linear(x: np.ndarray, labels: list[str]) -> Callable[[np.ndarray], list[str]]:
    """A baseline linear classifier: scikit-learn's ``LogisticRegression`` (L2, C=1.0, lbfgs, at most
    1000 iterations, ``random_state=0``) on features standardised over ``x``, fitted on ``labels``.
    Returns a function from features to predicted labels (one label alone in ``labels``: always it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(labels)) == 1:
        return lambda z: [labels[0]] * len(z)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=0))
    model.fit(x, labels)

    def predict(z: np.ndarray) -> list[str]:
        return [str(v) for v in model.predict(z)]

    return predict


def accuracy(pred: list[str], truth: list[str], vocab: set[str] | None = None) -> float:
    pairs = [(p, t) for p, t in zip(pred, truth, strict=True) if vocab is None or t in vocab]
    return round(sum(p == t for p, t in pairs) / len(pairs), 4) if pairs else float("nan")


def run(options: dict[str, Any], out_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from evaluation.report import bar_plot, write_report
    from vision.clip import embedder
    from workers.services import predict_attributes

    rows = read_rows(options["manifest"], options.get("limit"))
    # annotators' files are read before any image is: a bad one fails at once
    annotations = {path.stem: read_annotations(path) for path in options.get("annotations") or []}
    if annotations and "item_id" not in rows[0]:
        raise ValueError(f"{options['manifest']} has no item_id column to match the annotations against")
    dev = features(rows, "dev images")
    shop_preds = predict_attributes(dev.trunk, dev.colour, dev.whole)
    methods: dict[str, dict[str, float]] = {"shop": {}}
    # every method's labels per attribute, row by row, for the annotator comparison
    predictions: dict[str, dict[str, list[str]]] = {"shop": {}}
    for attr in ATTRS:
        truth = [r[attr] for r in rows]
        # the "value" is the head's label, a str (predict_attributes types its fields as object)
        predictions["shop"][attr] = [str(p.get(attr, {}).get("value", "")) for p in shop_preds]
        methods["shop"][attr] = accuracy(predictions["shop"][attr], truth)
    if options.get("train"):
        train_rows = read_rows(options["train"], options.get("train_limit"))
        train = features(train_rows, "baseline training images", shop=False)
        for name in BASELINES:
            methods[name], predictions[name] = {}, {}
        for attr in ATTRS:
            labels = [r[attr] for r in train_rows]
            truth = [r[attr] for r in rows]
            majority = Counter(labels).most_common(1)[0][0]
            predictions["majority"][attr] = [majority] * len(rows)
            predictions["imagenet_features"][attr] = fit_linear(train.imagenet, labels)(dev.imagenet)
            histogram = fit_linear(train.colour[:, :SIZE], labels)
            predictions["colour_histogram"][attr] = histogram(dev.colour[:, :SIZE])
            for name in BASELINES:
                methods[name][attr] = accuracy(predictions[name][attr], truth)
    sample: dict[str, dict[str, dict[str, float]]] = {}
    for name, labelled in annotations.items():
        for attr in ATTRS:
            annotator = {i: v[attr] for i, v in labelled.items() if attr in v}
            if annotator:
                truth_by_item = {r["item_id"]: r[attr] for r in rows}
                by_method = {
                    m: {r["item_id"]: p for r, p in zip(rows, preds[attr], strict=True)}
                    for m, preds in predictions.items()
                }
                sample.setdefault(name, {})[attr] = agreement_on_sample(truth_by_item, annotator, by_method)
    table = [{"method": m, **{f"{a}_top1": v for a, v in accs.items()}} for m, accs in methods.items()]
    for name, per_attr in sample.items():
        for attr, figures in per_attr.items():
            table += [
                {
                    "method": f"{ANNOTATOR if who == 'annotator' else who} on {name} ({figures['items']} items)",
                    f"{attr}_top1": value,
                }
                for who, value in figures.items()
                if who != "items"
            ]
    result = {
        "manifest": str(options["manifest"]),
        "images": len(rows),
        "embedder": embedder().version,
        "top1": methods,
        "annotator_samples": sample,
    }
    write_report(out_dir, "attributes", result, table)
    groups = {m: {f"{a} top-1": v for a, v in accs.items()} for m, accs in methods.items()}
    groups[ANNOTATOR] = {}
    for per_attr in sample.values():  # the annotated samples: one cluster per attribute and sample
        for attr, figures in per_attr.items():
            cluster = f"{attr}, {figures['items']} annotated"
            for who, value in figures.items():
                if who != "items":
                    groups.setdefault(ANNOTATOR if who == "annotator" else who, {})[cluster] = value
    bar_plot(out_dir, "attributes", {g: v for g, v in groups.items() if v}, "attribute top-1 accuracy")
    for row in table:
        log("  ".join(f"{k}={v}" for k, v in row.items()))
    return result
