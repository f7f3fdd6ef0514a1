"""The network's inference shortcut and the mask checks it relies on."""

from __future__ import annotations

import pytest
import torch

from models.config import VAEConfig
from models.masks import all_observed, any_missing
from models.vae import WindowVAE


@pytest.mark.parametrize("channels, window", [(8, 64), (5, 13)])
def test_complete_batches_encode_as_the_plain_convolution_does(channels: int, window: int
                                                                ) -> None:
    """The values-only first convolution (plus one all-ones mask map) must give what the
    convolution over [values; mask] gives, edges and odd lengths included."""
    torch.manual_seed(0)
    vae = WindowVAE(VAEConfig(channels=channels, window=window)).eval()
    xs, mask = torch.randn(64, channels, window), torch.ones(64, channels, window)
    with torch.no_grad():
        plain = vae.enc[0](torch.cat([xs, mask], dim=1))
    with torch.inference_mode():
        split = vae._first_conv(xs, mask)
        mu, _, _ = vae.encode(xs, mask)
    with torch.enable_grad():
        mu_plain, _, _ = vae.encode(xs, mask)  # grad enabled: the plain form
    torch.testing.assert_close(split, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mu, mu_plain.detach(), rtol=1e-4, atol=1e-5)


def test_a_batch_with_a_gap_takes_the_plain_convolution() -> None:
    torch.manual_seed(0)
    vae = WindowVAE(VAEConfig(channels=4, window=16)).eval()
    xs, mask = torch.randn(40, 4, 16), torch.ones(40, 4, 16)
    mask[3, 1, 5], xs[3, 1, 5] = 0.0, 0.0
    with torch.inference_mode():
        got = vae._first_conv(xs, mask)
        want = vae.enc[0](torch.cat([xs, mask], dim=1))
    torch.testing.assert_close(got, want)


def test_mask_checks() -> None:
    x = torch.randn(3, 8, 4)
    assert not any_missing(x)
    x[1, 2, 3] = float("nan")
    assert any_missing(x)
    assert not any_missing(torch.full((2, 2), 3e38))  # overflows to +inf: not a gap
    assert all_observed(torch.ones(2, 3)) and all_observed(torch.ones(0, 3))
    assert not all_observed(torch.tensor([[1.0, 0.5]]))
