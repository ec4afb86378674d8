"""The optax training-loop example: the sep-CMA-ES loop learns the wine classifier."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import optax_training_loop as example  # noqa: E402

from cmajax import transforms  # noqa: E402


def test_cma_loop_reaches_95_percent_test_accuracy():
    """CI's shortened run: 200 steps of sep-CMA-ES through the optax loop, ≥ 95% test accuracy
    at the end and on average over the last 50 steps (chance is 40%)."""
    losses, accuracies, _ = example.train(transforms.sep_cma_es(0.1, seed=0), False, 200)
    assert accuracies[-1] >= 0.95, accuracies[-10:]
    assert accuracies[-50:].mean() >= 0.95, accuracies[-50:]
    assert losses[-20:].mean() < 0.5 * losses[:5].mean()
