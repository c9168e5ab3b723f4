"""vision.metrics against hand-computed values (the arithmetic is written out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vision.metrics import (
    dice,
    f1_precision_recall,
    fraction_recall_at_k,
    iou,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    reciprocal_rank,
    summarise_ranking,
)

RANKED = ["a", "b", "c", "d", "e"]


def test_recall_at_k_is_a_hit_rate():
    # relevant "c" sits at rank 3: not within the top 1 or 2, within the top 3
    assert recall_at_k(RANKED, {"c"}, 1) == 0.0
    assert recall_at_k(RANKED, {"c"}, 2) == 0.0
    assert recall_at_k(RANKED, {"c"}, 3) == 1.0
    # two relevant, one found in the top 2 → still a hit (1.0), not 1/2
    assert recall_at_k(RANKED, {"b", "z"}, 2) == 1.0
    assert recall_at_k(RANKED, set(), 5) == 0.0
    assert recall_at_k([], {"a"}, 10) == 0.0


def test_fraction_recall_at_k():
    # relevant {b, d, z}: top 2 = {a, b} holds b → 1/3; top 4 holds b, d → 2/3; z never → top 5 still 2/3
    assert fraction_recall_at_k(RANKED, {"b", "d", "z"}, 2) == pytest.approx(1 / 3)
    assert fraction_recall_at_k(RANKED, {"b", "d", "z"}, 4) == pytest.approx(2 / 3)
    assert fraction_recall_at_k(RANKED, {"b", "d", "z"}, 5) == pytest.approx(2 / 3)
    assert fraction_recall_at_k(RANKED, set(), 3) == 0.0


def test_precision_at_k_divides_by_k():
    # top 4 = a b c d, relevant {b, d} → 2 / 4
    assert precision_at_k(RANKED, {"b", "d"}, 4) == 0.5
    # only 2 results returned but k = 10: 1 relevant / 10 (missing results count as misses)
    assert precision_at_k(["x", "b"], {"b"}, 10) == 0.1


def test_reciprocal_rank():
    assert reciprocal_rank(RANKED, {"a"}) == 1.0
    # first relevant at rank 4 ("d"; "e" comes later) → 1/4
    assert reciprocal_rank(RANKED, {"e", "d"}) == 0.25
    assert reciprocal_rank(RANKED, {"z"}) == 0.0


def test_ndcg_relevant_at_ranks_1_and_3_of_k3():
    # ranked a b c, relevant {a, c}, k = 3:
    # DCG = 1/log2(1+1) + 1/log2(3+1) = 1 + 1/2 = 1.5
    # ideal: min(k, |relevant|) = 2 hits at ranks 1, 2 → 1 + 1/log2(3) = 1.6309...
    expected = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["a", "b", "c"], {"a", "c"}, 3) == pytest.approx(expected)
    assert expected == pytest.approx(0.91972, abs=1e-5)


def test_ndcg_ideal_uses_min_of_k_and_relevant():
    # 5 relevant, k = 2, both top results relevant → DCG = ideal DCG (2 hits) → 1.0
    assert ndcg_at_k(RANKED, set(RANKED), 2) == pytest.approx(1.0)
    # single relevant at rank 2: DCG = 1/log2(3) = 0.6309; ideal = 1/log2(2) = 1
    assert ndcg_at_k(RANKED, {"b"}, 10) == pytest.approx(1 / math.log2(3))
    # relevant only beyond k → 0
    assert ndcg_at_k(RANKED, {"e"}, 4) == 0.0
    assert ndcg_at_k(RANKED, set(), 4) == 0.0


def test_bad_k_is_rejected():
    with pytest.raises(ValueError):
        recall_at_k(RANKED, {"a"}, 0)
    with pytest.raises(ValueError):
        ndcg_at_k(RANKED, {"a"}, 0)


def test_summarise_ranking_means():
    # query 1: relevant "a" at rank 1 → R@1 1, R@10 1, RR 1, nDCG 1, P@10 1/10
    # query 2: relevant "c" at rank 3 → R@1 0, R@10 1, RR 1/3, nDCG 1/log2(4) = 1/2, P@10 1/10
    # query 3: relevant "z" missing   → all 0
    runs = [(RANKED, {"a"}), (RANKED, {"c"}), (RANKED, {"z"})]
    summary = summarise_ranking(runs)
    assert summary["recall@1"] == pytest.approx(1 / 3)
    assert summary["recall@10"] == pytest.approx(2 / 3)
    assert summary["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)  # 0.4444
    assert summary["ndcg@10"] == pytest.approx((1 + 0.5 + 0) / 3)  # 0.5
    assert summary["precision@10"] == pytest.approx((0.1 + 0.1 + 0) / 3)
    assert set(summary) == {"recall@1", "recall@10", "mrr", "ndcg@10", "precision@10"}
    assert summarise_ranking([])["mrr"] == 0.0


def test_dice_and_iou():
    pred = np.array([[1, 1, 0], [0, 0, 0]], dtype=bool)  # 2 pixels
    gt = np.array([[0, 1, 1], [0, 0, 0]], dtype=bool)  # 2 pixels, overlap 1
    # Dice = 2·1 / (2 + 2) = 0.5; IoU = 1 / |union of 3| = 1/3
    assert dice(pred, gt) == pytest.approx(0.5)
    assert iou(pred, gt) == pytest.approx(1 / 3)
    # identical → 1; disjoint → 0
    assert dice(gt, gt) == 1.0 and iou(gt, gt) == 1.0
    assert dice(pred & ~gt, gt & ~pred) == 0.0 and iou(pred & ~gt, gt & ~pred) == 0.0
    # both empty → 1.0 by convention; one empty → 0.0
    empty = np.zeros((2, 3), dtype=bool)
    assert dice(empty, empty) == 1.0 and iou(empty, empty) == 1.0
    assert dice(empty, gt) == 0.0 and iou(gt, empty) == 0.0


def test_dice_iou_take_0_1_arrays_and_check_shapes():
    pred = np.array([[0, 255], [255, 255]], dtype=np.uint8)  # 3 "on" pixels
    gt = np.array([[0, 1], [0, 1]])  # 2 on, both inside pred
    # Dice = 2·2 / (3 + 2) = 0.8; IoU = 2 / 3
    assert dice(pred, gt) == pytest.approx(0.8)
    assert iou(pred, gt) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_f1_precision_recall():
    # tp 8, fp 2, fn 4: P = 8/10 = 0.8, R = 8/12 = 0.6667,
    # F1 = 2·0.8·0.6667 / 1.4667 = 0.7273 (= 2tp / (2tp + fp + fn) = 16/22)
    f1, precision, recall = f1_precision_recall(8, 2, 4)
    assert precision == pytest.approx(0.8)
    assert recall == pytest.approx(2 / 3)
    assert f1 == pytest.approx(16 / 22)
    # nothing predicted: P has denominator 0 → 0, R = 0, F1 = 0
    assert f1_precision_recall(0, 0, 5) == (0.0, 0.0, 0.0)
    # nothing to find and nothing flagged → perfect by convention
    assert f1_precision_recall(0, 0, 0) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        f1_precision_recall(-1, 0, 0)
