"""ITU-R BT.601 luma, the one grey conversion every room uses (as Pillow's convert("L"),
OpenCV's RGB2GRAY and torchvision's rgb_to_grayscale weigh the channels)."""

from __future__ import annotations

import torch
from torch import Tensor

BT601 = (0.299, 0.587, 0.114)


def luma(x: Tensor) -> Tensor:
    """Luma of grey or RGB(A) images with channels at dim -3: (..., C, H, W) -> (..., 1, H, W);
    one channel comes back as it is, alpha is ignored."""
    if x.shape[-3] == 1:
        return x
    w = torch.tensor(BT601, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x[..., :3, :, :] * w).sum(-3, keepdim=True)
