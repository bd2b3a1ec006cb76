"""Curvature on the landscape: eigen-directions, curvature maps, sharpness.

* :func:`hessian_directions` — the top (or bottom) eigenvectors as plane
  :class:`~lossmap.nn.directions.Direction` objects: look along the sharpest
  directions, or along the escape direction of a saddle.
* :func:`curvature_map` — λmax, λmin and |λmin/λmax| of the curvature matrix at
  every point of a coarse grid over a plane (Li et al. 2018, "Visualizing the
  loss landscape of neural nets", §6: a ratio near 0 means locally convex,
  large means strongly non-convex), written point by point to a resumable
  :class:`~lossmap.io.store.GridStore` when ``store`` is given.
* :func:`sharpness` — λmax at each snapshot of a training recording against
  ``2/η`` for the learning rate used: gradient descent on a quadratic diverges
  along directions with curvature above ``2/η``, and full-batch training tends
  to hover at that edge of stability (Cohen et al. 2021, "Gradient descent on
  neural networks typically occurs at the edge of stability", ICLR).

Each point builds one operator at its parameters (``at=``) and runs one
Lanczos iteration for both ends of the spectrum, with the same seed
everywhere, so a map's centre equals the direct computation at the centre.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn.curvature._lanczos import lanczos_edges
from lossmap.nn.curvature._matrices import (
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    HessianOperator,
)

__all__ = [
    "MATRICES",
    "Sharpness",
    "curvature_map",
    "hessian_directions",
    "operator",
    "sharpness",
]

#: Curvature matrices by name.
MATRICES = {
    "hessian": HessianOperator,
    "ggn": GGNOperator,
    "empirical_fisher": EmpiricalFisherOperator,
    "fisher": FisherOperator,
}
FIELDS = ("loss", "lambda_max", "lambda_min", "ratio", "converged", "products")


def operator(
    model: nn.Module, loss_fn: Any, data: Any, *, matrix: str = "hessian", **kwargs: Any
) -> Any:
    """A curvature operator by name (see :data:`MATRICES`)."""
    check_choice("matrix", matrix, list(MATRICES))
    return MATRICES[matrix](model, loss_fn, data, **kwargs)


def hessian_directions(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    *,
    k: int = 2,
    which: str = "largest",
    matrix: str = "hessian",
    tol: float | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> tuple[Any, ...]:
    """The ``k`` extreme eigenvectors of the curvature matrix as directions.

    Parameters
    ----------
    model, loss_fn, data
        As for :class:`~lossmap.nn.curvature.HessianOperator`.
    k : int, default=2
    which : {"largest", "smallest", "magnitude"}, default="largest"
    matrix : {"hessian", "ggn", "empirical_fisher", "fisher"}
    tol, seed
        As for :func:`~lossmap.nn.curvature.eigenvalues`.
    **kwargs
        Operator options (``params``, ``batch_size``, ``bn``, ``dtype``…).

    Returns
    -------
    tuple of Direction
        Unit vectors over the selected parameters (zero elsewhere); each
        ``meta`` records the eigenvalue, its residual, whether it converged
        and how it was computed. Eigenvectors have an arbitrary sign; here the
        largest entry is made positive, so reruns agree.
    """
    from lossmap.nn.directions import Direction

    op = operator(model, loss_fn, data, matrix=matrix, **kwargs)
    k = check_int("k", k, minimum=1, maximum=op.dim)
    eig = lanczos_edges(op, {which: k}, tol=tol, seed=seed)[which]
    out = []
    for i in range(k):
        v = eig.vectors[i]
        v = v * torch.sign(v[torch.argmax(v.abs())])
        parts = op.unflatten(v)
        tensors = {
            n: (
                parts[n].detach().clone()
                if n in parts
                else torch.zeros(shape, dtype=op.dtype, device=op.device)
            )
            for n, shape in op.param_shapes.items()
        }
        meta = {
            "kind": f"{matrix}_eigenvector",
            "which": which,
            "index": i,
            "eigenvalue": float(eig.values[i]),
            "residual": float(eig.residuals[i]),
            "converged": bool(eig.residuals[i] <= eig.tolerance),
            "seed": int(seed),
            "params": list(op.names),
        }
        out.append(Direction(tensors, meta))
    return tuple(out)


def _plain(value: Any) -> Any:
    """A JSON-friendly, run-independent record of an option (no addresses,
    so a rerun reopens its store)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, nn.Module):
        return type(value).__name__
    if callable(value):
        return getattr(value, "__qualname__", type(value).__name__)
    return type(value).__name__


