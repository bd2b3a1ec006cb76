"""``lossmap run experiment.toml``: any network command from a file.

The file's ``command`` key names the command (:data:`COMMANDS`); its other
keys are the command's options, spelled as on the command line. The store (or
``--out`` JSON) keeps the file's text::

    command = "plane"
    model = "nets.py:make_model"
    weights = "ckpt.pt"
    data = "nets.py:test_batch"
    loss = "cross_entropy"
    store = "plane.zarr"
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from lossmap._cli import hessian, network
from lossmap._cli.netcommon import ExecutorOpt, Overwrite, run_command

#: A command's runner (settings in, result out) and its typer function.
Command = tuple[Callable[[dict[str, Any]], Any], Callable[..., None]]

#: The commands an experiment file's ``command`` may name.
COMMANDS: dict[str, Command] = {
    "plane": (network.do_plane, network.plane),
    "line": (network.do_line, network.line),
    "pca": (network.do_pca, network.pca),
    "hessian": (hessian.do_hessian, hessian.hessian),
}


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
    table = COMMANDS
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
    run_command(table[kind][0], settings)


def register(app: Any) -> None:
    """Add ``run`` to the typer ``app``."""
    app.command("run")(run)
