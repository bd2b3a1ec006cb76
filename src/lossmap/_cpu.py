"""What this CPU can do: its model, vector extensions and native bfloat16.

Read from the flags in ``/proc/cpuinfo`` (Linux), never assumed: a CPU whose
flags cannot be read is *unknown* and treated as having no native bfloat16.
Native bfloat16 on a CPU means matrix units or instructions that compute it
directly — Intel AMX (``amx_bf16`` with ``amx_tile``) or AVX-512-BF16
(``avx512_bf16``; Intel Cooper Lake and later, AMD Zen 4 and later). Without
them torch emulates bfloat16 through float32 conversions and runs slower than
plain float32 (4.5× slower measured on an AVX2 EPYC), so ``precision="bf16"``
is refused there (:func:`require_bf16`).

``LOSSMAP_BF16=1`` or ``=0`` overrides the verdict for the CPU (for a machine
whose flags are hidden, or to measure emulated bfloat16); the override is named
in the reason it gives. This module imports neither torch nor NumPy (the CUDA
answer comes from torch, imported only when a CUDA device is asked about).
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CPUInfo",
    "bf16_status",
    "cpu_info",
    "parse_cpuinfo",
    "require_bf16",
]

#: The vector extensions reported, in order, with the flag that names each.
EXTENSIONS = (
    ("avx2", "avx2"),
    ("fma", "fma"),
    ("avx512f", "avx512f"),
    ("avx512_bf16", "avx512_bf16"),
    ("amx_bf16", "amx_bf16"),
    ("amx_tile", "amx_tile"),
    ("neon", "asimd"),
    ("sve", "sve"),
    ("arm_bf16", "bf16"),
)

_CPUINFO = "/proc/cpuinfo"
_OVERRIDE = "LOSSMAP_BF16"
_ARM_IMPLEMENTERS = {
    "0x41": "ARM",
    "0x48": "HiSilicon",
    "0x61": "Apple",
    "0xc0": "Ampere",
}


@dataclass(frozen=True)
class CPUInfo:
    """A CPU's model and flags; built by :func:`cpu_info` or :func:`parse_cpuinfo`."""

    model: str
    vendor: str
    arch: str
    flags: frozenset[str]
    source: str

    @property
    def known(self) -> bool:
        """Whether any flags were read (False: treat every extension as absent)."""
        return bool(self.flags)

    def has(self, flag: str) -> bool:
        return flag in self.flags

    @property
    def avx2(self) -> bool:
        return self.has("avx2")

    @property
    def avx512f(self) -> bool:
        return self.has("avx512f")

    @property
    def avx512_bf16(self) -> bool:
        return self.has("avx512_bf16")

    @property
    def amx_bf16(self) -> bool:
        """AMX bfloat16 tiles: both the tile architecture and its bf16 unit."""
        return self.has("amx_bf16") and self.has("amx_tile")

    @property
    def vector_extensions(self) -> list[str]:
        """The extensions of :data:`EXTENSIONS` this CPU has, in that order."""
        return [name for name, flag in EXTENSIONS if flag in self.flags]

    @property
    def bf16_native(self) -> bool:
        """Whether this CPU computes bfloat16 matrix products natively."""
        return self.amx_bf16 or self.avx512_bf16

    @property
    def bf16_reason(self) -> str:
        """Why :attr:`bf16_native` is what it is, in words."""
        if self.amx_bf16:
            return "AMX bfloat16 tiles (amx_bf16, amx_tile)"
        if self.avx512_bf16:
            return "AVX-512-BF16 instructions (avx512_bf16)"
        if not self.known:
            return f"the CPU's flags could not be read ({self.source})"
        return "no AMX or AVX-512-BF16 in the CPU's flags; bfloat16 would be emulated"

    def summary(self) -> str:
        """One line for reports, e.g. ``AMD EPYC (x86_64: avx2, avx512f, …)``."""
        ext = ", ".join(self.vector_extensions) or "no vector extensions read"
        bf16 = "native bf16" if self.bf16_native else "no native bf16"
        return f"{self.model} ({self.arch}: {ext}; {bf16})"

    def describe(self) -> dict[str, Any]:
        """JSON-friendly record for benchmark results and metadata."""
        return {
            "model": self.model,
            "vendor": self.vendor,
            "arch": self.arch,
            "vector_extensions": self.vector_extensions,
            "bf16_native": self.bf16_native,
            "bf16_reason": self.bf16_reason,
            "source": self.source,
        }