def _at(
    op_names: Sequence[str],
    center: Mapping[str, torch.Tensor],
    dirs: Any,
    c: Sequence[float],
) -> dict[str, torch.Tensor]:
    return {
        n: center[n]
        + sum(float(cj) * d.tensors[n].to(center[n]) for cj, d in zip(c, dirs))
        for n in center
    }


def _point(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    matrix: str,
    at: Mapping[str, torch.Tensor],
    tol: float | None,
    seed: int,
    max_iter: int | None,
    kwargs: dict[str, Any],
) -> dict[str, float]:
    op = operator(model, loss_fn, data, matrix=matrix, at=at, **kwargs)
    res = lanczos_edges(
        op, {"largest": 1, "smallest": 1}, tol=tol, seed=seed, max_iter=max_iter
    )
    hi, lo = res["largest"], res["smallest"]
    lmax, lmin = float(hi.values[0]), float(lo.values[0])
    return {
        "loss": op.loss(),
        "lambda_max": lmax,
        "lambda_min": lmin,
        "ratio": abs(lmin / lmax) if lmax != 0 else float("nan"),
        "converged": float(hi.converged and lo.converged),
        "products": float(op.products),
    }


def curvature_map(
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    directions: Sequence[Any],
    *,
    span: Any = 1.0,
    steps: Any = 5,
    matrix: str = "hessian",
    store: Any = None,
    tol: float | None = None,
    max_iter: int | None = None,
    seed: int = 0,
    progress: bool = False,
    **kwargs: Any,
) -> Any:
    """λmax, λmin and |λmin/λmax| of the curvature over a plane.

    Parameters
    ----------
    model, loss_fn, data
        As for :func:`lossmap.nn.plane`.
    directions : pair of Direction
    span : float or (lo, hi), or one per axis, default=1.0
    steps : int or (int, int), default=5
        A coarse grid: every point runs a Lanczos iteration.
    matrix : {"hessian", "ggn", "empirical_fisher", "fisher"}
    store : path, optional
        A resumable store: each point is written as it finishes, and a rerun
        with the same settings computes only the missing points.
    tol, max_iter, seed
        Lanczos options, the same at every point.
    progress : bool
        Report progress (a bar on a terminal, plain lines otherwise).
    **kwargs
        Operator options (``params``, ``batch_size``, ``bn``, ``dtype``…).

    Returns
    -------
    Surface
        Axes ``alpha``, ``beta``; fields ``loss``, ``lambda_max``,
        ``lambda_min``, ``ratio``, ``converged`` (1 or 0) and ``products``.
    """
    from lossmap.nn._prepare import plane_spans, plane_steps
    from lossmap.surface import Surface

    check_choice("matrix", matrix, list(MATRICES))
    if len(directions) != 2:
        raise ValueError(
            f"`directions` must be a pair of Direction, got {len(directions)}"
        )
    spans, steps_ = plane_spans(span), plane_steps(steps)
    names = [n for n, _ in model.named_parameters()]
    for i, d in enumerate(directions):
        if not hasattr(d, "tensors") or set(d.tensors) != set(names):
            raise ValueError(
                f"`directions[{i}]` must be a Direction over the model's parameters"
            )
    axes = {
        "alpha": np.linspace(*spans[0], steps_[0]),
        "beta": np.linspace(*spans[1], steps_[1]),
    }
    center = {n: p.detach() for n, p in model.named_parameters()}
    from lossmap.nn import batch as nb
    from lossmap.nn._prepare import _fingerprint

    data = nb.materialise(data)  # read once: an iterable of batches serves every point
    meta = {
        "kind": "nn.curvature_map",
        "matrix": matrix,
        "directions": [dict(d.meta) for d in directions],
        # what the values depend on beyond the settings, so that a store made
        # for another model, other weights, data or directions is refused
        # rather than silently returned
        "fingerprint": {
            "center": _fingerprint(
                *center.values(), *(b.detach() for _, b in model.named_buffers())
            ),
            "directions": [
                _fingerprint(*(d.tensors[n] for n in names)) for d in directions
            ],
            "data": data.fingerprint(),
        },
        "span": [list(s) for s in spans],
        "steps": steps_,
        "seed": int(seed),
        "tol": tol,
        "options": {k: _plain(v) for k, v in sorted(kwargs.items())},
    }
    shape = tuple(a.size for a in axes.values())
    gs = None
    if store is not None:
        from lossmap.io.store import GridStore

        gs = GridStore.open(
            store, axes=axes, fields=FIELDS, chunks=(1, 1), metadata=meta
        )
        todo = gs.missing()
    else:
        todo = [(i, j) for i in range(shape[0]) for j in range(shape[1])]
    values = {f: np.full(shape, np.nan) for f in FIELDS}
    from lossmap._progress import progress as report

    with report(len(todo), "curvature map", unit="points", enabled=progress) as step:
        for i, j in todo:
            c = (axes["alpha"][i], axes["beta"][j])
            at = _at(names, center, directions, c)
            got = _point(model, loss_fn, data, matrix, at, tol, seed, max_iter, kwargs)
            if gs is not None:
                gs.write((i, j), {f: np.array([[got[f]]]) for f in FIELDS})
            else:
                for f in FIELDS:
                    values[f][i, j] = got[f]
            step(1)
    if gs is not None:
        return gs.to_surface()
    return Surface(axes=axes, fields=values, metadata=meta)


