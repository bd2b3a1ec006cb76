"""One self-contained HTML page of results: surfaces, paths, Hessian spectra.

:func:`report_html` lays out, for each result, the figures the Plotly builders
of :mod:`lossmap.plot._plotly` draw (heatmaps with labelled contours on a log
colour scale, 3-D surfaces, curves), plus what only a report needs: the
spread of a 1-D curve (``<field>_stderr``), the faithfulness of a projected
training path (how far each snapshot lies off the plane, and its true loss
against the surface's value where it is drawn) and Hessian spectra. The
metadata is described in plain words by :mod:`lossmap.describe`.

plotly.js is embedded once, so the page opens from ``file://`` with no
network and no server.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lossmap.describe import direction_names
from lossmap.surface import Surface

__all__ = ["Path2D", "figures_for", "path_of", "report_html", "spectrum_figure"]

_CONFIG = {"displaylogo": False, "responsive": True}
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;
     color:#1d1d1f;background:#fafafa}
header{background:#24292f;color:#fff;padding:14px 28px}
header h1{margin:0;font-size:21px;font-weight:600}
main{max-width:1180px;margin:0 auto;padding:8px 28px 40px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:8px;
        margin:22px 0;padding:6px 20px 16px}
h2{font-size:18px;margin:14px 0 6px}
ul.meta{margin:4px 0 10px 0;padding-left:20px;font-size:13.5px;line-height:1.45}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:10px}
.fig{height:480px;min-width:0}
.fig.wide{grid-column:1/-1}
@media (max-width:900px){.grid{grid-template-columns:minmax(0,1fr)}}
nav{font-size:13.5px}
nav a{margin-right:14px}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
"""


@dataclass(frozen=True)
class Path2D:
    """A projected training path as the Plotly builders take it."""

    params: np.ndarray
    label: str = "training path"


def path_of(surface: Surface) -> Path2D | None:
    """The projected training path a plane's metadata carries, if any."""
    meta = surface.metadata.get("trajectory")
    if surface.ndim != 2 or not isinstance(meta, Mapping) or not meta.get("coords"):
        return None
    coords = np.asarray(meta["coords"], dtype=float).reshape(-1, 2)
    return Path2D(coords)


def _values_at(surface: Surface, field: str, points: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a plane's field at points (m, 2); NaN outside."""
    from scipy.interpolate import RegularGridInterpolator

    interp = RegularGridInterpolator(
        (surface.coords(0), surface.coords(1)),
        surface.field(field),
        bounds_error=False,
        fill_value=np.nan,
    )
    return interp(np.asarray(points, dtype=float).reshape(-1, 2))


def _log_for(field: str) -> bool | None:
    return None if field.startswith("loss") else False


def _drawn_fields(surface: Surface, fields: Sequence[str] | None) -> list[str]:
    if fields:
        for f in fields:
            surface.field(f)  # clear error for an unknown field
        return list(fields)
    return [f for f in surface.field_names if not f.endswith("_stderr")]


def _curve(surface: Surface, field: str) -> Any:
    from lossmap.plot._plotly import curve_figure

    fig = curve_figure(surface, field=field, log=_log_for(field))
    spread = f"{field}_stderr"
    if spread in surface.field_names:
        a = surface.coords(0)
        v, e = surface.field(field), surface.field(spread)
        fig.add_scatter(
            x=np.concatenate([a, a[::-1]]),
            y=np.concatenate([v + 2 * e, (v - 2 * e)[::-1]]),
            fill="toself",
            fillcolor="rgba(42,111,219,0.18)",
            line={"width": 0},
            hoverinfo="skip",
            name="± 2 standard errors",
        )
    fig.update_layout(title={"text": f"{field} along the line", "x": 0.02})
    return fig


def _faithfulness(surface: Surface, path: Path2D) -> Any:
    """How far each snapshot is from the plane; true loss vs the surface's."""
    from plotly.subplots import make_subplots

    meta = surface.metadata["trajectory"]
    steps = np.asarray(meta.get("steps") or np.arange(len(path.params)), dtype=float)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "distance off the plane / distance from its centre",
            "loss at each snapshot: true vs read off the surface",
        ),
    )
    rel = meta.get("relative_distance")
    if rel is not None:
        fig.add_scatter(
            x=steps,
            y=np.asarray(rel, dtype=float),
            mode="lines+markers",
            name="relative distance off the plane",
            row=1,
            col=1,
        )
    true = meta.get("true_loss")
    if true is not None:
        fig.add_scatter(
            x=steps,
            y=np.asarray(true, dtype=float),
            mode="lines+markers",
            name="true loss (the snapshot's own weights)",
            row=1,
            col=2,
        )
    fig.add_scatter(
        x=steps,
        y=_values_at(surface, "loss", path.params),
        mode="lines+markers",
        line={"dash": "dash"},
        name="surface loss at the projected point",
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="relative distance", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_layout(
        template="plotly_white",
        title={"text": "Is the path faithful to the plane?", "x": 0.02},
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 80, "b": 40},
    )
    return fig


