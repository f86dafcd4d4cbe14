"""Cost of one optimizer step: SGD vs SAM-all vs SAM-ON (slow and fast ascent pass).

Each variant is the trainer's own step function (``samon_core.train.step.TrainStep``, built by
``samon_core.train.setup`` from a RunConfig exactly as a run builds it: the base optimizer with
the run's weight decay, SAM's ``step(closure, second_pass=...)`` with the BatchNorm handling,
autocast (bf16 on CUDA with ``--precision auto``) and channels_last on CUDA), so what is timed is
what training runs. All variants are timed interleaved in one run (round-robin over the variants,
``--repeats`` rounds of ``--steps`` steps each), so that machine noise hits all of them alike;
medians are reported. Two reference points bound what SAM can cost:

    full    one plain forward + backward (all gradients)
    frozen  one forward + backward computing only the norm-parameter gradients

SAM-all needs two full passes; SAM-ON at best needs one frozen and one full pass. So

    SAM-ON / SAM-all   should approach  (frozen + full) / (2 full)      (the saving there is)
    SAM-all / (2 full) should stay near 1                               (SAM's own bookkeeping)

Usage: python bench/step_cost.py [MODEL ...] [--batch-size 128] [--device auto]
                                 [--precision auto] [--steps 5] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from samon_core.runs.config import RunConfig
from samon_core.train.hardware import device_description
from samon_core.train.setup import (
    autocast_dtype,
    build_network,
    build_optimizer,
    build_step,
    resolve_device,
    uses_channels_last,
)
from samon_core.train.step import TrainStep

CLASSES = 100
LR = 1e-4  # small, so that the weights stay put while timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _trainer_step(config: RunConfig, model, device, amp) -> TrainStep:
    optimizer, _, _ = build_optimizer(config, model)
    return build_step(config, model, optimizer, device, amp)


def make_variants(
    config: RunConfig, model, x: torch.Tensor, y: torch.Tensor, device, amp
) -> dict[str, Callable[[], object]]:
    """name -> function running one step on (x, y), all on the same ``model``."""
    sgd = _trainer_step(config.replace(method="base"), model, device, amp)
    sam_all = _trainer_step(config.replace(method="sam", scope="all"), model, device, amp)
    sam_on = _trainer_step(config.replace(method="sam", scope="norm"), model, device, amp)
    sam_on_slow = _trainer_step(config.replace(method="sam", scope="norm"), model, device, amp)
    sam_on_slow.fast_ascent = False

    def full():
        model.zero_grad(set_to_none=True)
        with sgd.autocast():
            loss = sgd.criterion(model(x).float(), y)
        loss.backward()

    def frozen():
        with sam_on.optimizer.ascent_pass():
            full()

    return {
        "full": full,
        "frozen": frozen,
        "SGD": lambda: sgd(x, y, False),
        "SAM-all": lambda: sam_all(x, y, True),
        "SAM-ON slow": lambda: sam_on_slow(x, y, True),
        "SAM-ON fast": lambda: sam_on(x, y, True),
    }


def bench_model(config: RunConfig, device: torch.device, steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    amp = autocast_dtype(config.precision, device)
    model = build_network(config, CLASSES, device).train()
    x = torch.randn(config.batch_size, 3, 32, 32, device=device)
    if uses_channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, CLASSES, (config.batch_size,), device=device)
    variants = make_variants(config, model, x, y, device, amp)
    for fn in variants.values():  # warm-up (allocator, kernels, optimizer state)
        fn()
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                fn()
            _sync(device)
            times[k].append((time.perf_counter() - t0) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def report(name: str, t: dict) -> None:
    print(f"\n{name}")
    for k, v in t.items():
        print(f"  {k:12s} {v * 1000:9.1f} ms/step   {v / t['SGD']:5.2f} x SGD")
    limit = (t["frozen"] + t["full"]) / (2 * t["full"])
    print(
        f"  SAM-ON fast / SAM-all       = {t['SAM-ON fast'] / t['SAM-all']:.3f}"
        f"   (limit (frozen+full)/(2 full) = {limit:.3f}; target within 0.03)"
    )
    print(f"  SAM-ON slow / SAM-all       = {t['SAM-ON slow'] / t['SAM-all']:.3f}")
    print(
        f"  SAM-all / (2 x full)        = {t['SAM-all'] / (2 * t['full']):.3f}"
        "   (target <= 1.15)"
    )


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "models", nargs="*", default=["resnet20"], help="registry names (default resnet20)"
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto", help="auto, cpu, mps, cuda, cuda:N")
    ap.add_argument("--precision", default="auto", help="auto (bf16 on CUDA), fp32, bf16")
    ap.add_argument("--steps", type=int, default=5, help="steps per timing")
    ap.add_argument(
        "--repeats", type=int, default=7, help="interleaved rounds; the median is reported"
    )
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    amp = autocast_dtype(args.precision, device)
    print(
        f"hardware: {device_description(device)}; torch {torch.__version__}; "
        f"batch {args.batch_size}; precision {str(amp).replace('torch.', '') if amp else 'fp32'}; "
        f"median of {args.repeats} interleaved rounds x {args.steps} steps"
    )
    for name in args.models:
        config = RunConfig(
            model=name,
            batch_size=args.batch_size,
            lr=LR,
            device=args.device,
            precision=args.precision,
        )
        report(name, bench_model(config, device, args.steps, args.repeats))


if __name__ == "__main__":
    main()
