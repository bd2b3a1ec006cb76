"""Curves in parameter space between two fixed models, and their training.

The machinery behind :func:`lossmap.nn.connect.train_curve` and
:class:`~lossmap.nn.connect.Curve` (see :mod:`lossmap.nn.connect` for the
method and its references): control-point weights (Bernstein polynomials for
a Bezier curve, hat functions for a polygonal chain), the training loop
through ``torch.func.functional_call`` and the nn.batch objective, and the
two snapshot stores that make training resumable.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn import _bn
from lossmap.nn._split import forward_passes
from lossmap.nn.batch import Objective, materialise
from lossmap.nn.directions import Direction, plane_through

__all__ = ["CURVES", "Curve", "train_curve"]

#: Curve families accepted by :func:`train_curve`.
CURVES = ("bezier", "polychain")
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


def _fingerprint(tensors: Any) -> str:
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous()
        h.update(str((tuple(a.shape), str(a.dtype))).encode())
        h.update(a.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


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
    first, history, controls = 1, [], None
    if store is not None:
        first, history, controls = _resume(
            Path(store), settings, start, end, mids, leaves, opt, momentum > 0
        )
    work = _bn.working_copy(a)
    curve = (kind, start, mids, end)
    with _bn.ModelGuard(work) as guard:
        _bn.configure(guard, work, "batch" if _bn.has_batchnorm(work) else "eval")
        buffers = dict(work.named_buffers())
        with _Progress(progress, max(0, epochs - first + 1)) as advance:
            for epoch in range(first, epochs + 1):
                gen = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
                history.append(
                    _epoch(objective, data, curve, work, buffers, opt, gen, batch_size)
                )
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


def _resume(
    store: Path,
    settings: dict[str, Any],
    start: dict[str, torch.Tensor],
    end: dict[str, torch.Tensor],
    mids: list[dict[str, torch.Tensor]],
    leaves: list[torch.Tensor],
    opt: torch.optim.Optimizer,
    has_momentum: bool,
) -> tuple[int, list[float], Any]:
    """Open (or create) the curve's stores; restore the bends and momentum of
    the last saved epoch. Returns the first epoch to run, the training loss
    history so far and the controls store."""
    names = tuple(start)
    shapes = [tuple(start[n].shape) for n in names]
    bends = len(mids)
    row_names, row_shapes = _row_layout(names, shapes, bends, has_momentum)
    dtype = next(iter(start.values())).dtype
    ends, controls = _open_stores(
        store,
        {
            "settings": settings,
            "names": names,
            "shapes": shapes,
            "row_names": row_names,
            "row_shapes": row_shapes,
            "dtype": "float64" if dtype == torch.float64 else "float32",
        },
    )
    if len(ends) == 0:
        flat = [torch.cat([p[n].reshape(-1) for n in names]) for p in (start, end)]
        for k, vec in enumerate(flat):
            ends.append(k, vec.detach().cpu().to(torch.float64).numpy())
    if not len(controls):
        return 1, [], controls
    first = _restore(controls, mids, leaves, opt, names, has_momentum) + 1
    return first, [float(r[-1]) for r in controls.read()], controls


def _epoch(
    objective: Objective,
    data: Any,
    curve: tuple[str, dict[str, torch.Tensor], list[Any], dict[str, torch.Tensor]],
    work: nn.Module,
    buffers: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
    batch_size: int,
) -> float:
    """One epoch of SGD on the bends: a uniform ``t`` per mini-batch (drawn
    from ``gen`` after the order), the loss at the curve's point ``θ(t)``
    through ``work`` (a working copy). Returns the epoch's mean training loss."""
    kind, start, mids, end = curve
    names, n_points = tuple(start), len(mids) + 2
    dtype = next(iter(start.values())).dtype
    device = next(iter(start.values())).device
    order = torch.randperm(data.n, generator=gen).numpy()
    n_batches = math.ceil(data.n / batch_size)
    ts = torch.rand(n_batches, generator=gen, dtype=torch.float64)
    total, count = 0.0, 0
    for i in range(n_batches):
        idx = order[i * batch_size : (i + 1) * batch_size]
        w = _basis_torch(kind, n_points, ts[i]).to(dtype)
        params = {
            n: w[0] * start[n]
            + sum(w[j + 1] * mids[j][n] for j in range(len(mids)))
            + w[-1] * end[n]
            for n in names
        }
        with forward_passes():  # never while another thread traces
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
    return total / count


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
