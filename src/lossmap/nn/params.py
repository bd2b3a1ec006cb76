"""The parameter space of a ``torch.nn.Module``.

A :class:`ParamSpace` lists a module's parameters in ``named_parameters()``
order with their shapes and a *kind*:

* ``"norm"``: a parameter of a normalisation layer (BatchNorm, InstanceNorm,
  GroupNorm, LayerNorm, RMSNorm);
* ``"bias"``: any other parameter with at most one dimension;
* ``"weight"``: everything else (linear and convolution kernels, embeddings).

It flattens a ``{name: tensor}`` mapping to one vector in that order and back,
checks that user-supplied tensors fit, and parses single-entry addresses such
as ``"fc1.weight[3, 7]"``.

:func:`select` turns a *parameter selection* into the set of parameter names
it covers, so that every direction kind, plane, line, PCA and the Hessian can
work on a subset (one layer, one block, the attention weights, LoRA adapters)
with everything else fixed; :func:`describe_selection` says it in words for
metadata, figures and ``lossmap info``. Nothing here changes the module.
"""

from __future__ import annotations

import fnmatch
import re
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["ParamInfo", "ParamSpace", "describe_selection", "select", "selection_meta"]

_NORM_TYPES: tuple[type, ...] = tuple(
    t
    for t in (
        getattr(nn.modules.batchnorm, "_NormBase", None),
        nn.GroupNorm,
        nn.LayerNorm,
        getattr(nn, "RMSNorm", None),
        nn.LocalResponseNorm,
    )
    if t is not None
)

