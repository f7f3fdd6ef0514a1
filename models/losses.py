"""Loss terms of the lifelong VAE, each per window ([B] tensors), written out explicitly.

Equation numbers refer to Ramapuram et al., "Lifelong Generative Modeling" (arXiv:1705.09847);
the reference code's defects listed in the design note are fixed here: the Gaussian KL uses the
variance (not the log-variance as a std), the discrete prior KL is the real one, and teacher
posteriors are padded in probability space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

_EPS = 1e-8
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_nll(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """-log N(x; mean, std^2) per element, zero where x is missing. All [B, C, T] -> [B, C, T]."""
    z = (x - mean) / std
    return (0.5 * z.square() + torch.log(std) + _HALF_LOG_2PI) * mask


def gaussian_kl(
    mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor, std_q: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """KL(N(mean_p, std_p^2) || N(mean_q, std_q^2)) per element, zero where masked: [B, C, T].

    On replay rows p is the teacher's decoded Gaussian and q the student's (likelihood
    regulariser): the expected student NLL of the teacher's distribution, less its entropy."""
    ratio = (std_p / std_q).square()
    kl = 0.5 * (ratio + ((mean_p - mean_q) / std_q).square() - 1.0 - ratio.log())
    return kl * mask


def kl_gaussian_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dims: [B, D] -> [B]."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1)


def kl_categorical(q_probs: torch.Tensor, p_probs: torch.Tensor) -> torch.Tensor:
    """KL(q || p) between categoricals given as probabilities: [B, K] -> [B].

    p may hold exact zeros (a padded teacher); they are clamped so the term stays finite and
    pushes the student's mass away from categories the teacher never used.
    """
    q = q_probs.clamp_min(_EPS)
    return (q_probs * (q.log() - p_probs.clamp_min(_EPS).log())).sum(dim=1)


def kl_categorical_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(q(z_d|x) || Uniform(K)) = sum q log q + log K: [B, K] -> [B]."""
    logq = F.log_softmax(logits, dim=1)
    return (logq.exp() * logq).sum(dim=1) + math.log(logits.shape[1])


def pad_probs(p: torch.Tensor, k: int) -> torch.Tensor:
    """Pad teacher probabilities [B, K_t] with zero mass up to [B, k] (probability space)."""
    return F.pad(p, (0, k - p.shape[1]), value=0.0)


def elbo_terms(
    x: torch.Tensor, mask: torch.Tensor, out: dict[str, torch.Tensor], *, beta_nll: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The negative ELBO's two parts per window (eq. 1): NLL and KL(q(z|x) || p(z)).

    The KL of z = [z_c, z_d] factorises into the Gaussian and the categorical KL. beta_nll > 0
    weighs each element's NLL by stop_grad(std^(2 beta)) (Seitzer et al., "On the Pitfalls of
    Heteroscedastic Uncertainty Estimation with Probabilistic Neural Networks", ICLR 2022, eq. 4):
    the plain NLL's gradient on the mean is (x - mean) / std^2, so a decoder that explains a new
    regime with a wide std stops learning its mean; the weight keeps that gradient alive. For
    training only: the value is no longer a likelihood.
    """
    nll_elem = gaussian_nll(x, out["mean"], out["std"], mask)  # [B, C, T]
    if beta_nll:
        nll_elem = nll_elem * out["std"].detach().pow(2.0 * beta_nll)
    nll = nll_elem.sum(dim=(1, 2))
    kl = kl_gaussian_std_normal(out["mu"], out["logvar"]) + kl_categorical_uniform(out["logits"])
    return nll, kl


def mutual_info_term(logits: torch.Tensor, logits_of_recon: torch.Tensor) -> torch.Tensor:
    """KL(q(z_d|x) || q(z_d|x~)), x~ the student's own reconstruction re-encoded: [B].

    The reference code's information-restoring term: it keeps z_d meaningful (a window and its
    reconstruction should land in the same regime)."""
    return kl_categorical(F.softmax(logits, dim=1), F.softmax(logits_of_recon, dim=1))


def consistency_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(q_student(z_d|x^) || pad(q_teacher(z_d|x^))) on replay rows (eq. 6): [B]."""
    q_s = F.softmax(student_logits, dim=1)
    q_t = pad_probs(F.softmax(teacher_logits, dim=1), student_logits.shape[1])
    return kl_categorical(q_s, q_t)
