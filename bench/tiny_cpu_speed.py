"""Tiny ResNet on the CPU: images/s of the trainer's step against what its FLOPs allow, and what
raises it.

What is measured (fp32, batch 128 by default, ``tiny_resnet`` at 100 classes, random inputs):

1. The ceiling. FLOPs of one step are counted with ``torch.utils.flop_counter.FlopCounterMode``
   (convolutions and matmuls, forward and backward; BatchNorm, ReLU, pooling and the optimizer
   count as 0), once for a forward pass (x3 gives the usual forward+backward estimate) and once
   for a whole SGD and a whole SAM-ON step. The machine's dense fp32 rate is timed the same way
   as the steps (median of rounds): a 2048x2048 ``torch.mm`` and a big 3x3 convolution
   (128x64x32x32 -> 64 channels). achieved / possible = (FLOPs per step x steps/s) / that rate.
2. The candidates, each a row timed for an SGD and a SAM-ON step of the trainer's own
   ``TrainStep`` (built by ``samon_core.train.setup`` as a run builds it), interleaved with the
   baseline: ``--repeats`` rounds, each timing every row in turn (one untimed step first, then
   ``--steps`` timed steps); medians reported:

   baseline       the trainer today: torch's default thread count, NCHW, eager
   1 thread       ``torch.set_num_threads(1)`` (same model)
   channels_last  model and inputs in channels_last
   compile        ``torch.compile(model)``; its compile time (first calls minus steady steps,
                  cold inductor cache in a temporary directory unless ``--warm-cache``) is
                  set against a 3-minute run: break-even steps and images in 180 s
   3 seeds, in turn      three models (three seeds) stepped one after the other
   3 seeds, vmap         the same three seeds as one batched model: ``torch.func``
                         ``stack_module_state`` + ``vmap(functional_call)``, each seed on its own
                         batch, one SGD over the stacked tensors (elementwise: the same update as
                         three SGDs), SAM-ON's eps normalised per seed
   2 procs x 1 thread    two worker processes at once (two seeds, one thread each: how the job
                         queue runs), timed in the same rounds while this process waits

   Rows with several seeds report images/s summed over the seeds, the figure that sets how many
   seeds of a claim fit into a time budget.

Before measuring it waits until no ``pytest`` / ``.ci/run`` process is running (up to
``--wait-s``) and prints the load average before and after.

    python bench/tiny_cpu_speed.py --steps 8 --repeats 7  # ~4 min on 2 cores (README figures)
    python bench/tiny_cpu_speed.py --steps 4 --repeats 3 --no-compile   # ~1 min, a smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from samon_core.norms import norm_parameter_ids  # noqa: E402
from samon_core.optim import base_optimizer  # noqa: E402
from samon_core.runs.config import RunConfig  # noqa: E402
from samon_core.train.hardware import device_description  # noqa: E402
from samon_core.train.setup import build_network, build_optimizer, build_step  # noqa: E402

CLASSES = 100
LR = 1e-4  # small, so that the weights stay put while timing
SEEDS = 3
RUN_S = 180.0  # the run length that compile time is set against
KINDS = ("SGD", "SAM-ON")
CPU = torch.device("cpu")

# -- machine state ------------------------------------------------------------------------------


def busy_pids() -> list[str]:
    """Test runs on this machine (``pytest`` / ``.ci/run``), this process and its parents aside."""
    out = subprocess.run(
        ["pgrep", "-f", r"pytest|\.ci/run"], capture_output=True, text=True, check=False
    ).stdout.split()
    mine = {str(os.getpid()), str(os.getppid())}
    return [p for p in out if p not in mine]


def wait_quiet(max_s: float) -> None:
    t0 = time.monotonic()
    while busy_pids() and time.monotonic() - t0 < max_s:
        time.sleep(10)
    left = busy_pids()
    waited = time.monotonic() - t0
    note = f"still busy (pids {' '.join(left)})" if left else "quiet"
    print(f"waited {waited:.0f} s for other test runs: {note}; load {load()}", flush=True)


def load() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min)"


@contextlib.contextmanager
def threads(n: int | None):
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- the ceiling ----------------------------------------------------------------------------------


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def peak_rates(repeats: int, n_threads: int | None) -> dict[str, float]:
    """GFLOP/s of a 2048^2 fp32 matmul and of a big 3x3 conv (median of ``repeats``)."""
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    x, w = torch.randn(128, 64, 32, 32), torch.randn(64, 64, 3, 3)
    jobs = {
        "mm": (lambda: torch.mm(a, b), 2 * n**3),
        "conv": (lambda: F.conv2d(x, w, padding=1), count_flops(lambda: F.conv2d(x, w, padding=1))),
    }
    rates = {}
    with threads(n_threads):
        for name, (fn, flops) in jobs.items():
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            rates[name] = flops / statistics.median(times) / 1e9
    return rates


# -- the rows -------------------------------------------------------------------------------------


def make_config(kind: str, batch_size: int) -> RunConfig:
    method = dict(method="base") if kind == "SGD" else dict(method="sam", scope="norm")
    return RunConfig(model="tiny_resnet", batch_size=batch_size, lr=LR, device="cpu", **method)


def trainer_steps(model, batch_size: int) -> dict[str, Callable]:
    """kind -> the trainer's TrainStep over ``model`` (SGD, SAM-ON)."""
    steps = {}
    for kind in KINDS:
        config = make_config(kind, batch_size)
        optimizer, _, _ = build_optimizer(config, model)
        steps[kind] = build_step(config, model, optimizer, CPU, None)
    return steps


