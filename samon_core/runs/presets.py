"""Named, documented sets of runs (``RunConfig`` per method) for the UI and the CLI.

No torch: the presets page imports this module. Every preset compares methods under one base
configuration and the same seed, so the runs differ only in what is being compared. ``rho`` is left
at None everywhere: each SAM run uses the paper's best value for its variant and scope (see
``samon_core.paper.DEFAULT_RHO``). The paper's own setup comes from ``samon_core.paper``: the
paper presets (``cifar100-wrn-paper``, ``variants-gpu``) train with the augmentation the poster's
numbers fit, basic crop + flip, in plain fp32 (``paper.TABLE_SETTINGS``; the choice is inferred,
``paper.TABLE_AUGMENT_NOTE``), and the ASAM runs scale the biases by T_w as the authors' command
does (``paper.ADAPTIVE_COMMAND_SETTINGS``). The paper's other augmentation column, AutoAugment as
in the authors' published command (``paper.AUTHORS_COMMAND_SETTINGS``), is its own preset
(``cifar100-wrn-paper-autoaugment``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from samon_core import paper
from samon_core.runs.config import RunConfig


@dataclass(frozen=True)
class Preset:
    """A named comparison: ``configs`` maps each run's display label (``method_label()``) to its
    config, in display order."""

    name: str
    title: str
    description: str
    configs: dict[str, RunConfig] = field(default_factory=dict)
    # whether the preset is meant for a GPU (the UI warns before starting it on a CPU)
    gpu: bool = False


def _by_label(configs: Iterable[RunConfig]) -> dict[str, RunConfig]:
    out: dict[str, RunConfig] = {}
    for cfg in configs:
        label = cfg.method_label()
        if label in out:
            raise ValueError(f"two configs of a preset share the label {label!r}")
        out[label] = cfg
    return out


def _three_methods(base: RunConfig) -> dict[str, RunConfig]:
    """SGD, SAM-all and SAM-ON on one base config (rho: the paper's best for each)."""
    return _by_label(
        [
            base.replace(method="base"),
            base.replace(method="sam", scope="all", rho=None),
            base.replace(method="sam", scope="norm", rho=None),
        ]
    )


# A small CPU-sized base shared by the synthetic presets.
_CPU_SMALL = RunConfig(
    model="tiny_resnet",
    dataset="synthetic",
    train_subset=6000,
    test_subset=1000,
    epochs=6,
    batch_size=128,
    # flips only: with random crops the tiny net learns the synthetic set too slowly for a demo
    # (measured: SGD 15.5% vs 8% test accuracy after 6 epochs, 29 s vs 22 s on 2 CPU cores)
    augment="flip",
    sharpness_samples=256,
    sharpness_multi_steps=0,
    # a 1-step probe after every epoch: the Sharpness tab fills while the runs train (256 images,
    # about one training step's worth of work per epoch)
    sharpness_every=1,
    # 1D loss-landscape slices after the last epoch (random and gradient direction, train and
    # test images): 11 points each, a few seconds on a CPU
    landscape_points=11,
    # robust accuracy after the last epoch (PGD and corruptions on 512 test images): seconds
    robustness="standard",
    device="auto",
)


def _cpu_quick_demo() -> Preset:
    return Preset(
        name="cpu-quick-demo",
        title="Quick demo: SGD vs SAM-all vs SAM-ON (CPU)",
        description=(
            "Trains a tiny ResNet on a small synthetic image set three times: plain SGD, SAM on "
            "all parameters and SAM on the normalization layers only. Runs on a laptop CPU; all "
            "three runs train together (in lockstep; the app's estimate says how long on your "
            "machine). A first look at cost per step, "
            "sharpness and the gamma distribution; too short and too small for the paper's "
            "accuracy gaps: the Claims page says what your runs show."
        ),
        configs=_three_methods(_CPU_SMALL),
    )


def _cifar100_resnet20_cpu() -> Preset:
    base = RunConfig(
        model="resnet20",
        dataset="cifar100",
        train_subset=10_000,
        epochs=10,
        batch_size=128,
        sharpness_every=2,  # the Sharpness tab fills while the runs train
        robustness="standard",
        device="auto",
    )
    return Preset(
        name="cifar100-resnet20-cpu",
        title="CIFAR-100, ResNet-20, 10k images (CPU, ~1 h)",
        description=(
            "SGD, SAM-all and SAM-ON on a 10,000-image subset of real CIFAR-100 with a ResNet-20 "
            "for 10 epochs. On a laptop CPU the three runs take from about 20 minutes to an hour "
            "(minutes on a GPU); needs the CIFAR-100 files. Accuracies are far below the "
            "paper's, but the ordering of the methods and the sharpness measurements show."
        ),
        configs=_three_methods(base),
    )


def _paper_base(model: str, epochs: int, probe_every: int,
                robustness: str = "standard") -> RunConfig:
    """The paper's training setup (``samon_core.paper.TRAINING_SETUP``: SGD lr 0.1, momentum 0.9,
    wd 5e-4, cosine, label smoothing 0.1, batch 128, crop+flip) and its sharpness probes (1 step
    at rho 0.01, 20 steps at rho 0.003) on ``model`` for ``epochs``, probing every
    ``probe_every`` epochs, with the ``robustness`` suite after the last epoch."""
    return RunConfig(
        **{
            **paper.TRAINING_SETUP,
            **paper.SHARPNESS_PROBE,
            "model": model,
            "epochs": epochs,
            "sharpness_every": probe_every,
            "sharpness_multi_every": probe_every,
            "robustness": robustness,
            "device": "auto",
        }
    )


def _with(settings: dict, config: RunConfig) -> RunConfig:
    """``config`` with ``settings`` (``paper.TABLE_SETTINGS`` or the authors' command's) for every
    run, and T_w on the biases for the adaptive (ASAM) variants, as the authors' command does."""
    config = config.replace(**settings)
    if config.method == "sam" and config.adaptive != "none":
        config = config.replace(**paper.ADAPTIVE_COMMAND_SETTINGS)
    return config


# Said in the description of the presets trained with ``paper.TABLE_SETTINGS``.
_TABLE_SETTINGS_TEXT = (
    "Basic augmentation (random crop + flip), the column of the paper's Table 1 that the poster's "
    f"numbers fit: {paper.TABLE_AUGMENT_NOTE} Plain fp32 arithmetic (TF32 matmuls on CUDA) as "
    "in the authors' train.py, instead of the default bf16 autocast on CUDA. AutoAugment, as in "
    "the authors' published command, is the preset cifar100-wrn-paper-autoaugment."
)
# ... and of the preset trained with the authors' published command's settings.
_AUTHORS_SETTINGS_TEXT = (
    "As in the authors' published command: AutoAugment (CIFAR-10 policy) after crop + flip, the "
    "paper's other augmentation column, and plain fp32 arithmetic (TF32 matmuls on CUDA) instead "
    "of the default bf16 autocast on CUDA."
)


def _wrn_paper_text(augment_text: str) -> str:
    """The description shared by the two WRN-28-10 paper presets, around ``augment_text``."""
    rho, acc = paper.DEFAULT_RHO[("none", "l2")], paper.TEST_ACCURACY
    fig, sgd_fig = paper.FIGURE_ACCURACY[("none", "l2")], paper.FIGURE_SGD_ACCURACY
    epochs = paper.TRAINING_SETUP["epochs"]
    return (
        f"SGD, SAM-all (rho {rho['all']}) and SAM-ON (rho {rho['norm']}) training a WRN-28-10 on "
        f"full CIFAR-100 for {epochs} epochs, with the paper's sharpness probes every 20 epochs. "
        f"{augment_text} The two rhos are the best ones on the authors' figure, which reads about "
        f"{sgd_fig:.1f}% for SGD, {fig['all']:.1f}% for SAM-all at rho {rho['all']} and "
        f"{fig['norm']:.1f}% for SAM-ON at rho {rho['norm']}; the paper's table (mean of three "
        f"seeds) reports {acc['base'].mean:.2f}% / {acc['all'].mean:.2f}% / "
        f"{acc['norm'].mean:.2f}%. {paper.TABLE_RHO_NOTE} GPU only: several hours per run on a "
        "modern GPU."
    )


def _wrn_paper_configs(settings: dict) -> dict[str, RunConfig]:
    epochs = paper.TRAINING_SETUP["epochs"]
    # with the robustness suite, as the claims' paper size, whose runs are this preset's
    # (tested): both change together
    base = _paper_base(paper.TRAINING_SETUP["model"], epochs=epochs, probe_every=20)
    return _by_label(_with(settings, c) for c in _three_methods(base).values())


def _cifar100_wrn_paper() -> Preset:
    return Preset(
        name="cifar100-wrn-paper",
        title="The paper's setup: WRN-28-10 on CIFAR-100, 200 epochs (GPU)",
        description="Reproduces the paper's main comparison: "
                    + _wrn_paper_text(_TABLE_SETTINGS_TEXT),
        configs=_wrn_paper_configs(paper.TABLE_SETTINGS),
        gpu=True,
    )


def _cifar100_wrn_paper_autoaugment() -> Preset:
    return Preset(
        name="cifar100-wrn-paper-autoaugment",
        title="The paper's setup with AutoAugment: WRN-28-10 on CIFAR-100, 200 epochs (GPU)",
        description="The paper's main comparison with the authors' AutoAugment: "
                    + _wrn_paper_text(_AUTHORS_SETTINGS_TEXT)
                    + " The poster's numbers fit the basic-augmentation column instead "
                    "(cifar100-wrn-paper), so they are not this preset's reference.",
        configs=_wrn_paper_configs(paper.AUTHORS_COMMAND_SETTINGS),
        gpu=True,
    )


def _cifar100_resnet56_gpu() -> Preset:
    return Preset(
        name="cifar100-resnet56-gpu",
        title="CIFAR-100, ResNet-56, 100 epochs (GPU)",
        description=(
            "SGD, SAM-all and SAM-ON training a ResNet-56 on full CIFAR-100 for 100 epochs "
            "with the paper's hyper-parameters and sharpness probes every 10 epochs. A faster "
            "stand-in for the WRN-28-10 experiment: roughly 20-40 minutes per run on a GPU."
        ),
        configs=_three_methods(_paper_base("resnet56", epochs=100, probe_every=10)),
        gpu=True,
    )


_VARIANTS = (("none", "l2"), ("elementwise", "l2"), ("layerwise", "l2"), ("elementwise", "linf"))


def _variants_gpu() -> Preset:
    base = _paper_base("wrn16_4", epochs=100, probe_every=0)
    configs = [base.replace(method="base")]
    for adaptive, ball in _VARIANTS:
        for scope in ("all", "norm"):
            configs.append(
                base.replace(method="sam", scope=scope, adaptive=adaptive, ball=ball)
            )
    return Preset(
        name="variants-gpu",
        title="SAM variants, SAM-all vs SAM-ON: WRN-16-4 on CIFAR-100 (GPU)",
        description=(
            "The four SAM variants of the paper (SAM, ASAM elementwise, ASAM layerwise, p=inf "
            "elementwise), each applied to all parameters and to the normalization layers only, "
            "plus SGD: nine WRN-16-4 runs on CIFAR-100 for 100 epochs, each with the paper's best "
            f"rho (tuned on WRN-28-10, carried over). {_TABLE_SETTINGS_TEXT} The ASAM variants "
            "also scale the biases (beta included) by T_w (normalize_bias), as the authors' "
            "published command does. GPU only: about half an hour to an hour per run."
        ),
        configs=_by_label(_with(paper.TABLE_SETTINGS, c) for c in configs),
        gpu=True,
    )


def _sparse_controls() -> Preset:
    configs = [
        _CPU_SMALL.replace(method="sam", scope=scope, rho=None)
        for scope in ("norm", "no-norm", "random", "all")
    ]
    return Preset(
        name="sparse-controls",
        title="Is it the norm layers or just sparsity? (CPU, ~5 min)",
        description=(
            "SAM-ON against its controls on the tiny ResNet and synthetic data: SAM on everything "
            "except the norm layers (no-norm), SAM on a random mask as sparse as SAM-ON, and "
            "SAM-all. Runs on a laptop CPU in about 5 minutes for the four runs."
        ),
        configs=_by_label(configs),
    )


_PRESETS: dict[str, Callable[[], Preset]] = {
    "cpu-quick-demo": _cpu_quick_demo,
    "cifar100-resnet20-cpu": _cifar100_resnet20_cpu,
    "sparse-controls": _sparse_controls,
    "cifar100-resnet56-gpu": _cifar100_resnet56_gpu,
    "cifar100-wrn-paper": _cifar100_wrn_paper,
    "cifar100-wrn-paper-autoaugment": _cifar100_wrn_paper_autoaugment,
    "variants-gpu": _variants_gpu,
}


def list_presets() -> list[str]:
    """Preset names, CPU-sized ones first."""
    return list(_PRESETS)


def get_preset(name: str) -> Preset:
    """The preset ``name`` (a fresh object each call). Unknown names raise ``ValueError``."""
    try:
        builder = _PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(_PRESETS)}") from None
    return builder()


def preset_configs(name: str) -> dict[str, RunConfig]:
    """``get_preset(name).configs``: method label -> RunConfig."""
    return dict(get_preset(name).configs)
