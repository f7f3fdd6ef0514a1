"""Baselines a plant engineer might pick instead, scored per row (higher = more anomalous)."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest


class PCAMonitor:
    """Classical multivariate statistical process monitoring: Hotelling T2 in the principal
    subspace and SPE (Q) in the residual, on standardised rows."""

    def __init__(self, var_kept: float = 0.9) -> None:
        self.var_kept = var_kept

    def fit(self, x: np.ndarray) -> PCAMonitor:
        self.mean, self.std = x.mean(0), x.std(0) + 1e-8
        self.pca = PCA(n_components=self.var_kept, svd_solver="full").fit(self._z(x))
        return self

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def t2(self, x: np.ndarray) -> np.ndarray:
        t = self.pca.transform(self._z(x))
        return np.sum(t**2 / self.pca.explained_variance_, axis=1)

    def residual(self, x: np.ndarray) -> np.ndarray:
        """Standardised rows less their projection on the principal subspace: [n, C]."""
        z = self._z(x)
        return z - self.pca.inverse_transform(self.pca.transform(z))

    def spe(self, x: np.ndarray) -> np.ndarray:
        return np.sum(self.residual(x) ** 2, axis=1)


class IForest:
    def __init__(self, seed: int) -> None:
        self.model = IsolationForest(n_estimators=200, random_state=seed)

    def fit(self, x: np.ndarray) -> IForest:
        self.model.fit(x)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        return -self.model.score_samples(x)
