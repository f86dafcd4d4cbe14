"""How many workers one device holds: the memory estimate behind ``workers_per_device = "auto"``.

One worker trains one small run (or one lockstep group) at a time; on a workshop GPU that leaves
most of the device idle, so the pool may start several workers per device. How many is a pure
function of the device's free memory and the memory one worker may need for the largest model
the server allows (``largest_allowed_params``, ``worker_memory_bytes``). On a CPU the answer is
always 1: one run's threads already use every core, and the pool splits the cores between the
workers of a CPU device (``cpu_threads_per_worker``) when more are asked for. No torch.
"""

from __future__ import annotations

import math

from samon_core.catalog import MODELS
from samon_core.runs.config import RunConfig
from samon_core.service.settings import Settings

GiB = 1 << 30
MiB = 1 << 20
# "auto" never starts more workers on one device than this: beyond it the runs only share the
# device's compute thinner, and each process costs its own CUDA context.
AUTO_CAP = 4
# Share of the free memory "auto" plans with: the allocator fragments, other processes grow.
MEMORY_MARGIN = 0.9
# Assumptions of worker_memory_bytes (see its docstring for where they come from).
CONTEXT_BYTES = 512 * MiB
RUN_FIXED_BYTES = 256 * MiB
STATE_COPIES = 5
ACT_FLOATS_PER_SQRT_PARAM = 2000
ACT_KEEP_FACTOR = 2
FLOAT_BYTES = 4


def worker_memory_bytes(num_params: int, batch_size: int, runs_together: int = 1) -> int:
    """Device memory one worker process may need, in bytes (a deliberately high estimate)::

        CONTEXT + runs_together * (RUN_FIXED + 4 B * STATE_COPIES * P)
                + 4 B * ACT_KEEP_FACTOR * ACT_FLOATS_PER_SQRT_PARAM * sqrt(P) * batch_size

    with P the model's parameter count. Assumptions:

    * CONTEXT = 512 MiB: the process's CUDA context, torch's kernels and cuDNN's workspaces;
    * RUN_FIXED = 256 MiB per run: the dataset split kept on the device as uint8 (CIFAR's
      50k + 10k images: 184 MB) and small buffers;
    * STATE_COPIES = 5 fp32 copies of the parameters per run: weights, gradients, up to two
      optimizer moments (AdamW; SGD keeps one), SAM's saved weights;
    * activations of one batch, once per worker: the runs of a lockstep group take their steps
      one after another, so the allocator reuses one run's blocks for the next. Per 32x32 image
      the zoo's module outputs measure 1.2e5 floats (tiny_resnet, P = 2.3e4) to 8.4e6
      (WRN-28-10, P = 3.7e7), all below 2000 * sqrt(P); autograd keeps about as much again
      (saved inputs, the backward's gradients): factor 2. fp32, although CUDA runs use bf16
      autocast by default (halving this term): the estimate errs high, never low.

    At batch 128 with 6 runs in lockstep: WRN-28-10 about 17.6 GiB, ResNet-20 about 3.0 GiB
    (an 80 GiB GPU: 4 workers, the cap, for either; a 24 GiB one: 1 for WRN-28-10).
    """
    if num_params <= 0 or batch_size <= 0 or runs_together <= 0:
        raise ValueError("num_params, batch_size and runs_together must be positive; got "
                         f"{num_params}, {batch_size}, {runs_together}")
    per_run = RUN_FIXED_BYTES + FLOAT_BYTES * STATE_COPIES * num_params
    activations = (FLOAT_BYTES * ACT_KEEP_FACTOR * ACT_FLOATS_PER_SQRT_PARAM
                   * math.sqrt(num_params) * batch_size)
    return int(CONTEXT_BYTES + runs_together * per_run + activations)


def workers_for_device(kind: str, free_bytes: int | None, per_run_bytes: int,
                       cap: int = AUTO_CAP) -> int:
    """Workers "auto" starts on one device: 1 on a CPU (``kind == "cpu"``); on a GPU as many as
    ``MEMORY_MARGIN`` of its free memory holds at ``per_run_bytes`` each (the memory one worker
    needs, ``worker_memory_bytes``), at most ``cap`` and at least 1 (also when the free memory
    is unknown: one worker is what the pool started before there was a choice)."""
    if per_run_bytes <= 0 or cap < 1:
        raise ValueError(f"per_run_bytes and cap must be positive; got {per_run_bytes}, {cap}")
    if kind == "cpu" or free_bytes is None:
        return 1
    fits = int(MEMORY_MARGIN * free_bytes // per_run_bytes)
    return max(1, min(cap, fits))


def largest_allowed_params(settings: Settings) -> int:
    """Parameter count of the largest model runs may ask for here: the catalog's models, kept to
    ``allowed_models`` and ``max_model_params`` when those are set (all of them if the limits
    leave none, so that the estimate stays on the safe side)."""
    sizes = [spec.num_params for name, spec in MODELS.items()
             if (not settings.allowed_models or name in settings.allowed_models)
             and (not settings.max_model_params or spec.num_params <= settings.max_model_params)]
    return max(sizes or [spec.num_params for spec in MODELS.values()])


def default_batch_size() -> int:
    """The batch size runs use unless they ask otherwise (RunConfig's default)."""
    return int(RunConfig.model_fields["batch_size"].default)


def auto_worker_bytes(settings: Settings) -> int:
    """``worker_memory_bytes`` of the largest allowed model at the default batch size, with a
    full lockstep group (``lockstep_max_runs``) held by one worker."""
    return worker_memory_bytes(largest_allowed_params(settings), default_batch_size(),
                               settings.lockstep_max_runs)


def cpu_threads_per_worker(n_cpu_workers: int, cores: int | None) -> int:
    """Threads each of ``n_cpu_workers`` CPU workers gets so that together they do not use more
    than ``cores`` (at least 1; an unknown core count counts as 1)."""
    return max(1, (cores or 1) // max(1, n_cpu_workers))
