"""The benchmark's evaluation code, pinned on hand-made examples and the real files' layout."""

import numpy as np
import pytest
import torch

from bench.baselines import PCAMonitor
from bench.data import DATA, SKAB_TRAIN_ROWS, TEP_ONSET, skab_files, sliding, tep
from bench.detection import Confusion, Events, group_events, oracle_threshold
from bench.quality import (
    _task,
    channel_energy,
    fold_blocks,
    lifeline,
    make_fit,
    run_all,
    smooth_blocks,
    squared_residual,
    trailing_mean,
)
from models import TrainConfig, score, train_student
from models.synthetic import make_windows


def test_f1_far_mar_on_a_hand_made_example() -> None:
    c = Confusion()
    # part 1: 2 TP, 1 FP, 1 FN, 4 TN;  part 2: 1 TP, 0 FP, 1 FN, 2 TN  -> pooled 3/1/2/6
    c.add(np.array([1, 1, 1, 0, 0, 0, 0, 0]), np.array([1, 1, 0, 1, 0, 0, 0, 0]))
    c.add(np.array([1, 0, 0, 0]), np.array([1, 1, 0, 0]))
    assert (c.tp, c.fp, c.fn, c.tn) == (3, 1, 2, 6)
    assert c.f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    assert c.far == pytest.approx(1 / 7) and c.mar == pytest.approx(2 / 5)


def test_oracle_threshold_is_the_lowest_within_the_false_alarm_budget() -> None:
    # 10 normal rows scored 1..10, 3 anomalous rows: at 20 % false alarms exactly the normal
    # rows 9 and 10 may exceed the threshold, so it sits at 8.
    scores = np.array([5.0, 1, 9, 2, 7, 3, 10, 4, 6, 8, 8.5, 0.5, 12])
    actual = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1], bool)
    thr = oracle_threshold(scores, actual, 0.2)
    assert thr == 8.0
    c = Confusion()
    c.add(scores > thr, actual)
    assert c.far == pytest.approx(0.2) and (c.tp, c.fn) == (2, 1)
    assert oracle_threshold(scores, actual, 0.0) == 10.0  # no false alarm allowed
    assert oracle_threshold(scores, np.ones(13, bool), 0.1) == np.inf  # no normal row to judge


def test_alarms_group_into_events_by_the_service_rule() -> None:
    flags = np.array([1, 0, 1, 0, 0, 0, 1, 1, 0, 0], bool)
    seconds = np.arange(10.0)
    # gap 3 s: rows 1 and 3-4 lie within it of the last flagged row, row 5 closes the event
    assert group_events(flags, seconds, 3) == [(0, 2), (6, 7)]
    assert group_events(flags, seconds, 0) == [(0, 0), (2, 2), (6, 7)]  # any normal row closes
    assert group_events(flags, seconds, 100) == [(0, 7)]
    # time, not rows: a normal row logged a minute after the first closes its event at once
    late = np.array([0, 61, 62, 63, 64, 65, 66, 67, 68, 69.0])
    assert group_events(flags, late, 30) == [(0, 0), (2, 7)]
    assert group_events(np.zeros(4, bool), seconds[:4], 3) == []
    # a silence closes the open event before the next row: an hour without rows between 5
    # and 6 splits what the gap of 100 s would join
    stopped = np.array([0, 1, 2, 3, 4, 5, 3605, 3606, 3607, 3608.0])
    assert group_events(flags, stopped, 100) == [(0, 7)]
    assert group_events(flags, stopped, 100, silent_s=900) == [(0, 2), (6, 7)]
    assert group_events(flags, stopped, 100, silent_s=3601) == [(0, 7)]


