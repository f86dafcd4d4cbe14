"""Robust accuracy of a trained model: under l_inf / l2 PGD attacks and under common corruptions.

The suite (budgets, steps, corruptions, severities) is ``samon_core.catalog.robustness``; this
module runs it. The poster reports robust accuracy of ViT-S/32 on ImageNet (SAM roughly doubles
it, SAM-ON adds 3-5 points); the lab measures the same quantity on every run that asks for it
(``RunConfig.robustness``), at the end of training (``callbacks.Robustness``) or later from a
finished run's checkpoint (``python -m samon_core robustness RUN``, ``robust_run.py``).

**Where the attack lives.** Images x are in pixel units, [0, 1]; the model sees the data
pipeline's normalisation z = (x - mu_c) / sigma_c per channel c (the dataset's mean and std,
CIFAR's or the synthetic set's, ``DatasetTensors.mean/std``). PGD runs on x, through
``forward(x) = model((x - mu) / sigma)``, so eps is in pixel units exactly as the poster states
it. For l_inf that is the same as a box of half-widths eps / sigma_c in the normalised space;
for l2 the pixel ball is an ellipsoid there (the channels' sigmas differ), which a single
normalised-space radius would only approximate.

**PGD** (Madry et al., ICLR 2018), for an image x with label y, radius eps, step alpha:

    d_0     = a random point of the ball B = {d : ||d||_p <= eps}, clipped so x + d_0 in [0, 1]
    g_k     = grad_d CE(f(x + d_k), y)
    d_k+1   = clip_[0,1](x, P_B(d_k + alpha s(g_k))) ,
              s(g) = sign(g) for l_inf,  g / ||g||_2 for l2 (per image),
              P_B(d) = clamp(d, -eps, eps) for l_inf,  d min(1, eps / ||d||_2) for l2,
              clip_[0,1](x, d) = clamp(x + d, 0, 1) - x

for k = 0 .. steps-1 (``project``, ``ascent_direction``, ``clip_to_pixels``, ``pgd_path``).
Clipping after the projection keeps d in B: it only moves coordinates towards x. An image counts
as robust if the model classifies x itself *and every iterate* x + d_0 .. x + d_steps correctly:
each iterate is a valid perturbation, so the attack keeps its best point (the logits of d_0 ..
d_steps-1 are computed for the gradients anyway), and an image misclassified unperturbed counts
as not robust, as RobustBench counts it (robust accuracy <= clean accuracy). At eps = 0 every
iterate is x itself, so the robust accuracy equals the clean accuracy exactly. A decided image
(misclassified once) leaves the batch, so an attack costs passes over the images still standing.

**Model state.** Evaluated in eval mode, BatchNorm with its running statistics as in the paper's
evaluation, in fp32 (no autocast: the attack's gradients should not be bf16 noise); the model's
train/eval mode is restored afterwards and no parameter's ``.grad`` is touched (the gradient is
taken with respect to d only).

**Why a PGD of our own, not a kept attack library.** Checked on PyPI for torch 2.14.1:
torchattacks 3.5.1 (MIT, last release Oct 2023) pins ``requests~=2.25.1``, so installing it would
downgrade requests and urllib3 in the app's environment; foolbox 3.3.4 (MIT, last release March
2024) pulls GitPython and eagerpy (last release 2021) for one attack. Both expect inputs in
[0, 1] with the normalisation inside the model (a wrapper either way) and draw their random
start from the global RNG, which would shift the random numbers of whatever runs after. The PGD
here is some 40 lines of pure functions, tested in float64 against a plain for-loop reference
(``tests/core/train/test_robustness.py``: same iterates to 1e-10), and at eps = 0.

**Corruptions** (Hendrycks & Dietterich, ICLR 2019, ``make_cifar_c.py``): gaussian noise
clamp(x + sigma N(0, 1)), gaussian blur (sigma; kernel truncated at 4 sigma, edge pixels
repeated: scikit-image's ``gaussian`` as CIFAR-10-C calls it), contrast clamp((x - m) c + m)
with m the per-image, per-channel mean, and JPEG at a quality (Pillow's encoder and decoder, as
CIFAR-10-C's; torchvision.io can do it on tensors too, but is deprecated there since 0.29).
Every corrupted image is rounded to 8 bits, as CIFAR-10-C stores them. Noise is drawn from a
CPU generator with a fixed seed, the same on every device.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from time import monotonic

import torch
from torch import nn

from samon_core.catalog import robustness as suite
from samon_core.catalog.choices import ROBUSTNESS
from samon_core.catalog.robustness import Budget

Forward = Callable[[torch.Tensor], torch.Tensor]

# ---------------------------------------------------------------------------------------------
# PGD as pure functions (per image: the norms are over (C, H, W))
# ---------------------------------------------------------------------------------------------


def _per_image_norm(t: torch.Tensor) -> torch.Tensor:
    """||t_i||_2 per image, shaped (B, 1, 1, 1) for broadcasting."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """P_B(delta): the nearest point of the ball ||d||_p <= eps, per image."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        n = _per_image_norm(delta)
        # min(1, eps / n); n = 0 (inside) divides nothing: the factor is 1
        factor = torch.where(n > eps, eps / n.clamp_min(torch.finfo(n.dtype).tiny), 1.0)
        return delta * factor
    raise ValueError(f"norm must be 'linf' or 'l2', not {norm!r}")


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """s(g): the steepest ascent direction of unit p-norm: sign(g) for l_inf, g / ||g||_2 per
    image for l2 (a zero gradient gives no step)."""
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return grad / _per_image_norm(grad).clamp_min(torch.finfo(grad.dtype).tiny)
    raise ValueError(f"norm must be 'linf' or 'l2', not {norm!r}")


