"""The regimes' principal axes (models/preprocessing.py) and the sensor contributions told back
from them (models/scoring.py)."""

from dataclasses import replace
from unittest.mock import patch

import numpy as np
import pytest
import torch

from models import Detector, TrainConfig, from_bytes, score, to_bytes, train_student
from models.imputation import _pattern_ids, impute_conditional
from models.preprocessing import RegimeBank, principal_axes
from models.scoring import score_standardised, score_with_sensors
from models.synthetic import inject_fault, make_windows

C, T = 4, 16
FAST = TrainConfig(max_epochs=3, seed=0, calibration_folds=0)


def test_principal_axes_whiten_the_level_channels_and_leave_the_others() -> None:
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.9, 0.2], [0.9, 1.0, 0.1], [0.2, 0.1, 1.0]])
    rows = rng.multivariate_normal(np.zeros(3), cov, size=20_000)
    z = np.concatenate([rows, rng.standard_normal((20_000, 1))], axis=1)[None]  # [1, N, 4]
    a = principal_axes(z, level=[0, 1, 2])
    u = z[0] @ a
    np.testing.assert_allclose(np.cov(u[:, :3].T), np.eye(3), atol=1e-6)
    np.testing.assert_array_equal(a[3], [0, 0, 0, 1])  # channel 3 keeps its own axis
    np.testing.assert_array_equal(a[:3, 3], [0, 0, 0])
    # Exactly collinear channels: the empty axis is floored, not blown up to unit variance.
    dup = np.concatenate([rows[:, :1], rows[:, :1], rows[:, 2:]], axis=1)[None]
    assert np.abs(principal_axes(dup, level=[0, 1, 2])).max() < 1e3
    assert np.isfinite(principal_axes(dup, level=[0, 1, 2])).all()


def test_too_few_complete_rows_or_nothing_varying_keep_the_sensors_axes() -> None:
    z = np.full((1, 5, 3), np.nan)
    z[0, :, 0] = np.arange(5.0)
    np.testing.assert_array_equal(principal_axes(z, level=[0, 1, 2]), np.eye(3))
    flat = np.zeros((1, 100, 3))  # constant channels: their std floors judge a change
    np.testing.assert_array_equal(principal_axes(flat, level=[0, 1, 2]), np.eye(3))


def test_a_dead_sensor_keeps_its_own_axis_and_the_others_are_still_rotated() -> None:
    """A sensor that sent nothing while the first model trained leaves no complete row: the
    others are whitened as if it were not there, and it keeps the identity."""
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.9, 0.2], [0.9, 1.0, 0.1], [0.2, 0.1, 1.0]])
    rows = rng.multivariate_normal(np.zeros(3), cov, size=20_000)
    z = np.insert(rows, 1, np.nan, axis=1)[None]  # channel 1 dead: [1, N, 4]
    a = principal_axes(z, level=[0, 1, 2, 3])
    live = [0, 2, 3]
    np.testing.assert_allclose(np.cov((rows @ a[np.ix_(live, live)]).T), np.eye(3), atol=1e-6)
    np.testing.assert_array_equal(a[1], [0, 1, 0, 0])
    np.testing.assert_array_equal(a[:, 1], [0, 1, 0, 0])


def test_gaps_that_leave_too_few_complete_rows_rotate_the_channels_that_have_enough() -> None:
    """40 correlated channels, 15 % of readings missing at random on 30 of them and 2 % on
    ten: 41 of 6,000 rows see all 40, so the gappiest keep their own axes and the rest are
    rotated on the rows that see them all. Ten rows per rotated channel keep the smallest axes
    honest: new rows' variance on every axis stays near 1 (with 2 rows per channel, 35 channels
    rotated on 86 rows, it reached 5.4)."""
    rng = np.random.default_rng(1)
    k = 40
    mix = rng.normal(size=(k, k)) * (rng.random((k, k)) < 0.2) + np.eye(k)
    rows, new = rng.normal(size=(6_000, k)) @ mix, rng.normal(size=(20_000, k)) @ mix
    mean, std = rows.mean(0), rows.std(0)
    rows, new = (rows - mean) / std, (new - mean) / std
    holed = np.where(rng.random(rows.shape) < np.where(np.arange(k) < 10, 0.02, 0.15), np.nan,
                     rows)
    a = principal_axes(holed[None], level=list(range(k)))
    rotated = [i for i in range(k) if not np.array_equal(a[i], np.eye(k)[i])]
    assert set(range(10)) < set(rotated) and len(rotated) < k
    assert (~np.isnan(holed[:, rotated]).any(axis=1)).sum() >= 10 * len(rotated)
    variance = np.var((new @ a)[:, rotated], axis=0)
    assert variance.min() > 0.5 and variance.max() < 2.0, (variance.min(), variance.max())


