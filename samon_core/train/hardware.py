"""What a number was measured on: CPU model, GPU name, thread count. Every reported figure (run
summaries, benchmarks) names its hardware through these two functions. No torch import here, so
the queue benchmark and the app can use it too."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device) -> str:
    """'NVIDIA H100 ... (CUDA 13.0)' for a CUDA device, else 'CPU model, N threads'."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"{cpu_model()}, {torch.get_num_threads()} threads"
