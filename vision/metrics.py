"""Evaluation metrics: ranking (recall, MRR, nDCG, precision), masks (Dice, IoU), detection (P/R/F1).

Ranking functions take ``ranked`` (item ids, best first; duplicates are the caller's business) and
``relevant`` (the set of ids that count as hits). Cut-offs ``k`` must be ≥ 1.

Two "recall@k" conventions exist and both are here:

- :func:`recall_at_k` — the *hit rate* used for retrieval with one relevant item per query (photo →
  product, near-duplicate lookup): 1.0 when any relevant item is in the top k, else 0.0. Averaged
  over queries it is the share of queries answered within k results.
- :func:`fraction_recall_at_k` — the textbook recall: |relevant ∩ top k| / |relevant|. For queries
  with many relevant items (attribute queries) it is bounded by k / |relevant|.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Hit recall: 1.0 if any relevant item is among the first ``k`` results, else 0.0 (0.0 when
    nothing is relevant)."""
    _check_k(k)
    return 1.0 if any(item in relevant for item in ranked[:k]) else 0.0


def fraction_recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """|relevant ∩ top k| / |relevant| (0.0 when nothing is relevant)."""
    _check_k(k)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def precision_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Relevant items among the first ``k`` results, divided by ``k`` (missing results count as misses)."""
    _check_k(k)
    return sum(1 for item in ranked[:k] if item in relevant) / k


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    """1 / rank of the first relevant result (ranks from 1); 0.0 when none is returned."""
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """nDCG@k with binary gains: DCG = Σ_{rank i ≤ k, relevant} 1 / log2(i + 1), divided by the ideal
    DCG of min(k, |relevant|) relevant items at ranks 1.. (0.0 when nothing is relevant)."""
    _check_k(k)
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 1) for i, item in enumerate(ranked[:k], start=1) if item in relevant)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal


def summarise_ranking(runs: list[tuple[list[str], set[str]]]) -> dict[str, float]:
    """Means over queries of hit recall@1 and @10, MRR, nDCG@10 and precision@10 (all 0.0 for no runs)."""
    keys = ("recall@1", "recall@10", "mrr", "ndcg@10", "precision@10")
    if not runs:
        return dict.fromkeys(keys, 0.0)
    values = {
        "recall@1": [recall_at_k(r, rel, 1) for r, rel in runs],
        "recall@10": [recall_at_k(r, rel, 10) for r, rel in runs],
        "mrr": [reciprocal_rank(r, rel) for r, rel in runs],
        "ndcg@10": [ndcg_at_k(r, rel, 10) for r, rel in runs],
        "precision@10": [precision_at_k(r, rel, 10) for r, rel in runs],
    }
    return {key: float(sum(v) / len(v)) for key, v in values.items()}


def _masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred).astype(bool)
    gt = np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    return pred, gt


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """2|P ∩ G| / (|P| + |G|) on boolean masks; 1.0 when both are empty."""
    pred, gt = _masks(pred, gt)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P ∩ G| / |P ∪ G| on boolean masks; 1.0 when both are empty."""
    pred, gt = _masks(pred, gt)
    union = int(np.logical_or(pred, gt).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(pred, gt).sum()) / union


def f1_precision_recall(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """(F1, precision, recall) from counts. A ratio whose denominator is 0 is 0.0, except that with
    no positives at all (tp = fp = fn = 0) nothing was missed or wrongly flagged and all three are 1.0."""
    if min(tp, fp, fn) < 0:
        raise ValueError("counts must be non-negative")
    if tp == fp == fn == 0:
        return 1.0, 1.0, 1.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return f1, precision, recall
