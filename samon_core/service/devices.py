"""Devices of the workers, found without torch: the GPUs, else the CPU; and the worker slots.

A device entry is ``"cpu"`` or a ``CUDA_VISIBLE_DEVICES`` entry (GPU index or UUID); the pool
pins each worker process to its entry before torch is imported there. ``worker_slots`` repeats
each entry ``workers_per_device`` times (one slot = one worker process); "auto" asks
``capacity.py`` how many fit, from the free memory ``nvidia-smi`` reports.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence

from samon_core.service.capacity import GiB, auto_worker_bytes, workers_for_device
from samon_core.service.settings import DevicePolicy, Settings

log = logging.getLogger("samon.pool")

_GPU_ID_RE = re.compile(r"^([0-9]{1,3}|(GPU|MIG)-[A-Za-z0-9/-]{1,80})$")


def detect_gpus() -> list[str]:
    """CUDA devices of this machine as ``CUDA_VISIBLE_DEVICES`` entries, without importing torch:
    the entries of ``CUDA_VISIBLE_DEVICES`` if it is set, else the GPU indices that
    ``nvidia-smi -L`` lists, else none."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = []
        for entry in (e.strip() for e in visible.split(",")):
            if not entry or entry.startswith("-"):  # CUDA stops at the first invalid entry
                break
            entries.append(entry)
        return entries
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=15,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", out, flags=re.MULTILINE)]


def _auto_devices(policy: DevicePolicy) -> list[str]:
    gpus = [] if policy is DevicePolicy.CPU_ONLY else detect_gpus()
    if gpus:
        return gpus
    if policy is DevicePolicy.GPU_ONLY:
        raise ValueError("device_policy is gpu-only but no GPU was found (nvidia-smi, "
                         "CUDA_VISIBLE_DEVICES); no worker started")
    return ["cpu"]


def resolve_devices(spec: str | None, settings: Settings) -> list[str]:
    """One entry per worker: ``"cpu"`` or a ``CUDA_VISIBLE_DEVICES`` entry (GPU index or UUID).

    ``auto``: one worker per GPU, else one CPU worker; ``cpu``; ``0,1`` (GPU indices); entries may
    repeat (``cpu,cpu`` = two CPU workers). Checked against ``device_policy``."""
    text = (spec or "auto").strip()
    policy = settings.device_policy
    if text.lower() == "auto":
        return _auto_devices(policy)
    devices = []
    for entry in (e.strip() for e in text.split(",")):
        if entry.lower() == "cpu":
            devices.append("cpu")
        elif _GPU_ID_RE.fullmatch(entry):
            devices.append(entry)
        else:
            raise ValueError(f"--devices: {entry!r} is neither 'cpu' nor a GPU index/UUID "
                             "(e.g. auto, cpu, 0,1)")
    if not devices:
        raise ValueError("--devices: no device given")
    if policy is DevicePolicy.CPU_ONLY and any(d != "cpu" for d in devices):
        raise ValueError("device_policy is cpu-only: GPU workers are not allowed")
    if policy is DevicePolicy.GPU_ONLY and "cpu" in devices:
        raise ValueError("device_policy is gpu-only: CPU workers are not allowed")
    return devices


def device_label(device: str) -> str:
    """How a worker names its device in its record: 'cpu' or 'cuda:<entry>'."""
    return "cpu" if device == "cpu" else f"cuda:{device}"


def gpu_free_bytes(entry: str) -> int | None:
    """Free memory of one GPU (a ``CUDA_VISIBLE_DEVICES`` entry: index or UUID) in bytes, as
    ``nvidia-smi`` reports it; None when it cannot tell (no nvidia-smi, a MIG slice, an error).
    nvidia-smi numbers GPUs in PCI bus order: set ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` on machines
    with mixed GPUs so that an index names the same card for both."""
    smi = shutil.which("nvidia-smi")
    if smi is None or entry.startswith("MIG-"):
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=memory.free", "--format=csv,noheader,nounits",
                              "-i", entry], capture_output=True, text=True, timeout=15,
                             check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out) << 20 if out.isdecimal() else None  # MiB


def worker_slots(devices: Sequence[str], settings: Settings,
                 free_bytes: Callable[[str], int | None] | None = None) -> list[str]:
    """One entry per worker process: each device entry ``settings.workers_per_device`` times.

    "auto": 1 for the CPU; for a GPU ``capacity.workers_for_device`` from its free memory
    (``free_bytes``, default ``gpu_free_bytes``) and the largest allowed model's need, shared
    among the entries that name the same GPU (``0,0`` asks for two workers' worth already)."""
    per_device = settings.workers_per_device
    if per_device != "auto":
        return [d for d in devices for _ in range(per_device)]
    measure = free_bytes or gpu_free_bytes
    need = auto_worker_bytes(settings)
    repeats = Counter(devices)
    counts: dict[str, int] = {}
    for device in repeats:
        free = None if device == "cpu" else measure(device)
        n = workers_for_device("cpu" if device == "cpu" else "cuda", free, need)
        counts[device] = max(1, n // repeats[device])
        if device != "cpu":
            known = "unknown" if free is None else f"{free / GiB:.1f} GiB"
            log.info("workers_per_device auto: %d on GPU %s (free memory %s, up to %.1f GiB "
                     "per worker)", n, device, known, need / GiB)
    return [d for d in devices for _ in range(counts[d])]
