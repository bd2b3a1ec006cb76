"""Training trajectories: record parameter snapshots, find their PCA plane,
project them onto any plane and compare the true loss with the surface's.

A random plane through the final weights says little about the path that led
there: in a space of millions of dimensions two random directions are nearly
orthogonal to it. Li, Xu, Taylor, Studer & Goldstein ("Visualizing the Loss
Landscape of Neural Nets", NeurIPS 2018, section 7) instead take the top two
principal directions of the matrix of differences between the snapshots and
the final weights; the plane they span holds as much of the path as any plane
through the final weights can (Eckart–Young theorem: a truncated SVD is the
best low-rank approximation in the Frobenius norm).

Usage::

    rec = Recorder(model, every=10)
    for step, (x, y) in enumerate(loader):
        ...  # the user's own optimisation step
        rec(step)
    recording = rec.recording()
    d1, d2, ratio = pca_directions(recording)            # centred on the last
    surface = plane(model, loss_fn, data, (d1, d2), ...)  # around the last
    proj = project(recording, (d1, d2), surface=surface,
                   model=model, loss_fn=loss_fn, data=data)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_int
from lossmap.nn.directions import Direction

__all__ = ["Recorder", "Recording", "pca_directions"]

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
    """

    snapshots: torch.Tensor
    steps: np.ndarray
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    meta: dict[str, Any] = field(default_factory=dict)

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

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recording:
        """Read a recording written by ``Recorder(..., store=path)``."""
        from lossmap.io.snapshots import SnapshotStore

        store = SnapshotStore.attach(path)
        return cls._from_store(store)

    @classmethod
    def _from_store(cls, store: Any) -> Recording:
        data = torch.from_numpy(np.ascontiguousarray(store.read()))
        return cls(
            data,
            _frozen_steps(store.steps()),
            store.names,
            store.shapes,
            {**store.metadata, "store": str(store.path)},
        )


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
        self.model = model
        self.dtype = dtype
        self.names = tuple(n for n, _ in params)
        self.shapes = tuple(tuple(p.shape) for _, p in params)
        self._rows: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._calls = 0
        self._store = None
        if store is not None:
            from lossmap.io.snapshots import SnapshotStore

            self._store = SnapshotStore.open(
                store,
                names=self.names,
                shapes=self.shapes,
                dtype=str(dtype).removeprefix("torch."),
                metadata={"every": self.every},
            )
            self._steps = self._store.steps().tolist()

    def __len__(self) -> int:
        return len(self._steps)

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
        if self._store is not None:
            self._store.append(step, row.numpy())
        else:
            self._rows.append(row)
        self._steps.append(step)
        return True

    __call__ = record

    def recording(self) -> Recording:
        """The snapshots taken so far."""
        if not self._steps:
            raise ValueError("no snapshot recorded yet; call the Recorder first")
        if self._store is not None:
            return Recording._from_store(self._store)
        return Recording(
            torch.stack(self._rows),
            _frozen_steps(self._steps),
            self.names,
            self.shapes,
            {"every": self.every},
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
def pca_directions(
    recording: Recording | Recorder, *, center: Any = "last"
) -> tuple[Direction, Direction, np.ndarray]:
    """The top two principal directions of a trajectory around ``center``.

    With ``X`` the (n, P) matrix of snapshots minus the centre, the directions
    are the top two right singular vectors of ``X`` (unit norm, orthogonal):
    the plane through the centre closest to the snapshots in the least-squares
    sense (Li et al. 2018, section 7; Eckart–Young). The SVD is computed from
    the n×n Gram matrix ``X Xᵀ`` accumulated over column blocks in float64,
    so memory stays O(n² + P).

    Parameters
    ----------
    recording : Recording or Recorder
        At least three snapshots (two besides a snapshot centre).
    center : {"last", "first", "mean"}, int, module, mapping or tensor
        The plane's origin: the final weights (default, as Li et al.), the
        first, the mean snapshot (classic PCA), snapshot ``i``, or given
        parameters.

    Returns
    -------
    d1, d2 : Direction
        In the recording's parameter order and dtype; ``meta`` holds
        ``kind="pca"``, the component, its explained variance ratio, the
        centre and the recorded steps.
    explained_variance_ratio : ndarray of shape (2,)
        ``σ_k² / Σ σ²``: the share of the snapshots' squared distance from
        the centre that each direction captures. Sums to at most 1.

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
    n = len(rec)
    gram = torch.zeros(n, n, dtype=torch.float64)
    for sl in _blocks(n, rec.size):
        xb = rec.snapshots[:, sl].double() - c[sl]
        gram += xb @ xb.T
    evals, evecs = torch.linalg.eigh(gram)
    evals = evals.flip(0).clamp_min(0.0)
    evecs = evecs.flip(1)
    total = float(evals.sum())
    if total <= 0 or float(evals[1]) <= 1e-24 * total:
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
    for sl in _blocks(n, rec.size):
        xb = rec.snapshots[:, sl].double() - c[sl]
        v[:, sl] = (u.T @ xb) / sigma[:, None]
    ratio = (evals[:2] / total).numpy().copy()
    steps = rec.steps.tolist()
    out = []
    for k in range(2):
        meta = {
            "kind": "pca",
            "component": k,
            "explained_variance_ratio": float(ratio[k]),
            "center": center_desc,
            "n_snapshots": n,
            "steps": [steps[0], steps[-1]],
        }
        if "store" in rec.meta:
            meta["store"] = rec.meta["store"]
        vec = v[k].to(rec.snapshots.dtype)
        out.append(Direction(rec.split(vec.clone()), meta))
    return out[0], out[1], ratio
