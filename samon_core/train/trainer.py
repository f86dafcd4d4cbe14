"""Train one run end to end and stream everything a user wants to watch.

``train(config, run_dir)`` seeds everything, builds data (on the device, see data.py), model and
optimizer (SGD / AdamW / Lion, wrapped in SAM for the SAM methods, with SAM-ON's cheap ascent pass),
and trains. It emits plain metric records (ARCHITECTURE.md) to ``metrics.jsonl`` and to an optional
``callback``:

    step        every ``log_every_s`` seconds: loss, accuracy, lr, step time, images/s
    epoch       train/test loss and accuracy, epoch time, ETA
    sharpness   logit-normalised adaptive l_inf m-sharpness (sharpness.py), 1-step and multi-step
    norm_stats  gamma / beta histograms on fixed bins and per-layer mean/std (epoch 0 = init)

It keeps ``status.json`` current (running + heartbeat, then finished / diverged / cancelled /
failed), writes a checkpoint atomically after every epoch (model, optimizer, scheduler, RNG,
epoch) from which ``resume=True`` continues exactly, and writes ``summary.json`` at the end.
A NaN or infinite loss ends the run as ``diverged`` (with the epoch and step), not as a crash;
``should_stop()`` is polled every step and cancels within one step.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from samon_core.models import build_model
from samon_core.optim import (
    SAM,
    base_optimizer,
    bn_second_pass,
    perturbation_groups,
    perturbed_count,
)
from samon_core.runs.config import RunConfig
from samon_core.runs.store import CHECKPOINT_FILE, RunStore
from samon_core.train.data import DeviceLoader, load_dataset
from samon_core.train.hardware import device_description
from samon_core.train.normstats import fixed_bins, norm_stats_records
from samon_core.train.sharpness import m_sharpness

Record = dict[str, Any]
DATA_DIR_ENV = "SAMON_DATA_DIR"


class _Cancelled(Exception):
    pass


class _Diverged(Exception):
    def __init__(self, epoch: int, step: int, loss: float):
        super().__init__(f"loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


# --------------------------------------------------------------------------------------------
# small pure helpers
# --------------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if available, else MPS, else CPU; a named device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available here (use 'auto' or 'cpu')")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' but MPS is not available here")
    return dev


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA for ``auto``; None means plain fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)  # progress after warm-up, [0, 1]
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    if schedule == "step":  # the classic CIFAR recipe: x0.2 at 30%, 60% and 80% of training
        return 0.2 ** sum(t >= m for m in (0.3, 0.6, 0.8))
    return 1.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


@dataclass
class _Setup:
    device: torch.device
    amp: torch.dtype | None
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    probe: tuple[torch.Tensor, torch.Tensor] | None  # un-augmented training subset for sharpness
    n_perturbed: int
    n_params: int
    data_source: str
    synthetic: bool


def _build(config: RunConfig, data_dir: str | os.PathLike) -> _Setup:
    device = resolve_device(config.device)
    amp = autocast_dtype(config.precision, device)
    seed_everything(config.seed)
    data = load_dataset(
        config.dataset,
        data_dir,
        train_subset=config.train_subset,
        test_subset=config.test_subset,
        seed=config.seed,
    )
    if len(data.train_y) < config.batch_size:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the training set "
            f"({len(data.train_y)} images); lower batch_size or raise train_subset"
        )
    model = build_model(config.model, num_classes=data.num_classes, norm=config.norm_layer)
    # channels_last speeds up convolutions on CUDA tensor cores; on the CPU it does not help.
    channels_last = device.type == "cuda"
    model = model.to(
        device, memory_format=torch.channels_last if channels_last else torch.preserve_format
    )

    cls, kw = base_optimizer(
        config.optimizer, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    if config.method == "sam":
        groups = perturbation_groups(model, config.scope, blocks=config.blocks, seed=config.seed)
        n_pert, n_params = perturbed_count(groups)
        optimizer = SAM(
            groups,
            cls,
            rho=config.resolved_rho(),
            adaptive=config.adaptive,
            norm=config.ball,
            eta=config.eta,
            normalize_bias=config.normalize_bias,
            **kw,
        )
    else:
        n_pert, n_params = 0, sum(p.numel() for p in model.parameters() if p.requires_grad)
        optimizer = cls(model.parameters(), **kw)

    train_loader = DeviceLoader(
        data,
        device,
        config.batch_size,
        train=True,
        augment=config.augment,
        seed=config.seed,
        channels_last=channels_last,
    )
    test_loader = DeviceLoader(
        data, device, max(config.batch_size, 256), train=False, channels_last=channels_last
    )
    total = config.epochs * len(train_loader)
    warmup = config.warmup_epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, config.lr_schedule)
    )

    probe = None
    if config.sharpness_samples:
        n = min(config.sharpness_samples, len(data.train_y))
        plain = DeviceLoader(
            data, device, n, train=False, split="train", channels_last=channels_last
        )
        probe = next(iter(plain.epoch_batches(0)))  # the first n training images, no augmentation
    return _Setup(
        device,
        amp,
        model,
        optimizer,
        scheduler,
        train_loader,
        test_loader,
        probe,
        n_pert,
        n_params,
        data.source,
        data.synthetic,
    )


def _autocast(device: torch.device, amp: torch.dtype | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, device, amp) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over the loader, model in eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    for x, y in loader.epoch_batches(0):
        with _autocast(device, amp):
            out = model(x)
        loss_sum += nn.functional.cross_entropy(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        n += len(y)
    model.train(was_training)
    return float(loss_sum) / n, float(correct) / n


def train(
    config: RunConfig,
    run_dir: str | os.PathLike,
    *,
    callback: Callable[[Record], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    data_dir: str | os.PathLike | None = None,
    resume: bool = False,
) -> dict:
    """Train one run in ``run_dir`` (a folder of a ``RunStore``; created if missing) and return
    its summary. See the module docstring for what is written."""
    run_dir = Path(run_dir).resolve()
    store, run_id = RunStore(run_dir.parent), run_dir.name
    if not (run_dir / "config.json").is_file():
        store.create_run(config, run_id=run_id)
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV, "data")
    t_start = time.monotonic()
    store.write_status(
        run_id, "running", pid=os.getpid(), host=platform.node(), message="", progress=0.0
    )
    writer = store.metrics_writer(run_id)
    state: dict[str, Any] = {"epoch": 0, "step": 0}

    def emit(record: Record) -> None:
        writer.write(record)
        if callback is not None:
            callback(record)

    try:
        summary = _run(config, run_dir, store, run_id, emit, should_stop, data_dir, resume, state)
    except _Cancelled:
        store.write_status(
            run_id,
            "cancelled",
            message=f"cancelled in epoch {state['epoch'] + 1}",
            step=state["step"],
        )
        summary = {"state": "cancelled", "epochs_done": state["epoch"]}
    except _Diverged as d:
        msg = (
            f"diverged: the loss became {d.loss} at epoch {d.epoch}, step {d.step}. "
            "Try a smaller learning rate or rho."
        )
        store.write_status(run_id, "diverged", message=msg, epoch=d.epoch, step=d.step)
        summary = {
            "state": "diverged",
            "epochs_done": d.epoch - 1,
            "diverged_epoch": d.epoch,
            "diverged_step": d.step,
        }
        store.write_summary(run_id, summary)
    except BaseException as exc:
        store.write_status(
            run_id,
            "failed",
            message=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=8),
        )
        raise
    finally:
        writer.close()
    summary["total_time_s"] = time.monotonic() - t_start
    return summary


def _run(config, run_dir, store, run_id, emit, should_stop, data_dir, resume, state) -> dict:
    s = _build(config, data_dir)
    model, opt, sched, device, amp = s.model, s.optimizer, s.scheduler, s.device, s.amp
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    steps_per_epoch = len(s.train_loader)
    bins = {
        "gamma": fixed_bins("gamma", config.stats_bins),
        "beta": fixed_bins("beta", config.stats_bins),
    }
    ckpt_path = run_dir / CHECKPOINT_FILE

    start_epoch, step, elapsed, best_acc = 0, 0, 0.0, 0.0
    epoch_times: list[float] = []
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)  # our own file
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        start_epoch, step, elapsed = ckpt["epoch"], ckpt["step"], ckpt["elapsed"]
        best_acc, epoch_times = ckpt["best_acc"], ckpt["epoch_times"]
        emit({"kind": "resume", "epoch": start_epoch, "step": step, "time": elapsed})
    elif resume:
        raise ValueError(f"cannot resume run {run_id!r}: it has no checkpoint yet")

    t0 = time.monotonic() - elapsed  # training wall clock, continued across a resume
    now = lambda: time.monotonic() - t0  # noqa: E731

    def probe_sharpness(epoch: int, final: bool) -> None:
        if s.probe is None:
            return
        x, y = s.probe
        probes = []
        if config.sharpness_steps and (
            final or (config.sharpness_every and epoch % config.sharpness_every == 0)
        ):
            probes.append((config.sharpness_rho, config.sharpness_steps))
        if config.sharpness_multi_steps and (
            final or (config.sharpness_multi_every and epoch % config.sharpness_multi_every == 0)
        ):
            probes.append((config.sharpness_rho_multi, config.sharpness_multi_steps))
        for rho, steps in probes:
            if should_stop is not None and should_stop():  # a 20-step probe can take a while
                raise _Cancelled()
            # a training subset smaller than sharpness_m gives one batch of all its points
            m = min(config.sharpness_m, len(y))
            value = m_sharpness(model, x, y, rho=rho, steps=steps, m=m)
            store.heartbeat(run_id)
            emit(
                {
                    "kind": "sharpness",
                    "epoch": epoch,
                    "step": step,
                    "time": now(),
                    "steps": steps,
                    "rho": rho,
                    "value": value,
                    "m": m,
                    "n": len(y),
                }
            )

    if start_epoch == 0:
        for rec in norm_stats_records(
            model, epoch=0, step=0, time=0.0, bins_gamma=bins["gamma"], bins_beta=bins["beta"]
        ):
            emit(rec)

    model.train()
    last_test = (float("nan"), float("nan"))
    is_cpu = device.type == "cpu"
    for epoch in range(start_epoch, config.epochs):
        state["epoch"] = epoch
        t_epoch = time.monotonic()
        use_sam = config.sam_active(epoch)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        win = {"loss": 0.0, "correct": 0, "n": 0, "steps": 0, "t": time.monotonic()}
        win_loss = torch.zeros((), device=device)
        win_correct = torch.zeros((), device=device, dtype=torch.long)
        for i, (x, y) in enumerate(s.train_loader.epoch_batches(epoch)):
            if should_stop is not None and should_stop():
                raise _Cancelled()
            out_box: list[torch.Tensor] = []

            def closure(x=x, y=y, out_box=out_box):
                with _autocast(device, amp):
                    out = model(x)
                    loss = criterion(out.float(), y)
                loss.backward()
                out_box.append(out.detach())
                return loss.detach()

            if use_sam:
                opt.zero_grad(set_to_none=True)
                with opt.ascent_pass():  # SAM-ON: gradients of the perturbed parameters only
                    loss = closure()
                opt.first_step(zero_grad=True)
                with bn_second_pass(model, config.bn_second_pass):
                    closure()
                opt.second_step(zero_grad=True)
            else:
                opt.zero_grad(set_to_none=True)
                loss = closure()
                (opt.base_optimizer if isinstance(opt, SAM) else opt).step()
            lr = sched.get_last_lr()[0]
            sched.step()
            step += 1
            state["step"] = step
            n = len(y)
            batch_correct = (out_box[0].argmax(1) == y).sum()
            loss_sum += loss * n
            correct += batch_correct
            win_loss += loss * n
            win_correct += batch_correct
            seen += n
            win["n"] += n
            win["steps"] += 1
            # A step record every log_every_s, and one closing each epoch (short epochs get one).
            due = (time.monotonic() - win["t"] >= config.log_every_s) or i == steps_per_epoch - 1
            # Checking the loss syncs with the device: every step on the CPU (free), on a GPU
            # only when a step record is due (the record then names the step it saw it at).
            if is_cpu or due:
                lv = float(loss)
                if not math.isfinite(lv):
                    raise _Diverged(epoch + 1, step, lv)
            if due:
                dt = time.monotonic() - win["t"]
                emit(
                    {
                        "kind": "step",
                        "epoch": epoch + 1,
                        "step": step,
                        "time": now(),
                        "loss": float(win_loss) / win["n"],
                        "acc": float(win_correct) / win["n"],
                        "lr": lr,
                        "step_time": dt / win["steps"],
                        "images_per_s": win["n"] / dt,
                    }
                )
                progress = (epoch + seen / (steps_per_epoch * config.batch_size)) / config.epochs
                store.write_status(
                    run_id,
                    "running",
                    epoch_in_progress=epoch + 1,
                    step=step,
                    progress=round(progress, 4),
                )
                win.update(n=0, steps=0, t=time.monotonic())
                win_loss.zero_()
                win_correct.zero_()

        train_loss, train_acc = float(loss_sum) / seen, float(correct) / seen
        if not math.isfinite(train_loss):
            raise _Diverged(epoch + 1, step, train_loss)
        store.heartbeat(run_id)
        if should_stop is not None and should_stop():
            raise _Cancelled()
        test_loss, test_acc = evaluate(model, s.test_loader, device, amp)
        store.heartbeat(run_id)
        last_test = (test_loss, test_acc)
        best_acc = max(best_acc, test_acc)
        done = epoch + 1
        for rec in norm_stats_records(
            model,
            epoch=done,
            step=step,
            time=now(),
            bins_gamma=bins["gamma"],
            bins_beta=bins["beta"],
        ):
            emit(rec)
        final = done == config.epochs
        probe_sharpness(done, final)
        epoch_times.append(time.monotonic() - t_epoch)
        recent = epoch_times[-3:]
        eta = (config.epochs - done) * sum(recent) / len(recent)
        emit(
            {
                "kind": "epoch",
                "epoch": done,
                "step": step,
                "time": now(),
                "train_loss": train_loss,
                "train_acc": train_acc,
                "test_loss": test_loss,
                "test_acc": test_acc,
                "epoch_time": epoch_times[-1],
                "eta_s": eta,
                "sam": use_sam,
            }
        )
        atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": _rng_state(),
                "epoch": done,
                "step": step,
                "elapsed": now(),
                "best_acc": best_acc,
                "epoch_times": epoch_times,
                "config": config.to_dict(),
            },
            ckpt_path,
        )
        state["epoch"] = done
        store.write_status(
            run_id,
            "running",
            epoch=done,
            step=step,
            progress=round(done / config.epochs, 4),
            eta_s=eta,
            test_acc=test_acc,
            best_test_acc=best_acc,
        )

    summary = {
        "state": "finished",
        "final_test_acc": last_test[1],
        "final_test_loss": last_test[0],
        "best_test_acc": best_acc,
        "epochs_done": config.epochs,
        "steps": step,
        "train_time_s": now(),
        "params_total": s.n_params,
        "params_perturbed": s.n_perturbed,
        "perturbed_share": s.n_perturbed / s.n_params if s.n_params else 0.0,
        "method_label": config.method_label(),
        "rho": config.resolved_rho() if config.method == "sam" else None,
        "device": str(device),
        "hardware": device_description(device),
        "precision": str(amp).replace("torch.", "") if amp else "fp32",
        "torch": torch.__version__,
        "data_source": s.data_source,
        "synthetic_data": s.synthetic,
    }
    store.write_summary(run_id, summary)
    store.write_status(
        run_id,
        "finished",
        progress=1.0,
        epoch=config.epochs,
        step=step,
        test_acc=last_test[1],
        eta_s=0.0,
    )
    return summary
