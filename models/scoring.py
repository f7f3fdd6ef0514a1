"""Per-window anomaly score, per-channel shares and regime; batched under inference mode.

score = sum over observed elements of 0.5 z^2, z = (x - mean) / std, with (mean, std) decoded from
the posterior mean (z_c = mu, z_d = argmax): the residual energy in units of the model's own
predicted spread (>= 0, so score / threshold is a meaningful ratio). Windows with missing values
are rescaled to the full C x T so scores stay comparable.

Why not the full negative log-likelihood, which adds sum log(std)? That term is the model's
uncertainty, not the window's surprise, and it is what drifts under generative replay: each
student's std on an old regime grows a little (0.174 -> 0.205 over three stages on the
retention test) while its residuals stay the same, which alone pushed the first regime's false
alarms from 0.009 to 0.028 (3 seeds). On the real data the two scores detect alike (SKAB F1 0.740
vs 0.741, TEP detection rate 0.903 vs 0.901; bench/README.md).

The model works on each regime's principal axes (models/preprocessing.py), so the score's
energy is told back to the sensors by reconstruction-based contribution (Alcala & Qin,
"Reconstruction-based contribution for process monitoring", Automatica 2009): sensor i's share
is the part of the energy that correcting sensor i alone would remove. On the sensors' own axes
that is exactly each sensor's energy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from models.detector import Detector
from models.vae import WindowVAE


@dataclass(frozen=True)
class Scores:
    score: np.ndarray  # [N] float64, higher = more anomalous
    sensor_energy: np.ndarray  # [N, C] each sensor's reconstruction-based contribution, nats
    regime: np.ndarray  # [N] int, the routed operating regime
    observed: np.ndarray  # [N] fraction of values present
    stuck: np.ndarray  # [N, C] bool: channels holding one reading (models/stuck.py)
    # [N, C] bool: sensors whose energy passed their own limit (Detector.sensor_scale)
    over_limit: np.ndarray
    limit: np.ndarray  # [N] the alarm threshold of each window's regime (Detector.limits)

    @property
    def contributions(self) -> np.ndarray:
        """[N, C] each sensor's share of sensor_energy, rows sum to 1 (even where it is 0)."""
        totals = self.sensor_energy.sum(axis=1, keepdims=True)
        safe = np.where(totals > 0, totals, 1.0)
        return np.where(totals > 0, self.sensor_energy / safe, 1.0 / self.sensor_energy.shape[1])

    @property
    def ratio(self) -> np.ndarray:
        """[N] score over its regime's alarm threshold: > 1 alarms, comparable across regimes."""
        return self.score / self.limit

    def anomalous(self) -> np.ndarray:
        """[N] bool: the score above its regime's alarm threshold, a sensor past its own limit,
        which a wide line's sum dilutes (models/calibration.py), or a stuck channel, which the
        score cannot see (models/stuck.py)."""
        return (self.score > self.limit) | self.over_limit.any(axis=1) | self.stuck.any(axis=1)


@dataclass(frozen=True)
class OutOfFold:
    """The training windows of a first model or a new regime scored by fold models that did
    not see them (lifelong.out_of_fold), for its calibration."""

    score: np.ndarray  # [n]
    sensor_energy: np.ndarray  # [n, C]
    regime: np.ndarray  # [n] int, routed by the fold model

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def empty(cls, channels: int) -> OutOfFold:
        """No out-of-fold windows: a student, or calibration folds off."""
        return cls(np.zeros(0), np.zeros((0, channels)), np.zeros(0, dtype=np.int64))


def _gap_rescale(mask: torch.Tensor) -> torch.Tensor:
    """mask [N, C, T] -> [N]: C x T over the observed weight, so that a window with gaps scores
    on the scale of a full one."""
    return mask[0].numel() / mask.sum(dim=(1, 2)).clamp_min(1.0)


