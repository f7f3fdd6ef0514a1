"""Label-free threshold rules side by side on the same first models: how much margin over its
calibration scores a first model's threshold needs for the next run of the process.

    python -m bench.thresholds [--seeds 6] [--skab-seeds 3] [--data tep,skab] [--window 32]
                               [--json PATH]

Each first model is trained once as the service trains it (`train_student`: the most recent 15 %
held out, four fold models for out-of-fold scores); its calibration scores are kept in their
blocks (the held-out block, then the four out-of-fold blocks in time order) with its in-sample
scores, and every rule in RULES reads a threshold off them, at the service's 1 % target. None
sees a label. The `default` rule is the service's (`calibrate_detector`), and the models and
scores are bench.quality's, so its rows reproduce bench.quality's `lifeline` (TEP, and SKAB
with every channel by level) and `lifeline_level_free` (SKAB shape-only) rows.
The oracle columns (labels, bench.quality) say where each data set's ranking ends.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from bench.data import SKAB_TRAIN_ROWS, TEP_EXCLUDED, TEP_ONSET, skab_files, sliding, tep
from bench.detection import Confusion
from bench.quality import FAR_TARGET, SLOW_CHANNELS, fold_blocks, row_scores
from models import TrainConfig, calibrate, calibrate_detector, score, train_student


@dataclass(frozen=True)
class Blocks:
    """A first model's calibration scores: its held-out block and the out-of-fold blocks in
    time order, and its scores of its own training windows (in-sample)."""

    held: np.ndarray
    folds: list[np.ndarray]
    insample: np.ndarray

    @property
    def all(self) -> list[np.ndarray]:
        return [self.held, *self.folds]


def _pot(scores: np.ndarray, far: float = FAR_TARGET) -> float:
    return calibrate(scores, far)


def _pooled(b: Blocks) -> float:
    return _pot(np.concatenate(b.all))


def _highest_block(b: Blocks) -> float:
    """Every block, taken as a run of its own, kept within the target."""
    return max(_pot(x) for x in b.all)


def _mean_2sd(b: Blocks) -> float:
    per = [_pot(x) for x in b.all]
    return float(np.mean(per) + 2.0 * np.std(per, ddof=1))


def _gap_once_more(b: Blocks) -> float:
    """The step from in-sample to out-of-fold scores taken once more, as if the next run lay
    as far beyond the unseen blocks as they lie beyond the training windows."""
    pooled = _pooled(b)
    return pooled * pooled / _pot(b.insample)


def _last_block(b: Blocks) -> float:
    """Only the forward step: the last block, scored by a model trained on the blocks before."""
    return _pot(b.folds[-1])


RULES: dict[str, Callable[[Blocks], float]] = {
    "default": _pooled,
    "highest block": _highest_block,
    "blocks' mean + 2 sd": _mean_2sd,
    "gap once more": _gap_once_more,
    "target 0.1 %": lambda b: _pot(np.concatenate(b.all), FAR_TARGET / 10),
    "last block": _last_block,
    "held-out + last block": lambda b: _pot(np.concatenate([b.held, b.folds[-1]])),
    "default x 1.25": lambda b: 1.25 * _pooled(b),
    "default x 1.5": lambda b: 1.5 * _pooled(b),
}


def first_model(train: np.ndarray, window: int, seed: int, shape_only: tuple[int, ...] = (),
                cfg: TrainConfig | None = None
                ) -> tuple[Blocks, Callable[[np.ndarray], np.ndarray], float]:
    """The service's first model on `train` rows: its calibration blocks, a scorer of every row
    of a series (the window ending there; a stuck channel or a sensor past its limit is an
    alarm, as the service answers) and the summed score's threshold as the service calibrates
    it, before the per-sensor term's factor (models/calibration.py): the rules here are rules
    for the sum. `cfg`: the service's defaults."""
    windows = sliding(train, window)
    cfg = cfg or TrainConfig(seed=seed)
    res = train_student(windows, cfg=cfg, shape_only=shape_only)
    det = calibrate_detector(res.detector, res.heldout, FAR_TARGET, out_of_fold=res.out_of_fold)
    folds = fold_blocks(res.out_of_fold.score, len(windows), cfg.calibration_folds)
    blocks = Blocks(score(det, res.heldout).score, folds, score(det, windows).score)
    return blocks, partial(row_scores, det, window=window), det.regime_thresholds[0]


