"""The research view: surfaces saved by ``lossmap.nn`` (zarr stores).

Only stores under the folder given on the command line are listed or opened;
any other path from the page is refused (:func:`~lossmap.explorer.validate.store_path`).
A plane is drawn as a heatmap with contours (log colour scale when the field is
positive), a line as a curve; the projected training trajectory is drawn when
the store has one, and the metadata is shown as plain sentences.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lossmap.describe import describe_metadata, direction_names
from lossmap.explorer.validate import InputError, check_name, store_path
from lossmap.plot import _plotly
from lossmap.surface import Surface

__all__ = ["describe_metadata", "list_stores", "load_store", "register", "store_figure"]

MAX_STORES = 200


class Path2D(NamedTuple):
    """A projected trajectory in the plane's coordinates, shape (n, 2)."""

    params: np.ndarray
    label: str = "training path"


def _is_surface_store(path: Path) -> bool:
    from lossmap.io import GridStore

    try:
        GridStore.attach(path)
    except (ValueError, OSError):
        return False
    return True


def list_stores(root: Path | None) -> list[str]:
    """Surface stores (``*.zarr`` folders) under ``root``: relative, sorted.

    Other zarr folders (e.g. recorded trajectories) are left out.
    """
    if root is None:
        return []
    root = Path(root).resolve()
    if root.name.endswith(".zarr"):
        return ["."] if _is_surface_store(root) else []
    found = []
    for p in sorted(root.rglob("*.zarr")):
        inside = any(
            part.endswith(".zarr") for part in p.relative_to(root).parent.parts
        )
        if p.is_dir() and not inside and _is_surface_store(p):
            found.append(p.relative_to(root).as_posix())
        if len(found) >= MAX_STORES:
            break
    return found


@functools.lru_cache(maxsize=16)
def _load_cached(path: str, mtime: float) -> Surface:
    from lossmap import io

    return io.load(path)


def load_store(root: Path | None, value: Any) -> Surface:
    """Open the store ``value`` (relative to ``root``); refuse paths outside it."""
    path = store_path(root, value)
    try:
        return _load_cached(str(path), path.stat().st_mtime)
    except (ValueError, OSError, KeyError) as exc:
        raise InputError(f"could not open {value!r}: {exc}") from None


def trajectory_of(surface: Surface) -> Path2D | None:
    """The projected trajectory stored in the metadata, if any."""
    meta = surface.metadata.get("trajectory")
    if not meta or surface.ndim != 2:
        return None
    n0, n1 = surface.names
    try:
        if isinstance(meta, dict):
            coords = meta.get("coords") or meta.get("projected")
            if coords is None and n0 in meta and n1 in meta:
                coords = np.column_stack([meta[n0], meta[n1]])
        else:
            coords = meta
        arr = np.asarray(coords, dtype=float).reshape(-1, 2)
    except (TypeError, ValueError):
        return None
    return Path2D(arr) if arr.size else None


def line_marks(surface: Surface) -> list[tuple[float, str]]:
    """Labelled points of a line: the model it starts from at 0 and, for an
    interpolation, the model it reaches at 1."""
    dirs = surface.metadata.get("directions")
    kind = (
        dirs[0].get("kind")
        if isinstance(dirs, list) and dirs and isinstance(dirs[0], dict)
        else None
    )
    if kind == "interpolation":
        return [(0.0, "model A (α = 0)"), (1.0, "model B (α = 1)")]
    return [(0.0, "trained model (α = 0)")]


def store_figure(surface: Surface, field: str) -> Any:
    """Heatmap + contours (+ trajectory) for a plane, a curve for a line."""
    field = check_name("field", field, surface.field_names)
    names = direction_names(surface)
    if surface.ndim == 1:
        log = None if field.startswith("loss") else False
        return _plotly.curve_figure(
            surface,
            field=field,
            log=log,
            title=f"{field} along the line",
            axis_title=names[0],
            marks=line_marks(surface),
        )
    traj = trajectory_of(surface)
    origin = (0.0, 0.0)
    a0, a1 = surface.coords(0), surface.coords(1)
    show_origin = a0[0] <= 0 <= a0[-1] and a1[0] <= 0 <= a1[-1]
    best = surface.argmin(field) if field != "accuracy" else surface.argmax(field)
    log = None if field.startswith("loss") else False
    return _plotly.landscape_figure(
        surface,
        field=field,
        log=log,
        minimum=list(best.coords.values()),
        start=traj.params[0] if traj is not None else None,
        current=origin if show_origin else None,
        paths=[traj] if traj is not None else [],
        title=f"{field} on the plane",
        axis_titles=names,
        marker_names={
            "minimum": "lowest loss on the grid"
            if field != "accuracy"
            else "highest accuracy on the grid",
            "start": "start of training",
            "current": "centre of the plane",
        },
    )


def register(app: Any, *, store_root: Any = None) -> None:
    """Callbacks of the research tab."""
    from dash import Input, Output, html, no_update

    from lossmap.explorer.callbacks import guarded

    root = Path(store_root).resolve() if store_root is not None else None

    @app.callback(
        Output("store", "options"),
        Output("store", "value"),
        Input("tabs", "value"),
    )
    @guarded(2, None)
    def stores(tab: Any) -> Any:
        found = list_stores(root)
        return found, found[0] if found else None

    @app.callback(
        Output("field", "options"),
        Output("field", "value"),
        Output("research-meta", "children"),
        Output("research-message", "children"),
        Input("store", "value"),
    )
    @guarded(4, 3)
    def store_selected(value: Any) -> Any:
        if value is None:
            return [], None, [], ""
        surface = load_store(root, value)
        fields = list(surface.field_names)
        return (
            fields,
            "loss",
            [html.Li(s) for s in describe_metadata(surface)],
            "",
        )

    @app.callback(
        Output("research-graph", "figure"),
        Output("research-message", "children", allow_duplicate=True),
        Input("field", "value"),
        Input("store", "value"),
        prevent_initial_call=True,
    )
    @guarded(2, 1)
    def research_figure(field: Any, value: Any) -> Any:
        if value is None or field is None:
            return no_update, ""
        surface = load_store(root, value)
        return store_figure(surface, field), ""
