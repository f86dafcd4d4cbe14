"""The stages of the ResNet-like models, without torch: their names and how a parameter's name
tells its stage.

The models name their stage submodules ``stage1`` .. ``stage3`` (samon_core.models); SAM-ON's
"blocks" option (the paper's B1-B3 computational-savings idea) perturbs the norm layers of chosen
stages only, so the optimizer's scopes, the run config's ``blocks`` bounds and the registry all
read the convention from here.
"""

from __future__ import annotations

import re

#: Names of the stage submodules of ResNet-like models (index = position + 1).
STAGE_NAMES: tuple[str, ...] = ("stage1", "stage2", "stage3")
FIRST_STAGE, LAST_STAGE = 1, len(STAGE_NAMES)

# Wrapper prefixes added by DataParallel / DistributedDataParallel (``module.``) and torch.compile
# (``_orig_mod.``); stripped before the stage is read off a name.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_STAGE_RE = re.compile(r"stage([1-9][0-9]*)(?:\.|$)")


def stage_index(param_qualified_name: str) -> int | None:
    """Stage (1, 2, 3, ...) of a parameter or module name, or ``None`` outside the stages.

    ``"stage2.0.norm1.weight"`` -> 2, ``"stage3"`` -> 3, ``"norm1.weight"`` (stem), ``"fc.bias"``,
    ``"blocks.0.norm1.weight"`` (ViT) -> ``None``. ``module.`` / ``_orig_mod.`` prefixes
    (DataParallel, torch.compile) are ignored.
    """
    name = param_qualified_name
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                stripped = True
    m = _STAGE_RE.match(name)
    return int(m.group(1)) if m else None
