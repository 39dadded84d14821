"""The machine a measurement ran on, as benchmarks and model cards print it (speed figures mean little without it)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name as lscpu prints it (from /proc/cpuinfo on Linux), and how many cores this process sees."""
    name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({os.cpu_count()} cores)"
