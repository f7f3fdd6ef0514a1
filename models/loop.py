"""The training loop: epochs of minibatches, fresh windows mixed with the teacher's replay,
the loss of the design note, early stopping on a held-out block.

Mixing (reference code): with t regimes known to the teacher, each minibatch of B rows holds
floor(B t / (t + 1)) replayed rows and the rest fresh rows, so every known regime and the new data
weigh the same. Unlike the reference code, every fresh row is used in every pass over the buffer
(as many replay rows are generated as the mix requires; a pass over a big buffer spans several
epochs of cfg.epoch_windows rows) and the teacher stays in eval mode without gradients.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F

from models.config import TrainConfig
from models.losses import consistency_term, elbo_terms, gaussian_kl, mutual_info_term
from models.replay import Replayer
from models.vae import WindowVAE

ProgressCallback = Callable[[int, dict[str, float]], None]
_MAX_VAL_WINDOWS = 1024


def replay_rows(batch_size: int, known_regimes: int) -> int:
    """Replay rows in a minibatch of batch_size when the teacher knows t regimes."""
    t = known_regimes
    return (batch_size * t) // (t + 1)



class TrainLoop:
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
