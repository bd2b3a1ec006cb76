"""CLI commands between minima: ``lossmap connect`` and ``lossmap embed``.

``connect`` takes two checkpoints of one model (``--weights A --weights B``)
and reports the loss barrier on the straight line between them, after
permutation alignment, and along a trained curve; ``embed`` draws the
checkpoints of one or more runs in 2-D. The model, weights, data and loss
options are those of ``lossmap plane`` (:mod:`lossmap._cli.netcommon`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from lossmap._cli import inputs
from lossmap._cli.netcommon import (
    Data,
    Device,
    Loss,
    Metric,
    Model,
    Weights,
    WeightsKey,
    command_line,
    recording_of,
)

FIGURES = (".png", ".pdf", ".svg", ".html")
_BN = Annotated[
    str,
    typer.Option(
        help="BatchNorm statistics: auto (recompute if present), eval, "
        "batch, recompute."
    ),
]


def _save(fig: Any, path: Path) -> Path:
    from lossmap.plot import require_matplotlib

    plt = require_matplotlib("lossmap")
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _model_inputs(model: Any, data: Any, loss: Any) -> Any:
    """A few input rows for checking an alignment (None when not a tensor)."""
    import torch

    from lossmap.nn.batch import Objective, materialise

    head = materialise(data).head(64)
    x = Objective.build(loss).inputs_of(head)
    return x if isinstance(x, torch.Tensor) else None


@contextlib.contextmanager
def _curve_interruptible(store: Path) -> Iterator[None]:
    """Ctrl-C while training: say how many epochs are saved; exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        from lossmap import nn as lnn

        try:
            done = lnn.Curve.load(store).meta["epochs_done"]
        except (ValueError, FileNotFoundError):
            done = 0
        typer.echo(
            f"\ninterrupted; {done} epoch(s) of the curve are saved in {store}; "
            "rerun the same command to continue",
            err=True,
        )
        raise typer.Exit(130) from None


# ------------------------------------------------------------------ connect
def do_connect(s: dict[str, Any]) -> dict[str, Any]:
    from lossmap import io
    from lossmap import nn as lnn
    from lossmap.plot import BarrierDisplay, CurvePlaneDisplay

    weights = s.get("weights") or []
    if len(weights) != 2:
        raise ValueError(
            f"`--weights` must be given twice (model A, then model B), got "
            f"{len(weights)} file(s)"
        )
    if s["curve"] not in (*lnn.CURVES, "none"):
        raise ValueError(
            f"`--curve` must be one of {[*lnn.CURVES, 'none']}, got {s['curve']!r}"
        )
    to_aligned = s.get("curve_to", "b") == "aligned"
    if s.get("curve_to", "b") not in ("b", "aligned"):
        raise ValueError(
            f"`--curve-to` must be b or aligned, got {s.get('curve_to')!r}"
        )
    if to_aligned and not s["align"]:
        raise ValueError("`--curve-to aligned` needs --align")
    key, device = s.get("weights_key"), s.get("device")
    a = inputs.build_model(s["model"], weights[0], weights_key=key, device=device)
    b = inputs.build_model(s["model"], weights[1], weights_key=key, device=device)
    data = inputs.load_data(s["data"], device)
    loss = inputs.resolve_loss(s["loss"])
    metrics = inputs.resolve_metrics(s.get("metric"))
    out = Path(s["out"])
    out.mkdir(parents=True, exist_ok=True)
    meta = {"_command": command_line("connect", s)}
    opts = {"steps": s["steps"], "bn": s["bn"], "metrics": metrics}
    paths: dict[str, Any] = {}
    written: list[Path] = []
    paths["linear"] = lnn.linear_path(a, b, loss, data, **opts)
    if s["align"]:
        aligned = lnn.align(a, b, inputs=_model_inputs(a, data, loss))
        paths["linear, aligned"] = lnn.linear_path(a, aligned, loss, data, **opts)
    for name, p in paths.items():
        store = out / (name.replace(", ", "_") + ".zarr")
        io.save(p.with_metadata(**meta), store, overwrite=True)
        written.append(store)
    curve = None
    if s["curve"] != "none":
        tag = "curve_aligned" if to_aligned else "curve"
        store = out / tag
        with _curve_interruptible(store):
            curve = lnn.train_curve(
                a,
                aligned if to_aligned else b,
                loss,
                data,
                kind=s["curve"],
                bends=s["bends"],
                epochs=s["epochs"],
                batch_size=s["batch_size"],
                lr=s["lr"],
                momentum=s["momentum"],
                seed=s["seed"],
                store=store,
            )
        along = out / f"{tag}_path_e{s['epochs']}.zarr"
        label = f"{s['curve']} curve" + (" to aligned B" if to_aligned else "")
        paths[label] = lnn.curve_path(curve, a, loss, data, store=along, **opts)
        written += [store, along]
    for name, p in paths.items():
        bar = p.metadata["barrier"]
        typer.echo(
            f"{name:18s} barrier {bar['height']:.4g} (chord {bar['chord']:.4g}; "
            f"max loss {bar['max']:.4g} at t = {bar['t']:.3g}; ends "
            f"{bar['start']:.4g}, {bar['end']:.4g})"
        )
    written.append(
        _save(BarrierDisplay.from_paths(paths).figure_, out / "barriers.png")
    )
    if curve is not None and s["plane_steps"] > 0:
        import numpy as np

        d1, d2 = curve.plane(a)
        k = np.asarray(d1.meta["controls"])
        lo, hi = k.min(axis=0), k.max(axis=0)
        pad = 0.25 * (hi - lo)
        store = out / f"{tag}_plane_e{s['epochs']}.zarr"
        surface = lnn.plane(
            a,
            loss,
            data,
            (d1, d2),
            span=[(lo[i] - pad[i], hi[i] + pad[i]) for i in (0, 1)],
            steps=s["plane_steps"],
            bn=paths[label].metadata["bn"],
            store=store,
            metadata=meta,
        )
        disp = CurvePlaneDisplay.from_curve(surface, curve, (d1, d2))
        written += [store, _save(disp.figure_, out / f"{tag}_plane.png")]
    for path in written:
        typer.echo(f"wrote {path}")
    return paths


