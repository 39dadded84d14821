"""The machine a measurement ran on, as benchmarks and model cards print it (speed figures mean little without it)."""
from __future__ import annotations

import os
import platform
from pathlib import Path

# the widest vector unit the CPU reports, first match wins: what decides which fast paths pay (README "Training speed")
VECTOR_UNITS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def describe_cpuinfo(text: str) -> str:
    """'<model name>, family F model M, <vector unit>' from /proc/cpuinfo's first processor. Virtual machines often
    name every AMD EPYC alike, so family and model (25/1: Zen 3, 25/17: Zen 4) and the vector unit tell them apart."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor only
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    parts = [fields.get("model name", "")]
    if "cpu family" in fields and "model" in fields:
        parts.append(f"family {fields['cpu family']} model {fields['model']}")
    flags = set(fields.get("flags", "").split())
    parts += [name for flag, name in VECTOR_UNITS if flag in flags][:1]
    return ", ".join(p for p in parts if p)


def cpu_name() -> str:
    """The CPU as describe_cpuinfo names it (Linux; elsewhere what platform knows), and how many cores this process sees."""
    name = ""
    try:
        name = describe_cpuinfo(Path("/proc/cpuinfo").read_text())
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine() or 'unknown CPU'} ({os.cpu_count()} cores)"
