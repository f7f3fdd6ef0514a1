"""Wide lines: a first model and its scoring as the sensor count grows, with and without gaps.

    python -m bench.wide [--channels 8,52,128,256,512] [--windows 1000] [--json PATH]

The contract allows 512 channels. For each width C (windows of 64 steps, models/synthetic.py,
seed fixed), three lines: complete; one sensor dead throughout (all NaN, in training and in
scoring); 1 % of readings missing at random. Each runs in its own process, so that the peak
RSS is that line's: the service's training job (app.trainer.train_version with the service's
defaults, four calibration folds), then scoring batches of 256 windows with the same gaps
(windows/s, best of 5) and the false-alarm rate on 512 new normal windows.

Side by side, the imputation alone on one scoring batch (256 x 64 rows, one regime): the
definition, one C x C system per row with a gap (`dense`, models/preprocessing.py before
session 18), against `impute_conditional`; dense is skipped where its systems alone would
pass 2 GB.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

WINDOW, BATCH, FAR = 64, 256, 0.01
GAPS = ("complete", "dead sensor", "1 % missing")
_DENSE_LIMIT = 2 << 30


def with_gaps(x: np.ndarray, gaps: str, seed: int) -> np.ndarray:
    """x [N, T, C] with the line's gaps: channel 1 dead, or 1 % of readings missing."""
    x = x.copy()
    if gaps == "dead sensor":
        x[:, :, 1] = np.nan
    elif gaps == "1 % missing":
        x[np.random.default_rng(seed).random(x.shape) < 0.01] = np.nan
    return x


def line(channels: int, gaps: str, windows: int) -> dict[str, float]:
    """One line in this process: train as the service does, then score."""
    import models
    from app.trainer import train_version
    from models.synthetic import make_windows

    torch.set_num_threads(1)
    train = with_gaps(make_windows(windows, channels, WINDOW, seed=1), gaps, 1)
    t0 = time.perf_counter()
    out = train_version(train, None, new_regime=False, target_far=FAR, max_epochs=60, seed=0,
                        threads=None, calibration_folds=4)
    train_s = time.perf_counter() - t0
    det = models.from_bytes(out.artifact)
    batch = with_gaps(make_windows(BATCH, channels, WINDOW, seed=3), gaps, 3)
    models.score(det, batch)
    best = min(_timed(lambda: models.score(det, batch)) for _ in range(5))
    normal = models.score(det, with_gaps(make_windows(512, channels, WINDOW, seed=2), gaps, 2))
    axes = det.bank.axes
    rotated = 0 if axes is None else int((~np.isclose(axes[0], np.eye(channels))).any(1).sum())
    return {"train_s": train_s, "epochs": float(out.metrics["epochs"]), "wps": BATCH / best,
            "far": float(np.mean(normal.anomalous())),
            "rotated": float(rotated),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _timed(f: Any) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def dense(z: torch.Tensor, observed: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """The definition: one C x C system per row [M, C, C], P_mm z_m = -P_mo z_o, identity rows
    where observed (Cholesky: torch 2.13's batched LU hangs for C >= ~160 on two threads)."""
    miss = ~observed
    p = precision.expand(len(z), -1, -1)
    system = p * (miss[:, :, None] & miss[:, None, :]) + torch.diag_embed(observed.to(z.dtype))
    rhs = -(p @ z.unsqueeze(2)) * miss[:, :, None]
    return z + torch.cholesky_solve(rhs, torch.linalg.cholesky(system)).squeeze(2)


def imputation(channels: int, gaps: str) -> dict[str, float | None]:
    """ms per scoring batch's imputation, dense and as the service does it."""
    from models.imputation import impute_conditional
    from models.preprocessing import RegimeBank
    from models.synthetic import make_windows

    torch.set_num_threads(1)
    bank = RegimeBank.fit(make_windows(400, channels, WINDOW, seed=1))
    z, seen, regime = bank.standardise_sensors(with_gaps(
        make_windows(BATCH, channels, WINDOW, seed=3), gaps, 3))
    gap = (seen < 1).any(dim=2)
    rows, observed = z[gap], seen[gap] > 0  # [M, C]: the steps with a gap
    precision = bank._precision_tensor
    zero = torch.zeros(len(rows), dtype=torch.long)
    new = min(_timed(lambda: impute_conditional(rows, observed, precision, zero))
              for _ in range(3))
    size = 2 * len(rows) * channels**2 * 4  # the systems and their factor
    old = None if size > _DENSE_LIMIT else min(
        _timed(lambda: dense(rows, observed, precision[0])) for _ in range(3))
    return {"rows": float(len(rows)), "dense_ms": None if old is None else 1e3 * old,
            "dense_mb": size / 2**20, "new_ms": 1e3 * new}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--channels", default="8,52,128,256,512")
    p.add_argument("--windows", type=int, default=1000)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    widths = [int(c) for c in a.channels.split(",")]
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    out: dict[str, Any] = {"imputation": {}, "lines": {}}
    with ctx.Pool(1, maxtasksperchild=1) as pool:  # one process per run: its own peak RSS
        for c in widths:
            for g in GAPS[1:]:
                out["imputation"][f"{c}/{g}"] = pool.apply(imputation, (c, g))
        for c in widths:
            for g in GAPS:
                out["lines"][f"{c}/{g}"] = pool.apply(line, (c, g, a.windows))
                print(f"C={c} {g}: {out['lines'][f'{c}/{g}']}", flush=True)
    print(f"\nWide lines ({a.windows} windows of {WINDOW} steps to train, one thread; "
          f"{time.perf_counter() - t0:.0f} s)\n")
    print("| C | gaps | first model: train s (epochs) | peak RSS MB | channels rotated | "
          f"windows/s at batch {BATCH} | false alarms |\n|---|---|---|---|---|---|---|")
    for key, m in out["lines"].items():
        c, g = key.split("/")
        print(f"| {c} | {g} | {m['train_s']:.1f} ({m['epochs']:.0f}) | {m['peak_rss_mb']:.0f} | "
              f"{m['rotated']:.0f} | {m['wps']:,.0f} | {100 * m['far']:.1f} % |")
    print(f"\nImputation of one batch ({BATCH} x {WINDOW} rows): dense C x C systems vs "
          "impute_conditional\n")
    print("| C | gaps | rows with a gap | dense: systems MB, ms | new: ms | dense / new |\n"
          "|---|---|---|---|---|---|")
    for key, m in out["imputation"].items():
        c, g = key.split("/")
        old = "skipped" if m["dense_ms"] is None else f"{m['dense_ms']:,.0f}"
        ratio = "" if m["dense_ms"] is None else f"{m['dense_ms'] / m['new_ms']:,.0f}x"
        print(f"| {c} | {g} | {m['rows']:,.0f} | {m['dense_mb']:,.0f}, {old} | "
              f"{m['new_ms']:,.1f} | {ratio} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
