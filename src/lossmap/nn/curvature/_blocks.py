"""Per-layer and per-block curvature through the parameter selection.

A block is a set of parameters; its curvature is the diagonal block
``M_bb = P_b M P_bᵀ`` of the full matrix (the curvature of the loss in those
parameters with the others fixed). :class:`BlockView` applies it through the
full operator (so a kept gradient graph serves every block), and
:func:`block_curvature` reports each block's top eigenvalues and trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lossmap._validation import check_choice, check_int
from lossmap.nn.curvature._lanczos import Eigen, eigenvalues
from lossmap.nn.curvature._trace import Trace, hutchpp

__all__ = ["BlockCurvature", "BlockView", "block_curvature", "blocks_by"]


class BlockView:
    """The diagonal block of ``op`` over the parameters ``names``."""

    def __init__(self, op: Any, names: Sequence[str]) -> None:
        names = list(names)
        unknown = [n for n in names if n not in op.names]
        if unknown or not names:
            raise ValueError(
                f"block parameters must be a non-empty subset of the operator's "
                f"{op.names}, got {names}"
            )
        self.op = op
        self.names = [n for n in op.names if n in names]
        offsets, start = {}, 0
        for n, size in zip(op.names, op.sizes):
            offsets[n] = (start, size)
            start += size
        self.index = torch.cat(
            [
                torch.arange(offsets[n][0], offsets[n][0] + offsets[n][1])
                for n in self.names
            ]
        ).to(op.device)
        self.dim = int(self.index.numel())
        self.dtype, self.device = op.dtype, op.device

    @property
    def products(self) -> int:
        return self.op.products

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        full = torch.zeros(
            (V.shape[0], self.op.dim), dtype=self.dtype, device=self.device
        )
        full[:, self.index] = V.to(self.dtype)
        return self.op.matmat(full)[:, self.index]

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matmat(v.reshape(1, -1))[0]


def blocks_by(op: Any, by: str = "module") -> dict[str, list[str]]:
    """Group the operator's parameters: ``"module"`` (one block per module
    owning parameters, e.g. a layer's weight and bias) or ``"parameter"``."""
    check_choice("by", by, ["module", "parameter"])
    out: dict[str, list[str]] = {}
    for n in op.names:
        key = n if by == "parameter" else (n.rsplit(".", 1)[0] if "." in n else n)
        out.setdefault(key, []).append(n)
    return out


@dataclass(frozen=True)
class BlockCurvature:
    """One block's curvature: its parameters, size, top eigenpairs and trace."""

    names: tuple[str, ...]
    dim: int
    top: Eigen
    trace: Trace


def block_curvature(
    op: Any,
    blocks: str | Mapping[str, Sequence[str]] = "module",
    *,
    k: int = 1,
    which: str = "largest",
    sketch: int | None = None,
    probes: int = 50,
    target_se: float | None = None,
    tol: float | None = None,
    seed: int = 0,
) -> dict[str, BlockCurvature]:
    """Top eigenvalues and trace of each diagonal block of ``op``.

    Parameters
    ----------
    op : CurvatureOperator
    blocks : "module", "parameter" or mapping of block name to parameter names
    k, which, tol : as for :func:`eigenvalues` (``k`` capped at a block's size)
    sketch, probes, target_se : as for :func:`hutchpp` (exact for blocks of
        at most ``sketch`` parameters, by default 32)
    seed : int
    """
    k = check_int("k", k, minimum=1)
    groups = blocks_by(op, blocks) if isinstance(blocks, str) else dict(blocks)
    out = {}
    for name, names in groups.items():
        view = BlockView(op, names)
        top = eigenvalues(view, min(k, view.dim), which=which, tol=tol, seed=seed)
        trace = hutchpp(
            view,
            sketch=None if sketch is None else min(sketch, view.dim),
            probes=probes,
            target_se=target_se,
            seed=seed,
        )
        out[name] = BlockCurvature(tuple(view.names), view.dim, top, trace)
    return out
