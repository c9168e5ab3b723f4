"""Search without the database: the fusion of the signals' ranked lists (the signals themselves, on a
real catalog, are in tests/integration/test_search.py)."""

from __future__ import annotations

import pytest

from search import services


def test_fusion_rewards_agreement_and_breaks_ties_by_id():
    Hit = services.Hit
    lists = {
        "image": [Hit(3, 0.9), Hit(1, 0.8), Hit(2, 0.7)],
        "text": [Hit(1, 0.9), Hit(3, 0.8)],
        "keyword": [Hit(1, 5.0), Hit(4, 1.0)],
    }
    equal = {"image": 1.0, "text": 1.0, "keyword": 1.0}
    fused = services.fuse(lists, 10, equal)
    assert [h.product_id for h in fused] == [1, 3, 4, 2]  # 4: keyword rank 2 beats 2: image rank 3
    assert fused[0].signals == {"image": 2, "text": 1, "keyword": 1}
    k = services.RRF_K
    assert fused[0].score == pytest.approx(1 / (k + 2) + 1 / (k + 1) + 1 / (k + 1))
    # equal scores: the lower product id first, every time
    tie = services.fuse({"image": [Hit(9, 1.0)], "text": [Hit(5, 1.0)]}, 10, equal)
    weighted = services.fuse({"image": [Hit(1, 1.0)], "keyword": [Hit(2, 1.0)]}, 10, {"image": 1.0, "keyword": 2.0})
    assert [h.product_id for h in weighted] == [2, 1]
    assert [h.product_id for h in tie] == [5, 9]
