"""The runs a claim needs, per size: valid ``RunConfig``s built like the presets.

Three sizes (``SIZES``):

* ``cpu``: a laptop. The tiny ResNet on 2,000 synthetic images of 10 classes (``synthetic10``)
  for 30 epochs, without augmentation and with 40% extra noisy labels (``label_noise``), one
  dataset draw for every seed (``data_seed``, as the paper's seeds vary only the initialisation
  and the batch order). SAM's known strength is that it resists fitting wrong labels (Foret et
  al., ICLR 2021): in this setting plain SGD fits the clean signal within ~10 epochs and then
  memorizes noisy labels (its training accuracy on the noisy labels passes 60% while its test
  accuracy stalls near 70%), which is where SAM can win. Settings tried (bench/cpu_claim_search.py,
  one seed unless said; the issue note has the table): 100 classes underfit at every size that
  fits in ~5 minutes (tiny or ResNet-8, 1k-5k images, 10-60 epochs: SGD ahead by 3-6 points).
  Measured with 3 seeds: SAM-all +2.0 and SAM-ON +1.9 points over SGD on average, but one seed of
  three lost 2-4 points, so the gap is within the seed-to-seed noise: this size shows the
  direction, not a verdict (``Claim.cpu_note`` says so for each claim). About 3 minutes per seed
  for the three runs in lockstep on 2 cores.
* ``gpu``: ResNet-20 on the whole of CIFAR-100, 30 epochs, the paper's recipe (SGD lr 0.1,
  momentum 0.9, wd 5e-4, cosine, label smoothing 0.1, crop + flip) and its sharpness probes at the
  end: minutes per run on one GPU.
* ``paper``: the paper's setup (WRN-28-10, 200 epochs, ``paper.TABLE_SETTINGS``: crop + flip, fp32);
  its SGD / SAM-all / SAM-ON runs are those of the ``cifar100-wrn-paper`` preset, so either
  launch reuses the other's finished runs.

The no-norm claim trains its runs at the gpu and paper sizes as ASAM elementwise with the
authors' settings (``VARIANTS['asam']``: l2 ball, T_w on the biases, the paper's rho per scope:
5 for SAM-all and no-norm, 10 for SAM-ON), where the paper shows the harm (81.4% vs 83.8%); plain
SAM's gap is ~0.2 points. At the cpu size it shares the plain SAM runs.

Every claim's methods are taken from ONE base config per size, so the runs are shared between
claims (accuracy, sharper, gamma-shift and cost need the same three runs; the store reuses a
finished run of identical config). Seeds are ``0 .. n-1`` (``submit_group``'s ``seed + i``).
No torch.
"""

from __future__ import annotations

from samon_core import paper
from samon_core.catalog import methods
from samon_core.catalog.stages import LAST_STAGE
from samon_core.runs.config import RunConfig

SIZES: tuple[str, ...] = ("cpu", "gpu", "paper")
SIZE_TEXT: dict[str, str] = {
    "cpu": "laptop CPU: tiny ResNet, 2k synthetic images of 10 classes, 40% noisy labels, "
           "30 epochs (three runs: about 3 min per seed on 2 free cores, 5-7 min on busy ones)",
    "gpu": "one GPU: ResNet-20 on CIFAR-100, 30 epochs, the paper's recipe (minutes per run)",
    "paper": "the paper's setup: WRN-28-10 on CIFAR-100, 200 epochs (hours per run on a GPU)",
}

CPU_LABEL_NOISE = 0.4

CPU_BASE = RunConfig(
    model="tiny_resnet",
    dataset="synthetic10",
    train_subset=2000,
    test_subset=2000,  # the whole synthetic test set: +/-1 point of binomial noise, not 1.5
    label_noise=CPU_LABEL_NOISE,
    data_seed=0,  # one dataset draw for all seeds, as in the paper: seeds vary init and order
    epochs=30,
    batch_size=128,
    augment="none",  # overfitting is what SAM prevents; augmentation would hide it in 10 epochs
    sharpness_samples=256,
    sharpness_m=128,
    sharpness_multi_steps=0,
    # the robustness suite after the last epoch (PGD and corruptions on the whole synthetic test
    # set: the robustness and corruption claims read it; the other claims' runs are the same)
    robustness="standard",
    robustness_images=2000,
    device="auto",
)

GPU_BASE = RunConfig(
    **{
        **paper.TRAINING_SETUP,
        **paper.SHARPNESS_PROBE,
        "model": "resnet20",
        "epochs": 30,
        "robustness": "standard",
        "device": "auto",
    }
)

PAPER_BASE = RunConfig(
    **{
        **paper.TRAINING_SETUP,
        **paper.SHARPNESS_PROBE,
        **paper.TABLE_SETTINGS,
        "sharpness_every": 20,
        "sharpness_multi_every": 20,
        "robustness": "standard",
        "device": "auto",
    }
)

BASES: dict[str, RunConfig] = {"cpu": CPU_BASE, "gpu": GPU_BASE, "paper": PAPER_BASE}