def figures_for(
    surface: Surface,
    *,
    fields: Sequence[str] | None = None,
    three_d: bool | None = None,
) -> list[tuple[Any, bool]]:
    """The figures of one surface, each with whether it spans the page's width.

    A plane gives a heatmap per field, a 3-D surface of the loss (or of each
    field in ``fields`` when ``three_d`` is True; only the 3-D ones then) and,
    with a projected path, its faithfulness panels. A line gives a curve per
    field, with its spread when ``<field>_stderr`` exists.
    """
    from lossmap.plot._plotly import landscape_figure, surface3d_figure

    drawn = _drawn_fields(surface, fields)
    if surface.ndim == 1:
        if three_d:
            raise ValueError(
                "`--3d` needs a plane (2 axes), got a line: draw it without --3d"
            )
        return [(_curve(surface, f), False) for f in drawn]
    path = path_of(surface)
    paths = [path] if path is not None else []
    start = path.params[0] if path is not None else None
    out: list[tuple[Any, bool]] = []
    # a network's plane is centred on its weights θ (coordinates 0, 0): mark
    # them, and name the axes by their directions, as the PNG figures do
    network = isinstance(surface.metadata.get("directions"), list)
    lo, hi = (
        [float(surface.coords(k)[0]) for k in (0, 1)],
        [float(surface.coords(k)[-1]) for k in (0, 1)],
    )
    centre = (
        [0.0, 0.0] if network and all(a <= 0.0 <= b for a, b in zip(lo, hi)) else None
    )
    titles = direction_names(surface) if network else None
    if not three_d:
        for f in drawn:
            best = surface.argmax(f) if f == "accuracy" else surface.argmin(f)
            fig = landscape_figure(
                surface,
                field=f,
                log=_log_for(f),
                minimum=list(best.coords.values()),
                start=start,
                current=centre,
                paths=paths,
                title=f"{f} on the plane",
                marker_names={
                    "minimum": "highest on the grid"
                    if f == "accuracy"
                    else "lowest on the grid",
                    "start": "first snapshot",
                    "current": "θ (centre)",
                },
                axis_titles=titles,
            )
            fig.frames = ()  # a report shows the whole path, no replay
            fig.layout.updatemenus = ()
            out.append((fig, False))
    for f in drawn if three_d else ["loss"]:
        best = surface.argmax(f) if f == "accuracy" else surface.argmin(f)
        fig = surface3d_figure(
            surface,
            field=f,
            log=_log_for(f),
            minimum=list(best.coords.values()),
            paths=paths,
            title=f"{f} as a surface",
            values_at=lambda pts, f=f: _values_at(surface, f, pts),
        )
        out.append((fig, False))
    if path is not None and not three_d:
        out.append((_faithfulness(surface, path), True))
    return out