def _residual_energy(
    vae: WindowVAE, xs: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward: 0.5 z^2 per observed element [N, C, T], the decoded std [N, C, T] and the
    missing-value rescale [N] that keeps windows with gaps comparable to full ones."""
    out = vae(xs, mask)
    energy = (xs - out["mean"]).div_(out["std"]).square_().mul_(0.5)  # in place: no temporaries
    return energy.mul_(mask), out["std"], _gap_rescale(mask)


def _excess(vae: WindowVAE, energy: torch.Tensor, std: torch.Tensor, mask: torch.Tensor,
            scale: torch.Tensor) -> torch.Tensor:
    log_excess = torch.log(std / vae.cfg.min_std) * mask
    return (energy + log_excess).sum(dim=(1, 2)) * scale


@torch.inference_mode()
def score_standardised(
    vae: WindowVAE, xs: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """xs, mask [N, C, T] -> score [N], per-axis score [N, C]."""
    energy, _, scale = _residual_energy(vae, xs, mask)
    per_axis = energy.sum(dim=2) * scale[:, None]  # [N, C]
    return per_axis.sum(dim=1), per_axis


@torch.inference_mode()
def score_with_sensors(
    vae: WindowVAE, xs: torch.Tensor, mask: torch.Tensor, axes: torch.Tensor,
    observed: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """xs, mask [N, C, T] on the axes z @ axes ([1 or N, C, C], z the standardised sensors),
    observed [N, C, T] the sensors' own mask -> score [N], each sensor's reconstruction-based
    contribution [N, C] (0 for a sensor not observed)."""
    out = vae(xs, mask)
    precision = out["std"].square_().reciprocal_().mul_(mask)  # [N, C, T]; std is not reused
    residual = xs - out["mean"]
    weighted = residual * precision  # r / std^2, masked
    energy = residual.mul_(weighted).sum(dim=(1, 2)).mul_(0.5)
    # The energy per step is 0.5 r_z' M r_z, r_z the residual on the sensors and M = A D A'
    # (D the precision); sensor i's contribution is 0.5 (M r_z)_i^2 / M_ii (Alcala & Qin).
    grad = torch.matmul(axes, weighted)  # [N, C, T]: (M r_z)_i, as r = r_z A
    curvature = torch.matmul(axes.square(), precision).clamp_min_(1e-12)  # [N, C, T]: M_ii
    rbc = grad.square_().div_(curvature).mul_(observed).sum(dim=2).mul_(0.5)
    return energy * _gap_rescale(mask), rbc


@torch.inference_mode()
def excess_nll_standardised(vae: WindowVAE, xs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """xs, mask [N, C, T] -> [N]: the Gaussian NLL of the reconstruction above its floor,
    sum of 0.5 z^2 + log(std / min_std), rescaled for missing values like the score.

    How well a model fits, for comparing two models (the gate). The NLL is a proper scoring
    rule; the anomaly score alone is not: it drops log(std), so an over-wide std would look
    like a better fit (an under-trained teacher "fitted" fresh data 33 % better than its
    converged student by the score)."""
    energy, std, scale = _residual_energy(vae, xs, mask)
    return _excess(vae, energy, std, mask, scale)


@torch.inference_mode()
def score_and_excess_nll_standardised(
    vae: WindowVAE, xs: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """xs, mask [N, C, T] -> (score [N], excess NLL [N]) from one forward pass."""
    energy, std, scale = _residual_energy(vae, xs, mask)
    return energy.sum(dim=(1, 2)) * scale, _excess(vae, energy, std, mask, scale)


@torch.inference_mode()
def excess_nll(det: Detector, windows: np.ndarray) -> np.ndarray:
    """excess_nll_standardised of raw windows [N, T, C]."""
    dev = next(det.vae.parameters()).device
    xs, mask, _ = det.bank.standardise(windows, device=dev)
    return excess_nll_standardised(det.vae, xs, mask).cpu().numpy().astype(np.float64)


def _score_batch(det: Detector, windows: np.ndarray, dev: torch.device
                 ) -> tuple[torch.Tensor, ...]:
    """One batch's score, sensor contributions, regime, observed share and stuck channels."""
    bank = det.bank
    z, seen, regime = bank.standardise_sensors(windows, device=dev)  # [N, T, C]
    if bank.axes is None or bank.regimes == 1:
        s, per_sensor = _score_routed(det, z, seen, regime)
    else:  # a regime at a time, so each sub-batch shares one axes map [1, C, C]: a map per
        s = z.new_empty(len(z))  # window is N x C x C floats, 1 GB at C=512 and N=1024
        per_sensor = z.new_empty(len(z), z.shape[2])
        for r in regime.unique().tolist():
            rows = (regime == r).nonzero().flatten()
            s[rows], per_sensor[rows] = _score_routed(det, z[rows], seen[rows], regime[rows])
    z, seen = z.transpose(1, 2), seen.transpose(1, 2)  # the sensors' [N, C, T], views
    return s, per_sensor, regime, seen.mean(dim=(1, 2)), bank.stuck(z, seen, regime)


def _score_routed(det: Detector, z: torch.Tensor, seen: torch.Tensor, regime: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Score [N] and each sensor's contribution [N, C] of standardised windows z, seen
    [N, T, C] of one regime, or of a bank with a single regime or no axes."""
    bank = det.bank
    xs, mask = bank.to_axes(z, seen, regime)  # [N, C, T] on the regime's axes
    if bank.axes is None:
        return score_standardised(det.vae, xs, mask)
    maps = bank.axis_maps(regime[:1], z.device)  # [1, C, C]
    return score_with_sensors(det.vae, xs, mask, maps, seen.transpose(1, 2))


@torch.inference_mode()
def score(det: Detector, windows: np.ndarray, batch_size: int = 1024) -> Scores:
    """Score raw windows [N, T, C] (NaN = missing) with a detector."""
    if det.vae.training:  # eval() walks every module: 5 % of a one-window request's CPU
        det.vae.eval()
    dev = next(det.vae.parameters()).device
    parts = [_score_batch(det, windows[i : i + batch_size], dev)
             for i in range(0, len(windows), batch_size)]
    if not parts:
        c = det.channels
        return Scores(np.zeros(0), np.zeros((0, c)), np.zeros(0, dtype=np.int64), np.zeros(0),
                      np.zeros((0, c), dtype=bool), np.zeros((0, c), dtype=bool), np.zeros(0))
    total, channel, routed, observed, stuck = (
        torch.cat(p).cpu().numpy() for p in zip(*parts, strict=True))
    over = (np.zeros_like(stuck) if det.sensor_scale is None
            else channel > det.sensor_threshold * det.sensor_scale[routed])
    return Scores(total.astype(np.float64), channel, routed.astype(np.int64), observed, stuck,
                  over, det.limits(routed))
