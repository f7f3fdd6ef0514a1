"""Lifelong training: a student learns fresh windows plus replay from its frozen teacher.

The training loop itself, its minibatch mix and its loss terms, is models/loop.py; here is what
surrounds it: the student's start (warm from the teacher, or cold), its regime bank, the held-out
block, the latent prior and the out-of-fold scores that calibrate a first model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from models.config import TrainConfig, VAEConfig
from models.detector import Detector
from models.loop import ProgressCallback, TrainLoop
from models.preprocessing import RegimeBank, mask_gross_outliers
from models.replay import Replayer
from models.scoring import OutOfFold, score
from models.splits import fold_bounds, fold_training, holdout_split
from models.vae import WindowVAE, fit_latent_prior, fork

_COLLAPSED_KL = 0.75  # TrainResult.collapsed: fresh / replay KL below this
_MIN_FOLD_WINDOWS = 32  # out_of_fold: fewer per fold says nothing a plain hold-out does not


@dataclass(frozen=True)
class TrainResult:
    detector: Detector  # not yet calibrated: threshold is inf
    heldout: np.ndarray  # raw held-out fresh windows [n, T, C], for calibration and the gate
    history: list[dict[str, float]]
    cold_restart: bool = False  # the warm student collapsed and one from scratch replaced it
    # First models and new regimes: each fresh window's score by a model trained without its
    # block (TrainConfig.calibration_folds), for the threshold; empty otherwise.
    out_of_fold: OutOfFold = field(default_factory=lambda: OutOfFold.empty(0))
    masked_outliers: int = 0  # fresh values taken for sensor sentinels, trained as missing

    @property
    def best(self) -> dict[str, float]:
        """The history row of the weights kept (early stopping restores the best)."""
        return min(self.history, key=lambda h: h["val_loss"], default={"val_loss": math.inf})

    @property
    def best_val_loss(self) -> float:
        return self.best["val_loss"]

    @property
    def collapsed(self) -> bool:
        """Whether the student encodes held-out fresh windows with much less latent information
        than replayed ones: a warm start stuck explaining a new regime by a wide decoder std
        instead of its code (synthetic stalls: 0.17-0.67 of the replay KL; healthy stages,
        synthetic and SKAB: 0.85-2.0)."""
        row = self.best
        if "val_kl_replay" not in row:  # no teacher, no replay: nothing to compare with
            return False
        return row["val_kl_fresh"] < _COLLAPSED_KL * row["val_kl_replay"]


def frozen_copy(vae: WindowVAE, device: str) -> WindowVAE:
    """The teacher for training: a copy in eval mode with no gradients (never the served one)."""
    teacher = copy.deepcopy(vae).to(device).eval()
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def shrink_perturb(student: WindowVAE, shrink: float) -> WindowVAE:
    """weights <- shrink * warm-started weights + (1 - shrink) * a fresh random init.

    "Shrink and perturb" (Ash & Adams, "On Warm-Starting Neural Network Training", 2020), for
    a plainly warm-started student that sometimes cannot learn the new regime (synthetic seed 4:
    AUROC 0.62 on it, 0.64 even with 60 epochs). Off by default; see TrainConfig.warm_shrink."""
    if shrink < 1.0:
        init = WindowVAE(student.cfg).to(next(student.parameters()).device)
        for w, w0 in zip(student.parameters(), init.parameters(), strict=True):
            w.mul_(shrink).add_(w0, alpha=1.0 - shrink)
    return student


def train_student(
    fresh: np.ndarray,
    teacher: Detector | None = None,
    cfg: TrainConfig | None = None,
    *,
    new_regime: bool = False,
    callback: ProgressCallback | None = None,
    shape_only: tuple[int, ...] = (),
) -> TrainResult:
    """Fork a student from `teacher` (or start from scratch) and train it on fresh windows
    [N, T, C] plus teacher replay, per `cfg.strategy`. `callback` sees every fit's epochs, each
    from 1: a student from scratch after a collapsed warm one (cfg.cold_margin) and the fold
    models of `out_of_fold`; an exception it raises stops the training and propagates, which is
    how a caller cancels one between epochs.
    `shape_only` (channel indices, models/preprocessing.py) is set by a line's first model;
    students inherit their teacher's, since replay lives in the teacher's scaled space.
    Gross outliers (sensor sentinels, preprocessing.gross_outliers) train as missing values."""
    fresh, masked = mask_gross_outliers(np.asarray(fresh, dtype=np.float32))
    res = _student(fresh, teacher, cfg or TrainConfig(), new_regime, callback, tuple(shape_only))
    return replace(res, masked_outliers=masked)


def _student(fresh: np.ndarray, teacher: Detector | None, cfg: TrainConfig, new_regime: bool,
             callback: ProgressCallback | None, shape_only: tuple[int, ...]) -> TrainResult:
    """The trained student and, where its data are a regime no model saw before (a first
    model, a new regime), their out-of-fold scores for its threshold."""
    res = _fit(fresh, teacher, cfg, new_regime, callback, shape_only)
    if teacher is None or new_regime:
        res = replace(res, out_of_fold=out_of_fold(fresh, cfg, shape_only, teacher,
                                                   callback=callback))
    return res


def _fit(fresh: np.ndarray, teacher: Detector | None, cfg: TrainConfig, new_regime: bool,
         callback: ProgressCallback | None, shape_only: tuple[int, ...]) -> TrainResult:
    torch.manual_seed(cfg.seed)
    if teacher is not None and shape_only and tuple(shape_only) != teacher.bank.shape_only:
        raise ValueError(f"shape-only channels {list(shape_only)} differ from the teacher's "
                         f"{list(teacher.bank.shape_only)}; they are fixed by a line's first model")
    if teacher is None:
        bank = RegimeBank.fit(_bank_rows(fresh, cfg), tuple(shape_only), cfg.decorrelate)
        vcfg = VAEConfig(fresh.shape[2], fresh.shape[1])
    elif new_regime:
        bank, vcfg = teacher.bank.with_regime(_bank_rows(fresh, cfg)), teacher.vae.cfg.grown()
    else:
        bank, vcfg = teacher.bank.with_quiet(fresh), teacher.vae.cfg
    replay = None
    if teacher is not None and cfg.uses_replay:
        replay = Replayer(frozen_copy(teacher.vae, cfg.device), teacher.replay_threshold,
                          cfg.replay_noise)
    if teacher is None or not cfg.warm_start:
        return _train(WindowVAE(vcfg).to(cfg.device), replay, bank, fresh, cfg, callback)
    warm = shrink_perturb(fork(teacher.vae, vcfg).to(cfg.device), cfg.warm_shrink)
    res = _train(warm, replay, bank, fresh, cfg, callback)
    if cfg.cold_margin is None or not res.collapsed:
        return res
    cold = _train(WindowVAE(vcfg).to(cfg.device), replay, bank, fresh, cfg, callback)
    # Same held-out windows and, from the same seed, the same replayed validation rows: the
    # two validation losses compare like for like. A clear margin keeps the method's warm
    # student wherever the two merely differ by noise.
    margin = cfg.cold_margin * vcfg.channels * vcfg.window
    if cold.best_val_loss < res.best_val_loss - margin:
        return replace(cold, cold_restart=True)
    return res


def _bank_rows(fresh: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """The windows a regime's statistics are fitted on: the training block, not the held-out
    one, so that the threshold read off the held-out block sees windows the whole model never
    saw. The principal axes are C^2 numbers, and the smallest axes fitted on the held-out block
    too read its windows low: a synthetic first model's threshold then gave 8 % false alarms at
    a 1 % target."""
    return fresh[holdout_split(fresh, cfg.val_fraction, purge=cfg.purge)[0]]


def out_of_fold(windows: np.ndarray, cfg: TrainConfig, shape_only: tuple[int, ...] = (),
                teacher: Detector | None = None, *,
                callback: ProgressCallback | None = None) -> OutOfFold:
    """Score [N], sensor energies [N, C] and routed regime [N] of each window by a model
    trained without its block of the buffer: a first model, or with `teacher` a student that
    adds the windows as a new regime (blocked K-fold, K = cfg.calibration_folds, neighbours
    that share rows left out); empty when K < 2 or a fold would train on fewer than
    _MIN_FOLD_WINDOWS.

    A first model sees a few hundred windows of one stretch of the process and then judges the
    next. Its held-out block is one short piece of that stretch, and a threshold read off it
    alone sat far too low on the real data (false alarms TEP 31.9 %, SKAB 76 % at a 1 % target);
    out-of-fold scores show the threshold how the model generalises across the whole stretch.
    A new regime is the same case: its threshold is its own (models/calibration.py), read off
    windows of a stretch no model saw before. The fold models are thrown away: the served
    model is the one trained on every window."""
    k = cfg.calibration_folds
    bounds = fold_bounds(len(windows), k) if k >= 2 else []
    parts = [fold_training(windows, a, b) for a, b in bounds]
    if not parts or min(len(p) for p in parts) < _MIN_FOLD_WINDOWS:
        return OutOfFold.empty(windows.shape[2])
    fold_cfg = replace(cfg, calibration_folds=0)
    # _fit, not train_student: the windows' gross outliers are masked already
    scores = [score(_fit(train, teacher, fold_cfg, teacher is not None, callback, shape_only)
                    .detector, windows[a:b]) for (a, b), train in zip(bounds, parts, strict=True)]
    return OutOfFold(*(np.concatenate([getattr(s, f) for s in scores])
                       for f in ("score", "sensor_energy", "regime")))


def train_joint(
    regimes: Sequence[np.ndarray], cfg: TrainConfig | None = None,
    callback: ProgressCallback | None = None, shape_only: tuple[int, ...] = (),
) -> TrainResult:
    """The upper bound that keeps everything: one model on all regimes' windows at once."""
    cfg = cfg or TrainConfig(strategy="joint")
    torch.manual_seed(cfg.seed)
    bank = RegimeBank.fit(regimes[0], shape_only, cfg.decorrelate)
    for x in regimes[1:]:
        bank = bank.with_regime(x)
    first = regimes[0]
    vcfg = VAEConfig(first.shape[2], first.shape[1], regimes=len(regimes))
    student = WindowVAE(vcfg).to(cfg.device)
    return _train(student, None, bank, np.concatenate(regimes).astype(np.float32), cfg, callback)


