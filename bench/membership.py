"""What a model keeps of the raw windows it trained on, once they are deleted.

    python -m bench.membership [--seeds 3] [--json PATH]

The fresh buffer's windows are deleted when the model they trained becomes active; the model
stays (the newest LIFELINE_KEEP_VERSIONS versions keep theirs). A plant's data-protection
officer asks what it still tells of those windows. Each run is cut into stretches, the
even ones train the line's first model and the odd ones are withheld (no row shared), then
two retrains follow on later data with the serving model as teacher, as the service trains:

- membership: the AUC with which a model's score tells a trained-on window from a withheld
  one of the same run (trained-on windows score lower); 0.5 is no trace. Measured under the
  first model and under the next two, which saw the first stretch only through replay.
- copies: how near the first model's replay comes to a window: the nearest of REPLAY drawn
  windows (the decoder's means, replay without its noise: the closest the model's own
  generation comes), as a share of the window's own size on the model's axes, for trained-on
  and withheld windows. A replayed copy would read near 0, and lower for trained-on windows.

The synthetic line's windows are drawn independently, so no stretch can be recognised: its
membership is the control.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.data import skab_anomaly_free, sliding, tep
from bench.metrics import auroc
from models import Detector, TrainConfig, calibrate_detector, score, train_student
from models.replay import Replayer
from models.synthetic import make_windows

FAR, WINDOW, STRETCHES, REPLAY = 0.01, 32, 8, 5000


def interleaved(rows: np.ndarray, stretches: int = STRETCHES) -> tuple[np.ndarray, np.ndarray]:
    """Windows [n, WINDOW, C] of the even stretches and of the odd ones; no window crosses a
    stretch's edge, so the two share no row."""
    edges = np.linspace(0, len(rows), stretches + 1).astype(int)
    parts = [sliding(rows[a:b], WINDOW) for a, b in itertools.pairwise(edges)]
    return np.concatenate(parts[::2]), np.concatenate(parts[1::2])


def membership(det: Detector, trained: np.ndarray, withheld: np.ndarray) -> float:
    return auroc(-score(det, withheld).score, -score(det, trained).score)


def nearest_replay(det: Detector, windows: np.ndarray, replay: torch.Tensor) -> float:
    """Median over `windows` of the nearest replay window's distance, as a share of the
    window's norm, both on the model's axes."""
    xs = det.bank.standardise(windows)[0].flatten(1)
    near = torch.cdist(xs, replay.flatten(1)).min(dim=1).values
    return float((near / xs.norm(dim=1).clamp_min(1e-6)).median())


def first_model(trained: np.ndarray, withheld: np.ndarray, cfg: TrainConfig,
                replay: int = REPLAY) -> tuple[Detector, dict[str, float]]:
    """A line's first model on `trained`, with its membership and nearest-replay figures."""
    res = train_student(trained, cfg=cfg)
    det = calibrate_detector(res.detector, res.heldout, FAR, out_of_fold=res.out_of_fold)
    generator = torch.Generator().manual_seed(cfg.seed)
    drawn = Replayer(det.vae, det.replay_threshold, noise=False).draw(replay, generator)
    return det, {"first": membership(det, trained, withheld),
                 "copy_trained": nearest_replay(det, trained, drawn),
                 "copy_withheld": nearest_replay(det, withheld, drawn)}


def run(trained: np.ndarray, withheld: np.ndarray, later: list[np.ndarray], seed: int
        ) -> dict[str, float]:
    cfg = TrainConfig(seed=seed)
    det, out = first_model(trained, withheld, cfg)
    for key, fresh in zip(("next", "after_two"), later, strict=True):
        res = train_student(fresh, det, cfg)
        det = calibrate_detector(res.detector, res.heldout, FAR, teacher=det)
        out[key] = membership(det, trained, withheld)
    return out


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """(trained, withheld, the two retrains' windows) per line."""
    skab = skab_anomaly_free()
    half = len(skab) // 2
    d00 = tep("d00.dat")
    syn = make_windows(1200, 4, WINDOW, 0, seed=7)
    return {
        "TEP (d00_te, then d00's halves)": (*interleaved(tep("d00_te.dat")),
                                            [sliding(d00[:250], WINDOW),
                                             sliding(d00[250:], WINDOW)]),
        "SKAB anomaly-free (first half, then the second's halves)": (
            *interleaved(skab[:half]), [sliding(skab[half : half + half // 2], WINDOW),
                                        sliding(skab[half + half // 2 :], WINDOW)]),
        "synthetic (independent windows)": (syn[:800:2], syn[1:800:2],
                                            [make_windows(400, 4, WINDOW, 0, seed=8),
                                             make_windows(400, 4, WINDOW, 0, seed=9)]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    torch.set_num_threads(2)
    t0, report = time.perf_counter(), {}
    print("| line | windows trained / withheld | membership AUC: first model / next / after "
          "two | nearest replay, trained / withheld |\n|---|---|---|---|")
    for name, (trained, withheld, later) in datasets().items():
        runs = [run(trained, withheld, later, s) for s in range(a.seeds)]
        m = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        report[name] = {"mean": m, "seeds": runs}
        print(f"| {name} | {len(trained)} / {len(withheld)} | {m['first']:.3f} / "
              f"{m['next']:.3f} / {m['after_two']:.3f} | {m['copy_trained']:.2f} / "
              f"{m['copy_withheld']:.2f} |", flush=True)
    print(f"\n{a.seeds} seeds, means; {time.perf_counter() - t0:.0f} s")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
