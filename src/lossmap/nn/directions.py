"""Directions in a network's parameter space.

A :class:`Direction` holds one tensor per model parameter (zeros for the
parameters it leaves fixed: every parameter of the model is always present)
and a JSON-friendly ``meta`` record of how it was made, so that a surface can
be recomputed from its metadata.

Every direction kind takes ``params=``, a parameter selection
(:func:`lossmap.nn.select`: names, module names, glob patterns, submodules, a
predicate): entries outside it are exactly zero, and ``meta["params"]``
records the selection (names, sizes and a description in words).

Random directions follow Li, Xu, Taylor, Studer & Goldstein, "Visualizing the
Loss Landscape of Neural Nets", NeurIPS 2018 (arXiv:1712.09913), section 4:
a Gaussian direction whose every *filter* (a row of a linear layer's weight,
an output channel of a convolution) is rescaled to the norm of the same filter
of the weights, so that the picture does not depend on each layer's scale.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_int
from lossmap.nn.params import ParamSpace, _short, select, selection_meta

__all__ = [
    "NORMS",
    "Direction",
    "axis_directions",
    "from_tensors",
    "interpolation",
    "plane_through",
    "random_direction",
    "random_directions",
    "random_plane",
]

#: Accepted values of ``norm``.
NORMS = ("filter", "layer", "model", None)
_IGNORE_WORDS = {"biasbn": ("bias", "norm"), "bias": ("bias",), "bn": ("norm",)}
_EPS = 1e-10


@dataclass(frozen=True, eq=False)
class Direction:
    """A direction in parameter space.

    Attributes
    ----------
    tensors : dict of str to torch.Tensor
        One tensor per model parameter, in ``named_parameters()`` order, each of
        that parameter's shape; parameters the direction does not move hold
        zeros.
    meta : dict
        How the direction was made (``kind``, ``seed``, ``norm``, ``ignore``,
        ...), JSON-friendly.
    """

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in order."""
        return tuple(self.tensors)

    def moved(self) -> tuple[str, ...]:
        """Names of the parameters this direction moves (non-zero tensors)."""
        return tuple(n for n, t in self.tensors.items() if bool(torch.any(t != 0)))

    def flat(self) -> torch.Tensor:
        """All entries in parameter order, shape ``(n_params,)``."""
        return torch.cat([t.reshape(-1) for t in self.tensors.values()])

    def norm(self) -> float:
        """Euclidean norm over all parameters."""
        return float(
            torch.sqrt(sum(t.double().pow(2).sum() for t in self.tensors.values()))
        )

    def dot(self, other: Direction) -> float:
        """Inner product with another direction over the same parameters."""
        return float(
            sum(
                (t.double() * other.tensors[n].double()).sum()
                for n, t in self.tensors.items()
            )
        )

    def to(self, *args: Any, **kwargs: Any) -> Direction:
        """A copy with every tensor passed through ``Tensor.to(*args, **kwargs)``."""
        return Direction(
            {n: t.to(*args, **kwargs) for n, t in self.tensors.items()}, dict(self.meta)
        )

    @classmethod
    def from_flat(
        cls,
        model_or_space: nn.Module | ParamSpace,
        vector: Any,
        meta: Mapping[str, Any] | None = None,
    ) -> Direction:
        """Build a direction from a vector of shape ``(n_params,)``."""
        space = _space(model_or_space)
        vec = torch.as_tensor(vector)
        parts = space.unflatten(vec)
        return cls(
            {n: t.clone() for n, t in parts.items()}, dict(meta or {"kind": "user"})
        )

    def __repr__(self) -> str:
        return (
            f"Direction({len(self.tensors)} tensors, {len(self.moved())} moved, "
            f"norm={self.norm():.4g}, meta={self.meta})"
        )


# ----------------------------------------------------------------- helpers
def _space(obj: nn.Module | ParamSpace) -> ParamSpace:
    if isinstance(obj, ParamSpace):
        return obj
    return ParamSpace(obj)


def _params(obj: Any, space: ParamSpace, what: str) -> dict[str, torch.Tensor]:
    """Parameter values of a module, or a {name: tensor} mapping checked."""
    if isinstance(obj, nn.Module):
        other = ParamSpace(obj)
        if other.shapes != space.shapes:
            raise ValueError(
                f"`{what}` must have the same parameters as the first model "
                f"(names and shapes), got {other!r}"
            )
        return {n: p.detach() for n, p in obj.named_parameters()}
    if isinstance(obj, Mapping):
        space.check(obj, what=what, complete=True)
        return {n: torch.as_tensor(obj[n]).detach() for n in space.names}
    raise TypeError(
        f"`{what}` must be a torch.nn.Module or a mapping of parameter name to "
        f"tensor, got {type(obj).__name__}"
    )