@dataclass(frozen=True)
class Sharpness:
    """λmax along a training recording against the stability threshold.

    Gradient descent on a quadratic with curvature λ is stable while
    ``λ < 2/η``; with heavy-ball momentum β (``torch.optim.SGD``, dampening
    d) while ``λ < 2(1 + β) / (η (1 − d))``, and with Nesterov momentum while
    ``λ < 2(1 + β) / (η (1 + 2β))`` (Cohen et al. 2021, "Gradient Descent
    on Neural Networks Typically Occurs at the Edge of Stability").

    Attributes
    ----------
    steps : ndarray (n,)
    lambda_max : ndarray (n,)
    loss : ndarray (n,)
    lr : ndarray (n,) or None
        Learning rate used at each snapshot.
    converged : ndarray of bool (n,)
    products : int
    factor : float
        The threshold is ``2 · factor / lr``: 1 for plain gradient descent,
        ``(1 + β)/(1 − d)`` with heavy-ball momentum, ``(1 + β)/(1 + 2β)``
        with Nesterov's.
    formula : str
        The threshold in words for legends, e.g. ``"2/η"`` or
        ``"2(1+β)/η, β = 0.9"``.
    """

    steps: np.ndarray
    lambda_max: np.ndarray
    loss: np.ndarray
    lr: np.ndarray | None
    converged: np.ndarray
    products: int
    factor: float = 1.0
    formula: str = "2/η"
    #: The optimizer the recording names when it is not SGD (Adam, RMSprop,
    #: ...): the threshold ``2/η`` is then not one of this Hessian, and
    #: :attr:`threshold` is None.
    adaptive: str | None = None

    @property
    def threshold(self) -> np.ndarray | None:
        """``2 · factor / η`` at each snapshot (None without learning rates,
        or for an adaptive optimizer, see :attr:`adaptive`)."""
        if self.lr is None or self.adaptive is not None:
            return None
        return 2.0 * self.factor / self.lr

    def to_surface(self) -> Any:
        """A 1-D :class:`~lossmap.Surface` over the steps."""
        from lossmap.surface import Surface

        fields = {"loss": self.loss, "lambda_max": self.lambda_max}
        if self.lr is not None:
            fields["lr"] = self.lr
        if self.threshold is not None:
            fields["threshold"] = self.threshold
        return Surface(
            axes={"step": self.steps.astype(float)},
            fields=fields,
            metadata={
                "kind": "nn.sharpness",
                "products": self.products,
                "threshold": self.formula,
            },
        )


def _stability(
    recording: Any, momentum: Any, nesterov: Any, dampening: Any
) -> tuple[float, str]:
    """``(factor, formula)`` of the threshold ``2 · factor / η``.

    Explicit arguments win; else the optimizer settings a Recorder kept
    (``meta["optimizer"]``); else plain gradient descent.
    """
    opt = dict((getattr(recording, "meta", None) or {}).get("optimizer") or {})
    beta = momentum if momentum is not None else opt.get("momentum", 0.0)
    nest = nesterov if nesterov is not None else opt.get("nesterov", False)
    damp = dampening if dampening is not None else opt.get("dampening", 0.0)
    beta = check_float("momentum", beta, minimum=0.0)
    damp = check_float("dampening", damp, minimum=0.0)
    if not beta < 1.0 or not damp < 1.0:
        raise ValueError(
            f"`momentum` and `dampening` must be below 1, got {beta} and {damp}"
        )
    if not isinstance(nest, bool):
        raise TypeError(f"`nesterov` must be True or False, got {nest!r}")
    if beta == 0.0:
        return 1.0, "2/η"
    if nest:
        return (1 + beta) / (1 + 2 * beta), f"2(1+β)/((1+2β)η), Nesterov β = {beta:g}"
    if damp:
        return (1 + beta) / (1 - damp), f"2(1+β)/((1−d)η), β = {beta:g}, d = {damp:g}"
    return 1 + beta, f"2(1+β)/η, β = {beta:g}"


