"""The fit panel (data, prediction, residuals) and landscape + fit side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from lossmap._validation import check_finite_array, check_int
from lossmap.plot import require_matplotlib
from lossmap.plot._landscape import LandscapeDisplay
from lossmap.plot._style import as_point, new_axes, set_labels, title_from_metadata

__all__ = ["FitCurve", "FitDisplay", "LandscapeFitDisplay", "landscape_and_fit"]


class FitCurve(NamedTuple):
    """One prediction curve: its label, parameters and values on the curve grid."""

    label: str
    w: float
    b: float
    y: np.ndarray
    loss: float | None = None


def _fits_from(fits: Any) -> list[tuple[str, tuple[float, float]]]:
    """``[(label, (w, b)), ...]`` from a mapping or a sequence of triples."""
    items = fits.items() if isinstance(fits, Mapping) else fits
    out = []
    for item in items:
        try:
            label, point = (
                (item[0], item[1]) if len(item) == 2 else (item[0], item[1:3])
            )
        except TypeError:
            raise TypeError(f"`fits` must map labels to (w, b), got {fits!r}") from None
        out.append((str(label), as_point(f"fits[{label!r}]", point)))
    if not out:
        raise ValueError("`fits` must hold at least one (w, b), got none")
    return out


def _point_label(w: float, b: float) -> str:
    return f"w = {w:.3g}, b = {b:.3g}"


class FitDisplay:
    """Data points, the model's prediction at one or more (w, b), residuals.

    Parameters
    ----------
    x, y : array-like of shape (n,)
        The data.
    curve_x : array-like of shape (m,)
        Inputs at which the prediction curves are drawn.
    curves : sequence of FitCurve
        Prediction curves; each ``y`` has shape ``(m,)``. The first is the
        "current" fit.
    fitted : array-like of shape (n,), optional
        The current fit's prediction at the data points; when given, a residual
        line joins each ``(x_i, y_i)`` to ``(x_i, fitted_i)``.
    task : {"regression", "binary"}, default="regression"
        Binary data get a probability axis.
    title : str, optional

    Attributes
    ----------
    ax_, figure_ : Axes and Figure
    points_ : PathCollection
        The data points.
    lines_ : dict of str to Line2D
        One prediction curve per label.
    residuals_ : LineCollection or None
        Exactly one segment per data point, ``[(x_i, y_i), (x_i, fitted_i)]``.
    """

    def __init__(
        self,
        *,
        x: Any,
        y: Any,
        curve_x: Any,
        curves: Sequence[FitCurve],
        fitted: Any = None,
        task: str = "regression",
        title: str | None = None,
    ) -> None:
        self.x = check_finite_array("x", x, ndim=1)
        self.y = check_finite_array("y", y, ndim=1)
        if self.x.shape != self.y.shape:
            raise ValueError(
                f"`x` and `y` must have the same length, got "
                f"{self.x.size} and {self.y.size}"
            )
        self.curve_x = check_finite_array("curve_x", curve_x, ndim=1)
        self.curves = list(curves)
        for c in self.curves:
            if np.shape(c.y) != self.curve_x.shape:
                raise ValueError(
                    f"curve {c.label!r} must have shape "
                    f"{self.curve_x.shape}, got {np.shape(c.y)}"
                )
        self.fitted = None
        if fitted is not None:
            self.fitted = check_finite_array("fitted", fitted, ndim=1)
            if self.fitted.shape != self.x.shape:
                raise ValueError(
                    f"`fitted` must have one value per data point "
                    f"({self.x.size}), got {self.fitted.size}"
                )
        self.task = task
        self.title = title

    @classmethod
    def from_problem(
        cls,
        problem: Any,
        w: float | None = None,
        b: float | None = None,
        *,
        fits: Any = None,
        residuals: bool = True,
        n_curve: int = 400,
        ax: Any = None,
        **plot_kw: Any,
    ) -> FitDisplay:
        """Predictions of ``problem``'s model on its data, then plot them.

        Parameters
        ----------
        problem : Problem
            Supplies the data, the model (``predict``) and the loss.
        w, b : float, optional
            The current fit. Without them and without ``fits``: θ*.
        fits : mapping of str to (w, b), or sequence of (label, w, b), optional
            Several labelled fits in one panel (e.g. the minima of several
            losses on the same data); the first one gets the residuals.
        residuals : bool, default=True
            Draw a residual line from each point to the current fit.
        n_curve : int, default=400
            Points on each prediction curve.
        """
        disp = cls.compute(
            problem, w, b, fits=fits, residuals=residuals, n_curve=n_curve
        )
        return disp.plot(ax, **plot_kw)

    @classmethod
    def from_minima(
        cls,
        problems: Mapping[str, Any],
        *,
        residuals: bool = True,
        n_curve: int = 400,
        ax: Any = None,
        **plot_kw: Any,
    ) -> FitDisplay:
        """The fits at the minima of several problems on the same data.

        E.g. ``{"MSE": p_mse, "MAE": p_mae, "Huber": p_huber}`` on
        ``line-with-outliers`` shows how far each loss lets outliers pull the
        fit. Each curve's loss is its own problem's L(θ*); residuals are drawn
        to the first fit.
        """
        if not isinstance(problems, Mapping) or not problems:
            raise TypeError(
                "`problems` must be a non-empty mapping of labels to "
                f"problems, got {problems!r}"
            )
        first = next(iter(problems.values()))
        for label, p in problems.items():
            same = (
                p.data.x.shape == first.data.x.shape
                and np.array_equal(p.data.x, first.data.x)
                and np.array_equal(p.data.y, first.data.y)
            )
            if not same or p.model.name != first.model.name:
                raise ValueError(
                    f"problem {label!r} must share the model and data "
                    f"of the first one ({first.model.name!r} on "
                    f"{first.data.name!r})"
                )
        minima = {label: p.minimum() for label, p in problems.items()}
        disp = cls.compute(
            first,
            fits={k: (m.w, m.b) for k, m in minima.items()},
            residuals=residuals,
            n_curve=n_curve,
        )
        disp.curves = [c._replace(loss=minima[c.label].loss) for c in disp.curves]
        disp.title = f"{first.model.formula} on {first.data.name}: fits at each θ*"
        return disp.plot(ax, **plot_kw)

    @classmethod
    def compute(
        cls,
        problem: Any,
        w: float | None = None,
        b: float | None = None,
        *,
        fits: Any = None,
        residuals: bool = True,
        n_curve: int = 400,
    ) -> FitDisplay:
        """The display's data for ``problem`` (see :meth:`from_problem`), unplotted."""
        n_curve = check_int("n_curve", n_curve, minimum=2)
        if fits is not None and (w is not None or b is not None):
            raise TypeError("give either `w` and `b` or `fits`, not both")
        if fits is None:
            if w is None and b is None:
                m = problem.minimum()
                point = (m.w, m.b)
                label = f"θ* ({_point_label(m.w, m.b)})"
            else:
                point = as_point("(w, b)", (w, b))
                label = _point_label(*point)
            items = [(label, point)]
        else:
            items = _fits_from(fits)
        x, y = problem.data.x, problem.data.y
        lo, hi = float(x.min()), float(x.max())
        pad = 0.15 * (hi - lo) if hi > lo else 1.0
        if problem.data.task == "binary":
            pad = max(pad, 0.25 * (hi - lo))
        curve_x = np.linspace(lo - pad, hi + pad, n_curve)
        curves = [
            FitCurve(
                lbl, p[0], p[1], problem.predict(curve_x, *p), float(problem.loss(*p))
            )
            for lbl, p in items
        ]
        fitted = problem.predict(x, *items[0][1]) if residuals else None
        title = None
        if len(curves) == 1:
            c = curves[0]
            loss_label = problem.loss_fn.label or problem.loss_fn.name
            title = (
                f"{problem.model.formula} at {_point_label(c.w, c.b)}\n"
                f"{loss_label} = {c.loss:.4g}"
            )
        return cls(
            x=x,
            y=y,
            curve_x=curve_x,
            curves=curves,
            fitted=fitted,
            task=problem.data.task,
            title=title,
        )

    def plot(
        self,
        ax: Any = None,
        *,
        xlabel: str | None = None,
        ylabel: str | None = None,
        title: str | None = None,
        legend: bool = True,
        show_loss: bool = True,
    ) -> FitDisplay:
        """Draw points, prediction curves and residuals into ``ax``."""
        from matplotlib.collections import LineCollection

        ax = new_axes(ax, "FitDisplay.plot")
        self.lines_ = {}
        for k, c in enumerate(self.curves):
            label = c.label
            if show_loss and c.loss is not None and len(self.curves) > 1:
                label = f"{label}  (L = {c.loss:.3g})"
            (line,) = ax.plot(
                self.curve_x, c.y, color=f"C{k}", lw=2.0, label=label, zorder=3
            )
            self.lines_[c.label] = line
        self.residuals_ = None
        if self.fitted is not None:
            segments = np.stack(
                [np.stack([self.x, self.y], -1), np.stack([self.x, self.fitted], -1)],
                axis=1,
            )
            self.residuals_ = LineCollection(
                segments,
                colors="C3",
                linewidths=1.1,
                linestyles="--",
                alpha=0.8,
                zorder=2,
                label="residuals",
            )
            ax.add_collection(self.residuals_)
        self.points_ = ax.scatter(
            self.x, self.y, s=30, c="#222222", zorder=4, label="data"
        )
        if self.task == "binary":
            ax.set_ylim(-0.08, 1.08)
            ax.axhline(0.5, color="0.6", lw=0.8, ls=":", zorder=1)
        ax.set_xlim(self.curve_x[0], self.curve_x[-1])
        ax.grid(alpha=0.25)
        ylab = "P(y = 1)" if self.task == "binary" else "y"
        set_labels(
            ax,
            xlabel=xlabel,
            ylabel=ylabel,
            title=title,
            defaults=("x", ylab, self.title or ""),
        )
        if legend:
            ax.legend(fontsize=8, loc="best", framealpha=0.85)
        self.ax_, self.figure_ = ax, ax.figure
        return self


