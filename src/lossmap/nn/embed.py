"""Maps of many checkpoints: parameter vectors placed in two dimensions.

A recorded trajectory, several training runs from different seeds, or any
set of saved checkpoints is a cloud of points in parameter space.
:func:`embed` draws that cloud in 2-D, each point carrying its run, its
training step and (given the model and data) its loss and metrics:

``"pca"``
    Exact principal component analysis of the mean-centred vectors (the
    eigen-decomposition of their Gram matrix, accumulated in float64 over
    column blocks, so memory stays O(n² + P)). The coordinates are the
    scikit-learn ``PCA(n_components=2)`` scores, with its sign convention.
    Distances in the picture are true distances within the plane.
``"tsne"``
    scikit-learn's t-SNE (van der Maaten & Hinton, "Visualizing Data using
    t-SNE", JMLR 2008) on the vectors first reduced by PCA to at most
    ``pca_components`` dimensions. t-SNE keeps neighbourhoods, not
    distances: points close in the map are close in parameter space, but
    the gaps between groups and the sizes of groups mean nothing.
    Started from the PCA coordinates (``init="pca"``), so the same input
    gives the same map; ``seed`` is passed on as ``random_state``.
``"umap"``
    UMAP (McInnes, Healy & Melville 2018) on the same PCA reduction, when
    the ``umap-learn`` package is installed; like t-SNE it keeps
    neighbourhoods, not distances.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn import _bn
from lossmap.nn.trajectory import Recorder, Recording

__all__ = ["METHODS", "Embedding", "embed"]

#: Accepted values of ``method``.
METHODS = ("pca", "tsne", "umap")
_BLOCK = 2**22  # matrix entries per block in the Gram products


@dataclass(frozen=True, eq=False)
class Embedding:
    """Checkpoints placed in 2-D.

    Attributes
    ----------
    coords : ndarray of shape (n, 2)
        One row per checkpoint, runs one after another in their given order.
    run : ndarray of shape (n,)
        Index into ``runs`` of each checkpoint's run.
    step : ndarray of shape (n,)
        Each checkpoint's training step (its position when none is known).
    runs : tuple of str
        Run names.
    loss : ndarray of shape (n,) or None
        The loss at each checkpoint (when model, loss and data were given).
    metrics : dict of str to ndarray of shape (n,)
        E.g. ``"accuracy"``.
    meta : dict
        ``method`` and its settings (for PCA the explained variance ratio,
        for t-SNE the perplexity, seed and final KL divergence), the number
        of parameters and a note on how to read distances.
    """

    coords: np.ndarray
    run: np.ndarray
    step: np.ndarray
    runs: tuple[str, ...]
    loss: np.ndarray | None = None
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-friendly values (lists and numbers), e.g. for a file."""
        return {
            "coords": self.coords.tolist(),
            "run": self.run.tolist(),
            "step": self.step.tolist(),
            "runs": list(self.runs),
            "loss": None if self.loss is None else self.loss.tolist(),
            "metrics": {k: v.tolist() for k, v in self.metrics.items()},
            "meta": dict(self.meta),
        }

    def of_run(self, run: int | str) -> np.ndarray:
        """Row indices of one run's checkpoints, in order."""
        k = self.runs.index(run) if isinstance(run, str) else int(run)
        return np.flatnonzero(self.run == k)


# ------------------------------------------------------------ collecting
def _is_snapshot_store(path: Path) -> bool:
    try:
        return "lossmap_snapshots" in (path / "zarr.json").read_text()
    except OSError:
        return False