def batch(batch_size: int, seed: int, channels_last: bool = False):
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(batch_size, 3, 32, 32, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, CLASSES, (batch_size,), generator=g)


def new_model(seed: int, channels_last: bool = False):
    torch.manual_seed(seed)
    model = build_network(make_config("SGD", 128), CLASSES, CPU).train()
    return model.to(memory_format=torch.channels_last) if channels_last else model


class Row:
    """One candidate: ``run(kind)`` takes one step (of every seed); ``images`` per call."""

    def __init__(self, name: str, run: Callable[[str], object], images: int, n_threads=None):
        self.name, self.run, self.images, self.n_threads = name, run, images, n_threads


def single_row(name: str, bs: int, *, channels_last=False, compiled=False, n_threads=None) -> Row:
    model = new_model(0, channels_last)
    if compiled:
        model = torch.compile(model)
    steps = trainer_steps(model, bs)
    x, y = batch(bs, 0, channels_last)
    return Row(name, lambda kind: steps[kind](x, y, kind != "SGD"), bs, n_threads)


def in_turn_row(bs: int) -> Row:
    seeds = [(trainer_steps(new_model(s), bs), *batch(bs, s)) for s in range(SEEDS)]

    def run(kind: str) -> None:
        for steps, x, y in seeds:
            steps[kind](x, y, kind != "SGD")

    return Row(f"{SEEDS} seeds, in turn", run, SEEDS * bs)


