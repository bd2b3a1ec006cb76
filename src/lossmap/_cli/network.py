"""CLI commands for a user's own network: plane, line and pca.

Each command reads the model, weights, data and loss through
:mod:`lossmap._cli.inputs` (the shared options and helpers are in
:mod:`lossmap._cli.netcommon`), calls the public :mod:`lossmap.nn` API, and
records in the store the command that recomputes the surface (``lossmap info``
prints it); ``lossmap run`` (:mod:`lossmap._cli.experiment`) takes the same
settings from a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from lossmap._cli import inputs
from lossmap._cli.netcommon import (
    Bn,
    Call,
    Data,
    Device,
    ExecutorOpt,
    Inputs,
    Logits,
    Loss,
    Metric,
    Model,
    Norm,
    Overwrite,
    Params,
    PathSpan,
    Seed,
    Span,
    Steps,
    Store,
    Subset,
    Targets,
    Weights,
    WeightsKey,
    evaluation_options,
    executor_from,
    parse_norm,
    parse_span,
    provenance,
    recording_of,
    report_lowest,
    run_command,
)


# ------------------------------------------------------------- computations
def do_plane(s: dict[str, Any]) -> Any:
    from lossmap import nn as lnn

    inp = Inputs(s)
    norm = parse_norm(s.get("norm", "filter"))
    d1, d2 = lnn.random_plane(
        inp.model, seed=s.get("seed", 0), norm=norm, **inp.selection()
    )
    span = parse_span(s.get("span"), 1.0)
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
            metadata=provenance("plane", s),
            **evaluation_options(s),
        )
    report_lowest(surface, store)
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
        span = parse_span(s.get("span"), (-0.25, 1.25))
        if s.get("bn", "eval") == "eval":
            _warn_buffers_stay(inp.model, inp.weights, s.get("weights_key"))
    elif len(inp.weights) > 2:
        raise ValueError(
            f"`--weights` must be given once (a random line) or twice (from A to "
            f"B), got {len(inp.weights)} files"
        )
    else:
        norm = parse_norm(s.get("norm", "filter"))
        direction = lnn.random_direction(
            inp.model, seed=s.get("seed", 0), norm=norm, **inp.selection()
        )
        span = parse_span(s.get("span"), 1.0)
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
            metadata=provenance("line", s),
            **evaluation_options(s),
        )
    report_lowest(surface, store)
    return surface


def _warn_buffers_stay(model: Any, weights: list[Any], key: str | None) -> None:
    """Say so when A's BatchNorm statistics are not B's (``--bn eval``).

    The line holds A's buffers at every point, so its value at 1 is B's
    parameters with A's running statistics, not B's loss.
    """
    import torch

    from lossmap.nn._bn import bn_modules

    tracked = {
        f"{name}.{key}" if name else key
        for name, m in bn_modules(model)
        if m.track_running_stats
        for key in ("running_mean", "running_var")
    }
    if not tracked:
        return
    b = inputs.load_weights(weights[1], key)
    own = model.state_dict()
    differ = sorted(
        n for n in tracked if n in b and not torch.equal(own[n].cpu(), b[n].cpu())
    )
    if differ:
        typer.echo(
            f"warning: --bn eval keeps {Path(weights[0]).name}'s BatchNorm running "
            f"statistics along the whole line, and {Path(weights[1]).name}'s differ "
            f"({differ[0]}{' and more' if len(differ) > 1 else ''}): the value at "
            f"alpha = 1 is not {Path(weights[1]).name}'s loss; --bn recompute "
            "re-estimates them at every point (as lossmap connect does)",
            err=True,
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
    span = parse_span(s.get("span"), "auto")
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
            metadata={**provenance("pca", s), "trajectory": trajectory},
            **evaluation_options(s),
        )
    typer.echo(
        f"PCA of {len(rec)} snapshots: the plane explains "
        f"{100 * float(ratio.sum()):.1f} % of their variance around the {center} one"
    )
    report_lowest(surface, store)
    return surface


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
    run_command(do_plane, dict(locals()))


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
    run_command(do_line, dict(locals()))


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
    run_command(do_pca, dict(locals()))


def register(app: Any) -> None:
    """Add ``plane``, ``line`` and ``pca`` to the typer ``app``."""
    for fn in (plane, line, pca):
        app.command(fn.__name__)(fn)