_ENTRY = re.compile(r"^\s*(\w[\w.]*)\s*(?:\[([^\]]*)\])?\s*$")


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a space.

    Attributes
    ----------
    name : str
        Qualified name, as in ``model.named_parameters()``.
    shape : tuple of int
        Its shape.
    offset : int
        Position of its first entry in the flat vector.
    kind : {"weight", "bias", "norm"}
        See the module docstring.
    module : str
        Class name of the module that owns it.
    """

    name: str
    shape: tuple[int, ...]
    offset: int
    kind: str
    module: str

    @property
    def numel(self) -> int:
        """Number of entries."""
        n = 1
        for s in self.shape:
            n *= s
        return n


class ParamSpace:
    """Names, shapes and kinds of a module's parameters, in a fixed order.

    Parameters
    ----------
    model : torch.nn.Module
        The module to describe. Only read.

    Examples
    --------
    >>> import torch
    >>> space = ParamSpace(torch.nn.Linear(3, 2))
    >>> space.names, space.size
    (('weight', 'bias'), 8)
    >>> space.kind("bias")
    'bias'
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"`model` must be a torch.nn.Module, got {type(model).__name__}"
            )
        owners: dict[str, nn.Module] = {}
        for mod_name, module in model.named_modules():
            for p_name, _ in module.named_parameters(recurse=False):
                full = f"{mod_name}.{p_name}" if mod_name else p_name
                owners.setdefault(full, module)
        infos: list[ParamInfo] = []
        offset = 0
        dtype = device = None
        for name, p in model.named_parameters():
            owner = owners.get(name, model)
            if isinstance(owner, _NORM_TYPES):
                kind = "norm"
            elif p.dim() <= 1:
                kind = "bias"
            else:
                kind = "weight"
            infos.append(
                ParamInfo(name, tuple(p.shape), offset, kind, type(owner).__name__)
            )
            offset += p.numel()
            if dtype is None:
                dtype, device = p.dtype, p.device
        if not infos:
            raise ValueError("`model` has no parameters to move")
        self._infos = tuple(infos)
        self._by_name = {i.name: i for i in infos}
        self.size = offset
        self.dtype: torch.dtype = dtype
        self.device: torch.device = device
        self._model = weakref.ref(model)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_model"] = None  # a weak reference does not pickle
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._model is None:
            self._model = lambda: None

    @property
    def model(self) -> nn.Module | None:
        """The module this space describes, while it is alive (else None)."""
        return self._model()

    # ------------------------------------------------------------------ access
    @property
    def infos(self) -> tuple[ParamInfo, ...]:
        """One :class:`ParamInfo` per parameter, in order."""
        return self._infos

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in order."""
        return tuple(i.name for i in self._infos)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of each parameter, by name."""
        return {i.name: i.shape for i in self._infos}

    def __len__(self) -> int:
        return len(self._infos)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> ParamInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"{name!r} is not a parameter of the model; parameters are "
                f"{_short(self.names)}"
            ) from None

    def kind(self, name: str) -> str:
        """``"weight"``, ``"bias"`` or ``"norm"``."""
        return self[name].kind

    def names_of_kind(self, *kinds: str) -> tuple[str, ...]:
        """Names of the parameters of the given kinds."""
        return tuple(i.name for i in self._infos if i.kind in kinds)

    def __repr__(self) -> str:
        return f"ParamSpace({len(self)} tensors, {self.size} values)"

    # -------------------------------------------------------------- conversion
    def values(
        self, model: nn.Module, *, dtype: torch.dtype | None = None
    ) -> dict[str, torch.Tensor]:
        """Detached copies of ``model``'s parameter values, by name."""
        params = dict(model.named_parameters())
        self.check(params, what="model parameters", complete=True)
        return {
            n: params[n].detach().to(dtype=dtype or params[n].dtype).clone()
            for n in self.names
        }

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate ``tensors`` in parameter order, shape ``(size,)``.

        Missing names count as zeros.
        """
        self.check(tensors)
        ref = next(iter(tensors.values()), None)
        dtype = ref.dtype if ref is not None else self.dtype
        device = ref.device if ref is not None else self.device
        parts = [
            tensors[i.name].reshape(-1).to(dtype=dtype, device=device)
            if i.name in tensors
            else torch.zeros(i.numel, dtype=dtype, device=device)
            for i in self._infos
        ]
        return torch.cat(parts)

    def unflatten(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split a vector of shape ``(size,)`` into one tensor per parameter."""
        if not isinstance(vector, torch.Tensor):
            vector = torch.as_tensor(vector)
        if vector.dim() != 1 or vector.numel() != self.size:
            raise ValueError(
                f"`vector` must have shape ({self.size},) (one value per model "
                f"parameter), got {tuple(vector.shape)}"
            )
        return {
            i.name: vector[i.offset : i.offset + i.numel].reshape(i.shape)
            for i in self._infos
        }

    def zeros(
        self, *, dtype: torch.dtype | None = None, device: Any = None
    ) -> dict[str, torch.Tensor]:
        """A zero tensor for every parameter."""
        return {
            i.name: torch.zeros(
                i.shape, dtype=dtype or self.dtype, device=device or self.device
            )
            for i in self._infos
        }

    # ------------------------------------------------------------------ checks
    def check(
        self,
        tensors: Mapping[str, Any],
        *,
        what: str = "tensors",
        complete: bool = False,
    ) -> None:
        """Raise if ``tensors`` names an unknown parameter or has a wrong shape."""
        if not isinstance(tensors, Mapping):
            raise TypeError(
                f"`{what}` must be a mapping of parameter name to tensor, got "
                f"{type(tensors).__name__}"
            )
        for name, t in tensors.items():
            if name not in self._by_name:
                raise ValueError(
                    f"`{what}` names {name!r}, which is not a parameter of the "
                    f"model; parameters are {_short(self.names)}"
                )
            shape = tuple(getattr(t, "shape", ()))
            if shape != self._by_name[name].shape:
                raise ValueError(
                    f"`{what}`[{name!r}] must have shape "
                    f"{self._by_name[name].shape}, got {shape}"
                )
        if complete:
            missing = [n for n in self.names if n not in tensors]
            if missing:
                raise ValueError(
                    f"`{what}` lacks parameter(s) {_short(tuple(missing))}"
                )

    def entry(self, spec: str) -> tuple[str, tuple[int, ...]]:
        """Parse ``"fc1.weight[3, 7]"`` into ``("fc1.weight", (3, 7))``.

        Negative indices count from the end. A parameter with one entry may be
        named without an index.
        """
        if not isinstance(spec, str):
            raise TypeError(
                f"a parameter entry must be a string like 'fc1.weight[3, 7]', "
                f"got {spec!r}"
            )
        m = _ENTRY.match(spec)
        if m is None:
            raise ValueError(
                f"cannot parse parameter entry {spec!r}; expected e.g. "
                f"'fc1.weight[3, 7]'"
            )
        name, idx_text = m.group(1), m.group(2)
        info = self[name]
        if idx_text is None or not idx_text.strip():
            if info.numel != 1:
                raise ValueError(
                    f"parameter entry {spec!r} needs an index: {name!r} has "
                    f"shape {info.shape}"
                )
            return name, (0,) * len(info.shape)
        try:
            idx = tuple(int(s) for s in idx_text.split(",") if s.strip())
        except ValueError:
            raise ValueError(
                f"the index of parameter entry {spec!r} must be integers"
            ) from None
        if len(idx) != len(info.shape):
            raise ValueError(
                f"parameter entry {spec!r} must have {len(info.shape)} "
                f"index(es) for shape {info.shape}, got {len(idx)}"
            )
        out = []
        for i, n in zip(idx, info.shape):
            if not -n <= i < n:
                raise ValueError(
                    f"index {i} of parameter entry {spec!r} is out of range for "
                    f"shape {info.shape}"
                )
            out.append(i % n)
        return name, tuple(out)


