"""Detection figures on labelled rows: F1, false-alarm rate, missed-alarm rate, detection rate;
and what an operator sees of them: faults caught, and the events they come as."""

from __future__ import annotations

import math
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


def group_events(flags: np.ndarray, seconds: np.ndarray, gap_s: float,
                 silent_s: float = math.inf) -> list[tuple[int, int]]:
    """Flagged rows grouped into anomaly events by the service's rule (app/anomalies.py): a
    flagged row extends the open event, or opens one; an unflagged row closes it when it lies
    gap_s or more after the event's last flagged row, and any row closes it first when it lies
    silent_s or more after the row before it (the line was silent; the service times arrivals,
    which a stream's rows follow). (first, last) flagged row of each."""
    events: list[tuple[int, int]] = []
    first = last = -1
    for i, flagged in enumerate(np.asarray(flags, bool)):
        if first >= 0 and i > 0 and seconds[i] - seconds[i - 1] >= silent_s:
            events.append((first, last))
            first = -1
        if flagged:
            first, last = (i, i) if first < 0 else (first, i)
        elif first >= 0 and seconds[i] - seconds[last] >= gap_s:
            events.append((first, last))
            first = -1
    return events + ([(first, last)] if first >= 0 else [])


@dataclass
class Events:
    """Faults (runs of labelled rows) and the events an operator is shown, pooled over parts."""

    faults: int = 0
    caught: int = 0  # faults with at least one flagged row
    on_faults: int = 0  # events that hold a labelled row
    false: int = 0  # events that hold none
    normal_s: float = 0.0  # seconds of unlabelled rows, for a rate per hour of normal running

    def add(self, predicted: np.ndarray, actual: np.ndarray, seconds: np.ndarray,
            gap_s: float, silent_s: float = math.inf) -> None:
        p, a = np.asarray(predicted, bool), np.asarray(actual, bool)
        edges = np.diff(np.r_[0, a.astype(np.int8), 0])
        runs = zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
        for start, stop in runs:
            self.faults += 1
            self.caught += bool(p[start:stop].any())
        for first, last in group_events(p, seconds, gap_s, silent_s):
            held = bool(a[first : last + 1].any())
            self.on_faults += held
            self.false += not held
        period = float(np.median(np.diff(seconds))) if len(seconds) > 1 else 0.0
        self.normal_s += float(np.sum(~a)) * period

    @property
    def per_caught_fault(self) -> float:
        return self.on_faults / self.caught if self.caught else 0.0

    @property
    def false_per_hour(self) -> float:
        return 3600 * self.false / self.normal_s if self.normal_s else 0.0
