"""Lifelong training: a student learns fresh windows plus replay from its frozen teacher.

Mixing (reference code): with t regimes known to the teacher, each minibatch of B rows holds
floor(B t / (t + 1)) replayed rows and the rest fresh rows, so every known regime and the new data
weigh the same. Unlike the reference code, every fresh row is used in every pass over the buffer
(as many replay rows are generated as the mix requires; a pass over a big buffer spans several
epochs of cfg.epoch_windows rows) and the teacher stays in eval mode without gradients.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from models.config import TrainConfig, VAEConfig
from models.detector import Detector
from models.losses import consistency_term, elbo_terms, gaussian_kl, mutual_info_term
from models.preprocessing import RegimeBank, mask_gross_outliers
from models.replay import Replayer
from models.scoring import OutOfFold, score
from models.splits import fold_bounds, fold_training, holdout_split
from models.vae import WindowVAE, fit_latent_prior, fork

ProgressCallback = Callable[[int, dict[str, float]], None]
_MAX_VAL_WINDOWS = 1024
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


def replay_rows(batch_size: int, known_regimes: int) -> int:
    """Replay rows in a minibatch of batch_size when the teacher knows t regimes."""
    t = known_regimes
    return (batch_size * t) // (t + 1)


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
    loop = _Loop(student, replay, cfg, gen)
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


class _Loop:
    """Epochs of minibatches with early stopping on the validation loss (of the weights' moving
    average, with cfg.ema)."""

    def __init__(
        self, student: WindowVAE, replay: Replayer | None, cfg: TrainConfig,
        gen: torch.Generator,
    ) -> None:
        self.student, self.replay, self.cfg, self.gen = student, replay, cfg, gen
        self.teacher = replay.vae if replay is not None else None
        self.t = self.teacher.cfg.regimes if self.teacher is not None else 0
        self.opt = torch.optim.Adam(student.parameters(), lr=cfg.lr)  # fresh optimizer
        self.averaged: torch.optim.swa_utils.AveragedModel | None = None
        self.step = 0
        self._order, self._pos = torch.empty(0, dtype=torch.long), 0

    def run(
        self, train: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor], callback: ProgressCallback | None,
    ) -> list[dict[str, float]]:
        cfg, history = self.cfg, []
        (x, m, r), (xv, mv) = train, val
        step = max(1, len(xv) // _MAX_VAL_WINDOWS)  # a stable estimate needs ~1k windows, not all
        xv, mv = xv[::step], mv[::step]
        n_rep = replay_rows(cfg.batch_size, self.t)
        n_fresh = cfg.batch_size - n_rep
        val_rep = self._replay(max(len(xv), 64) if self.t else 0)
        if cfg.ema:
            self._average(steps=math.ceil(min(len(x), cfg.epoch_windows) / n_fresh))
        best, best_state, stale = math.inf, copy.deepcopy(self._judged().state_dict()), 0
        anchor, min_gain = math.inf, cfg.min_delta * x[0].numel()  # nats per window
        for epoch in range(1, cfg.max_epochs + 1):
            idx = self._next_rows(len(x), x.device)
            losses = self._epoch(x[idx], m[idx], r[idx], n_fresh, n_rep)
            checked = self._validate(xv, mv, val_rep)
            val_loss = checked["val_loss"]
            row = {"epoch": float(epoch), **losses, **checked, "tau": self._tau()}
            history.append(row)
            if callback is not None:
                callback(epoch, row)
            if not math.isfinite(val_loss):
                break
            if val_loss < best:
                best, best_state = val_loss, copy.deepcopy(self._judged().state_dict())
            if val_loss < anchor - min_gain:
                anchor, stale = val_loss, 0
            elif epoch > cfg.burn_in:
                stale += 1
                if stale >= cfg.patience:
                    break
        self.student.load_state_dict(best_state)
        return history

    def _average(self, steps: int) -> None:
        """Keep an exponential moving average of the student's weights beside it, its horizon
        cfg.ema epochs of `steps` minibatches, whatever the buffer's size."""
        decay = 1.0 - 1.0 / max(self.cfg.ema * steps, 1.0)
        self.averaged = torch.optim.swa_utils.AveragedModel(
            self.student, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay))

    def _judged(self) -> WindowVAE:
        """The weights early stopping validates and keeps: the average where there is one."""
        return cast(WindowVAE, self.averaged.module) if self.averaged is not None else self.student

    def _next_rows(self, n: int, device: torch.device) -> torch.Tensor:
        """The next epoch's fresh rows, shuffled: all n when n <= cfg.epoch_windows, else the
        next epoch_windows of a shuffled pass that carries over from epoch to epoch."""
        need, parts = min(n, self.cfg.epoch_windows), []
        while need:
            if self._pos >= len(self._order):
                self._order = torch.randperm(n, generator=self.gen, device=device)
                self._pos = 0
            take = self._order[self._pos : self._pos + need]
            self._pos, need = self._pos + len(take), need - len(take)
            parts.append(take)
        return torch.cat(parts)

    def _tau(self) -> float:
        return max(math.exp(-self.cfg.tau_rate * self.step), self.cfg.tau_min)

    def _replay(self, n: int) -> torch.Tensor:
        if n == 0 or self.replay is None:
            return torch.empty(0)
        return self.replay.draw(n, self.gen)

    def _epoch(
        self, x: torch.Tensor, m: torch.Tensor, r: torch.Tensor, n_fresh: int, n_rep: int
    ) -> dict[str, float]:
        """One pass over x (already shuffled), each minibatch topped up with replay."""
        self.student.train()
        starts = range(0, len(x), n_fresh)
        # replay rows per batch, keeping the t/(t+1) mix in the short last batch too
        ks = [min(n_fresh, len(x) - i) * n_rep // n_fresh for i in starts]
        # One draw per epoch: a few large generator passes cost far less than many small ones.
        replay = self._replay(sum(ks)).split(ks) if n_rep else [None] * len(ks)
        sums: dict[str, float] = {}
        batches = 0
        for i, rep in zip(starts, replay, strict=True):
            idx = slice(i, i + n_fresh)
            xb, mb = x[idx], m[idx]
            if rep is not None and len(rep):
                xb, mb = torch.cat([xb, rep]), torch.cat([mb, torch.ones_like(rep)])
            loss, parts = self._loss(xb, mb, r[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), 10.0)
            self.opt.step()
            if self.averaged is not None:
                self.averaged.update_parameters(self.student)
            self.step += 1
            batches += 1
            for key, val in parts.items():
                sums[key] = sums.get(key, 0.0) + val
        return {key: val / max(batches, 1) for key, val in sums.items()}

    def _loss(
        self, x: torch.Tensor, m: torch.Tensor, regime: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Per-row loss (design note): NLL + beta KL + lambda_d MI for every row; on fresh
        rows alpha * cross-entropy of q(z_d|x) against the regime the bank routed it to; on
        replay rows gamma * consistency KL + gamma_L * KL(teacher's || student's decoded
        Gaussian). The reference code's gamma_L term, the student's NLL of the teacher's mean,
        is minimised by shrinking the student's std: a student trained with it scored the real
        first regime higher at every stage. The KL matches mean and std alike."""
        cfg, s, n_fresh = self.cfg, self.student, len(regime)
        out = s(x, m, tau=self._tau())
        nll, kl = elbo_terms(x, m, out, beta_nll=cfg.beta_nll)
        _, _, logits_rec = s.encode(out["mean"].detach(), torch.ones_like(m))
        mi = mutual_info_term(out["logits"], logits_rec)
        row = nll + cfg.beta * kl + cfg.lambda_d * mi
        parts = {"nll": nll.mean().item(), "kl": kl.mean().item(), "mi": mi.mean().item()}
        if cfg.alpha_regime:
            ce = F.cross_entropy(out["logits"][:n_fresh], regime, reduction="none")
            row = torch.cat([row[:n_fresh] + cfg.alpha_regime * ce, row[n_fresh:]])
            parts["regime_ce"] = ce.mean().item()
        if self.teacher is not None and len(x) > n_fresh:
            rep = slice(n_fresh, None)
            with torch.no_grad():
                t_out = self.teacher(x[rep], m[rep])
            lreg = gaussian_kl(t_out["mean"], t_out["std"], out["mean"][rep], out["std"][rep],
                               m[rep]).sum(dim=(1, 2))
            extra = cfg.gamma_l * lreg
            parts["likelihood_reg"] = lreg.mean().item()
            if cfg.uses_consistency:
                cons = consistency_term(out["logits"][rep], t_out["logits"])
                extra = extra + cfg.gamma * cons
                parts["consistency"] = cons.mean().item()
            row = torch.cat([row[:n_fresh], row[rep] + extra])
        return row.mean(), parts

    @torch.no_grad()
    def _validate(self, xv: torch.Tensor, mv: torch.Tensor, rep: torch.Tensor
                  ) -> dict[str, float]:
        """val_loss: the negative ELBO at the posterior mean, fresh and replay weighted 1 : t;
        and the KL of each part, which tells a collapsed student (TrainResult.collapsed)."""
        judged = self._judged().eval()

        def nll_kl(x: torch.Tensor, m: torch.Tensor) -> tuple[float, float]:
            nll, kl = elbo_terms(x, m, judged(x, m))
            return nll.mean().item(), kl.mean().item()

        nll, kl = nll_kl(xv, mv)
        if len(rep) == 0:
            return {"val_loss": nll + kl, "val_kl_fresh": kl}
        r_nll, r_kl = nll_kl(rep, torch.ones_like(rep))
        return {"val_loss": (nll + kl + self.t * (r_nll + r_kl)) / (self.t + 1),
                "val_kl_fresh": kl, "val_kl_replay": r_kl}