class SeedStack:
    """``SEEDS`` copies of the model as one batched model (torch.func), with SGD and SAM-ON steps.

    Parameters and buffers are stacked along a new dim 0 (``stack_module_state``); the forward is
    ``vmap(functional_call)`` with each seed's own batch. Gradients of the summed losses are each
    seed's own gradients; SGD (momentum, weight decay) is elementwise, so one ``torch.optim`` over
    the stacked tensors takes each seed's step. SAM-ON: first pass with the non-norm tensors
    frozen, eps = rho g / ||g|| with the norm per seed, second pass at w + eps, restore, SGD.
    """

    def __init__(self, models, config: RunConfig):
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        norm_ids = norm_parameter_ids(models[0])
        self.norm = [n for n, p in models[0].named_parameters() if id(p) in norm_ids]
        self.frozen = [p for n, p in self.params.items() if n not in self.norm]
        cls, kw = base_optimizer(
            config.optimizer, lr=config.lr, momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.optimizer = cls(list(self.params.values()), **kw)
        self.rho = make_config("SAM-ON", config.batch_size).resolved_rho()
        self.losses = vmap(self._loss)

    def _loss(self, params, buffers, x, y):
        return F.cross_entropy(functional_call(self.base, (params, buffers), (x,)), y)

    def forward_backward(self, x, y) -> None:
        self.losses(self.params, self.buffers, x, y).sum().backward()

    def step(self, x, y, sam: bool) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if sam:
            self._ascend(x, y)
        self.forward_backward(x, y)
        if sam:
            with torch.no_grad():
                for n, w in self.saved.items():
                    self.params[n].copy_(w)
        self.optimizer.step()

    def _ascend(self, x, y) -> None:
        for p in self.frozen:
            p.requires_grad_(False)
        try:
            self.forward_backward(x, y)
        finally:
            for p in self.frozen:
                p.requires_grad_(True)
        with torch.no_grad():
            grads = [self.params[n].grad for n in self.norm]
            sq = sum(g.flatten(1).pow(2).sum(1) for g in grads)  # (SEEDS,)
            scale = self.rho / (sq.sqrt() + 1e-12)
            self.saved = {n: self.params[n].clone() for n in self.norm}
            for n, g in zip(self.norm, grads, strict=True):
                self.params[n].add_(g * scale.view(-1, *[1] * (g.dim() - 1)))
        self.optimizer.zero_grad(set_to_none=True)


def vmap_row(bs: int) -> Row:
    stack = SeedStack([new_model(s) for s in range(SEEDS)], make_config("SGD", bs))
    xs, ys = zip(*(batch(bs, s) for s in range(SEEDS)), strict=True)
    x, y = torch.stack(xs), torch.stack(ys)
    return Row(f"{SEEDS} seeds, vmap", lambda kind: stack.step(x, y, kind != "SGD"), SEEDS * bs)


def vmap_matches(bs: int) -> float:
    """max |w_vmap - w_separate| after one SGD and one SAM-ON step from the same start."""
    models = [new_model(s) for s in range(SEEDS)]
    stack = SeedStack([copy.deepcopy(m) for m in models], make_config("SGD", bs))
    stack.rho = make_config("SAM-ON", bs).resolved_rho()
    data = [batch(bs, s) for s in range(SEEDS)]
    x, y = torch.stack([d[0] for d in data]), torch.stack([d[1] for d in data])
    for kind in KINDS:
        stack.step(x, y, kind != "SGD")
    for m, (xi, yi) in zip(models, data, strict=True):
        steps = trainer_steps(m, bs)
        steps["SGD"].optimizer.state.clear()
        for kind in KINDS:  # one optimizer per kind in the trainer: share SGD's momentum state
            opt = steps[kind].optimizer
            base = getattr(opt, "base_optimizer", opt)
            base.state = steps["SGD"].optimizer.state
            steps[kind](xi, yi, kind != "SGD")
    worst = 0.0
    for i, m in enumerate(models):
        for n, p in m.named_parameters():
            worst = max(worst, (stack.params[n][i] - p).abs().max().item())
    return worst


# -- two processes at once ------------------------------------------------------------------------


def _worker(conn, barrier, seed: int, bs: int) -> None:
    torch.set_num_threads(1)
    steps = trainer_steps(new_model(seed), bs)
    x, y = batch(bs, seed)
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        kind, n = msg
        steps[kind](x, y, kind != "SGD")  # the untimed step
        barrier.wait()
        t0 = time.perf_counter()
        for _ in range(n):
            steps[kind](x, y, kind != "SGD")
        conn.send(time.perf_counter() - t0)


class ProcessPair:
    """Two spawned workers (one thread each) that time ``n`` steps at the same moment."""

    def __init__(self, bs: int):
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(2)
        self.conns, self.procs = [], []
        for seed in range(2):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, barrier, seed, bs), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for c in self.conns:  # both have imported torch and built their model
            c.recv()
        self.bs = bs

    def images_per_s(self, kind: str, n: int) -> float:
        for c in self.conns:
            c.send((kind, n))
        return sum(n * self.bs / c.recv() for c in self.conns)

    def close(self) -> None:
        for c in self.conns:
            c.send(None)
        for p in self.procs:
            p.join(timeout=30)


