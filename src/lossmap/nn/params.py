"""The parameter space of a ``torch.nn.Module``.

A :class:`ParamSpace` lists a module's parameters in ``named_parameters()``
order with their shapes and a *kind*:

* ``"norm"``: a parameter of a normalisation layer (BatchNorm, InstanceNorm,
  GroupNorm, LayerNorm, RMSNorm);
* ``"bias"``: any other parameter with at most one dimension;
* ``"weight"``: everything else (linear and convolution kernels, embeddings).

It flattens a ``{name: tensor}`` mapping to one vector in that order and back,
checks that user-supplied tensors fit, and parses single-entry addresses such
as ``"fc1.weight[3, 7]"``. Nothing here changes the module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["ParamInfo", "ParamSpace"]

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