def _ignored(space: ParamSpace, ignore: Any) -> set[str]:
    if ignore is None or ignore == "none":
        return set()
    if isinstance(ignore, str):
        if ignore not in _IGNORE_WORDS:
            raise ValueError(
                f"`ignore` must be one of {[*_IGNORE_WORDS, None]} or a list of "
                f"parameter names/patterns, got {ignore!r}"
            )
        return set(space.names_of_kind(*_IGNORE_WORDS[ignore]))
    if isinstance(ignore, Sequence):
        out: set[str] = set()
        for pattern in ignore:
            hits = [n for n in space.names if fnmatch.fnmatchcase(n, str(pattern))]
            if not hits:
                raise ValueError(
                    f"`ignore` pattern {pattern!r} matches no parameter of the model"
                )
            out.update(hits)
        return out
    raise TypeError(
        f"`ignore` must be a string, a list of names or None, got {ignore!r}"
    )


def _restricted(d: Direction, source: ParamSpace | nn.Module, params: Any) -> Direction:
    """``d`` with every parameter outside the selection set to exact zeros."""
    if params is None:
        return d
    keep = select(source, params)
    tensors = {
        n: (t if n in keep else torch.zeros_like(t)) for n, t in d.tensors.items()
    }
    return Direction(tensors, {**d.meta, "params": selection_meta(source, params)})


def _ignore_meta(ignore: Any) -> Any:
    return list(ignore) if isinstance(ignore, list | tuple) else ignore


def _seed_for(seed: int, index: int) -> int:
    """A torch seed for the ``index``-th direction drawn from ``seed``."""
    return int(
        np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1
    )


def _normalise(
    d: dict[str, torch.Tensor],
    weights: dict[str, torch.Tensor],
    norm: str | None,
    moved: set[str],
) -> None:
    """Rescale ``d`` in place (moved entries only)."""
    if norm is None:
        return
    if norm == "model":
        num = sum(weights[n].double().pow(2).sum() for n in moved)
        den = sum(d[n].double().pow(2).sum() for n in moved)
        scale = (
            float(torch.sqrt(num)) / max(float(torch.sqrt(den)), _EPS) if moved else 0.0
        )
        for n in moved:
            d[n].mul_(scale)
        return
    for n in moved:
        w, t = weights[n], d[n]
        if norm == "filter" and t.dim() >= 2:
            wn = w.reshape(w.shape[0], -1).norm(dim=1)
            tn = t.reshape(t.shape[0], -1).norm(dim=1).clamp_min(_EPS)
            t.mul_((wn / tn).reshape(-1, *([1] * (t.dim() - 1))))
        else:  # "layer", or a 1-D parameter under "filter": one filter per tensor
            t.mul_(w.norm() / t.norm().clamp_min(_EPS))


