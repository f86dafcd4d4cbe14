"""Training throughput of the on-device data path, against the compute limit and a DataLoader.

Three ways to feed the same model the same number of SGD steps (batch 128 by default):

* ``device``     ``samon_core.train.data.DeviceLoader`` with ``crop_flip``: the whole split on
                 the device as uint8, batched crop + flip + normalise there (what the trainer uses);
* ``prebuilt``   batches built before the clock starts, already on the device: the compute limit
                 (forward + backward + optimizer step and nothing else);
* ``dataloader`` ``torch.utils.data.DataLoader`` (2 workers) over the uint8 images with per-image
                 PIL transforms ``RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
                 Normalize``, exactly torchvision's ``CIFAR100.__getitem__`` path, then
                 ``.to(device)``.

The three are interleaved (device, prebuilt, dataloader, device, ...) ``--repeats`` times and the
median images/s reported, with the ratios to the compute limit. Images come from a real CIFAR-100
copy in ``--data-dir`` when there is one, otherwise from a generated CIFAR-100-format folder in a
temporary directory (``write_cifar_like`` of ``tests/support/cifar.py``; the output says which).

    python bench/throughput.py                      # CPU: ~3 min with the defaults (2 cores)
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


def main(argv=None) -> None:
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
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    gpu_run = device.type == "cuda"
    steps = args.steps or (200 if gpu_run else 4)  # CPU: ~3.5 s per ResNet-20 step on 2 cores
    warmup = args.warmup if args.warmup is not None else (10 if gpu_run else 1)
    bs = args.batch_size
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory(prefix="samon-bench-") as tmp:
        data, source = load_images(args.data_dir, (steps + warmup) * bs, tmp)
        if len(data.train_y) < (steps + warmup) * bs:
            sys.exit(f"need {(steps + warmup) * bs} training images, have {len(data.train_y)}")
        model, model_name = build(args.model, data.num_classes)
        model = model.to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        loader = DeviceLoader(data, device, bs, train=True, augment="crop_flip", seed=0)
        # [(x, y)] on the device, built once before any clock runs.
        prebuilt = list(itertools.islice(loader.epoch_batches(99), steps + warmup))

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
        dl = torch.utils.data.DataLoader(
            pil,
            batch_size=bs,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=args.workers > 0,
        )

        def run(kind: str, rep: int) -> float:
            if kind == "device":
                it = loader.epoch_batches(rep)
            elif kind == "prebuilt":
                it = iter(prebuilt)
            else:
                it = iter(dl)  # a new epoch; persistent workers, no restart
            train_steps(model, opt, it, warmup, device)  # fills queues / caches, not timed
            return steps * bs / train_steps(model, opt, it, steps, device)

        kinds = ("device", "prebuilt", "dataloader")
        results: dict[str, list[float]] = {k: [] for k in kinds}
        train_steps(model, opt, iter(prebuilt), warmup, device)  # first-call overheads
        for rep in range(args.repeats):
            for kind in kinds:
                results[kind].append(run(kind, rep))
                print(
                    f"  repeat {rep + 1}/{args.repeats} {kind:<10} {results[kind][-1]:9.1f} img/s",
                    flush=True,
                )

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none used"
    print()
    print(
        f"model      {model_name}, batch {bs}, {steps} timed steps x {args.repeats} repeats "
        f"(+{warmup} warm-up steps each), SGD"
    )
    print(f"data       {source}")
    print(
        f"hardware   CPU {cpu_model()} ({os.cpu_count()} cores visible, torch threads "
        f"{torch.get_num_threads()}); GPU {gpu}; device {device}"
    )
    print(f"software   torch {torch.__version__}, python {platform.python_version()}")
    print()
    labels = {
        "device": "DeviceLoader crop_flip (ours)",
        "prebuilt": "pre-built batches (compute limit)",
        "dataloader": f"DataLoader + PIL, {args.workers} workers",
    }
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{'data path':<36}{'median img/s':>14}{'ms/step':>10}   runs (img/s)")
    for k in kinds:
        runs = ", ".join(f"{v:.0f}" for v in results[k])
        print(f"{labels[k]:<36}{med[k]:>14.1f}{1000 * bs / med[k]:>10.1f}   {runs}")
    print()
    print(f"DeviceLoader / compute limit: {med['device'] / med['prebuilt']:.3f}")
    print(f"DataLoader   / compute limit: {med['dataloader'] / med['prebuilt']:.3f}")
    if device.type == "cpu":
        print("(on CPU the DataLoader workers compete with the training threads for the cores)")


if __name__ == "__main__":
    main()