def _train(
    student: WindowVAE, replay: Replayer | None, bank: RegimeBank, fresh: np.ndarray,
    cfg: TrainConfig, callback: ProgressCallback | None,
) -> TrainResult:
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    xs, mask, regime = bank.standardise(fresh, device=cfg.device)  # [N, C, T], [N]
    # Hold out the most recent windows, not a random sample: gateways send overlapping or
    # adjacent windows, and a random split puts near-copies of training windows into the
    # held-out set, which then sets a threshold far too low (SKAB: 94 % false alarms).
    train_idx, val_idx = holdout_split(fresh, cfg.val_fraction, purge=cfg.purge)
    loop = TrainLoop(student, replay, cfg, gen)
    history = loop.run((xs[train_idx], mask[train_idx], regime[train_idx]),
                       (xs[val_idx], mask[val_idx]), callback)
    fit_latent_prior(student, _latent_fit_sets(xs, mask, regime, replay, cfg, gen))
    student.eval()
    heldout = fresh[val_idx]
    return TrainResult(Detector(student, bank), heldout, history)


def _latent_fit_sets(
    xs: torch.Tensor, mask: torch.Tensor, regime: torch.Tensor, replay: Replayer | None,
    cfg: TrainConfig, gen: torch.Generator,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Windows per regime to fit the latent prior on: fresh rows where the regime has them,
    else the teacher's replay of it (old regimes have no raw data left)."""
    sets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for k in regime.unique().tolist():
        sel = regime == k
        sets[int(k)] = (xs[sel], mask[sel])
    if replay is not None:
        for k in range(replay.vae.cfg.regimes):
            if k not in sets:
                rep = replay.draw(cfg.replay_eval_per_regime, gen, regime=k)
                sets[k] = (rep, torch.ones_like(rep))
    return sets