def test_a_missing_reading_is_imputed_at_its_mean_given_the_others() -> None:
    rho = 0.8
    precision = torch.linalg.inv(torch.tensor([[1.0, rho], [rho, 1.0]]))
    z = torch.tensor([[1.5, 0.0], [0.0, 0.0], [0.0, -2.0]])
    observed = torch.tensor([[True, False], [False, False], [False, True]])
    out = impute_conditional(z, observed, precision[None], torch.zeros(3, dtype=torch.long))
    np.testing.assert_allclose(out.numpy(), [[1.5, 1.2], [0.0, 0.0], [-1.6, -2.0]], atol=1e-6)


def _dense_imputation(z: torch.Tensor, observed: torch.Tensor, precision: torch.Tensor
                      ) -> torch.Tensor:
    """The definition, one C x C system per row [M, C, C]: P_mm z_m = -P_mo z_o (numpy's
    solver, not the one under test)."""
    miss = (~observed).numpy()
    p = precision.numpy()
    system = p * (miss[:, :, None] & miss[:, None, :]) + np.eye(p.shape[-1]) * ~miss[:, None, :]
    rhs = -(p @ z.numpy()[:, :, None])[:, :, 0] * miss
    return z + torch.as_tensor(np.linalg.solve(system, rhs[:, :, None])[:, :, 0])


def test_imputation_solves_only_the_gaps_and_shared_patterns_once_yet_equals_the_definition(
) -> None:
    """Two regimes; a dead sensor shared by 40 rows (solved once), a rack of five sensors
    offline in 20, scattered gaps of 1-9 readings, steps with every reading missing, and rows
    with none; chunks forced small so that rows missing as many readings split over solves."""
    rng = np.random.default_rng(0)
    c = 12
    precision = torch.stack([torch.as_tensor(np.cov(rng.normal(size=(c, 3 * c))) + 0.1 * np.eye(c),
                                             dtype=torch.float64) for _ in range(2)])
    observed = np.ones((120, c), dtype=bool)
    observed[:40, 3] = False
    observed[40:60, 5:10] = False
    for i in range(60, 110):
        observed[i, rng.choice(c, size=rng.integers(1, 10), replace=False)] = False
    observed[110:113] = False
    regime = torch.as_tensor(rng.integers(0, 2, size=120))
    regime[:40] = 1
    observed_t = torch.as_tensor(observed)
    z = torch.as_tensor(rng.normal(size=(120, c))).masked_fill(~observed_t, 0.0)
    want = _dense_imputation(z, observed_t, precision[regime])
    with patch("models.imputation._SOLVE_ELEMENTS", 64):
        got = impute_conditional(z, observed_t, precision, regime)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got[observed_t].numpy(), z[observed_t].numpy())
    assert (got[110:113] == 0).all()  # nothing observed: the mean


def test_gap_patterns_are_told_apart_in_every_word_and_by_regime() -> None:
    """_pattern_ids packs 62 channels per integer: rows differing only in channel 0, 61, 62
    (the second word) or 199 (the fourth), or only in their regime, get their own ids."""
    missing = torch.zeros(7, 200, dtype=torch.bool)
    for row, channel in ((1, 0), (2, 61), (3, 62), (4, 199), (6, 62)):
        missing[row, channel] = True
    regime = torch.tensor([0, 0, 0, 0, 0, 1, 0])
    ids = _pattern_ids(missing, regime).tolist()
    assert len(set(ids[:6])) == 6 and ids[6] == ids[3]


def test_a_wide_line_with_a_dead_sensor_standardises_and_matches_the_definition() -> None:
    """C=256 with one channel dead in every step: 32 windows x 16 steps = 512 rows, whose dense
    systems would take 512 x 256 x 256 floats (134 MB, twice, and 3 GFLOP); one 1 x 1 system
    here."""
    c, t = 256, 16
    x = make_windows(400, c, t, 0, seed=1)
    bank = RegimeBank.fit(x)
    y = make_windows(32, c, t, 0, seed=2)
    y[:, :, 7] = np.nan
    z, seen, regime = bank.standardise_sensors(y)
    xs, _ = bank.to_axes(z, seen, regime)
    rows = z[:2].reshape(-1, c).double()  # the definition on two windows' steps
    p = bank._precision_tensor.double()
    want = _dense_imputation(rows, seen[:2].reshape(-1, c) > 0, p.expand(len(rows), c, c))
    a = torch.as_tensor(bank.axes[0], dtype=torch.float64)
    np.testing.assert_allclose(xs[:2].transpose(1, 2).reshape(-1, c).double().numpy(),
                               (want @ a).numpy(), atol=2e-3)
    assert not torch.equal(want[:, 7], rows[:, 7])  # the dead sensor was imputed, not left at 0


