"""Contrast the features do not ask for, taken back at a switch: a line search per channel.

Where a layer is blind to a channel's contrast (dense SIFT normalises descriptors above a
contrast threshold, so a nearly flat channel's descriptors no longer scale with it), a coarse
phase can lay down smooth contrast that no gradient removes later: the loss is flat along it.
Descent cannot cross such a plateau; a line search along the one direction can. At each switch,
channel by channel, the image's contrast is scaled by each candidate and the one that lowers the
loss ``Z`` most is kept, if any does (benchmarks/RESULTS.md, "The contrast search").
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from slp_lightning.inversion.torch_model import Inversion


@torch.no_grad()
def search_contrast(
    inversion: Inversion,
    finest_on: Tensor,
    rows: Tensor,
    scales: Sequence[float],
    rel_tol: float = 1e-3,
) -> Tensor:
    """Scale, channel by channel, the contrast of images ``rows`` (bool (N,)) by the one of
    ``scales`` that lowers their loss ``Z`` (levels ``finest_on`` on) by more than a relative
    ``rel_tol`` and most; ``inversion.I_pre`` is changed in place. Only those images are
    evaluated. Returns the scale kept per image and channel (N, C): 1 where none was, and for
    the other images."""
    I_pre, method = inversion.I_pre, inversion.method
    rows = rows.to(I_pre.device)
    image = I_pre[rows].detach()  # (M, …): the searched images' rows
    kept = torch.ones(len(image), I_pre.shape[1], device=I_pre.device)
    best = inversion.losses_of(image, rows, finest_on)[2].float()
    for channel in range(I_pre.shape[1]):
        for scale in scales:
            candidate = method.scale_contrast(image, channel, torch.full_like(best, scale))
            loss = inversion.losses_of(candidate, rows, finest_on)[2].float()
            lower = loss < best * (1 - rel_tol)
            best = torch.where(lower, loss, best)
            kept[lower, channel] = scale
        image = method.scale_contrast(image, channel, kept[:, channel])
    I_pre[rows] = image
    every = torch.ones(len(I_pre), I_pre.shape[1], device=I_pre.device)
    every[rows] = kept
    return every
