"""Latency summaries, computed one way in every bench: percentiles by linear interpolation between the
closest ranks (numpy's default, the "type 7" estimator), in milliseconds, with the count beside them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 (ms, one decimal), mean (ms) and n of these timings (seconds)."""
    if not len(seconds):
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "mean_ms": float("nan"), "n": 0}
    ms = 1000.0 * np.asarray(seconds, dtype=np.float64)
    p50, p95 = np.percentile(ms, [50, 95])
    return {"p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "mean_ms": round(float(ms.mean()), 1),
            "n": int(ms.size)}  # fmt: skip
