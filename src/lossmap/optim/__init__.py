"""Optimizers, learning-rate schedules and optimizer runs.

Optimizers are data: an :class:`Optimizer` is a pair of pure functions
``init(params) -> state`` and ``update(grads, state, params) -> (updates,
state)``; :func:`run` drives one over a landscape from one or many starts at
once and returns a :class:`Trajectory`.

>>> from lossmap import optim
>>> from lossmap.toy import functions
>>> rosen = functions.get("rosenbrock")
>>> t = optim.run(rosen, optim.adam(0.05), [[-1.5, 2.0], [0.0, -0.5]], steps=300)
>>> t.params.shape[1:]
(2, 2)
"""

from lossmap.optim._compare import lr_sweep, race
from lossmap.optim._optimizers import (
    DEFAULT_LR,
    AdagradState,
    AdamState,
    GDState,
    Optimizer,
    RMSpropState,
    SGDState,
    adagrad,
    adam,
    adamw,
    apply_updates,
    available,
    gd,
    get,
    momentum,
    nesterov,
    rmsprop,
    sgd,
)
from lossmap.optim._run import CONVERGED, DIVERGED, MAX_STEPS, Trajectory, run
from lossmap.optim._schedules import (
    Schedule,
    constant,
    cosine,
    exponential,
    schedule,
    schedule_names,
    step_decay,
    warmup_cosine,
)

__all__ = [
    "CONVERGED",
    "DEFAULT_LR",
    "DIVERGED",
    "MAX_STEPS",
    "AdagradState",
    "AdamState",
    "GDState",
    "Optimizer",
    "RMSpropState",
    "SGDState",
    "Schedule",
    "Trajectory",
    "adagrad",
    "adam",
    "adamw",
    "apply_updates",
    "available",
    "constant",
    "cosine",
    "exponential",
    "gd",
    "get",
    "lr_sweep",
    "momentum",
    "nesterov",
    "race",
    "rmsprop",
    "run",
    "schedule",
    "schedule_names",
    "sgd",
    "step_decay",
    "warmup_cosine",
]
