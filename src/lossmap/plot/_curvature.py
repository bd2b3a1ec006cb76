"""Curvature figures: spectra, per-layer traces, curvature maps, sharpness.

The displays take results computed by :mod:`lossmap.nn.curvature`
(``Density``, ``Eigen``, ``Trace``, ``BlockCurvature``, the surface of
``curvature_map``, ``Sharpness``); they never evaluate a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lossmap.plot import require_matplotlib

__all__ = [
    "BlockTraceDisplay",
    "CurvatureMapDisplay",
    "SharpnessDisplay",
    "SpectrumDisplay",
]


class SpectrumDisplay:
    """Eigenvalue density of a Hessian on a log scale.

    Parameters
    ----------
    density : Density
        ``grid`` (g,) and ``density`` (g,) from ``spectral_density``.
    top : Eigen, optional
        Top eigenvalues, drawn as vertical lines.
    trace : Trace, optional
        Hutchinson estimate, shown in the legend with its standard error.
    floor : float, default=1e-6
        Densities below ``floor × max`` are drawn at the floor, so the log
        axis shows the tails without plunging to -inf.

    Attributes
    ----------
    line_ : Line2D
    top_lines_ : list of Line2D
    ax_, figure_
    """

    def __init__(
        self, density: Any, *, top: Any = None, trace: Any = None, floor: float = 1e-6
    ) -> None:
        self.density = density
        self.top = top
        self.trace = trace
        self.floor = float(floor)

    def plot(
        self, ax: Any = None, *, title: str | None = None, color: str = "tab:blue"
    ) -> SpectrumDisplay:
        """Draw into ``ax`` (a new figure when None); returns self."""
        plt = require_matplotlib("SpectrumDisplay.plot")
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        grid = np.asarray(self.density.grid)
        dens = np.asarray(self.density.density)
        shown = np.maximum(dens, self.floor * float(dens.max()))
        label = "eigenvalue density (SLQ)"
        if self.trace is not None:
            label += f"\ntrace ≈ {self.trace.value:.4g} ± {self.trace.stderr:.2g}"
        (self.line_,) = ax.semilogy(grid, shown, color=color, lw=1.6, label=label)
        self.top_lines_ = []
        if self.top is not None:
            for k, value in enumerate(np.asarray(self.top.values)):
                self.top_lines_.append(
                    ax.axvline(
                        value,
                        color="tab:red",
                        ls="--",
                        lw=1.0,
                        label="top eigenvalues (Lanczos)" if k == 0 else None,
                    )
                )
        ax.axvline(0.0, color="0.5", lw=0.8)
        if not ax.get_xlabel():
            ax.set_xlabel("eigenvalue of the Hessian")
        if not ax.get_ylabel():
            ax.set_ylabel("density")
        if title is not None or not ax.get_title():
            ax.set_title(title or "Hessian spectrum")
        ax.legend(loc="upper right", fontsize=8)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self


_MATRIX_NAMES = {
    "hessian": "Hessian",
    "ggn": "Gauss-Newton matrix",
    "empirical_fisher": "empirical Fisher",
    "fisher": "Fisher",
}


class CurvatureMapDisplay:
    """λmax, λmin and |λmin/λmax| over a plane, side by side.

    Parameters
    ----------
    surface : Surface
        From :func:`lossmap.nn.curvature.curvature_map` (fields
        ``lambda_max``, ``lambda_min``, ``ratio``).

    Attributes
    ----------
    meshes_ : dict of str to QuadMesh
        One per field.
    axes_ : list of Axes
    figure_
    """

    FIELDS = (
        ("lambda_max", "λmax (sharpest curvature)", "viridis"),
        ("lambda_min", "λmin (most negative curvature)", "RdBu_r"),
        ("ratio", "|λmin / λmax| (non-convexity)", "magma"),
    )

    def __init__(self, surface: Any) -> None:
        missing = [f for f, _, _ in self.FIELDS if f not in surface.fields]
        if missing:
            raise ValueError(
                f"`surface` must come from curvature_map (fields lambda_max, "
                f"lambda_min, ratio), missing {missing}"
            )
        self.surface = surface

    def plot(
        self, axes: Any = None, *, title: str | None = None
    ) -> CurvatureMapDisplay:
        """Draw into three axes (a new figure when None); returns self."""
        plt = require_matplotlib("CurvatureMapDisplay.plot")

        if axes is None:
            _, axes = plt.subplots(1, 3, figsize=(13, 3.9), layout="constrained")
        names = list(self.surface.names)
        a, b = (self.surface.coords(n) for n in names[:2])
        self.meshes_ = {}
        for ax, (field, label, cmap) in zip(axes, self.FIELDS):
            z = np.asarray(self.surface.fields[field], dtype=float)
            norm = None
            if field == "lambda_min":
                norm, cmap = _signed_colours(z, cmap)
            mesh = ax.pcolormesh(a, b, z.T, shading="nearest", cmap=cmap, norm=norm)
            ax.figure.colorbar(mesh, ax=ax, shrink=0.9)
            ax.plot([0], [0], marker="*", color="white", mec="black", ms=11)
            ax.set_title(label, fontsize=10)
            if not ax.get_xlabel():
                ax.set_xlabel(names[0])
            if not ax.get_ylabel():
                ax.set_ylabel(names[1])
            self.meshes_[field] = mesh
        self.axes_ = list(axes)
        self.figure_ = self.axes_[0].figure
        matrix = self.surface.metadata.get("matrix", "hessian")
        name = _MATRIX_NAMES.get(matrix, matrix)
        self.figure_.suptitle(title or f"Curvature of the {name} over the plane")
        return self


def _signed_colours(z: np.ndarray, cmap: str) -> tuple[Any, Any]:
    """A norm and colormap for a signed field on a diverging ``cmap``: zero is
    always the middle (white), negative values always the low (blue) side and
    positive ones the high (red) side, also when every value has one sign
    (λmin < 0 everywhere near a saddle: the least negative cell used to take
    the red end, which reads as positive curvature)."""
    import matplotlib as mpl
    from matplotlib.colors import ListedColormap, Normalize, TwoSlopeNorm

    if not np.isfinite(z).any():
        return None, cmap
    lo, hi = float(np.nanmin(z)), float(np.nanmax(z))
    if lo < 0 < hi:
        return TwoSlopeNorm(0.0, lo, hi), cmap
    full = mpl.colormaps[cmap]
    if hi <= 0:
        if lo == 0:
            lo = -1.0
        half = ListedColormap(full(np.linspace(0.0, 0.5, 128)), name=f"{cmap}_neg")
        return Normalize(lo, 0.0), half
    half = ListedColormap(full(np.linspace(0.5, 1.0, 128)), name=f"{cmap}_pos")
    return Normalize(0.0, hi), half


class SharpnessDisplay:
    """λmax along training against the stability threshold (``Sharpness.formula``:
    2/η, or 2(1+β)/η with momentum β).

    Parameters
    ----------
    runs : mapping of label to Sharpness
        From :func:`lossmap.nn.curvature.sharpness`, one per training run.

    Attributes
    ----------
    lines_ : dict of str to Line2D
        λmax of each run.
    thresholds_ : dict of str to Line2D
        The stability threshold of each run (when it has learning rates).
    ax_, figure_
    """

    def __init__(self, runs: Any) -> None:
        self.runs = dict(runs)

    def plot(self, ax: Any = None, *, title: str | None = None) -> SharpnessDisplay:
        """Draw into ``ax`` (a new figure when None); returns self."""
        plt = require_matplotlib("SharpnessDisplay.plot")
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        self.lines_, self.thresholds_ = {}, {}
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (label, sh) in enumerate(self.runs.items()):
            c = colors[i % len(colors)]
            (self.lines_[label],) = ax.plot(
                sh.steps, sh.lambda_max, color=c, lw=1.6, label=f"λmax, {label}"
            )
            if sh.threshold is not None:
                (self.thresholds_[label],) = ax.plot(
                    sh.steps,
                    sh.threshold,
                    color=c,
                    ls="--",
                    lw=1.0,
                    label=f"{getattr(sh, 'formula', '2/η')}, {label}",
                )
        if not ax.get_xlabel():
            ax.set_xlabel("training step")
        if not ax.get_ylabel():
            ax.set_ylabel("top eigenvalue of the Hessian")
        if title is not None or not ax.get_title():
            # only runs whose threshold is drawn (none without learning rates
            # or for an adaptive optimizer) name it in the title
            drawn = {
                getattr(sh, "formula", "2/η")
                for sh in self.runs.values()
                if sh.threshold is not None
            }
            default = "Sharpness along training"
            if len(drawn) == 1:
                default += f" (edge of stability: {drawn.pop()})"
            elif drawn:
                default += " (edge of stability: stability threshold)"
            ax.set_title(title or default)
        ax.legend(fontsize=8)
        self.ax_, self.figure_ = ax, ax.figure
        return self


class BlockTraceDisplay:
    """Per-layer (per-block) traces and top eigenvalues as bars.

    Parameters
    ----------
    blocks : mapping of str to BlockCurvature
        From :func:`lossmap.nn.curvature.block_curvature`.

    Attributes
    ----------
    trace_bars_, top_bars_ : BarContainer
    errorbars_ : ErrorbarContainer
    ax_, figure_
    """

    def __init__(self, blocks: Any) -> None:
        self.blocks = dict(blocks)

    def plot(self, ax: Any = None, *, title: str | None = None) -> BlockTraceDisplay:
        """Draw into ``ax`` (a new figure when None); returns self."""
        plt = require_matplotlib("BlockTraceDisplay.plot")
        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
        names = list(self.blocks)
        pos = np.arange(len(names))
        traces = [self.blocks[n].trace.value for n in names]
        errors = [self.blocks[n].trace.stderr for n in names]
        tops = [float(self.blocks[n].top.values[0]) for n in names]
        self.trace_bars_ = ax.bar(pos - 0.2, traces, 0.4, label="trace (Hutch++)")
        self.errorbars_ = ax.errorbar(
            pos - 0.2, traces, yerr=errors, fmt="none", ecolor="black", capsize=3
        )
        self.top_bars_ = ax.bar(pos + 0.2, tops, 0.4, label="top eigenvalue")
        ax.set_xticks(pos, [f"{n}\n({self.blocks[n].dim} params)" for n in names])
        if not ax.get_ylabel():
            ax.set_ylabel("curvature of the block")
        if title is not None or not ax.get_title():
            ax.set_title(title or "Curvature per layer")
        ax.legend(fontsize=8)
        self.ax_, self.figure_ = ax, ax.figure
        return self
