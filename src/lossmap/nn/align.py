"""Permutation alignment of two networks before they are compared.

Swapping two hidden units of a layer (rows of its weight and bias, and the
matching columns of the next layer's weight) changes the parameters but not
the function. Two networks trained from different seeds are therefore
usually "misaligned": the straight line between them crosses a high barrier
that a suitable permutation of one of them removes.

:func:`align` finds such a permutation by *weight matching* (Ainsworth,
Hayase & Srinivasa, "Git Re-Basin: Merging Models modulo Permutation
Symmetries", ICLR 2023, algorithm 1): for one hidden layer at a time, with
the others fixed, it maximises the inner product between A's weights and
B's permuted weights, a linear assignment problem solved exactly by
``scipy.optimize.linear_sum_assignment``; it sweeps the layers in random
order until no permutation changes.

It supports plain MLPs and CNNs: a chain of ``Linear`` and ``Conv`` layers
(no groups), with optional ``BatchNorm``/``LayerNorm`` (over the channel
dimension) and parameter-free elementwise layers, pooling, dropout and
flattening between them, in the order of ``named_modules()``. Whether the
permuted network computes the same function is then *checked* on sample
inputs (random ones for an MLP; give ``inputs`` for a CNN), never assumed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from lossmap._validation import check_int
from lossmap.nn._split import forward_passes

__all__ = ["Alignment", "align"]

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm)
_PASSIVE = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Mish,
    nn.Hardtanh,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Flatten,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)


@dataclass(frozen=True)
class Alignment:
    """Model B permuted to line up with model A.

    Attributes
    ----------
    model : torch.nn.Module
        A new copy of model B with permuted parameters and buffers (model B
        itself is untouched). It computes the same function as B.
    permutations : dict of str to ndarray of shape (n_units,)
        For each hidden layer (by module name), ``perm`` such that unit ``i``
        of the aligned model is unit ``perm[i]`` of B.
    meta : dict
        ``method``, ``iterations``, ``similarity_before`` and
        ``similarity_after`` (the summed inner products ``<θ_A, θ_B>`` that
        weight matching maximises), ``checked_on`` (samples) and
        ``max_output_difference`` between B and the aligned model.
    """

    model: nn.Module
    permutations: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- the chain
@dataclass
class _Axis:
    """One permuted axis of a tensor: ``name`` viewed as ``shape``."""

    name: str
    axis: int
    shape: tuple[int, ...] | None = None  # a view (a Linear after Flatten)


def _chain(model: nn.Module) -> tuple[list[tuple[str, int]], dict[str, list[_Axis]]]:
    """Hidden layers ``(name, units)`` and, per layer, every axis it permutes."""
    layers: list[tuple[str, nn.Module]] = []
    norms: dict[int, list[tuple[str, nn.Module]]] = {}
    owned: set[str] = set()
    for name, m in model.named_modules():
        if list(m.children()):
            continue
        own = [f"{name}.{p}" if name else p for p, _ in m.named_parameters()]
        if isinstance(m, _LAYERS):
            if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d) and m.groups != 1:
                raise ValueError(
                    f"`align` supports convolutions without groups; layer {name!r} "
                    f"has groups={m.groups}"
                )
            layers.append((name, m))
        elif isinstance(m, _NORMS):
            if not layers:
                raise ValueError(
                    f"`align` needs a Linear or Conv layer before the "
                    f"normalisation layer {name!r}"
                )
            if isinstance(m, nn.LayerNorm) and len(m.normalized_shape) != 1:
                raise ValueError(
                    f"`align` supports LayerNorm over one dimension; {name!r} "
                    f"normalises over {tuple(m.normalized_shape)}"
                )
            norms.setdefault(len(layers) - 1, []).append((name, m))
        elif not isinstance(m, _PASSIVE) and own:
            raise ValueError(
                f"`align` supports plain MLPs and CNNs (Linear/Conv/BatchNorm/"
                f"LayerNorm and parameter-free layers in a chain); module {name!r} "
                f"of type {type(m).__name__} is not supported"
            )
        owned.update(own)
    stray = [n for n, _ in model.named_parameters() if n not in owned]
    if stray:
        raise ValueError(
            f"`align` cannot tell how parameters {stray} are used (they belong to "
            f"no Linear, Conv or normalisation layer)"
        )
    if len(layers) < 2:
        raise ValueError(
            f"`align` needs at least two Linear/Conv layers (one hidden layer), "
            f"got {len(layers)}"
        )
    hidden: list[tuple[str, int]] = []
    axes: dict[str, list[_Axis]] = {}

    def pre(name: str) -> str:
        return f"{name}." if name else ""

    for k, (name, m) in enumerate(layers[:-1]):
        units = int(m.out_features if isinstance(m, nn.Linear) else m.out_channels)
        hidden.append((name, units))
        group = [_Axis(pre(name) + "weight", 0)]
        if m.bias is not None:
            group.append(_Axis(pre(name) + "bias", 0))
        for nname, nm in norms.get(k, []):
            size = (
                nm.normalized_shape[0]
                if isinstance(nm, nn.LayerNorm)
                else nm.num_features
            )
            if size != units:
                raise ValueError(
                    f"normalisation layer {nname!r} has {size} features after "
                    f"layer {name!r} with {units} outputs; not a plain chain"
                )
            for p, _ in nm.named_parameters():
                group.append(_Axis(pre(nname) + p, 0))
            for b in ("running_mean", "running_var"):
                if getattr(nm, b, None) is not None:
                    group.append(_Axis(pre(nname) + b, 0))
        nxt_name, nxt = layers[k + 1]
        fan_in = int(nxt.in_features if isinstance(nxt, nn.Linear) else nxt.in_channels)
        w = pre(nxt_name) + "weight"
        if fan_in == units:
            group.append(_Axis(w, 1))
        elif isinstance(nxt, nn.Linear) and fan_in % units == 0:
            # a Linear after flattening `units` channels of fan_in // units values
            group.append(_Axis(w, 1, (nxt.out_features, units, fan_in // units)))
        else:
            raise ValueError(
                f"layer {nxt_name!r} takes {fan_in} inputs after layer {name!r} "
                f"with {units} outputs; `align` supports plain chains only"
            )
        axes[name] = group
    return hidden, axes


def _view(t: torch.Tensor, ax: _Axis) -> torch.Tensor:
    return t.reshape(ax.shape) if ax.shape is not None else t


def _permuted(
    state: Mapping[str, torch.Tensor],
    axes: dict[str, list[_Axis]],
    perms: dict[str, torch.Tensor],
    skip: str | None = None,
) -> dict[str, torch.Tensor]:
    """``state`` with every permutation applied (except layer ``skip``'s)."""
    out = dict(state)
    for layer, group in axes.items():
        if layer == skip:
            continue
        for ax in group:
            if ax.name not in out:  # buffers, when only parameters are given
                continue
            t = out[ax.name]
            shaped = _view(t, ax).index_select(ax.axis, perms[layer])
            out[ax.name] = shaped.reshape(t.shape)
    return out


def _similarity(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    return float(sum((a[n].double() * b[n].double()).sum() for n in a))


def align(
    model_a: nn.Module,
    model_b: nn.Module,
    *,
    inputs: torch.Tensor | None = None,
    seed: int = 0,
    max_iter: int = 100,
) -> Alignment:
    """Permute the hidden units of ``model_b`` to match ``model_a``.

    Weight matching (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin",
    algorithm 1): coordinate ascent on ``Σ <W_A, P W_B Pᵀ>`` over the
    permutations ``P`` of the hidden layers, each step an exact linear
    assignment (``scipy.optimize.linear_sum_assignment``).

    Parameters
    ----------
    model_a, model_b : torch.nn.Module
        Two networks of the same architecture: a chain of Linear/Conv layers
        with optional BatchNorm/LayerNorm and parameter-free layers between
        them. Neither is changed.
    inputs : torch.Tensor, optional
        Samples on which the aligned model is checked to compute B's function
        (eval mode). Required when the first layer is a convolution; for an
        MLP 64 standard-normal rows are used by default.
    seed : int, default 0
        Order in which layers are visited.
    max_iter : int, default 100
        Sweeps over all layers at most.

    Returns
    -------
    Alignment
        The aligned copy of B, the permutations and a record of the search.

    Raises
    ------
    ValueError
        If the architecture is not a supported chain, the two models differ,
        or the permuted model does not reproduce B's outputs.
    """
    from scipy.optimize import linear_sum_assignment

    for what, m in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(m, nn.Module):
            raise TypeError(
                f"`{what}` must be a torch.nn.Module, got {type(m).__name__}"
            )
    seed = check_int("seed", seed)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    sa, sb = model_a.state_dict(), model_b.state_dict()
    if [(n, tuple(t.shape)) for n, t in sa.items()] != [
        (n, tuple(t.shape)) for n, t in sb.items()
    ]:
        raise ValueError(
            "`model_a` and `model_b` must have the same architecture (state_dict "
            "names and shapes)"
        )
    hidden, axes = _chain(model_b)
    pa = {n: t.detach() for n, t in model_a.named_parameters()}
    pb = {n: t.detach() for n, t in model_b.named_parameters()}
    device = next(iter(pb.values())).device
    perms = {name: torch.arange(units, device=device) for name, units in hidden}
    rng = np.random.default_rng(seed)
    similarity_before = _similarity(pa, pb)
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007
        changed = False
        for k in rng.permutation(len(hidden)):
            layer, units = hidden[k]
            other = _permuted(pb, axes, perms, skip=layer)
            cost = torch.zeros(units, units, dtype=torch.float64, device=device)
            for ax in axes[layer]:
                if ax.name not in pa:  # running statistics: moved, not matched
                    continue
                wa = _view(pa[ax.name], ax).movedim(ax.axis, 0).reshape(units, -1)
                wb = _view(other[ax.name], ax).movedim(ax.axis, 0).reshape(units, -1)
                cost += wa.double() @ wb.double().T
            _, cols = linear_sum_assignment(cost.cpu().numpy(), maximize=True)
            new = torch.as_tensor(cols, device=device)
            old_score = float(cost[torch.arange(units), perms[layer]].sum())
            new_score = float(cost[torch.arange(units), new].sum())
            if new_score > old_score + 1e-12 * max(1.0, abs(old_score)):
                perms[layer] = new
                changed = True
        if not changed:
            break
    state = _permuted({n: t.detach().clone() for n, t in sb.items()}, axes, perms)
    aligned = copy.deepcopy(model_b)
    aligned.load_state_dict(state)
    diff, n_checked = _check_same_function(model_b, aligned, inputs)
    meta = {
        "method": "weight_matching",
        "reference": "Ainsworth, Hayase & Srinivasa, Git Re-Basin, ICLR 2023",
        "iterations": iterations,
        "seed": seed,
        "similarity_before": similarity_before,
        "similarity_after": _similarity(
            pa, {n: t.detach() for n, t in aligned.named_parameters()}
        ),
        "checked_on": n_checked,
        "max_output_difference": diff,
    }
    return Alignment(aligned, {n: p.cpu().numpy() for n, p in perms.items()}, meta)


def _check_same_function(
    model_b: nn.Module, aligned: nn.Module, inputs: torch.Tensor | None
) -> tuple[float, int]:
    first = next(m for m in model_b.modules() if isinstance(m, _LAYERS))
    param = next(model_b.parameters())
    if inputs is None:
        if not isinstance(first, nn.Linear):
            raise ValueError(
                "`inputs` (a few samples) are needed to check that the aligned "
                "network computes the same function when its first layer is a "
                "convolution"
            )
        gen = torch.Generator().manual_seed(0)
        inputs = torch.randn(64, first.in_features, generator=gen, dtype=param.dtype)
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"`inputs` must be a torch.Tensor, got {type(inputs).__name__}")
    x = inputs.to(param.device)
    x = x.to(param.dtype) if x.is_floating_point() else x
    reference = copy.deepcopy(model_b).eval()
    flags = [(m, m.training) for m in aligned.modules()]
    aligned.eval()
    try:
        with torch.no_grad(), forward_passes():
            want, got = reference(x), aligned(x)
    finally:
        for m, flag in flags:
            m.training = flag
    scale = float(want.abs().max()) if want.numel() else 0.0
    diff = float((want - got).abs().max()) if want.numel() else 0.0
    tol = (1e-9 if param.dtype == torch.float64 else 1e-4) * max(1.0, scale)
    if not diff <= tol:
        raise ValueError(
            f"the permuted network does not compute the same function as "
            f"`model_b` (largest output difference {diff:.3g}); its layers are "
            f"probably not used as a plain chain in forward(), which `align` "
            f"needs"
        )
    return diff, int(x.shape[0])
