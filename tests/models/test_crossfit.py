"""Out-of-fold calibration of a line's first model: the folds, the scores, the threshold."""

import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from models import (
    TrainConfig,
    calibrate,
    calibrate_detector,
    from_bytes,
    score,
    to_bytes,
    train_student,
)
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
    assert oof.score.shape == (240,) and np.isfinite(oof.score).all()
    assert oof.sensor_energy.shape == (240, C)
    # the fold models are first models on the other blocks, trained as a line's would be
    a, b = fold_bounds(240, 3)[1]
    fold = score(train_student(fold_training(x, a, b), cfg=replace(CFG, calibration_folds=0))
                 .detector, x[a:b])
    np.testing.assert_allclose(oof.score[a:b], fold.score, rtol=1e-5)
    np.testing.assert_allclose(oof.sensor_energy[a:b], fold.sensor_energy, rtol=1e-4,
                               atol=1e-6)


def test_a_spike_in_one_block_scores_highest_out_of_fold() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(400)[:, None]
    rows = (np.sin(t / 5 + np.arange(3)) + 0.1 * rng.standard_normal((400, 3))).astype(np.float32)
    rows[200, 1] += 8.0  # in the middle of the second of three blocks
    windows = np.stack([rows[s : s + 8] for s in range(400 - 8 + 1)])
    s = out_of_fold(windows, replace(CFG, max_epochs=10)).score
    assert s.shape == (len(windows),) and np.isfinite(s).all()
    assert 193 <= int(np.argmax(s)) <= 200  # the windows that hold row 200


def test_no_out_of_fold_scores_when_off_or_when_folds_would_train_on_too_little() -> None:
    x = make_windows(80, C, T, 0, seed=1)  # independent windows: nothing to purge
    assert len(out_of_fold(x, replace(CFG, calibration_folds=0))) == 0
    assert len(out_of_fold(x, replace(CFG, calibration_folds=1))) == 0
    assert len(out_of_fold(x[:60], replace(CFG, calibration_folds=2))) == 0  # 30 per fold
    assert len(out_of_fold(x, replace(CFG, calibration_folds=2))) == 80  # 40 per fold
    with pytest.raises(ValueError, match="calibration_folds"):
        TrainConfig(calibration_folds=-1)


def test_first_models_and_new_regimes_get_out_of_fold_scores() -> None:
    first = train_student(make_windows(200, C, T, 0, seed=1), cfg=CFG)
    assert len(first.out_of_fold) == 200 and (first.out_of_fold.regime == 0).all()
    teacher = calibrate_detector(first.detector, first.heldout, 0.01,
                                 out_of_fold=first.out_of_fold)
    student = train_student(make_windows(200, C, T, 0, seed=2), teacher, CFG)
    assert len(student.out_of_fold) == 0  # a known regime: its threshold is read off anew
    with pytest.raises(ValueError, match="first model or a new regime"):
        calibrate_detector(student.detector, student.heldout, 0.01, teacher=teacher,
                           out_of_fold=first.out_of_fold)
    grown = train_student(make_windows(200, C, T, 1, seed=3), teacher, CFG, new_regime=True)
    oof = grown.out_of_fold
    assert len(oof) == 200 and np.mean(oof.regime == 1) > 0.95
    det = calibrate_detector(grown.detector, grown.heldout, 0.01, teacher=teacher,
                             out_of_fold=oof)
    held = score(grown.detector, grown.heldout)
    assert (held.regime == 1).all()
    pooled = np.concatenate([held.score, oof.score[oof.regime == 1]])
    assert det.regime_thresholds[1] == pytest.approx(calibrate(pooled, 0.01))
    assert det.regime_thresholds[0] == teacher.regime_thresholds[0]  # kept: no window of it


def test_the_first_threshold_is_read_off_held_out_and_out_of_fold_scores_together() -> None:
    res = train_student(make_windows(200, C, T, 0, seed=1), cfg=CFG)
    det = calibrate_detector(res.detector, res.heldout, 0.01, out_of_fold=res.out_of_fold)
    pooled = np.concatenate([score(res.detector, res.heldout).score, res.out_of_fold.score])
    assert det.regime_thresholds == {0: pytest.approx(calibrate(pooled, 0.01))}
    assert det.threshold >= det.regime_thresholds[0]  # the per-sensor term's factor >= 1
    plain = calibrate_detector(res.detector, res.heldout, 0.01)
    assert math.isfinite(plain.threshold) and plain.regime_thresholds != det.regime_thresholds