# ------------------------------------------------------------------- random
def random_directions(
    model: nn.Module,
    count: int,
    *,
    seed: int,
    norm: str | None = "filter",
    ignore: Any = "biasbn",
    params: Any = None,
    first_index: int = 0,
) -> list[Direction]:
    """``count`` independent seeded Gaussian directions.

    The ``i``-th direction depends only on ``(seed, first_index + i)``, so a
    direction can be recomputed from its ``meta``.

    Parameters
    ----------
    model : torch.nn.Module
        The model whose parameters (and, for normalisation, weights) are used.
    count : int
        Number of directions.
    seed : int
        Seed of the Gaussian draws.
    norm : {"filter", "layer", "model", None}
        ``"filter"``: each filter (dim-0 slice of a weight with at least two
        dimensions) gets the norm of the same filter of the weights (Li et al.
        2018); a one-dimensional parameter, when included, is one filter.
        ``"layer"``: each parameter tensor gets the norm of that tensor.
        ``"model"``: the whole direction gets the norm of the moved weights.
        ``None``: raw standard Gaussian entries.
    ignore : {"biasbn", "bias", "bn"}, list of str or None
        Parameters left fixed (zero in the direction): ``"biasbn"`` biases and
        normalisation-layer parameters (default), ``"bias"`` or ``"bn"`` one of
        them, a list of names or fnmatch patterns, or ``None`` to move all.
    params : selection, optional
        Only these parameters move (see :func:`lossmap.nn.select`); ``ignore``
        then leaves some of them fixed too. The Gaussian draws are the same
        as without ``params``, so a selection shows the same direction
        restricted (and renormalised per ``norm``).
    """
    seed = check_int("seed", seed)
    count = check_int("count", count, minimum=1)
    if norm not in NORMS:
        raise ValueError(f"`norm` must be one of {list(NORMS)}, got {norm!r}")
    space = _space(model)
    skip = _ignored(space, ignore)
    chosen = select(model, params)
    moved = {n for n in space.names if n not in skip and n in chosen}
    if not moved:
        raise ValueError(
            f"`params` and `ignore` together leave no parameter to move: "
            f"`params` selects {_short(sorted(chosen))} and `ignore`={ignore!r} "
            f"fixes them all (pass ignore=None to move biases and norm layers)"
        )
    sel_meta = selection_meta(model, params)
    weights = {n: p.detach() for n, p in model.named_parameters()}
    out = []
    for k in range(count):
        index = first_index + k
        gen = torch.Generator(device="cpu").manual_seed(_seed_for(seed, index))
        d: dict[str, torch.Tensor] = {}
        for info in space.infos:
            weights[info.name]
            draw = torch.randn(info.shape, generator=gen, dtype=torch.float64)
            if info.name not in moved:
                draw.zero_()
            d[info.name] = draw
        _normalise(d, {n: w.double().cpu() for n, w in weights.items()}, norm, moved)
        d = {
            n: t.to(dtype=weights[n].dtype, device=weights[n].device)
            for n, t in d.items()
        }
        meta = {
            "kind": "random",
            "seed": seed,
            "index": index,
            "norm": norm,
            "ignore": _ignore_meta(ignore),
            "distribution": "gaussian",
        }
        if sel_meta is not None:
            meta["params"] = sel_meta
        out.append(Direction(d, meta))
    return out


def random_direction(
    model: nn.Module,
    *,
    seed: int,
    norm: str | None = "filter",
    ignore: Any = "biasbn",
    params: Any = None,
) -> Direction:
    """One seeded Gaussian direction; see :func:`random_directions`.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(4, 3)
    >>> d = random_direction(net, seed=0)
    >>> torch.allclose(d.tensors["weight"].norm(dim=1), net.weight.norm(dim=1))
    True
    >>> bool(d.tensors["bias"].abs().sum() == 0)
    True
    """
    return random_directions(
        model, 1, seed=seed, norm=norm, ignore=ignore, params=params
    )[0]


def random_plane(
    model: nn.Module,
    *,
    seed: int,
    norm: str | None = "filter",
    ignore: Any = "biasbn",
    params: Any = None,
    orthogonalize: bool = False,
) -> tuple[Direction, Direction]:
    """Two seeded Gaussian directions (indices 0 and 1 of ``seed``).

    With ``orthogonalize=True`` the second loses its component along the first
    (one Gram-Schmidt step) and is rescaled to its previous norm, so the two
    are exactly orthogonal; its per-filter norms then only approximately
    follow ``norm``.
    """
    d1, d2 = random_directions(
        model, 2, seed=seed, norm=norm, ignore=ignore, params=params
    )
    if orthogonalize:
        d2 = _orthogonalised(d2, d1)
    return d1, d2


def _orthogonalised(d: Direction, against: Direction) -> Direction:
    before = d.norm()
    denom = against.dot(against)
    coef = d.dot(against) / denom if denom > 0 else 0.0
    t = {n: v - coef * against.tensors[n] for n, v in d.tensors.items()}
    new = Direction(t, {**d.meta})
    after = new.norm()
    scale = before / after if after > 0 else 0.0
    return Direction(
        {n: v * scale for n, v in t.items()}, {**d.meta, "orthogonalized": True}
    )


# ------------------------------------------------------- between models
def interpolation(model_a: Any, model_b: Any, *, params: Any = None) -> Direction:
    """The direction from model A to model B: ``θ_B − θ_A``.

    ``model_a`` and ``model_b`` are modules with the same parameters or
    ``{name: tensor}`` mappings (then ``model_a`` must be a module, or both
    mappings over the same names). Evaluate with ``center=model_a`` and
    ``span=(0, 1)`` to go from A (α=0) to B (α=1). With ``params`` only the
    selected parameters move (from A's values to B's); the others stay A's.
    """
    space = (
        _space(model_a) if isinstance(model_a, nn.Module) else _mapping_space(model_a)
    )
    a = _params(model_a, space, "model_a")
    b = _params(model_b, space, "model_b")
    t = {n: (b[n].to(a[n]) - a[n]).clone() for n in space.names}
    d = Direction(t, {"kind": "interpolation", "from": "model_a", "to": "model_b"})
    return _restricted(d, model_a, params)


