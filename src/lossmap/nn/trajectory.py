"""Training trajectories: record parameter snapshots, find their PCA plane,
project them onto any plane and compare the true loss with the surface's.

A random plane through the final weights says little about the path that led
there: in a space of millions of dimensions two random directions are nearly
orthogonal to it. Li, Xu, Taylor, Studer & Goldstein ("Visualizing the Loss
Landscape of Neural Nets", NeurIPS 2018, section 7) instead take the top two
principal components of the snapshots. Their reference code
(``github.com/tomgoldstein/loss-landscape``, ``projection.py``,
``setup_PCA_directions``) stacks the differences between each snapshot and
the final weights and fits ``sklearn.decomposition.PCA(n_components=2)``,
which centres the rows on their mean, so the components are those of the
mean-centred snapshots; the surface is then computed on the plane through
the final weights spanned by them, and the path projected onto it.
:func:`pca_directions` does the same by default (``center="mean"``).

Usage::

    rec = Recorder(model, every=10, optimizer=opt)  # also buffers and lr
    for step, (x, y) in enumerate(loader):
        ...  # the user's own optimisation step
        rec(step)
    rec.record(step, force=True)                     # the final weights
    recording = rec.recording()
    d1, d2, ratio = pca_directions(recording)        # mean-centred PCA
    surface = plane(model, loss_fn, data, (d1, d2), span="auto")
    proj = project(recording, (d1, d2), surface=surface,
                   model=model, loss_fn=loss_fn, data=data)

``span="auto"`` makes the grid cover the projected path (plus a margin)
whatever the plane's centre; :func:`path_span` gives such a span from any
projected coordinates.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_float, check_int
from lossmap.nn.directions import Direction
from lossmap.nn.params import select, selection_meta

__all__ = ["Recorder", "Recording", "path_span", "pca_directions"]

#: Folder, inside a recorder's store, of the per-snapshot buffers and rates.
_STATE = "state"
#: Default margin of ``span="auto"``, as a share of the path's extent.
MARGIN = 0.1

_BLOCK = 2**22  # matrix entries processed at once in the blockwise products


def _frozen_steps(steps: Any) -> np.ndarray:
    arr = np.array(steps, dtype=np.int64).reshape(-1)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Recording:
    """Parameter snapshots taken along a training run.

    Attributes
    ----------
    snapshots : torch.Tensor of shape (n, P)
        One flat parameter vector per snapshot, in ``named_parameters()``
        order, on the CPU.
    steps : ndarray of shape (n,)
        The training step of each snapshot (strictly increasing).
    names : tuple of str
        Parameter names, in the order of a row.
    shapes : tuple of tuple of int
        Parameter shapes, in the same order.
    meta : dict
        Provenance (``every``, the store's path when recorded to a store).
    buffers : dict of str to torch.Tensor, or None
        The model's persistent buffers at each snapshot (BatchNorm running
        statistics, ...), each of shape ``(n, *buffer_shape)`` in its own
        dtype; None when not recorded.
    lr : ndarray of shape (n, n_groups) or None
        The optimizer's learning rate of each parameter group at each
        snapshot (``lr[:, 0]`` for a single group); None without an
        optimizer.
    """

    snapshots: torch.Tensor
    steps: np.ndarray
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    meta: dict[str, Any] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor] | None = None
    lr: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = int(self.snapshots.shape[0])
        for name, b in (self.buffers or {}).items():
            if int(b.shape[0]) != n:
                raise ValueError(
                    f"`buffers`[{name!r}] must have one row per snapshot ({n}), "
                    f"got shape {tuple(b.shape)}"
                )
        if self.lr is not None and (self.lr.ndim != 2 or self.lr.shape[0] != n):
            raise ValueError(
                f"`lr` must have shape ({n}, n_groups), got {self.lr.shape}"
            )

    def __len__(self) -> int:
        return int(self.snapshots.shape[0])

    @property
    def size(self) -> int:
        """Number of parameter values P."""
        return int(self.snapshots.shape[1])

    def split(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector of shape (P,) as one tensor per parameter."""
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes):
            n = math.prod(shape)
            out[name] = vector[offset : offset + n].reshape(shape)
            offset += n
        return out

    def params(self, i: int) -> dict[str, torch.Tensor]:
        """Snapshot ``i`` (negative counts from the end) as ``{name: tensor}``."""
        return self.split(self.snapshots[i])

    def buffers_at(self, i: int) -> dict[str, torch.Tensor]:
        """The buffers recorded with snapshot ``i`` (empty if none were)."""
        return {n: b[i] for n, b in (self.buffers or {}).items()}

    def center(self, center: Any = "last") -> dict[str, torch.Tensor]:
        """The parameters at ``center`` as ``{name: tensor}`` (recording dtype).

        ``center`` is ``"last"``, ``"first"``, ``"mean"`` or a snapshot index;
        the result can be passed to ``plane(center=...)``, and
        :func:`~lossmap.nn.project` then recognises the surface's centre.
        """
        vec, _ = _center_vector(self, center)
        return {
            n: t.to(self.snapshots.dtype).clone() for n, t in self.split(vec).items()
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """Read a recording written by ``Recorder(..., store=path)``."""
        from lossmap.io.snapshots import SnapshotStore

        store = SnapshotStore.attach(path)
        return cls._from_store(store)

    @classmethod
    def _from_store(cls, store: Any) -> Recording:
        data = torch.from_numpy(np.ascontiguousarray(store.read()))
        steps = store.steps()
        buffers, lr = None, None
        if (Path(store.path) / _STATE).is_dir():
            from lossmap.io.snapshots import SnapshotStore

            state = SnapshotStore.attach(Path(store.path) / _STATE)
            rows = _state_rows(steps, state.steps())
            if rows is not None:
                buffers, lr = _unpack_state(state, state.read()[rows])
        return cls(
            data,
            _frozen_steps(steps),
            store.names,
            store.shapes,
            {**store.metadata, "store": str(store.path)},
            buffers,
            lr,
        )


def _state_rows(steps: np.ndarray, state_steps: np.ndarray) -> np.ndarray | None:
    """For each snapshot step, the last state row of that step (or None)."""
    last = {int(s): i for i, s in enumerate(state_steps)}
    if not all(int(s) in last for s in steps):
        return None  # an interrupted first write: no state for some rows
    return np.array([last[int(s)] for s in steps], dtype=np.int64)


def _unpack_state(
    state: Any, rows: np.ndarray
) -> tuple[dict[str, torch.Tensor] | None, np.ndarray | None]:
    dtypes = state.metadata.get("buffer_dtypes", {})
    buffers: dict[str, torch.Tensor] = {}
    lrs: list[np.ndarray] = []
    offset = 0
    for name, shape in zip(state.names, state.shapes):
        n = math.prod(shape)
        block = rows[:, offset : offset + n]
        offset += n
        if name.startswith("lr/"):
            lrs.append(block[:, 0])
        else:
            dtype = getattr(torch, dtypes.get(name, "float64"))
            t = torch.from_numpy(np.ascontiguousarray(block))
            buffers[name] = t.reshape(len(rows), *shape).to(dtype)
    lr = np.stack(lrs, axis=1) if lrs else None
    return (buffers or None), lr


class Recorder:
    """Keeps snapshots of a model's parameters during the user's training loop.

    Call it (or :meth:`record`) once per training step; it copies the
    parameters every ``every`` steps. The model is only read.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained.
    every : int, default 1
        Record when ``step % every == 0``.
    store : path-like, optional
        Append each snapshot to a zarr store at this path instead of keeping
        it in memory (an existing store of the same model is continued).
    dtype : torch.dtype, optional
        Storage type; by default the parameters' own (float32 for half and
        bfloat16 models).
    buffers : bool, default True
        Also record the model's persistent buffers (BatchNorm running
        statistics, ...) in their own dtype, so that
        :func:`~lossmap.nn.project` can evaluate each snapshot with its own
        statistics.
    optimizer : torch.optim.Optimizer, optional
        Also record each parameter group's learning rate (``Recording.lr``)
        and, in ``Recording.meta["optimizer"]``, its type and momentum
        settings, e.g. to compare sharpness with the stability threshold
        (``2 / lr`` for plain SGD, ``2 (1 + momentum) / lr`` with momentum)
        along training.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> rec = Recorder(net, every=2)
    >>> for step in range(5):
    ...     with torch.no_grad():
    ...         net.weight += 1.0
    ...     _ = rec(step)
    >>> rec.recording().steps.tolist()
    [0, 2, 4]
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        every: int = 1,
        store: str | os.PathLike[str] | None = None,
        dtype: torch.dtype | None = None,
        buffers: bool = True,
        optimizer: Any = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"`model` must be a torch.nn.Module, got {type(model).__name__}"
            )
        self.every = check_int("every", every, minimum=1)
        params = list(model.named_parameters())
        if not params:
            raise ValueError("`model` has no parameters to record")
        if dtype is None:
            dtype = params[0][1].dtype
            if dtype not in (torch.float32, torch.float64):
                dtype = torch.float32
        if dtype not in (torch.float16, torch.float32, torch.float64):
            raise ValueError(
                f"`dtype` must be torch.float16, float32 or float64, got {dtype}"
            )
        if not isinstance(buffers, bool):
            raise TypeError(f"`buffers` must be True or False, got {buffers!r}")
        if optimizer is not None and not isinstance(
            getattr(optimizer, "param_groups", None), list
        ):
            raise TypeError(
                f"`optimizer` must be a torch.optim.Optimizer (with param_groups), "
                f"got {type(optimizer).__name__}"
            )
        self.model = model
        self.optimizer = optimizer
        self.dtype = dtype
        self.names = tuple(n for n, _ in params)
        self.shapes = tuple(tuple(p.shape) for _, p in params)
        persistent = set(model.state_dict())
        self.buffer_names = (
            tuple(n for n, _ in model.named_buffers() if n in persistent)
            if buffers
            else ()
        )
        self._rows: list[torch.Tensor] = []
        self._buffer_rows: list[dict[str, torch.Tensor]] = []
        self._lr_rows: list[list[float]] = []
        self._steps: list[int] = []
        self._calls = 0
        self._store = None
        self._state = None
        if store is not None:
            from lossmap.io.snapshots import SnapshotStore

            self._store = SnapshotStore.open(
                store,
                names=self.names,
                shapes=self.shapes,
                dtype=str(dtype).removeprefix("torch."),
                metadata=self._meta(),
            )
            self._steps = self._store.steps().tolist()
            self._state = self._open_state(Path(store))

    def __len__(self) -> int:
        return len(self._steps)

    def _current_buffers(self) -> dict[str, torch.Tensor]:
        bufs = dict(self.model.named_buffers())
        missing = [n for n in self.buffer_names if n not in bufs]
        if missing:
            raise ValueError(
                f"the model's buffers changed since the Recorder was made "
                f"(missing {missing[:3]})"
            )
        return {n: bufs[n].detach().to("cpu").clone() for n in self.buffer_names}

    def _meta(self) -> dict[str, Any]:
        """``every`` and, with an optimizer, its type and momentum settings
        (first parameter group), which set the stability threshold that
        :func:`~lossmap.nn.curvature.sharpness` draws."""
        meta: dict[str, Any] = {"every": self.every}
        if self.optimizer is not None:
            group = self.optimizer.param_groups[0]
            opt: dict[str, Any] = {"name": type(self.optimizer).__name__}
            for key in ("momentum", "dampening"):
                if isinstance(group.get(key), int | float) and not isinstance(
                    group.get(key), bool
                ):
                    opt[key] = float(group[key])
            if isinstance(group.get("nesterov"), bool):
                opt["nesterov"] = group["nesterov"]
            meta["optimizer"] = opt
        return meta

    def _current_lr(self) -> list[float]:
        if self.optimizer is None:
            return []
        groups = self.optimizer.param_groups
        if not all("lr" in g for g in groups):
            raise ValueError(
                f"`optimizer` ({type(self.optimizer).__name__}) has a parameter "
                f"group without a learning rate ('lr'); record without it"
            )
        return [float(g["lr"]) for g in groups]

    def _open_state(self, path: Path) -> Any:
        """A side store for buffers and learning rates (None if neither)."""
        names, shapes = [], []
        dtypes = {}
        for n, b in self._current_buffers().items():
            names.append(n)
            shapes.append(tuple(b.shape))
            dtypes[n] = str(b.dtype).removeprefix("torch.")
        for k in range(len(self._current_lr())):
            names.append(f"lr/{k}")
            shapes.append(())
        if not names:
            return None
        from lossmap.io.snapshots import SnapshotStore

        return SnapshotStore.open(
            path / _STATE,
            names=names,
            shapes=shapes,
            dtype="float64",
            metadata={"buffer_dtypes": dtypes},
        )

    def _snapshot(self) -> torch.Tensor:
        params = dict(self.model.named_parameters())
        if tuple(params) != self.names or any(
            tuple(params[n].shape) != s for n, s in zip(self.names, self.shapes)
        ):
            raise ValueError(
                "the model's parameters changed names or shapes since the "
                "Recorder was made"
            )
        with torch.no_grad():
            return torch.cat(
                [
                    params[n].detach().reshape(-1).to("cpu", self.dtype)
                    for n in self.names
                ]
            )

    def record(self, step: int | None = None, *, force: bool = False) -> bool:
        """Take a snapshot if ``step`` is a multiple of ``every`` (or ``force``).

        Parameters
        ----------
        step : int, optional
            The training step; by default the number of earlier calls.
        force : bool, default False
            Record regardless of ``every`` (e.g. the final weights).

        Returns
        -------
        bool
            Whether a snapshot was taken.
        """
        if step is None:
            step = self._calls
        step = check_int("step", step, minimum=0)
        self._calls += 1
        if not force and step % self.every:
            return False
        if self._steps and step <= self._steps[-1]:
            if step == self._steps[-1]:
                return False  # already recorded (e.g. a forced final step)
            raise ValueError(
                f"`step` must increase, got {step} after {self._steps[-1]}"
            )
        row = self._snapshot()
        bufs = self._current_buffers()
        lr = self._current_lr()
        if self._store is not None:
            if self._state is not None:  # first: a row without state is dropped
                flat = [b.double().reshape(-1) for b in bufs.values()]
                flat.append(torch.tensor(lr, dtype=torch.float64))
                self._state.append(step, torch.cat(flat).numpy())
            self._store.append(step, row.numpy())
        else:
            self._rows.append(row)
            self._buffer_rows.append(bufs)
            self._lr_rows.append(lr)
        self._steps.append(step)
        return True

    __call__ = record

    def recording(self) -> Recording:
        """The snapshots taken so far."""
        if not self._steps:
            raise ValueError("no snapshot recorded yet; call the Recorder first")
        if self._store is not None:
            return Recording._from_store(self._store)
        buffers = {
            n: torch.stack([row[n] for row in self._buffer_rows])
            for n in self.buffer_names
        }
        lr = np.array(self._lr_rows, dtype=np.float64) if self.optimizer else None
        return Recording(
            torch.stack(self._rows),
            _frozen_steps(self._steps),
            self.names,
            self.shapes,
            self._meta(),
            buffers or None,
            lr,
        )


# ----------------------------------------------------------------- helpers
def _as_recording(obj: Any) -> Recording:
    if isinstance(obj, Recorder):
        return obj.recording()
    if isinstance(obj, Recording):
        return obj
    raise TypeError(
        f"`recording` must be a Recording or a Recorder, got {type(obj).__name__}"
    )


def _center_vector(rec: Recording, center: Any) -> tuple[torch.Tensor, Any]:
    """The centre as a float64 vector (P,) and a JSON-friendly description."""
    if isinstance(center, str):
        if center == "last":
            return rec.snapshots[-1].double(), "last"
        if center == "first":
            return rec.snapshots[0].double(), "first"
        if center == "mean":
            return rec.snapshots.double().mean(dim=0), "mean"
        raise ValueError(
            f"`center` must be 'last', 'first', 'mean', a snapshot index, a "
            f"module or a parameter mapping, got {center!r}"
        )
    if isinstance(center, int | np.integer) and not isinstance(center, bool):
        n = len(rec)
        if not -n <= int(center) < n:
            raise ValueError(
                f"`center` index must be in [{-n}, {n}), got {int(center)}"
            )
        return rec.snapshots[int(center)].double(), int(center) % n
    if isinstance(center, nn.Module):
        center = dict(center.named_parameters())
    if isinstance(center, Mapping):
        if tuple(center) != rec.names or any(
            tuple(center[n].shape) != s for n, s in zip(rec.names, rec.shapes)
        ):
            raise ValueError(
                "`center` must have the recorded parameters (same names, order "
                "and shapes)"
            )
        vec = torch.cat(
            [center[n].detach().reshape(-1).cpu().double() for n in rec.names]
        )
        return vec, "given"
    if isinstance(center, torch.Tensor):
        if tuple(center.shape) != (rec.size,):
            raise ValueError(
                f"`center` must have shape ({rec.size},), got {tuple(center.shape)}"
            )
        return center.detach().cpu().double(), "given"
    raise TypeError(
        f"`center` must be 'last', 'first', 'mean', an index, a module, a "
        f"mapping or a tensor, got {type(center).__name__}"
    )


def _blocks(n_rows: int, size: int) -> list[slice]:
    step = max(1, _BLOCK // max(n_rows, 1))
    return [slice(i, min(i + step, size)) for i in range(0, size, step)]


def _directions_matrix(
    directions: Sequence[Direction], rec: Recording
) -> list[torch.Tensor]:
    out = []
    for k, d in enumerate(directions):
        if not isinstance(d, Direction):
            raise TypeError(
                f"`directions[{k}]` must be a Direction, got {type(d).__name__}"
            )
        if d.names != rec.names or any(
            tuple(d.tensors[n].shape) != s for n, s in zip(rec.names, rec.shapes)
        ):
            raise ValueError(
                f"`directions[{k}]` must cover the recorded parameters (same "
                f"names, order and shapes)"
            )
        out.append(d.flat().detach().cpu().double())
    return out


# ---------------------------------------------------------------------- PCA
def _selection_mask(rec: Recording, recording: Any, params: Any) -> torch.Tensor | None:
    """1.0 on the columns of the selected parameters, 0.0 elsewhere."""
    if params is None:
        return None
    source = recording.model if isinstance(recording, Recorder) else rec.params(-1)
    keep = select(source, params)
    parts = [
        torch.full((math.prod(shape),), float(name in keep), dtype=torch.float64)
        for name, shape in zip(rec.names, rec.shapes)
    ]
    return torch.cat(parts)


def pca_directions(
    recording: Recording | Recorder, *, center: Any = "mean", params: Any = None
) -> tuple[Direction, Direction, np.ndarray]:
    """The top two principal directions of a trajectory.

    With ``X`` the (n, P) matrix of snapshots minus ``center``, the
    directions are the top two right singular vectors of ``X`` (unit norm,
    orthogonal). By default the centre is the mean snapshot: this is
    principal component analysis, and reproduces Li et al.'s reference code
    (Li, Xu, Taylor, Studer & Goldstein, NeurIPS 2018, section 7;
    ``tomgoldstein/loss-landscape``, ``projection.py``, which fits
    ``sklearn.decomposition.PCA(n_components=2)`` to the snapshots'
    differences from the final weights; the mean-centring inside ``PCA``
    makes those the components of the mean-centred snapshots). The SVD is
    computed from the n×n Gram matrix ``X Xᵀ`` accumulated over column
    blocks in float64, so memory stays O(n² + P).

    Parameters
    ----------
    recording : Recording or Recorder
        At least two snapshots (three for a snapshot centre).
    center : {"mean", "last", "first"}, int, module, mapping or tensor
        What is subtracted before the SVD. ``"mean"`` (default): PCA, as the
        reference. ``"last"``: the uncentred SVD about the final weights
        (lossmap's default before version 0.2; the best plane *through* the
        final weights rather than through the mean); ``"first"``, snapshot
        ``i``, or given parameters likewise.
    params : selection, optional
        Restrict the PCA to these parameters (:func:`lossmap.nn.select`):
        the other columns are ignored and the directions are exactly zero
        there. A module in the selection needs a :class:`Recorder` (which
        knows the model) or ``params=lossmap.nn.select(model, module)``.

    Returns
    -------
    d1, d2 : Direction
        In the recording's parameter order and dtype. ``meta`` holds
        ``kind="pca"``, the component, its explained variance ratio, the
        centre, the recorded steps, ``params`` when given, and
        ``path_dot_range``: the smallest and largest ``⟨θ_i, d⟩`` over the
        snapshots, from which ``plane(span="auto")`` finds where the path
        lies on a plane through any centre.
    explained_variance_ratio : ndarray of shape (2,)
        ``σ_k² / Σ σ²``: the share of the snapshots' squared distance from
        the centre (their total variance for ``"mean"``) that each direction
        captures. Sums to at most 1.

    Notes
    -----
    Signs are fixed so that the snapshot farthest along each direction has a
    positive coordinate.
    """
    rec = _as_recording(recording)
    if len(rec) < 2:
        raise ValueError(
            f"`recording` must hold at least 2 snapshots for a PCA plane, got "
            f"{len(rec)}"
        )
    c, center_desc = _center_vector(rec, center)
    mask = _selection_mask(rec, recording, params)
    n = len(rec)

    def rows(sl: slice) -> torch.Tensor:
        xb = rec.snapshots[:, sl].double() - c[sl]
        return xb if mask is None else xb * mask[sl]

    gram = torch.zeros(n, n, dtype=torch.float64)
    blocks = _blocks(n, rec.size)
    for sl in blocks:
        xb = rows(sl)
        gram += xb @ xb.T
    evals, evecs = torch.linalg.eigh(gram)
    evals = evals.flip(0).clamp_min(0.0)
    evecs = evecs.flip(1)
    total = float(evals.sum())
    # the Gram matrix's eigenvalues carry errors ~1e-16 λ₁, so σ₂ below
    # 1e-6 σ₁ is a line up to rounding (and its direction would be noise)
    if total <= 0 or float(evals[1]) <= 1e-12 * float(evals[0]):
        raise ValueError(
            "the snapshots span fewer than two dimensions around `center` "
            "(all equal, or all on one line); a PCA plane is not defined"
        )
    u = evecs[:, :2]
    for k in range(2):  # deterministic signs
        if float(u[int(torch.argmax(u[:, k].abs())), k]) < 0:
            u[:, k] = -u[:, k]
    sigma = evals[:2].sqrt()
    v = torch.empty(2, rec.size, dtype=torch.float64)
    c_dot = torch.zeros(2, dtype=torch.float64)
    for sl in blocks:
        v[:, sl] = (u.T @ rows(sl)) / sigma[:, None]
        c_dot += v[:, sl] @ c[sl]
    # <θ_i, v_k> = <θ_i − c, v_k> + <c, v_k>, and <θ_i − c, v_k> = (U Σ)_ik
    dots = (u * sigma).T + c_dot[:, None]  # (2, n)
    ratio = (evals[:2] / total).numpy().copy()
    steps = rec.steps.tolist()
    sel = (
        selection_meta(
            recording.model if isinstance(recording, Recorder) else rec.params(-1),
            params,
        )
        if params is not None
        else None
    )
    out = []
    for k in range(2):
        meta = {
            "kind": "pca",
            "component": k,
            "explained_variance_ratio": float(ratio[k]),
            "center": center_desc,
            "n_snapshots": n,
            "steps": [steps[0], steps[-1]],
            "path_dot_range": [float(dots[k].min()), float(dots[k].max())],
        }
        if sel is not None:
            meta["params"] = sel
        if "store" in rec.meta:
            meta["store"] = rec.meta["store"]
        vec = v[k].to(rec.snapshots.dtype)
        out.append(Direction(rec.split(vec.clone()), meta))
    return out[0], out[1], ratio


# ------------------------------------------------------------- grid spans
def path_span(coords: Any, *, margin: float = MARGIN) -> list[tuple[float, float]]:
    """Per axis, a ``(lo, hi)`` span covering ``coords`` and the origin.

    Parameters
    ----------
    coords : array-like of shape (n, k)
        Projected coordinates, e.g. ``Projection.coords``.
    margin : float, default 0.1
        Added on each side, as a share of the covered extent.

    Returns
    -------
    list of k (lo, hi) pairs, ready for ``plane(span=...)`` (k = 2) or
    ``line(span=...)`` (k = 1, take ``[0]``).

    Examples
    --------
    >>> path_span([[0.0, -1.0], [2.0, 1.0]], margin=0.25)
    [(-0.5, 2.5), (-1.5, 1.5)]
    """
    arr = np.asarray(coords, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"`coords` must be a finite (n, k) array of projected coordinates, "
            f"got shape {np.shape(coords)}"
        )
    margin = check_float("margin", margin, minimum=0.0)
    out = []
    for k in range(arr.shape[1]):
        lo = min(float(arr[:, k].min()), 0.0)
        hi = max(float(arr[:, k].max()), 0.0)
        width = hi - lo
        if width <= 0:
            width = 1.0  # every point at the origin: a unit window
        out.append((lo - margin * width, hi + margin * width))
    return out


def _path_extent(
    metas: Sequence[Mapping[str, Any]],
    directions: Sequence[Mapping[str, torch.Tensor]],
    center: Mapping[str, torch.Tensor],
) -> np.ndarray | None:
    """(2, k) lowest and highest path coordinates on a plane through ``center``.

    None unless every direction records ``path_dot_range`` (PCA directions)
    and is still the unit vector PCA made (a direction restricted or scaled
    afterwards no longer matches its recorded range). Uses that the
    directions are orthonormal: coordinates are then ``⟨θ_i − c, d⟩``.
    """
    if not metas or not all("path_dot_range" in m for m in metas):
        return None
    flat = [
        torch.cat([t.detach().reshape(-1).double().cpu() for t in d.values()])
        for d in directions
    ]
    cvec = torch.cat(
        [center[n].detach().reshape(-1).double().cpu() for n in directions[0]]
    )
    first = next(iter(directions[0].values()))
    tol = max(1e-4, 10 * torch.finfo(first.dtype).eps)  # rounding of d's dtype
    if any(abs(float(d @ d) - 1.0) > tol for d in flat):
        return None
    if len(flat) == 2 and abs(float(flat[0] @ flat[1])) > tol:
        return None
    out = np.empty((2, len(flat)))
    for k, (m, d) in enumerate(zip(metas, flat)):
        nn2 = float(d @ d)
        shift = float(d @ cvec)
        lo, hi = m["path_dot_range"]
        out[:, k] = [(lo - shift) / nn2, (hi - shift) / nn2]
    return out


def fit_spans(
    span: Any,
    metas: Sequence[Mapping[str, Any]],
    directions: Sequence[Mapping[str, torch.Tensor]],
    center: Mapping[str, torch.Tensor],
) -> list[tuple[float, float]] | None:
    """``span="auto"`` resolved, or a warning when a given span cuts the path.

    Called by ``plane``/``line`` once the directions and centre are known.
    Returns the spans for ``"auto"``, else None (keep the given ones).
    ``span`` is ``"auto"`` or the already-parsed list of (lo, hi) pairs.
    """
    extent = _path_extent(metas, directions, center)
    if isinstance(span, str):
        if extent is None:
            raise ValueError(
                "`span`='auto' needs PCA directions as "
                "lossmap.nn.pca_directions made them (unit, orthogonal, "
                "unchanged: they record where the path lies); for other "
                "directions give numbers, e.g. "
                "span=lossmap.nn.path_span(project(recording, directions).coords)"
            )
        return path_span(extent)
    if extent is not None:
        names = ("alpha", "beta")
        cut = [
            f"{names[k]} ∈ [{extent[0, k]:.3g}, {extent[1, k]:.3g}]"
            for k, (lo, hi) in enumerate(span)
            if extent[0, k] < lo or extent[1, k] > hi
        ]
        if cut:
            warnings.warn(
                f"the recorded path runs over {', '.join(cut)}, beyond the "
                f"given `span`; part of it lies off the grid (span='auto' "
                f"covers it)",
                stacklevel=3,
            )
    return None
