"""The VAE over sensor windows: 1-D convolutions over time, latent z = [z_c, z_d].

z_c is Gaussian with prior N(0, I); z_d is a one-hot regime code with a uniform prior, relaxed
with Gumbel-softmax while training (Ramapuram et al., Lifelong Generative Modeling, sec. 3).
The decoder outputs a Gaussian per element with a learned std floored at `min_std`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.config import VAEConfig


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


class WindowVAE(nn.Module):
    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, h = cfg.channels, cfg.hidden
        self.steps = math.ceil(math.ceil(cfg.window / 2) / 2)  # length after two stride-2 convs
        # Encoder sees values and the observed-mask, so imputed zeros are not taken for data.
        self.enc = nn.Sequential(
            nn.Conv1d(2 * c, h, 5, stride=2, padding=2), nn.GroupNorm(_groups(h), h), nn.SiLU(),
            nn.Conv1d(h, 2 * h, 5, stride=2, padding=2), nn.GroupNorm(_groups(2 * h), 2 * h),
            nn.SiLU(), nn.Flatten(),
        )
        self.enc_head = nn.Linear(2 * h * self.steps, 2 * cfg.latent_dim + cfg.regimes)
        self.dec_in = nn.Linear(cfg.latent_dim + cfg.regimes, 2 * h * self.steps)
        self.dec = nn.Sequential(
            nn.SiLU(),
            nn.ConvTranspose1d(2 * h, h, 4, stride=2, padding=1), nn.GroupNorm(_groups(h), h),
            nn.SiLU(),
            nn.ConvTranspose1d(h, h, 4, stride=2, padding=1), nn.GroupNorm(_groups(h), h),
            nn.SiLU(),
            nn.Conv1d(h, 2 * c, 3, padding=1),
        )

    def encode(
        self, xs: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """xs, mask: [B, C, T] -> mu, logvar [B, D], regime logits [B, K]."""
        out = self.enc_head(self.enc(torch.cat([xs, mask], dim=1)))  # [B, 2D + K]
        d = self.cfg.latent_dim
        return out[:, :d], out[:, d : 2 * d].clamp(-12.0, 8.0), out[:, 2 * d :]

    def decode(self, zc: torch.Tensor, zd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """zc [B, D], zd [B, K] -> mean, std [B, C, T]."""
        h = self.dec_in(torch.cat([zc, zd], dim=1))  # [B, 2h * steps]
        out = self.dec(h.view(h.shape[0], -1, self.steps))  # [B, 2C, 4 * steps]
        out = out[:, :, : self.cfg.window]  # crop the padding of odd lengths
        mean, raw_std = out.chunk(2, dim=1)  # [B, C, T] each
        return mean, self.cfg.min_std + F.softplus(raw_std)

    def forward(
        self, xs: torch.Tensor, mask: torch.Tensor, tau: float | None = None
    ) -> dict[str, torch.Tensor]:
        """One pass: sample z_c by reparameterisation and z_d by Gumbel-softmax (tau given)
        or use the posterior mean and most probable category (tau None: evaluation)."""
        mu, logvar, logits = self.encode(xs, mask)
        if tau is None:
            zc = mu
            zd = F.one_hot(logits.argmax(dim=1), self.cfg.regimes).to(mu.dtype)
        else:
            zc = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            zd = F.gumbel_softmax(logits, tau=tau, hard=False)
        mean, std = self.decode(zc, zd)
        return {"mu": mu, "logvar": logvar, "logits": logits, "mean": mean, "std": std}

    @torch.no_grad()
    def sample(
        self, n: int, noise: bool = True, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Replay: n windows [n, C, T] from the prior, z_d uniform over the known regimes.

        Drawn as mean + std * eps: replaying the decoder mean alone under-states the variance
        of old regimes, and their false alarms rise later (design note).
        """
        dev = next(self.parameters()).device
        zc = torch.randn(n, self.cfg.latent_dim, generator=generator, device=dev)
        k = torch.randint(self.cfg.regimes, (n,), generator=generator, device=dev)
        mean, std = self.decode(zc, F.one_hot(k, self.cfg.regimes).float())
        if not noise:
            return mean
        return mean + std * torch.randn(mean.shape, generator=generator, device=dev)


def fork(teacher: WindowVAE, cfg: VAEConfig) -> WindowVAE:
    """A student warm-started from every teacher weight whose shape matches.

    Layers whose shape changed because a regime category was added keep the teacher's rows for
    the old categories; the new category's rows start fresh.
    """
    student = WindowVAE(cfg).to(next(teacher.parameters()).device)
    own = student.state_dict()
    for name, w in teacher.state_dict().items():
        if name not in own:
            continue
        if own[name].shape == w.shape:
            own[name] = w.clone()
        elif own[name].dim() == w.dim():
            idx = tuple(slice(0, s) for s in w.shape)
            own[name][idx] = w
    student.load_state_dict(own)
    return student
