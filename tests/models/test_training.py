"""Mixing, warm start, frozen teacher, determinism, masking, serialisation."""

import io
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from models import (
    Detector,
    TrainConfig,
    VAEConfig,
    calibrate,
    calibrate_detector,
    from_bytes,
    gate,
    score,
    to_bytes,
    train_student,
)
from models.lifelong import TrainResult, frozen_copy
from models.loop import replay_rows
from models.losses import elbo_terms
from models.preprocessing import RegimeBank, check_windows
from models.splits import holdout_split, overlap_gap, window_shift
from models.synthetic import inject_fault, make_windows
from models.vae import WindowVAE, fork

C, T = 4, 16
# The out-of-fold threshold of first models has its own tests; elsewhere it only costs time.
FAST = TrainConfig(max_epochs=3, seed=0, calibration_folds=0)


@pytest.fixture(scope="module")
def first() -> Detector:
    return train_student(make_windows(200, C, T, 0, seed=1), cfg=FAST).detector


@pytest.mark.parametrize(("batch", "t", "want"), [(64, 0, 0), (64, 1, 32), (64, 2, 42),
                                                   (64, 3, 48), (10, 4, 8)])
def test_replay_rows_follow_t_over_t_plus_1(batch: int, t: int, want: int) -> None:
    assert replay_rows(batch, t) == want


def test_fork_copies_matching_weights_and_keeps_old_categories() -> None:
    torch.manual_seed(0)
    cfg = VAEConfig(C, T, regimes=2)
    teacher = WindowVAE(cfg)
    student = fork(teacher, cfg.grown())
    ts, ss = teacher.state_dict(), student.state_dict()
    torch.testing.assert_close(ss["enc.0.weight"], ts["enc.0.weight"])
    k_rows = ts["enc_head.weight"].shape[0]
    torch.testing.assert_close(ss["enc_head.weight"][:k_rows], ts["enc_head.weight"])
    assert ss["enc_head.weight"].shape[0] == k_rows + 1
    torch.testing.assert_close(ss["dec_in.weight"][:, : cfg.latent_dim + 2], ts["dec_in.weight"])


def test_shrink_perturb_mixes_the_warm_start_with_a_fresh_init() -> None:
    from models.lifelong import shrink_perturb

    torch.manual_seed(0)
    teacher = WindowVAE(VAEConfig(C, T))
    warm = fork(teacher, teacher.cfg)
    torch.manual_seed(1)
    init = WindowVAE(teacher.cfg)
    student = fork(teacher, teacher.cfg)
    torch.manual_seed(1)  # shrink_perturb draws the same fresh init
    mixed = shrink_perturb(student, 0.25)
    for w, w_warm, w0 in zip(mixed.parameters(), warm.parameters(), init.parameters(), strict=True):
        torch.testing.assert_close(w, 0.25 * w_warm + 0.75 * w0)
    same = shrink_perturb(fork(teacher, teacher.cfg), 1.0)
    for w, w_warm in zip(same.parameters(), warm.parameters(), strict=True):
        torch.testing.assert_close(w, w_warm)


def _result(*rows: dict[str, float]) -> TrainResult:
    return TrainResult(Detector(WindowVAE(VAEConfig(C, T)), RegimeBank.fit(np.zeros((2, T, C)))),
                       np.zeros((0, T, C)), list(rows))


def test_collapse_is_judged_on_the_kept_epoch_against_replay() -> None:
    ok = {"val_loss": 1.0, "val_kl_fresh": 8.0, "val_kl_replay": 10.0}
    bad = {"val_loss": 2.0, "val_kl_fresh": 7.0, "val_kl_replay": 10.0}
    assert not _result(bad, ok).collapsed  # the kept epoch is ok (lower val_loss)
    assert _result(ok | {"val_loss": 3.0}, bad).collapsed
    assert not _result({"val_loss": 1.0, "val_kl_fresh": 0.1}).collapsed  # no replay to compare
    assert not _result().collapsed


def test_a_healthy_warm_student_is_not_trained_twice(first: Detector) -> None:
    epochs: list[int] = []
    res = train_student(make_windows(100, C, T, 0, seed=2), first, FAST,
                        callback=lambda e, _: epochs.append(e))
    assert not res.collapsed and not res.cold_restart
    assert epochs == list(range(1, FAST.max_epochs + 1))