# The SAM variants a claim's runs may use (RunConfig values on top of a SAM run; rho stays None:
# the paper's best value for the variant and scope). "asam": the authors' ASAM command; the
# variants claim adds the figure's other two (T_w on the biases too, as the authors' command).
VARIANTS: dict[str, dict] = {
    "sam": {},
    "asam": {"adaptive": "elementwise", "ball": "l2", **paper.ADAPTIVE_COMMAND_SETTINGS},
    "asam-layerwise": {"adaptive": "layerwise", "ball": "l2",
                       **paper.ADAPTIVE_COMMAND_SETTINGS},
    "linf": {"adaptive": "elementwise", "ball": "linf", **paper.ADAPTIVE_COMMAND_SETTINGS},
    # SAM-ON on the norm layers of the last stage only (the poster's "selected blocks", B3)
    "b3": {"blocks": (LAST_STAGE,)},
}
# Each variant's name: the catalog's (``methods.variant_name``) for a SAM variant.
VARIANT_NAMES: dict[str, str] = {
    tag: methods.variant_name((v.get("adaptive", "none"), v.get("ball", "l2")))
    for tag, v in VARIANTS.items()
} | {"b3": f"B{LAST_STAGE} only"}
# Settings of every run of a claim (the base optimizer's runs too), on top of the size's base:
# the poster's ViT comparison with AdamW and with Lion, on the lab's small ViT (no ImageNet
# here). The learning rates and weight decays are the usual ones for a small ViT trained from
# scratch (AdamW 1e-3 / 0.05; Lion 3-10x smaller lr, 3-10x larger wd, as Chen et al. 2023
# advise): the poster prints none. rho stays the paper's WRN value, carried over (said on the
# runs' rho source).
SETTINGS: dict[str, dict] = {
    # the ViT has LayerNorm only (the sizes' bases keep the ResNets' BatchNorm)
    "vit-adamw": {"model": "vit_tiny", "norm_layer": "layernorm", "optimizer": "adamw",
                  "lr": 1e-3, "weight_decay": 0.05},
    "vit-lion": {"model": "vit_tiny", "norm_layer": "layernorm", "optimizer": "lion",
                 "lr": 1e-4, "weight_decay": 0.5},
}
SETTING_NAMES: dict[str, str] = {"vit-adamw": "AdamW", "vit-lion": "Lion"}
# What makes a run one of a size's (the rest: method, its variant, seed, device, probes).
SIZE_FIELDS: tuple[str, ...] = ("model", "dataset", "train_subset", "label_noise", "epochs",
                                "batch_size", "augment")


def check_size(size: str) -> str:
    """``size`` if it is one of ``SIZES``; ``ValueError`` naming them otherwise."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    return size


def split_key(method: str) -> tuple[str, str]:
    """A claim's method key: a family (``base``, ``all``, ``norm``, ``no-norm``, ``random``),
    optionally ``@`` a variant (``VARIANTS``) or a setting (``SETTINGS``): ``norm@asam`` is
    SAM-ON as ASAM elementwise, ``base@vit-adamw`` AdamW on the ViT. (family, tag or "")."""
    family, _, tag = method.partition("@")
    if tag and tag not in VARIANTS and tag not in SETTINGS:
        raise ValueError(f"unknown variant or setting {tag!r} in method {method!r}; one of "
                         f"{', '.join([*VARIANTS, *SETTINGS])}")
    return family, tag


def method_config(size: str, method: str, variant: str = "sam") -> RunConfig:
    """The run of method ``method`` (a family: ``base``, ``all``, ``norm``, ``no-norm``,
    ``random``, optionally ``@`` a variant or setting: ``split_key``) at ``size``, seed 0; SAM
    runs are of ``variant`` (``VARIANTS``; the key's own variant first) and take the paper's best
    rho for it and their scope (rho None)."""
    base = BASES[check_size(size)]
    method, tag = split_key(method)
    if tag in SETTINGS:
        base = base.replace(**SETTINGS[tag])
    elif tag:
        variant = tag
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}; got {variant!r}")
    if method == "base":
        return base.replace(method="base")
    if method not in methods.SCOPE_NAMES:
        scopes = ", ".join(methods.SCOPE_NAMES)
        raise ValueError(f"unknown method {method!r}; one of base, {scopes}")
    return base.replace(method="sam", scope=method, rho=None, **VARIANTS[variant])


def run_set(method_keys: tuple[str, ...], size: str, variant: str = "sam") -> dict[str, RunConfig]:
    """Label (``method_label()``) -> config of each method, in the order given (seed 0)."""
    configs = [method_config(size, m, variant) for m in method_keys]
    return {c.method_label(): c for c in configs}


def size_of(config: dict) -> str | None:
    """The claim size a run's config (a ``to_dict()``) was trained at, by ``SIZE_FIELDS``: the
    size's base, or the base under one of the ``SETTINGS`` (the ViT claims' runs change the
    model); None for a run of no claim size (the quick demo, a run of one's own)."""
    for size, base in BASES.items():
        for setting in ({}, *SETTINGS.values()):
            want = base.replace(**setting).to_dict()
            if all(config.get(k) == want[k] for k in SIZE_FIELDS):
                return size
    return None


def with_seeds(configs: dict[str, RunConfig], seeds: int) -> list[tuple[str, RunConfig]]:
    """(label, config) for every config and seed ``0 .. seeds-1`` (configs outer, seeds inner,
    as ``service.submit_group`` orders them)."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")
    return [(label, cfg.replace(seed=cfg.seed + i))
            for label, cfg in configs.items() for i in range(seeds)]
