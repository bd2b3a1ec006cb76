"""The ``lossmap`` command line.

Each group of commands lives in its own module under ``lossmap._cli`` and adds
itself to the one typer app here; ``lossmap --help`` lists them all.
"""

from __future__ import annotations

import importlib
import sys

from lossmap._optional import require

typer = require("typer", extra="cli", what="the lossmap command")

app = typer.Typer(
    name="lossmap",
    help="Compute, analyse and show loss landscapes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Modules under lossmap._cli, each with a ``register(app)`` function.
COMMAND_MODULES = (
    "toy",
    "walk",
    "nets",
    "explore",
    "widget",
    "verify",
    "network",
    "hessian",
    "experiment",
    "report",
    "minima",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"lossmap._cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int):  # click returns typer.Exit's code here
            return code
    except SystemExit as exc:  # typer/click exits on --help
        return int(exc.code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        typer.echo(f"error: {_as_typed(str(exc), argv)}", err=True)
        return 2
    except Exception as exc:  # click usage errors
        if _is_click_error(exc):
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        raise
    return 0


def _as_typed(message: str, argv: list[str]) -> str:
    """``message`` with the library's argument names (`` `lr` ``) written as
    the options the user typed (`` `--lr` ``)."""
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            option = token[2:].split("=", 1)[0]
            name = option.replace("-", "_")
            message = message.replace(f"`{name}`", f"`--{option}`")
            if name.endswith("s"):  # a list option checked item by item
                message = message.replace(f"`{name[:-1]}`", f"`--{option}`")
    return message


def _is_click_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a click usage error (typer >= 0.26 vendors its own click)."""
    classes = []
    try:
        from typer._click.exceptions import ClickException as vendored

        classes.append(vendored)
    except ImportError:  # pragma: no cover - older typer
        pass
    try:
        import click

        classes.append(click.ClickException)
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, tuple(classes))
