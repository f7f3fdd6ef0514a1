"""Readings a failing sensor sends instead of a value (-9999, 1e30, 3e38): in training they count
as missing, in scoring they raise an alarm."""

from dataclasses import replace

import numpy as np
import pytest

from models import TrainConfig, calibrate_detector, score, train_student
from models.preprocessing import gross_outliers, mask_gross_outliers
from models.synthetic import inject_fault, make_windows

C, T = 4, 16
CFG = TrainConfig(max_epochs=15, seed=0, calibration_folds=0)


def test_only_values_far_outside_a_channels_central_range_are_gross() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, T, C)).astype(np.float32)
    x[..., 1] = rng.random((200, T)) < 0.05  # a valve's open/closed state: 1 is no outlier
    x[..., 3] = 50.0  # a constant channel ...
    x[7, 2, 3] = 55.0  # ... that once moves by 10 % of its level, a real reading
    x[3, 4, 0], x[9, 1, 2] = -9999.0, 3e38
    x[5, 5, 0] = np.nan
    gross = gross_outliers(x)
    assert list(zip(*np.nonzero(gross), strict=True)) == [(3, 4, 0), (9, 1, 2)]
    masked, n = mask_gross_outliers(x)
    assert n == 2 and np.isnan(masked[3, 4, 0]) and np.isnan(masked[9, 1, 2])
    assert x[3, 4, 0] == -9999.0  # the caller's array is left as it is
    clean = make_windows(300, C, T, 0, seed=1)
    assert mask_gross_outliers(clean)[0] is clean  # nothing to mask: no copy
    x[..., 2] = np.nan  # an all-NaN channel has no range and flags nothing, silently
    assert not gross_outliers(x)[..., 2].any()


@pytest.mark.parametrize("sentinel", [3e38, 1e30, -9999.0])
def test_one_sentinel_in_a_first_models_data_leaves_its_channel_watched(sentinel: float) -> None:
    """Before, the sentinel set channel 2's std (to 3.4e38, or 144 for -9999 against 0.15),
    and a 4-sigma step on the channel was caught in 0 % of windows instead of 100 %."""
    x = make_windows(300, C, T, 0, seed=1)
    x[100, 3, 2] = sentinel
    # The service's calibration of a first model (out-of-fold), and 2,000 normal windows to
    # judge it: on the principal axes 45 held-out windows alone put the threshold below 8 % of
    # 200 normal windows, and the out-of-fold threshold's 2.5 % on 2,000 read 6.5 % on those 200.
    res = train_student(x, cfg=replace(CFG, calibration_folds=TrainConfig().calibration_folds))
    assert res.masked_outliers == 1
    det = calibrate_detector(res.detector, res.heldout, 0.01, out_of_fold=res.out_of_fold)
    assert det.bank.stats[0, 1, 2] < 1.0  # the channel's spread, not the sentinel's
    normal = score(det, make_windows(2000, C, T, 0, seed=20)).score
    fault = score(det, inject_fault(make_windows(200, C, T, 0, seed=3), channel=2, magnitude=4))
    assert np.mean(normal > det.threshold) < 0.05
    assert np.mean(fault.score > det.threshold) > 0.9


@pytest.mark.parametrize("reading", [3e38, -3e38, 1e20])
def test_a_reading_near_float32s_limit_scores_finite_and_far_above_normal(reading: float) -> None:
    """3e38 is finite in float32, but standardising and squaring it overflowed: the score was
    NaN, which compares false with any threshold, so the window was called normal."""
    det = train_student(make_windows(200, C, T, 0, seed=1), cfg=CFG).detector
    normal = score(det, make_windows(20, C, T, 0, seed=10)).score
    x = make_windows(3, C, T, 0, seed=11)
    x[:, 5, 2] = reading
    s = score(det, x)
    assert np.isfinite(s.score).all() and (s.score > 1e6 * normal.max()).all()
    assert (s.contributions.argmax(axis=1) == 2).all()
