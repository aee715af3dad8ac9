"""benchmarks/semantic_ceiling.py's degraded targets: noise at the PSNR asked, a blur that keeps
the mean."""

import torch

from benchmarks.semantic_ceiling import blurred, noisy
from slp_lightning.maths.metrics import image_quality


def test_noise_gives_the_psnr_asked_and_a_blur_keeps_the_mean() -> None:
    # Mid-grey with a smooth ramp: far enough from 0 and 1 that clipping takes nothing.
    ramp = torch.linspace(0.3, 0.7, 64).view(1, 1, 1, 64).expand(2, 3, 64, 64).contiguous()
    generator = torch.Generator().manual_seed(0)
    for psnr in (30.0, 25.0, 20.0):
        measured = image_quality(noisy(ramp, psnr, generator), ramp)["psnr"]
        assert (measured - psnr).abs().max() < 0.1
    edges = torch.zeros(2, 3, 64, 64)
    edges[..., 16:48] = 1.0
    soft = blurred(edges, 2.0)
    assert abs(float(soft.mean() - edges.mean())) < 1e-3
    assert 0.1 < float(soft[0, 0, 32, 15]) < 0.9  # the step's edge is spread over pixels
