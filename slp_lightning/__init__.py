"""slp_lightning: feature inversion with switched Laplacian pyramids (Singh & Namboodiri).

The names below are imported when first used: ``import slp_lightning.maths.pyramid`` (plain PyTorch
maths) does not load Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FeatureInversion": "slp_lightning.module.lightning_model",
    "Inversion": "slp_lightning.inversion.torch_model",
    "SwitchSchedule": "slp_lightning.maths.schedule",
    "InversionCheckpoint": "slp_lightning.callbacks",
    "OutputWriter": "slp_lightning.callbacks",
    "PyramidSwitch": "slp_lightning.callbacks",
    "SemanticScore": "slp_lightning.callbacks",
    "TargetImages": "slp_lightning.data.targets",
    "run": "slp_lightning.cli.commands",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'slp_lightning' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
