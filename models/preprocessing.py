"""Per-regime scaling, missing-value masks and shape checks.

One scaler for all regimes failed in the prototype (design note): regimes differ in operating
point, so each regime keeps its own per-channel mean and std (statistics, never raw data) and every
window is routed to the regime whose statistics explain it best.

Channels a line marks shape-only lose each window's own mean before scaling, in training and in
scoring alike: for sensors whose level drifts in normal running (a rig's temperatures while it
warms for hours), judged by their shape within a window instead. On SKAB, with its Temperature
and Thermocouple so marked, false alarms fell from 76 % to 42 % at F1 0.783 vs 0.741, and the
ranking allows the issue's goal (F1 0.826 at 10 % false alarms with an oracle threshold); a
marked channel's slow excursion goes unseen (bench/README.md, quality section). Their std is
floored by the raw level, as any channel's: centred, the mean is ~0 and would floor nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch

from models.stuck import quiet_floor, stuck_standardised

# A channel whose std is below this fraction of its level is treated as (near) constant; flooring
# keeps its standardised values finite while a real change in it still stands out.
_REL_STD_FLOOR = 1e-3
_ABS_STD_FLOOR = 1e-6
# Standardised values are clipped here. A reading 1e6 spreads from normal is anomalous whatever
# its exact size, and beyond this float32 overflows: a sensor sending 3e38 (finite in float32)
# made the score NaN, which compares false with the threshold, so the window was called normal.
_MAX_Z = 1e6
# How far outside a channel's central range a value must lie to be taken for a sentinel rather
# than a reading. In every benchmark series (SKAB's files whole, faults included; TEP's fault
# runs; the synthetic regimes) no value lies more than 18.2 widths out; -9999 on a channel
# that reads 0-10 lies 1,000 out.
_GROSS_WIDTHS = 100.0


def check_windows(x: np.ndarray, channels: int, window: int) -> np.ndarray:
    """Return windows as float32 [N, T, C] or raise ValueError saying what is wrong."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (window, channels):
        raise ValueError(
            f"expected windows of shape [N, {window}, {channels}] (steps x channels), "
            f"got {list(arr.shape)}"
        )
    if np.isinf(arr).any():
        raise ValueError("windows contain infinite values; send null for a missing value")
    return arr


