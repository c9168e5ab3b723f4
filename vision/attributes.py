"""Attribute tagging: category, colour and pattern per image, in the catalog's own vocabulary.

Small softmax classifiers on the image-trunk features (the same features the embedder's image
head reads) together with the garment's colour histogram (vision.colour: ImageNet features are
largely colour-blind), trained on the catalog's own labels. Each prediction carries its probability
as the confidence. Labels seen fewer than ``min_examples`` times in training are not predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ATTRIBUTES = ("category", "colour", "pattern")
HEADS_NAME = "attribute_heads.pt"


@dataclass
class AttributePrediction:
    value: str
    confidence: float


@dataclass
class AttributeHeads:
    vocab: dict[str, list[str]]
    mean: np.ndarray
    std: np.ndarray
    heads: dict[str, torch.nn.Linear]
    metrics: dict[str, Any] = field(default_factory=dict)

    @torch.inference_mode()
    def predict(self, trunk_feats: np.ndarray, colour_feats: np.ndarray) -> list[dict[str, AttributePrediction]]:
        x = torch.from_numpy(_inputs(trunk_feats, colour_feats, self.mean, self.std))
        out: list[dict[str, AttributePrediction]] = [{} for _ in range(len(trunk_feats))]
        for attr, head in self.heads.items():
            probs = F.softmax(head(x), dim=-1).numpy()
            for row, p in zip(out, probs, strict=True):
                k = int(p.argmax())
                row[attr] = AttributePrediction(self.vocab[attr][k], round(float(p[k]), 4))
        return out

    def summary(self) -> dict[str, Any]:
        return {"vocab_sizes": {a: len(v) for a, v in self.vocab.items()}, **self.metrics}

    def save(self, folder: Path) -> None:
        torch.save(
            {
                "vocab": self.vocab,
                "mean": torch.from_numpy(self.mean),
                "std": torch.from_numpy(self.std),
                "heads": {a: h.state_dict() for a, h in self.heads.items()},
                "metrics": self.metrics,
            },
            folder / HEADS_NAME,
        )

    @classmethod
    def load(cls, folder: Path) -> AttributeHeads:
        blob = torch.load(folder / HEADS_NAME, map_location="cpu", weights_only=False)
        heads = {}
        for attr, state in blob["heads"].items():
            head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
            head.load_state_dict(state)
            head.eval()
            heads[attr] = head
        return cls(blob["vocab"], blob["mean"].numpy(), blob["std"].numpy(), heads, blob.get("metrics", {}))


COLOUR_WEIGHT = 10.0  # histogram entries are fractions; scale them next to standardised features


def _inputs(trunk: np.ndarray, colour: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.concatenate([(trunk - mean) / std, COLOUR_WEIGHT * colour], axis=1).astype(np.float32)


def _labels(items: list[Any], attr: str) -> list[str]:
    return [(getattr(it, attr) or "").strip() for it in items]


def train_attribute_heads(
    train_feats: np.ndarray,
    train_colour: np.ndarray,
    train_items: list[Any],
    held_feats: np.ndarray | None = None,
    held_colour: np.ndarray | None = None,
    held_items: list[Any] | None = None,
    *,
    min_examples: int = 3,
    epochs: int = 300,
    weight_decay: float = 1e-3,
    input_dropout: float = 0.5,
    seed: int = 0,
) -> AttributeHeads:
    """Fit one linear softmax classifier per attribute (full-batch AdamW, standardised features,
    ``input_dropout`` of the inputs while fitting)."""
    torch.manual_seed(seed)
    mean = train_feats.mean(0)
    spread = train_feats.std(0)
    std = spread + 0.1 * float(spread.mean()) + 1e-6  # a floor: near-constant features must not turn into noise
    x = torch.from_numpy(_inputs(train_feats, train_colour, mean, std))
    vocab: dict[str, list[str]] = {}
    heads: dict[str, torch.nn.Linear] = {}
    for attr in ATTRIBUTES:
        labels = _labels(train_items, attr)
        counts: dict[str, int] = {}
        for label in labels:
            if label:
                counts[label] = counts.get(label, 0) + 1
        values = sorted(v for v, c in counts.items() if c >= min_examples)
        if len(values) < 2:
            continue
        index = {v: i for i, v in enumerate(values)}
        keep = [i for i, label in enumerate(labels) if label in index]
        y = torch.tensor([index[labels[i]] for i in keep])
        head = torch.nn.Linear(x.shape[1], len(values))
        opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=weight_decay)
        for _ in range(epochs):
            # dropout on the inputs while fitting: on a held-out part of the H&M train split it lifted
            # category top-1 0.757 → 0.802 and colour 0.694 → 0.760 over the plain linear fit
            inputs = F.dropout(x[keep], p=input_dropout) if input_dropout else x[keep]
            loss = F.cross_entropy(head(inputs), y, label_smoothing=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
        head.eval()
        vocab[attr], heads[attr] = values, head
    result = AttributeHeads(vocab, mean.astype(np.float32), std.astype(np.float32), heads)
    if held_feats is not None and held_colour is not None and held_items:
        result.metrics = attribute_accuracy(result, held_feats, held_colour, held_items)
    return result


def attribute_accuracy(
    heads: AttributeHeads, feats: np.ndarray, colour: np.ndarray, items: list[Any]
) -> dict[str, float]:
    """Top-1 accuracy per attribute over items whose true label is in the vocabulary."""
    preds = heads.predict(feats, colour)
    out: dict[str, float] = {}
    for attr in heads.heads:
        truth = _labels(items, attr)
        pairs = [(p[attr].value, t) for p, t in zip(preds, truth, strict=True) if t in heads.vocab[attr]]
        out[f"{attr}_top1"] = round(sum(p == t for p, t in pairs) / len(pairs), 4) if pairs else float("nan")
        out[f"{attr}_scored"] = len(pairs)
    return out
