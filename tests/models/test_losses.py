"""Each loss term against a direct computation with torch.distributions."""

import math

import torch
import torch.nn.functional as F
from torch.distributions import Categorical, Normal, kl_divergence

from models.losses import (
    consistency_term,
    elbo_terms,
    gaussian_kl,
    gaussian_nll,
    kl_categorical,
    kl_categorical_uniform,
    kl_gaussian_std_normal,
    mutual_info_term,
    pad_probs,
)


def test_gaussian_nll_matches_normal_log_prob_and_masks_missing() -> None:
    torch.manual_seed(0)
    x, mean = torch.randn(4, 3, 10), torch.randn(4, 3, 10)
    std = torch.rand(4, 3, 10) + 0.1
    mask = (torch.rand(4, 3, 10) > 0.3).float()
    got = gaussian_nll(x, mean, std, mask)
    want = -Normal(mean, std).log_prob(x) * mask
    torch.testing.assert_close(got, want)
    assert (got[mask == 0] == 0).all()


def test_beta_nll_weighs_each_element_by_its_detached_std() -> None:
    """Seitzer et al. 2022: value sum std^(2 beta) * NLL; at beta = 1 the mean's gradient is
    the plain residual, whatever the std (the plain NLL divides it by std^2)."""
    torch.manual_seed(5)
    x = torch.randn(3, 2, 8)
    mask = (torch.rand(3, 2, 8) > 0.2).float()
    std = (torch.rand(3, 2, 8) + 0.1).requires_grad_()
    out = {"mean": torch.randn(3, 2, 8, requires_grad=True), "std": std,
           "mu": torch.randn(3, 4), "logvar": torch.randn(3, 4), "logits": torch.randn(3, 2)}
    plain, kl = elbo_terms(x, mask, out)
    for beta in (0.5, 1.0):
        nll, kl_b = elbo_terms(x, mask, out, beta_nll=beta)
        weight = std.detach().pow(2 * beta)
        want = (weight * gaussian_nll(x, out["mean"], std, mask)).sum(dim=(1, 2))
        torch.testing.assert_close(nll, want)
        torch.testing.assert_close(kl_b, kl)
    r, s = x - out["mean"].detach(), std.detach()
    grad, grad_std = torch.autograd.grad(elbo_terms(x, mask, out, beta_nll=1.0)[0].sum(),
                                         [out["mean"], std])
    torch.testing.assert_close(grad, -r * mask)
    torch.testing.assert_close(grad_std, (s - r.square() / s) * mask)  # weight held constant
    (grad0,) = torch.autograd.grad(plain.sum(), out["mean"])
    torch.testing.assert_close(grad0, -r / s.square() * mask)


def test_likelihood_regulariser_is_the_kl_of_decoded_gaussians() -> None:
    torch.manual_seed(3)
    mp, mq = torch.randn(4, 3, 10), torch.randn(4, 3, 10)
    sp, sq = torch.rand(4, 3, 10) + 0.1, torch.rand(4, 3, 10) + 0.1
    mask = (torch.rand(4, 3, 10) > 0.3).float()
    want = kl_divergence(Normal(mp, sp), Normal(mq, sq)) * mask
    torch.testing.assert_close(gaussian_kl(mp, sp, mq, sq, mask), want)
    assert gaussian_kl(mp, sp, mp, sp, mask).abs().max() < 1e-6


def test_kl_gaussian_matches_torch_distributions() -> None:
    torch.manual_seed(1)
    mu, logvar = torch.randn(5, 7), torch.randn(5, 7)
    q = Normal(mu, torch.exp(0.5 * logvar))
    want = kl_divergence(q, Normal(torch.zeros(5, 7), torch.ones(5, 7))).sum(dim=1)
    torch.testing.assert_close(kl_gaussian_std_normal(mu, logvar), want)


def test_categorical_kls_match_torch_distributions() -> None:
    torch.manual_seed(2)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    want = kl_divergence(Categorical(logits=a), Categorical(logits=b))
    torch.testing.assert_close(kl_categorical(F.softmax(a, 1), F.softmax(b, 1)), want)
    uniform = Categorical(probs=torch.full((6, 4), 0.25))
    torch.testing.assert_close(
        kl_categorical_uniform(a), kl_divergence(Categorical(logits=a), uniform)
    )
    assert kl_categorical_uniform(torch.zeros(3, 5)).abs().max() < 1e-6
    assert math.isclose(kl_categorical_uniform(torch.tensor([[50.0, 0, 0, 0]])).item(),
                        math.log(4), rel_tol=1e-4)


def test_padding_is_in_probability_space() -> None:
    p = torch.tensor([[0.7, 0.3]])
    padded = pad_probs(p, 3)
    torch.testing.assert_close(padded, torch.tensor([[0.7, 0.3, 0.0]]))
    assert padded.sum().item() == 1.0  # log-space padding would put mass into the new category


def test_consistency_penalises_mass_on_categories_the_teacher_lacks() -> None:
    teacher = torch.tensor([[3.0, 0.0]])
    agrees = torch.tensor([[3.0, 0.0, -20.0]])
    strays = torch.tensor([[0.0, 0.0, 5.0]])
    assert consistency_term(agrees, teacher).item() < 1e-3
    assert consistency_term(strays, teacher).item() > 5.0
    same = torch.tensor([[1.0, 2.0, 0.5]])
    assert mutual_info_term(same, same).abs().item() < 1e-6