def test_a_collapsed_warm_student_is_replaced_by_one_from_scratch() -> None:
    """Synthetic seed 0's second regime: the warm student stalls at a wide std (bench/README),
    on the sensors' own axes; on the principal axes it learns that regime without stalling."""
    c, t, cfg = 8, 32, replace(FAST, max_epochs=25, decorrelate=False)
    base = train_student(make_windows(400, c, t, 0, seed=0), cfg=cfg)
    teacher = calibrate_detector(base.detector, base.heldout, 0.01)
    fresh = make_windows(400, c, t, 1, seed=1)
    # an unreachable margin: the student from scratch is trained, and the warm one kept
    warm = train_student(fresh, teacher, replace(cfg, cold_margin=1e9), new_regime=True)
    assert warm.collapsed and not warm.cold_restart
    kept = train_student(fresh, teacher, cfg, new_regime=True)
    assert kept.cold_restart and not kept.collapsed
    assert kept.best_val_loss < warm.best_val_loss - cfg.cold_margin * c * t  # type: ignore[operator]


def test_teacher_stays_frozen(first: Detector) -> None:
    before = {k: v.clone() for k, v in first.vae.state_dict().items()}
    train_student(make_windows(100, C, T, 0, seed=2), first, FAST)
    for k, v in first.vae.state_dict().items():
        torch.testing.assert_close(v, before[k])
    copy = frozen_copy(first.vae, "cpu")
    assert not copy.training and not any(p.requires_grad for p in copy.parameters())


def test_new_regime_grows_latent_and_bank(first: Detector) -> None:
    res = train_student(make_windows(100, C, T, 1, seed=3), first, FAST, new_regime=True)
    assert res.detector.regimes == first.regimes + 1 == 2
    assert res.detector.bank.regimes == 2
    assert np.bincount(score(res.detector, make_windows(50, C, T, 1, seed=9)).regime)[1] == 50


def test_training_is_deterministic_with_a_seed() -> None:
    x = make_windows(120, C, T, 0, seed=4)
    a = train_student(x, cfg=FAST).detector
    b = train_student(x, cfg=FAST).detector
    c = train_student(x, cfg=replace(FAST, seed=1)).detector
    probe = make_windows(20, C, T, 0, seed=5)
    np.testing.assert_array_equal(score(a, probe).score, score(b, probe).score)
    assert not np.array_equal(score(a, probe).score, score(c, probe).score)


def test_progress_callback_sees_every_epoch() -> None:
    seen: list[int] = []
    res = train_student(make_windows(80, C, T, 0, seed=6), cfg=FAST,
                        callback=lambda epoch, row: seen.append(epoch))
    assert seen == list(range(1, len(res.history) + 1)) and {"nll", "kl", "val_loss"} <= set(
        res.history[0])


def test_the_callback_sees_the_fold_models_too_and_what_it_raises_stops_them() -> None:
    """A first model's out-of-fold fits are most of its training time; a stopping service
    cancels through the callback (app/compute.py), so it must reach them as well."""
    cfg = replace(FAST, calibration_folds=2)
    x = make_windows(160, C, T, 0, seed=7)
    seen: list[int] = []
    res = train_student(x, cfg=cfg, callback=lambda epoch, row: seen.append(epoch))
    assert seen == [1, 2, 3] * 3 and len(res.out_of_fold.score) == len(x)

    class Stop(Exception):
        pass

    calls: list[int] = []

    def stop_in_the_second_fold(epoch: int, row: dict[str, float]) -> None:
        calls.append(epoch)
        if len(calls) == 8:
            raise Stop

    with pytest.raises(Stop):
        train_student(x, cfg=cfg, callback=stop_in_the_second_fold)
    assert calls == seen[:8]


def test_the_served_weights_are_the_average_early_stopping_kept() -> None:
    """With TrainConfig.ema early stopping validates an average of the weights; the model
    served must be that average at its best epoch, whose held-out loss the history reports."""
    cfg = TrainConfig(max_epochs=8, seed=0, calibration_folds=0, burn_in=1, patience=2, ema=1.0)
    res = train_student(make_windows(300, C, T, 0, seed=3), cfg=cfg)
    xs, mask, _ = res.detector.bank.standardise(res.heldout)
    with torch.no_grad():
        nll, kl = elbo_terms(xs, mask, res.detector.vae(xs, mask))
    assert (nll + kl).mean().item() == pytest.approx(res.best_val_loss, rel=1e-5)
    last = train_student(make_windows(300, C, T, 0, seed=3), cfg=replace(cfg, ema=0.0))
    assert last.best_val_loss != pytest.approx(res.best_val_loss, rel=1e-3)


