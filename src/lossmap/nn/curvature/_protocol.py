"""What the algorithms need from an operator, with defaults for plain ones.

Algorithms accept any object with ``dim``, ``dtype``, ``device`` and either
``matmat(V)`` (``V`` of shape ``(b, dim)``) or ``matvec(v)``; ``products``
(a running count of matrix-vector products) is read when present.
"""

from __future__ import annotations

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
