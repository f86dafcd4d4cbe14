"""Cost of one optimizer step: SGD vs SAM-all vs SAM-ON (slow and fast ascent pass).

All variants are timed interleaved in one run (round-robin over the variants, ``--repeats`` rounds
of ``--steps`` steps each), so that machine noise hits all of them alike; medians are reported.
Two reference points bound what SAM can cost:

    full    one plain forward + backward (all gradients)
    frozen  one forward + backward computing only the norm-parameter gradients

SAM-all needs two full passes; SAM-ON at best needs one frozen and one full pass. So

    SAM-ON / SAM-all   should approach  (frozen + full) / (2 full)      (the saving there is)
    SAM-all / (2 full) should stay near 1                               (SAM's own bookkeeping)

Usage: python bench/step_cost.py [MODEL ...] [--batch-size 128] [--device auto]
                                 [--steps 5] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from samon_core.train.hardware import device_description
from samon_core.models import build_model
from samon_core.optim import SAM, perturbation_groups


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_variants(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """name -> function running one step on (x, y)."""
    loss_fn = nn.CrossEntropyLoss()

    def closure():
        loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    sgd = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    sam_all = SAM(
        perturbation_groups(model, "all"), torch.optim.SGD, rho=0.05, lr=1e-4, momentum=0.9
    )
    sam_on = SAM(
        perturbation_groups(model, "norm"), torch.optim.SGD, rho=0.5, lr=1e-4, momentum=0.9
    )

    def sgd_step():
        sgd.zero_grad(set_to_none=True)
        closure()
        sgd.step()

    def full():
        model.zero_grad(set_to_none=True)
        closure()

    def frozen():
        model.zero_grad(set_to_none=True)
        with sam_on.ascent_pass():
            closure()

    return {
        "full": full,
        "frozen": frozen,
        "SGD": sgd_step,
        "SAM-all": lambda: sam_all.step(closure, fast=False),
        "SAM-ON slow": lambda: sam_on.step(closure, fast=False),
        "SAM-ON fast": lambda: sam_on.step(closure, fast=True),
    }


def bench_model(name: str, batch_size: int, device: torch.device, steps: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = build_model(name, num_classes=100).to(device).train()
    x = torch.randn(batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (batch_size,), device=device)
    variants = make_variants(model, x, y)
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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "models", nargs="*", default=["resnet20"], help="registry names (default resnet20)"
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    ap.add_argument("--steps", type=int, default=5, help="steps per timing")
    ap.add_argument(
        "--repeats", type=int, default=7, help="interleaved rounds; the median is reported"
    )
    args = ap.parse_args(argv)
    dev = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = torch.device("cpu" if dev == "auto" else dev)

    print(
        f"hardware: {device_description(device)}; torch {torch.__version__}; "
        f"batch {args.batch_size}; median of {args.repeats} interleaved rounds x {args.steps} steps"
    )
    for name in args.models:
        t = bench_model(name, args.batch_size, device, args.steps, args.repeats)
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


if __name__ == "__main__":
    main()
