"""CLI commands: explore (see lossmap.cli)."""

from __future__ import annotations

from typing import Any


def register(app: Any) -> None:
    """Add this module's commands to the typer app."""
