"""Each window is judged against the alarm threshold of the regime it is routed to."""

import io
import json

import numpy as np
import pytest
import torch

from models import TrainConfig, calibrate_detector, from_bytes, score, to_bytes, train_student
from models.detector import Detector
from models.synthetic import inject_fault, make_windows

C, T = 4, 16
CFG = TrainConfig(max_epochs=15, seed=0, calibration_folds=0)


@pytest.fixture(scope="module")
def two_regimes() -> Detector:
    """A first regime, then a second whose buffer drifts on one sensor as it ends: the held-out
    block, the buffer's last windows, scores high and sets that regime's threshold far above
    the first's (as SKAB's campaign of 14 experiments strung together did)."""
    first = train_student(make_windows(300, C, T, 0, seed=1), cfg=CFG)
    teacher = calibrate_detector(first.detector, first.heldout, 0.01)
    fresh = make_windows(300, C, T, 1, seed=2)
    fresh[-50:, :, 0] += np.linspace(0, 3, 50)[:, None] * fresh[:, :, 0].std()
    student = train_student(fresh, teacher, CFG, new_regime=True)
    return calibrate_detector(student.detector, student.heldout, 0.01, teacher=teacher)


def test_each_regime_has_its_own_alarm_threshold(two_regimes: Detector) -> None:
    det = two_regimes
    alarms, own = det.alarm_thresholds, det.regime_thresholds
    assert set(alarms) == set(own) == {0, 1}
    factor = alarms[0] / own[0]  # the per-sensor term's one factor, on every regime
    assert factor >= 1.0 and alarms[1] / own[1] == pytest.approx(factor)
    assert det.threshold == max(alarms.values()) == alarms[1] > 10 * alarms[0]
    s = score(det, np.concatenate([make_windows(50, C, T, r, seed=3) for r in (0, 1)]))
    np.testing.assert_array_equal(s.limit, [alarms[r] for r in s.regime])
    np.testing.assert_allclose(s.ratio, s.score / s.limit)


def test_a_regime_with_a_wide_threshold_does_not_silence_the_others(
    two_regimes: Detector,
) -> None:
    """A one-sensor step in the first regime scores above that regime's threshold and far below
    the second's: judged against the largest (the max rule), it would pass unseen."""
    det = two_regimes
    faulty = score(det, inject_fault(make_windows(200, C, T, 0, seed=5), channel=1, magnitude=1.0))
    assert np.mean(faulty.regime == 0) > 0.95
    assert np.mean(faulty.anomalous()) > 0.9
    assert np.mean(faulty.score > det.threshold) < 0.1
    normal = score(det, make_windows(300, C, T, 0, seed=6))
    assert np.mean(normal.anomalous()) < 0.15  # the student forgets a little of regime 0
    drifted = score(det, make_windows(300, C, T, 1, seed=7))
    assert np.mean(drifted.regime == 1) > 0.95 and np.mean(drifted.anomalous()) < 0.05


def test_the_alarm_thresholds_are_saved_and_an_older_artifact_keeps_the_largest(
    two_regimes: Detector,
) -> None:
    det = two_regimes
    assert from_bytes(to_bytes(det)).alarm_thresholds == det.alarm_thresholds
    blob = torch.load(io.BytesIO(to_bytes(det)), weights_only=True)
    meta = json.loads(blob["meta"])
    del meta["alarm_thresholds"]  # as written before session 21
    buf = io.BytesIO()
    torch.save({**blob, "meta": json.dumps(meta)}, buf)
    old = from_bytes(buf.getvalue())
    s = score(old, make_windows(50, C, T, 0, seed=3))
    assert old.alarm_thresholds == {} and (s.limit == det.threshold).all()


@pytest.mark.parametrize("windows", [20, 90])
def test_a_first_model_on_the_fewest_windows_a_line_may_train_on_is_calibrated(
        windows: int) -> None:
    """min_windows may be as low as 20 (app/schemas/lines.py): a held-out block of 3-13
    windows, too few for a regime's own threshold, and a threshold all the same (until this
    test, a TypeError failed every first training below ~135 windows)."""
    cfg = TrainConfig(max_epochs=3, seed=0, calibration_folds=4)
    res = train_student(make_windows(windows, C, T, 0, seed=1), cfg=cfg)
    assert len(res.heldout) < 20
    det = calibrate_detector(res.detector, res.heldout, 0.01, out_of_fold=res.out_of_fold)
    assert np.isfinite(det.threshold) and det.threshold > 0
    assert np.isfinite(det.replay_threshold) and det.replay_threshold > 0
    s = score(det, make_windows(50, C, T, 0, seed=2))
    assert np.isfinite(s.score).all()
