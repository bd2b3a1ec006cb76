"""How the model is called and its loss terms and metrics read, as exact
(sum, count) pairs over tiles: :class:`Objective` and its helpers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lossmap.nn.batch._data import Batch

#: The model output's own loss (``output.loss`` or ``output["loss"]``).
OUTPUT_LOSS = "output.loss"
#: How a scalar term is reduced over a tile's rows.
REDUCTIONS = ("mean", "sum", "batch")
#: How the model is called on its inputs (or a callable ``call(model, batch)``).
CALLS = ("auto", "kwargs", "positional", "single")
#: Label value excluded from token metrics (PyTorch's and HuggingFace's
#: ``ignore_index``).
IGNORE_INDEX = -100


# --------------------------------------------------------------- metrics
def sum_count(
    values: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum, count)`` of ``values`` where ``mask`` is true (all if None).

    Return this from a loss term or metric to make it exact over tiles when
    it averages over some of the rows or tokens only. Entries outside the
    mask do not contribute, even when they are not finite.
    """
    if mask is None:
        return values.sum(), torch.as_tensor(float(values.numel()))
    mask = mask.to(torch.bool)
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    picked = torch.where(mask, values, zero)
    return picked.sum(), mask.sum().to(values.dtype)


def _correct(
    outputs: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(number correct, number counted); integer targets equal to
    :data:`IGNORE_INDEX` are not counted."""
    if outputs.dim() >= 2 and outputs.shape[-1] > 1:
        pred = outputs.argmax(dim=-1)
        if targets.dim() == outputs.dim() and targets.is_floating_point():
            targets = targets.argmax(dim=-1)
        if pred.shape != targets.shape:
            raise ValueError(
                f"accuracy needs class scores of shape (..., classes) and class "
                f"indices of the same leading shape, got scores {tuple(outputs.shape)} "
                f"and targets {tuple(targets.shape)}"
            )
        hit = (pred == targets).to(outputs.dtype)
        if not targets.is_floating_point():
            return sum_count(hit, targets != IGNORE_INDEX)
        return sum_count(hit)
    n = outputs.shape[0]
    if outputs.numel() != n or targets.numel() != n:
        raise ValueError(
            f"accuracy of binary logits needs one logit and one target per row, "
            f"got outputs {tuple(outputs.shape)} and targets {tuple(targets.shape)}"
        )
    pred = outputs.reshape(n) > 0
    hit = (pred == (targets.reshape(n) > 0.5)).to(outputs.dtype)
    return sum_count(hit)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of correct predictions.

    Outputs of shape ``(..., c)`` with ``c > 1`` are class scores (argmax);
    targets are class indices of shape ``(...)`` (entries equal to -100, the
    usual ``ignore_index``, are not counted) or one-hot/probabilities
    ``(..., c)``. Outputs of shape ``(n,)`` or ``(n, 1)`` are logits of the
    positive class (positive when > 0) against targets in {0, 1}.
    """
    s, c = _correct(outputs, targets)
    return s / c


#: Metrics available by name: each returns ``(sum, count)`` from
#: ``(logits, targets)``.
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], Any]] = {"accuracy": _correct}


# ------------------------------------------------------------- objective
@dataclass(frozen=True)
class Term:
    """One named, weighted loss term (or metric)."""

    name: str
    fn: Any  # callable(output, t) or OUTPUT_LOSS
    weight: float = 1.0
    reduction: str = "mean"
    builtin: bool = False  # a METRICS entry: reads logits and tensor targets

    def describe(self) -> dict[str, Any]:
        fn = self.fn
        label = (
            fn if isinstance(fn, str) else getattr(fn, "__name__", type(fn).__name__)
        )
        return {"fn": label, "weight": self.weight, "reduction": self.reduction}


