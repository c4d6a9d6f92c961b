"""Likelihoods of 8-bit images shared by the families that score them (VAE, PixelCNN)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Bounds on predicted log-scales (as PixelCNN++): a scale of e^-7 ~ 1e-3 is already below the
# width of one 8-bit level on [0, 1], so a narrower one only inflates continuous densities; one
# of e^5 spreads a level over 150 times the data range, and larger ones overflow in float32.
LOG_SCALE_MIN, LOG_SCALE_MAX = -7.0, 5.0


def bound_log_scale(log_scale: Tensor) -> Tensor:
    """Predicted log-scales clamped to [LOG_SCALE_MIN, LOG_SCALE_MAX]."""
    return log_scale.clamp(LOG_SCALE_MIN, LOG_SCALE_MAX)


def bits_per_dim(nats: float, dims: int) -> float:
    """Nats per image -> bits per sub-pixel."""
    return nats / (dims * math.log(2))


def _log1mexp(d: Tensor) -> Tensor:
    """log(1 - exp(-d)) for d > 0, accurate for small and large d (Maechler 2012)."""
    # Each branch sees a clamped d, so the branch torch.where drops cannot send NaN gradients.
    ln2 = math.log(2)
    small = torch.log(-torch.expm1(-d.clamp(max=ln2)))
    return torch.where(d < ln2, small, torch.log1p(-torch.exp(-d.clamp(min=ln2))))


def discretized_logistic_logp(levels: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log P(u) of 8-bit levels u in 0..255 under a logistic(mean, e^log_scale) on [-1, 1] bins.

    Level u is x = 2u/255 - 1 with bin [x - 1/255, x + 1/255]; level 0 takes (-inf, ...] and 255
    takes [..., +inf), so the 256 probabilities sum to 1. Middle bins use log(sig(a) - sig(b)) =
    log sig(a) + log sig(-b) + log(1 - e^(b - a)), which stays exact where both CDF values round
    to 0 or 1. `levels` may be any dtype holding whole numbers; the caller bounds log_scale.
    """
    x = levels.to(mean.dtype) * (2 / 255) - 1
    inv_s = torch.exp(-log_scale)
    a = (x + 1 / 255 - mean) * inv_s  # upper edge
    b = (x - 1 / 255 - mean) * inv_s  # lower edge
    log_cdf_a = -F.softplus(-a)
    log_sf_b = -F.softplus(b)
    mid = log_cdf_a + log_sf_b + _log1mexp((2 / 255) * inv_s)
    return torch.where(levels <= 0, log_cdf_a, torch.where(levels >= 255, log_sf_b, mid))
