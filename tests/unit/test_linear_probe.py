"""The attribute evaluation's baseline linear classifier (evaluation.attributes.fit_linear).
Needs no database and also runs with ``-p no:django``."""

from __future__ import annotations

import numpy as np

from evaluation.attributes import fit_linear


def three_blobs(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Three well-separated Gaussian blobs in 8 dimensions (features on unequal scales), one per label."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, 8))
    centres[0, 0], centres[1, 1], centres[2, 2] = 6.0, 6.0, 6.0
    y = rng.integers(0, 3, n)
    x = (centres[y] + rng.normal(0.0, 1.0, (n, 8))) * np.array([1, 100, 0.01, 1, 1, 1, 1, 1])
    return x.astype(np.float32), [("red", "blue", "green")[i] for i in y]


def test_fit_linear_learns_a_separable_problem_and_is_deterministic():
    x_train, y_train = three_blobs(300, seed=0)
    x_test, y_test = three_blobs(300, seed=1)
    first = fit_linear(x_train, y_train)(x_test)
    assert all(isinstance(p, str) for p in first)
    assert np.mean([p == t for p, t in zip(first, y_test, strict=True)]) >= 0.95
    assert fit_linear(x_train, y_train)(x_test) == first


def test_fit_linear_with_one_label_predicts_it():
    x, _ = three_blobs(20, seed=2)
    assert fit_linear(x, ["plain"] * 20)(x[:3]) == ["plain"] * 3