def gross_outliers(x: np.ndarray, widths: float = _GROSS_WIDTHS) -> np.ndarray:
    """Values of windows [N, T, C] more than `widths` times their channel's central range
    (0.5th to 99.5th percentile of all its values, floored like a std) outside that range ->
    [N, T, C] bool. Meant for sensor sentinels (-9999, 1e30, 3e38) that make up less than 0.5 %
    of a channel's readings: one such value among a first model's windows set the channel's std
    so wide that a 4-sigma fault on it went unseen (caught in 0 % of windows instead of 100 %)."""
    flat = x.reshape(-1, x.shape[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN channel: no range, no flag
        lo, hi = np.nanpercentile(flat, [0.5, 99.5], axis=0)
    floor = np.maximum(_REL_STD_FLOOR * np.maximum(np.abs(lo), np.abs(hi)), _ABS_STD_FLOOR)
    width = np.maximum(hi - lo, floor)
    with np.errstate(invalid="ignore", over="ignore"):
        return (x < lo - widths * width) | (x > hi + widths * width)  # NaN compares False


def mask_gross_outliers(x: np.ndarray) -> tuple[np.ndarray, int]:
    """x with its gross outliers set missing (NaN), and how many there were. Training then
    treats a sentinel as the missing reading it stands for; x itself is left as it is."""
    gross = gross_outliers(x)
    n = int(gross.sum())
    if not n:
        return x, 0
    return np.where(gross, np.float32(np.nan), x).astype(x.dtype, copy=False), n


def centre(x: torch.Tensor, channels: tuple[int, ...]) -> torch.Tensor:
    """Windows [N, T, C] (NaN = missing) with `channels` less their mean over each window's
    observed steps; a new tensor, the input is left as it is."""
    if not channels:
        return x
    idx = list(channels)
    offset = torch.zeros(x.shape[0], 1, x.shape[2], dtype=x.dtype, device=x.device)
    offset[:, :, idx] = torch.nan_to_num(x[:, :, idx].nanmean(dim=1, keepdim=True), nan=0.0)
    return x - offset


def regime_stats(x: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
    """Mean and floored std per channel of windows [N, T, C] -> [2, C]. `level` [C], where
    given, sets the relative floor instead of the mean: a centred channel's mean is ~0."""
    flat = x.reshape(-1, x.shape[-1])
    with np.errstate(all="ignore"):
        mean = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.nan_to_num(std, nan=1.0)
    level = mean if level is None else level
    std = np.maximum(std, np.maximum(_REL_STD_FLOOR * np.abs(level), _ABS_STD_FLOOR))
    return np.stack([mean, std]).astype(np.float32)


@dataclass(frozen=True)
class RegimeBank:
    """Per-regime channel statistics: stats[r] = (mean[C], std[C]); quiet[r] = each channel's
    smallest within-window range in the regime's normal windows (models/stuck.py)."""

    stats: np.ndarray  # [R, 2, C] float32
    quiet: np.ndarray  # [R, C] float64, raw units; NaN = unknown, never flags
    shape_only: tuple[int, ...] = ()  # channels judged by their shape in a window (`centre`)

    @classmethod
    def fit(cls, x: np.ndarray, shape_only: tuple[int, ...] = ()) -> RegimeBank:
        return cls(cls._stats(x, tuple(shape_only))[None], quiet_floor(x)[None],
                   tuple(shape_only))

    @staticmethod
    def _stats(x: np.ndarray, shape_only: tuple[int, ...]) -> np.ndarray:
        if not shape_only:
            return regime_stats(x)
        centred = centre(torch.as_tensor(np.asarray(x, np.float32)), shape_only).numpy()
        return regime_stats(centred, level=regime_stats(x)[0])

    @property
    def regimes(self) -> int:
        return int(self.stats.shape[0])

    def with_regime(self, x: np.ndarray) -> RegimeBank:
        """A bank with one more regime fitted on x (a declared new operating regime)."""
        stats = self._stats(x, self.shape_only)[None]
        return RegimeBank(np.concatenate([self.stats, stats]),
                          np.concatenate([self.quiet, quiet_floor(x)[None]]), self.shape_only)

    def with_quiet(self, x: np.ndarray) -> RegimeBank:
        """This bank with each regime's quiet floors lowered to what its windows among x show:
        a retrain's fresh windows are normal running (or vouched for), so a channel that they
        show flat is no longer called stuck when flat."""
        _, _, regime = self.standardise(x)
        quiet = self.quiet.copy()
        for r in np.unique(regime.numpy()):
            quiet[r] = np.fmin(quiet[r], quiet_floor(x[regime.numpy() == r]))
        return replace(self, quiet=quiet)

    def stuck(self, xs: torch.Tensor, mask: torch.Tensor, regime: torch.Tensor) -> torch.Tensor:
        """Standardised windows xs, mask [N, C, T] routed to `regime` [N] -> [N, C] bool, the
        channels stuck in each (models/stuck.py)."""
        floor = self._quiet_standardised.to(xs.device)
        return stuck_standardised(xs, mask, floor[regime] if self.regimes > 1 else floor)

    @cached_property
    def _quiet_standardised(self) -> torch.Tensor:
        """quiet in each regime's standardised units [R, C]; once per bank, not per request
        (a tenth of a one-window score's time)."""
        return torch.as_tensor(self.quiet / self.stats[:, 1], dtype=torch.float32)

    def route(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Most likely regime per window under a diagonal Gaussian per regime.

        x, mask: [N, T, C] (x with NaN already zeroed) -> [N] long.
        """
        if self.regimes == 1:  # a line's usual case: skips ~0.4 ms of a 256-window batch
            return torch.zeros(len(x), dtype=torch.long, device=x.device)
        st = torch.as_tensor(self.stats, device=x.device)  # [R, 2, C]
        mean, std = st[:, 0], st[:, 1]  # [R, C]
        m = mask.unsqueeze(1)  # [N, 1, T, C]
        z = (x.unsqueeze(1) - mean[None, :, None]) / std[None, :, None]  # [N, R, T, C]
        nll = (0.5 * z.square() + torch.log(std)[None, :, None]) * m
        return nll.sum(dim=(2, 3)).argmin(dim=1)

    def standardise(
        self, x: np.ndarray | torch.Tensor, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route and standardise windows.

        Returns (xs [N, C, T] standardised with missing set to 0, mask [N, C, T] 1=observed,
        regime [N]). Channels-first because the networks convolve over time.
        """
        xt = centre(torch.as_tensor(x, dtype=torch.float32, device=device), self.shape_only)
        mask = ~torch.isnan(xt)  # xt: [N, T, C]
        # Gateways mostly send complete windows: then the NaN handling and the mask's product
        # are skipped (they are a fifth of scoring's work outside the network; bench/README.md).
        complete = bool(mask.all())
        if not complete:
            xt = torch.nan_to_num(xt, nan=0.0)
        regime = self.route(xt, mask)
        st = torch.as_tensor(self.stats, device=xt.device)
        if self.regimes == 1:
            xs = (xt - st[0, 0]) / st[0, 1]
        else:
            xs = (xt - st[regime, None, 0]) / st[regime, None, 1]  # [N, T, C]
        xs = xs.clamp_(-_MAX_Z, _MAX_Z).transpose(1, 2).contiguous()  # [N, C, T]
        if complete:
            return xs, torch.ones_like(xs), regime
        m = mask.transpose(1, 2).to(torch.float32, memory_format=torch.contiguous_format)
        return xs.mul_(m), m, regime  # missing values imputed at the regime mean (0)
