"""Lifelong benchmark: regimes learned in sequence, every strategy and ablation side by side.

    python -m bench.lifelong [--seeds 3] [--data synthetic,skab] [--reverse]
                             [--strategies lifelong,joint,...] [--json PATH]

Two sequences of four regimes, each regime declared new when it arrives:
- synthetic (models/synthetic.py): 4 regimes with their own set-points and dynamics; held-out
  normal windows per regime, and the same windows with a 4-sigma step fault on one channel.
- skab (../shared/data/skab): the test rig's four recording campaigns in the order they were
  recorded, which run at two operating points (pump flow ~125 vs ~32 L/min): the anomaly-free
  run, then valve1, other, valve2. Training = the first 70 % of the anomaly-free run, or the
  first 400 rows of every file of a campaign (the official protocol's training part); normal test
  windows = the rest of that run or those files' windows that contain no labelled anomaly;
  anomalous windows = those ending on a labelled anomaly row (the anomaly-free run has none, so
  it counts in far_old but not in auroc_old).
After every stage each strategy's model is judged on the earlier regimes (old) and the current
one (new): false-alarm rate at its label-free threshold, AUROC normal vs anomalous windows, and
the share of anomalous windows flagged at that threshold (det_old, det_new).
Means over seeds; the first table is after the last stage, the second far_old after each stage.
--reverse learns the same regimes in the opposite order (the design note asks for two orders);
--shape-only marks SKAB's Temperature and Thermocouple shape-only (the line option; synthetic
data have no drifting channel, so it leaves them as they are). --calibration-folds K gives
the first model of every strategy but joint the service's out-of-fold threshold (off by default
here: joint, retrained from scratch at every stage, does not get it, and forgetting is compared
at thresholds set by one rule).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import SKAB_THERMAL, SKAB_TRAIN_ROWS, skab_anomaly_free, skab_files, sliding
from bench.metrics import auroc
from bench.sequence import learn_sequence
from models import STRATEGIES, Detector, TrainConfig, score
from models.synthetic import inject_fault, make_windows

FAR = 0.01
SYN_C, SYN_T, SYN_TRAIN, SYN_REGIMES = 8, 32, 400, 4
# Held-out normal (and faulty) windows per synthetic regime. With 200, far_old pooled 1,800
# windows over 3 seeds: a rate under ~0.17 % read as 0 (rule of three), and the goal's "within
# 1.5x of joint" was a ratio of zeros. 2,000 resolve rates down to ~0.02 %; scoring them is cheap.
SYN_TEST = 2000
SKAB_WINDOW, SKAB_STRIDE = 32, 4  # every 4th window: neighbours overlap by 31 of 32 rows anyway
SKAB_CAMPAIGNS = ("anomaly-free", "valve1", "other", "valve2")


@dataclass(frozen=True)
class Regime:
    train: np.ndarray  # [n, T, C] normal windows
    normal: np.ndarray  # held-out normal windows
    anomalous: np.ndarray | None  # windows with a fault, None where the data have none


def synthetic(seed: int) -> list[Regime]:
    out = []
    for r in range(SYN_REGIMES):
        normal = make_windows(SYN_TEST, SYN_C, SYN_T, r, seed=5000 + 10 * seed + r)
        out.append(Regime(
            make_windows(SYN_TRAIN, SYN_C, SYN_T, r, seed=1000 * seed + r), normal,
            inject_fault(normal, channel=(r + seed) % SYN_C, magnitude=4.0, regime=r)))
    return out


def _every(x: np.ndarray) -> np.ndarray:
    return x[::SKAB_STRIDE]


def skab(seed: int) -> list[Regime]:
    """The same four campaigns for every seed (real data); seeds vary the training only."""
    del seed
    free = skab_anomaly_free()
    cut = int(0.7 * len(free))
    out = [Regime(_every(sliding(free[:cut], SKAB_WINDOW)),
                  _every(sliding(free[cut:], SKAB_WINDOW)), None)]
    files = skab_files()
    for campaign in SKAB_CAMPAIGNS[1:]:
        train, normal, anomalous = [], [], []
        for name, x, y in files:
            if not name.startswith(campaign + "/"):
                continue
            train.append(sliding(x[:SKAB_TRAIN_ROWS], SKAB_WINDOW))
            test = sliding(x[SKAB_TRAIN_ROWS - SKAB_WINDOW + 1 :], SKAB_WINDOW)
            labels = sliding(y[SKAB_TRAIN_ROWS - SKAB_WINDOW + 1 :, None], SKAB_WINDOW)[:, :, 0]
            normal.append(test[~labels.any(axis=1)])
            anomalous.append(test[labels[:, -1]])
        out.append(Regime(*(_every(np.concatenate(p)) for p in (train, normal, anomalous))))
    return out


SEQUENCES = {"synthetic": synthetic, "skab": skab}
SHAPE_ONLY = {"skab": SKAB_THERMAL}  # with --shape-only


def _judge(det: Detector, regime: Regime) -> tuple[float, float, float]:
    """False alarms, AUROC and the share of faulty windows flagged at the threshold (what a
    wider threshold costs, which the AUROC does not show)."""
    normal = score(det, regime.normal)
    far = float(np.mean(normal.anomalous()))
    if regime.anomalous is None:
        return far, float("nan"), float("nan")
    faulty = score(det, regime.anomalous)
    return (far, auroc(normal.score, faulty.score),
            float(np.mean(faulty.anomalous())))


def run(data: str, seeds: int, epochs: int, reverse: bool = False,
        strategies: tuple[str, ...] = STRATEGIES, shape_only: bool = False, folds: int = 0
        ) -> dict:
    rows: dict[str, list[dict]] = {s: [] for s in strategies}
    kept = 0
    for seed in range(seeds):
        regimes = SEQUENCES[data](seed)[:: -1 if reverse else 1]
        for strategy in strategies:
            stages = learn_sequence(strategy, [r.train for r in regimes],
                                    TrainConfig(max_epochs=epochs, seed=seed,
                                                calibration_folds=folds), FAR,
                                    SHAPE_ONLY.get(data, ()) if shape_only else ())
            by_stage = [[_judge(st.detector, r) for r in regimes[: i + 1]]
                        for i, st in enumerate(stages)]
            old, (far_new, auc_new, det_new) = by_stage[-1][:-1], by_stage[-1][-1]
            rows[strategy].append({
                "far_old": float(np.mean([o[0] for o in old])), "far_new": far_new,
                "auroc_old": float(np.nanmean([o[1] for o in old])), "auroc_new": auc_new,
                "det_old": float(np.nanmean([o[2] for o in old])), "det_new": det_new,
                "train_s": sum(s.train_s for s in stages),
                "far_old_by_stage": [float(np.mean([o[0] for o in j[:-1]])) for j in by_stage[1:]],
            })
            if strategy == "lifelong":
                kept = stages[-1].raw_windows_kept
            print(f"  {data} seed {seed} {strategy:16s} " + " ".join(
                f"{k}={v:.3f}" for k, v in rows[strategy][-1].items() if k != "far_old_by_stage"),
                flush=True)
    means = {s: {k: np.mean([r[k] for r in rs], axis=0).tolist() for k in rs[0]}
             for s, rs in rows.items()}
    return {"strategies": means, "raw_windows_kept": kept}


def print_tables(data: str, result: dict, seeds: int, seconds: float) -> None:
    print(f"\n{data}: 4 regimes in sequence, target FAR {FAR}, mean of {seeds} seeds, "
          f"{seconds:.0f} s\n")
    print("| strategy | far_old | far_new | auroc_old | auroc_new | det_old | det_new | train_s |")
    print("|---|---|---|---|---|---|---|---|")
    for s, m in result["strategies"].items():
        print(f"| {s} | {m['far_old']:.3f} | {m['far_new']:.3f} | {m['auroc_old']:.3f} | "
              f"{m['auroc_new']:.3f} | {m['det_old']:.3f} | {m['det_new']:.3f} | "
              f"{m['train_s']:.1f} |")
    print("\n| far_old after stage | 2 | 3 | 4 |\n|---|---|---|---|")
    for s, m in result["strategies"].items():
        print(f"| {s} | " + " | ".join(f"{v:.3f}" for v in m["far_old_by_stage"]) + " |")
    print(f"\nraw windows kept by lifelong at the end: {result['raw_windows_kept']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--data", default=",".join(SEQUENCES))
    p.add_argument("--reverse", action="store_true", help="learn the regimes in reverse order")
    p.add_argument("--strategies", default=",".join(STRATEGIES),
                   help="comma-separated subset of " + ",".join(STRATEGIES))
    p.add_argument("--shape-only", action="store_true",
                   help="SKAB's Temperature and Thermocouple as shape-only channels")
    p.add_argument("--calibration-folds", type=int, default=0, help=(
        "out-of-fold calibration of the first model (the service's default: "
        f"{TrainConfig().calibration_folds}); 0, the default here, thresholds every strategy "
        "by the same rule, since joint retrains from scratch and never gets it"))
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    strategies = tuple(a.strategies.split(","))
    if unknown := set(strategies) - set(STRATEGIES):
        p.error(f"unknown strategies {sorted(unknown)}; choose from {','.join(STRATEGIES)}")
    torch.set_num_threads(2)
    out: dict = {}
    for data in a.data.split(","):
        t0 = time.perf_counter()
        result = run(data, a.seeds, a.epochs, a.reverse, strategies, a.shape_only,
                     a.calibration_folds)
        key = data + ("_reversed" if a.reverse else "") + (
            "_shape_only" if a.shape_only and data in SHAPE_ONLY else "") + (
            f"_folds{a.calibration_folds}" if a.calibration_folds else "")
        print_tables(key.replace("_", " "), result, a.seeds, time.perf_counter() - t0)
        # the synthetic sequence's figures sit at the top level, the real data's under its key
        if key == "synthetic":
            out.update(result)
        else:
            out[key] = result
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
