"""Warm-started against from-scratch students, stage by stage: the evidence behind the
collapse-triggered cold restart (TrainResult.collapsed, TrainConfig.cold_margin).

    python -m bench.collapse [--data synthetic] [--seeds 5]

Per stage of bench.lifelong's sequences, both students are trained on the same fresh windows
and replay (the warm one is the next stage's teacher); printed: each one's validation loss and
latent KL on held-out fresh and on replayed windows, and the new regime's AUROC.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch

from bench.lifelong import FAR, SEQUENCES, _judge
from models import Detector, TrainConfig, calibrate_detector, train_student
from models.lifelong import TrainResult


def _row(res: TrainResult, det: Detector, regime: object) -> str:
    b = res.best
    ratio = b["val_kl_fresh"] / b["val_kl_replay"]
    _, auc, _ = _judge(det, regime)  # type: ignore[arg-type]
    return f"{b['val_loss']:.1f} | {ratio:.2f} | {auc:.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", default="synthetic", choices=sorted(SEQUENCES))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=25)
    a = p.parse_args()
    torch.set_num_threads(2)
    print("| seed | stage | warm val loss | warm KL fresh/replay | warm AUROC new | "
          "scratch val loss | scratch KL ratio | scratch AUROC new | per element |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seed in range(a.seeds):
        regimes = SEQUENCES[a.data](seed)
        # calibration_folds=0: the rule was measured with held-out thresholds (session 6).
        cfg = TrainConfig(max_epochs=a.epochs, seed=seed, cold_margin=None, calibration_folds=0)
        first = train_student(regimes[0].train, None, cfg)
        teacher = calibrate_detector(first.detector, first.heldout, FAR)
        for stage, regime in enumerate(regimes[1:], start=2):
            out = {}
            for name, c in (("warm", cfg), ("scratch", replace(cfg, strategy="no_warm_start"))):
                res = train_student(regime.train, teacher, c, new_regime=True)
                out[name] = (res, calibrate_detector(res.detector, res.heldout, FAR,
                                                     teacher=teacher))
            (w, wd), (s, sd) = out["warm"], out["scratch"]
            gap = (w.best_val_loss - s.best_val_loss) / np.prod(regime.train.shape[1:])
            print(f"| {seed} | {stage} | {_row(w, wd, regime)} | {_row(s, sd, regime)} | "
                  f"{gap:+.2f} |", flush=True)
            teacher = wd


if __name__ == "__main__":
    main()
