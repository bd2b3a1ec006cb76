"""Plain-words descriptions of a saved surface and its metadata (torch-free).

Used by the figures (axis titles of saved planes and lines), ``lossmap info``
and the explorer's "Saved stores" tab, so a store reads the same everywhere::

    from lossmap.describe import describe_metadata, direction_names
    for line in describe_metadata(surface):
        print(line)

Only the standard library is imported; ``surface`` is any
:class:`~lossmap.surface.Surface` (or an object with ``axes``, ``ndim``,
``field_names``, ``argmin`` and ``metadata``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "describe_embedding",
    "describe_metadata",
    "direction_name",
    "direction_names",
]

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
        draw = f", draw {d['index']}" if "index" in d else ""
        parts.append(f"seed {d['seed']}{draw}")
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
            "params",
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
    structure = d.get("structure")
    if isinstance(structure, list) and structure:
        kind = d.get("kind")
        what = {"pair": "an (input, target) pair"}.get(str(kind), f"a {kind}")
        parts.append(f"each batch {what} of " + " and ".join(map(str, structure)))
    rest = {
        k: v
        for k, v in d.items()
        if k
        not in {
            "n_samples",
            "subset",
            "seed",
            "batch_size",
            "input_shape",
            "kind",
            "structure",
        }
        and v is not None
    }
    if rest:
        parts.append(_short(rest, 80))
    return "Data: " + (", ".join(parts) or "not recorded") + "."


def _selection_words(sel: Any) -> str | None:
    if isinstance(sel, dict):
        text = sel.get("description")
        if text:
            return str(text)
        if "n_tensors" in sel and "n_values" in sel:
            return f"{sel['n_tensors']} tensors, {sel['n_values']} values"
    return None


def _moving(sel: Any, dirs: Any) -> str:
    """Which parameters the map moves: the surface's ``params`` or, failing
    that, the selection recorded on its directions (absent = all)."""
    words = _selection_words(sel)
    if words is None and isinstance(dirs, list):
        found = {
            w
            for d in dirs
            if isinstance(d, dict)
            for w in [_selection_words(d.get("params"))]
            if w
        }
        words = "; ".join(sorted(found)) or None
    if words is None:
        return "Moving: all parameters."
    return f"Moving: {words}; all others fixed."


def _loss_terms(terms: Any) -> str | None:
    """``loss_terms`` as the engine writes them: ``{name: {fn, weight,
    reduction}}`` -> "Loss terms: data (mse_loss, mean) + 0.1 × physics (…)"."""
    if not isinstance(terms, dict) or not terms:
        return None
    parts = []
    for name, t in terms.items():
        if not isinstance(t, dict):
            parts.append(f"{name} ({_short(t, 60)})")
            continue
        w = t.get("weight", 1)
        weight = "" if w in (1, 1.0, None) else f"{_short(w)} × "
        how = ", ".join(
            str(v) for v in (t.get("fn"), t.get("reduction")) if v is not None
        )
        parts.append(f"{weight}{name}" + (f" ({how})" if how else ""))
    return "Loss terms: " + " + ".join(parts) + "."


def describe_embedding(record: Any) -> list[str]:
    """A checkpoint map (``lossmap embed``'s JSON, ``kind`` ``nn.embedding``)
    as short plain sentences."""
    rec = dict(record)
    meta = dict(rec.get("meta") or {})
    runs = list(rec.get("runs") or meta.get("runs") or [])
    n = len(rec.get("coords") or []) or meta.get("n_checkpoints", 0)
    method = str(meta.get("method", "pca"))
    word = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get(method, method)
    names = f" ({', '.join(map(str, runs))})" if runs else ""
    lines = [
        f"A map of {n} checkpoints from {len(runs)} run(s){names}, placed in 2-D "
        f"by {word}."
    ]
    if "n_params" in meta:
        lines.append(f"Each checkpoint is a vector of {meta['n_params']:,} parameters.")
    ratio = meta.get("explained_variance_ratio")
    if method == "pca" and isinstance(ratio, list) and len(ratio) >= 2:
        lines.append(
            f"The two axes explain {100 * float(ratio[0]):.1f} % and "
            f"{100 * float(ratio[1]):.1f} % of the checkpoints' variance."
        )
    if "pca_components" in meta:
        share = meta.get("pca_explained_variance")
        kept = f" (keeping {100 * float(share):.1f} % of the variance)" if share else ""
        lines.append(f"Reduced first to {meta['pca_components']} PCA components{kept}.")
    settings = {k: meta[k] for k in ("seed", "perplexity", "n_neighbors") if k in meta}
    if settings:
        lines.append(
            "Settings: "
            + ", ".join(f"{k} {_short(v)}" for k, v in settings.items())
            + "."
        )
    if meta.get("reading"):
        lines.append(f"How to read it: {meta['reading']}.")
    loss = rec.get("loss")
    if isinstance(loss, list) and loss:
        vals = [float(v) for v in loss]
        lines.append(
            f"Loss from {min(vals):.4g} to {max(vals):.4g}; points are coloured by it."
        )
    else:
        lines.append("The checkpoints were not evaluated (no loss); coloured by step.")
    metrics = rec.get("metrics")
    if isinstance(metrics, dict) and metrics:
        lines.append("Also measured: " + ", ".join(map(str, metrics)) + ".")
    lines.append("Each run is a path from its start (open circle) to its end (star).")
    return lines


def describe_metadata(surface: Any) -> list[str]:
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
    lines.append(_moving(meta.get("params"), dirs))
    terms = _loss_terms(meta.get("loss_terms"))
    if terms:
        lines.append(terms)
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
    objective = meta.get("objective")
    if isinstance(objective, dict) and isinstance(objective.get("terms"), list):
        terms = []
        for t in objective["terms"]:
            if not isinstance(t, dict):
                continue
            w = t.get("weight", 1)
            name = t.get("loss_fn", "loss")
            weight = "" if w in (1, 1.0) else f"{_short(w)}·"
            terms.append(f"{weight}{name} ({t.get('reduction', 'mean')})")
        if terms:
            lines.append("Objective: " + " + ".join(terms) + ".")
    done = {
        "model",
        "n_params",
        "loss_fn",
        "directions",
        "bn",
        "data",
        "versions",
        "objective",
        "optimize",
        "params",
        "loss_terms",
    }
    for key, value in meta.items():
        if key in done or key in _SKIP or key.startswith("_"):  # _command: CLI
            continue
        label = {"kind": "Computed by", "span": "Span", "steps": "Grid points"}.get(
            key, key.replace("_", " ").capitalize()
        )
        lines.append(f"{label}: {_short(value)}.")
    return lines


_SHORT_KIND = {
    "random": "random",
    "pca": "PCA",
    "interpolation": "interpolation",
    "plane_through": "through given points",
    "axis": "parameter axis",
    "user": "user direction",
}


def direction_name(i: int, d: Any) -> str:
    """A short axis title: ``"direction 1: random, seed 0"``.

    ``i`` counts from 1; ``d`` is one entry of ``metadata["directions"]``.
    """
    if not isinstance(d, dict):
        return f"direction {i}" + (f": {_short(d, 40)}" if d else "")
    kind = str(d.get("kind", "user"))
    parts = [_SHORT_KIND.get(kind, kind)]
    if kind == "pca" and "component" in d:
        parts[0] = f"PC{int(d['component']) + 1}"
    if "seed" in d:
        parts.append(f"seed {d['seed']}")
    return f"direction {i}: " + ", ".join(parts)


def direction_names(surface: Any) -> list[str]:
    """One axis title per axis of ``surface``: its direction in words.

    Falls back to the axis name when the metadata records no directions, and
    keeps the axis name when it is not a generic one (``alpha``, ``beta``…).
    """
    names = list(getattr(surface, "names", ()) or [n for n, _ in surface.axes])
    dirs = surface.metadata.get("directions")
    if not isinstance(dirs, list) or len(dirs) != len(names):
        return names
    out = []
    for i, (name, d) in enumerate(zip(names, dirs), 1):
        label = direction_name(i, d)
        generic = name in ("alpha", "beta", "x", "y", f"d{i - 1}", f"dir{i - 1}")
        out.append(label if generic else f"{name} ({label})")
    return out
