"""What the algorithms need from an operator, with defaults for plain ones.

Algorithms accept any object with ``dim``, ``dtype``, ``device`` and either
``matmat(V)`` (``V`` of shape ``(b, dim)``) or ``matvec(v)``; ``products``
(a running count of matrix-vector products) is read when present.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch


def matmat(op: Any, V: torch.Tensor) -> torch.Tensor:
    """``b`` products at once when ``op`` can, else one by one."""
    if hasattr(op, "matmat"):
        return op.matmat(V)
    return torch.stack([op.matvec(v) for v in V])


def count(op: Any) -> int:
    """Products ``op`` has done so far (0 when it does not count)."""
    return int(getattr(op, "products", 0))


def session(op: Any) -> Any:
    """``op.session()`` (products' configuration held across a run) when the
    operator has one, else a no-op context."""
    held = getattr(op, "session", None)
    return held() if callable(held) else contextlib.nullcontext()


def held(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an algorithm ``fn(op, ...)`` inside :func:`session` of its operator."""

    @functools.wraps(fn)
    def run(op: Any, *args: Any, **kwargs: Any) -> Any:
        with session(op):
            return fn(op, *args, **kwargs)

    return run
