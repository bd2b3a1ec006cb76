"""Keeping the user's model untouched, and the three BatchNorm modes.

The engine never runs the user's module object itself: it runs a *working
copy* that shares every parameter and buffer tensor but has its own module
objects, so switching train/eval flags or BatchNorm options cannot leak back.
Parameter and buffer values always come in through
``torch.func.functional_call``; BatchNorm running buffers are either the
model's own (read only) or fresh tensors owned by the engine.

BatchNorm modes
---------------
``"eval"``
    Running statistics, as at test time (default).
``"batch"``
    Statistics of each evaluation tile; running buffers are neither read nor
    updated.
``"recompute"``
    At every grid point, the running statistics are re-estimated from the
    data in one train-mode pass with a cumulative average over tiles (the
    "BN update" used in mode-connectivity work, e.g. Garipov et al. 2018,
    "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs"), then
    the loss is evaluated with those statistics. Other layers such as dropout
    stay in eval mode during that pass.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

BN_MODES = ("eval", "batch", "recompute")
_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)


def bn_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every BatchNorm layer."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BN_TYPES)]


class ModelGuard:
    """Record every module's ``training`` flag and changed attributes; restore.

    Used as a context manager around any work on a model (also the working
    copy), so that flags come back even after an error.
    """

    def __init__(self, model: nn.Module) -> None:
        self._flags = [(m, m.training) for m in model.modules()]
        self._attrs: list[tuple[Any, str, Any]] = []

    def set(self, obj: Any, name: str, value: Any) -> None:
        self._attrs.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def restore(self) -> None:
        for obj, name, old in reversed(self._attrs):
            setattr(obj, name, old)
        self._attrs.clear()
        for m, flag in self._flags:
            m.training = flag

    def __enter__(self) -> ModelGuard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()


def working_copy(model: nn.Module) -> nn.Module:
    """New module objects over the same parameter and buffer tensors.

    Falls back to ``model`` itself when the module cannot be copied; callers
    always use :class:`ModelGuard`, so flags are restored either way.
    """
    memo: dict[int, Any] = {}
    for t in list(model.parameters()) + list(model.buffers()):
        memo[id(t)] = t
    try:
        return copy.deepcopy(model, memo)
    except Exception:
        return model


def configure(guard: ModelGuard, model: nn.Module, bn: str) -> None:
    """Put ``model`` (a working copy) into the flags ``bn`` needs."""
    for m in model.modules():
        m.training = False
    if bn == "batch":
        for _, m in bn_modules(model):
            guard.set(m, "track_running_stats", False)
            m.training = True
    elif bn == "recompute":
        for _, m in bn_modules(model):
            if m.track_running_stats:
                guard.set(m, "momentum", None)


def fresh_bn_buffers(
    model: nn.Module, *, dtype: torch.dtype, device: torch.device
) -> dict[str, torch.Tensor]:
    """Reset running statistics for every BatchNorm layer that tracks them."""
    out: dict[str, torch.Tensor] = {}
    for name, m in bn_modules(model):
        if not m.track_running_stats or m.running_mean is None:
            continue
        p = f"{name}." if name else ""
        out[p + "running_mean"] = torch.zeros(
            m.num_features, dtype=dtype, device=device
        )
        out[p + "running_var"] = torch.ones(m.num_features, dtype=dtype, device=device)
        out[p + "num_batches_tracked"] = torch.zeros(
            (), dtype=torch.long, device=device
        )
    return out


@contextlib.contextmanager
def statistics_pass(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers in train mode (``configure`` set momentum to None)."""
    mods = [m for _, m in bn_modules(model) if m.track_running_stats]
    for m in mods:
        m.training = True
    try:
        yield
    finally:
        for m in mods:
            m.training = False


def has_batchnorm(model: nn.Module) -> bool:
    return bool(bn_modules(model))


@contextlib.contextmanager
def buffers_swapped(
    model: nn.Module, buffers: Mapping[str, torch.Tensor]
) -> Iterator[nn.Module]:
    """A module that reads ``buffers`` in place of ``model``'s own.

    A working copy (new module objects over the same tensors) gets the
    snapshot's buffer tensors registered in place of the model's; the user's
    module and its tensors are never written. Only when the model cannot be
    copied are its buffer slots swapped, and restored on exit.
    """
    work = working_copy(model)
    swapped: list[tuple[Any, str, Any]] = []
    try:
        for name, value in buffers.items():
            owner_name, _, leaf = name.rpartition(".")
            owner = work.get_submodule(owner_name)
            old = owner._buffers[leaf]
            swapped.append((owner, leaf, old))
            like = old if old is not None else value
            owner._buffers[leaf] = value.to(device=like.device, dtype=like.dtype)
        yield work
    finally:
        if work is model:
            for owner, leaf, old in reversed(swapped):
                owner._buffers[leaf] = old
