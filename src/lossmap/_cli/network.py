"""CLI commands for a user's own network: plane, line, pca and run.

``lossmap hessian`` has its own module, :mod:`lossmap._cli.hessian`, built on
the shared options and helpers here; :func:`register` adds it with the others
and ``run`` runs it from a file like them.

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
from collections.abc import Callable, Iterator
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


def _run(kind: str, settings: dict[str, Any]) -> None:
    """Run one command; Ctrl-C anywhere ends it with exit code 130."""
    with interruptible(settings.get("store")):
        runner, _ = commands()[kind]
        runner(settings)


#: A command's runner (settings in, result out) and its typer function.
Command = tuple[Callable[[dict[str, Any]], Any], Callable[..., None]]


def commands() -> dict[str, Command]:
    """Each network command by name: its runner and its typer command.

    The names are those an experiment file's ``command`` may give, in the order
    ``lossmap --help`` lists the commands. ``hessian`` lives in
    :mod:`lossmap._cli.hessian`, which imports the shared options from this
    module; so that module is imported here, when the table is first asked for,
    not at the top (neither module needs the other while it loads).
    """
    from lossmap._cli import hessian

    return {
        "plane": (do_plane, plane),
        "line": (do_line, line),
        "pca": (do_pca, pca),
        "hessian": (hessian.do_hessian, hessian.hessian),
    }


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
    table = commands()
    if kind not in table:
        raise ValueError(
            f"`command` in {experiment.name} must be one of {list(table)}, got {kind!r}"
        )
    _, fn = table[kind]
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
    for fn in (*(command for _, command in commands().values()), run):
        app.command(fn.__name__)(fn)
