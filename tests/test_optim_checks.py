"""Learning rates are checked before any update: negative, NaN and infinite
rates are refused, schedules are called once on an array of steps, and schedule
settings are checked by name."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lossmap import optim, toy

F = toy.functions.get("rosenbrock")
START = [[-1.0, 1.0], [0.5, 0.5]]


def _scalar_only(t):
    return 1e-3 if t < 10 else 5e-4  # fails on an array: not vectorised


CASES = [
    (lambda: optim.gd(-0.1), ValueError, "`lr` must be > 0.0, got -0.1"),
    (lambda: optim.adam(float("nan")), ValueError, "`lr` must be finite, got nan"),
    (lambda: optim.sgd(float("inf")), ValueError, "`lr` must be finite, got inf"),
    (lambda: optim.constant(-1e-3), ValueError, "`lr` must be > 0.0, got -0.001"),
    (
        lambda: optim.run(F, optim.gd(_scalar_only), START, steps=20),
        TypeError,
        "`lr` must be a number or a schedule that takes an integer array of steps",
    ),
    (
        lambda: optim.run(F, optim.gd(lambda t: -1e-3 + 0 * t), START, steps=20),
        ValueError,
        "`lr` must be finite and >= 0 at every step, got -0.001 at step 0 (20 steps",
    ),
    (
        lambda: optim.run(
            F, optim.momentum(lambda t: np.where(t < 7, 1e-3, np.nan)), START, steps=9
        ),
        ValueError,
        "got nan at step 7 (2 steps in all)",
    ),
    (
        lambda: optim.run(F, optim.gd(lambda t: np.ones(3)), START, steps=20),
        TypeError,
        "returned shape (3,), expected (20,)",
    ),
    (
        lambda: optim.schedule("constant", 0.1, steps=10),
        TypeError,
        "schedule 'constant' takes no settings besides lr, got steps=10",
    ),
    (
        lambda: optim.schedule("cosine", 0.1, step=10),
        TypeError,
        "schedule 'cosine' takes ['steps', 'final'], got step=10",
    ),
    (
        lambda: optim.schedule("step_decay", 0.1, every=5),
        TypeError,
        "schedule 'step_decay' needs the settings ['every', 'factor'], "
        "got no ['factor']",
    ),
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_bad_learning_rate_is_refused(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call()


def test_vectorised_callable_runs_and_is_recorded():
    lr = lambda t: np.where(t < 10, 1e-3, 5e-4)  # noqa: E731
    traj = optim.run(F, optim.gd(lr), START, steps=30)
    same = optim.run(
        F, optim.gd(optim.step_decay(1e-3, every=10, factor=0.5)), START, steps=30
    )
    np.testing.assert_array_equal(traj.params[:11], same.params[:11])


def test_schedule_by_name_with_valid_settings():
    s = optim.schedule("cosine", 0.1, steps=10)
    assert s(0) == pytest.approx(0.1)
    assert s(10) == pytest.approx(0.0)
