"""Learn regimes one after another with a strategy; shared by the retention test and benchmarks."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from models import Detector, TrainConfig, calibrate_detector, train_joint, train_student


@dataclass(frozen=True)
class Stage:
    detector: Detector
    train_s: float
    raw_windows_kept: int  # raw windows the strategy holds once this stage's model serves


def learn_sequence(
    strategy: str, regimes: Sequence[np.ndarray], cfg: TrainConfig, far: float,
    shape_only: tuple[int, ...] = (),
) -> list[Stage]:
    """One model per stage; `joint` retrains on everything seen so far (and keeps it all).
    `shape_only` channels are set by the first model, as a line's option is."""
    cfg = replace(cfg, strategy=strategy)  # type: ignore[arg-type]
    stages: list[Stage] = []
    teacher: Detector | None = None
    for i, fresh in enumerate(regimes):
        t0 = time.perf_counter()
        if strategy == "joint":
            res = train_joint(regimes[: i + 1], cfg, shape_only=shape_only)
            kept = sum(len(x) for x in regimes[: i + 1])
        else:
            res = train_student(fresh, teacher, cfg, new_regime=teacher is not None,
                                shape_only=shape_only)
            kept = 0  # the fresh buffer is emptied when this model becomes active
        det = calibrate_detector(res.detector, res.heldout, far, teacher=teacher,
                                 out_of_fold=res.out_of_fold)
        stages.append(Stage(det, time.perf_counter() - t0, kept))
        teacher = det
    return stages
