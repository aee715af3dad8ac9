"""slp_lightning: feature inversion with switched Laplacian pyramids (Singh & Namboodiri)."""

from slp_lightning.callbacks import InversionCheckpoint, OutputWriter, PyramidSwitch, SemanticScore
from slp_lightning.data import TargetImages
from slp_lightning.inversion import FeatureInversion

__all__ = [
    "FeatureInversion",
    "InversionCheckpoint",
    "OutputWriter",
    "PyramidSwitch",
    "SemanticScore",
    "TargetImages",
]