def _runs_from_path(path: Path) -> list[tuple[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"`checkpoints`: no such folder {str(path)!r}")
    if _is_snapshot_store(path):
        return [(path.name, Recording.load(path))]
    stores = sorted(p for p in path.iterdir() if p.is_dir() and _is_snapshot_store(p))
    if not stores:
        raise ValueError(
            f"`checkpoints` folder {str(path)!r} holds no snapshot store (made by "
            f"Recorder(..., store=...)); load other checkpoint files first and "
            f"pass a list of state dicts"
        )
    return [(p.name, Recording.load(p)) for p in stores]


def _is_checkpoint(obj: Any) -> bool:
    return isinstance(obj, nn.Module) or (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _runs(checkpoints: Any) -> list[tuple[str, Any]]:
    """``(name, run)`` pairs; a run is a Recording or a list of checkpoints."""
    if isinstance(checkpoints, str | os.PathLike):
        return _runs_from_path(Path(checkpoints))
    if isinstance(checkpoints, Recording | Recorder):
        return [("run 0", checkpoints)]
    if isinstance(checkpoints, Mapping) and not _is_checkpoint(checkpoints):
        return [(str(k), v) for k, v in checkpoints.items()]
    if isinstance(checkpoints, Sequence) and not isinstance(checkpoints, str):
        items = list(checkpoints)
        if items and all(_is_checkpoint(c) for c in items):
            return [("run 0", items)]
        return [(f"run {i}", v) for i, v in enumerate(items)]
    raise TypeError(
        f"`checkpoints` must be a Recording, a list of Recordings, a list of "
        f"state dicts or modules, a {{run name: ...}} mapping, or a snapshot "
        f"store folder, got {type(checkpoints).__name__}"
    )


def _checkpoint_params(obj: Any, names: tuple[str, ...] | None) -> dict[str, Any]:
    if isinstance(obj, nn.Module):
        return {n: p.detach() for n, p in obj.named_parameters()}
    if names is None:
        return {
            n: t
            for n, t in obj.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point()
        }
    return {n: obj[n] for n in names if n in obj}


def _checkpoint_buffers(obj: Any, names: tuple[str, ...] | None) -> dict[str, Any]:
    """A checkpoint's other tensors (its buffers: BatchNorm statistics, ...)."""
    if isinstance(obj, nn.Module):
        return {n: b.detach() for n, b in obj.named_buffers()}
    if names is None:
        return {}
    return {n: t for n, t in obj.items() if n not in names}


def _float(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().reshape(-1).cpu()
    return t if t.dtype == torch.float64 else t.float()


def _matrix(
    runs: list[tuple[str, Any]], names: tuple[str, ...] | None
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, tuple[str, ...], list, list]:
    """Stack every run into one (n, P) matrix; the parameter layout; each
    checkpoint's buffers (empty where none were kept)."""
    rows: list[torch.Tensor] = []
    buffers: list[dict[str, Any]] = []
    run_idx: list[int] = []
    steps: list[int] = []
    layout: list[tuple[str, tuple[int, ...]]] | None = None
    for k, (name, run) in enumerate(runs):
        if isinstance(run, Recorder):
            run = run.recording()
        if isinstance(run, Recording):
            here = list(zip(run.names, run.shapes))
            if names is not None and tuple(run.names) != names:
                raise ValueError(
                    f"run {name!r} records other parameters than `model` has"
                )
            mat, st = run.snapshots, [int(s) for s in run.steps]
            buffers += [run.buffers_at(i) for i in range(len(run))]
        elif isinstance(run, Sequence) and run and all(_is_checkpoint(c) for c in run):
            parts = [_checkpoint_params(c, names) for c in run]
            here = [(n, tuple(t.shape)) for n, t in parts[0].items()]
            for i, p in enumerate(parts):
                if [(n, tuple(t.shape)) for n, t in p.items()] != here:
                    raise ValueError(
                        f"checkpoint {i} of run {name!r} has other parameters "
                        f"(names or shapes) than its first checkpoint"
                    )
            mat = torch.stack(
                [torch.cat([_float(t) for t in p.values()]) for p in parts]
            )
            st = list(range(len(parts)))
            buffers += [_checkpoint_buffers(c, names) for c in run]
        else:
            raise TypeError(
                f"run {name!r} must be a Recording or a non-empty list of state "
                f"dicts or modules, got {type(run).__name__}"
            )
        if layout is None:
            layout = here
        elif here != layout:
            raise ValueError(
                f"run {name!r} has other parameters (names or shapes) than run "
                f"{runs[0][0]!r}"
            )
        rows.append(mat)
        run_idx += [k] * int(mat.shape[0])
        steps += st
    assert layout is not None
    dtype = (
        torch.float64 if any(r.dtype == torch.float64 for r in rows) else torch.float32
    )
    x = torch.cat([r.to(dtype) for r in rows])
    return (
        x,
        np.asarray(run_idx),
        np.asarray(steps, dtype=np.int64),
        tuple(n for n, _ in runs),
        layout,
        buffers,
    )


# ------------------------------------------------------------------ PCA
def _blocks(n_rows: int, size: int) -> list[slice]:
    step = max(1, _BLOCK // max(n_rows, 1))
    return [slice(i, min(i + step, size)) for i in range(0, size, step)]


def _pca(x: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores (n, k) of mean-centred PCA and explained variance ratios (k,).

    Each component's sign follows scikit-learn (``svd_flip`` with
    ``u_based_decision=False``: the largest-magnitude entry of each
    principal axis is positive), so the scores equal ``PCA().fit_transform``
    and a t-SNE started from them equals scikit-learn's pipeline.
    """
    n, size = x.shape
    mean = x.double().mean(dim=0)
    gram = torch.zeros(n, n, dtype=torch.float64)
    blocks = _blocks(n, size)
    for sl in blocks:
        xb = x[:, sl].double() - mean[sl]
        gram += xb @ xb.T
    evals, evecs = torch.linalg.eigh(gram)
    evals, evecs = evals.flip(0).clamp_min(0.0), evecs.flip(1)
    total = float(evals.sum())
    if total <= 0:
        raise ValueError("all checkpoints are identical; there is nothing to map")
    sigma = evals[:k].sqrt()
    u = evecs[:, :k].clone()
    best = torch.zeros(k, dtype=torch.float64)
    for sl in blocks:
        xb = x[:, sl].double() - mean[sl]
        v = (u.T @ xb) / sigma.clamp_min(1e-300)[:, None]  # (k, b)
        i = v.abs().argmax(dim=1)
        val = v[torch.arange(k), i]
        best = torch.where(val.abs() > best.abs(), val, best)
    u = u * torch.where(best < 0, -1.0, 1.0)
    scores = (u * sigma).numpy()
    return scores, (evals[:k] / total).numpy()


# ----------------------------------------------------------------- embed
def embed(
    checkpoints: Any,
    method: str = "pca",
    *,
    model: nn.Module | None = None,
    loss_fn: Any = None,
    data: Any = None,
    metrics: Any = None,
    seed: int = 0,
    perplexity: float | None = None,
    pca_components: int = 50,
    evaluate_kwargs: Mapping[str, Any] | None = None,
) -> Embedding:
    """Place checkpoints in 2-D with PCA, t-SNE or UMAP.

    Parameters
    ----------
    checkpoints
        A :class:`~lossmap.nn.Recording` (or Recorder); a list of them (one
        run each); a list of state dicts or modules (one run); a ``{run
        name: ...}`` mapping of any of these; or the path of a snapshot
        store, or of a folder of snapshot stores (one run each). At least
        three checkpoints in all, every one with the same parameters.
    method : {"pca", "tsne", "umap"}, default "pca"
        See the module docstring; t-SNE and UMAP keep neighbourhoods, not
        distances.
    model, loss_fn, data : optional
        Give all three to evaluate each checkpoint
        (:func:`lossmap.nn.evaluate_params`). ``model`` also selects the
        parameters of state dicts (others, such as BatchNorm buffers, are
        left out of the vectors). With running statistics (``bn="eval"``,
        the default of ``evaluate_params``) each checkpoint is evaluated
        with its own buffers where it has them (a Recording's recorded
        buffers, a state dict's other entries, a module's buffers), else
        with the model's.
    metrics : optional
        Extra fields, e.g. ``"accuracy"``.
    seed : int, default 0
        Seed of t-SNE / UMAP.
    perplexity : float, optional
        t-SNE perplexity (default ``min(30, (n − 1) / 3)``).
    pca_components : int, default 50
        Dimensions kept by PCA before t-SNE / UMAP.
    evaluate_kwargs : mapping, optional
        More keyword arguments of ``evaluate_params`` (``bn``, ``batch_size``).

    Returns
    -------
    Embedding
    """
    check_choice("method", method, METHODS)
    seed = check_int("seed", seed)
    pca_components = check_int("pca_components", pca_components, minimum=2)
    given = [v is not None for v in (model, loss_fn, data)]
    if any(given) and not all(given):
        raise ValueError(
            "give `model`, `loss_fn` and `data` together to evaluate the checkpoints"
        )
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(
            f"`model` must be a torch.nn.Module, got {type(model).__name__}"
        )
    names = tuple(n for n, _ in model.named_parameters()) if model is not None else None
    runs = _runs(checkpoints)
    x, run_idx, steps, run_names, layout, buffers = _matrix(runs, names)
    n = int(x.shape[0])
    if n < 3:
        raise ValueError(f"`checkpoints` must hold at least 3 checkpoints, got {n}")
    meta: dict[str, Any] = {
        "kind": "nn.embedding",
        "method": method,
        "n_checkpoints": n,
        "n_params": int(x.shape[1]),
        "runs": list(run_names),
    }
    if method == "pca":
        coords, ratio = _pca(x, 2)
        meta.update(
            explained_variance_ratio=ratio.tolist(),
            centred="mean",
            reading="distances within the PCA plane are true parameter distances",
        )
    else:
        k = min(pca_components, n - 1)
        reduced, ratio = _pca(x, k)
        meta.update(
            pca_components=k,
            pca_explained_variance=float(ratio.sum()),
            seed=seed,
            reading=(
                "neighbourhoods only: gaps between groups and group sizes are "
                "not distances"
            ),
        )
        if method == "tsne":
            coords = _tsne(reduced, seed, perplexity, meta)
        else:
            coords = _umap(reduced, seed, meta)
    loss, values = None, {}
    if model is not None:
        loss, values = _evaluate(
            x,
            layout,
            buffers,
            model,
            loss_fn,
            data,
            metrics,
            dict(evaluate_kwargs or {}),
        )
    return Embedding(
        coords=np.ascontiguousarray(coords, dtype=np.float64),
        run=run_idx,
        step=steps,
        runs=run_names,
        loss=loss,
        metrics=values,
        meta=meta,
    )


def _tsne(
    reduced: np.ndarray, seed: int, perplexity: float | None, meta: dict[str, Any]
) -> np.ndarray:
    import sklearn
    from sklearn.manifold import TSNE

    n = reduced.shape[0]
    if perplexity is None:
        perplexity = min(30.0, max(1.0, (n - 1) / 3.0))
    perplexity = check_float("perplexity", perplexity, minimum=0.0, strict_min=True)
    if perplexity >= n:
        raise ValueError(
            f"`perplexity` must be below the number of checkpoints ({n}), got "
            f"{perplexity}"
        )
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        random_state=seed,
    )
    coords = tsne.fit_transform(reduced)
    meta.update(
        perplexity=perplexity,
        init="pca",
        learning_rate="auto",
        kl_divergence=float(tsne.kl_divergence_),
        library=f"scikit-learn {sklearn.__version__}",
    )
    return coords


def _umap(reduced: np.ndarray, seed: int, meta: dict[str, Any]) -> np.ndarray:
    try:
        import umap
    except ImportError as exc:
        raise ImportError(
            "method='umap' needs the umap-learn package (pip install "
            "'lossmap[umap]', which also installs numba); "
            "method='tsne' gives a similar neighbourhood map with scikit-learn"
        ) from exc
    n_neighbors = min(15, reduced.shape[0] - 1)
    coords = umap.UMAP(
        n_components=2, n_neighbors=n_neighbors, random_state=seed
    ).fit_transform(reduced)
    meta.update(n_neighbors=n_neighbors, library=f"umap-learn {umap.__version__}")
    return np.asarray(coords)


def _evaluate(
    x: torch.Tensor,
    layout: list[tuple[str, tuple[int, ...]]],
    buffers: list[dict[str, Any]],
    model: nn.Module,
    loss_fn: Any,
    data: Any,
    metrics: Any,
    kwargs: dict[str, Any],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from lossmap.nn.evaluate import evaluate_params

    own = dict(model.named_parameters())
    if [(n, tuple(own[n].shape)) for n in own] != list(layout):
        raise ValueError(
            "`model` must have the checkpoints' parameters (same names, order "
            "and shapes)"
        )
    sizes = [math.prod(s) for _, s in layout]
    losses: list[float] = []
    values: dict[str, list[float]] = {}
    # with running statistics (bn="eval"), each checkpoint's own buffers where
    # it has them, as `evaluate_snapshots` does; the model's own otherwise
    known = dict(model.named_buffers())
    use_own = kwargs.get("bn", "eval") == "eval"
    for row, kept in zip(x, buffers):
        parts = torch.split(row, sizes)
        params = {n: p.reshape(s).to(own[n]) for (n, s), p in zip(layout, parts)}
        mine = {
            n: b
            for n, b in kept.items()
            if use_own
            and n in known
            and isinstance(b, torch.Tensor)
            and tuple(b.shape) == tuple(known[n].shape)
        }
        with _bn.buffers_swapped(model, mine) as work:
            out = evaluate_params(
                work, loss_fn, data, params, metrics=metrics, **kwargs
            )
        losses.append(out["loss"])
        for k, v in out.items():
            if k != "loss":
                values.setdefault(k, []).append(v)
    return np.asarray(losses), {k: np.asarray(v) for k, v in values.items()}
