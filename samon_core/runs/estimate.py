"""ROUGH wall-time estimate of a run, for "about 3 minutes" vs "about 2 hours" in the UI, and
the lab's FLOP estimate of a training step (``STEP_COST_F``, labelled ``STEP_COST_LABEL``).

seconds = cost per image (``samon_core.catalog``, per model and device kind)
          x images seen in training (SAM epochs weighted by their extra cost)
          + evaluation (a forward pass, about a third of a training step)
          + sharpness probes (each ascent step a forward+backward, plus the clean and final
            forward passes).

Ignores data loading, start-up and precision; good to a factor of about 2-3 at best, and not meant
for scheduling. No torch.
"""

from __future__ import annotations

from samon_core.catalog import DATASET_SIZES, MODELS, methods
from samon_core.runs.config import RunConfig

# Cost of one training step in forward-pass units F, the lab's own estimate (the paper prints no
# such numbers; its poster reports measured savings), of the three methods the paper's tables
# compare, by method family key as the paper's tables (base 3F, all 6F, norm 5F): read from the
# method families (``MethodSpec.step_cost_f``, which says why).
STEP_COST_F: dict[str, float] = {k: methods.BY_KEY[k].step_cost_f for k in ("base", "all", "norm")}
# How every page and message names those numbers: an estimate, never "the paper's numbers".
STEP_COST_LABEL = "the lab's FLOP estimate"

# How much faster than the catalog's CPU figures a device is (rough; CUDA has its own figures).
DEVICE_SPEEDUP: dict[str, float] = {"cpu": 1.0, "cuda": 100.0, "mps": 10.0}
# Per image, for a model the catalog does not know.
DEFAULT_CPU_S_PER_IMAGE = 2e-2
DEFAULT_CUDA_S_PER_IMAGE = 1e-4


def seconds_per_image(model: str, device_kind: str) -> float:
    """Training seconds per image of ``model`` on ``device_kind`` ('cpu', 'cuda', 'mps')."""
    spec = MODELS.get(model)
    if device_kind == "cuda":
        return spec.cuda_s_per_image if spec else DEFAULT_CUDA_S_PER_IMAGE
    per_image = spec.cpu_s_per_image if spec else DEFAULT_CPU_S_PER_IMAGE
    return per_image / DEVICE_SPEEDUP[device_kind]


def _n_probes(epochs: int, every: int) -> int:
    """Probes in a run: every ``every`` epochs and at the end (once when ``every`` is 0)."""
    if every <= 0:
        return 1
    return epochs // every + (1 if epochs % every else 0)


def probe_units(config: RunConfig, n_train: int) -> float:
    """Sharpness probes in training-image units (one forward+backward of one image = 1)."""
    n_probe = min(config.sharpness_samples, n_train)
    if not n_probe:
        return 0.0
    # each ascent step is a forward+backward; plus the clean and the final forward passes
    units = (_n_probes(config.epochs, config.sharpness_every) * n_probe
             * (config.sharpness_steps + 2 / 3))
    if config.sharpness_multi_steps:
        units += (_n_probes(config.epochs, config.sharpness_multi_every) * n_probe
                  * (config.sharpness_multi_steps + 2 / 3))
    return units


def estimate_seconds(config: RunConfig, device_kind: str = "cpu") -> float:
    """ROUGH estimate of a run's wall time in seconds (training, evaluation and probes) on
    ``device_kind`` ('cpu', 'cuda', 'mps'; 'cuda:N' counts as 'cuda')."""
    kind = device_kind.split(":", 1)[0]
    if kind not in DEVICE_SPEEDUP:
        raise ValueError(
            f"device_kind must be one of {', '.join(DEVICE_SPEEDUP)}; got {device_kind!r}"
        )
    full_train, full_test = DATASET_SIZES[config.dataset]
    n_train = min(config.train_subset, full_train) if config.train_subset else full_train
    n_test = min(config.test_subset, full_test) if config.test_subset else full_test

    sam_epochs = 0
    if config.method == "sam":
        sam_epochs = max(0, config.sam_end() - config.sam_start_epoch)
    # a SAM step over a base step, by the family's step cost (SAM-all 6F / 3F, SAM-ON 5F / 3F)
    factor = methods.cost_factor(methods.BY_SCOPE[config.scope].key)
    train_units = n_train * ((config.epochs - sam_epochs) + sam_epochs * factor)
    eval_units = n_test * config.epochs / 3.0  # forward only: about a third of forward+backward
    units = train_units + eval_units + probe_units(config, n_train)
    return float(seconds_per_image(config.model, kind) * units)
