"""Checking the arguments of :func:`~lossmap.nn.plane` and friends.

Everything a call needs is validated and put into an
:class:`~lossmap.nn.engine.EngineSpec` before any grid point is evaluated;
a short probe on the first rows at the center turns a model that does not fit
the data, a loss the contract cannot read, or a loss whose value depends on
the tiling (:func:`lossmap.nn.batch.check_tiling`) into a clear error, and
finds out whether the model or loss differentiates inside (then the engine
runs with gradients enabled).
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
from lossmap._validation import check_float, check_int
from lossmap.nn import _bn, _checks
from lossmap.nn._split import forward_passes
from lossmap.nn.batch import (
    CHECK_ROWS,
    Batch,
    Data,
    Objective,
    aggregate,
    check_tiling,
    materialise,
)
from lossmap.nn.directions import Direction
from lossmap.nn.engine import DEFAULT_MEMORY, EngineSpec
from lossmap.nn.options import Options
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


def _restrict(
    model: nn.Module, directions: list[Direction], spec: Any
) -> tuple[list[Direction], dict[str, Any] | None]:
    """Directions with every component outside the selection set to zero."""
    if spec is None:
        return directions, None
    from lossmap.nn import params as _params

    chosen = _params.select(model, spec)
    meta = _params.selection_meta(model, spec)
    out = []
    for i, d in enumerate(directions):
        tensors = {
            n: (t if n in chosen else torch.zeros_like(t)) for n, t in d.tensors.items()
        }
        if not any(bool(torch.any(tensors[n] != 0)) for n in chosen if n in tensors):
            raise ValueError(
                f"`directions[{i}]` is zero on the selected parameters "
                f"({meta['description']}); make directions with params= too"
            )
        out.append(Direction(tensors, {**d.meta, "params": meta}))
    return out, meta


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _probe(spec: EngineSpec) -> tuple[bool, dict[str, float]]:
    """Run the model and loss on the first rows at the center.

    Returns whether gradients must be enabled (the model or loss calls
    autograd inside) and the values on those rows. Raises clear errors for a
    model that does not fit the data, a loss or metric the contract cannot
    read, and a loss whose value depends on the tiling.
    """
    obj = spec.objective
    device = next(iter(spec.center.values())).device
    work = _bn.working_copy(spec.model)
    with _bn.ModelGuard(work) as guard:
        _bn.configure(guard, work, "batch" if spec.bn == "batch" else "eval")
        params = {n: t.to(spec.dtype) for n, t in spec.center.items()}
        buffers = {
            n: (b.to(spec.dtype) if b.is_floating_point() else b)
            for n, b in work.named_buffers()
        }

        def model_fn(*args: Any, **kwargs: Any) -> Any:
            return functional_call(work, (params, buffers), args, kwargs)

        def run(batch: Batch) -> list[tuple]:
            b = batch.to(device, spec.dtype)
            value = b.value
            try:
                out = obj.forward(model_fn, b, value)
            except Exception as exc:
                how = "call" if callable(obj.call) else f"call={obj.call!r}"
                raise ValueError(
                    f"`data` does not fit the model: calling it ({how}) on "
                    f"{_shapes(b)} failed with {_describe_error(exc)}"
                ) from exc
            return obj.read(out, b, value, explain=True)

        def attempt(grad: bool) -> dict[str, float]:
            ctx = torch.enable_grad() if grad else torch.no_grad()
            with ctx, forward_passes():
                if spec.bn == "batch" and _bn.has_batchnorm(work):
                    # per-tile statistics depend on the tiling by definition
                    return aggregate(obj, [run(spec.data.head(64))])
                return check_tiling(obj, run, spec.data, spec.dtype)

        try:
            return False, attempt(grad=False)
        except ValueError as first:
            if not _about_grad(first):
                raise
            try:
                values = attempt(grad=True)
            except Exception:
                raise first from first.__cause__
            return True, values


def _about_grad(exc: BaseException | None) -> bool:
    """Whether an error (or its cause) comes from autograd under ``no_grad``."""
    while exc is not None:
        if isinstance(exc, RuntimeError) and "grad" in str(exc):
            return True
        exc = exc.__cause__
    return False


def _shapes(b: Batch) -> str:
    return (
        str(b.describe())
        .replace("'", "")
        .replace("n, ", f"{b.n}, ")
        .replace("[n]", f"[{b.n}]")
    )


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
    options: Options,
) -> Call:
    """Check everything, probe the model and return the engine's job."""
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"`model` must be a torch.nn.Module, got {type(model).__name__}"
        )
    opts = options
    objective = Objective.build(
        loss_fn,
        metrics=opts.metrics,
        call=opts.call,
        targets=opts.targets,
        logits=opts.logits,
        reduction=opts.reduction,
        weights=opts.weights,
    )
    space = ParamSpace(model)
    cen = _center(model, opts.center, space, "params" if ndim == 0 else "center")
    dtype = _dtype(opts.dtype, space.dtype)
    if opts.precision == "bf16" and dtype != torch.float32:
        # autocast leaves float64 (and other dtypes) alone: refuse, not mislabel
        raise ValueError(
            f"`precision` 'bf16' needs float32 evaluation (a float32 model or "
            f"dtype=torch.float32), got dtype {str(dtype).removeprefix('torch.')}"
        )
    if opts.precision == "bf16":  # emulated bfloat16 is slower than float: refuse
        _cpu.require_bf16(next(iter(cen.values())).device)
    directions = _directions(dirs, ndim, space) if ndim else []
    directions, selection = _restrict(model, directions, opts.params if ndim else None)
    data_ = materialise(data)
    n = data_.n
    subset = opts.subset
    if subset is not None:
        subset = check_int("subset", subset, minimum=2, maximum=n)
        if objective.has_sum:
            raise ValueError(
                "`subset` estimates a mean from a sample; a loss with "
                "reduction='sum' is a total over all rows: leave subset=None"
            )
        if objective.whole_batch:
            raise ValueError(
                "`subset` cannot be combined with reduction='batch' (the standard "
                "error needs several tiles)"
            )
    memory = DEFAULT_MEMORY if opts.memory is None else opts.memory
    bn_data = None
    if opts.bn_data is not None:
        bn_data = materialise(opts.bn_data, "bn_data")
    _checks.check_inputs(
        "params" if ndim == 0 else "center",
        cen,
        [d.tensors for d in directions],
        _values(data_),
        None if bn_data is None else _values(bn_data),
    )
    spec = EngineSpec(
        model=model,
        objective=objective,
        data=data_,
        center=cen,
        directions=[d.tensors for d in directions],
        bn=opts.bn,
        dtype=dtype,
        batch_size=opts.batch_size,
        subset=subset if subset is not None and subset < n else None,
        seed=opts.seed,
        bn_data=bn_data,
        strategy=opts.strategy,
        memory=memory,
        precision=opts.precision,
        optimize=opts.optimize,
    )
    spec.needs_grad, probed = _probe(spec)
    # a metric may be undefined on a few rows; the loss must be finite
    _checks.check_probe_value(
        "loss_fn", torch.tensor(probed["loss"], dtype=torch.float64), min(n, CHECK_ROWS)
    )
    import lossmap

    data_meta: dict[str, Any] = {
        "n_samples": n,
        "subset": spec.subset,
        "seed": opts.seed,
        "batch_size": opts.batch_size,
        "kind": data_.kind,
        "structure": data_.first.describe(),
    }
    first = data_.first
    if objective.single_input(first):
        data_meta["input_shape"] = list(objective.model_args(first)[0][0].shape[1:])
    meta = {
        "model": type(model).__name__,
        "n_params": space.size,
        "directions": [d.meta for d in directions],
        "direction_norms": [d.norm() for d in directions],
        "normalisation": [d.meta.get("norm") for d in directions],
        "bn": opts.bn,
        "loss_fn": _loss_label(loss_fn),
        "metrics": [m.name for m in objective.metrics],
        "objective": objective.describe(),
        "optimize": opts.optimize,
        "data": data_meta,
        "dtype": str(dtype).removeprefix("torch."),
        "precision": PRECISION_LABELS[opts.precision],
        "device": str(next(iter(cen.values())).device),
        "fingerprint": {
            "center": _fingerprint(*cen.values()),
            "directions": [_fingerprint(*d.tensors.values()) for d in directions],
            "data": data_.fingerprint(),
        },
        "versions": {"torch": torch.__version__, "lossmap": lossmap.__version__},
    }
    if selection is not None:
        meta["params"] = selection
    if len(objective.terms) > 1:
        meta["loss_terms"] = {t.name: t.describe() for t in objective.terms}
    return Call(spec, meta)


def _values(data: Data) -> Any:
    """The data in the user's structure (a list of blocks when there are
    several), for the finiteness checks' messages."""
    if len(data.blocks) == 1:
        return data.first.value
    return [b.value for b in data.blocks]


def _loss_label(loss_fn: Any) -> str:
    def one(fn: Any) -> str:
        if isinstance(fn, str):
            return fn
        return getattr(fn, "__name__", type(fn).__name__)

    if isinstance(loss_fn, Mapping):
        return " + ".join(f"{k} ({one(v)})" for k, v in loss_fn.items())
    return one(loss_fn)
