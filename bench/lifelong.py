"""Lifelong benchmark: regimes learned in sequence, every strategy and ablation side by side.

    python -m bench.lifelong [--seeds 3] [--json PATH]

Synthetic plant (models/synthetic.py): 4 regimes with their own set-points and dynamics, learned
one after another. After the last stage each strategy's model is judged on held-out normal
windows (false-alarm rate at its label-free threshold) and on the same windows with a step fault
on one channel (AUROC), for the earlier regimes (old) and the last one (new). Means over seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.metrics import auroc
from bench.sequence import learn_sequence
from models import STRATEGIES, Detector, TrainConfig, score
from models.synthetic import inject_fault, make_windows

C, T, N_TRAIN, N_TEST, REGIMES, FAR = 8, 32, 400, 200, 4, 0.01


def _judge(det: Detector, regime: int, seed: int) -> tuple[float, float]:
    normal = make_windows(N_TEST, C, T, regime, seed=5000 + 10 * seed + regime)
    faulty = inject_fault(normal, channel=(regime + seed) % C, magnitude=4.0, regime=regime)
    s_n, s_f = score(det, normal).score, score(det, faulty).score
    return float(np.mean(s_n > det.threshold)), auroc(s_n, s_f)


def run(seeds: int, epochs: int) -> dict[str, dict[str, float]]:
    table: dict[str, list[dict[str, float]]] = {s: [] for s in STRATEGIES}
    kept = 0
    for seed in range(seeds):
        train = [make_windows(N_TRAIN, C, T, r, seed=1000 * seed + r) for r in range(REGIMES)]
        for strategy in STRATEGIES:
            stages = learn_sequence(strategy, train, TrainConfig(max_epochs=epochs, seed=seed),
                                    FAR)
            last = stages[-1].detector
            old = [_judge(last, r, seed) for r in range(REGIMES - 1)]
            far_new, auc_new = _judge(last, REGIMES - 1, seed)
            table[strategy].append({
                "far_old": float(np.mean([o[0] for o in old])), "far_new": far_new,
                "auroc_old": float(np.mean([o[1] for o in old])), "auroc_new": auc_new,
                "train_s": sum(s.train_s for s in stages)})
            if strategy == "lifelong":
                kept = stages[-1].raw_windows_kept
            print(f"  seed {seed} {strategy:16s} " + " ".join(
                f"{k}={v:.3f}" for k, v in table[strategy][-1].items()), flush=True)
    means = {s: {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
             for s, rows in table.items()}
    means["_raw_windows_kept"] = {"lifelong": float(kept)}
    return means


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    means = run(a.seeds, a.epochs)
    kept = int(means.pop("_raw_windows_kept")["lifelong"])
    print(f"\nsynthetic, {REGIMES} regimes, C={C} T={T}, {N_TRAIN} windows/regime, "
          f"target FAR {FAR}, mean of {a.seeds} seeds, {time.perf_counter() - t0:.0f} s\n")
    print("| strategy | far_old | far_new | auroc_old | auroc_new | train_s |")
    print("|---|---|---|---|---|---|")
    for s, m in means.items():
        print(f"| {s} | {m['far_old']:.3f} | {m['far_new']:.3f} | {m['auroc_old']:.3f} | "
              f"{m['auroc_new']:.3f} | {m['train_s']:.1f} |")
    print(f"\nraw windows kept by lifelong at the end: {kept}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps({"strategies": means, "raw_windows_kept": kept}, indent=2))


if __name__ == "__main__":
    main()
