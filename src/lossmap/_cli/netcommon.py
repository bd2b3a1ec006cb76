"""The common ground of the commands on a user's own network (``plane``,
``line``, ``pca``, ``hessian``, ``connect``, ``embed``, ``run``): their shared
options, loading the inputs once, the recorded command line, executors,
Ctrl-C handling and checkpoint folders. Each command module imports this one;
this one imports none of them.
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
def parse_span(text: str | None, default: Any) -> Any:
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


def parse_norm(norm: str) -> str | None:
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


def report_lowest(surface: Any, store: Path | None) -> None:
    best = surface.argmin()
    where = ", ".join(f"{k} = {v:.4g}" for k, v in best.coords.items())
    typer.echo(f"lowest loss {best.value:.6g} at {where}")
    if store is not None:
        typer.echo(f"wrote {store}")


def evaluation_options(s: dict[str, Any]) -> dict[str, Any]:
    """Evaluation options: the batch conventions, and ``subset=``/``seed=``."""
    out = inputs.conventions(s)
    if s.get("subset") is not None:
        out.update(subset=s["subset"], seed=s.get("seed", 0))
    return out


def provenance(kind: str, s: dict[str, Any]) -> dict[str, Any]:
    meta = {"_command": command_line(kind, s)}
    if s.get("experiment") is not None:
        meta["_experiment"] = s["experiment"]
    return meta


def run_command(
    runner: Callable[[dict[str, Any]], Any], settings: dict[str, Any]
) -> None:
    """Run one command's ``runner`` on its settings; Ctrl-C anywhere ends it
    with exit code 130 and says what is saved."""
    with interruptible(settings.get("store")):
        runner(settings)


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
    # each checkpoint's own persistent buffers (BatchNorm running statistics):
    # without them every snapshot's true loss would use one checkpoint's
    persistent = set(inp.model.state_dict())
    buffer_names = [n for n, _ in inp.model.named_buffers() if n in persistent]
    rows = []
    buffers: dict[str, list[Any]] = {n: [] for n in buffer_names}
    for f in files:
        state = inputs.load_weights(f, s.get("weights_key"))
        inputs.check_state(inp.model, state, f.name)
        rows.append(torch.cat([state[n].detach().cpu().reshape(-1) for n in names]))
        for n in buffer_names:
            buffers[n].append(state[n].detach().cpu())
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
        buffers={n: torch.stack(b) for n, b in buffers.items()} or None,
    )