def parse_cpuinfo(text: str, *, arch: str = "", source: str = "text") -> CPUInfo:
    """A :class:`CPUInfo` from the text of ``/proc/cpuinfo``.

    Uses the first processor's entries: ``model name``, ``vendor_id`` and
    ``flags`` on x86; ``Features`` and ``CPU implementer``/``CPU part`` on ARM.
    """
    if not isinstance(text, str):
        raise TypeError(
            f"`text` must be the text of /proc/cpuinfo, got {type(text).__name__}"
        )
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key and key not in fields:
            fields[key] = value.strip()
    flags = fields.get("flags") or fields.get("features") or ""
    vendor = fields.get("vendor_id", "")
    model = fields.get("model name", "")
    if not arch:
        arch = "x86_64" if "flags" in fields else ""
        arch = arch or ("aarch64" if "features" in fields else "")
    if not vendor and "cpu implementer" in fields:
        code = fields["cpu implementer"].lower()
        vendor = _ARM_IMPLEMENTERS.get(code, f"implementer {code}")
    if not model and "cpu part" in fields:
        model = f"{vendor} part {fields['cpu part']}".strip()
    return CPUInfo(
        model=model or "unknown CPU",
        vendor=vendor or "unknown",
        arch=arch or "unknown",
        flags=frozenset(flags.lower().split()),
        source=source,
    )


@functools.lru_cache(maxsize=1)
def _detect() -> CPUInfo:
    arch = platform.machine()
    try:
        with open(_CPUINFO, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        # macOS, Windows or a sandbox: model name only, no flags
        model = platform.processor() or "unknown CPU"
        return CPUInfo(model, "unknown", arch or "unknown", frozenset(), "platform")
    return parse_cpuinfo(text, arch=arch, source=_CPUINFO)


def cpu_info() -> CPUInfo:
    """This machine's CPU (read once, then cached)."""
    return _detect()


def bf16_status(device: Any = "cpu") -> tuple[bool, str]:
    """``(native, reason)`` for bfloat16 on ``device`` (a torch device or its name).

    CPU: :attr:`CPUInfo.bf16_native`, unless ``LOSSMAP_BF16`` is ``1`` or ``0``.
    CUDA: ``torch.cuda.is_bf16_supported()`` (Ampere and later). Anything else
    is not known to compute bfloat16 natively.
    """
    kind = str(getattr(device, "type", device)).split(":")[0]
    if kind == "cpu":
        override = os.environ.get(_OVERRIDE, "").strip()
        if override in ("0", "1"):
            return override == "1", f"set by {_OVERRIDE}={override}"
        info = cpu_info()
        return info.bf16_native, f"{info.model}: {info.bf16_reason}"
    if kind == "cuda":
        import torch  # only reached from torch code: the model is on a GPU

        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported():
            return True, f"{name}: bfloat16 supported by the GPU"
        return False, f"{name}: the GPU has no native bfloat16 (needs Ampere or later)"
    return False, f"no native bfloat16 known for device type {kind!r}"


def require_bf16(device: Any = "cpu") -> str:
    """Return the reason bfloat16 is native on ``device``; raise if it is not.

    Raises
    ------
    ValueError
        Naming ``precision``, what it needs and what this machine has.
    """
    native, reason = bf16_status(device)
    if not native:
        raise ValueError(
            "`precision` 'bf16' needs native bfloat16 (a CPU with AMX or "
            f"AVX-512-BF16, or a CUDA GPU from Ampere on), got {reason}; it would "
            "be slower than float here. Use precision='float' (or set "
            f"{_OVERRIDE}=1 to run emulated bfloat16 anyway)"
        )
    return reason
