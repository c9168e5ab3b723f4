"""``evaluate attributes``: top-1 accuracy of the predicted category, colour and pattern.

Each image goes through the same steps as in the pipeline (garment parser → cutout → embedder
trunk features of the cutout and the whole photo + the cutout's colour descriptor → attribute
heads). Baselines in the same run, fitted on a sample of the train split: the majority label; a
linear classifier on the ImageNet EfficientNet-Lite0 features alone; and one on the colour
histogram alone.

Input: a CSV with ``image,category,colour,pattern`` (paths relative to the CSV or absolute), e.g.
``hm_dev_attributes.csv`` from ``build_eval_sets``; the baselines' training CSV (``--train``) has
the same columns.
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", type=Path, required=True, help="CSV: image,category,colour,pattern")
    parser.add_argument("--train", type=Path, default=None, help="CSV of the same kind to fit the baselines on")
    parser.add_argument("--train-limit", type=int, default=1500, help="baseline training sample size")
    parser.add_argument("--limit", type=int, default=None)


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
    """The pipeline's cutout of a product photo (all items the parser finds)."""
    from vision.parser import cutout, garment_parser

    mask = garment_parser().parse(image).item_mask()
    return cutout(image, mask) if mask.sum() > 0.002 * mask.size else image


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


def fit_linear(x: np.ndarray, labels: list[str], epochs: int = 300) -> Callable[[np.ndarray], list[str]]:
    import torch
    import torch.nn.functional as F

    vocab = sorted(set(labels))
    mean, spread = x.mean(0), x.std(0)
    std = spread + 0.1 * float(spread.mean()) + 1e-6
    xt = torch.from_numpy(((x - mean) / std).astype(np.float32))
    y = torch.tensor([vocab.index(v) for v in labels])
    head = torch.nn.Linear(x.shape[1], len(vocab))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(epochs):
        loss = F.cross_entropy(head(xt), y, label_smoothing=0.05)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def predict(z: np.ndarray) -> list[str]:
        with torch.inference_mode():
            out = head(torch.from_numpy(((z - mean) / std).astype(np.float32))).argmax(1).numpy()
        return [vocab[i] for i in out]

    return predict


def accuracy(pred: list[str], truth: list[str], vocab: set[str] | None = None) -> float:
    pairs = [(p, t) for p, t in zip(pred, truth, strict=True) if vocab is None or t in vocab]
    return round(sum(p == t for p, t in pairs) / len(pairs), 4) if pairs else float("nan")


def run(options: dict[str, Any], out_dir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from vision.clip import embedder
    from vision.evaluation.report import bar_plot, write_report
    from workers.services import predict_attributes

    rows = read_rows(options["manifest"], options.get("limit"))
    dev = features(rows, "dev images")
    shop_preds = predict_attributes(dev.trunk, dev.colour, dev.whole)
    methods: dict[str, dict[str, float]] = {"shop": {}}
    for attr in ATTRS:
        truth = [r[attr] for r in rows]
        vocab = None
        methods["shop"][attr] = accuracy([p.get(attr, {}).get("value", "") for p in shop_preds], truth, vocab)
    if options.get("train"):
        train_rows = read_rows(options["train"], options.get("train_limit"))
        train = features(train_rows, "baseline training images", shop=False)
        methods.update({"majority": {}, "imagenet_features": {}, "colour_histogram": {}})
        for attr in ATTRS:
            labels = [r[attr] for r in train_rows]
            truth = [r[attr] for r in rows]
            majority = Counter(labels).most_common(1)[0][0]
            methods["majority"][attr] = accuracy([majority] * len(rows), truth)
            methods["imagenet_features"][attr] = accuracy(fit_linear(train.imagenet, labels)(dev.imagenet), truth)
            histogram = fit_linear(train.colour[:, :SIZE], labels)
            methods["colour_histogram"][attr] = accuracy(histogram(dev.colour[:, :SIZE]), truth)
    table = [{"method": m, **{f"{a}_top1": v for a, v in accs.items()}} for m, accs in methods.items()]
    result = {
        "manifest": str(options["manifest"]),
        "images": len(rows),
        "embedder": embedder().version,
        "top1": methods,
    }
    write_report(out_dir, "attributes", result, table)
    bar_plot(
        out_dir,
        "attributes",
        {m: {f"{a} top-1": v for a, v in accs.items()} for m, accs in methods.items()},
        "attribute top-1 accuracy",
    )
    for row in table:
        log("  ".join(f"{k}={v}" for k, v in row.items()))
    return result
