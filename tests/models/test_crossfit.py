"""Out-of-fold calibration of a line's first model: the folds, the scores, the threshold."""

import math
from dataclasses import replace

import numpy as np
import pytest

from models import TrainConfig, calibrate, calibrate_detector, score, train_student
from models.lifelong import out_of_fold
from models.splits import fold_bounds, fold_training
from models.synthetic import make_windows

C, T = 4, 16
CFG = TrainConfig(max_epochs=3, seed=0, calibration_folds=3)


def _indexed_windows(rows: int, stride: int) -> np.ndarray:
    """Windows [N, T, C] whose channel 0 holds the row index, so shared rows can be read off."""
    values = np.random.default_rng(0).normal(size=(rows, C)).astype(np.float32)
    values[:, 0] = np.arange(rows)
    return np.stack([values[s : s + T] for s in range(0, rows - T + 1, stride)])


@pytest.mark.parametrize("stride", [1, 4, T, T + 5])
def test_a_fold_trains_on_every_window_that_shares_no_row_with_its_block(stride: int) -> None:
    windows = _indexed_windows(900, stride)
    for a, b in fold_bounds(len(windows), 4):
        train = fold_training(windows, a, b)
        block_rows = set(windows[a:b, :, 0].ravel().tolist())
        train_rows = [set(w[:, 0].tolist()) for w in train]
        assert all(not (r & block_rows) for r in train_rows)
        # ... and drops nothing else: every other window sharing no row is kept
        others = [w for i, w in enumerate(windows) if not a <= i < b
                  and not set(w[:, 0].tolist()) & block_rows]
        assert len(train) == len(others)


def test_fold_bounds_cover_the_buffer_once_in_order() -> None:
    bounds = fold_bounds(10, 3)
    assert bounds == [(0, 3), (3, 6), (6, 10)]


def test_out_of_fold_scores_every_window_by_a_model_that_did_not_see_it() -> None:
    x = make_windows(240, C, T, 0, seed=1)
    oof = out_of_fold(x, CFG)
    assert oof.shape == (240,) and np.isfinite(oof).all()
    # the fold models are first models on the other blocks, trained as a line's would be
    a, b = fold_bounds(240, 3)[1]
    fold = train_student(fold_training(x, a, b), cfg=replace(CFG, calibration_folds=0))
    np.testing.assert_allclose(oof[a:b], score(fold.detector, x[a:b]).score, rtol=1e-5)


def test_a_spike_in_one_block_scores_highest_out_of_fold() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(400)[:, None]
    rows = (np.sin(t / 5 + np.arange(3)) + 0.1 * rng.standard_normal((400, 3))).astype(np.float32)
    rows[200, 1] += 8.0  # in the middle of the second of three blocks
    windows = np.stack([rows[s : s + 8] for s in range(400 - 8 + 1)])
    s = out_of_fold(windows, replace(CFG, max_epochs=10))
    assert s.shape == (len(windows),) and np.isfinite(s).all()
    assert 193 <= int(np.argmax(s)) <= 200  # the windows that hold row 200


def test_no_out_of_fold_scores_when_off_or_when_folds_would_train_on_too_little() -> None:
    x = make_windows(80, C, T, 0, seed=1)  # independent windows: nothing to purge
    assert out_of_fold(x, replace(CFG, calibration_folds=0)).size == 0
    assert out_of_fold(x, replace(CFG, calibration_folds=1)).size == 0
    assert out_of_fold(x[:60], replace(CFG, calibration_folds=2)).size == 0  # 30 per fold
    assert out_of_fold(x, replace(CFG, calibration_folds=2)).size == 80  # 40 per fold
    with pytest.raises(ValueError, match="calibration_folds"):
        TrainConfig(calibration_folds=-1)


def test_only_first_models_get_out_of_fold_scores() -> None:
    first = train_student(make_windows(200, C, T, 0, seed=1), cfg=CFG)
    assert len(first.out_of_fold) == 200
    teacher = calibrate_detector(first.detector, first.heldout, 0.01,
                                 out_of_fold=first.out_of_fold)
    student = train_student(make_windows(200, C, T, 0, seed=2), teacher, CFG)
    assert student.out_of_fold.size == 0
    with pytest.raises(ValueError, match="first model"):
        calibrate_detector(student.detector, student.heldout, 0.01, teacher=teacher,
                           out_of_fold=first.out_of_fold)


def test_the_first_threshold_is_read_off_held_out_and_out_of_fold_scores_together() -> None:
    res = train_student(make_windows(200, C, T, 0, seed=1), cfg=CFG)
    det = calibrate_detector(res.detector, res.heldout, 0.01, out_of_fold=res.out_of_fold)
    pooled = np.concatenate([score(res.detector, res.heldout).score, res.out_of_fold])
    assert det.threshold == pytest.approx(calibrate(pooled, 0.01))
    assert det.regime_thresholds == {0: pytest.approx(det.threshold)}
    plain = calibrate_detector(res.detector, res.heldout, 0.01)
    assert math.isfinite(plain.threshold) and plain.threshold != det.threshold