def clip_to_pixels(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The perturbation that keeps x + delta in the valid pixel range [0, 1]."""
    return (x + delta).clamp(0.0, 1.0) - x


def random_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator
                 ) -> torch.Tensor:
    """d_0: uniform in the l_inf box; for l2 a uniformly random direction at a radius
    eps U(0, 1) (as torchattacks' PGDL2). Drawn on the CPU from ``generator`` (the same start on
    every device), in x's dtype, clipped to the pixel range."""
    shape = tuple(x.shape)
    if norm == "linf":
        d = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1) * eps
    elif norm == "l2":
        g = torch.randn(shape, generator=generator, dtype=torch.float64)
        r = torch.rand((shape[0],) + (1,) * (len(shape) - 1), generator=generator,
                       dtype=torch.float64)
        d = g / _per_image_norm(g).clamp_min(1e-300) * r * eps
    else:
        raise ValueError(f"norm must be 'linf' or 'l2', not {norm!r}")
    return clip_to_pixels(x, d.to(device=x.device, dtype=x.dtype))


def step_size(eps: float, steps: int, factor: float = suite.PGD_STEP_FACTOR) -> float:
    """alpha = factor * eps / steps."""
    return factor * eps / steps


def input_gradient(forward: Forward, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits of x + delta, grad_delta of the summed cross-entropy), without touching any
    parameter's ``.grad``."""
    delta = delta.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = forward(x + delta)
        loss = nn.functional.cross_entropy(logits, y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, delta)
    return logits.detach(), grad


def pgd_step(x: torch.Tensor, delta: torch.Tensor, grad: torch.Tensor, *, norm: str, eps: float,
             alpha: float) -> torch.Tensor:
    """d_k+1 = clip_[0,1](x, P_B(d_k + alpha s(g_k))): one PGD step, per image."""
    return clip_to_pixels(x, project(delta + alpha * ascent_direction(grad, norm), eps, norm))