def _short(names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    text = ", ".join(repr(n) for n in names[:limit])
    if len(names) > limit:
        text += f", … ({len(names)} in all)"
    return f"[{text}]"


# ---------------------------------------------------------------- selections
#: What ``params=`` accepts, for error messages.
_SPEC_TEXT = (
    "None (all parameters), a parameter or module name, an fnmatch pattern "
    "such as '*.attn.*', a compiled regular expression (re.compile(...), "
    "matched against whole names), a submodule of the model, a callable "
    "(name, tensor) -> bool, or a list of these"
)


@dataclass(frozen=True)
class _Source:
    """What a selection is resolved against."""

    names: tuple[str, ...]
    shapes: dict[str, tuple[int, ...]]
    tensors: Mapping[str, torch.Tensor] | None
    root: nn.Module | None


def _source(obj: Any) -> _Source:
    if isinstance(obj, nn.Module):
        params = dict(obj.named_parameters())
        return _Source(
            tuple(params), {n: tuple(p.shape) for n, p in params.items()}, params, obj
        )
    if isinstance(obj, ParamSpace):
        root = obj.model
        params = dict(root.named_parameters()) if root is not None else None
        return _Source(obj.names, obj.shapes, params, root)
    if isinstance(obj, Mapping):
        shapes = {str(n): tuple(getattr(t, "shape", ())) for n, t in obj.items()}
        return _Source(tuple(shapes), shapes, obj, None)
    raise TypeError(
        f"`model` must be a torch.nn.Module, a ParamSpace or a mapping of "
        f"parameter name to tensor, got {type(obj).__name__}"
    )


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def _callable_name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _submodule(root: nn.Module, name: str) -> nn.Module | None:
    try:
        return root.get_submodule(name)
    except AttributeError:
        return None


def _module_name(root: nn.Module, module: nn.Module) -> str | None:
    for name, m in root.named_modules(remove_duplicate=False):
        if m is module:
            return name
    return None


def _match(src: _Source, item: Any, what: str) -> list[str]:
    """Names one item of a selection covers; raises when it covers none."""
    if isinstance(item, str):
        if item in src.shapes:
            return [item]
        if _has_glob(item):
            hits = [n for n in src.names if fnmatch.fnmatchcase(n, item)]
        elif src.root is not None and _submodule(src.root, item) is not None:
            # by identity, so a module whose weights are tied to another's
            # (listed once, under the first name) still finds them
            return _match(src, _submodule(src.root, item), what)
        else:  # a module name: its parameters
            hits = [n for n in src.names if n.startswith(item + ".")]
        if not hits:
            raise ValueError(
                f"`{what}` entry {item!r} matches no parameter of the model "
                f"(an entry is a parameter name, a module name or an fnmatch "
                f"pattern such as '*.attn.*'); parameters are {_short(src.names)}"
            )
        return hits
    if isinstance(item, re.Pattern):
        if not isinstance(item.pattern, str):
            raise TypeError(
                f"`{what}` regular expression must be of str, got "
                f"{type(item.pattern).__name__}"
            )
        hits = [n for n in src.names if item.fullmatch(n)]
        if not hits:
            raise ValueError(
                f"`{what}` regular expression {item.pattern!r} matches no "
                f"parameter name in full (re.fullmatch); parameters are "
                f"{_short(src.names)}"
            )
        return hits
    if isinstance(item, nn.Module):
        if src.root is None:
            raise TypeError(
                f"`{what}` holds a module ({type(item).__name__}), which can be "
                f"resolved only against the model; resolve it first with "
                f"lossmap.nn.select(model, module) and pass the names"
            )
        if _module_name(src.root, item) is None:
            raise ValueError(
                f"`{what}` holds a {type(item).__name__} module that is not a "
                f"submodule of the model"
            )
        ids = {id(p) for p in item.parameters()}
        hits = [n for n, p in src.root.named_parameters() if id(p) in ids]
        if not hits:
            raise ValueError(
                f"`{what}` holds a {type(item).__name__} submodule without parameters"
            )
        return hits
    if callable(item):
        if src.tensors is None:
            raise TypeError(
                f"`{what}` holds a callable, which needs the parameter values; "
                f"pass the model instead of a ParamSpace whose model is gone"
            )
        hits = []
        for n in src.names:
            keep = item(n, src.tensors[n])
            if isinstance(keep, torch.Tensor) and keep.numel() == 1:
                keep = bool(keep)
            if not isinstance(keep, bool) and type(keep).__name__ != "bool_":
                raise TypeError(
                    f"`{what}` callable {_callable_name(item)} must return True "
                    f"or False, got {type(keep).__name__} for {n!r}"
                )
            if keep:
                hits.append(n)
        if not hits:
            raise ValueError(
                f"`{what}` callable {_callable_name(item)} selects no parameter "
                f"of the model"
            )
        return hits
    raise TypeError(f"`{what}` must be {_SPEC_TEXT}; got {type(item).__name__}")


def _items(spec: Any, what: str) -> list[Any]:
    if isinstance(spec, list | tuple | set | frozenset):
        items = sorted(spec) if isinstance(spec, set | frozenset) else list(spec)
        if not items:
            raise ValueError(f"`{what}` is an empty list; it would select nothing")
        for item in items:
            if isinstance(item, list | tuple | set | frozenset):
                raise TypeError(f"`{what}` must be {_SPEC_TEXT}; got a nested list")
        return items
    return [spec]


def select(model_or_space: Any, spec: Any, *, what: str = "params") -> frozenset[str]:
    """The names of the parameters a selection covers.

    Parameters
    ----------
    model_or_space : torch.nn.Module, ParamSpace or mapping of name to tensor
        What the selection is resolved against. Module entries need the model
        (or a ParamSpace of a live model).
    spec : selection
        ``None``: every parameter. A string: a parameter name
        (``"fc1.weight"``), a module name (``"encoder.layer.0"``: its
        parameters) or an fnmatch pattern on the dotted names
        (``"*.attn.*"``, ``"*lora_[AB]*"``). A compiled regular expression
        (``re.compile("layer[.][0-3][.].*")``): the names it matches in full
        (``re.fullmatch``). A submodule of the model: its
        parameters. A callable ``(name, tensor) -> bool``. A list, tuple or
        set of these: their union (so ``select``'s own result can be passed
        back). Tied (shared) parameters are listed once, under their first
        name, as by ``named_parameters()``; a module name or module still
        finds them.
    what : str, default "params"
        The argument's name in error messages.

    Returns
    -------
    frozenset of str

    Raises
    ------
    ValueError
        An entry matches no parameter, or a module is not part of the model.
    TypeError
        ``spec`` (or an entry) is of a type listed nowhere above.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
    ...                           torch.nn.Linear(4, 1))
    >>> sorted(select(net, "0"))
    ['0.bias', '0.weight']
    >>> sorted(select(net, ["*.weight", net[2]]))
    ['0.weight', '2.bias', '2.weight']
    >>> sorted(select(net, lambda name, t: t.dim() == 1))
    ['0.bias', '2.bias']
    """
    src = _source(model_or_space)
    if spec is None:
        return frozenset(src.names)
    out: set[str] = set()
    for item in _items(spec, what):
        out.update(_match(src, item, what))
    return frozenset(out)


def _words(src: _Source, item: Any) -> str:
    if isinstance(item, str):
        if item in src.shapes:
            return f"parameter {item!r}"
        if _has_glob(item):
            return f"parameters matching {item!r}"
        return f"parameters of {item!r}"
    if isinstance(item, re.Pattern):
        return f"parameters matching the regular expression {item.pattern!r}"
    if isinstance(item, nn.Module):
        name = _module_name(src.root, item) if src.root is not None else None
        if name == "":
            return "all parameters of the model"
        return f"parameters of {name!r} ({type(item).__name__})"
    return f"parameters chosen by {_callable_name(item)}"


def _spec_json(src: _Source, item: Any) -> Any:
    if isinstance(item, str):
        return item
    if isinstance(item, re.Pattern):
        return {"regex": item.pattern}
    if isinstance(item, nn.Module):
        name = _module_name(src.root, item) if src.root is not None else None
        return {"module": name, "type": type(item).__name__}
    return {"callable": _callable_name(item)}


def describe_selection(model_or_space: Any, spec: Any) -> str:
    """A selection in plain words, with its size.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
    ...                           torch.nn.Linear(4, 1))
    >>> describe_selection(net, "*.weight")
    "parameters matching '*.weight' (2 tensors, 16 values)"
    >>> describe_selection(net, None)
    'all parameters (4 tensors, 21 values)'
    """
    src = _source(model_or_space)
    names = select(model_or_space, spec)
    if spec is None:
        words = "all parameters"
    else:
        words = " or ".join(
            dict.fromkeys(_words(src, i) for i in _items(spec, "params"))
        )
        if isinstance(spec, set | frozenset) and len(spec) > 3:
            words = f"{len(spec)} named parameters"
    n_values = sum(_numel(src.shapes[n]) for n in names)
    plural = "" if len(names) == 1 else "s"
    return f"{words} ({len(names):,} tensor{plural}, {n_values:,} values)"


def selection_meta(model_or_space: Any, spec: Any) -> dict[str, Any] | None:
    """A JSON-friendly record of a selection (None when ``spec`` is None).

    Keys: ``spec`` (strings kept; a module as its name and type; a callable
    as its name), ``names`` (in parameter order, so the selection can be
    rebuilt), ``n_tensors``, ``n_values`` and ``description``
    (:func:`describe_selection`).
    """
    if spec is None:
        return None
    src = _source(model_or_space)
    chosen = select(model_or_space, spec)
    items = [_spec_json(src, i) for i in _items(spec, "params")]
    names = [n for n in src.names if n in chosen]
    return {
        "spec": items[0]
        if len(items) == 1 and not isinstance(spec, list | tuple | set | frozenset)
        else items,
        "names": names,
        "n_tensors": len(names),
        "n_values": sum(_numel(src.shapes[n]) for n in names),
        "description": describe_selection(model_or_space, spec),
    }


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
