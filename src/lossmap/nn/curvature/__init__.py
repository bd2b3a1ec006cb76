"""Curvature of a network's loss: operators, spectra, traces, landscapes.

Operators (:mod:`._base`, :mod:`._matrices`): :class:`HessianOperator`,
:class:`GGNOperator`, :class:`EmpiricalFisherOperator`, :class:`FisherOperator`
— matrix-free, over any parameter selection, tiled data and BatchNorm mode,
usable as SciPy ``LinearOperator`` through ``to_scipy()``.

Algorithms that say how good their answer is: :func:`eigenvalues` (Lanczos,
always ``k`` pairs, convergence scaled to the dtype), :func:`hutchinson` and
:func:`hutchpp` (trace with standard error and ``target_se``), :func:`slq`
(density with its spread between probes), :func:`block_curvature` (per layer
or block). Every result says how many matrix-vector products it used.

On the landscape: :func:`hessian_directions`, :func:`curvature_map`,
:func:`sharpness`.
"""

from __future__ import annotations

from lossmap.nn.curvature._base import CurvatureOperator
from lossmap.nn.curvature._blocks import (
    BlockCurvature,
    BlockView,
    block_curvature,
    blocks_by,
)
from lossmap.nn.curvature._density import Density, slq
from lossmap.nn.curvature._lanczos import Eigen, default_tol, eigenvalues, lanczos_edges
from lossmap.nn.curvature._landscape import (
    MATRICES,
    Sharpness,
    curvature_map,
    hessian_directions,
    operator,
    sharpness,
)
from lossmap.nn.curvature._matrices import (
    LIKELIHOODS,
    EmpiricalFisherOperator,
    FisherOperator,
    GGNOperator,
    HessianOperator,
)
from lossmap.nn.curvature._trace import Trace, hutchinson, hutchpp

__all__ = [
    "LIKELIHOODS",
    "MATRICES",
    "BlockCurvature",
    "BlockView",
    "CurvatureOperator",
    "Density",
    "Eigen",
    "EmpiricalFisherOperator",
    "FisherOperator",
    "GGNOperator",
    "HessianOperator",
    "Sharpness",
    "Trace",
    "block_curvature",
    "blocks_by",
    "curvature_map",
    "default_tol",
    "eigenvalues",
    "hessian_directions",
    "hutchinson",
    "hutchpp",
    "lanczos_edges",
    "operator",
    "sharpness",
    "slq",
]
