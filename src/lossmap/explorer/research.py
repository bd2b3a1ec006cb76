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


_BN_WORDS = {
    "eval": "BatchNorm layers used their stored running statistics (eval mode)",
    "batch": "BatchNorm layers normalised with each batch's own statistics",
    "recompute": "BatchNorm running statistics were recomputed at every grid point",
}
_NORM_WORDS = {
    "filter": "filter-normalised (each filter scaled to the norm of the weights' "
    "filter, Li et al. 2018)",
    "layer": "layer-normalised",
    "none": "not normalised",
    None: "not normalised",
}
_SKIP = {
    "fingerprint",
    "direction_norms",
    "normalisation",
    "trajectory",
    "engine",
    "chunks",
    "device",
    "metrics",
}


def _short(value: Any, limit: int = 160) -> str:
    if isinstance(value, dict):
        text = ", ".join(f"{k} {_short(v, 60)}" for k, v in value.items())
    elif isinstance(value, list | tuple):
        if len(value) > 6 and all(isinstance(v, int | float) for v in value):
            text = f"{len(value)} numbers"
        else:
            text = ", ".join(_short(v, 60) for v in value)
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _direction(i: int, d: Any, norm_of: Any) -> str:
    if not isinstance(d, dict):
        return f"Direction {i}: {_short(d)}."
    kind = d.get("kind", "user")
    words = {
        "random": "a random Gaussian direction",
        "pca": "a principal direction of the training trajectory",
        "interpolation": "the straight line between two models",
        "plane_through": "the plane through given points",
        "axis": "one parameter axis",
        "user": "a direction given by the user",
    }.get(kind, f"a {kind} direction")
    parts = [words]
    if kind == "pca":
        if "component" in d:
            parts[0] += f" (component {int(d['component']) + 1})"
        if "explained_variance_ratio" in d:
            parts.append(
                f"explains {100 * float(d['explained_variance_ratio']):.1f} % of "
                "the trajectory's variance"
            )
        if "n_snapshots" in d:
            parts.append(f"from {d['n_snapshots']} snapshots")
        if "center" in d:
            parts.append(f"centred on the {d['center']} snapshot")
    if "seed" in d:
        parts.append(f"seed {d['seed']}")
    norm = d.get("norm", norm_of)
    if norm is not None or kind == "random":
        parts.append(_NORM_WORDS.get(norm, f"normalised by {norm!r}"))
    ignore = d.get("ignore")
    if ignore:
        words_ignore = {
            "biasbn": "biases and BatchNorm parameters",
            "bias": "biases",
            "bn": "BatchNorm parameters",
        }
        text = words_ignore.get(ignore) if isinstance(ignore, str) else None
        parts.append(f"zero on {text or _short(ignore, 60)}")
    rest = {
        k: v
        for k, v in d.items()
        if k
        not in {
            "kind",
            "seed",
            "norm",
            "ignore",
            "index",
            "distribution",
            "component",
            "explained_variance_ratio",
            "n_snapshots",
            "center",
            "steps",
        }
    }
    if rest:
        parts.append(_short(rest, 80))
    return f"Direction {i}: " + ", ".join(parts) + "."


def _data(d: Any) -> str:
    if not isinstance(d, dict):
        return f"Data: {_short(d)}."
    parts = []
    if "n_samples" in d:
        parts.append(f"{d['n_samples']} samples")
    if d.get("subset"):
        seed = f" (seed {d['seed']})" if d.get("seed") is not None else ""
        parts.append(f"a subset of {d['subset']}{seed}")
    if d.get("batch_size"):
        parts.append(f"batches of {d['batch_size']}")
    if d.get("input_shape"):
        parts.append("inputs of shape " + "×".join(str(n) for n in d["input_shape"]))
    rest = {
        k: v
        for k, v in d.items()
        if k not in {"n_samples", "subset", "seed", "batch_size", "input_shape"}
    }
    if rest:
        parts.append(_short(rest, 80))
    return "Data: " + (", ".join(parts) or "not recorded") + "."


def describe_metadata(surface: Surface) -> list[str]:
    """The store's shape and metadata as short plain sentences."""
    axes = " × ".join(
        f"{n} ({a.size} points, {a[0]:g} to {a[-1]:g})" for n, a in surface.axes
    )
    kind = "plane" if surface.ndim == 2 else "line"
    lines = [
        f"A {kind} through parameter space: {axes}.",
        f"Fields: {', '.join(surface.field_names)}.",
    ]
    best = surface.argmin()
    where = ", ".join(f"{k} = {v:.3g}" for k, v in best.coords.items())
    lines.append(f"Lowest loss {best.value:.4g} at {where}.")
    meta = dict(surface.metadata)
    if "model" in meta:
        size = f" with {meta['n_params']:,} parameters" if "n_params" in meta else ""
        lines.append(f"Model: {meta['model']}{size}.")
    if "loss_fn" in meta:
        lines.append(f"Loss function: {meta['loss_fn']}.")
    norms = meta.get("normalisation") or []
    dirs = meta.get("directions")
    if isinstance(dirs, list):
        for i, d in enumerate(dirs, 1):
            norm = norms[i - 1] if i - 1 < len(norms) else None
            lines.append(_direction(i, d, norm))
    elif dirs is not None:
        lines.append(f"Directions: {_short(dirs)}.")
    if "bn" in meta:
        lines.append(_BN_WORDS.get(meta["bn"], f"BatchNorm mode: {meta['bn']}") + ".")
    if "data" in meta:
        lines.append(_data(meta["data"]))
    if meta.get("trajectory"):
        lines.append("The projected training trajectory is drawn on the plane.")
    if isinstance(meta.get("versions"), dict):
        lines.append(
            "Computed with "
            + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
            + "."
        )
    done = {"model", "n_params", "loss_fn", "directions", "bn", "data", "versions"}
    for key, value in meta.items():
        if key in done or key in _SKIP:
            continue
        label = {"kind": "Computed by", "span": "Span", "steps": "Grid points"}.get(
            key, key.replace("_", " ").capitalize()
        )
        lines.append(f"{label}: {_short(value)}.")
    return lines


def store_figure(surface: Surface, field: str) -> Any:
    """Heatmap + contours (+ trajectory) for a plane, a curve for a line."""
    field = check_name("field", field, surface.field_names)
    if surface.ndim == 1:
        log = None if field.startswith("loss") else False
        return _plotly.curve_figure(surface, field=field, log=log)
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
        animate=False,
        title=f"{field} on the plane",
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
