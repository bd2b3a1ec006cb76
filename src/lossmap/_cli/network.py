"""CLI commands for a user's own network: plane, line, pca, hessian and run.

Each command reads the model, weights, data and loss through
:mod:`lossmap._cli.inputs`, calls the public :mod:`lossmap.nn` API, and
records in the store the command that recomputes the surface (``lossmap info``
prints it). ``lossmap run experiment.toml`` takes the same settings from a
file, whose content the store keeps too::

    command = "plane"
    model = "nets.py:make_model"
    weights = "ckpt.pt"
    data = "nets.py:test_batch"
    loss = "cross_entropy"
    store = "plane.zarr"
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from lossmap._cli import inputs

# ------------------------------------------------------------ shared options
Model = Annotated[
    str, typer.Option(help="MODULE:FACTORY or FILE.py:FACTORY returning the model.")
]
Weights = Annotated[
    list[Path] | None,
    typer.Option(help="Checkpoint (.pt weights only, or .safetensors)."),
]
WeightsKey = Annotated[
    str | None, typer.Option(help="Entry of the checkpoint holding the state dict.")
]
Data = Annotated[
    str, typer.Option(help="MODULE:FUNCTION returning (inputs, targets) or batches.")
]
Loss = Annotated[
    str,
    typer.Option(
        help="lossmap or torch.nn.functional loss name, MODULE:FUNCTION, or "
        "output.loss."
    ),
]
Metric = Annotated[
    list[str] | None, typer.Option(help="Extra field: accuracy or MODULE:FUNCTION.")
]
Params = Annotated[
    list[str] | None,
    typer.Option(
        help="Parameters to move: names, module names or glob patterns, repeat "
        "or comma-join (default: all but biases and norm layers)."
    ),
]
Bn = Annotated[str, typer.Option(help="BatchNorm statistics: eval, batch, recompute.")]
Span = Annotated[
    str | None, typer.Option(help="Half-width of each axis, or LO,HI (--span=-1,2).")
]
PathSpan = Annotated[
    str | None,
    typer.Option(help="auto (default: covers the path), a half-width, or LO,HI."),
]
Steps = Annotated[int, typer.Option(help="Grid points per axis.")]
Call = Annotated[
    str | None,
    typer.Option(
        help="How the model is called on a batch: auto, kwargs, positional, "
        "single, or MODULE:FUNCTION(model, batch)."
    ),
]
Targets = Annotated[
    str | None,
    typer.Option(
        help="What the loss gets beside the output: auto, batch, a key such as "
        "labels, an index, or MODULE:FUNCTION(batch)."
    ),
]
Logits = Annotated[
    str | None,
    typer.Option(
        help="Where metrics find the logits: auto, an attribute, or "
        "MODULE:FUNCTION(output)."
    ),
]
Subset = Annotated[
    int | None,
    typer.Option(
        help="Evaluate on this many random samples (drawn with --seed); adds "
        "<field>_stderr fields, drawn as a spread by lossmap report."
    ),
]
Seed = Annotated[int, typer.Option(help="Seed of the random directions.")]
Norm = Annotated[
    str, typer.Option(help="Direction normalisation: filter, layer, model, none.")
]
Store = Annotated[
    Path | None, typer.Option(help="Resumable zarr store to write as it goes.")
]
Device = Annotated[str | None, typer.Option(help="torch device, e.g. cpu or cuda.")]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where chunks run: in-process (default), local:N (a local Dask "
        "cluster of N workers) or a Dask scheduler address.",
    ),
]
Overwrite = Annotated[
    bool, typer.Option(help="Start an existing store again from scratch.")
]

#: Settings that do not change the result: left out of the recorded command.
_NOT_RECORDED = {"executor", "overwrite", "device", "command", "experiment"}
#: Flags that default to on: recorded as ``--no-<flag>`` when off.
_NEGATABLE = {"density", "align"}


# --------------------------------------------------------------- helpers
def _span(text: str | None, default: Any) -> Any:
    if text is None:
        return default
    text = text.strip()
    if text == "auto":
        return "auto"
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1 and parts[0] > 0:
        return parts[0]
    if len(parts) == 2 and parts[0] < parts[1]:
        return tuple(parts)
    raise ValueError(
        f"`--span` must be a positive number, LO,HI with LO < HI, or auto, got {text!r}"
    )


def _norm(norm: str) -> str | None:
    from lossmap.nn import NORMS

    value = None if norm == "none" else norm
    if value not in NORMS:
        raise ValueError(
            f"`--norm` must be one of {[n or 'none' for n in NORMS]}, got {norm!r}"
        )
    return value


def command_line(kind: str, settings: dict[str, Any]) -> list[str]:
    """The ``lossmap`` command (argv words) that recomputes a result of ``settings``."""
    words = ["lossmap", kind]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if value is False and key in _NEGATABLE:
            words.append("--no-" + flag[2:])
            continue
        if key in _NOT_RECORDED or value is None or value is False or value == []:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            words += [flag] if v is True else [flag, str(v)]
    return words


@contextlib.contextmanager
def executor_from(spec: str | None) -> Iterator[Any]:
    """``--executor``: None/in-process, ``local:N``, or a scheduler address."""
    if spec in (None, "", "in-process"):
        yield None
        return
    from lossmap.distributed import dask_executor

    match = re.fullmatch(r"local:(\d+)", spec)
    if (spec == "local" or spec.startswith("local:")) and match is None:
        raise ValueError(
            f"`--executor` must be in-process, local:N or a scheduler address "
            f"(tcp://host:8786), got {spec!r}"
        )
    if match:
        with dask_executor(n_workers=int(match[1])) as ex:
            yield ex
    else:
        with dask_executor(spec) as ex:
            yield ex


def _points_saved(store: Path) -> tuple[int, int]:
    from lossmap.io import GridStore

    counts = GridStore.attach(store).point_counts()
    return counts["points"] - counts["not_computed"], counts["points"]


@contextlib.contextmanager
def interruptible(store: Path | None) -> Iterator[None]:
    """Ctrl-C: say how much of the store is saved and exit 130, no traceback."""
    try:
        yield
    except KeyboardInterrupt:
        if store is not None and store.exists():
            try:
                done, total = _points_saved(store)
            except (ValueError, FileNotFoundError):
                done, total = 0, 0
            typer.echo(
                f"\n{done} of {total} points are saved in {store}; rerun the same "
                "command to resume",
                err=True,
            )
        elif store is not None:
            typer.echo(f"\ninterrupted before anything was saved in {store}", err=True)
        else:
            typer.echo(
                "\ninterrupted; nothing was saved (--store keeps finished points)",
                err=True,
            )
        raise typer.Exit(130) from None


class Inputs:
    """The model, data, loss and metrics of one command, loaded once."""

    def __init__(self, s: dict[str, Any]) -> None:
        weights = s.get("weights") or []
        self.model = inputs.build_model(
            s["model"],
            weights[0] if weights else None,
            weights_key=s.get("weights_key"),
            device=s.get("device"),
        )
        self.data = inputs.load_data(s["data"], s.get("device"))
        self.loss = inputs.resolve_loss(s["loss"])
        self.metrics = inputs.resolve_metrics(s.get("metric"))
        self.params = inputs.select_params(self.model, s.get("params"))
        self.weights = weights

    def selection(self) -> dict[str, Any]:
        """``params=``/``ignore=`` for random directions.

        Without ``--params`` biases and normalisation layers stay fixed (Li et
        al.); with it, exactly the selected parameters move.
        """
        if self.params is None:
            return {"ignore": "biasbn"}
        return {"ignore": None, "params": self.params}


def _finish(surface: Any, store: Path | None) -> None:
    best = surface.argmin()
    where = ", ".join(f"{k} = {v:.4g}" for k, v in best.coords.items())
    typer.echo(f"lowest loss {best.value:.6g} at {where}")
    if store is not None:
        typer.echo(f"wrote {store}")


def _subset(s: dict[str, Any]) -> dict[str, Any]:
    """Evaluation options: the batch conventions, and ``subset=``/``seed=``."""
    out = inputs.conventions(s)
    if s.get("subset") is not None:
        out.update(subset=s["subset"], seed=s.get("seed", 0))
    return out


def _provenance(kind: str, s: dict[str, Any]) -> dict[str, Any]:
    meta = {"_command": command_line(kind, s)}
    if s.get("experiment") is not None:
        meta["_experiment"] = s["experiment"]
    return meta


# ------------------------------------------------------------- computations
def do_plane(s: dict[str, Any]) -> Any:
    from lossmap import nn as lnn

    inp = Inputs(s)
    norm = _norm(s.get("norm", "filter"))
    d1, d2 = lnn.random_plane(
        inp.model, seed=s.get("seed", 0), norm=norm, **inp.selection()
    )
    span = _span(s.get("span"), 1.0)
    if span == "auto":
        raise ValueError("`--span` auto needs a trajectory: use it with lossmap pca")
    store = s.get("store")
    with executor_from(s.get("executor")) as ex:
        surface = lnn.plane(
            inp.model,
            inp.loss,
            inp.data,
            (d1, d2),
            span=span,
            steps=s["steps"],
            metrics=inp.metrics,
            bn=s.get("bn", "eval"),
            store=store,
            overwrite=s.get("overwrite", False),
            executor=ex,
            metadata=_provenance("plane", s),
            **_subset(s),
        )
    _finish(surface, store)
    return surface


def do_line(s: dict[str, Any]) -> Any:
    from lossmap import nn as lnn

    inp = Inputs(s)
    if len(inp.weights) == 2:
        b = inputs.state_of(inp.model, inp.weights[1], s.get("weights_key"))
        direction = lnn.interpolation(inp.model, b)
        direction = lnn.Direction(
            direction.tensors,
            {**direction.meta, "from": str(inp.weights[0]), "to": str(inp.weights[1])},
        )
        span = _span(s.get("span"), (-0.25, 1.25))
    elif len(inp.weights) > 2:
        raise ValueError(
            f"`--weights` must be given once (a random line) or twice (from A to "
            f"B), got {len(inp.weights)} files"
        )
    else:
        norm = _norm(s.get("norm", "filter"))
        direction = lnn.random_direction(
            inp.model, seed=s.get("seed", 0), norm=norm, **inp.selection()
        )
        span = _span(s.get("span"), 1.0)
    if span == "auto":
        raise ValueError("`--span` auto needs a trajectory: use it with lossmap pca")
    store = s.get("store")
    with executor_from(s.get("executor")) as ex:
        surface = lnn.line(
            inp.model,
            inp.loss,
            inp.data,
            direction,
            span=span,
            steps=s["steps"],
            metrics=inp.metrics,
            bn=s.get("bn", "eval"),
            store=store,
            overwrite=s.get("overwrite", False),
            executor=ex,
            metadata=_provenance("line", s),
            **_subset(s),
        )
    _finish(surface, store)
    return surface


def _checkpoint_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"`--checkpoints` must be a folder of checkpoints, got {str(folder)!r}"
        )
    files = [
        p
        for p in folder.iterdir()
        if p.suffix in (".pt", ".pth", ".bin", ".safetensors") and p.is_file()
    ]

    def key(p: Path) -> tuple[Any, ...]:
        nums = re.findall(r"\d+", p.stem)
        return (int(nums[-1]) if nums else -1, p.name)

    files.sort(key=key)
    if len(files) < 3:
        raise ValueError(
            f"`--checkpoints` must hold at least 3 checkpoints (.pt, .safetensors), "
            f"got {len(files)} in {str(folder)!r}"
        )
    return files


def recording_of(inp: Inputs, s: dict[str, Any]) -> Any:
    """The trajectory: a Recorder store, or a folder of checkpoints."""
    import numpy as np
    import torch

    from lossmap.nn import Recording

    if (s.get("trajectory") is None) == (s.get("checkpoints") is None):
        raise ValueError(
            "give exactly one of `--trajectory` (a Recorder store) and "
            "`--checkpoints` (a folder of checkpoints)"
        )
    if s.get("trajectory") is not None:
        path = Path(s["trajectory"])
        if not path.exists():
            raise FileNotFoundError(
                f"`--trajectory` must be a store written by Recorder, got missing "
                f"{str(path)!r}"
            )
        return Recording.load(path)
    files = _checkpoint_files(Path(s["checkpoints"]))
    names = [n for n, _ in inp.model.named_parameters()]
    shapes = [tuple(p.shape) for _, p in inp.model.named_parameters()]
    rows = []
    for f in files:
        state = inputs.state_of(inp.model, f, s.get("weights_key"))
        rows.append(torch.cat([state[n].detach().cpu().reshape(-1) for n in names]))
    nums = [re.findall(r"\d+", f.stem) for f in files]
    steps = [int(n[-1]) for n in nums] if all(nums) else list(range(len(files)))
    if len(set(steps)) != len(steps):
        steps = list(range(len(files)))
    return Recording(
        torch.stack(rows),
        np.asarray(steps),
        tuple(names),
        tuple(shapes),
        {"checkpoints": [f.name for f in files]},
    )


def do_pca(s: dict[str, Any]) -> Any:
    from lossmap import nn as lnn

    inp = Inputs(s)
    rec = recording_of(inp, s)
    if s.get("checkpoints") is not None and not inp.weights:
        # buffers (BatchNorm statistics) of the final weights
        last = Path(s["checkpoints"]) / rec.meta["checkpoints"][-1]
        state = inputs.load_weights(last, s.get("weights_key"))
        inputs.check_state(inp.model, state, last.name)
        inp.model.load_state_dict(state)
    center = s.get("center", "last")
    if center not in ("last", "first", "mean"):
        raise ValueError(f"`--center` must be last, first or mean, got {center!r}")
    d1, d2, ratio = lnn.pca_directions(rec, center=center)
    proj = lnn.project(rec, (d1, d2), model=inp.model, loss_fn=inp.loss, data=inp.data)
    span = _span(s.get("span"), "auto")
    if span == "auto":
        span = lnn.path_span(proj.coords)
    if center == "mean":
        origin = rec.split(rec.snapshots.double().mean(0).to(rec.snapshots.dtype))
    else:
        origin = rec.params(-1 if center == "last" else 0)
    device = next(iter(inp.model.parameters())).device
    origin = {n: t.to(device) for n, t in origin.items()}
    trajectory = {
        "coords": proj.coords.tolist(),
        "steps": proj.steps.tolist(),
        "distance": proj.distance.tolist(),
        "relative_distance": proj.relative_distance.tolist(),
        "true_loss": None if proj.true_loss is None else proj.true_loss.tolist(),
        "explained_variance_ratio": [float(r) for r in ratio],
    }
    store = s.get("store")
    with executor_from(s.get("executor")) as ex:
        surface = lnn.plane(
            inp.model,
            inp.loss,
            inp.data,
            (d1, d2),
            span=span,
            steps=s["steps"],
            metrics=inp.metrics,
            bn=s.get("bn", "eval"),
            store=store,
            overwrite=s.get("overwrite", False),
            executor=ex,
            center=origin,
            metadata={**_provenance("pca", s), "trajectory": trajectory},
            **_subset(s),
        )
    typer.echo(
        f"PCA of {len(rec)} snapshots: the plane explains "
        f"{100 * float(ratio.sum()):.1f} % of their variance around the {center} one"
    )
    _finish(surface, store)
    return surface


class _Counted:
    """A curvature operator that reports each matrix-vector product."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self.advance: Any = lambda n=1: None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.op, name)

    def matvec(self, v: Any) -> Any:
        out = self.op.matvec(v)
        self.advance(1)
        return out

    def matmat(self, V: Any) -> Any:
        out = self.op.matmat(V)
        self.advance(int(V.shape[0]))
        return out


