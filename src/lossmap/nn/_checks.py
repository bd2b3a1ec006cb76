"""Refusing non-finite inputs before any work, and counting non-finite results.

A NaN or an infinity in a direction, the centre or the data makes every grid
point NaN; a span whose coordinates overflow the evaluation dtype does the
same at most points. These are refused here, naming the argument, before a
single grid point is evaluated. Non-finite losses that appear during a run
with finite inputs (a loss that overflows far from the centre) are results:
they are kept as computed (NaN or infinity), counted in the metadata
(``nonfinite_points``) and reported with a warning (and by ``lossmap info``).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lossmap.surface import Surface

__all__ = [
    "check_finite_data",
    "check_finite_params",
    "check_inputs",
    "check_probe_value",
    "check_reach",
    "count_nonfinite",
    "nonfinite_points",
]


def _bad(t: torch.Tensor) -> int:
    if not t.is_floating_point() and not t.is_complex():
        return 0
    return int((~torch.isfinite(t.detach())).sum())


def check_finite_params(name: str, tensors: Mapping[str, torch.Tensor]) -> None:
    """Raise if a parameter tensor of ``name`` (centre, direction) is not finite."""
    bad = {n: k for n, t in tensors.items() if (k := _bad(t))}
    if bad:
        first = next(iter(bad))
        raise ValueError(
            f"`{name}` must be finite, got {sum(bad.values())} NaN or infinite "
            f"entries in {len(bad)} parameter(s), e.g. {bad[first]} in {first!r}"
        )


def _leaves(obj: Any, path: str) -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}[{k!r}]")
    elif isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")


def check_finite_data(name: str, data: Any) -> None:
    """Raise if a floating tensor anywhere in ``data`` holds NaN or infinity.

    ``data`` is a tensor, or a tuple, list or mapping of them (nested); the
    message says which part, e.g. ``data[0]`` (the inputs).
    """
    for where, t in _leaves(data, name):
        k = _bad(t)
        if k:
            flat = t.detach().reshape(t.shape[0], -1) if t.ndim else t.reshape(1, 1)
            row = int(torch.nonzero(~torch.isfinite(flat).all(1))[0])
            raise ValueError(
                f"`{where}` must be finite, got {k} NaN or infinite value(s) "
                f"(first in row {row} of {tuple(t.shape)})"
            )


def check_inputs(
    center_name: str,
    center: Mapping[str, torch.Tensor],
    directions: Sequence[Mapping[str, torch.Tensor]],
    data: Any,
    bn_data: Any = None,
) -> None:
    """Every finiteness check on the arguments of a call, in argument order."""
    check_finite_params(center_name, center)
    for i, d in enumerate(directions):
        check_finite_params(f"directions[{i}]", d)
    check_finite_data("data", data)
    if bn_data is not None:
        check_finite_data("bn_data", bn_data)


def check_reach(
    center: Mapping[str, torch.Tensor],
    directions: Sequence[Mapping[str, torch.Tensor]],
    axes: Mapping[str, np.ndarray],
    dtype: torch.dtype,
) -> None:
    """Raise if the grid's corners give non-finite parameters in ``dtype``.

    Parameters are affine in the coordinates, so each entry is largest in
    size at a corner of the grid: finite corners mean finite parameters at
    every grid point.
    """
    if not directions:
        return
    ends = [(float(a[0]), float(a[-1])) for a in axes.values()]
    for corner in itertools.product(*ends):
        coef = torch.tensor(corner, dtype=torch.float64).to(dtype)
        for n, c in center.items():
            theta = c.detach().to(dtype)
            for j, d in enumerate(directions):
                theta = theta + coef[j] * d[n].detach().to(dtype)
            if not bool(torch.isfinite(theta).all()):
                names = list(axes)
                where = ", ".join(f"{k} = {v:g}" for k, v in zip(names, corner))
                raise ValueError(
                    f"`span` must keep the parameters finite in "
                    f"{str(dtype).removeprefix('torch.')}, got a grid reaching "
                    f"({where}), where parameter {n!r} of θ₀ + Σ coordinate·"
                    f"direction overflows; use a smaller span"
                )


def check_probe_value(name: str, value: torch.Tensor, rows: int) -> None:
    """Raise if ``name`` gave a non-finite value at the centre (the probe)."""
    v = float(value.detach().double())
    if not np.isfinite(v):
        raise ValueError(
            f"`{name}` must be finite at the centre, got {v} on the first {rows} "
            f"rows of the data (inputs, centre and directions are finite, so the "
            f"model or the loss itself produced it)"
        )


def count_nonfinite(surface: Surface) -> Surface:
    """Record how many grid points have a non-finite loss; warn if any."""
    n = nonfinite_points(surface.loss, stacklevel=4)
    return surface.with_metadata(nonfinite_points=n)


def nonfinite_points(loss: np.ndarray, stacklevel: int = 3) -> int:
    """How many grid points have a non-finite loss; warns if any (the warning
    points ``stacklevel`` frames up, as :func:`warnings.warn` counts)."""
    n = int((~np.isfinite(loss)).sum())
    if n:
        warnings.warn(
            f"{n} of {loss.size} grid points gave a non-finite loss (NaN "
            f"or inf); they are kept and counted in metadata['nonfinite_points']",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
    return n
