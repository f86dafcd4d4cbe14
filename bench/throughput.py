"""Training throughput of the on-device data path, against the compute limit and a DataLoader.

Four ways to feed the same model the same number of SGD steps (batch 128 by default):

* ``device``     ``samon_core.train.data.DeviceLoader`` with ``crop_flip``: the whole split on
                 the device as uint8, batched crop + flip + normalise there (what the trainer uses);
* ``device_aa``  the same with ``autoaugment``: crop + flip, then AutoAugment's CIFAR-10 policy
                 per image (torchvision, on the device; the paper presets' augmentation);
* ``prebuilt``   batches built before the clock starts, already on the device: the compute limit
                 (forward + backward + optimizer step and nothing else);
* ``dataloader`` ``torch.utils.data.DataLoader`` (2 workers) over the uint8 images with per-image
                 PIL transforms ``RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
                 Normalize``, exactly torchvision's ``CIFAR100.__getitem__`` path, then
                 ``.to(device)``.

The four are interleaved (device, device_aa, prebuilt, dataloader, device, ...) ``--repeats`` times
and the median images/s reported, with the ratios to the compute limit and AutoAugment's ratio to
crop + flip. ``--no-dataloader`` leaves the DataLoader out (its workers compete for the cores of a
small CPU). Before the training rounds, the data path alone is timed: ``--aug-batches`` batches of
each augmentation built without training (ms per batch), the augmentation's own cost.

Images come from a real CIFAR-100 copy in ``--data-dir`` when there is one, otherwise from a
generated CIFAR-100-format folder in a temporary directory (``write_cifar_like`` of
``tests/support/cifar.py``; the output says which).

    python bench/throughput.py                      # CPU: ~4 min with the defaults (2 cores)
    python bench/throughput.py --steps 4 --repeats 3 --no-dataloader   # CPU, ~1-2 min
    python bench/throughput.py --device cuda --steps 200
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout
sys.path.insert(0, str(REPO / "tests"))  # the CIFAR-format writer is test support code

from support.cifar import write_cifar_like  # noqa: E402

from samon_core.train.data import (  # noqa: E402
    DatasetTensors,
    DatasetUnavailable,
    DeviceLoader,
    load_dataset,
)
from samon_core.train.hardware import cpu_model  # noqa: E402


def build(name: str, num_classes: int) -> tuple[nn.Module, str]:
    """The registry model, or a small stand-in CNN (said so) while the registry is missing."""
    try:
        from samon_core.models import build_model

        return build_model(name, num_classes=num_classes), name
    except Exception as exc:  # noqa: BLE001 - any import/registry failure -> fallback, reported
        print(
            f"NOTE: could not build {name!r} from samon_core.models ({type(exc).__name__}: "
            f"{exc}); measuring a small stand-in CNN instead."
        )
        net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.Conv2d(64, 128, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(128, num_classes),
        )
        return net, "stand-in CNN"


class PilCifar(torch.utils.data.Dataset):
    """uint8 HWC images + labels, served like torchvision's CIFAR: PIL image -> transform."""

    def __init__(self, images_hwc, targets, transform):
        self.data, self.targets, self.transform = images_hwc, targets, transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def load_images(data_dir: str, n_needed: int, tmp: str) -> tuple[DatasetTensors, str]:
    try:
        data = load_dataset("cifar100", data_dir, download=False)
        return data, data.source
    except DatasetUnavailable:
        n = max(n_needed, 1024)
        write_cifar_like(tmp, "cifar100", n_train=n, n_test=16, seed=0)
        data = load_dataset("cifar100", tmp, download=False)
        return data, (
            f"no CIFAR-100 in {data_dir}: generated CIFAR-100-format folder with {n} "
            f"synthetic images in {tmp}"
        )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps(model, opt, batches, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` SGD steps on batches drawn from the iterator ``batches``."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = next(batches)
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def augmentation_ms(data, device: torch.device, bs: int, augment: str, batches: int) -> float:
    """Milliseconds per batch to build ``batches`` batches with ``augment`` (no training)."""
    loader = DeviceLoader(data, device, bs, train=True, augment=augment, seed=0)
    it = loader.epoch_batches(7)
    next(it)  # first-call overheads (the policy's construction, caches)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(batches):
        next(it)
    sync(device)
    return 1000 * (time.perf_counter() - t0) / batches


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="timed SGD steps per measurement (default 4 on CPU, 200 on GPU)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed steps before each measurement (default 1 on CPU, 10 on GPU)",
    )
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--no-dataloader", action="store_true", help="leave the DataLoader row out")
    ap.add_argument("--aug-batches", type=int, default=5,
                    help="batches per augmentation in the data-path-only timing")
    return ap.parse_args(argv)


def pil_dataloader(data, bs: int, workers: int, device: torch.device):
    """torchvision's CIFAR path: per-image PIL crop + flip + ToTensor + Normalize, in workers."""
    from torchvision import transforms as T

    tf = T.Compose(
        [
            T.RandomCrop(32, padding=4),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(data.mean, data.std),
        ]
    )
    pil = PilCifar(data.train_x.permute(0, 2, 3, 1).numpy(), data.train_y.tolist(), tf)
    return torch.utils.data.DataLoader(
        pil,
        batch_size=bs,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )


def measure(args, device, steps: int, warmup: int, tmp: str) -> dict:
    """The interleaved training rounds and the data-path-only timings (see the module doc)."""
    bs = args.batch_size
    data, source = load_images(args.data_dir, (steps + warmup) * bs, tmp)
    if len(data.train_y) < (steps + warmup) * bs:
        sys.exit(f"need {(steps + warmup) * bs} training images, have {len(data.train_y)}")
    model, model_name = build(args.model, data.num_classes)
    model = model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    loader = DeviceLoader(data, device, bs, train=True, augment="crop_flip", seed=0)
    loader_aa = DeviceLoader(data, device, bs, train=True, augment="autoaugment", seed=0)
    aug_ms = {
        augment: [augmentation_ms(data, device, bs, augment, args.aug_batches)
                  for _ in range(args.repeats)]
        for augment in ("crop_flip", "autoaugment")
    }
    # [(x, y)] on the device, built once before any clock runs.
    prebuilt = list(itertools.islice(loader.epoch_batches(99), steps + warmup))
    kinds = ("device", "device_aa", "prebuilt")
    if not args.no_dataloader:
        kinds += ("dataloader",)
        dl = pil_dataloader(data, bs, args.workers, device)

    def batches(kind: str, rep: int):
        if kind == "device":
            return loader.epoch_batches(rep)
        if kind == "device_aa":
            return loader_aa.epoch_batches(rep)
        if kind == "prebuilt":
            return iter(prebuilt)
        return iter(dl)  # a new epoch; persistent workers, no restart

    results: dict[str, list[float]] = {k: [] for k in kinds}
    train_steps(model, opt, iter(prebuilt), warmup, device)  # first-call overheads
    for rep in range(args.repeats):
        for kind in kinds:
            it = batches(kind, rep)
            train_steps(model, opt, it, warmup, device)  # fills queues / caches, not timed
            results[kind].append(steps * bs / train_steps(model, opt, it, steps, device))
            print(
                f"  repeat {rep + 1}/{args.repeats} {kind:<10} {results[kind][-1]:9.1f} img/s",
                flush=True,
            )
    return {"results": results, "aug_ms": aug_ms, "model": model_name, "source": source}


def report(args, device, steps: int, warmup: int, m: dict) -> None:
    bs, results, aug_ms = args.batch_size, m["results"], m["aug_ms"]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none used"
    print()
    print(
        f"model      {m['model']}, batch {bs}, {steps} timed steps x {args.repeats} repeats "
        f"(+{warmup} warm-up steps each), SGD"
    )
    print(f"data       {m['source']}")
    print(
        f"hardware   CPU {cpu_model()} ({os.cpu_count()} cores visible, torch threads "
        f"{torch.get_num_threads()}); GPU {gpu}; device {device}"
    )
    print(f"software   torch {torch.__version__}, python {platform.python_version()}")
    print()
    labels = {
        "device": "DeviceLoader crop_flip (ours)",
        "device_aa": "DeviceLoader autoaugment (ours)",
        "prebuilt": "pre-built batches (compute limit)",
        "dataloader": f"DataLoader + PIL, {args.workers} workers",
    }
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{'data path':<36}{'median img/s':>14}{'ms/step':>10}   runs (img/s)")
    for k, values in results.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{labels[k]:<36}{med[k]:>14.1f}{1000 * bs / med[k]:>10.1f}   {runs}")
    print()
    print(f"DeviceLoader / compute limit: {med['device'] / med['prebuilt']:.3f}")
    print(f"DeviceLoader autoaugment / compute limit: {med['device_aa'] / med['prebuilt']:.3f}")
    print(f"autoaugment / crop_flip (training img/s): {med['device_aa'] / med['device']:.3f}")
    if "dataloader" in med:
        print(f"DataLoader   / compute limit: {med['dataloader'] / med['prebuilt']:.3f}")
    print()
    aug = {k: statistics.median(v) for k, v in aug_ms.items()}
    print(f"data path alone, {args.aug_batches} batches of {bs} x {args.repeats} repeats "
          "(median ms/batch; runs):")
    for k, v in aug_ms.items():
        print(f"  {k:<12}{aug[k]:>9.1f}   {', '.join(f'{x:.1f}' for x in v)}")
    print(f"  autoaugment adds {aug['autoaugment'] - aug['crop_flip']:.1f} ms per batch "
          f"({aug['autoaugment'] / aug['crop_flip']:.1f}x the crop_flip path)")
    if device.type == "cpu" and "dataloader" in med:
        print("(on CPU the DataLoader workers compete with the training threads for the cores)")


def main(argv=None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    gpu_run = device.type == "cuda"
    steps = args.steps or (200 if gpu_run else 4)  # CPU: ~3.5 s per ResNet-20 step on 2 cores
    warmup = args.warmup if args.warmup is not None else (10 if gpu_run else 1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="samon-bench-") as tmp:
        measured = measure(args, device, steps, warmup, tmp)
    report(args, device, steps, warmup, measured)


if __name__ == "__main__":
    main()