def test_epochs_that_improve_by_less_than_min_delta_run_out_patience() -> None:
    base = TrainConfig(max_epochs=40, seed=0, calibration_folds=0, burn_in=2, patience=3)
    windows = make_windows(300, C, T, 0, seed=3)
    strict = train_student(windows, cfg=replace(base, min_delta=1e3))
    assert len(strict.history) == base.burn_in + base.patience
    assert strict.best_val_loss == min(h["val_loss"] for h in strict.history)
    assert len(train_student(windows, cfg=replace(base, min_delta=0.0)).history) > len(
        strict.history)


def test_missing_values_are_masked_not_scored(first: Detector) -> None:
    x = make_windows(10, C, T, 0, seed=7)
    holed = x.copy()
    holed[:, :, 2] = np.nan  # channel 2 missing entirely
    holed[:, 3, 2] = 1e9  # would dominate if it were read
    holed[:, 3, 2] = np.nan
    s = score(first, holed)
    assert np.isfinite(s.score).all()
    np.testing.assert_allclose(s.contributions[:, 2], 0.0)
    np.testing.assert_allclose(s.observed, 1 - 1 / C)


@pytest.mark.parametrize("regimes", [1, 2])
def test_a_gap_in_one_window_leaves_the_others_standardised_alike(regimes: int) -> None:
    """Complete batches take a shortcut past the mask; one gap must not change the rest."""
    bank = RegimeBank.fit(make_windows(50, C, T, 0, seed=1))
    if regimes == 2:
        bank = bank.with_regime(make_windows(50, C, T, 1, seed=2))
    x = np.concatenate([make_windows(3, C, T, 0, seed=3), make_windows(3, C, T, 1, seed=4)])
    holed = x.copy()
    holed[4, 5, 1] = np.nan
    z, mask, regime = bank.standardise_sensors(x)
    z_h, mask_h, regime_h = bank.standardise_sensors(holed)
    assert mask.min() == 1.0 and mask_h[4, 5, 1] == 0.0 and z_h[4, 5, 1] == 0.0
    assert mask_h.sum() == mask.numel() - 1
    keep = torch.ones_like(mask_h, dtype=torch.bool)
    keep[4, 5, 1] = False
    assert torch.equal(z[keep], z_h[keep]) and torch.equal(regime, regime_h)
    stats = bank.stats[regime.numpy()]  # [N, 2, C]
    want = (x - stats[:, None, 0]) / stats[:, None, 1]
    np.testing.assert_allclose(z.numpy(), want, rtol=1e-6)

    # On the axes: the other windows and steps as without the gap, the gap's step imputed from
    # its other readings and judged at the share of them observed.
    xs, m, _ = bank.standardise(x)
    xs_h, m_h, _ = bank.standardise(holed)
    assert xs.is_contiguous() and m.is_contiguous() and m.min() == 1.0
    others = torch.ones(len(x), dtype=torch.bool)
    others[4] = False
    assert torch.equal(xs[others], xs_h[others]) and torch.equal(xs[4, :, :5], xs_h[4, :, :5])
    np.testing.assert_allclose(m_h[4, :, 5].numpy(), 1 - 1 / C)
    assert m_h.sum() == m.numel() - 1 and torch.isfinite(xs_h).all()
    a = bank.axis_maps(regime, "cpu")[4 if regimes == 2 else 0]
    np.testing.assert_allclose(xs.transpose(1, 2).numpy(), (z @ bank.axis_maps(
        regime, "cpu")).numpy(), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(xs_h[4, :, 5], z_h[4, 5] @ a)  # imputed, not left at 0


def test_faulty_channel_leads_contributions(first: Detector) -> None:
    s = score(first, inject_fault(make_windows(30, C, T, 0, seed=8), channel=1, magnitude=8))
    assert (s.contributions.argmax(axis=1) == 1).mean() > 0.9
    np.testing.assert_allclose(s.contributions.sum(axis=1), 1.0, rtol=1e-5)


def test_save_load_gives_identical_scores(first: Detector) -> None:
    det = first.with_threshold(12.5, {0: 12.5})
    back = from_bytes(to_bytes(det))
    probe = make_windows(40, C, T, 0, seed=9)
    np.testing.assert_array_equal(score(det, probe).score, score(back, probe).score)
    assert back.threshold == 12.5 and back.regime_thresholds == {0: 12.5}
    assert back.vae.cfg == det.vae.cfg


class _Boom:
    def __reduce__(self):  # noqa: ANN204 - the payload a malicious artifact would carry
        return (eval, ("__import__('os').system('echo pwned')",))


def test_loading_never_executes_code_from_the_artifact() -> None:
    buf = io.BytesIO()
    torch.save({"meta": _Boom()}, buf)
    with pytest.raises(ValueError, match="not a valid Lifeline model artifact"):
        from_bytes(buf.getvalue())
    with pytest.raises(ValueError):
        from_bytes(b"garbage")


def test_window_shape_errors_say_what_to_fix() -> None:
    with pytest.raises(ValueError, match=r"\[N, 16, 4\]"):
        check_windows(np.zeros((2, 16, 3)), channels=4, window=16)


def test_pot_threshold_extrapolates_a_known_tail() -> None:
    rng = np.random.default_rng(0)
    x = rng.exponential(size=3000)
    exact = -np.log(0.001)  # P(X > t) = exp(-t)
    assert abs(calibrate(x, 0.001, "pot") - exact) < 0.1 * exact
    assert calibrate(x, 0.05, "quantile") == pytest.approx(-np.log(0.05), rel=0.1)


@pytest.mark.parametrize(("decorrelate", "factor"), [(False, 2.0), (True, 1.4)])
def test_replay_from_the_aggregate_posterior_looks_normal_to_its_model(
        decorrelate: bool, factor: float) -> None:
    """On the sensors' own axes 11 % of replay from the fitted posterior looks normal against
    2 % from N(0, I); on the principal axes 67 % against 40 % (session 16)."""
    from models.replay import Replayer

    x = make_windows(300, C, T, 0, seed=11)
    res = train_student(x, cfg=replace(FAST, max_epochs=15, decorrelate=decorrelate))
    det = calibrate_detector(res.detector, res.heldout, 0.01)
    assert det.vae.z_mean.abs().sum() > 0  # fitted, not the N(0, I) default
    prior = WindowVAE(det.vae.cfg)
    prior.load_state_dict(det.vae.state_dict())
    prior.z_mean.zero_()
    prior.z_chol.copy_(torch.eye(det.vae.cfg.latent_dim).expand_as(prior.z_chol))
    # the share of replay the model itself finds normal, from its latent statistics vs N(0, I)
    fitted = Replayer(det.vae, det.threshold).fidelity(800, torch.Generator().manual_seed(0))
    unfitted = Replayer(prior, det.threshold).fidelity(800, torch.Generator().manual_seed(0))
    assert fitted > factor * unfitted, (fitted, unfitted)


def test_replay_keeps_only_windows_the_teacher_calls_normal(first: Detector) -> None:
    from models.replay import Replayer
    from models.scoring import score_standardised

    def teacher_scores(x: torch.Tensor) -> torch.Tensor:
        return score_standardised(first.vae, x, torch.ones_like(x))[0]

    raw = first.vae.sample(400, generator=torch.Generator().manual_seed(0))
    median = float(teacher_scores(raw).median())  # a threshold half the raw replay exceeds
    replayer = Replayer(first.vae, median)
    rep = replayer.draw(150, torch.Generator().manual_seed(1), regime=0)
    assert rep.shape == (150, C, T)
    assert (teacher_scores(rep) <= median).all()
    assert 0.3 < replayer.fidelity(400, torch.Generator().manual_seed(2)) < 0.7


def test_big_buffers_are_covered_over_several_epochs() -> None:
    from models.loop import TrainLoop

    loop = TrainLoop(WindowVAE(VAEConfig(C, T)), None, TrainConfig(epoch_windows=96),
                     torch.Generator())
    epochs = [loop._next_rows(256, torch.device("cpu")) for _ in range(8)]
    assert all(len(e) == 96 for e in epochs)
    seen = torch.cat(epochs)
    # a shuffled pass carries over between epochs: every row once before any repeats
    assert sorted(seen[:256].tolist()) == list(range(256))
    assert sorted(seen[256:512].tolist()) == list(range(256))


def test_gate_compares_fit_by_likelihood_not_by_the_anomaly_score() -> None:
    """An under-trained teacher predicts a wide std, so its anomaly scores (residuals in
    units of that std) are low; its student, trained to convergence on the same regime, fits
    better and must pass the gate."""
    x = make_windows(1200, C, T, 0, seed=21)
    teacher = train_student(x[:300], cfg=replace(FAST, max_epochs=5))
    teacher_det = calibrate_detector(teacher.detector, teacher.heldout, 0.01)
    student = train_student(x[300:], teacher_det, replace(FAST, max_epochs=40))
    det = calibrate_detector(student.detector, student.heldout, 0.01, teacher=teacher_det)
    report = gate(det, student.heldout, 0.01, teacher=teacher_det)
    assert report.metrics["fit_student"] < report.metrics["fit_teacher"], report
    assert report.passed, report.reasons


@pytest.mark.parametrize(("stride", "gap"), [(1, T - 1), (4, 3), (5, 3), (T, 0), (T + 3, 0)])
def test_training_windows_sharing_rows_with_the_held_out_block_are_purged(
    stride: int, gap: int
) -> None:
    """Sliding windows with stride k < T: the last ceil(T/k) - 1 training windows share rows
    with the first held-out window; disjoint windows (stride >= T) share none."""
    rows = np.random.default_rng(0).normal(size=(2000, C)).astype(np.float32)
    rows[::7, 1] = np.nan  # missing values repeat too and must still match
    starts = range(0, len(rows) - T + 1, stride)
    windows = np.stack([rows[s : s + T] for s in starts])
    assert overlap_gap(windows, 40) == gap
    if gap:
        first_val, last_kept = windows[40], windows[40 - gap - 1]
        assert window_shift(last_kept, first_val) is None


def test_the_held_out_block_is_the_most_recent_and_unseen() -> None:
    rows = np.random.default_rng(1).normal(size=(600, C)).astype(np.float32)
    windows = np.stack([rows[s : s + T] for s in range(0, 600 - T + 1, 2)])  # stride 2
    train, val = holdout_split(windows, 0.15, purge=True)
    n_val = round(len(windows) * 0.15)
    assert (val.start, val.stop) == (len(windows) - n_val, len(windows))
    assert train.stop == len(windows) - n_val - (T // 2 - 1)
    assert holdout_split(windows, 0.15, purge=False)[0].stop == len(windows) - n_val
    # 12 windows: 2 held out; of the other 10 the purge (7) may take only half
    assert holdout_split(windows[:12], 0.15, purge=True)[0].stop == 5


def test_shape_only_channels_lose_their_level_and_keep_their_shape() -> None:
    windows = make_windows(120, C, T, 0, seed=2)
    bank = RegimeBank.fit(windows, (2,))
    lifted = windows.copy()
    lifted[:, :, 2] += 100.0  # the marked channel drifts: its level is gone after `centre`
    lifted[:, :, 1] += 100.0  # an unmarked channel's level still counts
    xs, _, _ = bank.standardise(windows)
    xs_up, _, _ = bank.standardise(lifted)
    np.testing.assert_allclose(xs_up[:, 2].numpy(), xs[:, 2].numpy(), atol=1e-3)
    assert (xs_up[:, 1] - xs[:, 1]).abs().min() > 1.0
    centred = windows[:, :, 2] - windows[:, :, 2].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(xs[:, 2].numpy() * bank.stats[0, 1, 2], centred, atol=1e-3)
    assert bank.stats[0, 1, 2] < windows[:, :, 2].std()  # scaled by the in-window spread

    gap = windows[:1].copy()
    gap[0, 3, 2] = np.nan  # centred over the observed steps, the gap stays masked
    xg, mg, _ = bank.standardise(gap)
    seen = np.delete(gap[0, :, 2], 3)
    np.testing.assert_allclose(np.delete(xg[0, 2].numpy(), 3) * bank.stats[0, 1, 2],
                               seen - seen.mean(), atol=1e-3)
    assert mg[0, 2, 3] == 0 and xg[0, 2, 3] == 0
    assert not np.isnan(windows).any()  # the caller's windows are left as they were


def test_a_model_with_shape_only_channels_ignores_their_drift_end_to_end() -> None:
    train = make_windows(300, C, T, 0, seed=3)
    probe = make_windows(60, C, T, 0, seed=4)
    drifted = probe.copy()
    drifted[:, :, 2] += 10 * train[:, :, 2].std()
    plain = calibrate_detector(*_fit(train, ()), 0.01)
    marked = calibrate_detector(*_fit(train, (2,)), 0.01)
    assert np.mean(score(plain, drifted).score > plain.threshold) > 0.9
    assert np.mean(score(marked, drifted).score > marked.threshold) < 0.1
    step = inject_fault(probe, channel=1, magnitude=4.0)  # unmarked channels still alarm
    assert np.mean(score(marked, step).score > marked.threshold) > 0.9

    back = from_bytes(to_bytes(marked))
    assert back.bank.shape_only == (2,)
    np.testing.assert_array_equal(score(back, drifted).score, score(marked, drifted).score)
    with pytest.raises(ValueError, match="fixed by a line's first model"):
        train_student(train, marked, FAST, shape_only=(1,))

    # Students inherit the choice, also when a new regime grows the bank.
    regime1 = make_windows(300, C, T, 1, seed=5)
    res = train_student(regime1, marked, replace(FAST, max_epochs=8), new_regime=True)
    student = calibrate_detector(res.detector, res.heldout, 0.01, teacher=marked)
    assert student.bank.shape_only == (2,) and student.bank.regimes == 2
    drifted1 = make_windows(60, C, T, 1, seed=6)
    drifted1[:, :, 2] += 10 * regime1[:, :, 2].std()
    assert np.mean(score(student, drifted1).score > student.threshold) < 0.1


def test_artifacts_are_written_in_the_oldest_format_that_can_read_them(first: Detector) -> None:
    def version(det: Detector) -> int:
        meta = torch.load(io.BytesIO(to_bytes(det)), weights_only=True)["meta"]
        return int(json.loads(meta)["format_version"])

    assert first.bank.axes is not None and version(first) == 4  # principal axes: 4 only
    own = train_student(make_windows(200, C, T, 0, seed=1),
                        cfg=replace(FAST, decorrelate=False)).detector
    assert own.bank.axes is None
    assert version(own) == 2  # what a release before shape-only channels reads


def _fit(train: np.ndarray, shape_only: tuple[int, ...]) -> tuple[Detector, np.ndarray]:
    res = train_student(train, cfg=replace(FAST, max_epochs=8), shape_only=shape_only)
    return res.detector, res.heldout


def test_a_window_is_routed_to_the_regime_whose_statistics_explain_it_best() -> None:
    """route() against its definition in float64: argmin over regimes of the diagonal Gaussian
    NLL of the observed readings, gaps and windows between two regimes included."""
    base = make_windows(50, C, T, 0, seed=1)
    level = base.mean(axis=(0, 1))
    # Regime 2 has regime 0's levels at three times its spread: only the log std term tells
    # regime 0's windows from it.
    bank = RegimeBank.fit(base).with_regime(make_windows(50, C, T, 1, seed=2))
    bank = bank.with_regime(level + 3 * (base - level))
    x = np.concatenate([make_windows(4, C, T, r, seed=10 + r) for r in range(2)]
                       + [(make_windows(8, C, T, 0, seed=20) + make_windows(8, C, T, 1, seed=21))
                          / 2])
    x[np.random.default_rng(0).random(x.shape) < 0.2] = np.nan
    seen = ~np.isnan(x)
    mean, std = bank.stats[:, 0].astype(np.float64), bank.stats[:, 1].astype(np.float64)
    z = (np.nan_to_num(x)[:, None] - mean[None, :, None]) / std[None, :, None]  # [N, R, T, C]
    nll = ((0.5 * z**2 + np.log(std)[None, :, None]) * seen[:, None]).sum(axis=(2, 3))
    routed = bank.route(torch.as_tensor(np.nan_to_num(x)),
                        torch.as_tensor(seen, dtype=torch.float32))
    np.testing.assert_array_equal(routed.numpy(), nll.argmin(axis=1))
    np.testing.assert_array_equal(routed[:8].numpy(), np.repeat([0, 1], 4))
