"""The product's claim, as tests that can fail, on means over 3 seeds: after three regimes
learned in sequence, what does each strategy's last model do on held-out normal windows of the
earlier regimes?"""

import numpy as np
import pytest

from bench.sequence import learn_sequence
from models import Detector, TrainConfig, score
from models.synthetic import make_windows

C, T, FAR = 4, 32, 0.01
SEEDS = (0, 1, 2)


def _far_on(det: Detector, x: np.ndarray) -> float:
    return float(np.mean(score(det, x).score > det.threshold))


@pytest.fixture(scope="module")
def far_old() -> dict[str, float]:
    train = [make_windows(400, C, T, r, seed=100 + r) for r in range(3)]
    held_old = [make_windows(300, C, T, r, seed=200 + r) for r in range(2)]
    out = {}
    for strategy in ("lifelong", "finetune", "joint"):
        per_seed = []
        for seed in SEEDS:
            last = learn_sequence(strategy, train, TrainConfig(max_epochs=25, seed=seed),
                                  FAR)[-1].detector
            per_seed.append(np.mean([_far_on(last, x) for x in held_old]))
        out[strategy] = float(np.mean(per_seed))
    return out


def test_finetune_forgets_and_lifelong_retains(far_old: dict[str, float]) -> None:
    assert far_old["finetune"] >= 0.5, far_old
    assert far_old["lifelong"] <= far_old["finetune"] / 3, far_old


@pytest.mark.xfail(strict=True, reason=(
    "known gap (issue 2): the first regime's false alarms creep up over stages and vary by "
    "seed (after 3 stages 0.09-0.28 per seed here, mean 0.09 vs joint 0.002; bench.lifelong's "
    "4-regime C=8 setting gave 0.004 vs 0.000). Strict: a fix makes this fail until unmarked"))
def test_lifelong_close_to_joint(far_old: dict[str, float]) -> None:
    assert far_old["lifelong"] <= max(1.5 * far_old["joint"], far_old["joint"] + 0.02), far_old
