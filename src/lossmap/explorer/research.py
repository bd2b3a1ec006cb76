"""The research view: surfaces saved by ``lossmap.nn`` (zarr stores) and
checkpoint maps written by ``lossmap embed`` (``.json``, kind ``nn.embedding``).

Only stores under the folder given on the command line are listed or opened;
any other path from the page is refused (:func:`~lossmap.explorer.validate.store_path`).
A plane is drawn as a heatmap with contours (log colour scale when the field is
positive), a line as a curve; the projected training trajectory is drawn when
the store has one, and the metadata is shown as plain sentences. A checkpoint
map is drawn by :func:`lossmap.plot.embedding_figure` (runs as paths, points
coloured by loss); JSON files over :data:`MAX_JSON_BYTES` are neither read
nor listed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lossmap.describe import describe_embedding, describe_metadata, direction_names
from lossmap.explorer.guard import guarded
from lossmap.explorer.validate import InputError, check_name, store_path
from lossmap.plot import _plotly
from lossmap.surface import Surface

__all__ = [
    "describe_metadata",
    "embedding_view",
    "list_stores",
    "load_store",
    "register",
    "store_figure",
]

MAX_STORES = 200
#: Checkpoint maps larger than this are skipped (a map of 10 000 checkpoints
#: with a few metrics is a few MB).
MAX_JSON_BYTES = 32 * 2**20
EMBEDDING_KIND = "nn.embedding"


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


@functools.lru_cache(maxsize=64)
def _read_embedding(path: str, mtime: float, size: int) -> dict[str, Any] | None:
    """The checkpoint map in ``path``, or None when it is not one (too large,
    unreadable, not JSON, or another kind)."""
    if size > MAX_JSON_BYTES:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("kind") != EMBEDDING_KIND:
        return None
    return record


def _embedding_at(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return _read_embedding(str(path), st.st_mtime, st.st_size)


def list_stores(root: Path | None) -> list[str]:
    """Surface stores (``*.zarr`` folders) and checkpoint maps (``*.json``
    of kind ``nn.embedding``) under ``root``: relative, sorted.

    Other zarr folders (e.g. recorded trajectories), other JSON files and
    files inside zarr folders are left out; at most :data:`MAX_STORES`.
    """
    if root is None:
        return []
    root = Path(root).resolve()
    if root.name.endswith(".zarr"):
        return ["."] if _is_surface_store(root) else []
    if root.suffix == ".json":
        return ["."] if _embedding_at(root) is not None else []
    found = []
    candidates = sorted([*root.rglob("*.zarr"), *root.rglob("*.json")])
    for p in candidates:
        inside = any(
            part.endswith(".zarr") for part in p.relative_to(root).parent.parts
        )
        if inside:
            continue
        if p.suffix == ".json":
            ok = _embedding_at(p) is not None
        else:
            ok = p.is_dir() and _is_surface_store(p)
        if ok:
            found.append(p.relative_to(root).as_posix())
        if len(found) >= MAX_STORES:
            break
    return found


def is_embedding(value: Any) -> bool:
    """Whether the page's choice names a checkpoint map (a ``.json`` file)."""
    return isinstance(value, str) and value.endswith(".json")


def load_embedding(root: Path | None, value: Any) -> dict[str, Any]:
    """The checkpoint map ``value`` (relative to ``root``); refuse paths outside
    it, files over :data:`MAX_JSON_BYTES` and JSON of another kind."""
    path = store_path(root, value)
    if path.is_file() and path.stat().st_size > MAX_JSON_BYTES:
        raise InputError(
            f"could not open {value!r}: larger than {MAX_JSON_BYTES // 2**20} MB"
        )
    record = _embedding_at(path)
    if record is None:
        raise InputError(
            f"could not open {value!r}: not a checkpoint map "
            f"(a JSON file with kind {EMBEDDING_KIND!r}, as `lossmap embed` writes)"
        )
    return record


def embedding_view(record: dict[str, Any]) -> tuple[Any, list[str]]:
    """The checkpoint map's figure and its description in plain sentences."""
    from lossmap.plot import embedding_figure

    try:
        fig = embedding_figure(record)
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"the checkpoint map could not be drawn: {exc}") from None
    return fig, describe_embedding(record)


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
        if is_embedding(value):
            _, about = embedding_view(load_embedding(root, value))
            return ["loss"], "loss", [html.Li(s) for s in about], ""
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
        if value is None:  # the store cleared: no figure of the last one
            from lossmap.explorer.layout import NO_STORE, placeholder_figure

            return placeholder_figure(NO_STORE[root is not None]), ""
        if field is None:
            return no_update, ""
        if is_embedding(value):
            return embedding_view(load_embedding(root, value))[0], ""
        surface = load_store(root, value)
        return store_figure(surface, field), ""
