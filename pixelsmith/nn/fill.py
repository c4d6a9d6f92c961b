"""The harmonic fill: holes filled with the solution of Laplace's equation whose boundary is the
known pixels, the classical first stage of pixelsmith's inpainting (and a named option of its
own). It lives here, below the models, because the inpainting model trains on it.

An image is a float tensor (C, H, W) or (N, C, H, W) in [0, 1], C = 1 or 3; a mask is (1, H, W)
for a (C, H, W) image, and (N, 1, H, W), or one (1, H, W) or (1, 1, H, W) for every sample, for a
batch; 1 = hole (values above 0.5). Each hole pixel becomes the mean of its 4 neighbours (the
image border is a mirror), solved by multigrid: a coarse-to-fine start, then `iterations`
V-cycles of red-black Gauss-Seidel, or with None as many as it takes until one changes no pixel
by more than 1e-4 (at most 30). Known pixels come back exactly as they went in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.errors import UserError


def as_batch(x: Tensor) -> tuple[Tensor, bool]:
    """The image as (N, C, H, W), and whether it came without a batch axis; checks the layout."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise UserError("an image must be a float tensor with values in [0, 1]")
    if x.dim() not in (3, 4) or x.shape[-3] not in (1, 3):
        raise UserError(
            f"an image must be (C, H, W) or (N, C, H, W) with 1 or 3 channels, got {tuple(x.shape)}"
        )
    return (x[None], True) if x.dim() == 3 else (x, False)


def unbatch(y: Tensor, single: bool) -> Tensor:
    y = y.clamp(0, 1)
    return y[0] if single else y


def hole_mask(xb: Tensor, mask: Tensor, single: bool) -> Tensor:
    """The mask as an (N, 1, H, W) bool tensor of holes, checked against the batched image."""
    n, c, h, w = xb.shape
    shape, want = (
        ((c, h, w), f"(1, {h}, {w})") if single else (xb.shape, f"(1 or {n}, 1, {h}, {w})")
    )
    m = mask[None] if isinstance(mask, Tensor) and mask.dim() == 3 else mask
    if (
        not isinstance(m, Tensor)
        or m.dim() != 4
        or m.shape[1] != 1
        or m.shape[-2:] != (h, w)
        or m.shape[0] not in (1, n)
        or (single and mask.dim() != 3)
    ):
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise UserError(
            f"the mask for an image of shape {tuple(shape)} must be {want} with 1 = hole, got {got}"
        )
    holes = (m > 0.5).expand(n, 1, h, w)
    if holes.flatten(1).all(1).any():
        raise UserError("the mask covers a whole image, so there are no known pixels to fill from")
    return holes


def _neighbour_sum(u: Tensor) -> Tensor:
    """Sum of each pixel's 4 neighbours inside the image (missing ones at the border left out)."""
    s = torch.empty_like(u)
    s[..., :-1, :].copy_(u[..., 1:, :])
    s[..., -1:, :].zero_()
    s[..., 1:, :].add_(u[..., :-1, :])
    s[..., :, 1:].add_(u[..., :, :-1])
    s[..., :, :-1].add_(u[..., :, 1:])
    return s


def _pad_even(t: Tensor, value: float) -> Tensor:
    return F.pad(t, (0, t.shape[-1] % 2, 0, t.shape[-2] % 2), value=value)


def _coarsen(t: Tensor) -> Tensor:
    """2 x 2 block sums of an (N, C, H, W) tensor padded to even sides."""
    return F.avg_pool2d(t, 2, divisor_override=1)


