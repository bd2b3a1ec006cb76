"""Hessian spectra: the eigenvalue density with the top eigenvalues marked.

The display takes results computed by :mod:`lossmap.nn.hessian`
(:class:`~lossmap.nn.hessian.Density`, :class:`~lossmap.nn.hessian.Eigen`,
:class:`~lossmap.nn.hessian.Trace`); it never evaluates a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lossmap.plot import require_matplotlib

__all__ = ["SpectrumDisplay"]


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
