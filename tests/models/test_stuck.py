"""Stuck sensors (models/stuck.py): a channel holding one reading through a window is an alarm
that the reconstruction score alone does not raise."""

import io

import numpy as np
import pytest
import torch

from models import Detector, TrainConfig, from_bytes, score, to_bytes, train_student
from models.stuck import quiet_floor, window_ranges
from models.synthetic import hold_channel, make_windows

C, T = 4, 16
CFG = TrainConfig(max_epochs=8, seed=0, calibration_folds=0)


@pytest.fixture(scope="module")
def first() -> Detector:
    return train_student(make_windows(300, C, T, 0, seed=1), cfg=CFG).detector


def test_ranges_and_floors_count_observed_readings_only() -> None:
    x = np.zeros((3, 4, 2), dtype=np.float32)
    x[:, :, 0] = [[1, 2, 3, 4], [5, 5, 7, 5], [0, 0, 0, 0]]
    x[:, :, 1] = [[1, np.nan, 3, np.nan], [np.nan, np.nan, np.nan, 9], [2, 2.5, np.nan, 2]]
    r = window_ranges(x)
    np.testing.assert_array_equal(r[:, 0], [3, 2, 0])
    # half the steps observed is enough; one of four is not
    np.testing.assert_array_equal(r[:, 1], [2, np.nan, 0.5])
    np.testing.assert_array_equal(quiet_floor(x), [0, 0.5])
    assert np.isnan(quiet_floor(np.full((2, 4, 1), np.nan, np.float32))).all()


def test_a_held_channel_is_flagged_which_the_score_misses(first: Detector) -> None:
    normal = score(first, make_windows(200, C, T, 0, seed=2))
    assert not normal.stuck.any()
    for channel in range(C):
        s = score(first, hold_channel(make_windows(200, C, T, 0, seed=2), channel))
        assert s.stuck[:, channel].all() and not np.delete(s.stuck, channel, axis=1).any()
        assert s.anomalous().all()  # whatever the score


def test_on_a_noisy_channel_a_held_reading_scores_lower_than_normal() -> None:
    """Why the check exists: where a channel's readings are mostly noise, holding one of them
    shrinks its residual (TEP: every channel held was flagged no more often than normal)."""
    x = make_windows(300, C, T, 0, seed=1)
    x[:, :, 3] = np.random.default_rng(0).normal(10.0, 1.0, size=(300, T))
    det = train_student(x, cfg=CFG).detector
    test = make_windows(200, C, T, 0, seed=2)
    test[:, :, 3] = np.random.default_rng(1).normal(10.0, 1.0, size=(200, T))
    normal, stuck = score(det, test), score(det, hold_channel(test, 3))
    assert np.median(stuck.score) < np.median(normal.score)
    assert stuck.stuck[:, 3].all() and not normal.stuck.any()


def test_a_nearly_flat_channel_is_flagged_and_gaps_are_allowed(first: Detector) -> None:
    x = hold_channel(make_windows(50, C, T, 0, seed=3), 1)
    floor = first.bank.quiet[0, 1]
    x[:, ::2, 1] += 0.05 * floor  # a dead sensor's faint jitter: 5 % of the quietest normal
    x[:, 1::4, 1] = np.nan  # and a quarter of its readings missing
    assert score(first, x).stuck[:, 1].all()
    x[:, :, 1] = np.nan
    x[:, 0, 1] = 3.0  # one reading in 16: too few to tell a stuck sensor from chance
    assert not score(first, x).stuck.any()


def test_a_channel_flat_in_normal_running_is_never_flagged() -> None:
    """A quantised flow meter holding 32.0 for a window, a valve's closed 0: flat in normal
    windows too, so flat is no fault (SKAB's flow meter does this on four of its files)."""
    x = make_windows(300, C, T, 0, seed=1)
    x[:40, :, 3] = 32.0
    det = train_student(x, cfg=CFG).detector
    assert det.bank.quiet[0, 3] == 0.0
    assert not score(det, hold_channel(make_windows(50, C, T, 0, seed=2), 3)).stuck.any()


def test_a_retrain_on_vouched_flat_windows_stops_flagging_them(first: Detector) -> None:
    fresh = make_windows(300, C, T, 0, seed=4)
    fresh[::10] = hold_channel(fresh[::10], 2)  # vouched for: the sensor is quiet by design
    student = train_student(fresh, first, CFG).detector
    assert first.bank.quiet[0, 2] > 0 and student.bank.quiet[0, 2] == 0.0
    np.testing.assert_array_equal(student.bank.quiet[0, [0, 1, 3]],
                                  np.minimum(first.bank.quiet[0, [0, 1, 3]],
                                             quiet_floor(fresh)[[0, 1, 3]]))
    assert not score(student, hold_channel(make_windows(20, C, T, 0, seed=5), 2)).stuck.any()
    # a declared new regime gets floors of its own; the old regime keeps its own
    grown = train_student(make_windows(300, C, T, 1, seed=6), first, CFG,
                          new_regime=True).detector
    np.testing.assert_array_equal(grown.bank.quiet[0], first.bank.quiet[0])
    assert score(grown, hold_channel(make_windows(20, C, T, 1, seed=7), 0)).stuck[:, 0].all()


def test_floors_travel_with_the_artifact_and_older_artifacts_flag_nothing(
        first: Detector) -> None:
    x = hold_channel(make_windows(20, C, T, 0, seed=8), 0)
    back = from_bytes(to_bytes(first))
    np.testing.assert_array_equal(back.bank.quiet, first.bank.quiet)
    assert score(back, x).stuck[:, 0].all()
    blob = torch.load(io.BytesIO(to_bytes(first)), weights_only=True)
    del blob["quiet"]  # as written before session 12
    buf = io.BytesIO()
    torch.save(blob, buf)
    old = from_bytes(buf.getvalue())
    assert np.isnan(old.bank.quiet).all() and not score(old, x).stuck.any()