class _Level:
    """One pyramid level of the hole problem: count * u - neighbour_sum(u) = f on the holes."""

    def __init__(self, holes: Tensor, dtype: torch.dtype):
        self.holes = holes
        self.hole = holes.to(dtype)
        self.empty = not bool(holes.any())
        h, w = holes.shape[-2:]
        self.count = _neighbour_sum(torch.ones(1, 1, h, w, dtype=dtype, device=holes.device))
        rows = torch.arange(h, device=holes.device)[:, None]
        parity = (rows + torch.arange(w, device=holes.device)) % 2
        colours = [(holes & (parity == p)).to(dtype) for p in (0, 1)]
        # A half sweep is u <- keep * u + gain * (neighbour_sum(u) + f) for one colour.
        self.keep = [1 - c for c in colours]
        self.gain = [c / self.count for c in colours]

    def relax(self, u: Tensor, f: Tensor | None, sweeps: int) -> Tensor:
        """Red-black Gauss-Seidel sweeps (each colour's holes take their neighbours' mean)."""
        for _ in range(0 if self.empty else sweeps):
            for keep, gain in zip(self.keep, self.gain, strict=True):
                s = _neighbour_sum(u)
                if f is not None:
                    s += f
                u = torch.addcmul(u * keep, gain, s)
        return u

    def residual(self, u: Tensor, f: Tensor | None) -> Tensor:
        r = _neighbour_sum(u) - self.count * u
        if f is not None:
            r += f
        return r * self.hole


def _pyramid(holes: Tensor, dtype: torch.dtype) -> list[_Level]:
    """Levels from full size down to 2 pixels a side, or until no holes are left."""
    levels = [_Level(holes, dtype)]
    while max(holes.shape[-2:]) > 2 and holes.any():
        # A coarse pixel is a hole only when all 4 children are (pixels past the edge count as
        # holes): a coarse hole reaching past the fine one over-corrects thin strokes and diverges.
        holes = _coarsen(_pad_even(holes.to(dtype), 1)) > 3.5
        levels.append(_Level(holes, dtype))
    return levels


def _vcycle(levels: list[_Level], u: Tensor, f: Tensor | None, k: int = 0) -> Tensor:
    """One multigrid V-cycle: smooth, solve for the error one level down, correct, smooth."""
    level = levels[k]
    if k == len(levels) - 1:
        return level.relax(u, f, 20)
    u = level.relax(u, f, 2)
    r = _coarsen(_pad_even(level.residual(u, f), 0)) * levels[k + 1].hole
    e = _vcycle(levels, torch.zeros_like(r), r, k + 1)
    e = F.interpolate(e, scale_factor=2, mode="bilinear", align_corners=False)
    u = u + e[..., : u.shape[-2], : u.shape[-1]] * level.hole
    return level.relax(u, f, 2)


def _cascade(levels: list[_Level], x: Tensor, k: int = 0) -> Tensor:
    """Starting values: each level's holes from the next coarser level's fill, then smoothed."""
    level = levels[k]
    known = 1 - level.hole
    if k == len(levels) - 1:
        mean = (x * known).sum((2, 3), keepdim=True) / known.sum((2, 3), keepdim=True)
        return level.relax(torch.where(level.holes, mean, x), None, 20)
    # The coarser image averages each block's known pixels; all-hole blocks are its holes.
    weight = _coarsen(_pad_even(known, 0))
    coarse = _coarsen(_pad_even(x * known, 0)) / weight.clamp_min(1e-12)
    start = F.interpolate(
        _cascade(levels, coarse, k + 1), scale_factor=2, mode="bilinear", align_corners=False
    )
    u = torch.where(level.holes, start[..., : x.shape[-2], : x.shape[-1]], x)
    return level.relax(u, None, 2)


def harmonic_fill(x: Tensor, mask: Tensor, iterations: int | None = None) -> Tensor:
    """Fill the holes with the solution of Laplace's equation whose boundary is the known pixels."""
    if iterations is not None and (not isinstance(iterations, int) or iterations < 0):
        raise UserError(
            f"harmonic_fill's iterations must be a whole number, 0 or more, got {iterations}"
        )
    xb, single = as_batch(x)
    holes = hole_mask(xb, mask, single)
    dtype = torch.float64 if xb.dtype == torch.float64 else torch.float32
    levels = _pyramid(holes, dtype)
    u = _cascade(levels, xb.to(dtype))
    for _ in range(30 if iterations is None else iterations):
        before = u
        u = _vcycle(levels, u, None)
        if iterations is None and (u - before).abs().max() <= 1e-4:
            break
    return unbatch(torch.where(holes, u.to(xb.dtype), xb), single)
