"""Non-maximum suppression of boxes (x0, y0, x1, y1), in the two overlap modes MTCNN uses.

Boxes are continuous pixel coordinates: a box covers [x0, x1) x [y0, y1) and its area is
(x1 - x0) * (y1 - y0) (no "+1" of the Matlab-era code). The overlap of two boxes is their
intersection divided by their union ("union", IoU) or by the smaller box's area ("min", which
MTCNN's last stage uses so that a small box inside a big one is dropped).
"""

from __future__ import annotations

import torch
from torch import Tensor

MODES = ("union", "min")


def _areas(b: Tensor) -> Tensor:
    return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)


def iou(a: Tensor, b: Tensor, mode: str = "union") -> Tensor:
    """Pairwise overlap (N, M) of boxes a (N, 4) and b (M, 4): IoU, or over the smaller area."""
    if mode not in MODES:
        raise ValueError(f"unknown overlap mode {mode!r}; use one of {MODES}")
    lo = torch.maximum(a[:, None, :2], b[None, :, :2])
    hi = torch.minimum(a[:, None, 2:4], b[None, :, 2:4])
    wh = (hi - lo).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a, area_b = _areas(a)[:, None], _areas(b)[None, :]
    denom = torch.minimum(area_a, area_b) if mode == "min" else area_a + area_b - inter
    return torch.where(denom > 0, inter / denom.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, threshold: float, mode: str = "union") -> Tensor:
    """Indices of the boxes kept by greedy NMS, best score first.

    A box is dropped when its overlap with a kept, higher-scoring box is above `threshold`; ties
    in score keep the lower index first (a stable sort).
    """
    if mode not in MODES:
        raise ValueError(f"unknown overlap mode {mode!r}; use one of {MODES}")
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    keep = []
    rest = torch.arange(len(b), device=boxes.device)
    while rest.numel():
        i = rest[0]
        keep.append(i)
        if rest.numel() == 1:
            break
        others = rest[1:]
        overlap = iou(b[i : i + 1], b[others], mode)[0]
        rest = others[overlap <= threshold]
    return order[torch.stack(keep)]


def batched_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float, mode: str = "union"
) -> Tensor:
    """NMS within each group (e.g. each image or each scale) only; indices, best first."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # Shift each group far from the others so that boxes of two groups never overlap.
    span = (boxes[:, :4].max() - boxes[:, :4].min()).abs() + 1
    shifted = boxes[:, :4] + (groups.to(boxes.dtype) * 2 * span)[:, None]
    return nms(shifted, scores, threshold, mode)
