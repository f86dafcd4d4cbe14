"""The metric records a run streams to ``metrics.jsonl`` (and to the trainer's callback).

Each record is a plain JSON object; these ``TypedDict``s name its fields and their types, so that
the code that builds records (the trainer's telemetry), the code that reads them (the store, the
pages' view models) and test fakes agree on one definition. At run time they are ordinary dicts.
Every record has ``kind``, ``epoch``, ``step`` (the global optimizer step) and ``time`` (seconds of
training wall time, continued across a resume). See ARCHITECTURE.md, "Metric records".

No torch import: the app's pages may use this module.
"""

from __future__ import annotations

from typing import Literal, TypedDict

RECORD_KINDS = ("step", "epoch", "sharpness", "norm_stats", "resume")


class StepRecord(TypedDict):
    """Training progress over the last ``log_every_s`` seconds (one record also closes each
    epoch). ``epoch`` is the epoch in progress (1-based)."""

    kind: Literal["step"]
    epoch: int
    step: int
    time: float
    loss: float  # mean training loss of the window's images
    acc: float  # training accuracy of the window, a fraction in [0, 1]
    lr: float  # the learning rate of the window's last step
    step_time: float  # seconds per optimizer step in the window (the run's own in lockstep)
    images_per_s: float
    load: float | None  # the machine's 1-minute load average when the record was written


class EpochRecord(TypedDict):
    """The end of epoch ``epoch`` (1-based, = epochs done). Accuracies are fractions in [0, 1].

    ``*_loss`` is the training criterion, cross-entropy with the run's label smoothing s:
    (1 - s) CE + s mean_k(-log p_k), for the test set too (as the authors' train.py reports it);
    ``*_ce`` is the plain cross-entropy. Both are means per image; equal when s = 0. (Records
    written before ``test_ce`` existed have the plain CE in ``test_loss``.)"""

    kind: Literal["epoch"]
    epoch: int
    step: int
    time: float
    train_loss: float  # mean over the epoch's training batches, at w (the clean pass)
    train_ce: float  # the same logits, plain cross-entropy
    train_acc: float
    test_loss: float  # with the training's label smoothing
    test_ce: float  # plain cross-entropy
    test_acc: float
    epoch_time: float  # seconds
    eta_s: float  # estimated seconds to the end of the run
    sam: bool  # whether this epoch took SAM steps (sam_start_epoch / sam_end_epoch)


class SharpnessRecord(TypedDict):
    """Logit-normalised adaptive l_inf m-sharpness (samon_core.train.sharpness)."""

    kind: Literal["sharpness"]
    epoch: int
    step: int
    time: float
    steps: int  # ascent steps of the probe (1 or the multi-step probe's, e.g. 20)
    rho: float
    value: float  # mean over batches of (worst perturbed loss - clean loss), >= 0
    m: int  # points per batch
    n: int  # points in all


class LayerStats(TypedDict):
    """Mean and population std of one normalization layer's gammas (or betas)."""

    name: str
    mean: float
    std: float


class NormStatsRecord(TypedDict):
    """Histogram of all gammas (or betas) on fixed bins; epoch 0 = at initialisation.

    ``counts`` holds the values inside [bin_edges[0], bin_edges[-1]] only; ``below`` / ``above``
    count the values outside, so counts + below + above = all values (NaN in none of them).
    (Records written before ``below`` / ``above`` existed clamped those into the edge bins.)"""

    kind: Literal["norm_stats"]
    epoch: int
    step: int
    time: float
    param: Literal["gamma", "beta"]
    bin_edges: list[float]  # fixed for the whole run
    counts: list[int]  # len(bin_edges) - 1 counts of the in-range values
    below: int  # values < bin_edges[0]
    above: int  # values > bin_edges[-1]
    mean: float  # exact, over all values
    std: float
    layers: list[LayerStats]


class ResumeRecord(TypedDict):
    """The run continued from its checkpoint at ``epoch`` (epochs done), ``step``, ``time``;
    readers drop what an earlier attempt wrote after that point."""

    kind: Literal["resume"]
    epoch: int
    step: int
    time: float


class LandscapeRecord(TypedDict):
    """A 1D loss-landscape slice after the last epoch (samon_core/train/landscape.py): the plain
    cross-entropy in eval mode at w + a d for each offset a."""

    kind: Literal["landscape"]
    epoch: int
    step: int
    time: float
    direction: Literal["random", "gradient"]  # filter-normalised; "random" is seeded by ``seed``
    split: Literal["train", "test"]
    offsets: list[float]
    losses: list[float]
    n: int  # images
    seed: int


class PlaneRecord(TypedDict):
    """A 2D loss-landscape slice of a finished run (``samon_core landscape RUN --plane``):
    ``losses[i][j]`` is the plain cross-entropy at w + offsets[i] d1 + offsets[j] d2."""

    kind: Literal["landscape2d"]
    epoch: int
    step: int
    time: float
    split: Literal["test"]
    offsets: list[float]
    losses: list[list[float]]
    n: int
    seeds: list[int]  # of the two random directions


class AttackResult(TypedDict):
    """Robust accuracy under one PGD attack (samon_core/train/robustness.py)."""

    norm: Literal["linf", "l2"]
    eps: float  # the ball's radius in pixel units (images in [0, 1])
    label: str  # the radius as printed, e.g. "1/255"
    poster: bool  # one of the poster's budgets (else one that suits 32x32 images)
    acc: float  # share of the images classified correctly unperturbed and at every iterate


class CorruptionResult(TypedDict):
    """Accuracy under one corruption at one severity (catalog/robustness.py)."""

    name: str  # "gaussian_noise" | "gaussian_blur" | "contrast" | "jpeg"
    severity: int  # 1..3 (CIFAR-10-C's severities 1, 3, 5)
    level: float  # the corruption's parameter at that severity (sigma, factor, JPEG quality)
    acc: float


class RobustnessRecord(TypedDict):
    """The robustness suite on the final weights (after the last epoch, or later by
    ``samon_core robustness RUN``); the same fields but kind, epoch, step and time are the
    ``robustness`` dict of summary.json. Accuracies are fractions in [0, 1] of ``images``."""

    kind: Literal["robustness"]
    epoch: int
    step: int
    time: float
    suite: str  # RunConfig.robustness, e.g. "standard"
    images: int  # the first N test images
    clean_acc: float  # on the same images, the same forward pass (fp32, eval mode)
    attacks: list[AttackResult]
    corruptions: list[CorruptionResult]
    pgd_steps: int
    pgd_step_factor: float  # alpha = factor * eps / steps
    seed: int  # of the random starts
    seconds: float  # wall time of the suite


Record = (
    StepRecord | EpochRecord | SharpnessRecord | NormStatsRecord | ResumeRecord | LandscapeRecord
    | PlaneRecord | RobustnessRecord
)
