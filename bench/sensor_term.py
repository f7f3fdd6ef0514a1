"""A per-sensor alarm beside the summed score, measured (bench/README.md; the service's rule).

    python -m bench.sensor_term [--seeds 3] [--data skab,tep,8,128] [--json PATH]

The service's score sums the residual energy over a window's C x T elements, so a fault on one
sensor of many is diluted by the others' noise. Asked here: does each sensor's own energy
(its reconstruction-based contribution, `Scores.sensor_energy`) against its own label-free
threshold catch what the sum misses, without more false alarms? On the same models (a first
model as the service trains it, with its K fold models' scores of the out-of-fold windows),
all thresholds by `models.calibrate` at the service's 1 % target on held-out and out-of-fold
windows, five statistics:

- `sum`: the score against its threshold (the service before session 19);
- `max`: each sensor's energy over its own threshold, the largest ratio thresholded again;
- `union`: the larger of score / its threshold and that ratio, thresholded again;
- `pooled`: each sensor's energy over its median on the calibration windows, the largest
  ratio thresholded: one tail, read off the maximum over sensors, instead of one per sensor;
- `union_pooled`: the larger of score / its threshold and `pooled`'s ratio over its threshold,
  thresholded again: the service's rule since session 19 (models/calibration.py).

A stuck channel is an alarm under each, as the service answers. Data: SKAB and TEP as
bench.quality (windows of 32, or SKAB's thermal channels shape-only at any window, as an
operator would mark them; F1/FAR/MAR pooled over SKAB's files; TEP's mean detection rate
without faults 3, 9, 15 and its false alarms on d00_te), and synthetic lines of C sensors
(windows of 64; 1,000 to train, false alarms on 1,000 new ones, and the share caught of 200
windows with a step on one sensor over their second half, on three sensors in turn).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from bench.data import (
    SKAB_THERMAL,
    SKAB_TRAIN_ROWS,
    TEP_EXCLUDED,
    TEP_ONSET,
    skab_files,
    sliding,
    tep,
)
from bench.detection import Confusion
from models import Detector, TrainConfig, calibrate, score, train_student
from models.synthetic import inject_fault, make_windows

FAR, WINDOW, WIDE_WINDOW = 0.01, 32, 64
STATISTICS = ("sum", "max", "union", "pooled", "union_pooled")
STEPS = (0.1, 0.3, 1.0)  # a step on one sensor, in that sensor's own scale
# windows [N, T, C] -> each statistic's alarms [N]
Alarms = Callable[[np.ndarray], dict[str, np.ndarray]]


def calibration_energies(windows: np.ndarray, seed: int, shape_only: tuple[int, ...] = ()
                         ) -> tuple[Detector, np.ndarray, np.ndarray]:
    """The first model, and the score [n] and sensor energies [n, C] of the windows it
    calibrates on: its held-out block, and each fold's block by a model trained without it
    (`TrainResult.out_of_fold`)."""
    res = train_student(windows, cfg=TrainConfig(seed=seed), shape_only=shape_only)
    held = score(res.detector, res.heldout)
    return (res.detector, np.concatenate([held.score, res.out_of_fold.score]),
            np.concatenate([held.sensor_energy, res.out_of_fold.sensor_energy]))


def fit(windows: np.ndarray, seed: int, shape_only: tuple[int, ...] = ()) -> Alarms:
    """Train and calibrate the statistics without labels."""
    det, cal_score, cal_energy = calibration_energies(windows, seed, shape_only)
    total = calibrate(cal_score, FAR)
    each = np.maximum([calibrate(e, FAR) for e in cal_energy.T], 1e-9)  # [C]
    cal_max = (cal_energy / each).max(axis=1)
    top = calibrate(cal_max, FAR)
    either = calibrate(np.maximum(cal_score / total, cal_max), FAR)
    typical = np.maximum(np.median(cal_energy, axis=0), 1e-9)  # [C]
    cal_pooled = (cal_energy / typical).max(axis=1)
    pooled = calibrate(cal_pooled, FAR)
    either_pooled = calibrate(np.maximum(cal_score / total, cal_pooled / pooled), FAR)

    def alarms(x: np.ndarray) -> dict[str, np.ndarray]:
        s = score(det, x)
        ratio = (s.sensor_energy / each).max(axis=1)
        ratio_pooled = (s.sensor_energy / typical).max(axis=1)
        stuck = s.stuck.any(axis=1)
        return {"sum": (s.score > total) | stuck, "max": (ratio > top) | stuck,
                "union": (np.maximum(s.score / total, ratio) > either) | stuck,
                "pooled": (ratio_pooled > pooled) | stuck,
                "union_pooled": (np.maximum(s.score / total, ratio_pooled / pooled)
                                 > either_pooled) | stuck}

    return alarms


def run_skab(seed: int, window: int = WINDOW, shape_only: tuple[int, ...] = ()
             ) -> dict[str, dict[str, float]]:
    """`shape_only`: SKAB's thermal channels, as an operator would mark them (bench.quality)."""
    pooled = {k: Confusion() for k in STATISTICS}
    for _, x, y in skab_files():
        alarms = fit(sliding(x[:SKAB_TRAIN_ROWS], window), seed, shape_only)
        for k, a in alarms(sliding(x, window)).items():  # a[i]: the row i + window - 1
            pooled[k].add(a[SKAB_TRAIN_ROWS - window + 1 :], y[SKAB_TRAIN_ROWS:])
    return {k: {"f1": c.f1, "far": c.far, "mar": c.mar} for k, c in pooled.items()}


