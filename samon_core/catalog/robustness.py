"""The robustness suite a finished run is measured with: attack budgets, PGD settings, corruptions.

Plain data, no torch: the trainer's evaluation (``samon_core.train.robustness``) runs it, the
app's Robustness tab labels its curves with it, and a test checks the two agree. One suite for
now, ``"standard"`` (``RunConfig.robustness``, one of ``choices.ROBUSTNESS``):

* **Adversarial accuracy**: the share of images still classified correctly under a PGD attack
  of radius eps around each image. Budgets in *pixel units* of images in [0, 1] (how the poster,
  and RobustBench, state them):

  - the poster's (ViT-S/32, ImageNet 224x224): l2 eps 0.25 and 0.5, l_inf eps 0.25/255 and
    0.5/255 (``paper.VIT_ROBUSTNESS_BUDGETS``);
  - budgets that suit 32x32 inputs: l_inf 1/255 and 2/255. An image of 32x32x3 values has 49
    times fewer of them than one of 224x224x3, so an l_inf budget moves its l2 norm 7 times
    less (||d||_2 <= eps sqrt(n)); the poster's l_inf budgets barely dent a small CIFAR net,
    while l2 0.25 / 0.5 are the usual CIFAR l2 budgets already.

* **PGD** (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
  ICLR 2018): ``PGD_STEPS`` steps of size alpha = ``PGD_STEP_FACTOR`` * eps / steps (the rule of
  thumb of Madry's lab's ``robustness`` library: the steps can travel 2.5 radii in all, so the
  ball's boundary is reached from any start), from a uniformly random start in the ball drawn
  with the fixed seed ``PGD_SEED``. Measured on this 2-core machine for the tiny ResNet on 512
  test images (an image leaves the attack once misclassified, so the cost follows the model):
  2.7-3.1 s per run inside the quick demo (models at 12-15% accuracy); 16 s for a tiny ResNet at
  65% (claims' cpu size, SGD) with one thread at load 6, where 5 steps took 11 s but attacked up
  to 0.4 points more weakly (1/255, 2/255, l2 0.25), hence 10.

* **Corruptions** (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
  Corruptions and Perturbations", ICLR 2019; the CIFAR-10-C code, ``make_cifar_c.py``): four of
  its fifteen, computed on the fly from the test images, at CIFAR-10-C's severities 1, 3 and 5
  (the lab's severities 1, 2, 3). The four need nothing beyond torch and Pillow: gaussian noise
  (sigma), gaussian blur (sigma, in pixels), contrast (the factor c in (x - mean) c + mean, per
  image and channel) and JPEG (quality; Pillow's codec, as CIFAR-10-C's).
"""

from __future__ import annotations

from typing import NamedTuple

from samon_core.paper import VIT_ROBUSTNESS_BUDGETS

# Test images the suite uses by default: the first N of the run's test set.
DEFAULT_IMAGES = 512


class Budget(NamedTuple):
    """One attack: the norm of its ball, its radius in pixel units, the radius as printed, and
    whether it is one of the poster's budgets (else one that suits 32x32 inputs)."""

    norm: str  # "linf" | "l2"
    eps: float
    label: str
    poster: bool


NORMS: tuple[str, ...] = ("linf", "l2")
# The poster's budgets (from paper.py) and the ones that suit 32x32 inputs, l_inf first, each
# norm's in increasing eps.
ATTACKS: tuple[Budget, ...] = tuple(sorted(
    [Budget(norm, eps, label, True) for norm, eps, label in VIT_ROBUSTNESS_BUDGETS.values()]
    + [Budget("linf", 1 / 255, "1/255", False), Budget("linf", 2 / 255, "2/255", False)],
    key=lambda b: (NORMS.index(b.norm), b.eps),
))
NORM_LABELS: dict[str, str] = {"linf": "l∞", "l2": "l2"}

PGD_STEPS = 10
PGD_STEP_FACTOR = 2.5
PGD_SEED = 0

# Corruption -> its level at the lab's severities 1, 2, 3 (CIFAR-10-C's severities 1, 3, 5).
CORRUPTIONS: dict[str, tuple[float, ...]] = {
    "gaussian_noise": (0.04, 0.08, 0.10),  # sigma of the added noise, pixel units
    "gaussian_blur": (0.4, 0.7, 1.0),  # sigma of the blur kernel, pixels
    "contrast": (0.75, 0.4, 0.15),  # factor c: 1 = unchanged, 0 = flat grey at the mean
    "jpeg": (80, 58, 40),  # JPEG quality
}
CORRUPTION_LABELS: dict[str, str] = {
    "gaussian_noise": "Gaussian noise",
    "gaussian_blur": "Gaussian blur",
    "contrast": "Contrast",
    "jpeg": "JPEG",
}
# The level at which each corruption (but JPEG, which always loses something) changes nothing.
IDENTITY_LEVEL: dict[str, float] = {"gaussian_noise": 0.0, "gaussian_blur": 0.0, "contrast": 1.0}
SEVERITIES: tuple[int, ...] = (1, 2, 3)
CORRUPTION_SEED = 0


def eps_text(norm: str, eps: float) -> str:
    """A radius as printed: '1/255' style for l_inf budgets of the suite, else '0.25'."""
    for budget in ATTACKS:
        if budget.norm == norm and abs(budget.eps - eps) < 1e-12:
            return budget.label
    return f"{eps * 255:g}/255" if norm == "linf" else f"{eps:g}"