def tep_seed(window: int, seed: int) -> dict[str, dict[str, float]]:
    """Per rule: TEP's mean detection rate (faults 3, 9, 15 excluded) and false alarms."""
    blocks, rows, _ = first_model(tep("d00.dat"), window, seed)
    normal = rows(tep("d00_te.dat"))
    normal = normal[~np.isnan(normal)]
    faults = [rows(tep(f"d{k:02d}_te.dat"))[TEP_ONSET:] for k in range(1, 22)
              if k not in TEP_EXCLUDED]
    out = {}
    for name, rule in RULES.items():
        thr = rule(blocks)
        out[name] = {"fdr_mean": float(np.mean([np.mean(f > thr) for f in faults])),
                     "far": float(np.mean(normal > thr)), "threshold": thr}
    return out


def skab_seed(window: int, seed: int, shape_only: bool) -> dict[str, dict[str, float]]:
    """Per rule: SKAB's F1, false alarms and missed rows, pooled over the 34 files."""
    confusion = {name: Confusion() for name in RULES}
    for _, x, y in skab_files():
        marked = SLOW_CHANNELS[x.shape[1]] if shape_only else ()
        blocks, rows, _ = first_model(x[:SKAB_TRAIN_ROWS], window, seed, marked)
        s, labels = rows(x)[SKAB_TRAIN_ROWS:], y[SKAB_TRAIN_ROWS:]
        for name, rule in RULES.items():
            confusion[name].add(s > rule(blocks), labels)
    return {name: {"f1": c.f1, "far": c.far, "mar": c.mar} for name, c in confusion.items()}


def _task(data: str, window: int, seed: int) -> dict[str, dict[str, float]]:
    if data == "tep":
        return tep_seed(window, seed)
    return skab_seed(window, seed, shape_only=data == "skab_shape_only")


def run(data_sets: list[str], window: int, seeds: dict[str, int], workers: int
        ) -> dict[str, dict[str, dict[str, float | list[float]]]]:
    """{data set: {rule: means over seeds, with each seed's false alarms}}; SKAB runs twice,
    every channel by level (`skab`) and the thermal channels shape-only (`skab_shape_only`).
    `seeds`: per data set (tep, skab); a SKAB seed trains 170 models, a TEP seed 5."""
    sets = [d for d in ("tep", "skab", "skab_shape_only") if d.split("_")[0] in data_sets]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        futures = {d: [pool.submit(_task, d, window, s)
                          for s in range(seeds[d.split("_")[0]])] for d in sets}
        by_seed = {d: [f.result() for f in fs] for d, fs in futures.items()}
    out: dict[str, dict[str, dict[str, float | list[float]]]] = {}
    for d, runs in by_seed.items():
        out[d] = {}
        for name in RULES:
            keys = runs[0][name]
            row: dict[str, float | list[float]] = {
                k: float(np.mean([r[name][k] for r in runs])) for k in keys}
            row["far_by_seed"] = [r[name]["far"] for r in runs]
            out[d][name] = row
    return out


def report(result: dict[str, dict[str, dict]]) -> None:
    for d, rows in result.items():
        print(f"\n{d}:")
        if d == "tep":
            print("| rule | FDR mean | FAR % | FAR % per seed |\n|---|---|---|---|")
            for name, r in rows.items():
                print(f"| {name} | {r['fdr_mean']:.3f} | {100 * r['far']:.1f} | "
                      + " / ".join(f"{100 * f:.1f}" for f in r["far_by_seed"]) + " |")
        else:
            print("| rule | F1 | FAR % | MAR % |\n|---|---|---|---|")
            for name, r in rows.items():
                print(f"| {name} | {r['f1']:.3f} | {100 * r['far']:.1f} | {100 * r['mar']:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=6, help="TEP's seeds")
    p.add_argument("--skab-seeds", type=int, default=3)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--data", default="tep,skab", help="comma-separated: tep, skab")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    t0 = time.perf_counter()
    result = run(a.data.split(","), a.window, {"tep": a.seeds, "skab": a.skab_seeds},
                 a.workers)
    report(result)
    print(f"\n{time.perf_counter() - t0:.0f} s")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
