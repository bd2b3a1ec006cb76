"""Loss landscapes of real PyTorch networks.

The only part of lossmap that imports torch. Directions in parameter space
(:mod:`lossmap.nn.directions`), the batched evaluation engine
(:mod:`lossmap.nn.engine`), lines and planes (:func:`line`, :func:`plane`),
and training trajectories.

Examples
--------
>>> import torch
>>> from lossmap import nn as lnn
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(),
...                           torch.nn.Linear(8, 1))
>>> x, y = torch.randn(32, 3), torch.randn(32, 1)
>>> d1, d2 = lnn.random_plane(net, seed=0)
>>> s = lnn.plane(net, torch.nn.functional.mse_loss, (x, y), (d1, d2),
...               steps=5, progress=False)
>>> s.shape
(5, 5)
"""

from __future__ import annotations

from lossmap.nn import batch, curvature, hessian
from lossmap.nn.align import Alignment, align
from lossmap.nn.batch import (
    METRICS,
    OUTPUT_LOSS,
    accuracy,
    materialise,
    sum_count,
    token_cross_entropy,
)
from lossmap.nn.connect import (
    CURVES,
    Curve,
    barrier,
    curve_path,
    linear_path,
    train_curve,
)
from lossmap.nn.directions import (
    NORMS,
    Direction,
    axis_directions,
    from_tensors,
    interpolation,
    plane_through,
    random_direction,
    random_directions,
    random_plane,
)
from lossmap.nn.embed import Embedding, embed
from lossmap.nn.evaluate import (
    RandomLines,
    evaluate_params,
    line,
    plane,
    random_lines,
)
from lossmap.nn.options import Options
from lossmap.nn.params import ParamInfo, ParamSpace, describe_selection, select

# ---- trajectories (trajectory.py)
from lossmap.nn.projection import Projection, evaluate_snapshots, project, surface_at
from lossmap.nn.trajectory import Recorder, Recording, path_span, pca_directions

__all__ = [
    "CURVES",
    "METRICS",
    "NORMS",
    "OUTPUT_LOSS",
    "Alignment",
    "Curve",
    "Direction",
    "Embedding",
    "Options",
    "ParamInfo",
    "ParamSpace",
    "Projection",
    "RandomLines",
    "Recorder",
    "Recording",
    "accuracy",
    "align",
    "axis_directions",
    "barrier",
    "batch",
    "curvature",
    "curve_path",
    "describe_selection",
    "embed",
    "evaluate_params",
    "evaluate_snapshots",
    "from_tensors",
    "hessian",
    "interpolation",
    "line",
    "linear_path",
    "materialise",
    "path_span",
    "pca_directions",
    "plane",
    "plane_through",
    "project",
    "random_direction",
    "random_directions",
    "random_lines",
    "random_plane",
    "select",
    "sum_count",
    "surface_at",
    "token_cross_entropy",
    "train_curve",
]
