"""The product's claim, as a test that can fail: lifelong keeps old regimes, fine-tuning forgets."""

import numpy as np
import pytest

from bench.sequence import learn_sequence
from models import TrainConfig, score
from models.synthetic import make_windows

C, T, FAR = 4, 32, 0.01
CFG = TrainConfig(max_epochs=25, seed=0)


def _far_on(det, x: np.ndarray) -> float:
    return float(np.mean(score(det, x).score > det.threshold))


@pytest.fixture(scope="module")
def outcome() -> dict[str, float]:
    train = [make_windows(400, C, T, r, seed=100 + r) for r in range(3)]
    held_old = [make_windows(300, C, T, r, seed=200 + r) for r in range(2)]
    far = {}
    for strategy in ("lifelong", "finetune", "joint"):
        last = learn_sequence(strategy, train, CFG, FAR)[-1].detector
        far[strategy] = float(np.mean([_far_on(last, x) for x in held_old]))
    return far


def test_lifelong_keeps_old_regimes_close_to_joint(outcome: dict[str, float]) -> None:
    assert outcome["lifelong"] <= max(2.0 * outcome["joint"], outcome["joint"] + 0.03), outcome


def test_finetune_forgets_old_regimes(outcome: dict[str, float]) -> None:
    assert outcome["finetune"] >= outcome["lifelong"] + 0.1, outcome
