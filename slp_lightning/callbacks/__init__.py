"""The Lightning callbacks of an inversion: the switching schedule (``switch``), checkpoints
that always hold the newest state (``checkpoint``), the writer of a run's outputs (``writer``) and
the semantic score of an independent classifier (``semantic_score``), and a progress bar of steps
and pyramid levels (``progress``)."""

from slp_lightning.callbacks.checkpoint import InversionCheckpoint
from slp_lightning.callbacks.progress import StepProgressBar
from slp_lightning.callbacks.semantic_score import SemanticScore
from slp_lightning.callbacks.switch import PyramidSwitch, SwitchListener
from slp_lightning.callbacks.writer import OutputWriter, output_writer

__all__ = [
    "InversionCheckpoint",
    "OutputWriter",
    "PyramidSwitch",
    "SemanticScore",
    "StepProgressBar",
    "SwitchListener",
    "output_writer",
]
