"""The product's claim, as tests that can fail, on means over 3 seeds: while three regimes are
learned in sequence, what does each strategy's model do on held-out normal windows of the
regimes before the current one? Measured after every stage, since every model serves."""

import numpy as np
import pytest

from bench.sequence import learn_sequence
from models import Detector, TrainConfig, score
from models.synthetic import make_windows
from tests.spread import spread

C, T, N, FAR = 4, 16, 300, 0.01
SEEDS = (0, 1, 2)


def _far_on(det: Detector, x: np.ndarray) -> float:
    return float(np.mean(score(det, x).score > det.threshold))


def _far_old(strategy: str, seed: int) -> list[float]:
    """[false-alarm rate on the earlier regimes after stage 2, after stage 3]."""
    train = [make_windows(N, C, T, r, seed=100 + r) for r in range(3)]
    held = [make_windows(300, C, T, r, seed=200 + r) for r in range(2)]
    # Every strategy's thresholds by the same rule: the out-of-fold calibration of a line's
    # first model (which joint, retrained from scratch at each stage, never gets) is off.
    stages = learn_sequence(strategy, train, TrainConfig(
        max_epochs=20, seed=seed, calibration_folds=0), FAR)
    return [float(np.mean([_far_on(st.detector, x) for x in held[:i]]))
            for i, st in enumerate(stages) if i > 0]


@pytest.fixture(scope="module")
def far_old() -> dict[str, list[float]]:
    """strategy -> its _far_old, the mean over SEEDS."""
    strategies = ("lifelong", "finetune", "joint")
    runs = spread(_far_old, [(s, seed) for s in strategies for seed in SEEDS])
    return {s: np.mean(runs[i * len(SEEDS) : (i + 1) * len(SEEDS)], axis=0).tolist()
            for i, s in enumerate(strategies)}


def test_finetune_forgets(far_old: dict[str, list[float]]) -> None:
    assert far_old["finetune"][-1] >= 0.5, far_old


@pytest.mark.parametrize("stage", [0, 1], ids=["after stage 2", "after stage 3"])
def test_lifelong_keeps_old_regimes_close_to_joint(
    far_old: dict[str, list[float]], stage: int
) -> None:
    lifelong, joint = far_old["lifelong"][stage], far_old["joint"][stage]
    assert lifelong <= max(1.5 * joint, joint + 0.02), far_old
    assert lifelong <= far_old["finetune"][stage] / 10, far_old