# -- timing ---------------------------------------------------------------------------------------


def time_row(row: Row, kind: str, steps: int) -> float:
    """images/s over ``steps`` calls, after one untimed call (thread pool, caches)."""
    with threads(row.n_threads):
        row.run(kind)
        t0 = time.perf_counter()
        for _ in range(steps):
            row.run(kind)
        return steps * row.images / (time.perf_counter() - t0)


def compile_cost(row: Row) -> dict[str, float]:
    """Seconds of the first two calls of each kind (compile + 2 steps) of a compiled row."""
    first = {}
    for kind in KINDS:
        t0 = time.perf_counter()
        row.run(kind)
        row.run(kind)
        first[kind] = time.perf_counter() - t0
    return first


def measure(rows: list[Row], pair: ProcessPair | None, steps: int, repeats: int) -> dict:
    results = {(r.name, k): [] for r in rows for k in KINDS}
    if pair:
        results.update({("2 procs x 1 thread", k): [] for k in KINDS})
    for rep in range(repeats):
        for row in rows:
            for kind in KINDS:
                results[row.name, kind].append(time_row(row, kind, steps))
        if pair:
            for kind in KINDS:
                results["2 procs x 1 thread", kind].append(pair.images_per_s(kind, steps))
        print(f"  round {rep + 1}/{repeats} done; load {load()}", flush=True)
    return results


# -- report ---------------------------------------------------------------------------------------


def report_ceiling(flops: dict[str, int], peaks: dict, base: dict[str, float], bs: int) -> None:
    fwd = flops["forward"]
    print(f"\nFLOPs (FlopCounterMode, conv + matmul), batch {bs}:")
    print(f"  forward            {fwd / 1e9:7.3f} GFLOP   ({fwd / bs / 1e6:.1f} MFLOP/image)")
    print(f"  3 x forward        {3 * fwd / 1e9:7.3f} GFLOP   (the usual fwd+bwd estimate)")
    for kind in KINDS:
        print(f"  {kind + ' step (count)':<19}{flops[kind] / 1e9:7.3f} GFLOP")
    print("\nmachine fp32 rate (median), GFLOP/s:")
    for n_threads, rates in peaks.items():
        print(f"  {n_threads} thread(s): 2048^2 mm {rates['mm']:7.1f}   "
              f"big conv {rates['conv']:7.1f}")
    top = max(peaks)
    print(f"\nachieved / possible at {top} threads (baseline rows):")
    print(f"  {'step':<8}{'img/s':>8}{'GFLOP/s':>10}{'/ mm':>8}{'/ conv':>8}")
    for kind in KINDS:
        rate = flops[kind] / bs * base[kind] / 1e9
        print(
            f"  {kind:<8}{base[kind]:>8.0f}{rate:>10.2f}{rate / peaks[top]['mm']:>8.3f}"
            f"{rate / peaks[top]['conv']:>8.3f}"
        )


def report_rows(results: dict, repeats: int) -> dict[tuple[str, str], float]:
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nimages/s (median of {repeats} interleaved rounds; seed rows: summed over seeds)")
    print(f"  {'row':<22}{'kind':<8}{'img/s':>8}{'x base':>8}   runs")
    for (name, kind), values in results.items():
        ratio = med[name, kind] / med["baseline", kind]
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"  {name:<22}{kind:<8}{med[name, kind]:>8.0f}{ratio:>8.2f}   {runs}")
    return med


