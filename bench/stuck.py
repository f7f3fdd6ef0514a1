"""Stuck sensors: caught by the reconstruction score alone, and by the service's check.

    python -m bench.stuck [--seeds 3] [--json PATH]

Normal test windows get one channel held at the window's first reading (models.synthetic.
hold_channel: a frozen sensor, or a PLC repeating the last good value), each channel in turn.
A service's first model (train_student -> calibrate_detector, the defaults) judges them, by its
score alone (score > threshold) and as the service answers (the score, or a stuck channel:
models/stuck.py). TEP: trained on d00.dat, every 4th window of d00_te.dat; synthetic: a line of
8 channels x 32 steps (models/synthetic.py), 600 windows to train, 1,000 to test. SKAB: the check
alone, which needs no model, per labelled file on the official split (first 400 rows train):
its alarms on the test parts' normal rows, and its catches with each channel held there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.data import SKAB_TRAIN_ROWS, skab_files, sliding, tep
from models import RegimeBank, TrainConfig, calibrate_detector, score, train_student
from models.synthetic import hold_channel, make_windows

FAR, WINDOW = 0.01, 32


def judged(train: np.ndarray, test: np.ndarray, seed: int) -> dict[str, float]:
    """A first model on windows `train`; the share of `test` windows flagged as they are and,
    averaged over channels, with one channel held: by the score alone and by the service."""
    res = train_student(train, cfg=TrainConfig(seed=seed))
    det = calibrate_detector(res.detector, res.heldout, FAR, out_of_fold=res.out_of_fold)
    normal = score(det, test)
    held = [score(det, hold_channel(test, c)) for c in range(test.shape[2])]
    return {"normal_score": float(np.mean(normal.score > det.threshold)),
            "normal_service": float(np.mean(normal.anomalous())),
            "held_score": float(np.mean([np.mean(s.score > det.threshold) for s in held])),
            "held_service": float(np.mean([np.mean(s.anomalous())
                                           for s in held])),
            "held_score_worst_channel": float(min(np.mean(s.score > det.threshold)
                                                  for s in held))}


def skab_check() -> dict[str, float]:
    """The check alone on SKAB's test parts: alarms on normal rows' windows, and held
    channels caught (all windows of the test parts, every channel in turn)."""
    false, normal, caught, held = 0, 0, 0, 0
    for _, x, y in skab_files():
        w = sliding(x, WINDOW)
        bank = RegimeBank.fit(w[: SKAB_TRAIN_ROWS - WINDOW + 1])
        test, labels = w[SKAB_TRAIN_ROWS - WINDOW + 1 :], y[SKAB_TRAIN_ROWS:]
        flagged = _flags(bank, test).any(axis=1)
        false, normal = false + int(np.sum(flagged & ~labels)), normal + int(np.sum(~labels))
        for c in range(x.shape[1]):
            caught += int(_flags(bank, hold_channel(test, c))[:, c].sum())
            held += len(test)
    return {"normal_service": false / normal, "held_service": caught / held}


def _flags(bank: RegimeBank, windows: np.ndarray) -> np.ndarray:
    """[N, C]: the channels the service calls stuck in each window (models/stuck.py)."""
    z, mask, regime = bank.standardise_sensors(windows)
    return bank.stuck(z.transpose(1, 2), mask.transpose(1, 2), regime).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    sets = {"TEP": (sliding(tep("d00.dat"), WINDOW), sliding(tep("d00_te.dat"), WINDOW)[::4]),
            "synthetic": (make_windows(600, 8, WINDOW, 0, seed=100),
                          make_windows(1000, 8, WINDOW, 0, seed=101))}
    out: dict[str, dict[str, float]] = {}
    for name, (train, test) in sets.items():
        runs = [judged(train, test, s) for s in range(a.seeds)]
        out[name] = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    out["SKAB (check alone)"] = skab_check()
    print(f"\nStuck sensors ({a.seeds} seeds, {time.perf_counter() - t0:.0f} s): windows "
          "flagged, normal and with one channel held (mean over channels; worst channel)\n")
    print("| data | normal: score | normal: service | held: score | held: service | "
          "held: score, worst channel |\n|---|---|---|---|---|---|")
    for name, m in out.items():
        cells = [m.get(k) for k in ("normal_score", "normal_service", "held_score",
                                    "held_service", "held_score_worst_channel")]
        print(f"| {name} | " + " | ".join("" if v is None else f"{100 * v:.1f} %"
                                          for v in cells) + " |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
