"""Trace estimates: Hutchinson and Hutch++, with a standard error.

* Hutchinson (1989, "A stochastic estimator of the trace of the influence
  matrix for Laplacian smoothing splines"): ``tr M = E[zᵀ M z]`` for Rademacher
  ``z``; the estimate is the mean of the samples and its standard error
  ``std(samples) / √probes``.
* Hutch++ (Meyer, Musco, Musco & Woodruff 2021, "Hutch++: Optimal stochastic
  trace estimation", SOSA): ``Q`` = orthonormal basis of ``M S`` for a random
  sketch ``S``; ``tr M = tr(Qᵀ M Q) + tr((I−QQᵀ) M (I−QQᵀ))``, the first term
  exact, the second by Hutchinson. When the spectrum is dominated by a few
  large eigenvalues, the remainder's variance is much smaller. The standard
  error is that of the remainder's samples.

Both stop once the standard error is at most ``target_se`` (after
``min_probes`` samples) and run probes in batches of ``batch`` vectors per
pass over the data. Seeded: equal seeds give equal estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lossmap._validation import check_float, check_int
from lossmap.nn.curvature._protocol import count, held, matmat

__all__ = ["Trace", "hutchinson", "hutchpp"]


@dataclass(frozen=True)
class Trace:
    """A trace estimate.

    Attributes
    ----------
    value : float
    stderr : float
        Standard error of ``value`` (0 when it is exact).
    probes : int
        Random samples drawn (for Hutch++, of the remainder).
    samples : ndarray (probes,)
        ``zᵀ M z`` of each probe (for Hutch++, of the deflated probes).
    method : str
    products : int
        Matrix-vector products used.
    exact_part : float
        Hutch++: ``tr(Qᵀ M Q)``; 0 for Hutchinson.
    """

    value: float
    stderr: float
    probes: int
    samples: np.ndarray
    method: str = "hutchinson"
    products: int = 0
    exact_part: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)
    """With ``target_se``: ``target_se`` and ``target_met`` (False when
    ``probes`` ran out first: ``stderr`` is then above the target)."""


def _rademacher(n: int, dim: int, gen: torch.Generator, op: Any) -> torch.Tensor:
    z = torch.randint(0, 2, (n, dim), generator=gen).to(op.dtype) * 2 - 1
    return z.to(op.device)


def _sample_until(
    op: Any,
    draw: Any,
    *,
    probes: int,
    target_se: float | None,
    min_probes: int,
    batch: int,
    gen: torch.Generator,
) -> np.ndarray:
    samples: list[float] = []
    while len(samples) < probes:
        b = min(batch, probes - len(samples))
        Z = draw(b, gen)
        MZ = matmat(op, Z)
        samples.extend(torch.sum(Z * MZ, dim=1).double().cpu().tolist())
        if target_se is not None and len(samples) >= min_probes:
            se = float(np.std(samples, ddof=1)) / math.sqrt(len(samples))
            if se <= target_se:
                break
    return np.asarray(samples)


def _target(target_se: float | None, se: float) -> dict[str, Any]:
    """``meta`` of a trace: whether ``target_se`` was met within ``probes``
    (the estimate stops at ``probes`` either way)."""
    if target_se is None:
        return {}
    return {"target_se": target_se, "target_met": bool(se <= target_se)}


def _checked(
    probes: int, target_se: float | None, min_probes: int, batch: int, seed: int
) -> tuple[int, float | None, int, int, int]:
    probes = check_int("probes", probes, minimum=2)
    if target_se is not None:
        target_se = check_float("target_se", target_se, minimum=0.0, strict_min=True)
    min_probes = check_int("min_probes", min_probes, minimum=2)
    batch = check_int("batch", batch, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    return probes, target_se, min(min_probes, probes), batch, seed


@held
def hutchinson(
    op: Any,
    *,
    probes: int = 100,
    target_se: float | None = None,
    min_probes: int = 10,
    batch: int = 8,
    seed: int = 0,
) -> Trace:
    """Hutchinson's trace estimate with Rademacher probes.

    Parameters
    ----------
    op : CurvatureOperator
    probes : int, default=100
        Most probes.
    target_se : float, optional
        Stop once the standard error is at most this (after ``min_probes``).
    min_probes : int, default=10
    batch : int, default=8
        Probes per pass over the data.
    seed : int, default=0
    """
    probes, target_se, min_probes, batch, seed = _checked(
        probes, target_se, min_probes, batch, seed
    )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    before = count(op)
    s = _sample_until(
        op,
        lambda b, g: _rademacher(b, op.dim, g, op),
        probes=probes,
        target_se=target_se,
        min_probes=min_probes,
        batch=batch,
        gen=gen,
    )
    se = float(s.std(ddof=1) / math.sqrt(s.size))
    return Trace(
        float(s.mean()),
        se,
        int(s.size),
        s,
        "hutchinson",
        count(op) - before,
        meta=_target(target_se, se),
    )


@held
def hutchpp(
    op: Any,
    *,
    sketch: int | None = None,
    probes: int = 100,
    target_se: float | None = None,
    min_probes: int = 10,
    batch: int = 8,
    seed: int = 0,
) -> Trace:
    """Hutch++ trace estimate (Meyer et al. 2021) with a standard error.

    Parameters
    ----------
    sketch : int, optional
        Columns of the random sketch ``S`` (default ``min(dim, 32)``); costs
        ``2·sketch`` products. With ``sketch = dim`` the trace is computed
        exactly from ``dim`` products with unit vectors instead.
    probes, target_se, min_probes, batch, seed
        For the Hutchinson estimate of the remainder, as in :func:`hutchinson`.
    """
    probes, target_se, min_probes, batch, seed = _checked(
        probes, target_se, min_probes, batch, seed
    )
    n = int(op.dim)
    s = n if sketch is None and n <= 32 else (32 if sketch is None else sketch)
    s = check_int("sketch", s, minimum=1, maximum=n)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    before = count(op)
    if s == n:  # the sketch spans everything: the trace from unit vectors
        exact = 0.0
        for i in range(0, n, batch):
            E = torch.zeros((min(batch, n - i), n), dtype=op.dtype, device=op.device)
            E[:, i : i + E.shape[0]] = torch.eye(E.shape[0], dtype=op.dtype)
            exact += float(torch.diagonal(matmat(op, E)[:, i : i + E.shape[0]]).sum())
        samples = np.zeros(0)
        return Trace(
            exact,
            0.0,
            0,
            samples,
            "exact",
            count(op) - before,
            exact,
            _target(target_se, 0.0),
        )
    S = _rademacher(s, n, gen, op)
    MS = torch.cat([matmat(op, S[i : i + batch]) for i in range(0, s, batch)])
    Q, _ = torch.linalg.qr(MS.T.double())
    Q = Q.to(op.dtype)  # (n, s)
    MQ = torch.cat([matmat(op, Q.T[i : i + batch]) for i in range(0, s, batch)])
    exact = float(torch.sum(Q.T * MQ).double())

    def draw(b: int, g: torch.Generator) -> torch.Tensor:
        Z = _rademacher(b, n, g, op)
        return Z - (Z @ Q) @ Q.T

    rest = _sample_until(
        op,
        draw,
        probes=probes,
        target_se=target_se,
        min_probes=min_probes,
        batch=batch,
        gen=gen,
    )
    se = float(rest.std(ddof=1) / math.sqrt(rest.size))
    return Trace(
        exact + float(rest.mean()),
        se,
        int(rest.size),
        rest,
        "hutch++",
        count(op) - before,
        exact,
        _target(target_se, se),
    )
