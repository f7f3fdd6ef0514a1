"""Stuck sensors: a channel that holds (nearly) one reading through a window.

A frozen sensor, or a PLC that repeats a channel's last good value, is one of the commonest
faults on a line, and a reconstruction score cannot see it: the held value sits near what the
model expects, so the residual shrinks rather than grows. On TEP, every one of the 52 channels
held at its first reading through the window was flagged as often as normal windows are (6.8 %:
never told apart), by the service's first model (bench/README.md, stuck sensors).

So each regime carries, per channel, the smallest within-window range (max - min of the observed
readings) among the normal windows it was fitted on: a statistic, never data. A window in which a
channel spans less than _QUIETER of that floor is stuck on it. A channel that was ever flat in
normal running (a quantised flow meter holding 32.0, a closed valve's 0) has a floor of 0 and is
never flagged; one whose floor is unknown (NaN: never observed well enough) neither.
"""

from __future__ import annotations

import numpy as np
import torch

from models.masks import all_observed

# "Ten times quieter than the quietest normal window". Exact flat lines (range 0) are flagged
# at any factor; this sets how nearly-flat counts too. On TEP's normal test run no channel came
# below 0.69 of its floor, on SKAB's normal test rows below 0.49 (outside exact flat lines).
_QUIETER = 0.1
# A channel is judged in a window only where it was observed in at least this share of steps:
# fewer readings span less by chance alone.
_MIN_OBSERVED = 0.5


def window_ranges(x: np.ndarray) -> np.ndarray:
    """Windows [N, T, C] (NaN = missing) -> each channel's range of observed readings [N, C],
    NaN where fewer than _MIN_OBSERVED of its steps were observed."""
    observed = (~np.isnan(x)).mean(axis=1)  # [N, C]
    with np.errstate(invalid="ignore"):
        spread = np.fmax.reduce(x, axis=1) - np.fmin.reduce(x, axis=1)  # NaN-skipping
    return np.where(observed >= _MIN_OBSERVED, spread, np.nan).astype(np.float64)


def quiet_floor(x: np.ndarray) -> np.ndarray:
    """The smallest range each channel spans within a window of x [N, T, C] -> [C] (NaN where
    no window judges it)."""
    r = window_ranges(x)
    judged = ~np.isnan(r)
    return np.where(judged.any(axis=0), np.where(judged, r, np.inf).min(axis=0), np.nan)


def stuck_standardised(xs: torch.Tensor, mask: torch.Tensor, floor: torch.Tensor
                       ) -> torch.Tensor:
    """xs, mask [N, C, T] (standardised, 1 = observed); floor [N, C] or [1, C], each window's
    regime's quiet floor in the same standardised units -> [N, C] bool: its stuck channels."""
    if all_observed(mask):  # gateways mostly send complete windows
        spread = xs.amax(dim=2) - xs.amin(dim=2)
        judged = torch.ones_like(spread, dtype=torch.bool)
    else:
        seen = mask.bool()
        spread = (xs.masked_fill(~seen, -torch.inf).amax(dim=2)
                  - xs.masked_fill(~seen, torch.inf).amin(dim=2))
        judged = mask.mean(dim=2) >= _MIN_OBSERVED
    return judged & (spread < _QUIETER * floor)  # a NaN floor compares False