#: ``--trace-method``: the library's trace estimators by function name.
TRACE_METHODS = ("hutchinson", "hutchpp")
#: ``--loss`` spellings whose likelihood ``--matrix fisher`` knows (the
#: lossmap.losses name or the torch.nn.functional one); others need
#: ``--likelihood``.
_LIKELIHOOD_OF_LOSS = {
    "cross_entropy": "categorical",
    "mse": "gaussian",
    "mse_loss": "gaussian",
    "bce_with_logits": "bernoulli",
    "binary_cross_entropy_with_logits": "bernoulli",
}
#: Words for the matrices in the printed summary.
MATRIX_WORDS = {
    "hessian": "Hessian",
    "ggn": "generalised Gauss-Newton",
    "empirical_fisher": "empirical Fisher",
    "fisher": "Monte-Carlo Fisher",
}


def _check_blocks(value: Any) -> str:
    """``--blocks``, checked against the library's own grouping names."""
    from types import SimpleNamespace

    from lossmap.nn.curvature import blocks_by

    if not isinstance(value, str):
        raise TypeError(f"`--blocks` must be a string, got {value!r}")
    try:
        blocks_by(SimpleNamespace(names=[]), value)
    except ValueError as exc:
        raise ValueError(str(exc).replace("`by`", "`--blocks`", 1)) from None
    return value


