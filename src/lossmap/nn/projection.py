"""Project recorded snapshots onto a line or plane and check its faithfulness.

For a plane through ``c`` spanned by ``d1, d2`` (any two directions, not
necessarily orthogonal or unit), each snapshot ``x`` gets the least-squares
coordinates ``(α, β) = argmin ‖x − c − α d1 − β d2‖`` (normal equations with
the 2×2 Gram matrix of the directions), its distance off the plane (the norm
of that residual), its true loss at ``x``, and the surface's value at
``(α, β)`` by bilinear interpolation. Where the distance is small next to
``‖x − c‖`` and the two losses agree, the picture tells the truth about the
path.

A surface is read only at its own coordinates: :func:`project` checks the
fingerprints a surface records (of its centre and directions) against the
centre and directions it projects with, and refuses a mismatch. Snapshots
that fall outside the surface's grid are counted and reported. The true loss
uses each snapshot's own buffers (BatchNorm running statistics) when the
recording has them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap.nn import _bn
from lossmap.nn._prepare import _fingerprint
from lossmap.nn.directions import Direction
from lossmap.nn.evaluate import evaluate_params
from lossmap.nn.trajectory import (
    Recorder,
    Recording,
    _as_recording,
    _blocks,
    _center_vector,
    _directions_matrix,
)
from lossmap.surface import Surface

__all__ = ["Projection", "evaluate_snapshots", "project", "surface_at"]


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
    outside : ndarray of bool, shape (n,), or None
        Whether each snapshot lies outside the surface's grid (when a surface
        was given); such snapshots have a NaN ``surface_loss``.
    meta : dict
        The centre, direction kinds, BatchNorm handling of the true loss
        (``bn``) and the number of snapshots ``outside`` the grid.
    """

    steps: np.ndarray
    coords: np.ndarray
    distance: np.ndarray
    offset: np.ndarray
    axes: tuple[str, ...]
    true_loss: np.ndarray | None = None
    surface_loss: np.ndarray | None = None
    true_metrics: dict[str, np.ndarray] = field(default_factory=dict)
    outside: np.ndarray | None = None
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


#: How ``project`` treats buffers (BatchNorm statistics) for the true loss.
PROJECT_BN = ("own", "eval", "batch", "recompute")


