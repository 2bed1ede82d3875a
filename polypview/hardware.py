"""What the machine is, in words, for benchmarks and ``polypview info``."""

from __future__ import annotations

import platform
from pathlib import Path

# Instruction sets that decide CPU inference speed, strongest first within each family.
VECTOR_UNITS = [("avx512f", "AVX-512"), ("avx2", "AVX2")]
LOW_PRECISION_UNITS = [("amx_bf16", "AMX"), ("avx512_bf16", "BF16"), ("avx512_vnni", "VNNI")]


def cpu_fields() -> dict[str, str]:
    """The first processor's entries in /proc/cpuinfo (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    first_cpu = cpuinfo.read_text().split("\n\n")[0] if cpuinfo.exists() else ""
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in first_cpu.splitlines())
    }


def cpu_flags() -> set[str]:
    return set(cpu_fields().get("flags", "").split())


def cpu_name() -> str:
    """The CPU model and the vector units that matter for inference: 'AMD EPYC (AVX-512, BF16)'."""
    name = cpu_fields().get("model name") or platform.processor() or platform.machine()
    flags = cpu_flags()
    units = [label for flag, label in VECTOR_UNITS if flag in flags][:1]
    units += [label for flag, label in LOW_PRECISION_UNITS if flag in flags][:1]
    return f"{name} ({', '.join(units)})" if units else name


def resident_memory_mb() -> float:
    """This process's resident memory now, for soak runs (Linux; peak memory elsewhere)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