def test_events_count_faults_caught_and_false_events() -> None:
    e = Events()
    actual = np.array([0, 0, 1, 1, 1, 0, 0, 1, 0, 0], bool)  # two faults: rows 2-4 and 7
    e.add(np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]), actual, np.arange(10.0), 0)
    assert (e.faults, e.caught, e.on_faults, e.false) == (2, 1, 1, 1)
    assert e.per_caught_fault == 1.0 and e.false_per_hour == pytest.approx(3600 / 6)
    # a second part pools in: its one fault caught as two events (a gap of 1 s between them)
    e.add(np.array([0, 1, 0, 1, 0]), np.array([0, 1, 1, 1, 0], bool), np.arange(5.0), 1)
    assert (e.faults, e.caught, e.on_faults, e.false) == (3, 2, 3, 1)
    assert e.per_caught_fault == 1.5 and e.false_per_hour == pytest.approx(3600 / 8)


def test_sliding_windows_end_at_every_row() -> None:
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    w = sliding(x, 4)
    assert w.shape == (7, 4, 2)
    np.testing.assert_array_equal(w[0], x[:4])
    np.testing.assert_array_equal(w[-1], x[-4:])  # the window scored at the last row


def test_trailing_mean_averages_each_row_with_the_rows_before_it() -> None:
    s = np.array([1.0, 3.0, 5.0, 7.0])
    np.testing.assert_array_equal(trailing_mean(s, 2), [np.nan, 2.0, 4.0, 6.0])
    np.testing.assert_array_equal(trailing_mean(s, 4), [np.nan, np.nan, np.nan, 4.0])
    np.testing.assert_array_equal(trailing_mean(s, 1), s)


def test_smoothing_never_spans_two_calibration_blocks() -> None:
    oof = np.arange(10.0)  # 10 windows in 3 folds: blocks [0, 3), [3, 6), [6, 10)
    blocks = fold_blocks(oof, 10, 3)
    assert [b.tolist() for b in blocks] == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9]]
    assert fold_blocks(np.zeros(0), 10, 3) == []
    held = np.array([10.0, 20.0])
    np.testing.assert_array_equal(smooth_blocks([held, *blocks], 2),
                                  [15.0, 0.5, 1.5, 3.5, 4.5, 6.5, 7.5, 8.5])
    np.testing.assert_array_equal(smooth_blocks([held, *blocks], 4), [7.5])  # too short: left out
    np.testing.assert_array_equal(smooth_blocks([held, *blocks], 1), [10, 20, *range(10)])


def test_a_method_name_without_its_window_count_is_refused_by_name() -> None:
    for name in ("lifeline_smooth", "pca_spe_smooth4", "lifeline_smooth0"):
        with pytest.raises(SystemExit, match=f"unknown method {name!r}"):
            make_fit(name, 32, 0.15)


def test_pca_residual_is_what_the_principal_subspace_leaves() -> None:
    rng = np.random.default_rng(1)
    latent = rng.standard_normal((300, 2))
    rows = latent @ rng.standard_normal((2, 5)) + 0.05 * rng.standard_normal((300, 5))
    pca = PCAMonitor(var_kept=0.9).fit(rows)
    r = pca.residual(rows)
    assert pca.pca.n_components_ == 2 and r.shape == (300, 5)
    np.testing.assert_allclose(r @ pca.pca.components_.T, 0.0, atol=1e-4)  # off the subspace
    np.testing.assert_allclose(pca.spe(rows), np.sum(r.astype(np.float64) ** 2, axis=1),
                               rtol=1e-5)
    assert np.median(pca.spe(rows)) < 0.01 * np.median(np.sum(pca._z(rows) ** 2, axis=1))


