"""The models the lab can train, without torch: the facts the UI, the CLI, the job limits and the
time estimate need before anything is built.

``MODELS``: every model of the registry (``samon_core.models``) with its label, description, norm
choices, default norm, whether it is CPU-friendly, its parameter count at 100 classes and its
rough cost per training image. ``register_model`` takes the description and the norm choices from
here (a name missing here cannot be registered), and a test builds every model to check
``num_params``. The builders themselves stay in ``samon_core.models`` (they need torch).
"""

from __future__ import annotations

from dataclasses import dataclass

from samon_core.catalog.choices import NORM_KINDS


@dataclass(frozen=True)
class ModelSpec:
    """Facts about one registered model.

    ``cpu_s_per_image`` / ``cuda_s_per_image``: ROUGH seconds per training image (one forward +
    backward at batch 128, plain SGD), used by ``samon_core.runs.estimate``. CPU: tiny_resnet
    5e-4 s, from the quick demo measured on a quiet 2-core Intel Xeon (torch 2.14.1, the three
    runs in lockstep: 91 s, evaluations, probes and slices included; its SGD steps alone took
    4.2e-4 s per image; bench/README.md); ResNet-20 5.6e-3 quiet on a 2-core AMD EPYC; the
    larger models are scaled from ResNet-20 by their FLOPs. CUDA: not measured (no GPU was
    available); FLOP-based guesses for an A100/H100-class card with bf16 autocast (small models
    are launch-bound, hence not a flat speed-up).
    """

    name: str
    label: str  # one line for the Launch form's select box
    description: str  # architecture and size, for the registry and the CLI
    norms: tuple[str, ...]
    default_norm: str
    cpu_friendly: bool
    num_params: int  # at 100 classes, with the default norm (every norm has 2*C parameters)
    cpu_s_per_image: float
    cuda_s_per_image: float

    def __post_init__(self) -> None:
        # A bad entry would only surface when a worker builds the model; fail at import instead.
        unknown = [n for n in self.norms if n not in NORM_KINDS]
        if not self.norms or unknown:
            raise ValueError(
                f"model {self.name!r}: norms must be a non-empty subset of {list(NORM_KINDS)}; "
                f"got {list(self.norms)}"
            )
        if self.default_norm not in self.norms:
            raise ValueError(
                f"model {self.name!r}: default_norm {self.default_norm!r} is not in "
                f"{list(self.norms)}"
            )
        if self.num_params <= 0 or self.cpu_s_per_image <= 0 or self.cuda_s_per_image <= 0:
            raise ValueError(f"model {self.name!r}: sizes and costs must be positive")


_CONV_NORMS = NORM_KINDS

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            name="tiny_resnet",
            label="Tiny ResNet (~23k parameters, fine on a CPU)",
            description="Tiny ResNet (half-width ResNet-8): 1 basic block per stage, 8/16/32 "
            "channels, a norm layer after every conv. ~23k parameters; seconds per 5k-image "
            "epoch on a CPU.",
            norms=_CONV_NORMS,
            default_norm="batchnorm",
            cpu_friendly=True,
            num_params=22_924,
            cpu_s_per_image=5e-4,
            cuda_s_per_image=2e-5,
        ),
        ModelSpec(
            name="resnet8",
            label="ResNet-8 (~84k parameters, fine on a CPU)",
            description="ResNet-8: 1 basic block per stage, 16/32/64 channels, 1x1-conv "
            "shortcuts. ~84k parameters: enough capacity to memorize a few thousand noisy "
            "labels, which plain SGD does and SAM resists.",
            norms=_CONV_NORMS,
            default_norm="batchnorm",
            cpu_friendly=True,
            num_params=83_892,
            cpu_s_per_image=3e-3,
            cuda_s_per_image=2e-5,
        ),
        ModelSpec(
            name="resnet20",
            label="ResNet-20 (~0.28M parameters, OK on a CPU)",
            description="ResNet-20 for CIFAR (He et al. 2016): 3 stages x 3 basic blocks, "
            "16/32/64 channels, 1x1-conv shortcuts. ~0.28M parameters.",
            norms=_CONV_NORMS,
            default_norm="batchnorm",
            cpu_friendly=True,
            num_params=278_324,
            cpu_s_per_image=8e-3,
            cuda_s_per_image=3e-5,
        ),
        ModelSpec(
            name="resnet56",
            label="ResNet-56 (~0.86M parameters, GPU advised)",
            description="ResNet-56 for CIFAR (He et al. 2016): 3 stages x 9 basic blocks, "
            "16/32/64 channels, 1x1-conv shortcuts. ~0.86M parameters, about 3x the compute of "
            "ResNet-20.",
            norms=_CONV_NORMS,
            default_norm="batchnorm",
            cpu_friendly=False,
            num_params=861_620,
            cpu_s_per_image=2.4e-2,
            cuda_s_per_image=6e-5,
        ),
        ModelSpec(
            name="wrn16_4",
            label="WRN-16-4 (~2.7M parameters, GPU)",
            description="Wide ResNet WRN-16-4 (Zagoruyko & Komodakis 2016): pre-activation, 2 "
            "blocks per stage, 64/128/256 channels. ~2.77M parameters.",
            norms=_CONV_NORMS,
            default_norm="batchnorm",
            cpu_friendly=False,
            num_params=2_772_020,
            cpu_s_per_image=6e-2,
            cuda_s_per_image=6e-5,
        ),
        ModelSpec(
            name="wrn28_10",
            label="WRN-28-10 (the paper's, ~36M parameters, GPU)",
            description="Wide ResNet WRN-28-10 (Zagoruyko & Komodakis 2016): pre-activation, 4 "
            "blocks per stage, 160/320/640 channels. ~36.5M parameters; needs a GPU.",
            norms=_CONV_NORMS,
            default_norm="batchnorm",
            cpu_friendly=False,
            num_params=36_536_884,
            cpu_s_per_image=6e-1,
            cuda_s_per_image=4e-4,
        ),
        ModelSpec(
            name="vit_tiny",
            label="Small ViT with LayerNorm (~1.8M parameters, GPU)",
            description="Small ViT for 32x32 (Dosovitskiy et al. 2021): 4x4 patches, dim 192, "
            "depth 6, 3 heads, MLP ratio 2, pre-norm LayerNorm, class token. ~1.8M parameters.",
            norms=("layernorm",),
            default_norm="layernorm",
            cpu_friendly=False,
            num_params=1_823_908,
            cpu_s_per_image=3e-2,
            cuda_s_per_image=5e-5,
        ),
    )
}


def model_spec(name: str) -> ModelSpec:
    """The catalog entry of model ``name``; ``ValueError`` naming the known models otherwise."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown model {name!r}; the catalog has {', '.join(MODELS)}"
        ) from None