def connect(
    model: Model,
    data: Data,
    loss: Loss = "cross_entropy",
    weights: Weights = None,
    weights_key: WeightsKey = None,
    metric: Metric = None,
    out: Annotated[
        Path, typer.Option(help="Folder for the stores and figures.")
    ] = Path("connect"),
    align: Annotated[
        bool,
        typer.Option(
            "--align/--no-align", help="Also the line after aligning B's units to A."
        ),
    ] = True,
    curve: Annotated[
        str, typer.Option(help="Curve to train: bezier, polychain or none.")
    ] = "bezier",
    curve_to: Annotated[
        str,
        typer.Option(
            help="End of the curve: b (model B) or aligned (B after --align)."
        ),
    ] = "b",
    bends: Annotated[int, typer.Option(help="Control points between the ends.")] = 1,
    epochs: Annotated[int, typer.Option(help="Epochs of curve training.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Curve training batch.")] = 128,
    lr: Annotated[float, typer.Option(help="Curve training learning rate.")] = 0.05,
    momentum: Annotated[float, typer.Option(help="SGD momentum.")] = 0.9,
    seed: Annotated[int, typer.Option(help="Seed of batches and t draws.")] = 0,
    steps: Annotated[int, typer.Option(help="Points along each path.")] = 25,
    plane_steps: Annotated[
        int,
        typer.Option(
            help="Grid points per axis of the plane through the curve (0: no plane)."
        ),
    ] = 0,
    bn: _BN = "auto",
    device: Device = None,
) -> None:
    """Loss barrier between two checkpoints: straight, aligned, trained curve."""
    do_connect(dict(locals()))


# -------------------------------------------------------------------- embed
def _embed_bn(model: Any, bn: str) -> str:
    """``auto``: re-estimate BatchNorm statistics per checkpoint when the model
    has BatchNorm; ``eval`` uses each checkpoint's own running statistics."""
    import torch

    if bn != "auto":
        return bn
    norms = torch.nn.modules.batchnorm._BatchNorm
    return "recompute" if any(isinstance(m, norms) for m in model.modules()) else "eval"


