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

The model then sees each regime's standardised rows on their principal axes, each axis scaled to
unit variance (`principal_axes`): the decoder's Gaussian is diagonal, and on the sensors'
own axes it cannot say that two correlated sensors moving apart is rarer than both moving
together, which is how most process faults show (PCA's SPE reads exactly that). On the axes the
diagonal model fits the correlations. On TEP detections rose from 0.90 at 22.6 % false alarms
to 0.97 at 2.8 % (label-free, 6 seeds; bench/README.md, session 16); SKAB's moved within their
noise. Shape-only channels stay on their own axes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import torch

from models.imputation import impute_conditional
from models.masks import all_observed, any_missing
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
# An axis's variance is floored at this fraction of the largest one's. TEP's 52 channels hold
# two exactly collinear directions (6e-9 of the largest) whose unit-variance scaling would turn
# float32 rounding into signal; the smallest real axes there lie at 4e-4 and above.
_REL_AXIS_FLOOR = 1e-4
_MIN_AXIS_VARIANCE = 1e-6  # in standardised units, where a varying channel has ~1
# Complete rows needed per rotated channel. n rows of k channels read the smallest axis's
# variance low by about (1 - sqrt(k / n))^2 (Marchenko-Pastur), and scaling it to unit variance
# magnifies new rows there by the inverse: at n = 2k (the rule until session 18) 12x, at 10k 2x.
_ROWS_PER_AXIS = 10


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a dead channel: mean 0, std 1 below
        mean = np.nanmean(flat, axis=0)
        std = np.nanstd(flat, axis=0)
    mean = np.nan_to_num(mean, nan=0.0)
    std = np.nan_to_num(std, nan=1.0)
    level = mean if level is None else level
    std = np.maximum(std, np.maximum(_REL_STD_FLOOR * np.abs(level), _ABS_STD_FLOOR))
    return np.stack([mean, std]).astype(np.float32)


def principal_axes(z: np.ndarray, level: list[int]) -> np.ndarray:
    """Standardised windows z [N, T, C] (NaN = missing) -> A [C, C] with z @ A the rows on the
    principal axes of the `level` channels, each axis at unit variance, fitted on the rows that
    see them all; the other channels keep their own axis, and so do the gappiest level
    channels where that leaves too few complete rows (`_rotated`). The identity where fewer
    than two channels remain."""
    c = z.shape[-1]
    a = np.eye(c)
    rows = z.reshape(-1, c)
    level = _rotated(rows, level)
    if len(level) < 2:
        return a.astype(np.float32)
    rows = rows[:, level]
    rows = rows[~np.isnan(rows).any(axis=1)].astype(np.float64)
    ev, vec = np.linalg.eigh(np.cov(rows.T))  # ascending; columns are the axes
    if ev[-1] < _MIN_AXIS_VARIANCE:  # nothing varies: the channels' own std floors judge
        return a.astype(np.float32)
    a[np.ix_(level, level)] = vec / np.sqrt(np.maximum(ev, _REL_AXIS_FLOOR * ev[-1]))
    return a.astype(np.float32)


def _rotated(rows: np.ndarray, level: list[int]) -> list[int]:
    """The level channels to rotate together: all k of them where _ROWS_PER_AXIS * k rows see
    them all, else all but the fewest of the gappiest that leaves enough complete rows. A dead
    sensor leaves no complete row, and 1 % of readings missing at random leaves 0.6 % of a
    512-sensor line's rows complete. The covariance of the rows each pair sees (tried instead)
    misjudged the smallest axes, where faults show: 17-22x at 12 % missing (bench/README.md)."""
    seen = ~np.isnan(rows[:, level])
    order = np.argsort(seen.mean(axis=0), kind="stable")  # gappiest first

    def enough(dropped: int) -> bool:
        cols = order[dropped:]
        complete = int(seen[:, cols].all(axis=1).sum())
        return len(cols) >= 2 and complete >= _ROWS_PER_AXIS * len(cols)

    lo, hi = 0, len(level)  # the fewest dropped that is enough, by bisection (monotone)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid + 1, hi)
    return sorted(level[i] for i in order[lo:]) if enough(lo) else []


def level_channels(channels: int, shape_only: tuple[int, ...]) -> list[int]:
    """The channels judged by their level: every one not marked shape-only."""
    return [c for c in range(channels) if c not in shape_only]


@dataclass(frozen=True)
class RegimeBank:
    """Per-regime channel statistics: stats[r] = (mean[C], std[C]); quiet[r] = each channel's
    smallest within-window range in the regime's normal windows (models/stuck.py); axes[r] the
    map of standardised rows onto the regime's principal axes (`principal_axes`; None: every
    regime on the sensors' own axes, as models before session 16 were trained)."""

    stats: np.ndarray  # [R, 2, C] float32
    quiet: np.ndarray  # [R, C] float64, raw units; NaN = unknown, never flags
    shape_only: tuple[int, ...] = ()  # channels judged by their shape in a window (`centre`)
    axes: np.ndarray | None = None  # [R, C, C] float32

    @classmethod
    def fit(cls, x: np.ndarray, shape_only: tuple[int, ...] = (), decorrelate: bool = True
            ) -> RegimeBank:
        """One regime's bank: statistics (and principal axes) of the windows with their
        shape-only channels centred, quiet floors of the raw windows."""
        shape_only = tuple(shape_only)
        centred = centre(torch.as_tensor(np.asarray(x, np.float32)), shape_only).numpy()
        stats = regime_stats(centred, level=regime_stats(x)[0] if shape_only else None)
        axes = principal_axes((centred - stats[0]) / stats[1], level_channels(
            x.shape[-1], shape_only))[None] if decorrelate else None
        return cls(stats[None], quiet_floor(x)[None], shape_only, axes)

    @property
    def regimes(self) -> int:
        return int(self.stats.shape[0])

    def with_regime(self, x: np.ndarray) -> RegimeBank:
        """A bank with one more regime fitted on x (a declared new operating regime)."""
        new = RegimeBank.fit(x, self.shape_only, decorrelate=self.axes is not None)
        axes = None if self.axes is None or new.axes is None else np.concatenate(
            [self.axes, new.axes])
        return RegimeBank(np.concatenate([self.stats, new.stats]),
                          np.concatenate([self.quiet, new.quiet]), self.shape_only, axes)

    def with_quiet(self, x: np.ndarray) -> RegimeBank:
        """This bank with each regime's quiet floors lowered to what its windows among x show:
        a retrain's fresh windows are normal running (or vouched for), so a channel that they
        show flat is no longer called stuck when flat."""
        _, _, regime = self.standardise_sensors(x)
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

        A regime at a time, in place on one [N, T, C] buffer: all regimes at once took an
        [N, R, T, C] tensor and its temporaries (+1.5 GB for 1,024 windows of 64 x 512 in
        four regimes, bench/README.md "Wide lines and gaps").
        """
        if self.regimes == 1:  # a line's usual case: skips ~0.4 ms of a 256-window batch
            return torch.zeros(len(x), dtype=torch.long, device=x.device)
        st = torch.as_tensor(self.stats, device=x.device)  # [R, 2, C]
        seen = mask.sum(dim=1)  # [N, C]
        nll = torch.stack([  # [R, N]: sum over observed t, c of 0.5 z^2 + log std
            (x - mean).div_(std).square_().mul_(mask).sum(dim=(1, 2)).mul_(0.5)
            + seen @ std.log() for mean, std in st.unbind(0)])
        return nll.argmin(dim=0)

    def standardise(
        self, x: np.ndarray | torch.Tensor, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route and standardise windows onto the regime's axes: what the model sees.

        Returns (xs [N, C, T] with missing values imputed, mask [N, C, T] the share of each
        step's readings observed, regime [N]). Channels-first because the networks convolve
        over time.
        """
        z, mask, regime = self.standardise_sensors(x, device)
        return (*self.to_axes(z, mask, regime), regime)

    def standardise_sensors(
        self, x: np.ndarray | torch.Tensor, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Route and standardise windows on the sensors' own axes.

        Returns (z [N, T, C] standardised with missing set to 0, mask [N, T, C] 1=observed,
        regime [N]).
        """
        xt = centre(torch.as_tensor(x, dtype=torch.float32, device=device), self.shape_only)
        # Gateways mostly send complete windows: then the NaN handling and the mask's product
        # are skipped (they are a fifth of scoring's work outside the network; bench/README.md).
        complete = not any_missing(xt)  # xt: [N, T, C]
        if complete:
            mask = torch.ones_like(xt)
        else:
            mask = (~torch.isnan(xt)).to(torch.float32)
            xt = torch.nan_to_num(xt, nan=0.0)
        regime = self.route(xt, mask)
        st = torch.as_tensor(self.stats, device=xt.device)
        if self.regimes == 1:
            z = (xt - st[0, 0]) / st[0, 1]
        else:
            z = (xt - st[regime, None, 0]) / st[regime, None, 1]  # [N, T, C]
        z = z.clamp_(-_MAX_Z, _MAX_Z)
        if not complete:
            z = z.mul_(mask)  # missing values imputed at the regime mean (0)
        return z, mask, regime

    def to_axes(self, z: torch.Tensor, mask: torch.Tensor, regime: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """`standardise_sensors`' z, mask [N, T, C] -> xs, mask [N, C, T] on the regime's
        axes. A rotated axis mixes every level channel, so its mask is the share of them
        observed at the step, and a missing reading is first imputed from the step's others."""
        if self.axes is None:
            return z.transpose(1, 2).contiguous(), mask.transpose(1, 2).contiguous()
        complete = all_observed(mask)
        if not complete:
            z, mask = self._fill(z, mask, regime)
        # A' z' straight into the channels-first layout the network reads: no transposed copy
        a = self._axes_tensor.to(z.device)  # [R, C, C]
        present = regime.unique().tolist() if self.regimes > 1 else [0]
        if len(present) == 1:  # a batch of one regime (scoring's sub-batches are)
            xs = torch.matmul(a[present[0]].T, z.transpose(1, 2))
        else:  # a regime at a time: each window's own map would be N x C x C floats (1 GB at
            xs = z.new_empty(z.shape[0], z.shape[2], z.shape[1])  # C=512, N=1024)
            for r in present:
                rows = regime == r
                xs[rows] = torch.matmul(a[r].T, z[rows].transpose(1, 2))
        xs = xs.clamp_(-_MAX_Z, _MAX_Z)
        return xs, torch.ones_like(xs) if complete else mask.transpose(1, 2).contiguous()

    def _fill(self, z: torch.Tensor, mask: torch.Tensor, regime: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each step's missing readings imputed (`impute_conditional`), and the share of level
        channels observed at the step as the mask of every rotated axis."""
        z = z.clone()
        c = z.shape[-1]
        gaps = mask.sum(dim=2) < c  # [N, T]: steps missing a reading (sums of 0/1 are exact)
        n, t = gaps.nonzero(as_tuple=True)
        precision = self._precision_tensor.to(z.device)
        z[n, t] = impute_conditional(z[n, t], mask[n, t] > 0, precision, regime[n])
        level = torch.zeros(c, dtype=torch.bool, device=z.device)
        level[level_channels(c, self.shape_only)] = True
        seen = (mask @ level.to(mask.dtype)).div_(int(level.sum())).unsqueeze(2)  # [N, T, 1]
        return z, torch.where(level, seen, mask)

    def axis_maps(self, regime: torch.Tensor, device: str | torch.device) -> torch.Tensor:
        """The axes maps [1, C, C] (one regime) or [N, C, C] (each window's regime's); for a
        bank with axes."""
        a = self._axes_tensor.to(device)
        return a if self.regimes == 1 else a[regime]

    @cached_property
    def _precision_tensor(self) -> torch.Tensor:
        """Each regime's precision on standardised rows, A A' [R, C, C]; once per bank (C^3)."""
        a = self._axes_tensor
        return a @ a.transpose(1, 2)

    @cached_property
    def _axes_tensor(self) -> torch.Tensor:
        if self.axes is None:
            raise ValueError("this bank scores on the sensors' own axes: no axes to map")
        return torch.as_tensor(self.axes, dtype=torch.float32)
