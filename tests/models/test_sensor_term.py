"""The per-sensor term beside the summed score (models/calibration.py): each sensor's energy
over its regime's median, one limit on the largest such ratio."""

import io
import json
import math

import numpy as np
import pytest
import torch

from models import (
    Detector,
    TrainConfig,
    TrainResult,
    calibrate,
    calibrate_detector,
    from_bytes,
    score,
    to_bytes,
    train_student,
)
from models.synthetic import inject_fault, make_windows

C, T = 24, 16
CFG = TrainConfig(max_epochs=8, seed=0)
First = tuple[TrainResult, Detector]  # a first model's training result, calibrated


@pytest.fixture(scope="module")
def first() -> First:
    res = train_student(make_windows(400, C, T, 0, seed=1), cfg=CFG)
    return res, calibrate_detector(res.detector, res.heldout, 0.01, out_of_fold=res.out_of_fold)


def test_the_term_is_calibrated_as_defined(first: First) -> None:
    """Medians of the calibration windows' sensor energies, the largest ratio's 1 % limit,
    and one factor >= 1 on both limits for the 1 % target of either alarm."""
    res, det = first
    held = score(res.detector, res.heldout)
    energy = np.concatenate([held.sensor_energy, res.out_of_fold.sensor_energy])
    scores = np.concatenate([held.score, res.out_of_fold.score])
    assert det.sensor_scale is not None
    np.testing.assert_allclose(det.sensor_scale, np.median(energy, axis=0)[None])
    ratio = (energy / det.sensor_scale[0]).max(axis=1)
    a, limit = det.regime_thresholds[0], calibrate(ratio, 0.01)
    both = max(1.0, calibrate(np.maximum(scores / a, ratio / limit), 0.01))
    assert det.threshold == pytest.approx(a * both)
    assert det.sensor_threshold == pytest.approx(limit * both)
    assert both > 1.0  # two alarms at 1 % each would together pass the target


def test_a_small_step_on_one_sensor_of_many_passes_its_own_limit(first: First) -> None:
    _, det = first
    normal = score(det, make_windows(1000, C, T, 0, seed=2))
    assert normal.anomalous().mean() < 0.03
    caught_sum, caught = [], []
    for channel in (0, 12):
        s = score(det, inject_fault(make_windows(200, C, T, 0, seed=3 + channel), channel, 0.3))
        caught_sum.append(np.mean(s.score > det.threshold))
        caught.append(np.mean(s.anomalous()))
        named = s.over_limit[s.over_limit.any(axis=1)]
        assert named[:, channel].mean() > 0.9  # it is the faulted sensor that passes
    assert np.mean(caught) > np.mean(caught_sum) + 0.2, (caught_sum, caught)


def test_a_student_keeps_its_teachers_medians_for_regimes_it_did_not_see(first: First) -> None:
    """And the teacher's limit as a floor: a student reads its own off a few held-out windows
    (SKAB's lifelong far_old rose from 0.000 to 0.157 without it)."""
    _, teacher = first
    res = train_student(make_windows(200, C, T, 1, seed=4), teacher, CFG, new_regime=True)
    student = calibrate_detector(res.detector, res.heldout, 0.01, teacher=teacher)
    assert student.sensor_scale is not None and teacher.sensor_scale is not None
    assert student.sensor_scale.shape == (2, C)
    np.testing.assert_array_equal(student.sensor_scale[0], teacher.sensor_scale[0])
    assert student.sensor_threshold >= teacher.sensor_threshold
    new = score(student, res.heldout)
    np.testing.assert_allclose(student.sensor_scale[1],
                               np.median(new.sensor_energy[new.regime == 1], axis=0))


def test_the_term_travels_with_the_artifact_and_older_ones_load_without_it(first: First) -> None:
    _, det = first
    back = from_bytes(to_bytes(det))
    np.testing.assert_array_equal(back.sensor_scale, det.sensor_scale)
    assert back.sensor_threshold == det.sensor_threshold
    probe = inject_fault(make_windows(50, C, T, 0, seed=9), 5, 0.3)
    np.testing.assert_array_equal(score(back, probe).over_limit, score(det, probe).over_limit)
    blob = torch.load(io.BytesIO(to_bytes(det)), weights_only=True)
    del blob["sensor_scale"]  # as written before session 19
    meta = json.loads(blob["meta"])
    del meta["sensor_threshold"]
    blob["meta"] = json.dumps(meta)
    buf = io.BytesIO()
    torch.save(blob, buf)
    old = from_bytes(buf.getvalue())
    assert old.sensor_scale is None and math.isinf(old.sensor_threshold)
    s = score(old, probe)
    assert not s.over_limit.any()
    np.testing.assert_array_equal(s.anomalous(),
                                  (s.score > old.threshold) | s.stuck.any(axis=1))
