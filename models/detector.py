"""A model version as the service uses it: the VAE, its regime bank and its threshold."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from models.preprocessing import RegimeBank
from models.vae import WindowVAE


@dataclass(frozen=True)
class Detector:
    """Immutable once calibrated: a new threshold is a new Detector (`with_threshold`)."""

    vae: WindowVAE
    bank: RegimeBank
    threshold: float = math.inf
    # Each regime's threshold from real held-out windows when it was last trained on real data.
    # Replay scores run low, so these are never recomputed from replay (design note).
    regime_thresholds: dict[int, float] = field(default_factory=dict)

    @property
    def regimes(self) -> int:
        return self.vae.cfg.regimes

    @property
    def channels(self) -> int:
        return self.vae.cfg.channels

    @property
    def window(self) -> int:
        return self.vae.cfg.window

    def with_threshold(self, threshold: float, regime_thresholds: dict[int, float]) -> Detector:
        return replace(self, threshold=float(threshold), regime_thresholds=dict(regime_thresholds))
