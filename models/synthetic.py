"""Synthetic plant windows: operating regimes with their own set-point and dynamics.

Each regime mixes two oscillations of its own frequencies into the channels through its own
mixing matrix, around its own operating point. Regimes therefore differ both in level (handled
by the per-regime scaler bank) and in shape (what a model forgets). Used by tests, benchmarks and
the README's walkthrough; no real data involved.
"""

from __future__ import annotations

import numpy as np


def make_windows(
    n: int, channels: int, window: int, regime: int = 0, seed: int = 0, noise: float = 0.1
) -> np.ndarray:
    """n normal windows [n, window, channels] of `regime`."""
    p = np.random.default_rng(10_000 + regime)
    freqs = p.uniform(0.5, 4.0, size=2) * (1 + regime)  # cycles per window, regime-specific
    mix = p.normal(size=(channels, 2))
    level = p.uniform(-50, 50, size=channels)
    scale = p.uniform(0.5, 5.0, size=channels)
    rng = np.random.default_rng(seed)
    t = np.arange(window) / window
    phase = rng.uniform(0, 2 * np.pi, size=(n, 2, 1))
    amp = rng.uniform(0.8, 1.2, size=(n, 2, 1))
    waves = amp * np.sin(2 * np.pi * freqs[None, :, None] * t + phase)  # [n, 2, T]
    x = np.einsum("ck,nkt->ntc", mix, waves)  # [n, T, C]
    x = x + noise * rng.normal(size=x.shape)
    return (level + scale * x).astype(np.float32)


def inject_fault(
    windows: np.ndarray, channel: int, magnitude: float = 6.0, regime: int = 0
) -> np.ndarray:
    """A step of `magnitude` regime-stds on one channel over the second half of each window."""
    x = windows.copy()
    scale = np.asarray(np.random.default_rng(10_000 + regime).uniform(0.5, 5.0, size=x.shape[2]))
    half = x.shape[1] // 2
    x[:, half:, channel] += magnitude * scale[channel]
    return x


def hold_channel(windows: np.ndarray, channel: int) -> np.ndarray:
    """`channel` held at each window's first reading: a frozen sensor, or a PLC repeating the
    channel's last good value."""
    x = windows.copy()
    x[:, :, channel] = x[:, :1, channel]
    return x