def hessian_options(s: dict[str, Any]) -> dict[str, Any]:
    """The ``lossmap hessian`` settings checked (before anything is loaded).

    Every message names the option, what it expects and what came; the same
    checks serve the command line and an experiment file.
    """
    from lossmap._validation import check_choice, check_float, check_int
    from lossmap.nn.curvature import LIKELIHOODS, MATRICES

    o: dict[str, Any] = {}
    o["matrix"] = check_choice("--matrix", s.get("matrix", "hessian"), MATRICES)
    o["top"] = check_int("--top", s.get("top", 5), minimum=0)
    o["bottom"] = check_int("--bottom", s.get("bottom", 0), minimum=0)
    tol = s.get("tol")
    o["tol"] = (
        None if tol is None else check_float("--tol", tol, minimum=0.0, strict_min=True)
    )
    it = s.get("max_iter")
    o["max_iter"] = None if it is None else check_int("--max-iter", it, minimum=1)
    o["probes"] = check_int("--probes", s.get("probes", 50), minimum=0)
    if o["probes"] == 1:
        raise ValueError(
            "`--probes` must be 0 (no trace) or >= 2 (a standard error needs two "
            "probes), got 1"
        )
    o["trace_method"] = check_choice(
        "--trace-method", s.get("trace_method", "hutchinson"), TRACE_METHODS
    )
    se = s.get("target_se")
    o["target_se"] = (
        None
        if se is None
        else check_float("--target-se", se, minimum=0.0, strict_min=True)
    )
    if o["target_se"] is not None and o["probes"] == 0 and s.get("blocks") is None:
        raise ValueError(
            "`--target-se` needs a trace: `--probes` must be >= 2 (the most probes), "
            "got 0"
        )
    density = s.get("density", True)
    if not isinstance(density, bool):
        raise TypeError(f"`--density` must be true or false, got {density!r}")
    o["density"] = density
    o["density_probes"] = check_int(
        "--density-probes", s.get("density_probes", 4), minimum=1
    )
    o["density_steps"] = check_int(
        "--density-steps", s.get("density_steps", 80), minimum=2
    )
    blocks = s.get("blocks")
    o["blocks"] = None if blocks is None else _check_blocks(blocks)
    o["seed"] = check_int("--seed", s.get("seed", 0), minimum=0)
    likelihood = s.get("likelihood")
    if likelihood is not None:
        likelihood = check_choice("--likelihood", likelihood, LIKELIHOODS)
        if o["matrix"] != "fisher":
            raise ValueError(
                f"`--likelihood` applies to --matrix fisher only, got --matrix "
                f"{o['matrix']}"
            )
    o["likelihood"] = likelihood
    draws = s.get("fisher_samples")
    if draws is not None and o["matrix"] != "fisher":
        raise ValueError(
            f"`--fisher-samples` applies to --matrix fisher only, got --matrix "
            f"{o['matrix']}"
        )
    o["fisher_samples"] = check_int(
        "--fisher-samples", 1 if draws is None else draws, minimum=1
    )
    if o["matrix"] == "fisher" and likelihood is None:
        spec = str(s.get("loss", "cross_entropy")).strip()
        key = spec.lower().replace("-", "_")
        o["likelihood"] = _LIKELIHOOD_OF_LOSS.get(key)
        if o["likelihood"] is None:
            raise ValueError(
                f"`--matrix fisher` needs the likelihood behind `--loss`: give "
                f"`--likelihood` (one of {list(LIKELIHOODS)}); it is known only for "
                f"the losses {sorted(_LIKELIHOOD_OF_LOSS)}, got --loss {spec!r}"
            )
    out = s.get("out")
    if out is not None and Path(out).suffix != ".json":
        raise ValueError(f"`--out` must end in .json, got {Path(out).name!r}")
    o["out"] = out
    return o


