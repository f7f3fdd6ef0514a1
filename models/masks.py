"""Observed-value masks: 1 where a value was observed, 0 where missing, and on a rotated axis
the share of the step's readings observed (models/preprocessing.py)."""

from __future__ import annotations

import torch


def all_observed(mask: torch.Tensor) -> bool:
    """Whether `mask` marks every value observed. Gateways mostly send complete windows, and
    then the missing-value handling is skipped. min() rather than all(): on a [256, 32, 52]
    float mask one pass takes 33 us against all()'s 177 us (session 17)."""
    return mask.numel() == 0 or bool(mask.min() >= 1)


def any_missing(x: torch.Tensor) -> bool:
    """Whether raw values x hold a NaN (missing). A NaN makes the sum NaN; so can +inf + -inf
    from huge finite readings, which only sends a complete batch down the general path. One
    reduction instead of an elementwise isnan and a reduction over it: 28 us against 380 us on
    [256, 32, 52]."""
    return bool(torch.isnan(x.sum()))
