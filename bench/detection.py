"""Detection figures on labelled rows: F1, false-alarm rate, missed-alarm rate, detection rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Confusion:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: np.ndarray, actual: np.ndarray) -> None:
        """Pool one test part into the totals (SKAB pools over all files)."""
        p, a = np.asarray(predicted, bool), np.asarray(actual, bool)
        self.tp += int(np.sum(p & a))
        self.fp += int(np.sum(p & ~a))
        self.fn += int(np.sum(~p & a))
        self.tn += int(np.sum(~p & ~a))

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else 0.0

    @property
    def far(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0

    @property
    def mar(self) -> float:
        return self.fn / (self.fn + self.tp) if self.fn + self.tp else 0.0


def oracle_threshold(scores: np.ndarray, actual: np.ndarray, far: float) -> float:
    """The lowest threshold (alarm when score > threshold) whose false-alarm rate on these
    rows stays within `far`: the (k+1)-th highest normal score, k = floor(far * normal rows).
    It needs the labels, which a plant never has; it separates what a detector's ranking
    allows from what its calibration reaches."""
    normal = np.asarray(scores, np.float64)[~np.asarray(actual, bool)]
    normal = np.sort(normal[np.isfinite(normal)])[::-1]
    k = int(np.floor(far * len(normal) + 1e-9))
    return float(normal[min(k, len(normal) - 1)]) if len(normal) else np.inf