def test_squared_residual_is_in_the_units_of_the_windows() -> None:
    rng = np.random.default_rng(2)
    windows = (3.0 + 2.0 * rng.standard_normal((80, 8, 2))).astype(np.float32)
    cfg = TrainConfig(seed=0, max_epochs=2, calibration_folds=0, decorrelate=False)
    det = train_student(windows, cfg=cfg).detector
    xs, mask, _ = det.bank.standardise(windows)
    with torch.no_grad():
        mean = det.vae(xs, mask)["mean"].transpose(1, 2).numpy()  # [N, T, C], scaler units
    mean_raw = mean * det.bank.stats[0, 1] + det.bank.stats[0, 0]
    expected = 0.5 * np.sum((windows - mean_raw) ** 2, axis=(1, 2))
    np.testing.assert_allclose(squared_residual(det, windows), expected, rtol=1e-4)


needs_data = pytest.mark.skipif(not (DATA / "skab").exists(), reason="../shared/data absent")


@needs_data
def test_skab_split_and_labels() -> None:
    files = skab_files()
    assert len(files) == 34  # valve1 16 + valve2 4 + other 14 labelled files
    name, x, y = next(f for f in files if f[0] == "other/2.csv")
    assert x.shape[1] == 8 and len(x) == len(y) > SKAB_TRAIN_ROWS
    assert y[:104].sum() == 0 and y[104]  # the documented early anomaly at row 104


@needs_data
def test_tep_orientation_and_fault_onset() -> None:
    assert tep("d00.dat").shape == (500, 52)  # stored transposed on disk
    assert tep("d01_te.dat").shape == (960, 52)
    assert TEP_ONSET == 160 and len(tep("d01_te.dat")[TEP_ONSET:]) == 800  # rows 161-960


def test_channel_energy_splits_each_score_over_its_channels() -> None:
    windows = make_windows(30, 3, 16, 0, seed=4)
    cfg = TrainConfig(seed=0, max_epochs=2, calibration_folds=0)
    det = train_student(make_windows(120, 3, 16, 0, seed=3), cfg=cfg).detector
    energy = channel_energy(det, windows)
    assert energy.shape == (30, 3) and (energy >= 0).all()
    np.testing.assert_allclose(energy.sum(axis=1), score(det, windows).score, rtol=1e-6)


def test_lifelines_rows_count_a_stuck_channel_as_an_alarm_as_the_service_does() -> None:
    """Rows the service alarms on whatever the score are infinite: a wholly frozen window (the
    stuck check), and before it, windows where the freezing sensor's own residual passes its
    limit (the per-sensor term)."""
    t = np.arange(400)[:, None]
    rng = np.random.default_rng(0)
    rows = np.sin(2 * np.pi * t / 25 + np.arange(4)) + 0.1 * rng.standard_normal((400, 4))
    scorer, threshold = lifeline(16)(rows.astype(np.float32), 0)
    test = rows[:100].copy()
    test[60:, 2] = test[60, 2]  # the sensor freezes at row 60
    s = scorer(test)
    assert np.isnan(s[:15]).all()  # no window ends there yet
    assert np.isfinite(s[15:60]).all()  # before the freeze
    assert np.isinf(s[75:]).all() and (s[75:] > threshold).all()  # wholly frozen windows


def test_methods_and_seeds_run_side_by_side_as_they_run_alone() -> None:
    """Each (method, data set, seed) in a worker process of its own gives what it gives in
    this one."""
    out = run_all(["pca_spe"], 32, 0.15, 1, 2, 0.0)
    assert out["skab"]["pca_spe"] == _task("pca_spe", 32, 0.15, "skab", 0)
    assert out["tep"]["pca_spe"] == _task("pca_spe", 32, 0.15, "tep", 0)


def test_a_seeded_method_reports_each_seeds_false_alarms_on_the_data_asked_for() -> None:
    out = run_all(["iforest"], 32, 0.15, 2, 2, 0.0, data_sets=("tep",))
    alone = [_task("iforest", 32, 0.15, "tep", s) for s in (0, 1)]
    assert out["skab"] == {}
    assert out["tep"]["iforest"]["far_by_seed"] == [r["far"] for r in alone]
    assert out["tep"]["iforest"]["far"] == pytest.approx(np.mean([r["far"] for r in alone]))
