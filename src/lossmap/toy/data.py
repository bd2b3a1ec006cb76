"""Small fixed data sets for the exact 2-parameter problems.

Every preset is deterministic (noise comes from a fixed seed) and documented;
targets of the regression presets stay inside (-1, 1) so a tanh neuron can
reach them.

=============================  ==============================================
name                           what it shows
=============================  ==============================================
``two-points``                 two points; every loss has its minimum where
                               the model passes through both
``sloped-line-through-origin`` y = 0.5·x on x in [0, 0.6]: the data barely pin
                               the slope, so the landscape is a long shallow
                               valley along w
``noisy-line``                 y = 0.6·x − 0.2 plus Gaussian noise (sd 0.08)
``line-with-outliers``         y = 0.5·x + small noise, three points pulled
                               far below the line: MSE bends, MAE does not
``binary-separable``           labels 0 for x < 0, 1 for x > 0: the logistic
                               loss has no minimum (it falls toward w → ∞)
``binary-overlapping``         two overlapping classes: a finite minimum
=============================  ==============================================
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from lossmap._validation import check_finite_array

__all__ = ["PRESETS", "Dataset", "dataset", "preset_names"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """Points ``(x, y)`` for a 2-parameter problem.

    Attributes
    ----------
    x, y : ndarray of shape (n,)
    name : str
    task : {"regression", "binary"}
    region : ((w_lo, w_hi), (b_lo, b_hi))
        A view of the (w, b) plane that shows the interesting part.
    description : str
    """

    x: np.ndarray
    y: np.ndarray
    name: str = "custom"
    task: str = "regression"
    region: tuple[tuple[float, float], tuple[float, float]] = ((-3.0, 3.0), (-3.0, 3.0))
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = check_finite_array("x", self.x, ndim=1)
        y = check_finite_array("y", self.y, ndim=1)
        if x.shape != y.shape:
            raise ValueError(
                f"`x` and `y` must have the same length, got {x.size} and {y.size}"
            )
        if self.task == "binary" and not np.all((y >= 0) & (y <= 1)):
            raise ValueError(
                f"binary targets `y` must lie in [0, 1], got values from "
                f"{y.min():g} to {y.max():g}"
            )
        for a in (x, y):
            a.flags.writeable = False
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __len__(self) -> int:
        return int(self.x.size)

    def subset(self, indices: Any) -> Dataset:
        """The points at ``indices`` (e.g. a mini-batch)."""
        idx = np.asarray(indices, dtype=np.intp)
        return Dataset(
            self.x[idx],
            self.y[idx],
            name=f"{self.name}[subset]",
            task=self.task,
            region=self.region,
            description=self.description,
        )

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (presets by name, custom data in full)."""
        out: dict[str, Any] = {"name": self.name, "n": len(self), "task": self.task}
        if self.name not in PRESETS:
            out["x"] = self.x.tolist()
            out["y"] = self.y.tolist()
        return out


def _two_points() -> Dataset:
    return Dataset(
        np.array([-1.0, 2.0]),
        np.array([-0.4, 0.6]),
        name="two-points",
        region=((-2.0, 3.0), (-2.5, 2.5)),
        description="Two points; every loss is zero where the model "
        "passes through both.",
    )


def _sloped() -> Dataset:
    x = np.linspace(0.0, 0.6, 13)
    return Dataset(
        x,
        0.5 * x,
        name="sloped-line-through-origin",
        region=((-4.0, 5.0), (-1.5, 1.5)),
        description="y = 0.5·x on x in [0, 0.6]: the data barely pin "
        "the slope, so the minimum lies in a long shallow "
        "valley along w.",
    )


def _noisy_line() -> Dataset:
    rng = np.random.default_rng(0)
    x = np.linspace(-1.0, 1.0, 20)
    return Dataset(
        x,
        0.6 * x - 0.2 + rng.normal(0.0, 0.08, x.size),
        name="noisy-line",
        region=((-2.0, 3.0), (-2.0, 1.5)),
        description="y = 0.6·x − 0.2 plus Gaussian noise (sd 0.08, seed 0).",
    )