def spectrum_figure(result: Mapping[str, Any]) -> Any:
    """Eigenvalue density (stochastic Lanczos quadrature) and the extreme
    eigenvalues."""
    import plotly.graph_objects as go

    fig = go.Figure()
    dens = result.get("density")
    if dens:
        fig.add_scatter(
            x=dens["grid"],
            y=dens["density"],
            mode="lines",
            fill="tozeroy",
            name="eigenvalue density",
            line={"color": "#2a6fdb"},
        )
    top = max(dens["density"]) if dens else 1.0
    marks = (
        (result.get("eigenvalues") or [], "#e0201b", "top"),
        ((result.get("bottom") or {}).get("eigenvalues") or [], "#7b2cbf", "bottom"),
    )
    for values, color, end in marks:
        if values:
            fig.add_scatter(
                x=values,
                y=[0.5 * top] * len(values),
                mode="markers",
                marker={
                    "symbol": "line-ns-open",
                    "size": 26,
                    "color": color,
                    "line": {"width": 2},
                },
                name=f"{end} eigenvalues (Lanczos)",
                hovertemplate="λ = %{x:.5g}<extra></extra>",
            )
    fig.update_layout(
        template="plotly_white",
        title={"text": f"{_matrix_words(result)} eigenvalue spectrum", "x": 0.02},
        xaxis={"title": {"text": "eigenvalue"}},
        yaxis={"title": {"text": "density"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
    )
    return fig


#: Curvature matrices of ``lossmap hessian --matrix``, in words.
_MATRIX_WORDS = {
    "hessian": "Hessian",
    "ggn": "generalised Gauss-Newton matrix",
    "empirical_fisher": "empirical Fisher",
    "fisher": "Monte-Carlo Fisher",
}


def _matrix_words(result: Mapping[str, Any]) -> str:
    matrix = result.get("matrix", "hessian")
    return _MATRIX_WORDS.get(matrix, str(matrix))


def _eigen_words(label: str, values: Any, converged: Any) -> str:
    text = f"{label}: " + ", ".join(f"{v:.5g}" for v in values)
    if converged is None:
        return text + "."
    bad = sum(not c for c in converged)
    return text + (
        " (all converged)."
        if not bad
        else f" ({bad} of {len(converged)} NOT converged)."
    )


def _trace_words(tr: Mapping[str, Any]) -> str:
    method = tr.get("method", "hutchinson")
    if method == "exact":
        text = f"Trace {tr['value']:.5g} (exact"
    else:
        name = {"hutchinson": "Hutchinson", "hutch++": "Hutch++"}.get(method, method)
        text = (
            f"Trace {tr['value']:.5g} ± {tr['stderr']:.2g} ({name}, "
            f"{tr['probes']} probes"
        )
    if tr.get("products") is not None:
        text += f", {tr['products']} products"
    if tr.get("target_met") is False:
        text += f"; the target ± {tr['target_se']:.2g} was not reached"
    return text + ")."


def _spectrum_words(result: Mapping[str, Any]) -> list[str]:
    matrix = _matrix_words(result)
    lines = [
        f"{matrix[:1].upper() + matrix[1:]} of the loss with respect to "
        f"{result.get('dim', '?')} parameter values ({len(result.get('params') or [])} "
        "tensors)."
    ]
    if result.get("likelihood"):
        lines.append(f"Likelihood: {result['likelihood']}.")
    eig = result.get("eigenvalues")
    if eig:
        lines.append(_eigen_words("Top eigenvalues", eig, result.get("converged")))
    bottom = result.get("bottom")
    if bottom and bottom.get("eigenvalues"):
        lines.append(
            _eigen_words(
                "Bottom eigenvalues", bottom["eigenvalues"], bottom.get("converged")
            )
        )
    tr = result.get("trace")
    if tr:
        lines.append(_trace_words(tr))
    blocks = result.get("blocks")
    if blocks and blocks.get("items"):
        parts = []
        for name, b in blocks["items"].items():
            top = (b.get("top") or {}).get("eigenvalues") or []
            lam = f"λmax {top[0]:.4g}, " if top else ""
            trace = _trace_words(b["trace"])[:-1].replace("Trace", "trace", 1)
            parts.append(f"{name}: {lam}{trace}")
        lines.append(f"Per {blocks.get('by', 'block')}: " + "; ".join(parts) + ".")
    if result.get("products") is not None:
        lines.append(f"{result['products']} matrix-vector products in all.")
    return lines


def _embedding_words(result: Mapping[str, Any]) -> list[str]:
    meta = result.get("meta") or {}
    runs = result.get("runs") or []
    lines = [
        f"A map of {len(result.get('coords') or [])} checkpoints from "
        f"{len(runs)} run(s) ({', '.join(map(str, runs))}) by "
        f"{meta.get('method', '?')}."
    ]
    if meta.get("reading"):
        lines.append(str(meta["reading"]).capitalize() + ".")
    ratio = meta.get("explained_variance_ratio")
    if ratio:
        shares = ", ".join(f"{100 * float(r):.1f} %" for r in ratio)
        lines.append(f"The two axes explain {shares} of the variance.")
    return lines


def _command_words(meta: Mapping[str, Any]) -> list[str]:
    import shlex

    command = meta.get("_command")
    if isinstance(command, list):
        return [f"Recompute with: <code>{html.escape(shlex.join(command))}</code>"]
    return []


def report_html(
    results: Iterable[tuple[str, Surface | Mapping[str, Any]]],
    *,
    title: str = "lossmap report",
    fields: Sequence[str] | None = None,
    three_d: bool | None = None,
) -> str:
    """A self-contained HTML page of ``(name, result)`` pairs.

    Parameters
    ----------
    results : iterable of (str, Surface or mapping)
        Surfaces (planes and lines, e.g. loaded from stores), Hessian results
        (mappings with ``eigenvalues``, ``trace``, ``density`` as written by
        ``lossmap hessian --out``) and checkpoint maps (``kind`` "nn.embedding",
        as ``lossmap embed`` writes them).
    title : str
    fields : list of str, optional
        Fields drawn for every surface (default: all but ``*_stderr``).
    three_d : bool, optional
        Draw planes only as 3-D surfaces, one per field.

    Returns
    -------
    str
        The page, with plotly.js embedded.
    """
    import plotly.io as pio
    from plotly.offline import get_plotlyjs

    from lossmap.describe import describe_metadata

    sections: list[str] = []
    toc: list[str] = []
    n_fig = 0
    for k, (name, result) in enumerate(results):
        anchor = f"result-{k}"
        toc.append(f'<a href="#{anchor}">{html.escape(name)}</a>')
        if isinstance(result, Surface):
            words = [html.escape(w) for w in describe_metadata(result)]
            words += _command_words(result.metadata)
            figs = figures_for(result, fields=fields, three_d=three_d)
        elif isinstance(result, Mapping) and result.get("kind") == "nn.embedding":
            from lossmap.plot._minima import embedding_figure

            words = [html.escape(w) for w in _embedding_words(result)]
            words += _command_words(result)
            figs = [(embedding_figure(result), True)]
        elif isinstance(result, Mapping):
            words = [html.escape(w) for w in _spectrum_words(result)]
            words += _command_words(result)
            figs = [(spectrum_figure(result), True)]
        else:
            raise TypeError(
                f"`results` entries must be Surfaces or Hessian result mappings, got "
                f"{type(result).__name__} for {name!r}"
            )
        divs = []
        for fig, wide in figs:
            n_fig += 1
            div = pio.to_html(
                fig,
                full_html=False,
                include_plotlyjs=False,
                div_id=f"fig-{n_fig}",
                config=_CONFIG,
                default_height="100%",
                default_width="100%",
            )
            divs.append(f'<div class="fig{" wide" if wide else ""}">{div}</div>')
        items = "".join(f"<li>{w}</li>" for w in words)
        sections.append(
            f'<section id="{anchor}"><h2>{html.escape(name)}</h2>'
            f'<ul class="meta">{items}</ul><div class="grid">{"".join(divs)}</div>'
            "</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f"<header><h1>{html.escape(title)}</h1></header><main>"
        f"<nav>{''.join(toc)}</nav>{''.join(sections)}</main>"
        f"<script>window.lossmapFigures = {json.dumps(n_fig)};</script>"
        "</body></html>\n"
    )
