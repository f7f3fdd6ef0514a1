"""The GPU check, for a session lent a CUDA machine (never part of CI or `make bench`).

    python -m bench.gpu [--device cuda] [--windows 10000]

1. The same model scores the same windows alike on the CPU and on the device.
2. A retrain of `--windows` fresh windows from a teacher (the service's defaults) is timed on
   both; the two students differ (other kernels, other rounding), so they are compared by what
   matters: AUROC on faulty windows and false alarms on normal ones at their own thresholds.
3. The device-trained student, saved and loaded on the CPU as a scoring replica does
   (LIFELINE_TRAIN_DEVICE trains on the GPU, scoring stays on the CPU), scores alike.
Exits 1 when the device is missing or a check fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np
import torch

from bench.metrics import auroc
from models import (
    Detector,
    TrainConfig,
    calibrate_detector,
    from_bytes,
    score,
    to_bytes,
    train_student,
)
from models.lifelong import frozen_copy
from models.synthetic import inject_fault, make_windows

C, T = 8, 64


def on(det: Detector, device: str) -> Detector:
    return replace(det, vae=frozen_copy(det.vae, device))


def max_relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1.0)))


def retrain(teacher: Detector, fresh: np.ndarray, device: str) -> tuple[Detector, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = train_student(fresh, on(teacher, device), TrainConfig(seed=0, device=device))
    det = calibrate_detector(res.detector, res.heldout, 0.01, teacher=teacher)
    return det, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda")
    p.add_argument("--windows", type=int, default=10_000)
    a = p.parse_args()
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here; run this on a lent GPU machine")
        return 1
    # The teacher's threshold is not what this checks: no out-of-fold calibration (K more
    # trainings of the device budget).
    first = train_student(make_windows(2000, C, T, 0, seed=0),
                          cfg=TrainConfig(seed=0, calibration_folds=0))
    teacher = calibrate_detector(first.detector, first.heldout, 0.01)
    normal = make_windows(2000, C, T, 0, seed=7)
    faulty = inject_fault(normal, channel=3, magnitude=4.0, regime=0)

    ref, dev = score(teacher, normal).score, score(on(teacher, a.device), normal).score
    rel = max_relative(dev, ref)
    same = rel < 1e-3
    print(f"same model, CPU vs {a.device}: max relative score difference {rel:.2e} "
          f"({'ok' if same else 'FAILED'}, tolerance 1e-3)")

    fresh = make_windows(a.windows, C, T, 0, seed=11)
    results, students = {}, {}
    for device in ("cpu", a.device):
        det, seconds = retrain(teacher, fresh, device)
        students[device] = det
        s_n, s_f = score(det, normal).score, score(det, faulty).score
        results[device] = (seconds, auroc(s_n, s_f), float(np.mean(s_n > det.threshold)))
        print(f"retrain of {a.windows} windows on {device}: {seconds:.1f} s, AUROC "
              f"{results[device][1]:.3f}, false alarms {results[device][2]:.3f}", flush=True)
    (cpu_s, cpu_auc, cpu_far), (dev_s, dev_auc, dev_far) = results["cpu"], results[a.device]
    alike = abs(cpu_auc - dev_auc) <= 0.01 and abs(cpu_far - dev_far) <= 0.01
    print(f"students alike ({'ok' if alike else 'FAILED'}: AUROC and false alarms within 0.01); "
          f"{a.device} retrain {cpu_s / dev_s:.1f}x the CPU's speed")
    trained = students[a.device]
    loaded = from_bytes(to_bytes(trained), device="cpu")
    rel_saved = max_relative(score(loaded, normal).score, score(trained, normal).score)
    saved = rel_saved < 1e-3 and loaded.threshold == trained.threshold
    print(f"{a.device}-trained student loaded on the CPU: max relative score difference "
          f"{rel_saved:.2e}, same threshold ({'ok' if saved else 'FAILED'})")
    return 0 if same and alike and saved else 1


if __name__ == "__main__":
    sys.exit(main())