def _outliers() -> Dataset:
    rng = np.random.default_rng(1)
    x = np.linspace(-1.0, 1.0, 15)
    y = 0.5 * x + rng.normal(0.0, 0.03, x.size)
    y[[10, 12, 13]] = [-0.85, -0.9, -0.8]
    return Dataset(
        x,
        y,
        name="line-with-outliers",
        region=((-2.0, 2.5), (-2.0, 1.5)),
        description="y = 0.5·x with small noise (sd 0.03, seed 1) and "
        "three points at x > 0.4 pulled to about −0.85.",
    )


def _separable() -> Dataset:
    x = np.array([-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0])
    y = (x > 0).astype(float)
    return Dataset(
        x,
        y,
        name="binary-separable",
        task="binary",
        region=((-4.0, 12.0), (-6.0, 6.0)),
        description="Labels 0 for x < 0 and 1 for x > 0: perfectly "
        "separable, so the logistic loss keeps falling as "
        "w grows and has no minimum.",
    )


def _overlapping() -> Dataset:
    rng = np.random.default_rng(2)
    x0 = rng.normal(-0.8, 1.0, 20)
    x1 = rng.normal(0.8, 1.0, 20)
    x = np.concatenate([x0, x1])
    y = np.concatenate([np.zeros(20), np.ones(20)])
    return Dataset(
        x,
        y,
        name="binary-overlapping",
        task="binary",
        region=((-3.0, 6.0), (-4.0, 4.0)),
        description="Two Gaussian classes (means ∓0.8, sd 1, 20 each, "
        "seed 2) that overlap: a finite minimum.",
    )


PRESETS = {
    "two-points": _two_points,
    "sloped-line-through-origin": _sloped,
    "noisy-line": _noisy_line,
    "line-with-outliers": _outliers,
    "binary-separable": _separable,
    "binary-overlapping": _overlapping,
}


def preset_names(task: str | None = None) -> tuple[str, ...]:
    """Names of the presets, optionally only those of one task."""
    return tuple(n for n, f in PRESETS.items() if task is None or f().task == task)


def dataset(
    data: str | Dataset | tuple[Any, Any], *, task: str | None = None
) -> Dataset:
    """A :class:`Dataset` from a preset name, a Dataset, or an ``(x, y)`` pair."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        if data not in PRESETS:
            raise ValueError(f"`data` must be one of {list(PRESETS)}, got {data!r}")
        return PRESETS[data]()
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(
            f"`data` must be a preset name, a Dataset or a pair (x, y), got "
            f"{type(data).__name__}"
        ) from None
    y_arr = np.asarray(y, dtype=float) if np.size(y) else np.asarray(y)
    inferred = task or (
        "binary" if y_arr.size and np.all(np.isin(y_arr, (0.0, 1.0))) else "regression"
    )
    out = Dataset(x, y, task=inferred)
    region = _region_for(out)
    return out if region is None else replace(out, region=region)


def _region_for(data: Dataset) -> tuple[tuple[float, float], ...] | None:
    """A view around the least-squares line when it lies off the default one.

    The default view, [-3, 3]² in (w, b), suits data on the presets' scale;
    for y = 1000 + 5x it showed a landscape without its minimum. Regression
    data whose least-squares (w, b) is outside [-2, 2]² get a view centred
    there that holds the line's MSE level set 16 above its minimum
    (half-widths ``4·sqrt(diag(H⁻¹))``, ``H = 2·mean([x, 1]ᵀ[x, 1])``).
    """
    if data.task != "regression" or len(data) < 2 or np.ptp(data.x) == 0:
        return None
    a = np.stack([data.x, np.ones_like(data.x)], axis=-1)
    theta = np.linalg.lstsq(a, data.y, rcond=None)[0]
    if not np.all(np.isfinite(theta)) or np.all(np.abs(theta) <= 2.0):
        return None
    hess = 2.0 * (a.T @ a) / len(data)
    half = 4.0 * np.sqrt(np.diag(np.linalg.inv(hess)))
    return tuple((float(c - h), float(c + h)) for c, h in zip(theta, half, strict=True))