def test_on_the_sensors_axes_the_contributions_are_each_sensors_energy() -> None:
    det = train_student(make_windows(200, C, T, 0, seed=1),
                        cfg=replace(FAST, decorrelate=False)).detector
    xs, mask, _ = det.bank.standardise(inject_fault(make_windows(20, C, T, 0, seed=2), 1, 3.0))
    total, per_sensor = score_standardised(det.vae, xs, mask)
    total_a, rbc = score_with_sensors(det.vae, xs, mask, torch.eye(C)[None], mask)
    np.testing.assert_allclose(total_a.numpy(), total.numpy(), rtol=1e-5)
    np.testing.assert_allclose(rbc.numpy(), per_sensor.numpy(), rtol=1e-4)
    s = score(det, inject_fault(make_windows(20, C, T, 0, seed=2), 1, 3.0))  # in nats, summing
    np.testing.assert_allclose(s.sensor_energy.sum(axis=1), s.score, rtol=1e-4)  # to the score
    np.testing.assert_allclose(s.contributions, s.sensor_energy / s.score[:, None], rtol=1e-4)


def test_the_axes_catch_a_small_step_that_breaks_the_channels_correlation() -> None:
    """The synthetic channels mix two waves plus 10 % noise: a step of 0.1 of a channel's scale
    lies inside its normal range but off the waves' plane. Each model is thresholded at the 99th
    percentile of 1,000 normal windows (equal false alarms), two seeds: on the principal axes
    0.88 / 0.92 of the faulty windows are caught, on the sensors' own 0.75 / 0.16."""
    caught = {True: [], False: []}
    for seed in (0, 1):
        for decorrelate in (True, False):
            cfg = TrainConfig(max_epochs=15, seed=seed, calibration_folds=0,
                              decorrelate=decorrelate)
            det = train_student(make_windows(300, C, T, 0, seed=1), cfg=cfg).detector
            normal = score(det, make_windows(1000, C, T, 0, seed=2)).score
            fault = score(det, inject_fault(make_windows(200, C, T, 0, seed=3), 2, 0.1))
            caught[decorrelate].append(np.mean(fault.score > np.quantile(normal, 0.99)))
            assert np.mean(fault.contributions.argmax(axis=1) == 2) > 0.9
    assert np.mean(caught[True]) > 0.8
    assert np.mean(caught[True]) > np.mean(caught[False]) + 0.2, caught


@pytest.fixture(scope="module")
def two_regimes() -> Detector:
    first = train_student(make_windows(200, C, T, 0, seed=1), cfg=FAST).detector
    res = train_student(make_windows(200, C, T, 1, seed=2), first, FAST, new_regime=True)
    return res.detector


def test_each_regime_has_its_axes_and_a_window_is_scored_on_its_own(
        two_regimes: Detector) -> None:
    bank = two_regimes.bank
    assert bank.axes is not None and bank.axes.shape == (2, C, C)
    assert not np.allclose(bank.axes[0], bank.axes[1])
    a, b = make_windows(5, C, T, 0, seed=3), make_windows(5, C, T, 1, seed=4)
    mixed = score(two_regimes, np.concatenate([a, b]))
    alone = np.concatenate([score(two_regimes, a).score, score(two_regimes, b).score])
    np.testing.assert_array_equal(mixed.regime, [0] * 5 + [1] * 5)
    np.testing.assert_allclose(mixed.score, alone, rtol=1e-5)


def test_the_axes_travel_with_the_artifact(two_regimes: Detector) -> None:
    back = from_bytes(to_bytes(two_regimes))
    assert back.bank.axes is not None
    np.testing.assert_array_equal(back.bank.axes, two_regimes.bank.axes)
    probe = np.concatenate([make_windows(5, C, T, 0, seed=5), make_windows(5, C, T, 1, seed=6)])
    probe[2, 3, 1] = np.nan
    np.testing.assert_array_equal(score(back, probe).score, score(two_regimes, probe).score)


def test_a_bank_without_axes_grows_without_them() -> None:
    bank = RegimeBank.fit(make_windows(50, C, T, 0, seed=1), decorrelate=False)
    grown = bank.with_regime(make_windows(50, C, T, 1, seed=2))
    assert grown.axes is None and grown.regimes == 2


def test_a_model_on_the_sensors_axes_still_loads_and_scores_alike() -> None:
    """What every artifact written before session 16 is: format 2 or 3, no axes."""
    det = train_student(make_windows(200, C, T, 0, seed=1),
                        cfg=replace(FAST, decorrelate=False)).detector
    back = from_bytes(to_bytes(det))
    assert back.bank.axes is None
    probe = make_windows(20, C, T, 0, seed=7)
    probe[3, 2, 0] = np.nan
    np.testing.assert_array_equal(score(back, probe).score, score(det, probe).score)
    np.testing.assert_array_equal(score(back, probe).contributions,
                                  score(det, probe).contributions)
