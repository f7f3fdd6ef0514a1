"""Evaluation figures shared by the benchmarks."""

from __future__ import annotations

import numpy as np


def auroc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """Area under the ROC curve = P(score_anomalous > score_normal), ties counted half
    (the Mann-Whitney U statistic, from average ranks)."""
    scores = np.concatenate([normal, anomalous])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    for v in np.unique(scores[np.diff(np.sort(scores), prepend=np.nan) == 0]):
        tie = scores == v
        ranks[tie] = ranks[tie].mean()
    n, a = len(normal), len(anomalous)
    return float((ranks[n:].sum() - a * (a + 1) / 2) / (n * a))