def _flag(ok: bool) -> str:
    return "converged" if ok else "NOT converged"


def _eigen_record(eig: Any) -> dict[str, Any]:
    ok = [bool(r <= eig.tolerance) for r in eig.residuals]
    return {
        "eigenvalues": [float(v) for v in eig.values],
        "residuals": [float(r) for r in eig.residuals],
        "converged": ok,
    }


def _eigen_words(eig: Any) -> str:
    return ", ".join(
        f"{v:.6g} ({_flag(r <= eig.tolerance)})"
        for v, r in zip(eig.values, eig.residuals)
    )


def _trace_record(tr: Any, target_se: float | None, probes: int) -> dict[str, Any]:
    return {
        "value": float(tr.value),
        "stderr": float(tr.stderr),
        "probes": int(tr.probes),
        "method": tr.method,
        "products": int(tr.products),
        "exact_part": float(tr.exact_part),
        "max_probes": int(probes),
        "target_se": target_se,
        "target_met": None if target_se is None else bool(tr.stderr <= target_se),
    }


def _trace_words(tr: Any) -> str:
    if tr.method == "exact":
        return f"{tr.value:.6g} (exact, {tr.products} products)"
    return (
        f"{tr.value:.6g} ± {tr.stderr:.3g} ({tr.method}, {tr.probes} probes, "
        f"{tr.products} products)"
    )


