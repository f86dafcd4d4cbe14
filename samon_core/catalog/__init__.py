"""What the lab offers, without torch: one home for each fact that several layers need.

* ``choices``  the allowed values of every choice in a run's settings
* ``models``   the models (label, norms, size, CPU-friendliness, cost per image)
* ``datasets`` the datasets (label, sizes, classes)
* ``methods``  the method families (name, what they perturb, help, colour), SAM variants,
  optimizer names

The run config, the model registry, the optimizers, the job limits, the time estimate and the
app's pages all read these; nothing keeps a copy.
"""

from samon_core.catalog import choices, methods
from samon_core.catalog.datasets import DATASET_SIZES, DATASETS, DatasetSpec, is_synthetic
from samon_core.catalog.models import MODELS, ModelSpec, model_spec

__all__ = [
    "is_synthetic",
    "DATASETS",
    "DATASET_SIZES",
    "MODELS",
    "DatasetSpec",
    "ModelSpec",
    "choices",
    "methods",
    "model_spec",
]
