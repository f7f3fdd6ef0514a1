"""Detection quality on real plant data, Lifeline beside the baselines, label-free thresholds.

    python -m bench.quality [--seeds 3] [--window 32] [--json PATH]

SKAB (official outlier protocol): per labelled file the first 400 rows train, the rest is test;
every test timestamp gets the score of the window ending at it; F1/FAR/MAR pooled over files.
TEP (Braatz): train on d00.dat; false alarms on d00_te.dat; detection rate on rows after sample
160 of each dNN_te.dat; mean excluding faults 3, 9, 15. Every method's threshold is
`models.calibrate` at the same target false-alarm rate on held-out training data: no labels.
The `_window` baselines average their row scores over the rows of Lifeline's window, so both
judge the same span of data. `lifeline` is the service's default, whose first models take their
threshold from held-out and out-of-fold scores (TrainConfig.calibration_folds);
`lifeline_holdout` the held-out block alone (the default before session 10);
`lifeline_pca_residual` (a linear stage before the VAE) is an experiment; `lifeline_own_axes`
the model on the sensors' own axes instead of the regimes' principal axes; these and the
quantile rule run only when named. `lifeline_level_free` is the service's option of shape-only
channels, set as an operator who knows SKAB's rig would set it. Every method is also
thresholded knowing the labels (an oracle, at the goals' false-alarm bars), which tells its
ranking from its calibration. `lifeline_smooth<K>` and `lifeline_level_free_smooth<K>` smooth
the service's window scores over K consecutive windows (an experiment). `--held-out` sets the
share of training data every method calibrates on (Lifeline: TrainConfig.val_fraction).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from app.schemas.lines import LineConfig
from bench.baselines import IForest, PCAMonitor
from bench.data import (
    SKAB_THERMAL,
    SKAB_TRAIN_ROWS,
    TEP_EXCLUDED,
    TEP_ONSET,
    skab_files,
    skab_seconds,
    sliding,
    tep,
)
from bench.detection import Confusion, Events, oracle_threshold
from models import (
    Detector,
    TrainConfig,
    TrainResult,
    calibrate,
    calibrate_detector,
    score,
    train_student,
)
from models.calibration import Method
from models.splits import fold_bounds, fold_training

FAR_TARGET = 0.01  # the service's default target_false_alarm_rate
# The goals' false-alarm bars: each method is also thresholded there knowing the labels (an
# oracle), so its ranking is judged apart from its calibration.
SKAB_ORACLE_FAR, TEP_ORACLE_FAR = 0.10, 0.05
# Alarms grouped into events as a line does by default: what an operator is shown.
EVENT_GAP_S = LineConfig.model_fields["event_gap_s"].default
SILENT_AFTER_S = LineConfig.model_fields["silent_after_s"].default  # SKAB's gaps: 247 s at most
HELD_OUT = TrainConfig().val_fraction  # share of training data every method calibrates on
FOLDS = TrainConfig().calibration_folds  # the service's out-of-fold calibration of first models
# (fit on training rows, seed) -> (row scorer over a whole series, threshold)
Fitted = tuple[Callable[[np.ndarray], np.ndarray], float]
SKAB_LEADERBOARD = [("Conv-AE", 0.78, 13.55, 28.02), ("MSET", 0.78, 39.73, 14.13),
                    ("T2+Q (PCA)", 0.76, 26.62, 24.92), ("LSTM-AE", 0.74, 29.96, 25.92),
                    ("T2", 0.66, 19.21, 42.6), ("LSTM-VAE", 0.56, 9.13, 55.03),
                    ("Vanilla AE", 0.39, 2.59, 75.15), ("Isolation forest", 0.29, 2.56, 82.89)]


def lifeline(window: int, method: Method = "pot", folds: int = FOLDS, held_out: float = HELD_OUT,
             slow: bool = False, smooth: int = 1, decorrelate: bool = True
             ) -> Callable[[np.ndarray, int], Fitted]:
    """The service's path: train_student -> calibrate_detector -> score (a stuck channel an
    alarm), the threshold read off the held-out windows and, with `folds` (the default's), the
    out-of-fold scores; with
    `slow`, the data set's SLOW_CHANNELS are shape-only channels (a line option). `smooth` > 1
    is an experiment: each window's score is the mean over it and the smooth - 1 windows before
    it, and the threshold is read off the same smoothing of the calibration scores.
    `decorrelate` False: the model on the sensors' own axes (the default before session 16)."""

    def fit(train: np.ndarray, seed: int) -> Fitted:
        cfg = TrainConfig(seed=seed, val_fraction=held_out, calibration_folds=folds,
                          decorrelate=decorrelate)
        shape_only = SLOW_CHANNELS.get(train.shape[1], ()) if slow else ()
        windows = sliding(train, window)
        res = train_student(windows, cfg=cfg, shape_only=shape_only)
        det = calibrate_detector(res.detector, res.heldout, FAR_TARGET, method=method,
                                 out_of_fold=res.out_of_fold)
        threshold = det.threshold if smooth == 1 else calibrate(
            smoothed_calibration(det, res, len(windows), folds, smooth), FAR_TARGET, method)

        return partial(row_scores, det, window=window, smooth=smooth), threshold

    return fit


def row_scores(det: Detector, x: np.ndarray, window: int, smooth: int = 1) -> np.ndarray:
    """Each row of a series x [n, C] scored by the window ending at it (NaN before the first
    full window), averaged over `smooth` windows; a stuck channel or a sensor past its own
    limit is an alarm whatever the score, as the service answers."""
    s = score(det, sliding(x, window))
    out = np.full(len(x), np.nan)
    alarm = s.stuck.any(axis=1) | s.over_limit.any(axis=1)
    out[window - 1 :] = np.where(alarm, np.inf, trailing_mean(s.score, smooth))
    return out


def smoothed_calibration(det: Detector, res: TrainResult, windows: int, folds: int, k: int
                         ) -> np.ndarray:
    """The held-out block's and each out-of-fold block's scores, each smoothed within itself."""
    return smooth_blocks([score(det, res.heldout).score,
                          *fold_blocks(res.out_of_fold.score, windows, folds)], k)


def fold_blocks(out_of_fold: np.ndarray, windows: int, folds: int) -> list[np.ndarray]:
    """Out-of-fold scores (lifelong.out_of_fold: fold_bounds order) cut back into their blocks."""
    if not len(out_of_fold):
        return []
    sizes = [b - a for a, b in fold_bounds(windows, folds)]
    return np.split(out_of_fold, np.cumsum(sizes)[:-1])


def smooth_blocks(blocks: list[np.ndarray], k: int) -> np.ndarray:
    """Each block's trailing mean over k scores, without the first k - 1 of each, pooled: the
    blocks are not neighbours in time, so no mean spans two of them."""
    return np.concatenate([trailing_mean(b, k)[k - 1 :] for b in blocks if len(b) >= k])


# Channels an operator who knows the plant would mark shape-only: SKAB's thermal ones, none of
# TEP's. Keyed by channel count, the one thing a method sees of its data set.
SLOW_CHANNELS = {8: SKAB_THERMAL}


def lifeline_pca_residual(window: int, held_out: float = HELD_OUT
                          ) -> Callable[[np.ndarray, int], Fitted]:
    """Experiment: the VAE trained on each row's residual off PCA's principal subspace (90 %
    of the variance, fitted on the rows before the held-out block), scored by `squared_residual`.

    PCA's SPE averaged over the window meets the TEP goal where Lifeline does not; this asks
    whether the same linear stage in front of the VAE carries that over (bench/README.md)."""

    def fit(train: np.ndarray, seed: int) -> Fitted:
        pca = PCAMonitor().fit(train[: int(len(train) * (1 - held_out))])
        # the residual is rank-deficient by construction: no principal axes of its own
        cfg = TrainConfig(seed=seed, val_fraction=held_out, calibration_folds=0,
                          decorrelate=False)
        res = train_student(sliding(pca.residual(train), window), cfg=cfg)
        threshold = calibrate(squared_residual(res.detector, res.heldout), FAR_TARGET)

        def rows(x: np.ndarray) -> np.ndarray:
            out = np.full(len(x), np.nan)
            out[window - 1 :] = squared_residual(res.detector, sliding(pca.residual(x), window))
            return out

        return rows, threshold

    return fit


def lifeline_channel_weighted(window: int, held_out: float = HELD_OUT, slow: bool = False
                              ) -> Callable[[np.ndarray, int], Fitted]:
    """Experiment (session 10): each channel's residual energy divided by its mean over the
    held-out and out-of-fold windows before summing, so a channel the model misfits on stretches
    it did not see widens its own tolerance rather than everyone's (bench/README.md)."""

    def fit(train: np.ndarray, seed: int) -> Fitted:
        cfg = TrainConfig(seed=seed, val_fraction=held_out, calibration_folds=0)
        shape_only = SLOW_CHANNELS.get(train.shape[1], ()) if slow else ()
        windows = sliding(train, window)
        res = train_student(windows, cfg=cfg, shape_only=shape_only)
        unseen = [channel_energy(res.detector, res.heldout)] + [
            channel_energy(train_student(fold_training(windows, a, b), cfg=cfg,
                                         shape_only=shape_only).detector, windows[a:b])
            for a, b in fold_bounds(len(windows), FOLDS)]
        weights = 1.0 / np.maximum(np.concatenate(unseen).mean(axis=0), 1e-9)  # [C]
        threshold = calibrate(np.concatenate(unseen) @ weights, FAR_TARGET)

        def rows(x: np.ndarray) -> np.ndarray:
            out = np.full(len(x), np.nan)
            out[window - 1 :] = channel_energy(res.detector, sliding(x, window)) @ weights
            return out

        return rows, threshold

    return fit


def channel_energy(det: Detector, windows: np.ndarray) -> np.ndarray:
    """Each window's score split over its channels [N, C] (score x contributions)."""
    s = score(det, windows)
    return s.contributions * s.score[:, None]


@torch.inference_mode()
def squared_residual(det: Detector, windows: np.ndarray) -> np.ndarray:
    """0.5 * sum of squared reconstruction residuals in the units of the windows themselves:
    neither the decoder's learned std nor the regime scaler's divides them, as in PCA's SPE.
    For models on the sensors' own axes (TrainConfig.decorrelate False)."""
    if det.bank.axes is not None:
        raise ValueError("squared_residual needs a model on the sensors' own axes")
    xs, mask, regime = det.bank.standardise(windows)
    out = det.vae(xs, mask)
    scale = torch.as_tensor(det.bank.stats)[regime, 1][:, :, None]  # [N, C, 1]
    r = (xs - out["mean"]) * mask * scale  # [N, C, T]
    return (0.5 * r.square()).sum(dim=(1, 2)).numpy().astype(np.float64)


def trailing_mean(scores: np.ndarray, rows: int) -> np.ndarray:
    """Mean of each row's score and the rows - 1 before it; NaN until `rows` rows are in."""
    c = np.cumsum(np.concatenate([[0.0], scores]))
    out = np.full(len(scores), np.nan)
    out[rows - 1 :] = (c[rows:] - c[:-rows]) / rows
    return out


def _rowwise(make: Callable[[np.ndarray, int], Callable[[np.ndarray], np.ndarray]],
             rows: int = 1, held_out: float = HELD_OUT) -> Callable[[np.ndarray, int], Fitted]:
    """A row-wise detector, its scores averaged over `rows` rows (1 = as published)."""

    def fit(train: np.ndarray, seed: int) -> Fitted:
        cut = int(len(train) * (1 - held_out))  # the last rows, as a line would see them next
        per_row = make(train[:cut], seed)

        def scorer(x: np.ndarray) -> np.ndarray:
            return trailing_mean(per_row(x), rows)

        held = scorer(train)[cut:]
        return scorer, calibrate(held[~np.isnan(held)], FAR_TARGET)

    return fit


# Asked for by name, so that the default run stays under the 20 minutes: the service's
# Lifeline trains K + 1 models per fit (~8 minutes on 2 cores), these are measured variants.
OPT_IN = ("lifeline_quantile", "lifeline_holdout", "lifeline_level_free_holdout",
          "lifeline_pca_residual", "lifeline_channel_weighted",
          "lifeline_level_free_channel_weighted", "lifeline_own_axes",
          "lifeline_level_free_own_axes")
# Shape-only variants: TEP has no channel an operator would mark, so there they are this method.
SKAB_ONLY = {"lifeline_level_free": "lifeline", "lifeline_level_free_holdout": "lifeline_holdout",
             "lifeline_level_free_channel_weighted": "lifeline_channel_weighted",
             "lifeline_level_free_own_axes": "lifeline_own_axes"}
# name -> (window, held-out share) -> fit
METHODS: dict[str, Callable[[int, float], Callable[[np.ndarray, int], Fitted]]] = {
    "lifeline": lambda w, h: lifeline(w, held_out=h),
    "lifeline_level_free": lambda w, h: lifeline(w, held_out=h, slow=True),
    "lifeline_quantile": lambda w, h: lifeline(w, "quantile", held_out=h),  # calibration rule
    # the threshold off the held-out block alone (the default until session 10)
    "lifeline_holdout": lambda w, h: lifeline(w, folds=0, held_out=h),
    "lifeline_level_free_holdout": lambda w, h: lifeline(w, folds=0, held_out=h, slow=True),
    "lifeline_pca_residual": lifeline_pca_residual,  # a linear stage before the VAE
    "lifeline_channel_weighted": lifeline_channel_weighted,  # per-channel tolerances
    # the sensors' own axes, as before session 16 (TrainConfig.decorrelate False)
    "lifeline_own_axes": lambda w, h: lifeline(w, held_out=h, decorrelate=False),
    "lifeline_level_free_own_axes": lambda w, h: lifeline(w, held_out=h, slow=True,
                                                          decorrelate=False),
    "lifeline_level_free_channel_weighted": lambda w, h: lifeline_channel_weighted(w, h, True),
    "pca_spe": lambda w, h: _rowwise(lambda x, s: PCAMonitor().fit(x).spe, 1, h),
    "pca_t2": lambda w, h: _rowwise(lambda x, s: PCAMonitor().fit(x).t2, 1, h),
    "pca_spe_window": lambda w, h: _rowwise(lambda x, s: PCAMonitor().fit(x).spe, w, h),
    "pca_t2_window": lambda w, h: _rowwise(lambda x, s: PCAMonitor().fit(x).t2, w, h),
    "iforest": lambda w, h: _rowwise(lambda x, s: IForest(s).fit(x).score, 1, h),
}


def make_fit(name: str, window: int, held_out: float) -> Callable[[np.ndarray, int], Fitted]:
    """METHODS[name], or for `lifeline_smooth<K>` / `lifeline_level_free_smooth<K>` that
    method with its window scores smoothed over K consecutive windows (an experiment)."""
    base, _, k = name.rpartition("_smooth")
    if base in ("lifeline", "lifeline_level_free") and k.isdigit() and int(k) >= 1:
        return lifeline(window, held_out=held_out, slow=base != "lifeline", smooth=int(k))
    if name not in METHODS:
        raise SystemExit(f"unknown method {name!r}: one of {', '.join(METHODS)}, or "
                         "lifeline_smooth<K> / lifeline_level_free_smooth<K>")
    return METHODS[name](window, held_out)


def run_skab(fit: Callable[[np.ndarray, int], Fitted], seed: int
             ) -> tuple[Confusion, Confusion, Events, Events]:
    """Pooled confusion at the label-free threshold, and at each file's oracle threshold (the
    lowest that keeps that file's false alarms within SKAB_ORACLE_FAR); and the label-free
    alarms grouped into events as the service groups them, at its default event gap and with
    none (each normal window closing an event, as before session 26)."""
    c, oracle, events, chatter = Confusion(), Confusion(), Events(), Events()
    for name, x, y in skab_files():
        rows, thr = fit(x[:SKAB_TRAIN_ROWS], seed)
        s, labels = rows(x)[SKAB_TRAIN_ROWS:], y[SKAB_TRAIN_ROWS:]
        c.add(s > thr, labels)
        oracle.add(s > oracle_threshold(s, labels, SKAB_ORACLE_FAR), labels)
        seconds = skab_seconds(name)[SKAB_TRAIN_ROWS:]
        events.add(s > thr, labels, seconds, EVENT_GAP_S, SILENT_AFTER_S)
        chatter.add(s > thr, labels, seconds, 0)
    return c, oracle, events, chatter


def always_alarm() -> Confusion:
    """Every SKAB test row called anomalous: the floor any F1 on these test parts must clear
    (54 % of their rows are labelled anomalous)."""
    c = Confusion()
    for _, _, y in skab_files():
        c.add(np.ones(len(y) - SKAB_TRAIN_ROWS, bool), y[SKAB_TRAIN_ROWS:])
    return c


def run_tep(fit: Callable[[np.ndarray, int], Fitted], seed: int) -> dict[str, float | dict]:
    """Label-free figures, and the mean detection rate at the oracle threshold that gives
    TEP_ORACLE_FAR false alarms on d00_te."""
    rows, thr = fit(tep("d00.dat"), seed)
    normal = rows(tep("d00_te.dat"))
    normal = normal[~np.isnan(normal)]
    faults = {k: rows(tep(f"d{k:02d}_te.dat"))[TEP_ONSET:] for k in range(1, 22)}
    oracle = oracle_threshold(normal, np.zeros(len(normal), bool), TEP_ORACLE_FAR)
    kept = [k for k in faults if k not in TEP_EXCLUDED]
    return {"fdr_mean": float(np.mean([np.mean(faults[k] > thr) for k in kept])),
            "far": float(np.mean(normal > thr)),
            "fdr": {str(k): float(np.mean(s > thr)) for k, s in faults.items()},
            "fdr_mean_oracle": float(np.mean([np.mean(faults[k] > oracle) for k in kept]))}


def _mean(dicts: list[dict]) -> dict:
    out: dict = {}
    for k, v in dicts[0].items():
        out[k] = _mean([d[k] for d in dicts]) if isinstance(v, dict) else float(
            np.mean([d[k] for d in dicts]))
    return out


def _task(name: str, window: int, held_out: float, data: str, seed: int) -> dict:
    """One method, one seed, one data set (in a worker process of run_all's)."""
    fit = make_fit(name, window, held_out)
    if data == "tep":
        return run_tep(fit, seed)
    c, o, e, e0 = run_skab(fit, seed)
    return {"f1": c.f1, "far": c.far, "mar": c.mar, "oracle_f1": o.f1, "oracle_mar": o.mar,
            "faults_caught": e.caught / e.faults, "events_per_caught_fault": e.per_caught_fault,
            "false_events_per_hour": e.false_per_hour,
            "no_gap": {"events_per_caught_fault": e0.per_caught_fault,
                       "false_events_per_hour": e0.false_per_hour}}


def run_all(names: list[str], window: int, held_out: float, seeds: int, workers: int,
            t0: float, data_sets: tuple[str, ...] = ("skab", "tep")) -> dict[str, dict]:
    """Every (method, data set, seed) as its own task, `workers` at a time, each on one torch
    thread: these small models use a second thread poorly (two one-thread runs side by side
    finish 1.6x sooner than one after the other on two threads; the figures are the same).
    Seeded methods also report each seed's false-alarm rate (`far_by_seed`): TEP's spreads
    from 6 to 40 % over seeds (bench/README.md), which a mean alone hides."""
    result: dict[str, dict] = {"skab": {}, "tep": {}}
    futures: dict[tuple[str, str], list[Future]] = {}
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        for name in names:
            make_fit(name, window, held_out)  # an unknown name fails here, before any work
            runs = range(1) if name.startswith("pca") else range(seeds)
            tep_too = name not in SKAB_ONLY and not name.startswith("lifeline_level_free_smooth")
            for data in [d for d in data_sets if tep_too or d == "skab"]:
                futures[name, data] = [pool.submit(_task, name, window, held_out, data, s)
                                       for s in runs]
        for (name, data), fs in futures.items():
            runs_done = [f.result() for f in fs]
            result[data][name] = _mean(runs_done)
            if len(runs_done) > 1:
                result[data][name]["far_by_seed"] = [r["far"] for r in runs_done]
            print(f"  {name} on {data}: done at {time.perf_counter() - t0:.0f} s", flush=True)
    for name in names:
        if name not in result["tep"] and "tep" in data_sets:
            print(f"  {name}: TEP as its plain lifeline method (no channel marked)")
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--methods", default=",".join(m for m in METHODS if m not in OPT_IN),
                   help=f"comma-separated; by default all but {', '.join(OPT_IN)}; also "
                   "lifeline_smooth<K>, lifeline_level_free_smooth<K>: scores smoothed over K "
                   "consecutive windows")
    p.add_argument("--held-out", type=float, default=HELD_OUT,
                   help="share of training data calibrated on (default: the service's)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes, one torch thread each (default: one per core)")
    p.add_argument("--data", default="skab,tep", help="comma-separated: skab, tep")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    data_sets = tuple(a.data.split(","))
    if not set(data_sets) <= {"skab", "tep"}:
        p.error(f"--data takes skab and/or tep, not {a.data!r}")
    t0 = time.perf_counter()
    result = run_all(a.methods.split(","), a.window, a.held_out, a.seeds, a.workers, t0,
                     data_sets)
    print_tables(result, a, time.perf_counter() - t0)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2))


