"""Run a local network over a large image in overlapping tiles, so memory stays flat.

A tile is cut with a margin of `margin` input pixels on every side that has image there; the
network runs on the cut and only the tile's own part of its output is kept. When the margin is
at least the network's receptive-field radius, every kept output pixel saw exactly the input it
sees in one untiled run, so the result equals the untiled one (up to float rounding of the
convolution kernels, which pick their blocking by shape: below 1e-5 here). Tile corners and
margins are multiples of `multiple`, so a network that downsamples by `multiple` keeps its
sampling grid. The image sides must already be multiples of `multiple` (callers pad once).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn


def _starts(n: int, tile: int) -> list[int]:
    return list(range(0, n, tile))


def tile_count(h: int, w: int, tile: int) -> int:
    """How many tiles an h x w input takes."""
    return math.ceil(h / tile) * math.ceil(w / tile)


@torch.no_grad()
def run_tiled(
    net: Callable[[Tensor], Tensor] | nn.Module,
    x: Tensor,
    tile: int,
    margin: int,
    multiple: int = 1,
    scale: int = 1,
    out_channels: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """net(x) for an (N, C, H, W) input, computed tile by tile (see the module doc)."""
    n, _, h, w = x.shape
    if h % multiple or w % multiple:
        raise ValueError(f"input sides {h}x{w} must be multiples of {multiple}")
    tile = max(multiple, tile // multiple * multiple)
    margin = math.ceil(margin / multiple) * multiple
    if h <= tile and w <= tile:
        out = net(x)
        if progress:
            progress(1, 1)
        return out
    total, done = tile_count(h, w, tile), 0
    out: Tensor | None = None
    for y0 in _starts(h, tile):
        for x0 in _starts(w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(0, y0 - margin), max(0, x0 - margin)
            yb, xb = min(h, y1 + margin), min(w, x1 + margin)
            part = net(x[..., ya:yb, xa:xb])
            if out is None:
                c = out_channels or part.shape[1]
                out = torch.empty(n, c, h * scale, w * scale, dtype=part.dtype, device=part.device)
            ty, tx = (y0 - ya) * scale, (x0 - xa) * scale
            keep = part[..., ty : ty + (y1 - y0) * scale, tx : tx + (x1 - x0) * scale]
            out[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = keep
            done += 1
            if progress:
                progress(done, total)
    assert out is not None
    return out


@torch.no_grad()
def receptive_radius(net: nn.Module, channels: int, size: int = 256, seed: int = 0) -> int:
    """The farthest input pixel (Chebyshev distance) that moves the centre output pixel of
    `net` on a random input: the margin a tiled run needs, measured by back-propagation."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, channels, size, size, generator=g).requires_grad_(True)
    with torch.enable_grad():
        out = net(x)
        s = out.shape[-1] // size
        c = size // 2
        out[..., c * s, c * s].sum().backward()
    assert x.grad is not None
    hit = (x.grad.abs().sum(1)[0] > 0).nonzero()
    if not len(hit):
        return 0
    return int((hit - c).abs().max())
