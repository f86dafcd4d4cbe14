"""SAM-family optimizers: SAM-all, SAM-ON and their variants (see sam.py, perturbation.py);
``create_sam`` builds one for a model in one call (factory.py)."""

from samon_core.optim.base import BASE_OPTIMIZER_CHOICES, base_optimizer
from samon_core.optim.batchnorm import BN_SECOND_PASS_CHOICES, bn_second_pass
from samon_core.optim.factory import create_sam
from samon_core.optim.perturbation import ADAPTIVE_CHOICES, BALL_CHOICES, sam_perturbation
from samon_core.optim.sam import SAM
from samon_core.optim.scopes import SCOPE_CHOICES, perturbation_groups, perturbed_count

__all__ = [
    "ADAPTIVE_CHOICES",
    "BASE_OPTIMIZER_CHOICES",
    "BN_SECOND_PASS_CHOICES",
    "BALL_CHOICES",
    "SAM",
    "SCOPE_CHOICES",
    "base_optimizer",
    "bn_second_pass",
    "create_sam",
    "perturbation_groups",
    "perturbed_count",
    "sam_perturbation",
]
