"""Checking the arguments of :func:`~lossmap.nn.plane` and friends.

Everything a call needs is validated and put into an
:class:`~lossmap.nn.engine.EngineSpec` before any grid point is evaluated;
a short probe on a few rows at the center turns a model that does not fit the
data, or a loss that is not a scalar, into a clear error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from lossmap import _cpu
from lossmap._validation import check_choice, check_float, check_int
from lossmap.nn import _bn, _checks
from lossmap.nn._data import materialise, resolve_metrics
from lossmap.nn._fingerprint import canonical_rows, data_fingerprint
from lossmap.nn.directions import Direction
from lossmap.nn.engine import DEFAULT_MEMORY, PRECISIONS, STRATEGIES, EngineSpec
from lossmap.nn.params import ParamSpace

MAX_STEPS = 10_001
#: How each ``precision`` is recorded in a surface's metadata.
PRECISION_LABELS = {"float": "float", "bf16": "bf16-autocast"}


def _dtype(dtype: Any, default: torch.dtype) -> torch.dtype:
    if dtype is None:
        return default
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None) if dtype.isidentifier() else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"`dtype` must be a floating torch dtype such as torch.float32 or "
            f"'float64', got {dtype!r}"
        )
    return dtype


def span_of(span: Any, name: str = "span") -> tuple[float, float]:
    if isinstance(span, int | float | np.number) and not isinstance(span, bool):
        s = check_float(name, span, minimum=0.0, strict_min=True)
        return -s, s
    try:
        lo, hi = span
    except (TypeError, ValueError):
        raise TypeError(
            f"`{name}` must be a positive number or a pair (lo, hi), got {span!r}"
        ) from None
    lo = check_float(f"{name}[0]", lo)
    hi = check_float(f"{name}[1]", hi)
    if not lo < hi:
        raise ValueError(f"`{name}` must satisfy lo < hi, got ({lo}, {hi})")
    return lo, hi


def plane_spans(span: Any) -> list[tuple[float, float]]:
    """``span`` as a number, a pair (lo, hi), or one of those per axis."""
    if (
        isinstance(span, Sequence)
        and len(span) == 2
        and all(isinstance(s, Sequence) for s in span)
    ):
        return [span_of(s, f"span[{i}]") for i, s in enumerate(span)]
    return [span_of(span)] * 2


def plane_steps(steps: Any) -> list[int]:
    if isinstance(steps, Sequence) and not isinstance(steps, str):
        if len(steps) != 2:
            raise ValueError(f"`steps` must be an int or a pair of ints, got {steps!r}")
        return [
            check_int(f"steps[{i}]", s, minimum=2, maximum=MAX_STEPS)
            for i, s in enumerate(steps)
        ]
    return [check_int("steps", steps, minimum=2, maximum=MAX_STEPS)] * 2


def _center(
    model: nn.Module, center: Any, space: ParamSpace, name: str = "center"
) -> dict[str, torch.Tensor]:
    if center is None:
        return {n: p.detach() for n, p in model.named_parameters()}
    if isinstance(center, nn.Module):
        other = ParamSpace(center)
        if other.shapes != space.shapes:
            raise ValueError(
                "`center` must be a model with the same parameters (names and "
                f"shapes) as `model`, got {other!r}"
            )
        return {n: p.detach() for n, p in center.named_parameters()}
    if isinstance(center, Mapping):
        space.check(center, what=name)
        own = {n: p.detach() for n, p in model.named_parameters()}
        return {
            n: torch.as_tensor(center.get(n, own[n])).detach().to(own[n])
            for n in space.names
        }
    raise TypeError(
        f"`center` must be None, a model or a mapping of parameter name to tensor, "
        f"got {type(center).__name__}"
    )


def _directions(dirs: Any, count: int, space: ParamSpace) -> list[Direction]:
    if isinstance(dirs, Direction):
        dirs = [dirs]
    if not isinstance(dirs, Sequence) or len(dirs) != count:
        what = "one Direction" if count == 1 else f"a pair of {count} Directions"
        raise ValueError(f"`directions` must be {what}, got {dirs!r:.80}")
    out = []
    for i, d in enumerate(dirs):
        if not isinstance(d, Direction):
            raise TypeError(
                f"`directions[{i}]` must be a lossmap.nn.Direction, got "
                f"{type(d).__name__}"
            )
        space.check(d.tensors, what=f"directions[{i}]")
        zeros = space.zeros()
        full = {n: d.tensors.get(n, zeros[n]) for n in space.names}
        out.append(Direction(full, dict(d.meta)))
    return out


def _fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous()
        h.update(str((tuple(a.shape), str(a.dtype))).encode())
        h.update(
            a.reshape(-1).view(torch.uint8).numpy().tobytes() if a.numel() else b""
        )
    return h.hexdigest()[:16]


def _probe(spec: EngineSpec) -> None:
    """Run the model once on a few rows at the center; raise clear errors."""
    rows = min(int(spec.inputs.shape[0]), 8)
    device = next(iter(spec.center.values())).device
    x = spec.inputs[:rows].to(device)
    x = x.to(spec.dtype) if x.is_floating_point() else x
    y = spec.targets[:rows].to(device)
    y = y.to(spec.dtype) if y.is_floating_point() else y
    work = _bn.working_copy(spec.model)
    with _bn.ModelGuard(work) as guard, torch.no_grad():
        _bn.configure(guard, work, "batch" if spec.bn == "batch" else "eval")
        params = {n: t.to(spec.dtype) for n, t in spec.center.items()}
        buffers = {
            n: (b.to(spec.dtype) if b.is_floating_point() else b)
            for n, b in work.named_buffers()
        }
        try:
            out = functional_call(work, (params, buffers), (x,))
        except Exception as exc:
            raise ValueError(
                f"`data` does not fit the model: calling it on inputs of shape "
                f"{tuple(x.shape)} ({x.dtype}) failed with {type(exc).__name__}: {exc}"
            ) from exc
        shape = tuple(getattr(out, "shape", ()))
        checks = [
            ("loss_fn", spec.loss_fn),
            *((f"metrics[{k!r}]", f) for k, f in spec.metrics.items()),
        ]
        for name, fn in checks:
            try:
                value = fn(out, y)
            except Exception as exc:
                raise ValueError(
                    f"`{name}` failed on model outputs of shape {shape} and targets "
                    f"of shape {tuple(y.shape)}: {type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                got = (
                    tuple(value.shape)
                    if isinstance(value, torch.Tensor)
                    else type(value).__name__
                )
                raise ValueError(
                    f"`{name}` must return a scalar tensor (the mean over the batch), "
                    f"got {got}"
                )
            if name == "loss_fn":  # a metric may be undefined on a few rows
                _checks.check_probe_value(name, value, rows)


@dataclass(frozen=True)
class Call:
    spec: EngineSpec
    meta: dict[str, Any]


def prepare(
    model: Any,
    loss_fn: Any,
    data: Any,
    dirs: Any,
    ndim: int,
    *,
    metrics: Any,
    bn: str,
    center: Any,
    subset: Any,
    seed: Any,
    dtype: Any,
    batch_size: Any,
    bn_data: Any,
    strategy: str,
    memory: Any,
    precision: str = "float",
) -> Call:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"`model` must be a torch.nn.Module, got {type(model).__name__}"
        )
    if not callable(loss_fn):
        raise TypeError(f"`loss_fn` must be callable, got {loss_fn!r}")
    check_choice("bn", bn, _bn.BN_MODES)
    check_choice("strategy", strategy, STRATEGIES)
    check_choice("precision", precision, PRECISIONS)
    metric_fns = resolve_metrics(metrics)
    space = ParamSpace(model)
    cen = _center(model, center, space, "params" if ndim == 0 else "center")
    dtype = _dtype(dtype, space.dtype)
    if precision == "bf16" and dtype != torch.float32:
        # autocast leaves float64 (and other dtypes) alone: refuse, not mislabel
        raise ValueError(
            f"`precision` 'bf16' needs float32 evaluation (a float32 model or "
            f"dtype=torch.float32), got dtype {str(dtype).removeprefix('torch.')}"
        )
    if precision == "bf16":  # emulated bfloat16 is slower than float: refuse it
        _cpu.require_bf16(next(iter(cen.values())).device)
    directions = _directions(dirs, ndim, space) if ndim else []
    x, y = canonical_rows(data, *materialise(data))
    n = int(x.shape[0])
    if subset is not None:
        subset = check_int("subset", subset, minimum=2, maximum=n)
    if seed is not None:
        seed = check_int("seed", seed)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, minimum=1)
    memory = (
        DEFAULT_MEMORY
        if memory is None
        else check_int("memory", memory, minimum=1 << 20)
    )
    bx = None
    if bn_data is not None:
        if bn != "recompute":
            raise ValueError(
                f"`bn_data` is used only with bn='recompute', got bn={bn!r}"
            )
        bx, _ = materialise(bn_data)
    _checks.check_inputs(
        "params" if ndim == 0 else "center",
        cen,
        [d.tensors for d in directions],
        (x, y),
        bx,
    )
    spec = EngineSpec(
        model=model,
        loss_fn=loss_fn,
        metrics=metric_fns,
        inputs=x,
        targets=y,
        center=cen,
        directions=[d.tensors for d in directions],
        bn=bn,
        dtype=dtype,
        batch_size=batch_size,
        subset=subset if subset is not None and subset < n else None,
        seed=seed,
        bn_inputs=bx,
        strategy=strategy,
        memory=memory,
        precision=precision,
    )
    _probe(spec)
    import lossmap

    meta = {
        "model": type(model).__name__,
        "n_params": space.size,
        "directions": [d.meta for d in directions],
        "direction_norms": [d.norm() for d in directions],
        "normalisation": [d.meta.get("norm") for d in directions],
        "bn": bn,
        "loss_fn": getattr(loss_fn, "__name__", type(loss_fn).__name__),
        "metrics": list(metric_fns),
        "data": {
            "n_samples": n,
            "subset": spec.subset,
            "seed": seed,
            "batch_size": batch_size,
            "input_shape": list(x.shape[1:]),
        },
        "dtype": str(dtype).removeprefix("torch."),
        "precision": PRECISION_LABELS[precision],
        "device": str(next(iter(cen.values())).device),
        "fingerprint": {
            "center": _fingerprint(*cen.values()),
            "directions": [_fingerprint(*d.tensors.values()) for d in directions],
            "data": data_fingerprint((x, y)),
        },
        "versions": {"torch": torch.__version__, "lossmap": lossmap.__version__},
    }
    return Call(spec, meta)
