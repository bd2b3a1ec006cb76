"""Project recorded snapshots onto a line or plane and check its faithfulness.

For a plane through ``c`` spanned by ``d1, d2`` (any two directions, not
necessarily orthogonal or unit), each snapshot ``x`` gets the least-squares
coordinates ``(α, β) = argmin ‖x − c − α d1 − β d2‖`` (normal equations with
the 2×2 Gram matrix of the directions), its distance off the plane (the norm
of that residual), its true loss at ``x``, and the surface's value at
``(α, β)`` by bilinear interpolation. Where the distance is small next to
``‖x − c‖`` and the two losses agree, the picture tells the truth about the
path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap.nn.directions import Direction
from lossmap.nn.trajectory import (
    Recorder,
    Recording,
    _as_recording,
    _blocks,
    _center_vector,
    _directions_matrix,
)
from lossmap.surface import Surface

__all__ = ["Projection", "project", "surface_at"]


def _ro(arr: Any, dtype: Any = np.float64) -> np.ndarray:
    out = np.array(arr, dtype=dtype, copy=True)
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class Projection:
    """Snapshots of a trajectory seen in a line or plane.

    Attributes
    ----------
    steps : ndarray of shape (n,)
        Training step of each snapshot.
    coords : ndarray of shape (n, k)
        Least-squares coordinates along the k = 1 or 2 directions.
    distance : ndarray of shape (n,)
        Euclidean distance of each snapshot from the line/plane.
    offset : ndarray of shape (n,)
        Distance of each snapshot from the centre, ``‖x − c‖``.
    axes : tuple of str
        Axis names (the surface's, else ``("alpha", "beta")``).
    true_loss : ndarray of shape (n,) or None
        Loss at each snapshot's own parameters (when a model was given).
    surface_loss : ndarray of shape (n,) or None
        The surface's loss at the projected coordinates, NaN outside its grid
        (when a surface was given).
    true_metrics : dict of str to ndarray of shape (n,)
        Other values the evaluation returned (e.g. ``accuracy``).
    meta : dict
        The centre and direction kinds.
    """

    steps: np.ndarray
    coords: np.ndarray
    distance: np.ndarray
    offset: np.ndarray
    axes: tuple[str, ...]
    true_loss: np.ndarray | None = None
    surface_loss: np.ndarray | None = None
    true_metrics: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.steps.size)

    @property
    def relative_distance(self) -> np.ndarray:
        """``distance / offset`` (0 where a snapshot is the centre), shape (n,)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(self.offset > 0, self.distance / self.offset, 0.0)
        return out

    @property
    def loss_gap(self) -> np.ndarray | None:
        """``surface_loss − true_loss``, shape (n,), when both are known."""
        if self.true_loss is None or self.surface_loss is None:
            return None
        return self.surface_loss - self.true_loss


def surface_at(surface: Surface, coords: Any, *, field: str = "loss") -> np.ndarray:
    """Interpolate a field of ``surface`` at arbitrary coordinates.

    Linear along a 1-D surface, bilinear on a 2-D one; NaN outside the grid
    (and where a neighbouring grid value is NaN).

    Parameters
    ----------
    surface : Surface
    coords : array-like of shape (m, ndim) or (ndim,)
    field : str, default "loss"

    Returns
    -------
    ndarray of shape (m,) (or a 0-d array for one point)
    """
    if not isinstance(surface, Surface):
        raise TypeError(f"`surface` must be a Surface, got {type(surface).__name__}")
    pts = np.asarray(coords, dtype=np.float64)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    if pts.shape[-1] != surface.ndim:
        raise ValueError(
            f"`coords` must have {surface.ndim} column(s) for this "
            f"{surface.ndim}-D surface, got shape {np.shape(coords)}"
        )
    values = surface.field(field)
    axes = [surface.coords(k) for k in range(surface.ndim)]
    pos, weights = [], []
    inside = np.ones(len(pts), dtype=bool)
    for k, ax in enumerate(axes):
        x = pts[:, k]
        if ax.size == 1:
            inside &= x == ax[0]
            pos.append(np.zeros(len(pts), dtype=int))
            weights.append(np.zeros(len(pts)))
            continue
        inside &= (x >= ax[0]) & (x <= ax[-1])
        i = np.clip(np.searchsorted(ax, x, side="right") - 1, 0, ax.size - 2)
        t = (x - ax[i]) / (ax[i + 1] - ax[i])
        pos.append(i)
        weights.append(np.clip(t, 0.0, 1.0))
    out = np.zeros(len(pts))
    corners = [(0,), (1,)] if surface.ndim == 1 else [(0, 0), (0, 1), (1, 0), (1, 1)]
    for corner in corners:
        w = np.ones(len(pts))
        idx = []
        for k, c in enumerate(corner):
            w = w * (weights[k] if c else 1.0 - weights[k])
            idx.append(np.minimum(pos[k] + c, axes[k].size - 1))
        v = values[tuple(idx)]
        # a NaN at a corner of weight 0 must not leak in (0 * NaN is NaN)
        out = out + np.where(w > 0, w * v, 0.0)
    out[~inside] = np.nan
    return out[0] if single else out


def _true_values(
    rec: Recording,
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    evaluate_kwargs: Mapping[str, Any],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from lossmap import nn as lnn

    params = dict(model.named_parameters())
    if tuple(params) != rec.names:
        raise ValueError("`model` must have the recorded parameters (same names)")
    losses, metrics = [], {}
    for i in range(len(rec)):
        snap = {
            n: t.to(device=params[n].device, dtype=params[n].dtype)
            for n, t in rec.params(i).items()
        }
        value = lnn.evaluate_params(model, loss_fn, data, snap, **evaluate_kwargs)
        if isinstance(value, Mapping):
            losses.append(float(value["loss"]))
            for k, v in value.items():
                if k != "loss":
                    metrics.setdefault(k, []).append(float(v))
        else:
            losses.append(float(value))
    return _ro(losses), {k: _ro(v) for k, v in metrics.items()}


def project(
    recording: Recording | Recorder,
    directions: Direction | Sequence[Direction],
    *,
    center: Any = None,
    surface: Surface | None = None,
    model: nn.Module | None = None,
    loss_fn: Any = None,
    data: Any = None,
    evaluate_kwargs: Mapping[str, Any] | None = None,
) -> Projection:
    """Coordinates, distance off the plane, and true vs surface loss per snapshot.

    Parameters
    ----------
    recording : Recording or Recorder
        The trajectory.
    directions : Direction or pair of Directions
        The line or plane's directions (e.g. from :func:`pca_directions`, or
        the directions a surface was computed with).
    center : optional
        The plane's origin (see :func:`pca_directions`). By default the
        centre PCA directions were made with, else the last snapshot (the
        final weights, where planes are usually centred).
    surface : Surface, optional
        The surface computed on this line/plane; gives ``surface_loss``.
    model, loss_fn, data : optional
        Give all three to compute ``true_loss`` with
        :func:`lossmap.nn.evaluate_params` at every snapshot (the model's
        buffers, e.g. BatchNorm statistics, are the current ones).
    evaluate_kwargs : mapping, optional
        Extra keyword arguments of ``evaluate_params`` (e.g. ``metrics``).

    Returns
    -------
    Projection
    """
    rec = _as_recording(recording)
    dirs = [directions] if isinstance(directions, Direction) else list(directions)
    if not 1 <= len(dirs) <= 2:
        raise ValueError(
            f"`directions` must be one Direction or a pair, got {len(dirs)}"
        )
    mat = _directions_matrix(dirs, rec)
    if center is None:
        spec = dirs[0].meta.get("center") if dirs[0].meta.get("kind") == "pca" else None
        center = spec if isinstance(spec, str | int) else "last"
    c, center_desc = _center_vector(rec, center)
    k = len(mat)
    if surface is not None:
        if not isinstance(surface, Surface):
            raise TypeError(
                f"`surface` must be a Surface, got {type(surface).__name__}"
            )
        if surface.ndim != k:
            raise ValueError(
                f"`surface` must have {k} axis/axes to match {k} direction(s), "
                f"got {surface.ndim}"
            )
    given = [x is not None for x in (model, loss_fn, data)]
    if any(given) and not all(given):
        raise ValueError(
            "give `model`, `loss_fn` and `data` together to compute the true loss"
        )
    n = len(rec)
    gram = torch.zeros(k, k, dtype=torch.float64)
    rhs = torch.zeros(n, k, dtype=torch.float64)
    offset2 = torch.zeros(n, dtype=torch.float64)
    blocks = _blocks(n + k, rec.size)
    for sl in blocks:
        xb = rec.snapshots[:, sl].double() - c[sl]
        db = torch.stack([m[sl] for m in mat])  # (k, b)
        gram += db @ db.T
        rhs += xb @ db.T
        offset2 += (xb * xb).sum(dim=1)
    if float(torch.linalg.matrix_rank(gram)) < k:
        raise ValueError(
            "`directions` are zero or parallel; they span no "
            + ("line" if k == 1 else "plane")
        )
    coords = torch.linalg.solve(gram, rhs.T).T  # (n, k)
    resid2 = torch.zeros(n, dtype=torch.float64)
    for sl in blocks:
        xb = rec.snapshots[:, sl].double() - c[sl]
        db = torch.stack([m[sl] for m in mat])
        r = xb - coords @ db
        resid2 += (r * r).sum(dim=1)
    coords_np = coords.numpy()
    axes = surface.names if surface is not None else ("alpha", "beta")[:k]
    true_loss, metrics = None, {}
    if all(given):
        true_loss, metrics = _true_values(
            rec, model, loss_fn, data, dict(evaluate_kwargs or {})
        )
    surface_loss = None
    if surface is not None:
        surface_loss = _ro(surface_at(surface, coords_np))
    return Projection(
        steps=rec.steps,
        coords=_ro(coords_np),
        distance=_ro(np.sqrt(resid2.numpy())),
        offset=_ro(np.sqrt(offset2.numpy())),
        axes=tuple(axes),
        true_loss=true_loss,
        surface_loss=surface_loss,
        true_metrics=metrics,
        meta={
            "center": center_desc,
            "directions": [d.meta.get("kind", "user") for d in dirs],
        },
    )