def _loss_terms(loss: Any, weights: Any, reduction: Any) -> tuple[Term, ...]:
    if isinstance(loss, Mapping):
        if not loss:
            raise ValueError("`loss_fn` as a mapping of named terms must not be empty")
        named = dict(loss)
    else:
        named = {"loss": loss}
    for name, fn in named.items():
        what = "loss_fn" if name == "loss" else f"loss_fn[{name!r}]"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"`loss_fn` term names must be identifiers, got {name!r}")
        if not (callable(fn) or fn == OUTPUT_LOSS):
            raise TypeError(
                f"`{what}` must be a callable loss_fn(output, targets), or "
                f"{OUTPUT_LOSS!r} (the output's own .loss), or a mapping of term "
                f"names to these; got {fn!r}"
            )
    if len(named) > 1 and "loss" in named:
        raise ValueError("a loss term cannot be called 'loss' (the total's field)")
    weights = {} if weights is None else weights
    if not isinstance(weights, Mapping):
        raise TypeError(
            f"`weights` must be a mapping of term name to number, got {weights!r}"
        )
    unknown = sorted(set(weights) - set(named))
    if unknown:
        raise ValueError(
            f"`weights` must name loss terms {sorted(named)}, got unknown {unknown}"
        )
    if isinstance(reduction, Mapping):
        unknown = sorted(set(reduction) - set(named))
        if unknown:
            raise ValueError(
                f"`reduction` must name loss terms {sorted(named)}, got unknown "
                f"{unknown}"
            )
        reds = {n: reduction.get(n, "mean") for n in named}
    else:
        reds = dict.fromkeys(named, reduction)
    terms = []
    for name, fn in named.items():
        red = reds[name]
        if red not in REDUCTIONS:
            raise ValueError(
                f"`reduction` must be one of {list(REDUCTIONS)} (or a mapping of "
                f"term name to one), got {red!r}"
            )
        w = weights.get(name, 1.0)
        if (
            isinstance(w, bool)
            or not isinstance(w, int | float)
            or not math.isfinite(w)
        ):
            raise TypeError(f"`weights[{name!r}]` must be a finite number, got {w!r}")
        terms.append(Term(name, fn, float(w), red))
    return tuple(terms)


def _metric_terms(metrics: Any, taken: set[str]) -> tuple[Term, ...]:
    if metrics is None:
        return ()
    if isinstance(metrics, str):
        metrics = [metrics]
    out: dict[str, Term] = {}
    if isinstance(metrics, Mapping):
        for name, fn in metrics.items():
            out[name] = Term(name, fn)
    elif isinstance(metrics, Iterable):
        for m in metrics:
            if not isinstance(m, str):
                raise TypeError(
                    f"`metrics` entries must be metric names, got {m!r}; pass a "
                    f"{{name: function}} mapping for your own metrics"
                )
            if m not in METRICS:
                raise ValueError(
                    f"`metrics` must name known metrics {sorted(METRICS)}, got {m!r}"
                )
            out[m] = Term(m, METRICS[m], builtin=True)
    else:
        raise TypeError(
            f"`metrics` must be None, a name, a list of names or a mapping, got "
            f"{type(metrics).__name__}"
        )
    for name, t in out.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"metric names must be non-empty strings, got {name!r}")
        if name == "loss" or name.endswith("_stderr") or name in taken:
            raise ValueError(f"metric name {name!r} is reserved or a loss term's name")
        if not callable(t.fn):
            raise TypeError(f"metric {name!r} must be callable, got {t.fn!r}")
    return tuple(out.values())


def _attr(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping) and name in obj:
        return obj[name]
    return getattr(obj, name, None)