def do_hessian(s: dict[str, Any]) -> dict[str, Any]:
    import json
    import math

    import numpy as np

    from lossmap._progress import progress
    from lossmap.nn import curvature as C

    o = hessian_options(s)
    inp = Inputs(s)
    names = inputs.param_names(inp.model, inp.params)
    extra: dict[str, Any] = {}
    if o["matrix"] == "fisher":
        extra = {
            "likelihood": o["likelihood"],
            "samples": o["fisher_samples"],
            "seed": o["seed"],
        }
    op = _Counted(
        C.operator(
            inp.model,
            inp.loss,
            inp.data,
            matrix=o["matrix"],
            params=names,
            bn=s.get("bn", "eval"),
            **extra,
            **inputs.conventions(s),
        )
    )
    seed = o["seed"]
    top, bottom = min(o["top"], op.dim), min(o["bottom"], op.dim)
    for name in ("top", "bottom"):
        if o[name] > op.dim:
            typer.echo(
                f"--{name} {o[name]} is more than the {op.dim} parameter values: "
                f"{op.dim} eigenvalues"
            )
    result: dict[str, Any] = {
        "kind": "nn.hessian",
        "matrix": o["matrix"],
        "dim": op.dim,
        "params": list(op.names),
        "selection": {
            "given": None if inp.params is None else list(inp.params),
            "sizes": [int(n) for n in op.sizes],
            "bn": op.bn,
        },
        "samples": int(op.n_samples),
        "loss": float(op.loss()),
        "seed": seed,
        "_command": command_line("hessian", s),
    }
    if o["matrix"] == "fisher":
        result["likelihood"] = o["likelihood"]
        result["fisher_samples"] = o["fisher_samples"]
    word = MATRIX_WORDS.get(o["matrix"], o["matrix"])
    typer.echo(
        f"matrix: {o['matrix']} ({word}) over {op.dim} parameter values in "
        f"{len(op.names)} tensor{'s' if len(op.names) > 1 else ''}, "
        f"{op.n_samples} samples, loss {op.loss():.6g}"
    )
    wanted = {k: n for k, n in (("largest", top), ("smallest", bottom)) if n}
    if wanted:
        kmax = max(wanted.values())
        max_iter = o["max_iter"]
        if max_iter is not None and max_iter < kmax:
            raise ValueError(
                f"`--max-iter` must be at least the eigenvalues asked for at one "
                f"end (--top/--bottom, {kmax}), got {max_iter}"
            )
        if max_iter is not None:
            max_iter = min(max_iter, op.dim)  # the whole space: exact
        steps = max_iter or min(op.dim, max(300, 10 * kmax))
        with progress(steps, "Lanczos (at most)", unit="products") as op.advance:
            edges = C.lanczos_edges(
                op, wanted, tol=o["tol"], max_iter=max_iter, seed=seed
            )
        any_eig = next(iter(edges.values()))
        # relative tolerance in effect (the library keeps it >= 100 eps)
        used = any_eig.tolerance / any_eig.norm if any_eig.norm > 0 else math.nan
        result["lanczos"] = {
            "tol": o["tol"] if o["tol"] is not None else C.default_tol(op.dtype),
            "tol_used": None if math.isnan(used) else used,
            "tolerance": float(any_eig.tolerance),
            "norm": float(any_eig.norm),
            "iterations": int(any_eig.iterations),
            "restarts": int(any_eig.restarts),
            "max_iter": max_iter,
            "products": int(any_eig.products),
        }
        if "largest" in edges:
            rec = _eigen_record(edges["largest"])
            result.update(rec)  # "eigenvalues" etc.: the top, as before
            typer.echo("top eigenvalues: " + _eigen_words(edges["largest"]))
        else:
            result["eigenvalues"] = []
        if "smallest" in edges:
            result["bottom"] = _eigen_record(edges["smallest"])
            typer.echo("bottom eigenvalues: " + _eigen_words(edges["smallest"]))
        typer.echo(
            f"Lanczos: {any_eig.iterations} steps, {any_eig.products} products, "
            f"residual tolerance {any_eig.tolerance:.3g} "
            f"(tol {used:.3g} × ‖M‖ ≈ {any_eig.norm:.4g})"
        )
        if o["tol"] is not None and used > 1.01 * o["tol"]:
            typer.echo(
                f"  --tol {o['tol']:.3g} is below what {op.dtype} products can "
                f"resolve; {used:.3g} is used"
            )
        if not all(e.converged for e in edges.values()):
            typer.echo(
                "  some pairs did not converge: raise --max-iter, or loosen --tol"
            )
    else:
        result["eigenvalues"] = []
    if o["probes"] >= 2:
        fn = C.hutchpp if o["trace_method"] == "hutchpp" else C.hutchinson
        total = o["probes"] + (2 * min(32, op.dim) if fn is C.hutchpp else 0)
        with progress(total, o["trace_method"], unit="products") as op.advance:
            tr = fn(op, probes=o["probes"], target_se=o["target_se"], seed=seed)
        result["trace"] = _trace_record(tr, o["target_se"], o["probes"])
        typer.echo("trace: " + _trace_words(tr))
        if o["target_se"] is not None and tr.stderr > o["target_se"]:
            typer.echo(
                f"  the standard error {tr.stderr:.3g} is above --target-se "
                f"{o['target_se']:.3g} after the most probes ({o['probes']}); "
                "raise --probes"
            )
    if o["density"]:
        m = min(o["density_steps"], op.dim)
        with progress(
            o["density_probes"] * m, "spectral density", unit="products"
        ) as op.advance:
            dens = C.slq(
                op, iterations=max(2, m), probes=o["density_probes"], seed=seed
            )
        spread = dens.spread
        result["density"] = {
            "grid": dens.grid.tolist(),
            "density": dens.density.tolist(),
            "sigma": dens.sigma,
            "spread": None
            if spread is None or not np.all(np.isfinite(spread))
            else spread.tolist(),
            "probes": o["density_probes"],
            "steps": m,
            "mean": dens.mean,
            "mean_stderr": None
            if not np.isfinite(dens.mean_stderr)
            else dens.mean_stderr,
            "products": int(dens.products),
        }
        peak = float(dens.grid[int(np.argmax(dens.density))])
        spread_words = (
            f", largest spread ± {float(np.max(spread)):.3g}"
            if result["density"]["spread"] is not None
            else ""
        )
        typer.echo(
            f"spectral density: {dens.grid.size} points from "
            f"{dens.grid[0]:.4g} to {dens.grid[-1]:.4g}, peak at {peak:.4g} "
            f"({o['density_probes']} probes × {m} steps, {dens.products} products"
            f"{spread_words})"
        )
    if o["blocks"] is not None:
        groups = C.blocks_by(op, o["blocks"])
        block_probes = o["probes"] if o["probes"] >= 2 else 50
        total = sum(min(op.dim, 300) + block_probes + 64 for _ in groups)
        with progress(total, f"blocks by {o['blocks']}", unit="products") as op.advance:
            before = op.products
            blocks = C.block_curvature(
                op,
                groups,
                k=1,
                probes=block_probes,
                target_se=o["target_se"],
                tol=o["tol"],
                seed=seed,
            )
        result["blocks"] = {
            "by": o["blocks"],
            "products": int(op.products - before),
            "items": {
                name: {
                    "params": list(b.names),
                    "dim": int(b.dim),
                    "top": _eigen_record(b.top),
                    "trace": _trace_record(b.trace, o["target_se"], block_probes),
                    "products": int(b.top.products + b.trace.products),
                }
                for name, b in blocks.items()
            },
        }
        typer.echo(f"blocks (by {o['blocks']}):")
        width = max(len(n) for n in blocks)
        for name, b in blocks.items():
            typer.echo(
                f"  {name:<{width}}  {b.dim:>7} values  top {_eigen_words(b.top)}"
                f"  trace {_trace_words(b.trace)}"
            )
    result["products"] = int(op.products)
    typer.echo(f"products: {op.products} matrix-vector products in all")
    if s.get("experiment") is not None:
        result["_experiment"] = s["experiment"]
    if o["out"] is not None:
        Path(o["out"]).write_text(json.dumps(result, indent=1) + "\n")
        typer.echo(f"wrote {o['out']}")
    return result