def pgd_path(forward: Forward, x: torch.Tensor, y: torch.Tensor, delta0: torch.Tensor, *,
             norm: str, eps: float, alpha: float, steps: int
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The iterates (d_k, logits of x + d_k) for k = 0 .. steps of every image: the textbook
    loop, which ``pgd_robust`` runs on the images still standing only."""
    delta = delta0.detach()
    for _ in range(steps):
        logits, grad = input_gradient(forward, x, y, delta)
        yield delta, logits
        delta = pgd_step(x, delta, grad, norm=norm, eps=eps, alpha=alpha)
    with torch.no_grad():
        yield delta, forward(x + delta)


def pgd_robust(forward: Forward, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float,
               steps: int = suite.PGD_STEPS, alpha: float | None = None,
               generator: torch.Generator | None = None,
               clean_correct: torch.Tensor | None = None) -> torch.Tensor:
    """Per image (bool, (B,)): classified correctly on x and at every PGD iterate x + d_k
    (``pgd_path``). ``generator``: a random start drawn from it; None starts at d_0 = 0.
    ``clean_correct``: whether each x is classified correctly, if known (saves a pass).

    An image misclassified once is decided, so it leaves the batch: the model is in eval mode,
    so every image's iterates are its own (no batch statistics), and the attack costs passes
    over the images still standing only (the same answer as over all of them; tested)."""
    alpha = step_size(eps, steps) if alpha is None else alpha
    delta = (torch.zeros_like(x) if generator is None
             else random_start(x, eps, norm, generator))
    if clean_correct is None:
        with torch.no_grad():
            clean_correct = forward(x).argmax(1) == y
    robust = clean_correct.clone()
    alive = robust.nonzero().flatten()
    xs, ys, delta = x[alive], y[alive], delta[alive]
    for k in range(steps + 1):
        if not len(alive):
            break
        if k < steps:
            logits, grad = input_gradient(forward, xs, ys, delta)
        else:
            with torch.no_grad():
                logits = forward(xs + delta)
        ok = logits.argmax(1) == ys
        robust[alive[~ok]] = False
        alive, xs, ys, delta = alive[ok], xs[ok], ys[ok], delta[ok]
        if k < steps:
            delta = pgd_step(xs, delta, grad[ok], norm=norm, eps=eps, alpha=alpha)
    return robust


# ---------------------------------------------------------------------------------------------
# corruptions (images in [0, 1], rounded to 8 bits afterwards)
# ---------------------------------------------------------------------------------------------


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """x rounded to the nearest of the 256 pixel levels (still a float image in [0, 1])."""
    return (x.clamp(0.0, 1.0) * 255.0).round() / 255.0


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(tuple(x.shape), generator=generator).to(device=x.device, dtype=x.dtype)
    return to_8bit(x + sigma * noise)


def blur_kernel(sigma: float) -> torch.Tensor:
    """The normalised 1D Gaussian of ``sigma`` pixels, truncated at int(4 sigma + 0.5)."""
    radius = int(4.0 * sigma + 0.5)
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (k / sigma) ** 2)
    return w / w.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel, edge pixels repeated; sigma 0 = unchanged."""
    if sigma <= 0:
        return to_8bit(x)
    w = blur_kernel(sigma).to(device=x.device, dtype=x.dtype)
    c, r = x.shape[1], (len(w) - 1) // 2
    rows = w.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    cols = w.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    out = nn.functional.pad(x, (r, r, 0, 0), mode="replicate")
    out = nn.functional.conv2d(out, rows, groups=c)
    out = nn.functional.pad(out, (0, 0, r, r), mode="replicate")
    return to_8bit(nn.functional.conv2d(out, cols, groups=c))


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return to_8bit((x - mean) * factor + mean)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Every image saved as a JPEG of ``quality`` (1..100) and read back, with Pillow as
    CIFAR-10-C does (torchvision.io's encode/decode_jpeg do it too, but are deprecated since
    torchvision 0.29); on the CPU, one image at a time (32x32: well under a millisecond each)."""
    import numpy as np  # only here: the rest of the module needs torch only
    from PIL import Image

    u8 = (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for image in u8:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        out.append(np.asarray(Image.open(buffer).convert("RGB")))
    decoded = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)
    return decoded.to(device=x.device, dtype=x.dtype) / 255.0


def corrupt(x: torch.Tensor, name: str, level: float, generator: torch.Generator
            ) -> torch.Tensor:
    """x under corruption ``name`` at ``level`` (``catalog.robustness.CORRUPTIONS``)."""
    if name == "gaussian_noise":
        return gaussian_noise(x, level, generator)
    if name == "gaussian_blur":
        return gaussian_blur(x, level)
    if name == "contrast":
        return contrast(x, level)
    if name == "jpeg":
        return jpeg(x, int(level))
    raise ValueError(f"unknown corruption {name!r}; known: {', '.join(suite.CORRUPTIONS)}")


# ---------------------------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------------------------


def normalized_forward(model: nn.Module, mean: Sequence[float], std: Sequence[float],
                       like: torch.Tensor) -> Forward:
    """x in [0, 1] -> model((x - mean) / std), the data pipeline's normalisation per channel."""
    m = torch.tensor(mean, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    return lambda x: model((x - m) / s)


def _accuracy(correct: Sequence[torch.Tensor]) -> float:
    total = torch.cat(list(correct))
    return float(total.float().mean()) if len(total) else math.nan


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (BatchNorm's running statistics) and no parameter gradients (the attack needs
    the input's only: a third faster on a CPU) for the block; both restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def evaluate_robustness(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, mean: Sequence[float],
    std: Sequence[float], attacks: Sequence[Budget] = suite.ATTACKS,
    corruptions: Mapping[str, Sequence[float]] = suite.CORRUPTIONS,
    steps: int = suite.PGD_STEPS, seed: int = suite.PGD_SEED, batch_size: int = 256,
    tick: Callable[[], None] | None = None,
) -> dict:
    """Clean, attacked and corrupted accuracy of ``model`` on images ``x`` (pixel units, (N, C,
    H, W) on the model's device) with labels ``y``, as a plain dict (``RobustnessRecord``'s
    fields but kind, epoch, step, time and suite). ``tick`` is called between attacks (a
    heartbeat, a cancel check). Each attack's random starts come from a generator seeded with
    ``seed``, so every run of a comparison is attacked from the same starts."""
    started = monotonic()
    with evaluation_mode(model):
        forward = normalized_forward(model, mean, std, x)
        batches = [(x[i:i + batch_size], y[i:i + batch_size])
                   for i in range(0, len(y), batch_size)]
        with torch.no_grad():
            correct = [forward(xb).argmax(1) == yb for xb, yb in batches]
        rows = []
        for budget in attacks:
            if tick is not None:
                tick()
            gen = torch.Generator().manual_seed(seed)
            robust = [pgd_robust(forward, xb, yb, norm=budget.norm, eps=budget.eps, steps=steps,
                                 generator=gen, clean_correct=ok)
                      for (xb, yb), ok in zip(batches, correct, strict=True)]
            rows.append({"norm": budget.norm, "eps": budget.eps, "label": budget.label,
                         "poster": budget.poster, "acc": _accuracy(robust)})
        corrupted = []
        for name, levels in corruptions.items():
            if tick is not None:
                tick()
            for severity, level in enumerate(levels, start=1):
                gen = torch.Generator().manual_seed(suite.CORRUPTION_SEED + severity)
                with torch.no_grad():
                    acc = _accuracy([forward(corrupt(xb, name, level, gen)).argmax(1) == yb
                                     for xb, yb in batches])
                corrupted.append({"name": name, "severity": severity, "level": level,
                                  "acc": acc})
    return {"images": len(y), "clean_acc": _accuracy(correct), "attacks": rows,
            "corruptions": corrupted, "pgd_steps": steps,
            "pgd_step_factor": suite.PGD_STEP_FACTOR, "seed": seed,
            "seconds": monotonic() - started}


def pixel_test_images(loader, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images of a ``DeviceLoader`` (its un-augmented split in order) in
    pixel units [0, 1], float32, with their labels, on its device."""
    n = min(int(n), loader.num_samples)
    return loader.x[:n].float() / 255.0, loader.y[:n]


def measure(model: nn.Module, loader, images: int, suite_name: str,
            tick: Callable[[], None] | None = None) -> dict:
    """Run suite ``suite_name`` (``RunConfig.robustness``, not "off") on the first ``images``
    test images of ``loader``; the result dict with ``suite`` added."""
    if suite_name not in ROBUSTNESS or suite_name == "off":
        raise ValueError(f"robustness suite must be one of {', '.join(ROBUSTNESS[1:])}; got "
                         f"{suite_name!r}")
    x, y = pixel_test_images(loader, images)
    result = evaluate_robustness(model, x, y, mean=loader.mean, std=loader.std, tick=tick)
    return {"suite": suite_name, **result}
