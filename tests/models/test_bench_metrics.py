import numpy as np

from bench.metrics import auroc


def test_auroc_known_answers() -> None:
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 1.0
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 0.0
    assert auroc(np.array([1.0, 2.0]), np.array([2.0, 3.0])) == 0.875  # one tie counts half
