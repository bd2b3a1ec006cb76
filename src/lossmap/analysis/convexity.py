"""Is a landscape convex over a region? Two independent tests.

1. **Curvature.** A twice-differentiable function is convex on a convex set
   iff its Hessian is positive semi-definite everywhere there (Boyd &
   Vandenberghe, "Convex Optimization", 2004, §3.1.4). We evaluate the smaller
   Hessian eigenvalue on a grid and report the fraction of points where it is
   ``>= -tol·(largest curvature)``.
2. **Chords.** Jensen's inequality ``L(t·a + (1−t)·b) <= t·L(a) + (1−t)·L(b)``
   for random pairs ``a, b`` in the region and random ``t`` in (0, 1) (the
   definition of convexity, Boyd & Vandenberghe §3.1.1). It needs only values,
   so it also judges kinked losses such as MAE, whose Hessian misses the kinks.

The landscape is called convex when no chord is violated and, for smooth
landscapes, the Hessian is PSD at every grid point. Both are evidence on a
finite sample, not a proof: a violation is a certificate of non-convexity, no
violation is strong evidence of convexity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lossmap._validation import check_float, check_int
from lossmap.surface import Surface
from lossmap.toy._base import Landscape, Region

__all__ = ["Convexity", "convexity"]


@dataclass(frozen=True, eq=False)
class Convexity:
    """Result of :func:`convexity`.

    Attributes
    ----------
    convex : bool
        No chord violated and (smooth landscapes) Hessian PSD on the grid.
    psd_fraction : float
        Fraction of grid points where the Hessian is PSD.
    min_eigenvalue : float
        The most negative smaller Hessian eigenvalue on the grid.
    min_eigenvalue_at : ndarray of shape (2,)
        Where it is.
    chord_pairs : int
        Number of chords tested.
    chord_violations : int
        Chords where the function rose above the chord.
    worst_gap : float
        ``max(L(mid) − chord)`` over the chords (> 0 means a violation).
    worst_chord : ndarray of shape (2, 2)
        The endpoints ``a, b`` of the worst chord.
    smooth : bool
        Whether the curvature test counted (False for kinked landscapes).
    surface : Surface
        Fields ``loss``, ``min_eigenvalue`` and ``psd`` (1.0 / 0.0) on the grid, for
        plotting where the landscape curves down.
    """

    convex: bool
    psd_fraction: float
    min_eigenvalue: float
    min_eigenvalue_at: np.ndarray
    chord_pairs: int
    chord_violations: int
    worst_gap: float
    worst_chord: np.ndarray
    smooth: bool
    surface: Surface = field(repr=False)

    @property
    def chord_fraction(self) -> float:
        """Fraction of tested chords that were violated."""
        return self.chord_violations / max(self.chord_pairs, 1)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        return {
            "convex": self.convex,
            "psd_fraction": self.psd_fraction,
            "min_eigenvalue": self.min_eigenvalue,
            "chord_pairs": self.chord_pairs,
            "chord_violations": self.chord_violations,
            "worst_gap": self.worst_gap,
            "smooth": self.smooth,
        }


def convexity(
    landscape: Landscape,
    region: Region | None = None,
    *,
    steps: int = 101,
    pairs: int = 4000,
    seed: int = 0,
    tol: float = 1e-9,
) -> Convexity:
    """Test ``landscape`` for convexity over ``region``.

    Parameters
    ----------
    landscape : Landscape
    region : ((lo0, hi0), (lo1, hi1)), optional
        Defaults to ``landscape.region``.
    steps : int, default=101
        Grid points per axis for the curvature test.
    pairs : int, default=4000
        Random chords for the Jensen test.
    seed : int, default=0
        Seed for the chords.
    tol : float, default=1e-9
        Relative slack: an eigenvalue counts as negative below
        ``-tol·max|λ|``; a chord is violated when the function exceeds it by
        more than ``tol·(|L(a)| + |L(b)| + 1)`` (rounding noise).

    Returns
    -------
    Convexity

    Examples
    --------
    >>> from lossmap import toy
    >>> from lossmap.analysis import convexity
    >>> convexity(toy.problem("line", "noisy-line", "mse")).convex
    True
    """
    steps = check_int("steps", steps, minimum=2, maximum=2001)
    pairs = check_int("pairs", pairs, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    tol = check_float("tol", tol, minimum=0.0)
    a0, a1 = landscape.grid(region, steps=steps)
    g0, g1 = np.meshgrid(a0, a1, indexing="ij")
    with np.errstate(all="ignore"):
        lam = np.linalg.eigvalsh(landscape.hessian(g0, g1))
    lam_min = lam[..., 0]
    scale = float(np.nanmax(np.abs(lam))) if np.isfinite(lam).any() else 1.0
    psd = lam_min >= -tol * max(scale, 1e-300)
    worst = np.unravel_index(np.nanargmin(lam_min), lam_min.shape)
    smooth = bool(getattr(landscape, "smooth", True))

    rng = np.random.default_rng(seed)
    lo = np.array([a0[0], a1[0]])
    hi = np.array([a0[-1], a1[-1]])
    a = rng.uniform(lo, hi, size=(pairs, 2))
    b = rng.uniform(lo, hi, size=(pairs, 2))
    t = rng.uniform(0.0, 1.0, size=(pairs, 1))
    with np.errstate(all="ignore"):
        fa, fb = landscape.loss_at(a), landscape.loss_at(b)
        fm = landscape.loss_at(t * a + (1.0 - t) * b)
    chord = t[:, 0] * fa + (1.0 - t[:, 0]) * fb
    gap = fm - chord
    slack = tol * (np.abs(fa) + np.abs(fb) + 1.0)
    violated = gap > slack
    k = int(np.nanargmax(gap))
    surf = Surface(
        axes={landscape.param_names[0]: a0, landscape.param_names[1]: a1},
        fields={
            "loss": landscape.evaluate_grid(a0, a1),
            "min_eigenvalue": lam_min,
            "psd": psd.astype(np.float64),
        },
        metadata={"source": "convexity", "landscape": landscape.describe()},
    )
    psd_fraction = float(np.mean(psd))
    n_viol = int(np.count_nonzero(violated))
    convex = n_viol == 0 and (psd_fraction == 1.0 or not smooth)
    return Convexity(
        convex=bool(convex),
        psd_fraction=psd_fraction,
        min_eigenvalue=float(lam_min[worst]),
        min_eigenvalue_at=np.array([a0[worst[0]], a1[worst[1]]]),
        chord_pairs=pairs,
        chord_violations=n_viol,
        worst_gap=float(gap[k]),
        worst_chord=np.stack([a[k], b[k]]),
        smooth=smooth,
        surface=surf,
    )
