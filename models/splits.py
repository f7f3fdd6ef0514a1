"""How a buffer of windows in arrival order is split for validation without leakage.

Gateways send sliding windows that repeat rows; a window held out next to a training window that
shares its rows scores as if seen. These splits find the overlap from the windows themselves and
leave such neighbours out ("purging" in walk-forward validation, de Prado 2018).
"""

from __future__ import annotations

import math

import numpy as np


def window_shift(a: np.ndarray, b: np.ndarray) -> int | None:
    """Steps k by which window b [T, C] continues window a (b[:T-k] == a[k:]), or None when
    they share no rows. Gateways that send sliding windows repeat rows; this finds out how."""
    steps = len(a)
    for k in range(1, steps):
        if np.array_equal(a[k:], b[: steps - k], equal_nan=True):
            return k
    return None


def overlap_gap(windows: np.ndarray, first_val: int) -> int:
    """Training windows to drop before the held-out block at first_val so that no held-out
    window shares a row with a training window.

    With sliding windows (stride k < T) the last T/k - 1 training windows contain rows of the
    first held-out windows; held out next to them, those windows score as if seen, which sets
    the threshold too low and lets early stopping reward memorising."""
    if first_val < 1:
        return 0
    k = window_shift(windows[first_val - 1], windows[first_val])
    return 0 if k is None else math.ceil(windows.shape[1] / k) - 1


def holdout_split(windows: np.ndarray, val_fraction: float, *, purge: bool
                  ) -> tuple[slice, slice]:
    """Training and held-out windows: the most recent val_fraction held out, and the training
    windows that share rows with them purged (at most half of the rest, so a small buffer
    still trains)."""
    n = len(windows)
    n_val = max(1, int(round(n * val_fraction)))
    gap = min(overlap_gap(windows, n - n_val), (n - n_val) // 2) if purge else 0
    return slice(0, max(1, n - n_val - gap)), slice(n - n_val, n)


def fold_bounds(n: int, folds: int) -> list[tuple[int, int]]:
    """[a, b) of each of `folds` contiguous blocks of n windows in arrival order."""
    return [(n * k // folds, n * (k + 1) // folds) for k in range(folds)]


def fold_training(windows: np.ndarray, a: int, b: int) -> np.ndarray:
    """What a fold's model trains on: every window but block [a, b) and the windows on either
    side that share rows with the block, so no block window is scored by a model that saw any
    of its rows."""
    n = len(windows)
    before = a - overlap_gap(windows, a) if a > 0 else 0
    after = b + overlap_gap(windows, b) if b < n else n
    return np.concatenate([windows[:max(before, 0)], windows[min(after, n):]])
