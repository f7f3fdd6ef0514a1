"""Which window score ranks real faults best? The same trained models, scored several ways.

    python -m bench.scores [--seeds 3] [--window 32]

Separates ranking from calibration for issue #4: TEP's detection rate at an *oracle* threshold
(the 95th percentile of d00_te's own normal rows, which a plant never has) and SKAB's pooled AUROC
(each file's scores divided by its label-free threshold), beside the false-alarm rates at the
label-free threshold (peaks over threshold at 0.01 on held-out training windows, as in
bench.quality). Models: `train_student` with the service's defaults, window 32.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from bench.data import SKAB_TRAIN_ROWS, TEP_EXCLUDED, TEP_ONSET, skab_files, sliding, tep
from bench.metrics import auroc
from models import Detector, TrainConfig, calibrate, train_student

FAR_TARGET, ORACLE_FAR = 0.01, 0.05
# residuals r = x - mean and decoded std s, both [N, C, T] in the model's units: the regime
# scaler's, on the regime's principal axes since session 16 (a "channel" below is an axis)
Variant = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
VARIANTS: dict[str, Variant] = {
    "residual energy 0.5 z^2 (default)": lambda r, s: (0.5 * (r / s).square()).sum(dim=(1, 2)),
    "squared residual (no learned std)": lambda r, s: r.square().sum(dim=(1, 2)),
    "z^2, std floored at 1": lambda r, s: (0.5 * (r / s.clamp_min(1.0)).square()).sum(dim=(1, 2)),
    "absolute residual": lambda r, s: r.abs().sum(dim=(1, 2)),
    "worst channel's mean squared residual": lambda r, s: r.square().mean(dim=2).amax(dim=1),
}


@torch.inference_mode()
def variants(det: Detector, windows: np.ndarray) -> dict[str, np.ndarray]:
    xs, mask, _ = det.bank.standardise(windows)
    out = det.vae(xs, mask)
    r = (xs - out["mean"]) * mask
    return {k: f(r, out["std"]).numpy().astype(np.float64) for k, f in VARIANTS.items()}


def run_tep(seed: int, w: int) -> dict[str, tuple[float, float]]:
    """variant -> (detection rate at the oracle threshold, false-alarm rate when calibrated)."""
    res = train_student(sliding(tep("d00.dat"), w), cfg=TrainConfig(seed=seed))
    held, normal = variants(res.detector, res.heldout), variants(
        res.detector, sliding(tep("d00_te.dat"), w))
    faults = [variants(res.detector, sliding(tep(f"d{k:02d}_te.dat"), w))
              for k in range(1, 22) if k not in TEP_EXCLUDED]
    out = {}
    for key in VARIANTS:
        oracle = np.quantile(normal[key], 1 - ORACLE_FAR)
        fdr = np.mean([np.mean(f[key][TEP_ONSET - w + 1 :] > oracle) for f in faults])
        far = np.mean(normal[key] > calibrate(held[key], FAR_TARGET))
        out[key] = (float(fdr), float(far))
    return out


def run_skab(seed: int, w: int) -> dict[str, tuple[float, float]]:
    """variant -> (pooled AUROC of threshold-normalised scores, calibrated false-alarm rate)."""
    parts: dict[str, list[np.ndarray]] = {k: [] for k in VARIANTS}
    labels = []
    for _, x, y in skab_files():
        res = train_student(sliding(x[:SKAB_TRAIN_ROWS], w), cfg=TrainConfig(seed=seed))
        held, test = variants(res.detector, res.heldout), variants(res.detector, sliding(x, w))
        for key in VARIANTS:
            thr = calibrate(held[key], FAR_TARGET)
            parts[key].append(test[key][SKAB_TRAIN_ROWS - w + 1 :] / thr)
        labels.append(y[SKAB_TRAIN_ROWS:])
    y = np.concatenate(labels)
    return {k: (auroc((s := np.concatenate(v))[~y], s[y]), float(np.mean(s[~y] > 1.0)))
            for k, v in parts.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--window", type=int, default=32)
    a = p.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    tep_runs = [run_tep(s, a.window) for s in range(a.seeds)]
    skab_runs = [run_skab(s, a.window) for s in range(a.seeds)]
    print(f"\nscores of the same models, mean of {a.seeds} seeds, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| score | TEP FDR at oracle FAR 5 % | TEP FAR, calibrated | SKAB pooled AUROC | "
          "SKAB FAR, calibrated |\n|---|---|---|---|---|")
    for key in VARIANTS:
        t = np.mean([r[key] for r in tep_runs], axis=0)
        s = np.mean([r[key] for r in skab_runs], axis=0)
        print(f"| {key} | {t[0]:.3f} | {100 * t[1]:.1f} % | {s[0]:.3f} | {100 * s[1]:.1f} % |")


if __name__ == "__main__":
    main()
