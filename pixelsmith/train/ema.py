"""Exponential moving average of network weights, parameterised by a half-life in images."""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch: int, nimg: int, halflife_kimg: float, rampup: float | None) -> float:
    """Decay per step so that weights halve their influence every `halflife_kimg` thousand images.

    With `rampup`, the half-life is capped at rampup * images seen so far (as in StyleGAN2-ADA),
    so the average does not drag in the random initial weights early in short runs.
    """
    half = halflife_kimg * 1000.0
    if rampup is not None:
        half = min(half, nimg * rampup)
    return 0.5 ** (batch / max(half, 1e-8))


@torch.no_grad()
def update_ema(ema: nn.Module, src: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * src for parameters; buffers are copied."""
    ema_p, src_p = list(ema.parameters()), list(src.parameters())
    torch._foreach_lerp_(ema_p, src_p, 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), src.buffers(), strict=True):
        b_ema.copy_(b)
