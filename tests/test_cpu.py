"""Capability detection (lossmap._cpu): this machine's flags and canned CPUs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lossmap import _cpu

INTEL_AMX = """\
processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model		: 143
model name	: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags		: fpu vme sse sse2 avx f16c fma avx2 avx512f avx512dq avx512cd avx512bw \
avx512vl avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8 arch_perfmon

processor	: 1
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz
flags		: fpu vme sse sse2
"""

AMD_AVX2 = """\
processor	: 0
vendor_id	: AuthenticAMD
cpu family	: 25
model		: 1
model name	: AMD EPYC 7B13
flags		: fpu vme de pse tsc msr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c \
avx2 bmi2 sha_ni clzero
"""

INTEL_AVX512_NO_BF16 = """\
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
flags		: fpu sse sse2 avx fma avx2 avx512f avx512dq avx512_vnni amx_tile
"""

AMD_ZEN4 = """\
vendor_id	: AuthenticAMD
model name	: AMD EPYC 9654 96-Core Processor
flags		: fpu sse avx fma avx2 avx512f avx512_bf16 avx512_vnni
"""

ARM_GRAVITON3 = """\
processor	: 0
BogoMIPS	: 2100.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid \
asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat \
ilrcpc flagm ssbs paca pacg dcpodp svei8mm svebf16 i8mm bf16 dgh rng
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x1
CPU part	: 0xd40
CPU revision	: 1
"""


@pytest.mark.parametrize(
    ("text", "model", "ext", "native"),
    [
        (
            INTEL_AMX,
            "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz",
            ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"],
            True,
        ),
        (AMD_AVX2, "AMD EPYC 7B13", ["avx2", "fma"], False),
        (
            INTEL_AVX512_NO_BF16,
            "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
            ["avx2", "fma", "avx512f", "amx_tile"],
            False,
        ),
        (
            AMD_ZEN4,
            "AMD EPYC 9654 96-Core Processor",
            ["avx2", "fma", "avx512f", "avx512_bf16"],
            True,
        ),
        # ARM's bf16 instructions are reported, but torch is not known to gain
        # from them on CPU: not counted as native
        (ARM_GRAVITON3, "ARM part 0xd40", ["neon", "sve", "arm_bf16"], False),
    ],
    ids=["intel-amx", "amd-avx2", "intel-avx512-no-bf16", "amd-zen4", "arm"],
)
def test_canned_cpus(text, model, ext, native):
    info = _cpu.parse_cpuinfo(text)
    assert info.model == model
    assert info.vector_extensions == ext
    assert info.bf16_native is native
    assert info.known
    tail = "; native bf16)" if native else "; no native bf16)"
    assert info.summary().endswith(tail)


def test_canned_details():
    amx = _cpu.parse_cpuinfo(INTEL_AMX)
    assert (amx.vendor, amx.arch) == ("GenuineIntel", "x86_64")
    assert all([amx.amx_bf16, amx.avx512_bf16, amx.avx512f, amx.avx2])
    assert "AMX" in amx.bf16_reason
    # only the first processor's flags count (the second block lists fewer)
    assert "avx2" in amx.flags
    zen4 = _cpu.parse_cpuinfo(AMD_ZEN4)
    assert not zen4.amx_bf16
    assert "AVX-512-BF16" in zen4.bf16_reason
    avx2 = _cpu.parse_cpuinfo(AMD_AVX2)
    assert not avx2.avx512f
    assert "emulated" in avx2.bf16_reason
    # amx_tile alone (no amx_bf16) is not a bfloat16 unit
    assert not _cpu.parse_cpuinfo(INTEL_AVX512_NO_BF16).amx_bf16
    arm = _cpu.parse_cpuinfo(ARM_GRAVITON3)
    assert (arm.vendor, arm.arch) == ("ARM", "aarch64")
    assert arm.describe()["vector_extensions"] == ["neon", "sve", "arm_bf16"]


@pytest.mark.parametrize("text", ["", "garbage without colons\n", "processor\t: 0\n"])
def test_unknown_cpu_has_no_native_bf16(text):
    info = _cpu.parse_cpuinfo(text)
    assert not info.known
    assert info.model == "unknown CPU"
    assert info.vector_extensions == []
    assert not info.bf16_native
    assert "could not be read" in info.bf16_reason


def test_parse_rejects_non_text():
    with pytest.raises(TypeError, match="`text` must be the text of /proc/cpuinfo"):
        _cpu.parse_cpuinfo(b"flags: avx2")


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs /proc/cpuinfo")
def test_this_machine_matches_an_independent_read():
    text = Path("/proc/cpuinfo").read_text()
    # independent parse: first "flags"/"Features" line and first "model name"
    m = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.M)
    flags = set(m.group(1).split()) if m else set()
    name = re.search(r"^model name\s*:\s*(.*?)\s*$", text, re.M)
    info = _cpu.cpu_info()
    assert info.source == "/proc/cpuinfo"
    if name:
        assert info.model == name.group(1)
    assert info.avx2 == ("avx2" in flags)
    assert info.avx512f == ("avx512f" in flags)
    assert info.avx512_bf16 == ("avx512_bf16" in flags)
    assert info.amx_bf16 == ({"amx_bf16", "amx_tile"} <= flags)
    expected = {"amx_bf16", "amx_tile"} <= flags or "avx512_bf16" in flags
    assert info.bf16_native == expected
    assert _cpu.cpu_info() is info  # read once


def test_status_and_require(monkeypatch):
    monkeypatch.delenv("LOSSMAP_BF16", raising=False)
    monkeypatch.setattr(_cpu, "cpu_info", lambda: _cpu.parse_cpuinfo(AMD_AVX2))
    native, why = _cpu.bf16_status("cpu")
    assert not native
    assert why.startswith("AMD EPYC 7B13: no AMX or AVX-512-BF16")
    msg = r"`precision` 'bf16' needs native bfloat16.*got AMD EPYC 7B13"
    with pytest.raises(ValueError, match=msg):
        _cpu.require_bf16("cpu")
    monkeypatch.setattr(_cpu, "cpu_info", lambda: _cpu.parse_cpuinfo(INTEL_AMX))
    assert "AMX" in _cpu.require_bf16("cpu")

    class Dev:  # a torch.device stand-in
        type = "cpu"

    assert _cpu.bf16_status(Dev())[0]
    # unknown CPUs and unknown devices: no
    monkeypatch.setattr(_cpu, "cpu_info", lambda: _cpu.parse_cpuinfo(""))
    assert not _cpu.bf16_status("cpu")[0]
    assert _cpu.bf16_status("mps") == (
        False,
        "no native bfloat16 known for device type 'mps'",
    )


@pytest.mark.parametrize(("value", "native"), [("1", True), ("0", False)])
def test_override(monkeypatch, value, native):
    # the override wins over what the flags say, either way
    text = AMD_ZEN4 if value == "0" else AMD_AVX2
    monkeypatch.setattr(_cpu, "cpu_info", lambda: _cpu.parse_cpuinfo(text))
    monkeypatch.setenv("LOSSMAP_BF16", value)
    assert _cpu.bf16_status("cpu") == (native, f"set by LOSSMAP_BF16={value}")
    # anything else is ignored
    monkeypatch.setenv("LOSSMAP_BF16", "yes")
    assert _cpu.bf16_status("cpu")[0] is (value == "0")


def test_import_is_torch_free():
    code = (
        "import sys, lossmap._cpu as c; c.cpu_info().summary(); c.bf16_status('cpu');"
        "bad=[m for m in ('torch',) if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
