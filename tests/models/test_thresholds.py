"""bench.thresholds: its rules read the same blocks the service calibrates on."""

import numpy as np

from bench.thresholds import RULES, Blocks, first_model
from models import TrainConfig, calibrate


def _rows(n: int, seed: int) -> np.ndarray:
    """Three oscillating channels with noise: [n, 3] rows."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return (np.sin(t / np.array([5.0, 9.0, 13.0])) + 0.1 * rng.standard_normal((n, 3))).astype(
        np.float32)


def test_the_default_rule_is_the_sums_threshold_the_service_calibrates() -> None:
    cfg = TrainConfig(seed=0, max_epochs=4)  # the threshold's path, not a converged model
    blocks, rows, served = first_model(_rows(400, 0), window=16, seed=0, cfg=cfg)
    assert len(blocks.folds) == 4
    # every training window scored once out of fold, the held-out block by the served model
    assert sum(len(f) for f in blocks.folds) == len(blocks.insample) == 400 - 16 + 1
    assert RULES["default"](blocks) == served
    scored = rows(_rows(100, 1))
    assert np.isnan(scored[:15]).all() and np.isfinite(scored[15:]).all()


def test_rules_on_blocks_whose_last_one_drifted() -> None:
    rng = np.random.default_rng(0)
    calm = [rng.exponential(1.0, 120) for _ in range(4)]
    b = Blocks(held=calm[0], folds=[*calm[1:], 3.0 + rng.exponential(1.0, 120)],
               insample=0.5 * rng.exponential(1.0, 480))
    default = RULES["default"](b)
    # the drifted block alone sets both the forward-step and the highest-block thresholds
    assert RULES["last block"](b) == RULES["highest block"](b) == calibrate(b.folds[-1], 0.01)
    assert RULES["highest block"](b) > default > calibrate(np.concatenate(calm), 0.01)
    # in-sample scores below the unseen ones: the gap taken once more raises the threshold
    assert RULES["gap once more"](b) > default
    assert RULES["target 0.1 %"](b) > default
    assert RULES["default x 1.5"](b) == 1.5 * default