def print_tables(result: dict, a: argparse.Namespace, seconds: float) -> None:
    print(f"\nrun time {seconds:.0f} s; window {a.window}, target FAR {FAR_TARGET}, label-free "
          f"thresholds on the last {a.held_out:.0%} of training data, {a.seeds} seeds where "
          "random")
    if result["skab"]:
        print_skab(result["skab"])
    if result["tep"]:
        print_tep(result["tep"])
    seeded = [(data, name, m["far_by_seed"]) for data, ms in result.items()
              for name, m in ms.items() if "far_by_seed" in m]
    if seeded:
        print("\nfalse alarms per seed, %:")
        for data, name, fars in seeded:
            print(f"  {data} {name}: " + " / ".join(f"{100 * f:.1f}" for f in fars))


def print_skab(rows: dict) -> None:
    print(f"\nSKAB outlier protocol; oracle: each file thresholded, knowing its labels, at "
          f"{SKAB_ORACLE_FAR:.0%} false alarms\n")
    print(f"Events: label-free alarms grouped as a line groups them (event gap {EVENT_GAP_S} s); "
          "a fault is a run of labelled rows, caught when a row of it is flagged\n")
    print(f"| method | F1 | FAR % | MAR % | oracle F1 | oracle MAR % | faults caught % | "
          f"events per caught fault, no gap / {EVENT_GAP_S} s | false events per hour, no gap "
          f"/ {EVENT_GAP_S} s |\n" + "|---" * 9 + "|")
    for name, m in rows.items():
        label = f"**{name}** (ours, label-free)" if name == "lifeline" else f"{name} (label-free)"
        e0 = m["no_gap"]
        print(f"| {label} | {m['f1']:.3f} | {100 * m['far']:.2f} | {100 * m['mar']:.2f} | "
              f"{m['oracle_f1']:.3f} | {100 * m['oracle_mar']:.2f} | "
              f"{100 * m['faults_caught']:.1f} | {e0['events_per_caught_fault']:.2f} / "
              f"{m['events_per_caught_fault']:.2f} | {e0['false_events_per_hour']:.1f} / "
              f"{m['false_events_per_hour']:.1f} |")
    c = always_alarm()
    print(f"| every row an alarm | {c.f1:.3f} | {100 * c.far:.2f} | {100 * c.mar:.2f} | | | | | |")
    for name, f1, far, mar in SKAB_LEADERBOARD:
        print(f"| {name} (leaderboard, hand-picked threshold) | {f1:.2f} | {far:.2f} | {mar:.2f}"
              " | | | | | |")


def print_tep(rows: dict) -> None:
    print(f"\nTEP (train d00, FDR after sample 160, mean excluding 3/9/15; oracle: the threshold "
          f"giving {TEP_ORACLE_FAR:.0%} false alarms on d00_te)\n")
    print("| method | FDR mean | FAR % | oracle FDR | " + " | ".join(
        f"f{k}" for k in range(1, 22)) + " |")
    print("|---|---|---|---|" + "---|" * 21)
    for name, m in rows.items():
        print(f"| {name} | {m['fdr_mean']:.3f} | {100 * m['far']:.2f} | "
              f"{m['fdr_mean_oracle']:.3f} | " + " | ".join(
                  f"{m['fdr'][str(k)]:.2f}" for k in range(1, 22)) + " |")


if __name__ == "__main__":
    main()
