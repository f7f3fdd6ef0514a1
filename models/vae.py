"""The VAE over sensor windows: 1-D convolutions over time, latent z = [z_c, z_d].

z_c is Gaussian with prior N(0, I); z_d is a one-hot regime code with a uniform prior, relaxed
with Gumbel-softmax while training (Ramapuram et al., Lifelong Generative Modeling, sec. 3).
The decoder outputs a Gaussian per element with a learned std floored at `min_std`.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from models.config import VAEConfig
from models.masks import all_observed

_SPLIT_FROM = 32  # batch size from which `_first_conv` convolves the values alone


def _groups(ch: int) -> int:
    return math.gcd(ch, 8)


def _act() -> nn.SiLU:
    """SiLU in place: every input it overwrites is a fresh norm or linear output nobody reads
    again, and skipping the allocation scored 1.19-1.35x the windows/s at C=8, T=64, batch 256
    (C=52, T=32: 0.96-1.09x; three alternated A/B runs, session 15). Training is bit-identical."""
    return nn.SiLU(inplace=True)


class WindowVAE(nn.Module):
    z_mean: torch.Tensor  # buffers, declared for type checkers
    z_chol: torch.Tensor

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, h = cfg.channels, cfg.hidden
        self.steps = math.ceil(math.ceil(cfg.window / 2) / 2)  # length after two stride-2 convs
        # Encoder sees values and the observed-mask, so imputed zeros are not taken for data.
        self.enc = nn.Sequential(
            nn.Conv1d(2 * c, h, 5, stride=2, padding=2), nn.GroupNorm(_groups(h), h), _act(),
            nn.Conv1d(h, 2 * h, 5, stride=2, padding=2), nn.GroupNorm(_groups(2 * h), 2 * h),
            _act(), nn.Flatten(),
        )
        self.enc_head = nn.Linear(2 * h * self.steps, 2 * cfg.latent_dim + cfg.regimes)
        self.dec_in = nn.Linear(cfg.latent_dim + cfg.regimes, 2 * h * self.steps)
        # Per-regime aggregate posterior of z_c (mean [K, D], Cholesky factor [K, D, D]): replay
        # draws z_c from here rather than from N(0, I), whose samples fall in regions the decoder
        # never learned (the teacher itself scored its prior replay as anomalous). Statistics
        # of the latent code, never data; N(0, I) until `fit_latent_prior` runs.
        k, d = cfg.regimes, cfg.latent_dim
        self.register_buffer("z_mean", torch.zeros(k, d))
        self.register_buffer("z_chol", torch.eye(d).expand(k, d, d).clone())
        self.dec = nn.Sequential(
            _act(),
            nn.ConvTranspose1d(2 * h, h, 4, stride=2, padding=1), nn.GroupNorm(_groups(h), h),
            _act(),
            nn.ConvTranspose1d(h, h, 4, stride=2, padding=1), nn.GroupNorm(_groups(h), h),
            _act(),
            nn.Conv1d(h, 2 * c, 3, padding=1),
        )

    def encode(
        self, xs: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """xs, mask: [B, C, T] -> mu, logvar [B, D], regime logits [B, K]."""
        h = self._first_conv(xs, mask)
        for layer in itertools.islice(self.enc, 1, None):
            h = layer(h)
        out = self.enc_head(h)  # [B, 2D + K]
        d = self.cfg.latent_dim
        return out[:, :d], out[:, d : 2 * d].clamp(-12.0, 8.0), out[:, 2 * d :]

    def _first_conv(self, xs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The first convolution over [values; mask] [B, 2C, T] -> [B, h, T / 2].

        Convolution is linear, so when every value is observed the mask's half is one map for
        the whole batch: the convolution of a single all-ones mask, padded edges included.
        Scoring then convolves only the values, half of the layer that takes a fifth of the
        network's time at C=52 (bench/README.md, session 17). Training keeps the plain form,
        and so do small batches, where two calls cost more than the halved work saves (C=52:
        batch 8 197 vs 151 us, batch 64 318 vs 428 us, batch 256 0.75 vs 3.9 ms)."""
        conv = self.enc[0]
        assert isinstance(conv, nn.Conv1d)
        if len(xs) < _SPLIT_FROM or torch.is_grad_enabled() or not all_observed(mask):
            return conv(torch.cat([xs, mask], dim=1))
        c, w = xs.shape[1], conv.weight  # w: [h, 2C, k]
        ones = F.conv1d(mask[:1], w[:, c:], conv.bias, conv.stride, conv.padding)  # [1, h, T/2]
        return F.conv1d(xs, w[:, :c], None, conv.stride, conv.padding).add_(ones)

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
        self, n: int, noise: bool = True, generator: torch.Generator | None = None,
        regime: int | None = None,
    ) -> torch.Tensor:
        """Replay: n windows [n, C, T], z_d uniform over the known regimes (or `regime`),
        z_c from that regime's aggregate posterior.

        Drawn as mean + std * eps: replaying the decoder mean alone under-states the variance
        of old regimes, and their false alarms rise later (design note).
        """
        dev = next(self.parameters()).device
        if regime is None:
            k = torch.randint(self.cfg.regimes, (n,), generator=generator, device=dev)
        else:
            k = torch.full((n,), regime, device=dev, dtype=torch.long)
        eps = torch.randn(n, self.cfg.latent_dim, 1, generator=generator, device=dev)
        zc = self.z_mean[k] + (self.z_chol[k] @ eps).squeeze(-1)  # [n, D]
        mean, std = self.decode(zc, F.one_hot(k, self.cfg.regimes).float())
        if not noise:
            return mean
        return mean + std * torch.randn(mean.shape, generator=generator, device=dev)


@torch.no_grad()
def fit_latent_prior(vae: WindowVAE, by_regime: dict[int, tuple[torch.Tensor, torch.Tensor]]
                     ) -> None:
    """Set each regime's replay distribution to its aggregate posterior under this encoder:
    z ~ N(mean of mu, cov of mu + mean posterior variance). by_regime: k -> (xs, mask)."""
    vae.eval()
    d = vae.cfg.latent_dim
    for k, (xs, mask) in by_regime.items():
        if len(xs) < 2:
            continue
        mu, logvar, _ = vae.encode(xs, mask)  # [n, D]
        cov = torch.cov(mu.T).reshape(d, d) + torch.diag(logvar.exp().mean(0))
        cov = cov + 1e-4 * torch.eye(d, device=mu.device)
        vae.z_mean[k] = mu.mean(0)
        vae.z_chol[k] = torch.linalg.cholesky(cov)


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
