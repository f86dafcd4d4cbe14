"""Devices of the workers, found without torch: one worker per GPU, else one CPU worker.

A device entry is ``"cpu"`` or a ``CUDA_VISIBLE_DEVICES`` entry (GPU index or UUID); the pool
pins each worker process to its entry before torch is imported there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from samon_core.service.settings import DevicePolicy, Settings

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
