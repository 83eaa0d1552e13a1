"""The CPU class of a machine, and the model format recommended for each class (#39).

A class is what decides which XNNPACK kernels run an int8 or float model: on x86, VNNI
(AVX-512 VNNI or AVX-VNNI) gives int8 dot products in one instruction, AVX2 alone does
not; on arm64, the dot-product extension (``asimddp``) plays VNNI's part. The table
RECOMMENDED is the single place the recommendation lives; the figures behind each row
are in studies/performance/README.md (measured ones name their machine; the others say
they were not measured).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

CPU_CLASSES = ("cpu-vnni", "cpu-avx512", "cpu-avx2", "cpu-x86", "arm64-dot", "arm64", "other")
EXPORT_TARGETS = ("cpu-vnni", "cpu-avx2", "arm64", "auto")  # edgeshop-export --for


@dataclass(frozen=True)
class Recommendation:
    format: str  # an edgeshop-export format: int8, float16, float32, dynamic
    evidence: str  # where the figure comes from, with its machine, or "not measured"


RECOMMENDED: dict[str, Recommendation] = {
    "cpu-vnni": Recommendation(
        "int8", "measured on a 2-core AMD EPYC (Zen 4, AVX-512 VNNI): int8 invoke 0.46x float32 at 1 thread, "
        "same top-1 (studies/performance)"),
    "cpu-avx512": Recommendation(
        "int8", "not measured: AVX-512 without VNNI runs XNNPACK's AVX-512 int8 kernels; check with edgeshop-bench"),
    "cpu-avx2": Recommendation(
        "float16", "measured on a 2-core AMD EPYC with AVX2 only (studies/performance): int8 1.11x / 1.09x float32 "
        "(1 / 2 threads), int8 / float16 1.06x / 0.96x; float16 is float32's speed at half its size. "
        "Dynamic-range not measured on AVX2"),
    "cpu-x86": Recommendation("float16", "not measured: x86 without AVX2"),
    "arm64-dot": Recommendation(
        "int8", "not measured here (the arm64 chroot runs under qemu, no device times): NEON dot-product "
        "int8 kernels"),
    "arm64": Recommendation(
        "int8", "not measured here (qemu chroot): Cortex-A72 (Raspberry Pi 4) has no dot product; "
        "XNNPACK's NEON int8 kernels still multiply 8-bit values"),
    "other": Recommendation("float16", "not measured: unknown CPU"),
}
TARGET_CLASS = {"cpu-vnni": "cpu-vnni", "cpu-avx2": "cpu-avx2", "arm64": "arm64"}  # --for value -> class


def detect_cpu_class(cpuinfo: str | None = None, machine: str | None = None) -> str:
    """The class of this machine from /proc/cpuinfo's flags (x86) or Features (arm64) line.

    ``cpuinfo`` and ``machine`` (platform.machine()) are for tests; by default this machine's."""
    if machine is None:
        machine = platform.machine()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:  # macOS, Windows: no /proc
            cpuinfo = ""
    flags = _flags(cpuinfo)
    arch = machine.lower()
    if arch in ("aarch64", "arm64") or "asimd" in flags:
        return "arm64-dot" if "asimddp" in flags else "arm64"
    if arch in ("x86_64", "amd64", "i686", "x86") or "sse2" in flags:
        if "avx512_vnni" in flags or "avx_vnni" in flags:
            return "cpu-vnni"
        if "avx512f" in flags:
            return "cpu-avx512"
        return "cpu-avx2" if "avx2" in flags else "cpu-x86"
    return "other"


def _flags(cpuinfo: str) -> set[str]:
    """The first core's feature words ("flags" on x86, "Features" on arm64)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def recommended_format(target: str = "auto") -> tuple[str, Recommendation]:
    """(CPU class, its Recommendation) for an edgeshop-export --for value ("auto": this machine)."""
    if target not in EXPORT_TARGETS:
        raise ValueError(f"--for must be one of {', '.join(EXPORT_TARGETS)}; got {target!r}")
    cpu = detect_cpu_class() if target == "auto" else TARGET_CLASS[target]
    return cpu, RECOMMENDED[cpu]
