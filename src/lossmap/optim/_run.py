"""Running an optimizer over a landscape: :func:`run` and :class:`Trajectory`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossmap._validation import check_float, check_int
from lossmap.optim._optimizers import Optimizer, get
from lossmap.optim._schedules import check_rates

__all__ = ["CONVERGED", "DIVERGED", "MAX_STEPS", "Trajectory", "run"]

CONVERGED = "converged"
DIVERGED = "diverged"
MAX_STEPS = "max_steps"


@dataclass(frozen=True, eq=False)
class Trajectory:
    """The path of one optimizer from one or many starts.

    The arrays are cut after the last start stops: ``n_rows - 1`` is the
    largest ``stopped_at``. With several starts, the rows after a start's own
    ``stopped_at`` hold NaN (whatever its status), so a plot of the columns
    shows every path exactly as far as it went.

    Attributes
    ----------
    params : ndarray of shape (n_rows, 2) or (n_rows, n_starts, 2)
        ``params[0]`` is the start, ``params[t]`` the point after ``t`` steps.
    loss : ndarray of shape (n_rows,) or (n_rows, n_starts)
        The landscape's value at ``params`` (on all the data, also when the
        steps used mini-batches).
    grad_norm : ndarray of shape (n_rows,) or (n_rows, n_starts)
        Euclidean norm of the full gradient at ``params``.
    lr : ndarray of shape (n_rows - 1,)
        The learning rate used for the step from row ``t`` to ``t + 1``.
    status : str or ndarray of str of shape (n_starts,)
        ``"converged"`` (gradient norm < ``tol``), ``"diverged"`` (loss not
        finite, ``|loss| > bound`` or parameters not finite) or ``"max_steps"``.
    stopped_at : int or ndarray of int of shape (n_starts,)
        The row where the start stopped: where it converged, where it
        diverged (that row holds the first bad point), or ``steps``.
    optimizer : str
        The optimizer's name.
    label : str
        Legend text, e.g. ``"adam (lr=0.01)"``.
    param_names : (str, str)
    hyper : dict
        The optimizer's settings (JSON-friendly).
    """

    params: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    lr: np.ndarray
    status: Any
    stopped_at: Any
    optimizer: str
    label: str
    param_names: tuple[str, str] = ("x", "y")
    hyper: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("params", "loss", "grad_norm", "lr"):
            getattr(self, name).setflags(write=False)
        if isinstance(self.status, np.ndarray):
            self.status.setflags(write=False)
            self.stopped_at.setflags(write=False)

    @property
    def n_starts(self) -> int | None:
        """Number of starts, or None for a single-start trajectory."""
        return None if self.params.ndim == 2 else self.params.shape[1]

    @property
    def start(self) -> np.ndarray:
        """Start point(s), shape (2,) or (n_starts, 2)."""
        return self.params[0]

    @property
    def final(self) -> np.ndarray:
        """The point at ``stopped_at`` for each start, shape (2,) or (n_starts, 2).

        For a diverged start this is the first bad point (it may be huge or
        not finite); use :attr:`last_finite` for the last sane one.
        """
        if self.n_starts is None:
            return self.params[self.stopped_at]
        return self.params[self.stopped_at, np.arange(self.n_starts)]

    @property
    def final_loss(self) -> Any:
        """The loss at :attr:`final`."""
        if self.n_starts is None:
            return float(self.loss[self.stopped_at])
        return self.loss[self.stopped_at, np.arange(self.n_starts)]

    @property
    def last_finite(self) -> np.ndarray:
        """For each start, the last point before it stopped or diverged."""
        diverged = np.asarray(self.status) == DIVERGED
        idx = np.where(diverged, np.maximum(self.stopped_at - 1, 0), self.stopped_at)
        if self.n_starts is None:
            return self.params[int(idx)]
        return self.params[idx, np.arange(self.n_starts)]

    def path(self, start: int | None = None) -> np.ndarray:
        """The rows of one start up to its ``stopped_at``, shape (k + 1, 2)."""
        if self.n_starts is None:
            return self.params[: self.stopped_at + 1]
        i = check_int("start", start, minimum=0, maximum=self.n_starts - 1)
        return self.params[: self.stopped_at[i] + 1, i]

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        status = np.asarray(self.status)
        out: dict[str, Any] = {
            "optimizer": self.optimizer,
            "label": self.label,
            "hyper": self.hyper,
            "rows": int(self.params.shape[0]),
        }
        if self.n_starts is None:
            out.update(status=str(self.status), stopped_at=int(self.stopped_at))
        else:
            kinds, counts = np.unique(status, return_counts=True)
            out["status_counts"] = {str(k): int(c) for k, c in zip(kinds, counts)}
        return out


def _full_state(landscape: Any, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    loss = landscape.loss(theta[..., 0], theta[..., 1])
    grad = landscape.grad(theta[..., 0], theta[..., 1])
    return np.asarray(loss, dtype=np.float64), np.asarray(grad, dtype=np.float64)


def run(
    landscape: Any,
    optimizer: Optimizer | str,
    start: Any,
    *,
    steps: int,
    schedule: Any = None,
    seed: int | None = None,
    batch_size: int | None = None,
    tol: float = 1e-8,
    bound: float = 1e6,
) -> Trajectory:
    """Run ``optimizer`` on ``landscape`` from one or many starts.

    All starts advance together: every step is one vectorised evaluation of
    the gradient at all points (no Python loop per start).

    Parameters
    ----------
    landscape : lossmap.toy.Landscape
        Anything with vectorised ``loss(p0, p1)`` and ``grad(p0, p1)``.
    optimizer : Optimizer or str
        An optimizer, or a name for :func:`lossmap.optim.get` (default
        settings).
    start : array of shape (2,) or (n_starts, 2)
    steps : int
        Maximum number of updates (>= 1).
    schedule : float or callable, optional
        Replaces the optimizer's learning rate (a schedule ``t -> lr``).
    seed : int, optional
        Seed for the mini-batches; required with ``batch_size``.
    batch_size : int, optional
        Draw ``batch_size`` data points (without replacement, afresh at each
        step, the same for all starts) from a Problem's data for each gradient:
        stochastic gradient descent. Loss and gradient norm are still recorded
        on all the data.
    tol : float, default=1e-8
        A start has converged when its gradient norm falls below ``tol``.
    bound : float, default=1e6
        A start has diverged when ``|loss| > bound`` or when loss or
        parameters are not finite.

    Returns
    -------
    Trajectory
        Arrays cut after the last start stopped; NaN after each start's stop.

    Examples
    --------
    >>> from lossmap import optim
    >>> from lossmap.toy import functions
    >>> f = functions.get("quadratic")
    >>> t = optim.run(f, optim.gd(0.1), [1.0, 1.0], steps=500)
    >>> str(t.status)
    'converged'
    """
    opt = get(optimizer) if isinstance(optimizer, str) else optimizer
    if not isinstance(opt, Optimizer):
        raise TypeError(
            "`optimizer` must be an Optimizer or a name, got "
            f"{type(optimizer).__name__}"
        )
    if schedule is not None:
        opt = opt.with_lr(schedule)
    steps = check_int("steps", steps, minimum=1)
    tol = check_float("tol", tol, minimum=0.0)
    bound = check_float("bound", bound, minimum=0.0, strict_min=True)
    theta = np.array(start, dtype=np.float64)
    if theta.ndim not in (1, 2) or theta.shape[-1] != 2:
        raise ValueError(f"`start` must have shape (2,) or (n, 2), got {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise ValueError("`start` must be finite")
    single = theta.ndim == 1
    theta = np.atleast_2d(theta)
    n = theta.shape[0]
    sampler = _batch_sampler(landscape, batch_size, seed)

    shape = (steps + 1, n)
    params = np.full((*shape, 2), np.nan)
    loss_rec = np.full(shape, np.nan)
    gnorm_rec = np.full(shape, np.nan)
    status = np.full(n, MAX_STEPS, dtype="<U9")
    stopped = np.full(n, steps, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    lr_rec = (  # a schedule is checked on every step before any update
        check_rates(opt.learning_rate, steps)
        if opt.lr is not None
        else np.full(steps, np.nan)
    )

    with np.errstate(all="ignore"):
        loss, g = _full_state(landscape, theta)
        gn = np.sqrt(np.einsum("ij,ij->i", g, g))
        params[0], loss_rec[0], gnorm_rec[0] = theta, loss, gn
        _check(0, loss, gn, theta, active, status, stopped, tol, bound)
        state = opt.init(theta)
        last = 0
        for t in range(1, steps + 1):
            if not active.any():
                break
            gb = g if sampler is None else sampler(theta)
            upd, state = opt.update(gb, state, theta)
            new = theta + upd
            theta = np.where(active[:, None], new, theta)
            loss, g = _full_state(landscape, theta)
            gn = np.sqrt(np.einsum("ij,ij->i", g, g))
            rows = active.copy()
            params[t, rows], loss_rec[t, rows], gnorm_rec[t, rows] = (
                theta[rows],
                loss[rows],
                gn[rows],
            )
            _check(t, loss, gn, theta, active, status, stopped, tol, bound)
            last = t
    end = last + 1
    params, loss_rec, gnorm_rec = params[:end], loss_rec[:end], gnorm_rec[:end]
    lr_rec = lr_rec[: end - 1]
    hyper = opt.describe()
    hyper.pop("name", None)
    names = tuple(getattr(landscape, "param_names", ("x", "y")))
    if single:
        return Trajectory(
            params[:, 0],
            loss_rec[:, 0],
            gnorm_rec[:, 0],
            lr_rec,
            str(status[0]),
            int(stopped[0]),
            opt.name,
            opt.label,
            names,  # type: ignore[arg-type]
            hyper,
        )
    return Trajectory(
        params,
        loss_rec,
        gnorm_rec,
        lr_rec,
        status,
        stopped,
        opt.name,
        opt.label,
        names,  # type: ignore[arg-type]
        hyper,
    )


def _check(
    t: int,
    loss: np.ndarray,
    gn: np.ndarray,
    theta: np.ndarray,
    active: np.ndarray,
    status: np.ndarray,
    stopped: np.ndarray,
    tol: float,
    bound: float,
) -> None:
    """Mark starts that converged or diverged at row ``t`` (in place)."""
    bad = ~np.isfinite(loss) | (np.abs(loss) > bound) | ~np.isfinite(theta).all(-1)
    bad |= ~np.isfinite(gn)
    div = active & bad
    conv = active & ~bad & (gn < tol)
    status[div] = DIVERGED
    status[conv] = CONVERGED
    stopped[div | conv] = t
    active &= ~(div | conv)


def _batch_sampler(landscape: Any, batch_size: int | None, seed: int | None) -> Any:
    """A function ``theta -> mini-batch gradient``, or None for full batch."""
    if batch_size is None:
        return None
    if not hasattr(landscape, "subset") or not hasattr(landscape, "data"):
        raise TypeError(
            f"`batch_size` needs a landscape with data (a lossmap.toy.Problem), "
            f"got {type(landscape).__name__}"
        )
    n = len(landscape.data)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if batch_size > n:
        raise ValueError(
            f"`batch_size` must be at most the problem's {n} samples, got {batch_size}"
        )
    if seed is None:
        raise ValueError(
            "`seed` is required with `batch_size` (mini-batches are drawn at "
            "random), got None"
        )
    rng = np.random.default_rng(seed)

    def sample(theta: np.ndarray) -> np.ndarray:
        idx = np.sort(rng.choice(n, size=batch_size, replace=False))
        sub = landscape.subset(idx)
        return np.asarray(sub.grad(theta[:, 0], theta[:, 1]), dtype=np.float64)

    return sample
