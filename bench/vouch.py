"""A line whose first model saw too little: does retraining learn the slow drift it flags?

    python -m bench.vouch [--seeds 3] [--shape-only]

SKAB's anomaly-free run (about 2.6 hours at 1 Hz, the rig warming up): the first model trains on
its first 10 %, four retrains follow on the next four 15 % chunks, the last 30 % is held out.
Before each retrain the chunk's windows are offered to the fresh buffer as the service does:
`filtered` keeps only those the serving model finds normal (the default), `vouched` keeps all
of them (`learn_flagged_until` set by an operator), `vouched, new regime` also declares each
chunk a new regime. Printed, after each step: false alarms on the next 15 % of the run and on
the held-out end, and the windows each model trained on. The service's code path: train_student with
the serving model as teacher -> calibrate_detector -> score. --shape-only marks the rig's
Temperature and Thermocouple shape-only, as a line's `shape_only_channels` would.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from bench.data import SKAB_THERMAL, skab_anomaly_free, sliding
from models import Detector, TrainConfig, calibrate_detector, score, train_student

FAR, WINDOW, STRIDE = 0.01, 32, 4
# first model | four retrain chunks | the next 15 % after the last one | the held-out end
EDGES, TEST = (0.0, 0.10, 0.25, 0.40, 0.55, 0.70, 0.85), 0.70
MIN_WINDOWS = 100  # a retrain needs this many buffered windows, as a line's min_windows


def _windows(rows: np.ndarray) -> np.ndarray:
    return sliding(rows, WINDOW)[::STRIDE]


def _far(det: Detector, normal: np.ndarray) -> float:
    return float(np.mean(score(det, normal).anomalous()))


def run(policy: str, seed: int, rows: np.ndarray, shape_only: tuple[int, ...] = ()
        ) -> tuple[list[float], list[float], list[int]]:
    """After the first model and each retrain: false alarms on the next 15 % of the run and on
    the held-out end, and the windows that model trained on."""
    n = len(rows)
    cfg = TrainConfig(seed=seed, max_epochs=25)
    part = [_windows(rows[int(a * n) : int(b * n)]) for a, b in itertools.pairwise(EDGES)]
    res = train_student(part[0], cfg=cfg, shape_only=shape_only)
    det = calibrate_detector(res.detector, res.heldout, FAR, out_of_fold=res.out_of_fold)
    test = _windows(rows[int(TEST * n) :])
    nxt, end, used = [_far(det, part[1])], [_far(det, test)], [len(part[0])]
    for k in range(1, len(part) - 1):
        chunk = part[k]
        if policy == "filtered":
            chunk = chunk[~score(det, chunk).anomalous()]
        if len(chunk) >= MIN_WINDOWS:
            res = train_student(chunk, det, cfg, new_regime=policy == "vouched, new regime")
            det = calibrate_detector(res.detector, res.heldout, FAR, teacher=det,
                                     out_of_fold=res.out_of_fold)
        nxt.append(_far(det, part[k + 1]))
        end.append(_far(det, test))
        used.append(len(chunk))
    return nxt, end, used


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--shape-only", action="store_true",
                   help="Temperature and Thermocouple as shape-only channels")
    a = p.parse_args()
    shape_only = SKAB_THERMAL if a.shape_only else ()
    torch.set_num_threads(2)
    rows, t0 = skab_anomaly_free(), time.perf_counter()
    print("| policy | after model 1 | retrain 1 | 2 | 3 | 4 | windows per step |")
    print("|---|---|---|---|---|---|---|")
    for policy in ("filtered", "vouched", "vouched, new regime"):
        runs = [run(policy, s, rows, shape_only) for s in range(a.seeds)]
        used = " / ".join(f"{u:.0f}" for u in np.mean([r[2] for r in runs], axis=0))
        for i, what in enumerate(("next 15 %", "held-out end")):
            fars = np.mean([r[i] for r in runs], axis=0)
            print(f"| {policy}, {what} | " + " | ".join(f"{f:.3f}" for f in fars)
                  + f" | {used} |", flush=True)
    print(f"\nmean of {a.seeds} seeds, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