def _true_values(
    rec: Recording,
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    bn: str,
    evaluate_kwargs: Mapping[str, Any],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    params = dict(model.named_parameters())
    if tuple(params) != rec.names:
        raise ValueError("`model` must have the recorded parameters (same names)")
    if bn == "own":
        known = dict(model.named_buffers())
        extra = [n for n in (rec.buffers or {}) if n not in known]
        if extra:
            raise ValueError(
                f"`recording` holds buffers the model does not have: {extra[:3]}"
            )
    kwargs = dict(evaluate_kwargs)
    kwargs["bn"] = "eval" if bn == "own" else bn
    losses, metrics = [], {}
    for i in range(len(rec)):
        snap = {
            n: t.to(device=params[n].device, dtype=params[n].dtype)
            for n, t in rec.params(i).items()
        }
        own = rec.buffers_at(i) if bn == "own" else {}
        with _bn.buffers_swapped(model, own) as work:
            value = evaluate_params(work, loss_fn, data, snap, **kwargs)
        if isinstance(value, Mapping):
            losses.append(float(value["loss"]))
            for k, v in value.items():
                if k != "loss":
                    metrics.setdefault(k, []).append(float(v))
        else:
            losses.append(float(value))
    return _ro(losses), {k: _ro(v) for k, v in metrics.items()}


def evaluate_snapshots(
    recording: Recording | Recorder,
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    *,
    bn: str | None = None,
    **options: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The loss (and metrics) at every snapshot of a recording.

    Each snapshot is evaluated by :func:`lossmap.nn.evaluate_params` with its
    own parameters and, with ``bn="own"`` (the default when the recording
    holds buffers), its own buffers; see :func:`project` for ``bn``.
    ``options`` are those of ``evaluate_params`` (e.g. ``metrics``).

    Returns
    -------
    loss : ndarray of shape (n,)
    metrics : dict of str to ndarray of shape (n,)
    """
    rec = _as_recording(recording)
    mode = _resolve_bn(rec, model, bn, options)
    return _true_values(rec, model, loss_fn, data, mode, options)


def _resolve_bn(rec: Recording, model: nn.Module, bn: Any, kwargs: Mapping) -> str:
    if "bn" in kwargs:
        raise ValueError(
            "give the BatchNorm mode as project(bn=...), not in `evaluate_kwargs`"
        )
    if bn is None:
        if rec.buffers:
            return "own"
        if _bn.has_batchnorm(model):
            warnings.warn(
                "the recording has no buffers, so every snapshot's true loss "
                "uses the model's current BatchNorm statistics; record with "
                "Recorder(model, buffers=True) or pass bn='recompute'",
                stacklevel=3,
            )
        return "eval"
    if bn not in PROJECT_BN:
        raise ValueError(f"`bn` must be one of {list(PROJECT_BN)} or None, got {bn!r}")
    if bn == "own" and not rec.buffers:
        raise ValueError(
            "`bn`='own' needs recorded buffers; record with "
            "Recorder(model, buffers=True)"
        )
    return bn


# ------------------------------------------------------------ own surface
def _fingerprints(vec: torch.Tensor, rec: Recording, dtypes: Sequence[Any]) -> set[str]:
    """Fingerprints of a flat float64 vector split into parameters, per dtype."""
    parts = rec.split(vec)
    return {_fingerprint(*(t.to(dt) for t in parts.values())) for dt in dtypes}


def _surface_dtypes(rec: Recording, surface: Surface, model: Any) -> list[Any]:
    out = [rec.snapshots.dtype]
    if model is not None:
        out.append(next(model.parameters()).dtype)
    name = surface.metadata.get("dtype")
    if isinstance(name, str) and isinstance(getattr(torch, name, None), torch.dtype):
        out.append(getattr(torch, name))
    return list(dict.fromkeys(out))


def _check_directions(dirs: Sequence[Direction], surface: Surface) -> None:
    recorded = surface.metadata.get("fingerprint", {}).get("directions")
    if not isinstance(recorded, list):
        return
    given = [_fingerprint(*d.tensors.values()) for d in dirs]
    if given != recorded:
        raise ValueError(
            "`surface` was computed along other directions than `directions` "
            "(their fingerprints differ); project with the directions the "
            "surface was made with"
        )


def _surface_center(
    rec: Recording,
    dirs: Sequence[Direction],
    surface: Surface,
    center: Any,
    model: Any,
) -> tuple[torch.Tensor, Any]:
    """The centre to project about, checked against the surface's own."""
    recorded = surface.metadata.get("fingerprint", {}).get("center")
    dtypes = _surface_dtypes(rec, surface, model)
    if center is not None:
        c, desc = _center_vector(rec, center)
        if recorded is not None and recorded not in _fingerprints(c, rec, dtypes):
            raise ValueError(
                f"`surface` was computed around another centre than `center`"
                f"={desc!r} (their fingerprints differ), so its coordinates "
                f"are not this projection's; pass the centre the surface was "
                f"computed around, or leave `center` unset to find it"
            )
        return c, desc
    if recorded is None:
        return _center_vector(rec, _default_center(dirs))
    candidates: list[Any] = []
    if model is not None:
        candidates.append(("model", model))
    pca = dirs[0].meta.get("center") if dirs[0].meta.get("kind") == "pca" else None
    candidates += [(x, x) for x in (pca, "last", "mean", "first") if x is not None]
    candidates += [(i, i) for i in range(len(rec) - 1, -1, -1)]
    seen = set()
    for label, spec in candidates:
        if isinstance(spec, str | int) and spec in seen:
            continue
        if isinstance(spec, str | int):
            seen.add(spec)
        if not isinstance(spec, nn.Module) and not isinstance(spec, str | int):
            continue
        try:
            c, desc = _center_vector(rec, spec)
        except (TypeError, ValueError):
            continue
        if recorded in _fingerprints(c, rec, dtypes):
            return c, ("model" if label == "model" else desc)
    raise ValueError(
        "`surface` was computed around a centre that is none of the recorded "
        "snapshots, their mean, nor `model`'s current parameters; pass "
        "`center=` the parameters the surface was computed around"
    )


def _default_center(dirs: Sequence[Direction]) -> Any:
    """Without a surface: the centre a PCA was made with, else the final weights."""
    spec = dirs[0].meta.get("center") if dirs[0].meta.get("kind") == "pca" else None
    return (
        spec if isinstance(spec, int) or spec in ("first", "last", "mean") else "last"
    )


def project(
    recording: Recording | Recorder,
    directions: Direction | Sequence[Direction],
    *,
    center: Any = None,
    surface: Surface | None = None,
    model: nn.Module | None = None,
    loss_fn: Any = None,
    data: Any = None,
    bn: str | None = None,
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
        The plane's origin: ``"last"``, ``"first"``, ``"mean"``, a snapshot
        index, a module, a parameter mapping or a flat tensor. By default,
        with a surface, the surface's own centre (found among ``model``'s
        parameters, the snapshots and their mean by the fingerprint the
        surface records); without one, the centre PCA directions were made
        with (``"mean"`` by default: the coordinates are then the principal
        component scores), else the last snapshot (the final weights, where
        planes are usually centred, as in Li et al.'s reference).
    surface : Surface, optional
        The surface computed on this line/plane; gives ``surface_loss``.
        Refused when the fingerprints it records show another centre or
        other directions. Snapshots outside its grid are reported (a
        warning, ``outside`` and ``meta["outside"]``).
    model, loss_fn, data : optional
        Give all three to compute ``true_loss`` with
        :func:`lossmap.nn.evaluate_params` at every snapshot.
    bn : {"own", "eval", "batch", "recompute"}, optional
        Buffers (BatchNorm statistics) for the true loss: ``"own"``, each
        snapshot's recorded buffers (the default when the recording has
        them); ``"eval"``, the model's current ones for every snapshot (the
        default otherwise, with a warning for a BatchNorm model);
        ``"recompute"``, re-estimated from the data at every snapshot;
        ``"batch"``, each tile's statistics.
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
        _check_directions(dirs, surface)
        c, center_desc = _surface_center(rec, dirs, surface, center, model)
    else:
        c, center_desc = _center_vector(
            rec, _default_center(dirs) if center is None else center
        )
    given = [x is not None for x in (model, loss_fn, data)]
    if any(given) and not all(given):
        raise ValueError(
            "give `model`, `loss_fn` and `data` together to compute the true loss"
        )
    kwargs = dict(evaluate_kwargs or {})
    bn_mode = _resolve_bn(rec, model, bn, kwargs) if all(given) else None
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
        true_loss, metrics = _true_values(rec, model, loss_fn, data, bn_mode, kwargs)
    surface_loss = outside = None
    meta: dict[str, Any] = {
        "center": center_desc,
        "directions": [d.meta.get("kind", "user") for d in dirs],
    }
    if bn_mode is not None:
        meta["bn"] = bn_mode
    if surface is not None:
        surface_loss = _ro(surface_at(surface, coords_np))
        outside = _ro(_outside(surface, coords_np), dtype=bool)
        meta["outside"] = int(outside.sum())
        if outside.any():
            warnings.warn(
                f"{int(outside.sum())} of {n} snapshots lie outside the "
                f"surface's grid (their surface_loss is NaN); compute the "
                f"surface with span='auto' (PCA directions) or "
                f"span=lossmap.nn.path_span(projection.coords)",
                stacklevel=2,
            )
    return Projection(
        steps=rec.steps,
        coords=_ro(coords_np),
        distance=_ro(np.sqrt(resid2.numpy())),
        offset=_ro(np.sqrt(offset2.numpy())),
        axes=tuple(axes),
        true_loss=true_loss,
        surface_loss=surface_loss,
        true_metrics=metrics,
        outside=outside,
        meta=meta,
    )


def _outside(surface: Surface, coords: np.ndarray) -> np.ndarray:
    out = np.zeros(len(coords), dtype=bool)
    for k in range(surface.ndim):
        ax = surface.coords(k)
        out |= (coords[:, k] < ax[0]) | (coords[:, k] > ax[-1])
    return out
