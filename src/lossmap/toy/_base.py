"""The protocol shared by every exact 2-parameter landscape.

A :class:`Landscape` gives the value, gradient and Hessian of a scalar function
of two parameters, vectorised: the two parameter arguments may be arrays of any
broadcastable shape ``S``; ``loss`` returns shape ``S``, ``grad`` shape
``S + (2,)`` and ``hessian`` shape ``S + (2, 2)``. Toy problems
(:class:`lossmap.toy.Problem`) and analytic test functions
(:mod:`lossmap.toy.functions`) both implement it, so optimizers, analysis and
plots work on either.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from lossmap._validation import check_int, check_range
from lossmap.surface import Surface

__all__ = ["Landscape", "Region"]

Region = tuple[tuple[float, float], tuple[float, float]]

#: Grid points evaluated per block by :meth:`Landscape.surface`; blocks keep the
#: temporaries inside the CPU cache.
_BLOCK_ELEMENTS = 1 << 17


class Landscape(abc.ABC):
    """A scalar function of two parameters with exact derivatives.

    Subclasses set :attr:`param_names` and :attr:`region` and implement
    :meth:`loss`, :meth:`grad` and :meth:`hessian`.
    """

    #: Names of the two parameters, e.g. ``("w", "b")`` or ``("x", "y")``.
    param_names: tuple[str, str] = ("x", "y")
    #: The default view, ``((lo0, hi0), (lo1, hi1))``.
    region: Region = ((-1.0, 1.0), (-1.0, 1.0))
    #: Whether the Hessian is defined everywhere (False for kinked losses).
    smooth: bool = True
    #: Short human-readable name used in titles.
    title: str = ""

    @abc.abstractmethod
    def loss(self, p0: Any, p1: Any) -> np.ndarray:
        """Value at ``(p0, p1)``; arrays broadcast, result has their shape."""

    @abc.abstractmethod
    def grad(self, p0: Any, p1: Any) -> np.ndarray:
        """Gradient, shape ``broadcast(p0, p1).shape + (2,)``."""

    @abc.abstractmethod
    def hessian(self, p0: Any, p1: Any) -> np.ndarray:
        """Hessian, shape ``broadcast(p0, p1).shape + (2, 2)``."""

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description, stored as surface metadata."""
        return {"kind": type(self).__name__}

    # -------------------------------------------------------------- helpers
    def loss_at(self, theta: Any) -> np.ndarray:
        """Value at points ``theta`` of shape ``(..., 2)``."""
        theta = np.asarray(theta, dtype=np.float64)
        return self.loss(theta[..., 0], theta[..., 1])

    def grad_at(self, theta: Any) -> np.ndarray:
        """Gradient at points ``theta`` of shape ``(..., 2)``."""
        theta = np.asarray(theta, dtype=np.float64)
        return self.grad(theta[..., 0], theta[..., 1])

    def hessian_at(self, theta: Any) -> np.ndarray:
        """Hessian at points ``theta`` of shape ``(..., 2)``."""
        theta = np.asarray(theta, dtype=np.float64)
        return self.hessian(theta[..., 0], theta[..., 1])

    def grid(
        self,
        region: Region | None = None,
        *,
        steps: int | tuple[int, int] = 201,
        **ranges: Any,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates of a regular grid: one array per parameter.

        ``ranges`` keyed by parameter name override ``region`` (or the default
        :attr:`region`); ``steps`` is one count or one per parameter.
        """
        unknown = set(ranges) - set(self.param_names)
        if unknown:
            raise TypeError(
                f"ranges must be named after the parameters {list(self.param_names)}, "
                f"got {sorted(unknown)}"
            )
        base = region if region is not None else self.region
        try:
            r0, r1 = base
        except (TypeError, ValueError):
            raise TypeError(
                f"`region` must be ((lo, hi), (lo, hi)), got {region!r}"
            ) from None
        r0 = check_range(self.param_names[0], ranges.get(self.param_names[0], r0))
        r1 = check_range(self.param_names[1], ranges.get(self.param_names[1], r1))
        n0, n1 = (steps, steps) if np.ndim(steps) == 0 else tuple(steps)
        n0 = check_int("steps", n0, minimum=2, maximum=20001)
        n1 = check_int("steps", n1, minimum=2, maximum=20001)
        return np.linspace(*r0, n0), np.linspace(*r1, n1)

    def surface(
        self,
        region: Region | None = None,
        *,
        steps: int | tuple[int, int] = 201,
        **ranges: Any,
    ) -> Surface:
        """The exact landscape on a regular grid.

        Parameters
        ----------
        region : ((lo0, hi0), (lo1, hi1)), optional
            Defaults to :attr:`region`.
        steps : int or (int, int), default=201
            Grid points per axis (>= 2).
        **ranges : (lo, hi)
            Per-parameter ranges, e.g. ``w=(-2, 2)``; these win over ``region``.

        Returns
        -------
        Surface
            Axes named :attr:`param_names`; field ``loss`` of shape
            ``(steps0, steps1)`` with ``loss[i, j] = L(p0[i], p1[j])``.
        """
        a0, a1 = self.grid(region, steps=steps, **ranges)
        values = self.evaluate_grid(a0, a1)
        meta = {
            "source": "toy",
            "landscape": self.describe(),
            "grid": {
                "steps": [a0.size, a1.size],
                "region": [[a0[0], a0[-1]], [a1[0], a1[-1]]],
            },
        }
        return Surface(
            axes={self.param_names[0]: a0, self.param_names[1]: a1},
            fields={"loss": values},
            metadata=meta,
        )

    def evaluate_grid(self, a0: np.ndarray, a1: np.ndarray) -> np.ndarray:
        """``loss`` on the outer grid ``a0 x a1``, in cache-sized row blocks."""
        per_row = a1.size * max(1, self._work_per_point())
        rows = max(1, _BLOCK_ELEMENTS // per_row)
        out = np.empty((a0.size, a1.size))
        for start in range(0, a0.size, rows):
            blk = a0[start : start + rows]
            out[start : start + blk.size] = self.loss(blk[:, None], a1[None, :])
        return out

    def _work_per_point(self) -> int:
        """Temporaries per grid point (e.g. the number of data points)."""
        return 1