def _run(kind: str, settings: dict[str, Any]) -> None:
    """Run one command; Ctrl-C anywhere ends it with exit code 130."""
    with interruptible(settings.get("store")):
        COMMANDS[kind](settings)


COMMANDS = {"plane": do_plane, "line": do_line, "pca": do_pca, "hessian": do_hessian}


# --------------------------------------------------------- typer commands
def plane(
    model: Model,
    data: Data,
    loss: Loss = "cross_entropy",
    weights: Weights = None,
    weights_key: WeightsKey = None,
    metric: Metric = None,
    params: Params = None,
    bn: Bn = "eval",
    span: Span = None,
    steps: Steps = 51,
    subset: Subset = None,
    call: Call = None,
    targets: Targets = None,
    logits: Logits = None,
    seed: Seed = 0,
    norm: Norm = "filter",
    store: Store = None,
    device: Device = None,
    executor: ExecutorOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """The loss over a plane of two random filter-normalised directions."""
    _run("plane", dict(locals()))


def line(
    model: Model,
    data: Data,
    loss: Loss = "cross_entropy",
    weights: Weights = None,
    weights_key: WeightsKey = None,
    metric: Metric = None,
    params: Params = None,
    bn: Bn = "eval",
    span: Span = None,
    steps: Steps = 51,
    subset: Subset = None,
    call: Call = None,
    targets: Targets = None,
    logits: Logits = None,
    seed: Seed = 0,
    norm: Norm = "filter",
    store: Store = None,
    device: Device = None,
    executor: ExecutorOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """The loss along a random direction, or from --weights A to --weights B.

    Between two checkpoints the parameters move and the buffers stay A's: for
    BatchNorm models use --bn recompute.
    """
    _run("line", dict(locals()))


def pca(
    model: Model,
    data: Data,
    loss: Loss = "cross_entropy",
    trajectory: Annotated[
        Path | None, typer.Option(help="A trajectory store written by Recorder.")
    ] = None,
    checkpoints: Annotated[
        Path | None, typer.Option(help="A folder of checkpoints, in training order.")
    ] = None,
    center: Annotated[
        str, typer.Option(help="Origin of the plane: last, first or mean.")
    ] = "last",
    weights: Weights = None,
    weights_key: WeightsKey = None,
    metric: Metric = None,
    bn: Bn = "eval",
    span: PathSpan = None,
    steps: Steps = 51,
    subset: Subset = None,
    call: Call = None,
    targets: Targets = None,
    logits: Logits = None,
    store: Store = None,
    device: Device = None,
    executor: ExecutorOpt = None,
    overwrite: Overwrite = False,
) -> None:
    """The loss over the PCA plane of a training trajectory, with its path.

    Buffers (BatchNorm statistics) come from --weights, else from the last
    checkpoint of --checkpoints.
    """
    _run("pca", dict(locals()))


def hessian(
    model: Model,
    data: Data,
    loss: Loss = "cross_entropy",
    weights: Weights = None,
    weights_key: WeightsKey = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            help="Parameters the matrix is taken over (the others stay fixed): "
            "names, module names or glob patterns, repeat or comma-join (default: "
            "every parameter)."
        ),
    ] = None,
    bn: Bn = "eval",
    call: Call = None,
    targets: Targets = None,
    logits: Logits = None,
    matrix: Annotated[
        str,
        typer.Option(
            help="Curvature matrix: hessian, ggn (generalised Gauss-Newton), "
            "empirical_fisher or fisher (Monte-Carlo true Fisher)."
        ),
    ] = "hessian",
    likelihood: Annotated[
        str | None,
        typer.Option(
            help="--matrix fisher: categorical, gaussian or bernoulli (inferred "
            "for cross_entropy, mse and bce_with_logits)."
        ),
    ] = None,
    fisher_samples: Annotated[
        int | None,
        typer.Option(help="--matrix fisher: targets drawn per input (default 1)."),
    ] = None,
    top: Annotated[
        int, typer.Option(help="How many largest eigenvalues (0: none).")
    ] = 5,
    bottom: Annotated[
        int,
        typer.Option(
            help="How many smallest eigenvalues (0: none; the most negative are "
            "a saddle's escape directions); same Lanczos run as --top."
        ),
    ] = 0,
    tol: Annotated[
        float | None,
        typer.Option(
            help="Lanczos residual tolerance relative to the matrix norm (default "
            "1e-8, at least 100 machine epsilons)."
        ),
    ] = None,
    max_iter: Annotated[
        int | None,
        typer.Option(
            help="Most Lanczos steps (default: min(dim, max(300, 10 × the "
            "eigenvalues asked for)))."
        ),
    ] = None,
    probes: Annotated[
        int,
        typer.Option(
            help="Most probes for the trace (0: no trace); fewer with --target-se."
        ),
    ] = 50,
    trace_method: Annotated[
        str, typer.Option(help="Trace estimator: hutchinson or hutchpp (Hutch++).")
    ] = "hutchinson",
    target_se: Annotated[
        float | None,
        typer.Option(
            help="Stop the trace once its standard error is at most this "
            "(after 10 probes)."
        ),
    ] = None,
    density: Annotated[
        bool, typer.Option(help="Estimate the eigenvalue density (SLQ).")
    ] = True,
    density_probes: Annotated[
        int,
        typer.Option(help="SLQ probes; their spread is the density's error band."),
    ] = 4,
    density_steps: Annotated[
        int, typer.Option(help="Lanczos steps per SLQ probe (at most dim).")
    ] = 80,
    blocks: Annotated[
        str | None,
        typer.Option(
            help="Also each block's top eigenvalue and trace (Hutch++): module "
            "(one block per layer) or parameter."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the Lanczos start, probes and draws.")
    ] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the results (.json).")] = None,
    device: Device = None,
) -> None:
    """Eigenvalues, trace and eigenvalue density of a curvature matrix of the loss.

    The Hessian by default, or --matrix ggn, empirical_fisher or fisher; over
    --params (default: every parameter). Each number says how good it is:
    converged flags for eigenvalues, a standard error for the trace, the
    spread between probes for the density, and how many matrix-vector
    products it took.
    """
    _run("hessian", dict(locals()))


def run(
    experiment: Annotated[Path, typer.Argument(help="An experiment file (.toml).")],
    overwrite: Overwrite = False,
    executor: ExecutorOpt = None,
) -> None:
    """Run the computation an experiment file describes (its `command` key)."""
    import tomllib

    if not experiment.is_file():
        raise FileNotFoundError(
            f"`EXPERIMENT` must be a .toml file, got missing {str(experiment)!r}"
        )
    text = experiment.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(
            f"`EXPERIMENT` {experiment.name} is not valid TOML: {exc}"
        ) from None
    kind = raw.pop("command", None)
    if kind not in COMMANDS:
        raise ValueError(
            f"`command` in {experiment.name} must be one of {list(COMMANDS)}, got "
            f"{kind!r}"
        )
    fn = {"plane": plane, "line": line, "pca": pca, "hessian": hessian}[kind]
    import inspect

    sig = inspect.signature(fn)
    settings: dict[str, Any] = {}
    for name, p in sig.parameters.items():
        settings[name] = p.default if p.default is not inspect.Parameter.empty else None
    unknown = sorted(set(k.replace("-", "_") for k in raw) - set(sig.parameters))
    if unknown:
        raise ValueError(
            f"{experiment.name}: unknown setting(s) {unknown} for {kind}; known: "
            f"{sorted(sig.parameters)}"
        )
    for key, value in raw.items():
        key = key.replace("-", "_")
        if key in ("weights", "metric", "params") and not isinstance(value, list):
            value = [value]
        if key in ("store", "trajectory", "checkpoints", "out") or key == "weights":
            value = [Path(v) for v in value] if isinstance(value, list) else Path(value)
        if key == "span" and not isinstance(value, str):
            value = (
                ",".join(str(v) for v in value)
                if isinstance(value, list)
                else str(value)
            )
        settings[key] = value
    for required in ("model", "data"):
        if not settings.get(required):
            raise ValueError(f"{experiment.name} must set `{required}`")
    settings["overwrite"] = overwrite or bool(raw.get("overwrite", False))
    if executor is not None:
        settings["executor"] = executor
    settings["experiment"] = text
    _run(kind, settings)


def register(app: Any) -> None:
    """Add the network commands to the typer ``app``."""
    for fn in (plane, line, pca, hessian, run):
        app.command(fn.__name__)(fn)