class LandscapeFitDisplay:
    """Landscape and fit side by side at one (w, b): the explorer, on paper.

    Parameters
    ----------
    landscape : LandscapeDisplay
        With ``current`` set to (w, b).
    fit : FitDisplay
        The fit at (w, b).
    w, b, loss : float
        The current point and its loss, shown in the title.
    loss_label : str, default="loss"

    Attributes
    ----------
    figure_ : Figure
    axes_ : (Axes, Axes)
        Landscape and fit panel.
    landscape_, fit_ : LandscapeDisplay, FitDisplay
        The two displays after plotting (their artists live there).
    """

    def __init__(
        self,
        landscape: LandscapeDisplay,
        fit: FitDisplay,
        *,
        w: float,
        b: float,
        loss: float,
        loss_label: str = "loss",
    ) -> None:
        self.landscape = landscape
        self.fit = fit
        self.w, self.b = as_point("(w, b)", (w, b))
        self.loss = float(loss)
        self.loss_label = loss_label

    @classmethod
    def from_problem(
        cls,
        problem: Any,
        w: float | None = None,
        b: float | None = None,
        *,
        steps: int = 201,
        region: Any = None,
        start: Any = None,
        levels: Sequence[float] | None = None,
        axes: Any = None,
        **plot_kw: Any,
    ) -> LandscapeFitDisplay:
        """Compute the surface, θ* and the fit at (w, b) (default θ*), then plot.

        A problem without a minimum needs an explicit ``w`` and ``b``.
        """
        steps = check_int("steps", steps, minimum=2)
        surface = problem.surface(region, steps=steps)
        title = title_from_metadata(surface.metadata)
        try:
            minimum = problem.minimum()
        except ValueError:
            minimum = None
            title += " (no finite minimum)"
        if w is None and b is None:
            if minimum is None:
                raise ValueError(f"{problem.title} has no minimum; give `w` and `b`")
            w, b = minimum.w, minimum.b
        w, b = as_point("(w, b)", (w, b))
        landscape = LandscapeDisplay(
            surface, minimum=minimum, start=start, current=(w, b), title=title
        )
        fit = FitDisplay.compute(problem, w, b)
        loss_label = problem.loss_fn.label or problem.loss_fn.name
        disp = cls(
            landscape,
            fit,
            w=w,
            b=b,
            loss=float(problem.loss(w, b)),
            loss_label=loss_label,
        )
        return disp.plot(axes, levels=levels, **plot_kw)

    def plot(
        self,
        axes: Any = None,
        *,
        levels: Sequence[float] | None = None,
        figsize: tuple[float, float] = (12.0, 5.0),
        suptitle: str | None = None,
        **landscape_kw: Any,
    ) -> LandscapeFitDisplay:
        """Draw both panels into ``axes`` (a pair) or a new figure."""
        plt = require_matplotlib("LandscapeFitDisplay.plot")
        if axes is None:
            fig, axes = plt.subplots(
                1,
                2,
                figsize=figsize,
                gridspec_kw={"width_ratios": [1.18, 1.0]},
                layout="constrained",
            )
        try:
            ax_l, ax_f = axes
        except (TypeError, ValueError):
            raise TypeError(f"`axes` must be a pair of Axes, got {axes!r}") from None
        self.landscape_ = self.landscape.plot(ax_l, levels=levels, **landscape_kw)
        ax_l.set_title(self.landscape.title or "", fontsize=10)
        self.fit_ = self.fit.plot(ax_f, title="")
        fig = ax_l.figure
        text = suptitle or (
            f"w = {self.w:.4g}, b = {self.b:.4g}   ·   "
            f"{self.loss_label} L(w, b) = {self.loss:.4g}"
        )
        self.suptitle_ = fig.suptitle(text, fontsize=12)
        self.axes_, self.figure_ = (ax_l, ax_f), fig
        return self


def landscape_and_fit(
    problem: Any, w: float | None = None, b: float | None = None, **kwargs: Any
) -> LandscapeFitDisplay:
    """Landscape and fit side by side; see :meth:`LandscapeFitDisplay.from_problem`."""
    return LandscapeFitDisplay.from_problem(problem, w, b, **kwargs)