def do_embed(s: dict[str, Any]) -> Any:
    from lossmap import nn as lnn
    from lossmap.plot import EmbeddingDisplay, embedding_figure

    out = Path(s["out"])
    if out.suffix.lower() not in FIGURES:
        raise ValueError(
            f"`--out` must end in one of {list(FIGURES)}, got {out.name!r}"
        )
    trajectories = s.get("trajectory") or []
    folders = s.get("checkpoints") or []
    if not trajectories and not folders:
        raise ValueError(
            "give at least one `--trajectory` (a Recorder store) or `--checkpoints` "
            "(a folder of checkpoint files); each is one run"
        )
    model = inputs.build_model(s["model"], device=s.get("device"))
    # each run keeps every checkpoint's buffers (BatchNorm statistics), which
    # `--bn eval` evaluates it with; `auto` re-estimates them instead
    holder = SimpleNamespace(model=model, weights=[])
    runs: dict[str, Any] = {}
    for path in trajectories:
        runs[Path(path).name] = recording_of(holder, {"trajectory": path})
    for path in folders:
        runs[Path(path).name] = recording_of(
            holder, {"checkpoints": path, "weights_key": s.get("weights_key")}
        )
    evaluate: dict[str, Any] = {}
    if s.get("data"):
        evaluate = {
            "model": model,
            "loss_fn": inputs.resolve_loss(s["loss"]),
            "data": inputs.load_data(s["data"], s.get("device")),
            "metrics": inputs.resolve_metrics(s.get("metric")),
        }
    emb = lnn.embed(
        runs,
        s["method"],
        seed=s["seed"],
        perplexity=s.get("perplexity"),
        evaluate_kwargs={"bn": _embed_bn(model, s.get("bn", "auto"))}
        if evaluate
        else None,
        **evaluate,
    )
    if out.suffix.lower() == ".html":  # one page, plotly.js inside
        page = embedding_figure(emb).to_html(include_plotlyjs=True, full_html=True)
        out.write_text(page, encoding="utf-8")
    else:
        _save(EmbeddingDisplay.from_embedding(emb).figure_, out)
    record = {
        "kind": "nn.embedding",
        **emb.to_dict(),
        "_command": command_line("embed", s),
    }
    out.with_suffix(".json").write_text(json.dumps(record))
    typer.echo(f"{len(emb)} checkpoints of {len(emb.runs)} run(s) by {s['method']}")
    typer.echo(f"wrote {out}")
    typer.echo(f"wrote {out.with_suffix('.json')}")
    return emb


def embed(
    model: Model,
    data: Annotated[
        str | None,
        typer.Option(help="MODULE:FUNCTION returning the data (colours by loss)."),
    ] = None,
    loss: Loss = "cross_entropy",
    trajectory: Annotated[
        list[Path] | None, typer.Option(help="A Recorder store (one run; repeatable).")
    ] = None,
    checkpoints: Annotated[
        list[Path] | None,
        typer.Option(help="A folder of checkpoint files (one run; repeatable)."),
    ] = None,
    weights_key: WeightsKey = None,
    metric: Metric = None,
    method: Annotated[str, typer.Option(help="pca, tsne or umap.")] = "pca",
    seed: Annotated[int, typer.Option(help="Seed of t-SNE / UMAP.")] = 0,
    perplexity: Annotated[
        float | None, typer.Option(help="t-SNE perplexity (default min(30, (n-1)/3)).")
    ] = None,
    bn: _BN = "auto",
    out: Annotated[
        Path,
        typer.Option(
            help="The figure (.png, .pdf, .svg, or .html for an interactive "
            "page); its data go to a .json beside it."
        ),
    ] = Path("embedding.png"),
    device: Device = None,
) -> None:
    """Checkpoints of one or more runs in 2-D (PCA, t-SNE, UMAP), coloured by loss."""
    do_embed(dict(locals()))


def register(app: Any) -> None:
    """Add ``connect`` and ``embed`` to the typer ``app``."""
    app.command("connect")(connect)
    app.command("embed")(embed)