def _adaptive(
    recording: Any, momentum: Any, nesterov: Any, dampening: Any
) -> str | None:
    """The recorded optimizer's name when it is not SGD and no SGD setting
    was given: its stability threshold is one of the preconditioned Hessian
    (Cohen et al. 2022, "Adaptive Gradient Methods at the Edge of
    Stability"), so ``2/η`` against this Hessian would mislead."""
    if momentum is not None or nesterov is not None or dampening is not None:
        return None
    opt = (getattr(recording, "meta", None) or {}).get("optimizer") or {}
    name = opt.get("name")
    if name is None or name == "SGD":
        return None
    warnings.warn(
        f"the recording was made with {name}, not SGD: sharpness gives λmax "
        "without a stability threshold (2/η holds for gradient descent; for an "
        "adaptive optimizer it bounds the preconditioned Hessian). Pass "
        "`momentum=0.0` (or the SGD settings) to draw the SGD threshold anyway.",
        stacklevel=3,
    )
    return str(name)


def _learning_rates(recording: Any, lr: Any, n: int) -> np.ndarray | None:
    if lr is None:
        lr = getattr(recording, "lr", None)  # (n, param groups) when recorded
        if lr is None:
            return None
        lr = np.asarray(lr, dtype=float)
        if lr.ndim == 2:
            lr = lr[:, 0]
    arr = np.asarray(lr, dtype=float).reshape(-1)
    if arr.size == 1:
        arr = np.full(n, float(arr[0]))
    if arr.size != n or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"`lr` must be one positive finite learning rate or one per snapshot "
            f"({n}), got {np.asarray(lr).tolist()!r}"
        )
    return arr


def sharpness(
    recording: Any,
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    *,
    lr: Any = None,
    momentum: float | None = None,
    nesterov: bool | None = None,
    dampening: float | None = None,
    matrix: str = "hessian",
    tol: float | None = None,
    seed: int = 0,
    **kwargs: Any,
) -> Sharpness:
    """λmax at every snapshot of ``recording`` (a :class:`~lossmap.nn.Recording`).

    Parameters
    ----------
    recording : Recording
        Snapshots of ``model``'s parameters (same names and shapes).
    model, loss_fn, data
        The model the snapshots belong to, its loss and the data.
    lr : float or array (n,), optional
        Learning rate(s); default: those the recording holds (its first
        parameter group), if any.
    momentum, nesterov, dampening : optional
        The SGD settings that set the stability threshold (see
        :class:`Sharpness`); default: those a ``Recorder(...,
        optimizer=opt)`` kept in ``recording.meta["optimizer"]``, else plain
        gradient descent (``2/η``). For adaptive optimizers (Adam, ...) the
        threshold applies to the preconditioned Hessian, not this one.
    matrix, tol, seed, **kwargs
        As for :func:`curvature_map`.
    """
    check_choice("matrix", matrix, list(MATRICES))
    names = [n for n, _ in model.named_parameters()]
    if tuple(recording.names) != tuple(names):
        raise ValueError(
            "`recording` must hold snapshots of `model`'s parameters, got names "
            f"{list(recording.names)[:4]}… for a model with {names[:4]}…"
        )
    n = len(recording)
    lrs = _learning_rates(recording, lr, n)
    from lossmap.nn import batch as nb

    data = nb.materialise(data)  # read once: an iterable of batches serves every step
    factor, formula = _stability(recording, momentum, nesterov, dampening)
    adaptive = _adaptive(recording, momentum, nesterov, dampening)
    lam, loss, conv, products = np.empty(n), np.empty(n), np.zeros(n, bool), 0
    for i in range(n):
        at = {k: v.detach() for k, v in recording.params(i).items()}
        bufs = getattr(recording, "buffers", None)
        if bufs:  # BatchNorm statistics recorded with the snapshot
            at.update({k: v[i] for k, v in bufs.items()})
        op = operator(model, loss_fn, data, matrix=matrix, at=at, **kwargs)
        top = lanczos_edges(op, {"largest": 1}, tol=tol, seed=seed)["largest"]
        lam[i], loss[i], conv[i] = top.values[0], op.loss(), top.converged
        products += op.products
    return Sharpness(
        np.asarray(recording.steps),
        lam,
        loss,
        lrs,
        conv,
        products,
        factor,
        formula,
        adaptive,
    )