def run_tep(seed: int) -> dict[str, dict[str, float]]:
    alarms = fit(sliding(tep("d00.dat"), WINDOW), seed)
    out = {k: {"far": float(a.mean())} for k, a in alarms(sliding(tep("d00_te.dat"),
                                                                  WINDOW)).items()}
    rates: dict[str, list[float]] = {k: [] for k in STATISTICS}
    for f in (f for f in range(1, 22) if f not in TEP_EXCLUDED):
        for k, a in alarms(sliding(tep(f"d{f:02d}_te.dat"), WINDOW)).items():
            rates[k].append(float(a[TEP_ONSET - WINDOW + 1 :].mean()))
    return {k: {**out[k], "fdr_mean": float(np.mean(rates[k]))} for k in STATISTICS}


def run_wide(channels: int, seed: int) -> dict[str, dict[str, float]]:
    alarms = fit(make_windows(1000, channels, WIDE_WINDOW, seed=1 + 10 * seed), seed)
    normal = alarms(make_windows(1000, channels, WIDE_WINDOW, seed=2 + 10 * seed))
    out = {k: {"far": float(a.mean())} for k, a in normal.items()}
    for step in STEPS:
        caught: dict[str, list[float]] = {k: [] for k in STATISTICS}
        for ch in (0, channels // 2, channels - 1):
            x = make_windows(200, channels, WIDE_WINDOW, seed=3 + 10 * seed + ch)
            for k, a in alarms(inject_fault(x, ch, step)).items():
                caught[k].append(float(a.mean()))
        for k in STATISTICS:
            out[k][f"step_{step}"] = float(np.mean(caught[k]))
    return out


def task(data: str, seed: int) -> dict[str, dict[str, float]]:
    """One data set, one seed, in a worker process on one torch thread."""
    torch.set_num_threads(1)
    if data == "skab":
        return run_skab(seed)
    if data.startswith("skab_shape_only"):  # skab_shape_only or skab_shape_only_<window>
        window = data.removeprefix("skab_shape_only").lstrip("_")
        return run_skab(seed, int(window) if window else WINDOW, SKAB_THERMAL)
    if data == "tep":
        return run_tep(seed)
    return run_wide(int(data), seed)


def mean_over_seeds(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {k: {m: float(np.mean([r[k][m] for r in runs])) for m in runs[0][k]}
            for k in runs[0]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--data", default="skab,tep,8,128",
                   help="comma-separated: skab, skab_shape_only[_<window>] (thermal channels "
                   "shape-only), tep, or a synthetic line's sensor count")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    names = a.data.split(",")
    if bad := [n for n in names if n not in ("skab", "tep") and not n.isdigit()
               and not n.startswith("skab_shape_only")]:
        p.error(f"--data takes skab, tep or sensor counts, not {bad}")
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn")) as pool:
        futures = {n: [pool.submit(task, n, s) for s in range(a.seeds)] for n in names}
        result = {n: mean_over_seeds([f.result() for f in fs]) for n, fs in futures.items()}
    print(f"\nA per-sensor term ({a.seeds} seeds, means; {time.perf_counter() - t0:.0f} s)\n")
    print("| data | statistic | false alarms | detection |\n|---|---|---|---|")
    for n, rows in result.items():
        for k, m in rows.items():
            if n.startswith("skab"):
                found = f"F1 {m['f1']:.3f}, missed {100 * m['mar']:.1f} %"
            elif n == "tep":
                found = f"mean rate {m['fdr_mean']:.3f}"
            else:
                found = ", ".join(f"step {s}: {100 * m[f'step_{s}']:.1f} %" for s in STEPS)
            label = f"synthetic C={n}" if n.isdigit() else n
            print(f"| {label} | {k} | {100 * m['far']:.1f} % | {found} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