@dataclass(frozen=True)
class Objective:
    """How a model is called on a batch and how its terms and metrics are read.

    Build with :meth:`build`; the engine, the one-point reference and the
    curvature operators all evaluate through it.

    Attributes
    ----------
    terms : tuple of Term
        The loss terms (one, called ``"loss"``, for a plain loss).
    metrics : tuple of Term
    call, targets, logits :
        The conventions (see the module documentation).
    """

    terms: tuple[Term, ...]
    metrics: tuple[Term, ...] = ()
    call: Any = "auto"
    targets: Any = "auto"
    logits: Any = "auto"
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        loss_fn: Any,
        *,
        metrics: Any = None,
        call: Any = "auto",
        targets: Any = "auto",
        logits: Any = "auto",
        reduction: Any = "mean",
        weights: Any = None,
    ) -> Objective:
        """Check every convention and return the objective."""
        terms = _loss_terms(loss_fn, weights, reduction)
        mets = _metric_terms(metrics, {t.name for t in terms})
        if not (callable(call) or call in CALLS):
            raise ValueError(
                f"`call` must be one of {list(CALLS)} or a callable "
                f"call(model, batch), got {call!r}"
            )
        if not (
            callable(targets)
            or isinstance(targets, str)
            or (isinstance(targets, int) and not isinstance(targets, bool))
        ):
            raise TypeError(
                "`targets` must be 'auto', 'batch', a key, an index or a callable "
                f"targets(batch), got {targets!r}"
            )
        if not (callable(logits) or isinstance(logits, str)):
            raise TypeError(
                "`logits` must be 'auto', an attribute or key name such as "
                f"'logits', or a callable logits(output), got {logits!r}"
            )
        return cls(terms, mets, call, targets, logits)

    # ------------------------------------------------------------ fields
    @property
    def fields(self) -> list[str]:
        """``"loss"``, then each term's name (with several terms), then metrics."""
        names = ["loss"]
        if len(self.terms) > 1:
            names += [t.name for t in self.terms]
        return names + [m.name for m in self.metrics]

    @property
    def parts(self) -> tuple[Term, ...]:
        """Every aggregated quantity: terms, then metrics."""
        return self.terms + self.metrics

    @property
    def whole_batch(self) -> bool:
        """Whether a term can only be evaluated on all data at once."""
        return any(t.reduction == "batch" for t in self.terms)

    @property
    def has_sum(self) -> bool:
        return any(t.reduction == "sum" for t in self.terms)

    def describe(self) -> dict[str, Any]:
        def conv(v: Any) -> Any:
            if callable(v):
                return getattr(v, "__name__", type(v).__name__)
            return v

        return {
            "terms": {t.name: t.describe() for t in self.terms},
            "metrics": [m.name for m in self.metrics],
            "call": conv(self.call),
            "targets": conv(self.targets),
            "logits": conv(self.logits),
        }

    # ---------------------------------------------------------- reading
    def is_pair(self, batch: Batch) -> bool:
        return self.targets == "auto" and batch.kind == "pair"

    def inputs_of(self, batch: Batch, value: Any | None = None) -> Any:
        """What the model is called on: a pair's first element, else the batch."""
        value = batch.value if value is None else value
        return value[0] if self.is_pair(batch) else value

    def model_args(self, batch: Batch, value: Any | None = None) -> tuple[tuple, dict]:
        """Positional and keyword arguments of the model (not for a callable
        ``call``)."""
        inputs = self.inputs_of(batch, value)
        how = self.call
        if how == "auto":
            if isinstance(inputs, Mapping):
                return (), dict(inputs)
            if isinstance(inputs, tuple | list):
                return tuple(inputs), {}
            return (inputs,), {}
        if how == "kwargs":
            if not isinstance(inputs, Mapping):
                raise TypeError(
                    f"`call` 'kwargs' needs model inputs that are a mapping, got "
                    f"{type(inputs).__name__}"
                )
            return (), dict(inputs)
        if how == "positional":
            if isinstance(inputs, tuple | list):
                return tuple(inputs), {}
            if isinstance(inputs, Mapping):
                raise TypeError(
                    "`call` 'positional' needs model inputs that are a tensor, tuple "
                    "or list, got a mapping"
                )
            return (inputs,), {}
        return (inputs,), {}

    def single_input(self, batch: Batch) -> bool:
        """Whether the model is called on one tensor (what ``torch.fx`` splits
        and ``channels_last`` need)."""
        if callable(self.call):
            return False
        try:
            args, kwargs = self.model_args(batch)
        except TypeError:
            return False
        return len(args) == 1 and not kwargs and isinstance(args[0], torch.Tensor)

    def forward(self, fn: Callable[..., Any], batch: Batch, value: Any = None) -> Any:
        """The model's output on ``batch``; ``fn(*args, **kwargs)`` runs it."""
        value = batch.value if value is None else value
        if callable(self.call):
            return self.call(fn, value)
        args, kwargs = self.model_args(batch, value)
        return fn(*args, **kwargs)

    def target_of(self, batch: Batch, value: Any) -> Any:
        t = self.targets
        if t == "auto":
            return value[1] if batch.kind == "pair" else value
        if t == "batch":
            return value
        if callable(t):
            return t(value)
        try:
            return value[t]
        except (KeyError, IndexError, TypeError):
            raise ValueError(
                f"`targets` {t!r} is not in the batch; the batch is {batch.describe()}"
            ) from None

    def logits_of(self, output: Any) -> Any:
        how = self.logits
        if callable(how):
            return how(output)
        if how == "auto":
            if isinstance(output, torch.Tensor):
                return output
            found = _attr(output, "logits")
            return output if found is None else found
        found = _attr(output, how.removeprefix("output."))
        if found is None:
            raise ValueError(
                f"`logits` {how!r}: the model output ({type(output).__name__}) has no "
                f"attribute or key {how.removeprefix('output.')!r}"
            )
        return found

    def _tensor_targets(self, target: Any) -> torch.Tensor:
        if isinstance(target, torch.Tensor):
            return target
        labels = _attr(target, "labels") if isinstance(target, Mapping) else None
        if isinstance(labels, torch.Tensor):
            return labels
        raise ValueError(
            "named metrics need target tensors: give (inputs, targets), a batch "
            "with a 'labels' key, or `targets=` naming where they are; got "
            f"{type(target).__name__}"
        )

    def read(
        self, output: Any, batch: Batch, value: Any = None, *, explain: bool = False
    ) -> list[tuple]:
        """``(sum, count)`` tensors of every term and metric on one tile.

        Pure tensor code (``vmap``-able), no data-dependent Python branches.
        ``explain=True`` turns an error inside a term or metric into a
        :class:`ContractError` naming it and the shapes it got (the probe uses
        it; the engine lets the user's own errors through unchanged).
        """
        value = batch.value if value is None else value
        target = self.target_of(batch, value)
        out = []
        for t in self.parts:
            try:
                raw = self._call_term(t, output, target)
            except Exception as exc:
                if isinstance(exc, ContractError) or not explain:
                    raise
                raise ContractError(
                    f"{_what(t, self)} failed on model outputs of "
                    f"{_shape_words(output)} and targets of "
                    f"{_shape_words(target)}: {type(exc).__name__}: {exc}"
                ) from exc
            out.append(_as_parts(raw, t, batch.n, _what(t, self)))
        return out

    def _call_term(self, t: Term, output: Any, target: Any) -> Any:
        if t.builtin:
            return t.fn(self.logits_of(output), self._tensor_targets(target))
        if t.fn == OUTPUT_LOSS:
            raw = _attr(output, "loss")
            if raw is None:
                raise ContractError(
                    f"`loss_fn` {OUTPUT_LOSS!r}: the model output "
                    f"({type(output).__name__}) has no .loss; HuggingFace models "
                    "return one when the batch holds `labels`"
                )
            return raw
        if t in self.metrics:
            return t.fn(self.logits_of(output), target)
        _check_shapes(output, target, t)
        return t.fn(output, target)

    def finish(self, sums: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Field values from totals of shape ``(n_parts, ...)``."""
        vals = {}
        for i, t in enumerate(self.parts):
            if t.reduction == "sum":
                vals[t.name] = sums[i]
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    vals[t.name] = sums[i] / counts[i]
        out: dict[str, np.ndarray] = {}
        if len(self.terms) > 1:
            out["loss"] = sum(t.weight * vals[t.name] for t in self.terms)
            out.update({t.name: vals[t.name] for t in self.terms})
        else:
            t = self.terms[0]
            out["loss"] = t.weight * vals[t.name]
        out.update({m.name: vals[m.name] for m in self.metrics})
        return out


class ContractError(ValueError):
    """A loss term or metric that the batch contract cannot read."""


def _what(t: Term, obj: Objective | None = None) -> str:
    if obj is not None and t in obj.metrics:
        return f"`metrics[{t.name!r}]`"
    return "`loss_fn`" if t.name == "loss" else f"`loss_fn[{t.name!r}]`"


def _shape_words(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)}"
    if isinstance(x, Mapping):
        return f"{type(x).__name__} with keys {list(x)}"
    return type(x).__name__


def _check_shapes(output: Any, target: Any, t: Term) -> None:
    """Refuse outputs and targets that broadcast to a larger tensor, such as
    ``(n, 1)`` against ``(n,)``, which gives an ``n × n`` loss."""
    if not (isinstance(output, torch.Tensor) and isinstance(target, torch.Tensor)):
        return
    if not output.is_floating_point():
        return
    if output.shape == target.shape:
        return
    try:
        joint = torch.broadcast_shapes(output.shape, target.shape)
    except RuntimeError:
        return
    if math.prod(joint) > max(output.numel(), target.numel()):
        raise ContractError(
            f"{_what(t)}: model outputs of shape {tuple(output.shape)} and targets "
            f"of shape {tuple(target.shape)} broadcast to {tuple(joint)}, which "
            "compares every output with every target; reshape one of them (e.g. "
            "outputs.squeeze(-1) or targets.unsqueeze(-1))"
        )


def _as_parts(
    raw: Any, t: Term, rows: int, what: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, count) from what a term returned (see the module documentation)."""
    if isinstance(raw, tuple | list):
        if len(raw) != 2:
            raise ContractError(
                f"{what} returned a {type(raw).__name__} of {len(raw)} items; "
                "return a scalar, per-row values or a (sum, count) pair"
            )
        s, c = (torch.as_tensor(v) for v in raw)
        if s.numel() != 1 or c.numel() != 1:
            raise ContractError(
                f"{what} returned (sum, count) of shapes {tuple(s.shape)} and "
                f"{tuple(c.shape)}; both must be scalars"
            )
        return s.reshape(()), c.reshape(()).to(s.dtype)
    if not isinstance(raw, torch.Tensor):
        if isinstance(raw, int | float):
            raw = torch.as_tensor(float(raw))
        else:
            raise ContractError(
                f"{what} returned a {type(raw).__name__}; return a scalar tensor, "
                "per-row values or a (sum, count) pair"
            )
    if raw.numel() == 1 and raw.dim() <= 1:
        v = raw.reshape(())
        if t.reduction == "mean":
            n = torch.as_tensor(float(rows), dtype=v.dtype, device=v.device)
            return v * n, n
        # "sum": the count is not used; "batch": the value of the one tile
        n = torch.as_tensor(
            float(rows if t.reduction == "sum" else 1), dtype=v.dtype, device=v.device
        )
        return v, n
    if raw.dim() >= 1 and raw.shape[0] == rows:
        c = torch.as_tensor(float(raw.numel()), dtype=raw.dtype, device=raw.device)
        return raw.sum(), c
    raise ContractError(
        f"{what} returned a tensor of shape {tuple(raw.shape)} on a tile of "
        f"{rows} rows; return a scalar, per-row values of shape ({rows}, ...) or a "
        "(sum, count) pair"
    )


def token_cross_entropy(
    *, shift: bool = False, ignore_index: int = IGNORE_INDEX, labels: str = "labels"
) -> Callable[[Any, Any], tuple[torch.Tensor, torch.Tensor]]:
    """A token-level cross-entropy ``loss_fn(output, batch)`` exact over tiles.

    Reads the logits (``output.logits``, or the output itself when it is a
    tensor) and ``batch[labels]`` (or the targets when they are a tensor) and
    returns ``(sum, count)`` over the tokens whose label is not
    ``ignore_index``. ``shift=True`` predicts token ``t + 1`` from position
    ``t``, as HuggingFace's causal language models do; its mean equals their
    ``output.loss`` over the whole data.
    """

    def token_cross_entropy(output: Any, target: Any) -> tuple:
        logits = output if isinstance(output, torch.Tensor) else _attr(output, "logits")
        y = target if isinstance(target, torch.Tensor) else _attr(target, labels)
        if not isinstance(logits, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise ValueError(
                "token_cross_entropy needs logits (a tensor output or output.logits) "
                f"and labels (a tensor target or batch[{labels!r}])"
            )
        if shift:
            logits, y = logits[..., :-1, :], y[..., 1:]
        per = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            y.reshape(-1),
            ignore_index=ignore_index,
            reduction="none",
        ).to(logits.dtype)
        return sum_count(per, y.reshape(-1) != ignore_index)

    return token_cross_entropy