def _drifting_rows(n: int, seed: int) -> np.ndarray:
    """Two oscillations, a channel that wanders like a slow temperature, and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.stack([np.sin(t / 5), np.cos(t / 7), np.cumsum(rng.normal(size=n)) * 0.05,
                     0.3 * np.sin(t / 11)], 1).astype(np.float32) + 0.1 * rng.normal(
        size=(n, C)).astype(np.float32)


def test_out_of_fold_scores_keep_a_first_model_quiet_on_the_next_stretch_of_a_drift() -> None:
    """The reason for the default: a first model fitted on one stretch of a wandering process
    judges the next stretch. Read off its held-out block alone, the threshold sits inside the
    stretch it saw (false alarms on a quarter to most of the next stretch at a 1 % target);
    out-of-fold scores show how the model misfits what it did not see."""
    def sliding(x: np.ndarray) -> np.ndarray:
        return np.stack([x[s : s + T] for s in range(len(x) - T + 1)])

    held_far, oof_far = [], []
    for seed in range(3):
        rows = _drifting_rows(900, seed)
        train, later = sliding(rows[:400]), sliding(rows[400:])
        res = train_student(train, cfg=replace(CFG, max_epochs=10, seed=seed))
        s = score(res.detector, later).score
        held = calibrate_detector(res.detector, res.heldout, 0.01)
        oof = calibrate_detector(res.detector, res.heldout, 0.01, out_of_fold=res.out_of_fold)
        held_far.append(np.mean(s > held.threshold))
        oof_far.append(np.mean(s > oof.threshold))
    assert np.mean(held_far) > 0.05, held_far
    assert np.mean(oof_far) < np.mean(held_far) / 5, (held_far, oof_far)


def test_replay_is_filtered_by_the_held_out_threshold_so_students_learn_alike() -> None:
    """The out-of-fold threshold widens a first model's alarms, not what its replay keeps: a
    student of it learns exactly what a student of the held-out-only teacher learns, and
    carries the wider alarm threshold of the first regime on."""
    res = train_student(make_windows(200, C, T, 0, seed=1), cfg=CFG)
    plain = calibrate_detector(res.detector, res.heldout, 0.01)
    wide = calibrate_detector(res.detector, res.heldout, 0.01, out_of_fold=res.out_of_fold)
    assert wide.replay_threshold == plain.replay_threshold == plain.regime_thresholds[0]
    assert plain.regime_thresholds[0] < wide.regime_thresholds[0]
    assert wide.fit_thresholds == plain.regime_thresholds
    fresh = make_windows(200, C, T, 1, seed=2)
    students = [train_student(fresh, teacher, CFG, new_regime=True) for teacher in (plain, wide)]
    for a, b in zip(*(s.detector.vae.state_dict().values() for s in students), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    dets = [calibrate_detector(s.detector, s.heldout, 0.01, teacher=t)
            for s, t in zip(students, (plain, wide), strict=True)]
    assert dets[1].regime_thresholds[0] == wide.regime_thresholds[0]  # kept for regime 0
    assert dets[1].regime_thresholds[1] == dets[0].regime_thresholds[1]
    assert dets[1].fit_thresholds == dets[0].fit_thresholds == dets[0].regime_thresholds
    back = from_bytes(to_bytes(dets[1]))
    assert (back.threshold, back.regime_thresholds) == (dets[1].threshold,
                                                        dets[1].regime_thresholds)
    assert (back.replay_threshold, back.fit_thresholds) == (dets[0].replay_threshold,
                                                            dets[0].regime_thresholds)


def test_an_artifact_of_an_earlier_release_filters_replay_by_its_alarm_threshold() -> None:
    first = train_student(make_windows(200, C, T, 0, seed=1),
                          cfg=replace(CFG, calibration_folds=0)).detector
    det = first.with_threshold(9.5, {0: 9.5}, fit=(7.0, {0: 7.0}))
    blob = torch.load(io.BytesIO(to_bytes(det)), weights_only=True)
    meta = json.loads(blob["meta"])
    del meta["fit_threshold"], meta["fit_regime_thresholds"]  # as written before session 10
    buf = io.BytesIO()
    torch.save({**blob, "meta": json.dumps(meta)}, buf)
    old = from_bytes(buf.getvalue())
    assert (old.threshold, old.replay_threshold, old.fit_thresholds) == (9.5, 9.5, {0: 9.5})


def test_out_of_fold_scores_keep_a_new_regime_quiet_on_the_next_stretch_of_a_drift() -> None:
    """The same for a regime added to a serving model: its threshold is its own, and read off
    its held-out block alone it sits inside the stretch the student saw."""
    def sliding(x: np.ndarray) -> np.ndarray:
        return np.stack([x[s : s + T] for s in range(len(x) - T + 1)])

    held_far, oof_far = [], []
    for seed in range(3):
        cfg = replace(CFG, max_epochs=10, seed=seed)
        first = train_student(sliding(_drifting_rows(400, 100 + seed)), cfg=cfg)
        teacher = calibrate_detector(first.detector, first.heldout, 0.01,
                                     out_of_fold=first.out_of_fold)
        rows = _drifting_rows(900, seed) + np.float32(6.0)  # another operating point
        grown = train_student(sliding(rows[:400]), teacher, cfg, new_regime=True)
        later = sliding(rows[400:])
        for far, oof in ((held_far, None), (oof_far, grown.out_of_fold)):
            det = calibrate_detector(grown.detector, grown.heldout, 0.01, teacher=teacher,
                                     out_of_fold=oof)
            s = score(det, later)
            assert np.mean(s.regime == 1) > 0.95
            far.append(np.mean(s.anomalous()))
    assert np.mean(held_far) > 0.05, held_far
    assert np.mean(oof_far) < np.mean(held_far) / 5, (held_far, oof_far)
