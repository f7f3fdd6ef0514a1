"""A model version as the service uses it: the VAE, its regime bank and its alarm limits."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from models.preprocessing import RegimeBank
from models.vae import WindowVAE


@dataclass(frozen=True)
class Detector:
    """Immutable once calibrated: a new threshold is a new Detector (`with_threshold`)."""

    vae: WindowVAE
    bank: RegimeBank
    # The largest of the regimes' alarm thresholds: what a dashboard shows as the model's.
    threshold: float = math.inf
    # Each regime's threshold from real held-out windows when it was last trained on real data.
    # Replay scores run low, so these are never recomputed from replay (design note).
    regime_thresholds: dict[int, float] = field(default_factory=dict)
    # The same from held-out windows alone: what the model calls normal among windows like
    # those it was fitted on; replay drawn from this model keeps windows scoring at or below
    # replay_threshold. They differ from the above only where out-of-fold scores raised a first
    # model's or a new regime's threshold (lifelong.out_of_fold): that widens the alarm's
    # tolerance for unseen stretches of the process, but as the filter it let the teacher's
    # off-manifold samples into replay (SKAB: old regimes' AUROC 0.806 -> 0.788,
    # bench/README.md).
    replay_threshold: float = math.inf
    fit_thresholds: dict[int, float] = field(default_factory=dict)
    # The per-sensor term beside the summed score (models/calibration.py): each regime's median
    # sensor energy on its calibration windows [R, C], and the limit on a window's largest
    # energy over that median. None: no per-sensor alarm (uncalibrated, or written before it).
    sensor_scale: np.ndarray | None = None
    sensor_threshold: float = math.inf
    # The alarm threshold a window routed to each regime is judged against: its regime
    # threshold raised by the per-sensor term's factor (models/calibration.py). Empty (written
    # before session 21): every regime is judged against `threshold`, the largest.
    alarm_thresholds: dict[int, float] = field(default_factory=dict)

    @property
    def regimes(self) -> int:
        return self.vae.cfg.regimes

    @property
    def channels(self) -> int:
        return self.vae.cfg.channels

    @property
    def window(self) -> int:
        return self.vae.cfg.window

    def limits(self, regime: np.ndarray) -> np.ndarray:
        """[N] float64: the alarm threshold of each window's routed regime [N]."""
        table = np.full(self.regimes, self.threshold)
        for r, t in self.alarm_thresholds.items():
            table[r] = t
        return table[regime]

    def with_threshold(
        self, threshold: float, regime_thresholds: dict[int, float],
        fit: tuple[float, dict[int, float]] | None = None,
        sensors: tuple[np.ndarray, float] | None = None,
        alarms: dict[int, float] | None = None,
    ) -> Detector:
        """`fit`: the held-out-only threshold and its regime parts, where they differ;
        `sensors`: the per-sensor term's scale [R, C] and threshold; `alarms`: each regime's
        alarm threshold (none: `threshold` for all)."""
        fit_threshold, fit_regimes = fit if fit is not None else (threshold, regime_thresholds)
        scale, limit = sensors if sensors is not None else (None, math.inf)
        return replace(self, threshold=float(threshold), regime_thresholds=dict(regime_thresholds),
                       replay_threshold=float(fit_threshold), fit_thresholds=dict(fit_regimes),
                       sensor_scale=scale, sensor_threshold=float(limit),
                       alarm_thresholds=dict(alarms or {}))
