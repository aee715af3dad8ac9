"""Inversion methods: the paper's and the baselines, behind one registry.

Adding one is a module here with an ``InversionMethod`` subclass and a line in ``METHODS``; the
command line (``--model.method``), sweeps and outputs ask this registry.
"""

from __future__ import annotations

from slp_lightning.methods.base import InversionMethod, MethodSettings
from slp_lightning.methods.fft import FourierImage
from slp_lightning.methods.joint_pyramid import JointPyramid
from slp_lightning.methods.lucid_slp import SwitchedColour, SwitchedFourier
from slp_lightning.methods.pixel import PixelDescent
from slp_lightning.methods.slp import SwitchedPyramid
from slp_lightning.methods.tv import TotalVariation

METHODS: dict[str, type[InversionMethod]] = {
    method.name: method
    for method in (
        SwitchedPyramid,
        PixelDescent,
        TotalVariation,
        FourierImage,
        SwitchedFourier,
        SwitchedColour,
        JointPyramid,
    )
}


def build_method(name: str, settings: MethodSettings) -> InversionMethod:
    """The method registered as ``name``, set up for ``settings``."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name](settings)


__all__ = ["METHODS", "InversionMethod", "MethodSettings", "build_method"]
