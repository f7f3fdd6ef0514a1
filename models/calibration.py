"""Label-free thresholds for a target false-alarm rate.

`quantile` takes the empirical (1 - far) quantile of normal scores. `pot` (peaks over threshold,
Pickands-Balkema-de Haan) fits a generalised Pareto distribution to the tail above a high
quantile u and extrapolates, which is what one needs when far * N is only a handful of windows.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from models.detector import Detector
from models.scoring import score

Method = Literal["quantile", "pot"]
_MIN_EXCESSES = 20


def quantile_threshold(scores: np.ndarray, far: float) -> float:
    return float(np.quantile(scores, 1.0 - far, method="higher"))


def fit_gpd(excesses: np.ndarray) -> tuple[float, float]:
    """Shape xi and scale sigma of a GPD by probability-weighted moments.

    Hosking & Wallis (1987): a_r = E[Y (1 - F(Y))^r] = sigma / ((r + 1)(r + 1 + k)), so
    k = a0 / (a0 - 2 a1) - 2, sigma = 2 a0 a1 / (a0 - 2 a1), xi = -k. Closed form and robust
    for small samples, unlike the MLE.
    """
    y = np.sort(excesses)
    n = len(y)
    p = (np.arange(1, n + 1) - 0.35) / n
    a0, a1 = y.mean(), np.mean((1.0 - p) * y)
    denom = a0 - 2.0 * a1
    if a1 <= 0 or denom <= 0:
        return 0.0, float(max(a0, 1e-12))
    k = a0 / denom - 2.0
    return float(-k), float(max(2.0 * a0 * a1 / denom, 1e-12))


def pot_threshold(scores: np.ndarray, far: float) -> float:
    """Threshold z with P(score > z) = far under a GPD tail above u."""
    n = len(scores)
    tail = min(0.2, max(10 * far, _MIN_EXCESSES / n))
    if far >= tail:
        return quantile_threshold(scores, far)
    u = float(np.quantile(scores, 1.0 - tail))
    excesses = scores[scores > u] - u
    if len(excesses) < 5:
        return quantile_threshold(scores, far)
    xi, sigma = fit_gpd(excesses)
    r = far * n / len(excesses)  # target exceedance probability within the tail
    if abs(xi) < 1e-6:
        return u - sigma * math.log(r)
    return u + sigma / xi * (r ** (-xi) - 1.0)


def calibrate(scores: np.ndarray, far: float, method: Method = "pot") -> float:
    """Threshold on scores of normal windows for target false-alarm rate `far`."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if len(s) == 0:
        raise ValueError("no finite scores to calibrate on")
    if not 0.0 < far < 1.0:
        raise ValueError(f"target false-alarm rate must be in (0, 1), got {far}")
    if method == "quantile":
        return quantile_threshold(s, far)
    return pot_threshold(s, far)


_MIN_REGIME_WINDOWS = 20


def calibrate_detector(
    det: Detector, heldout: np.ndarray, far: float, *, teacher: Detector | None = None,
    method: Method = "pot", out_of_fold: np.ndarray | None = None,
) -> Detector:
    """Threshold a trained detector without labels.

    threshold = max(threshold on all held-out fresh windows, each regime's stored threshold
    from real held-out windows). Old regimes are covered by their stored real-data thresholds,
    not by replay: replayed windows score unlike real ones (lower in the prototype, higher here),
    and letting them set the threshold hides forgetting behind a raised threshold. Replay is
    judged by the gate instead. The max rule cut false alarms on old regimes from 0.12 to 0.042
    in the prototype (design note).

    `out_of_fold`: a first model's scores of its training windows by models that did not see
    them (TrainResult.out_of_fold), calibrated on together with the held-out windows for the
    alarm threshold; the held-out windows alone keep setting the fit threshold that filters
    replay (Detector.replay_threshold).
    """
    s = score(det, heldout)
    fit = _thresholds(s.score, s.regime, far, method, teacher.fit_thresholds if teacher else {})
    scores, regimes = s.score, s.regime
    if out_of_fold is not None and len(out_of_fold):
        if det.regimes != 1 or teacher is not None:
            raise ValueError("out-of-fold scores calibrate a line's first model only")
        scores = np.concatenate([scores, out_of_fold])
        regimes = np.concatenate([regimes, np.zeros(len(out_of_fold), dtype=regimes.dtype)])
    stored = dict(teacher.regime_thresholds) if teacher is not None else {}
    return det.with_threshold(*_thresholds(scores, regimes, far, method, stored), fit=fit)


def _thresholds(scores: np.ndarray, regimes: np.ndarray, far: float, method: Method,
                stored: dict[int, float]) -> tuple[float, dict[int, float]]:
    """max(threshold on all scores, each regime's own) with the regimes that have scores here
    recalibrated and the others kept from `stored`."""
    stored = dict(stored)
    for r in np.unique(regimes):
        sel = scores[regimes == r]
        if len(sel) >= _MIN_REGIME_WINDOWS:
            stored[int(r)] = calibrate(sel, far, method)
    return max([calibrate(scores, far, method), *stored.values()]), stored