def plane_through(
    model_a: Any, model_b: Any, model_c: Any, *, params: Any = None
) -> tuple[Direction, Direction]:
    """Two directions spanning the plane through three models, centred on A.

    ``d1 = θ_B − θ_A``; ``d2`` is the part of ``θ_C − θ_A`` orthogonal to
    ``d1``. In the plane's coordinates A is at (0, 0), B at (1, 0) and C at
    ``(t, 1)`` with ``t = <θ_C − θ_A, d1> / |d1|²``; ``meta["points"]``
    records all three. With ``params`` both directions (and so the plane)
    are restricted to the selected parameters before the projection; the
    models then sit at those coordinates only if they differ nowhere else.
    """
    space = (
        _space(model_a) if isinstance(model_a, nn.Module) else _mapping_space(model_a)
    )
    a = _params(model_a, space, "model_a")
    b = _params(model_b, space, "model_b")
    c = _params(model_c, space, "model_c")
    keep = select(model_a, params)
    u = {n: (b[n].to(a[n]) - a[n]).clone() for n in space.names}
    v = {n: (c[n].to(a[n]) - a[n]).clone() for n in space.names}
    for n in space.names:
        if n not in keep:
            u[n].zero_()
            v[n].zero_()
    du, dv = Direction(u), Direction(v)
    uu = du.dot(du)
    if uu == 0:
        where = "" if params is None else " in the selected parameters"
        raise ValueError(f"`model_a` and `model_b` have identical parameters{where}")
    t = dv.dot(du) / uu
    w = {n: v[n] - t * u[n] for n in space.names}
    if Direction(w).norm() == 0:
        raise ValueError("the three models lie on one line; they span no plane")
    points = {"a": [0.0, 0.0], "b": [1.0, 0.0], "c": [t, 1.0]}
    meta: dict[str, Any] = {"kind": "plane_through", "points": points}
    if params is not None:
        meta["params"] = selection_meta(model_a, params)
    return Direction(u, {**meta, "axis": 0}), Direction(w, {**meta, "axis": 1})


def _mapping_space(obj: Any) -> ParamSpace:
    raise TypeError(
        f"`model_a` must be a torch.nn.Module (it fixes the parameter order), "
        f"got {type(obj).__name__}"
    )


# ------------------------------------------------------------ axis & user
def axis_directions(
    model: nn.Module, *entries: str, params: Any = None
) -> tuple[Direction, ...]:
    """Unit directions that move single parameter entries, all others fixed.

    With ``params`` every entry must lie in the selection (a check: an entry
    outside it is refused, not silently zeroed).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2))
    >>> (d,) = axis_directions(net, "0.weight[1, 2]")
    >>> d.tensors["0.weight"].tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    if not entries:
        raise ValueError("`axis_directions` needs at least one parameter entry")
    space = _space(model)
    keep = select(model, params)
    sel_meta = selection_meta(model, params)
    out = []
    for spec in entries:
        name, idx = space.entry(spec)
        if name not in keep:
            raise ValueError(
                f"parameter entry {spec!r} lies outside `params` "
                f"({sel_meta['description'] if sel_meta else ''})"
            )
        t = space.zeros()
        t[name][idx] = 1.0
        label = f"{name}[{', '.join(map(str, idx))}]"
        meta: dict[str, Any] = {"kind": "axis", "entry": label}
        if sel_meta is not None:
            meta["params"] = sel_meta
        out.append(Direction(t, meta))
    return tuple(out)


def from_tensors(
    model: nn.Module | ParamSpace,
    tensors: Mapping[str, Any],
    *,
    meta: Mapping[str, Any] | None = None,
    params: Any = None,
) -> Direction:
    """A direction from user tensors; parameters not named are zero.

    With ``params`` the direction is restricted to the selection: tensors
    of other parameters are set to zero (e.g. a full gradient restricted to
    one layer). Raises ValueError if a name is not a parameter or a shape
    differs.
    """
    space = _space(model)
    space.check(tensors, what="tensors")
    ref = {i.name: None for i in space.infos}
    t = space.zeros()
    for n in ref:
        if n in tensors:
            t[n] = torch.as_tensor(tensors[n]).detach().to(t[n]).clone()
    return _restricted(Direction(t, dict(meta or {"kind": "user"})), model, params)
