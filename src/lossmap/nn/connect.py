"""Paths between two minima: the straight line, its barrier, and trained curves.

Are two trained networks in one valley or in two? Along the straight line
``θ(t) = (1 − t)·θ_A + t·θ_B`` the loss often rises in the middle: the
*barrier* (:func:`barrier`). A curved path between the same two points can
nevertheless stay low (Garipov, Izmailov, Podoprikhin, Vetrov & Wilson, "Loss
Surfaces, Mode Connectivity, and Fast Ensembling of DNNs", NeurIPS 2018;
Draxler, Veschgini, Salmhofer & Hamprecht, "Essentially No Barriers in Neural
Network Energy Landscape", ICML 2018).

* :func:`linear_path` evaluates the straight line (optionally after
  :func:`lossmap.nn.align`, which removes the barrier that only comes from
  permuted hidden units), with BatchNorm statistics re-estimated at every
  point when the model has BatchNorm (a stale running mean is a known cause
  of false barriers).
* :func:`train_curve` trains a quadratic Bezier curve (or one of higher
  degree) or a polygonal chain with one or more bends between fixed ends by
  minimising the loss averaged over the curve, ``E_{t∼U(0,1)} L(θ(t))``
  (Garipov et al. 2018, section 3), one random ``t`` per mini-batch. Any
  module works: the curve's point is fed through
  ``torch.func.functional_call``, the user's layers are never rewritten. The
  bends and the optimiser's momentum are saved after every epoch, so an
  interrupted (or extended) training resumes where it stopped.
* :func:`curve_path` evaluates the loss and metrics along a curve, into a
  resumable :class:`~lossmap.io.GridStore` when asked.
* :meth:`Curve.plane` gives the plane through the curve's ends and middle
  control point (:func:`lossmap.nn.plane_through`), in which a quadratic
  Bezier curve lies entirely: computing that plane with
  :func:`lossmap.nn.plane` shows the low-loss tunnel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn import _bn
from lossmap.nn.batch import Objective, materialise
from lossmap.nn.directions import Direction, interpolation, plane_through
from lossmap.nn.evaluate import evaluate_params, line
from lossmap.surface import Surface

__all__ = [
    "CURVES",
    "Curve",
    "barrier",
    "curve_path",
    "linear_path",
    "train_curve",
]

#: Curve families accepted by :func:`train_curve`.
CURVES = ("bezier", "polychain")
_BN = ("auto", *_bn.BN_MODES)
_GARIPOV = (
    "Garipov, Izmailov, Podoprikhin, Vetrov & Wilson, Loss Surfaces, Mode "
    "Connectivity, and Fast Ensembling of DNNs, NeurIPS 2018"
)


# ----------------------------------------------------------------- helpers
def _module(obj: Any, what: str) -> nn.Module:
    """A module, or the aligned model of an :class:`~lossmap.nn.Alignment`."""
    inner = getattr(obj, "model", None)
    if not isinstance(obj, nn.Module) and isinstance(inner, nn.Module):
        obj = inner
    if not isinstance(obj, nn.Module):
        raise TypeError(
            f"`{what}` must be a torch.nn.Module (or an Alignment), got "
            f"{type(obj).__name__}"
        )
    return obj


def _same_parameters(a: nn.Module, b: nn.Module) -> None:
    sa = [(n, tuple(p.shape)) for n, p in a.named_parameters()]
    sb = [(n, tuple(p.shape)) for n, p in b.named_parameters()]
    if sa != sb:
        raise ValueError(
            "`model_a` and `model_b` must have the same parameters (names and shapes)"
        )


def _bn_mode(model: nn.Module, bn: str) -> str:
    check_choice("bn", bn, _BN)
    if bn == "auto":
        return "recompute" if _bn.has_batchnorm(model) else "eval"
    return bn


def _fingerprint(tensors: Any) -> str:
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous()
        h.update(str((tuple(a.shape), str(a.dtype))).encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def barrier(path: Surface, field: str = "loss") -> dict[str, float]:
    """The barrier along a path from ``t = 0`` to ``t = 1``.

    Parameters
    ----------
    path : Surface
        One axis (the path parameter), e.g. from :func:`linear_path` or
        :func:`curve_path`.
    field : str, default "loss"

    Returns
    -------
    dict
        ``height``: the largest value along the path minus the mean of the
        two ends (Frankle, Dziugaite, Roy & Carbin, "Linear Mode Connectivity
        and the Lottery Ticket Hypothesis", ICML 2020); ``chord``: the
        largest value above the straight chord between the ends, ``max_t
        [L(t) − ((1−t)·L(0) + t·L(1))]`` (Entezari, Sedghi, Saukh &
        Neyshabur, ICLR 2022), never negative and zero on a convex loss;
        ``t`` and ``max``: where the largest value is and what it is;
        ``start`` and ``end``: the ends' values.

    Examples
    --------
    >>> import numpy as np
    >>> from lossmap import Surface
    >>> t = np.linspace(0, 1, 5)
    >>> path = Surface(axes={"t": t}, fields={"loss": [1.0, 2.0, 4.0, 3.0, 3.0]})
    >>> b = barrier(path)
    >>> b["height"], b["chord"], b["t"]
    (2.0, 2.0, 0.5)
    """
    if not isinstance(path, Surface) or path.ndim != 1:
        raise TypeError(
            f"`path` must be a 1-D Surface (a path from t=0 to t=1), got "
            f"{type(path).__name__}"
            + (f" with {path.ndim} axes" if isinstance(path, Surface) else "")
        )
    t = path.coords(0)
    v = np.asarray(path.field(field), dtype=np.float64)
    if not (np.isfinite(v[0]) and np.isfinite(v[-1])):
        raise ValueError(
            f"the path's ends must have finite {field!r} values, got {v[0]} and {v[-1]}"
        )
    s = (t - t[0]) / (t[-1] - t[0]) if t.size > 1 else np.zeros(1)
    k = int(np.nanargmax(v))
    chord = np.nanmax(v - ((1.0 - s) * v[0] + s * v[-1]))
    return {
        "height": float(v[k] - 0.5 * (v[0] + v[-1])),
        "chord": float(max(chord, 0.0)),
        "t": float(t[k]),
        "max": float(v[k]),
        "start": float(v[0]),
        "end": float(v[-1]),
    }


def _as_path(surface: Surface, meta: Mapping[str, Any]) -> Surface:
    """A line surface with its axis renamed ``t`` and the barrier recorded."""
    fields = {f: surface.field(f) for f in surface.field_names}
    out = Surface(
        axes={"t": surface.coords(0)},
        fields=fields,
        metadata={**surface.metadata, **meta},
    )
    extra = {"barrier": barrier(out)}
    if "accuracy" in fields and np.all(np.isfinite(fields["accuracy"])):
        # the error barrier: accuracy's largest drop below the ends' mean
        acc = barrier(out.with_fields(loss=1.0 - fields["accuracy"]))
        extra["error_barrier"] = acc
    return out.with_metadata(**extra)


# ------------------------------------------------------------- linear path
def linear_path(
    model_a: Any,
    model_b: Any,
    loss_fn: Any,
    data: Any,
    *,
    steps: int = 25,
    bn: str = "auto",
    progress: bool = False,
    **options: Any,
) -> Surface:
    """The loss on the straight line from model A (``t = 0``) to model B.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module or Alignment
        Two models with the same parameters (B may be ``align(A, B)``).
        Neither is changed.
    loss_fn, data
        As for :func:`lossmap.nn.line`.
    steps : int, default 25
        Points on the line, ends included.
    bn : {"auto", "eval", "batch", "recompute"}
        BatchNorm statistics at each point: ``"auto"`` (default) re-estimates
        them from the data (``"recompute"``) when the model has BatchNorm
        layers; ``"eval"`` uses model A's running statistics everywhere,
        which makes a false barrier when B's differ.
    options
        Any other option of :func:`lossmap.nn.line` (``metrics``,
        ``batch_size``, ``bn_data``, ``dtype``, ...).

    Returns
    -------
    Surface
        Axis ``"t"`` (0 … 1); fields ``"loss"`` and metrics; metadata
        ``kind="nn.linear_path"``, ``barrier`` (see :func:`barrier`) and,
        with accuracy, ``error_barrier``.
    """
    a = _module(model_a, "model_a")
    b = _module(model_b, "model_b")
    _same_parameters(a, b)
    mode = _bn_mode(a, bn)
    steps = check_int("steps", steps, minimum=2, maximum=10_001)
    s = line(
        a,
        loss_fn,
        data,
        interpolation(a, b),
        center=a,
        span=(0.0, 1.0),
        steps=steps,
        bn=mode,
        progress=progress,
        **options,
    )
    return _as_path(s, {"kind": "nn.linear_path", "bn": mode, "path": "linear"})


# ------------------------------------------------------------------ curves
def _basis(kind: str, n_points: int, t: np.ndarray) -> np.ndarray:
    """Weights of the control points at each ``t``, shape (len(t), n_points)."""
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    deg = n_points - 1
    if kind == "bezier":  # Bernstein polynomials
        j = np.arange(n_points)
        coef = np.array([math.comb(deg, int(i)) for i in j], dtype=np.float64)
        return coef * t[:, None] ** j * (1.0 - t[:, None]) ** (deg - j)
    # polygonal chain: hat functions on the knots 0, 1/deg, …, 1
    knots = np.linspace(0.0, 1.0, n_points)
    return np.clip(1.0 - np.abs(t[:, None] - knots) * deg, 0.0, 1.0)


def _basis_torch(kind: str, n_points: int, t: torch.Tensor) -> torch.Tensor:
    deg = n_points - 1
    j = torch.arange(n_points, dtype=t.dtype)
    if kind == "bezier":
        coef = torch.tensor([math.comb(deg, i) for i in range(n_points)], dtype=t.dtype)
        return coef * t**j * (1.0 - t) ** (deg - j)
    knots = j / deg
    return (1.0 - (t - knots).abs() * deg).clamp(0.0, 1.0)


@dataclass(frozen=True, eq=False)
class Curve:
    """A curve in parameter space between two fixed ends.

    ``θ(t) = Σ_j w_j(t)·θ_j`` over the control points ``θ_0 … θ_n`` (``θ_0``
    is model A, ``θ_n`` model B): Bernstein weights for ``"bezier"``
    (quadratic with one bend), hat functions on equally spaced knots for
    ``"polychain"`` (a broken line through the bends).

    Attributes
    ----------
    kind : {"bezier", "polychain"}
    points : tuple of dict of str to torch.Tensor
        The control points, ends included, one tensor per parameter.
    meta : dict
        How it was trained (settings, loss per epoch, store).
    """

    kind: str
    points: tuple[dict[str, torch.Tensor], ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def bends(self) -> int:
        """Number of trainable control points between the ends."""
        return len(self.points) - 2

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in order."""
        return tuple(self.points[0])

    def weights(self, t: Any) -> np.ndarray:
        """Control point weights at each ``t``, shape ``(len(t), len(points))``."""
        return _basis(self.kind, len(self.points), np.asarray(t, dtype=np.float64))

    def params(self, t: float) -> dict[str, torch.Tensor]:
        """The parameters at ``t`` in [0, 1]."""
        t = check_float("t", t, minimum=0.0, maximum=1.0)
        w = self.weights([t])[0]
        return {
            n: sum(float(w[j]) * p[n] for j, p in enumerate(self.points))
            for n in self.names
        }

    def plane(self, model_a: nn.Module) -> tuple[Direction, Direction]:
        """Directions of the plane through A, B and the middle control point.

        ``model_a`` must hold the curve's start (it fixes the parameter
        order and is the plane's centre: evaluate with
        ``plane(model_a, ..., directions)``). A is at (0, 0), B at (1, 0);
        ``meta["controls"]`` holds every control point's coordinates (exact
        for one bend, the orthogonal projection otherwise) and
        :meth:`plane_coords` those of points on the curve.
        """
        start = {
            n: p.detach() for n, p in _module(model_a, "model_a").named_parameters()
        }
        if tuple(start) != self.names or any(
            not torch.equal(start[n], self.points[0][n].to(start[n])) for n in start
        ):
            raise ValueError(
                "`model_a` must hold the curve's start (the same parameters as "
                "the first control point)"
            )
        mid = self.points[len(self.points) // 2]
        d1, d2 = plane_through(model_a, self.points[-1], mid)
        coords = self._controls_in(d1, d2)
        meta = {**d1.meta, "controls": coords.tolist(), "curve": self.kind}
        return Direction(d1.tensors, {**meta, "axis": 0}), Direction(
            d2.tensors, {**meta, "axis": 1}
        )

    def _controls_in(self, d1: Direction, d2: Direction) -> np.ndarray:
        """Least-squares plane coordinates of every control point, (n, 2)."""
        a = torch.cat([self.points[0][n].reshape(-1).double() for n in self.names])
        u, v = d1.flat().double(), d2.flat().double()
        gram = torch.stack([torch.stack([u @ u, u @ v]), torch.stack([v @ u, v @ v])])
        rows = []
        for p in self.points:
            x = torch.cat([p[n].reshape(-1).double() for n in self.names]) - a
            rows.append(torch.linalg.solve(gram, torch.stack([u @ x, v @ x])))
        return torch.stack(rows).cpu().numpy()

    def plane_coords(
        self, directions: tuple[Direction, Direction], t: Any
    ) -> np.ndarray:
        """Coordinates of the curve's points at ``t`` in :meth:`plane`, (len(t), 2)."""
        controls = np.asarray(directions[0].meta.get("controls"), dtype=np.float64)
        if controls.shape != (len(self.points), 2):
            raise ValueError("`directions` must come from this curve's `plane()`")
        return self.weights(t) @ controls

    @classmethod
    def load(cls, store: str | Path) -> Curve:
        """The latest curve saved by ``train_curve(..., store=store)``."""
        ends, controls = _open_stores(Path(store), None)
        return _curve_from_stores(ends, controls)

    def __repr__(self) -> str:
        return (
            f"Curve({self.kind!r}, bends={self.bends}, "
            f"epochs={self.meta.get('epochs_done', 0)})"
        )


# ------------------------------------------------------------ curve stores
def _row_layout(
    names: tuple[str, ...], shapes: list[tuple[int, ...]], bends: int, momentum: bool
) -> tuple[list[str], list[tuple[int, ...]]]:
    row_names = [f"bend{j}.{n}" for j in range(1, bends + 1) for n in names]
    row_shapes = [s for _ in range(bends) for s in shapes]
    if momentum:
        row_names += [f"velocity{j}.{n}" for j in range(1, bends + 1) for n in names]
        row_shapes += [s for _ in range(bends) for s in shapes]
    return [*row_names, "train_loss"], [*row_shapes, (1,)]


def _open_stores(path: Path, create: dict[str, Any] | None) -> tuple[Any, Any]:
    """The curve's two snapshot stores: ``ends`` (A, B) and ``controls``."""
    from lossmap.io import SnapshotStore

    if create is None:
        if not (path / "controls").exists():
            raise FileNotFoundError(f"no trained curve at {str(path)!r}")
        return SnapshotStore.attach(path / "ends"), SnapshotStore.attach(
            path / "controls"
        )
    if path.exists() and not path.is_dir():
        raise ValueError(f"`store` must be a folder, got the file {str(path)!r}")
    path.mkdir(exist_ok=True)
    settings = create["settings"]
    ends = SnapshotStore.open(
        path / "ends",
        names=create["names"],
        shapes=create["shapes"],
        dtype=create["dtype"],
        metadata=settings,
    )
    controls = SnapshotStore.open(
        path / "controls",
        names=create["row_names"],
        shapes=create["row_shapes"],
        dtype=create["dtype"],
        metadata=settings,
    )
    keys = sorted(
        k
        for k in set(settings) | set(controls.metadata)
        if settings.get(k) != controls.metadata.get(k)
    )
    if keys:
        raise ValueError(
            f"the curve at {str(path)!r} was trained with other settings "
            f"(different {keys}); it was left untouched, use another `store`"
        )
    return ends, controls


def _curve_from_stores(ends: Any, controls: Any) -> Curve:
    meta = dict(controls.metadata)
    names = tuple(ends.names)
    shapes = [tuple(s) for s in ends.shapes]
    sizes = [math.prod(s) for s in shapes]
    rows = torch.from_numpy(np.ascontiguousarray(ends.read()))

    def split(vec: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(vec, sizes)
        return {n: p.reshape(s).clone() for n, p, s in zip(names, parts, shapes)}

    a, b = split(rows[0]), split(rows[1])
    bends = int(meta["bends"])
    data = controls.read()
    if len(data) == 0:
        raise ValueError("the curve store holds no trained epoch yet")
    last = torch.from_numpy(np.ascontiguousarray(data[-1]))
    p = sum(sizes)
    mids = [split(last[j * p : (j + 1) * p]) for j in range(bends)]
    meta.update(
        epochs_done=int(controls.steps()[-1]),
        train_loss=[float(r[-1]) for r in data],
        store=str(Path(controls.path).parent),
    )
    return Curve(meta["curve"], (a, *mids, b), meta)


# ---------------------------------------------------------------- training
def _epoch_seed(seed: int, epoch: int) -> int:
    return int(
        np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1
    )


def train_curve(
    model_a: Any,
    model_b: Any,
    loss_fn: Any,
    data: Any,
    *,
    kind: str = "bezier",
    bends: int = 1,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    seed: int = 0,
    store: str | Path | None = None,
    save_every: int = 1,
    progress: bool = False,
    call: Any = "auto",
    targets: Any = "auto",
    reduction: Any = "mean",
    weights: Any = None,
) -> Curve:
    """Train a curve of low loss between two fixed models (Garipov et al. 2018).

    Minimises ``E_{t∼U(0,1)} L(θ(t))`` over the bends by mini-batch SGD
    (constant learning rate): one uniform ``t`` per mini-batch, the gradient
    flowing through the curve's weights to the bends. The bends start on the
    straight line.
    BatchNorm layers normalise with each mini-batch's statistics while
    training (running buffers are neither read nor written); other layers
    (dropout) are in eval mode.

    Parameters
    ----------
    model_a, model_b : torch.nn.Module or Alignment
        The ends; neither is changed.
    loss_fn : callable, "output.loss" or dict of named terms
        As everywhere in :mod:`lossmap.nn` (see :mod:`lossmap.nn.batch`).
    data : batch or DataLoader
        Training data in any form of the batch contract (read once).
    kind : {"bezier", "polychain"}, default "bezier"
        Bezier curve of degree ``bends + 1`` (quadratic by default) or a
        polygonal chain through ``bends`` points.
    bends : int, default 1
    epochs : int, default 20
        Total epochs; with a store that already holds ``k`` epochs, only
        epochs ``k+1 … epochs`` run.
    batch_size, lr, momentum, weight_decay : SGD settings
    seed : int, default 0
        Mini-batch order and the ``t`` draws of epoch ``e`` depend only on
        ``(seed, e)``, so a resumed run equals an uninterrupted one.
    store : path, optional
        A folder: ``ends`` (A and B) and ``controls`` (the bends, the
        momentum and the mean training loss after every epoch) snapshot
        stores. Reopening with other settings or other ends is refused.
    save_every : int, default 1
        Save every this many epochs (and always the last).
    progress : bool
        A progress bar over epochs.
    call, targets, reduction, weights
        How the model is called on a batch and the loss read from it (see
        :class:`lossmap.nn.batch.Objective`).

    Returns
    -------
    Curve
    """
    a = _module(model_a, "model_a")
    b = _module(model_b, "model_b")
    _same_parameters(a, b)
    check_choice("kind", kind, CURVES)
    bends = check_int("bends", bends, minimum=1, maximum=16)
    epochs = check_int("epochs", epochs, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_float("lr", lr, minimum=0.0, strict_min=True)
    momentum = check_float("momentum", momentum, minimum=0.0, maximum=1.0)
    weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
    seed = check_int("seed", seed)
    save_every = check_int("save_every", save_every, minimum=1)
    objective = Objective.build(
        loss_fn, call=call, targets=targets, reduction=reduction, weights=weights
    )
    data = materialise(data)
    n_rows = data.n
    start = {n: p.detach().clone() for n, p in a.named_parameters()}
    end = {n: p.detach().to(start[n]).clone() for n, p in b.named_parameters()}
    names = tuple(start)
    n_points = bends + 2
    knots = np.linspace(0.0, 1.0, n_points)
    mids = [
        {
            n: (start[n] + float(s) * (end[n] - start[n])).requires_grad_(True)
            for n in names
        }
        for s in knots[1:-1]
    ]
    leaves = [t for m in mids for t in m.values()]
    opt = torch.optim.SGD(leaves, lr=lr, momentum=momentum, weight_decay=weight_decay)
    dtype = next(iter(start.values())).dtype
    store_dtype = "float64" if dtype == torch.float64 else "float32"
    settings = {
        "kind": "nn.curve",
        "curve": kind,
        "bends": bends,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "seed": seed,
        "objective": objective.describe(),
        "n_samples": n_rows,
        "fingerprint": {
            "ends": _fingerprint([*start.values(), *end.values()]),
            "data": data.fingerprint(),
        },
        "reference": _GARIPOV,
    }
    history: list[float] = []
    first = 1
    controls = None
    if store is not None:
        shapes = [tuple(start[n].shape) for n in names]
        row_names, row_shapes = _row_layout(names, shapes, bends, momentum > 0)
        ends, controls = _open_stores(
            Path(store),
            {
                "settings": settings,
                "names": names,
                "shapes": shapes,
                "row_names": row_names,
                "row_shapes": row_shapes,
                "dtype": store_dtype,
            },
        )
        if len(ends) == 0:
            flat = [torch.cat([p[n].reshape(-1) for n in names]) for p in (start, end)]
            for k, vec in enumerate(flat):
                ends.append(k, vec.detach().cpu().to(torch.float64).numpy())
        if len(controls):
            first = _restore(controls, mids, leaves, opt, names, momentum > 0) + 1
            history = [float(r[-1]) for r in controls.read()]
    work = _bn.working_copy(a)
    device = next(iter(start.values())).device
    with _bn.ModelGuard(work) as guard:
        _bn.configure(guard, work, "batch" if _bn.has_batchnorm(work) else "eval")
        buffers = dict(work.named_buffers())
        with _Progress(progress, max(0, epochs - first + 1)) as advance:
            for epoch in range(first, epochs + 1):
                gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
                order = torch.randperm(n_rows, generator=gen).numpy()
                n_batches = math.ceil(n_rows / batch_size)
                ts = torch.rand(n_batches, generator=gen, dtype=torch.float64)
                total, count = 0.0, 0
                for i in range(n_batches):
                    idx = order[i * batch_size : (i + 1) * batch_size]
                    w = _basis_torch(kind, n_points, ts[i]).to(dtype)
                    params = {
                        n: w[0] * start[n]
                        + sum(w[j + 1] * mids[j][n] for j in range(bends))
                        + w[-1] * end[n]
                        for n in names
                    }
                    loss = _batch_loss(
                        objective,
                        data.take(idx),
                        lambda *args, _p=params, **kwargs: functional_call(
                            work, (_p, buffers), args, kwargs
                        ),
                        device,
                        dtype,
                    )
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                    count += len(idx)
                history.append(total / count)
                if controls is not None and (
                    epoch % save_every == 0 or epoch == epochs
                ):
                    controls.append(epoch, _row(mids, leaves, opt, names, history[-1]))
                advance()
    points = (
        start,
        *({n: t.detach().clone() for n, t in m.items()} for m in mids),
        end,
    )
    meta = {
        **settings,
        "epochs": epochs,
        "epochs_done": max(epochs, first - 1),
        "train_loss": history,
        "store": None if store is None else str(store),
    }
    return Curve(kind, tuple(points), meta)


def _batch_loss(
    objective: Objective, batch: Any, run: Any, device: Any, dtype: torch.dtype
) -> torch.Tensor:
    """The loss of a mini-batch (a :class:`~lossmap.nn.batch.Data`), exact over
    its blocks: every term carried as (sum, count), divided once."""
    totals: list[list[torch.Tensor]] = []
    for block in batch.blocks:
        block = block.to(device, dtype)
        parts = objective.read(objective.forward(run, block), block)
        if not totals:
            totals = [[s, c] for s, c in parts]
        else:
            for tot, (s, c) in zip(totals, parts):
                tot[0], tot[1] = tot[0] + s, tot[1] + c
    loss = torch.zeros((), dtype=dtype, device=device)
    for term, (s, c) in zip(objective.terms, totals):
        value = s if term.reduction == "sum" else s / c
        loss = loss + term.weight * value.to(dtype)
    return loss


def _row(
    mids: list[dict[str, torch.Tensor]],
    leaves: list[torch.Tensor],
    opt: torch.optim.Optimizer,
    names: tuple[str, ...],
    loss: float,
) -> np.ndarray:
    parts = [m[n].detach().reshape(-1) for m in mids for n in names]
    if opt.defaults["momentum"] > 0:
        for t in leaves:
            buf = opt.state.get(t, {}).get("momentum_buffer")
            parts.append((torch.zeros_like(t) if buf is None else buf).reshape(-1))
    parts.append(torch.tensor([loss], dtype=parts[0].dtype, device=parts[0].device))
    return torch.cat([p.detach().cpu().double() for p in parts]).numpy()


def _restore(
    controls: Any,
    mids: list[dict[str, torch.Tensor]],
    leaves: list[torch.Tensor],
    opt: torch.optim.Optimizer,
    names: tuple[str, ...],
    momentum: bool,
) -> int:
    """Load the last saved epoch into the bends and the optimiser; its number."""
    last = torch.from_numpy(np.ascontiguousarray(controls.read()[-1]))
    offset = 0
    with torch.no_grad():
        for m in mids:
            for n in names:
                t = m[n]
                t.copy_(last[offset : offset + t.numel()].reshape(t.shape))
                offset += t.numel()
        if momentum:
            for t in leaves:
                buf = last[offset : offset + t.numel()].reshape(t.shape).to(t)
                opt.state[t]["momentum_buffer"] = buf.clone()
                offset += t.numel()
    return int(controls.steps()[-1])


class _Progress:
    """A rich progress bar over epochs, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.bar = None
        if enabled and total > 0:
            try:
                from rich.progress import Progress
            except ImportError:  # pragma: no cover - rich is optional
                return
            self.bar = Progress(transient=False)
            self.task = self.bar.add_task("training the curve (epochs)", total=total)

    def __enter__(self) -> Any:
        if self.bar is None:
            return lambda: None
        self.bar.start()
        return lambda: self.bar.advance(self.task, 1)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


# ------------------------------------------------------------- along curve
def curve_path(
    curve: Curve,
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    *,
    steps: int = 41,
    bn: str = "auto",
    store: str | Path | None = None,
    chunk: int = 8,
    **options: Any,
) -> Surface:
    """The loss (and metrics) at ``steps`` evenly spaced ``t`` along ``curve``.

    Each point is evaluated by :func:`lossmap.nn.evaluate_params` (a plain
    forward pass over all data); ``bn="auto"`` re-estimates BatchNorm
    statistics at every point when the model has BatchNorm (Garipov et al.
    2018 do the same: the bends have no running statistics of their own).

    Parameters
    ----------
    curve : Curve
    model : torch.nn.Module
        The architecture (its parameters are replaced by the curve's).
    store : path, optional
        A resumable :class:`~lossmap.io.GridStore` on the axis ``t``;
        ``chunk`` points per chunk. Reopening needs the same curve and
        settings.

    Returns
    -------
    Surface
        Axis ``"t"``; fields ``"loss"`` and metrics; metadata
        ``kind="nn.curve_path"``, the curve's settings and ``barrier``.
    """
    if not isinstance(curve, Curve):
        raise TypeError(f"`curve` must be a Curve, got {type(curve).__name__}")
    model = _module(model, "model")
    mode = _bn_mode(model, bn)
    steps = check_int("steps", steps, minimum=2, maximum=10_001)
    chunk = check_int("chunk", chunk, minimum=1)
    ts = np.linspace(0.0, 1.0, steps)
    options = {**options, "bn": mode}

    def at(t: float) -> dict[str, float]:
        return evaluate_params(model, loss_fn, data, curve.params(t), **options)

    first = at(0.0)
    fields = list(first)
    meta = {
        "kind": "nn.curve_path",
        "path": curve.kind,
        "bn": mode,
        "model": type(model).__name__,
        "loss_fn": getattr(loss_fn, "__name__", type(loss_fn).__name__),
        "metrics": [f for f in fields if f != "loss"],
        "curve": {
            k: v
            for k, v in curve.meta.items()
            if k not in ("train_loss", "store", "epochs")
        },
        "fingerprint": {
            "curve": _fingerprint([t for p in curve.points for t in p.values()]),
            "data": materialise(data).fingerprint(),
        },
    }
    out = {f: np.full(steps, np.nan) for f in fields}
    grid_store = None
    todo = [(i,) for i in range(math.ceil(steps / chunk))]
    if store is not None:
        from lossmap.io import GridStore

        grid_store = GridStore.open(
            store, axes={"t": ts}, fields=fields, chunks=(chunk,), metadata=meta
        )
        todo = grid_store.missing()
    for idx in todo:
        sl = slice(idx[0] * chunk, min((idx[0] + 1) * chunk, steps))
        values = [
            first if i == 0 else at(float(ts[i])) for i in range(sl.start, sl.stop)
        ]
        block = {f: np.array([v[f] for v in values]) for f in fields}
        for f in fields:
            out[f][sl] = block[f]
        if grid_store is not None:
            grid_store.write(idx, block)
    if grid_store is not None:
        surface = grid_store.to_surface()
    else:
        surface = Surface(axes={"t": ts}, fields=out, metadata=meta)
    return _as_path(surface, {})