def report_compile(first: dict, med: dict, bs: int) -> None:
    """Compile seconds = first two calls minus two steady steps. SGD's calls compile the full
    forward+backward graph; SAM-ON's add the ascent-pass graph (frozen weights: another
    requires_grad pattern, a recompile), so a SAM-ON run pays both."""
    print(f"\ntorch.compile against a {RUN_S:.0f} s run (a SAM-ON run compiles both graphs):")
    cost = 0.0
    for kind in KINDS:
        eager, comp = bs / med["baseline", kind], bs / med["compile", kind]
        cost += first[kind] - 2 * comp
        saved = eager - comp
        even = f"{cost / saved:.0f} steps ({cost / saved * eager:.0f} s)" if saved > 0 else "never"
        imgs_eager = RUN_S / eager * bs
        imgs_comp = max(0.0, RUN_S - cost) / comp * bs
        print(
            f"  {kind:<7} compile {cost:5.1f} s; step {1000 * eager:.1f} -> {1000 * comp:.1f} ms; "
            f"break-even after {even}; images in {RUN_S:.0f} s: {imgs_eager:.0f} eager, "
            f"{imgs_comp:.0f} compiled ({imgs_comp / imgs_eager:.2f}x)"
        )


def report_profile(steps: dict[str, Callable], x, y, n: int) -> None:
    """Where an eager SGD step's time goes: aten ops by self CPU time (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        steps["SGD"](x, y, False)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            steps["SGD"](x, y, False)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\nbaseline SGD step, aten ops by self CPU time ({n} steps, torch.profiler):")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:10]:
        share = e.self_cpu_time_total / total
        print(f"  {e.key:<40}{share:>7.1%}{e.self_cpu_time_total / n / 1000:>8.1f} ms/step")


# -- main -----------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per row and round")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians)")
    ap.add_argument("--no-compile", action="store_true", help="leave the torch.compile row out")
    ap.add_argument("--warm-cache", action="store_true",
                    help="use inductor's usual cache directory (default: a fresh, cold one)")
    ap.add_argument("--no-procs", action="store_true", help="leave the 2-process row out")
    ap.add_argument("--profile", action="store_true",
                    help="also print where an eager SGD step's time goes (aten ops)")
    ap.add_argument("--wait-s", type=float, default=600, help="how long to wait for quiet")
    return ap.parse_args(argv)


def build_rows(args) -> tuple[list[Row], dict | None]:
    bs = args.batch_size
    rows = [
        single_row("baseline", bs),
        single_row("1 thread", bs, n_threads=1),
        single_row("channels_last", bs, channels_last=True),
    ]
    first = None
    if not args.no_compile:
        rows.append(single_row("compile", bs, compiled=True))
        first = compile_cost(rows[-1])
    rows += [in_turn_row(bs), vmap_row(bs)]
    return rows, first


def main(argv=None) -> None:
    args = parse_args(argv)
    bs = args.batch_size
    wait_quiet(args.wait_s)
    base_threads = torch.get_num_threads()
    print(
        f"hardware: {device_description(CPU)} ({os.cpu_count()} cores visible); "
        f"torch {torch.__version__}; python {platform.python_version()}; tiny_resnet, "
        f"batch {bs}, fp32; {args.repeats} interleaved rounds x {args.steps} steps; one run"
    )
    model = new_model(0)
    x, y = batch(bs, 0)
    steps = trainer_steps(model, bs)
    flops = {"forward": count_flops(lambda: model(x))}
    flops.update({k: count_flops(lambda k=k: steps[k](x, y, k != "SGD")) for k in KINDS})
    peaks = {n: peak_rates(args.repeats, n) for n in sorted({1, base_threads})}
    print(f"max |w_vmap - w_separate| after an SGD and a SAM-ON step: {vmap_matches(bs):.2e}")
    with tempfile.TemporaryDirectory(prefix="inductor-") as cache:
        if not args.warm_cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        rows, first = build_rows(args)
        pair = None if args.no_procs else ProcessPair(bs)
        print(f"load before the rounds: {load()}", flush=True)
        try:
            results = measure(rows, pair, args.steps, args.repeats)
        finally:
            if pair:
                pair.close()
    print(f"load after the rounds: {load()}")
    med = report_rows(results, args.repeats)
    report_ceiling(flops, peaks, {k: med["baseline", k] for k in KINDS}, bs)
    if first:
        report_compile(first, med, bs)
    if args.profile:
        report_profile(steps, x, y, args.steps)


if __name__ == "__main__":
    main()
