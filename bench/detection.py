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
