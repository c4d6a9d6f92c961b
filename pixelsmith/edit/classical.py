"""Classical (non-learned) image tools: the `enhance` and `inpaint` options and the baselines.

Conventions: an image is a float tensor (C, H, W) or (N, C, H, W) with values in [0, 1] and
C = 1 (grey) or 3 (RGB); callers strip alpha before and put it back after. A mask is (1, H, W) for
a (C, H, W) image, and (N, 1, H, W), or one (1, H, W) or (1, 1, H, W) for every sample, for a
batch; 1 = hole (values above 0.5 count as hole). Every tool returns the input's shape, clamped to
[0, 1], and works on each sample alone.

Which channel each tool works on:
- autocontrast, unsharp: each channel on its own, as Pillow's ImageOps.autocontrast and
  ImageFilter.UnsharpMask do (cutoff is a fraction here, a percent there; unsharp's radius is the
  blur's standard deviation as Pillow's, amount = percent / 100, threshold = Pillow's / 255).
- clahe: the luma Y of YCbCr (ITU-R 601: Y = 0.299 R + 0.587 G + 0.114 B) for RGB, keeping Cb and
  Cr, so every pixel moves along the grey axis and keeps its hue unless a channel clips; grey
  images directly. clip and grid are OpenCV's clipLimit and tileGridSize (grid x grid tiles).
- white_balance: one gain per channel (grey images are returned unchanged).
- gamma: out = x ** value on every channel (value below 1 brightens); value None picks the
  exponent for which the output's mean luma is 0.5, searched in [0.1, 10].
- harmonic_fill, telea_fill: every channel on its own, from the known pixels of the same sample;
  known pixels come back exactly as they went in.

Luminance, wherever a tool needs one, is that luma Y (a grey image's own channel).

harmonic_fill solves the discrete Laplace equation (each hole pixel is the mean of its 4
neighbours; the image border is a mirror) by multigrid: a coarse-to-fine start, then `iterations`
V-cycles, or with None as many as it takes until one changes no pixel by more than 1e-4 (at most
30). telea_fill runs OpenCV's cv2.inpaint(..., INPAINT_TELEA) on the image rounded to 8 bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import kornia
import torch
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.nn.fill import as_batch, harmonic_fill, hole_mask, unbatch
from pixelsmith.utils.colour import luma

__all__ = [
    "ENHANCERS",
    "FILLS",
    "autocontrast",
    "clahe",
    "enhance_classical",
    "gamma",
    "harmonic_fill",
    "telea_fill",
    "unsharp",
    "white_balance",
]

_luma = luma


def autocontrast(x: Tensor, cutoff: float = 0.01) -> Tensor:
    """Stretch each channel linearly so its `cutoff` fraction of darkest and of brightest clip."""
    if not 0 <= cutoff < 0.5:
        raise UserError(f"autocontrast's cutoff is a fraction in [0, 0.5), got {cutoff}")
    xb, single = as_batch(x)
    n, c, h, w = xb.shape
    flat = xb.reshape(n * c, h * w)
    # Pillow's count of clipped pixels, int(n * percent // 100), with the cutoff in percent.
    cut = int(h * w * (cutoff * 100) // 100)
    lo = flat.kthvalue(cut + 1, dim=1).values
    hi = flat.kthvalue(h * w - cut, dim=1).values
    flat_span = hi > lo
    scale = torch.where(flat_span, 1 / (hi - lo).clamp_min(1e-12), torch.ones_like(lo))
    offset = torch.where(flat_span, lo, torch.zeros_like(lo))
    y = (flat - offset[:, None]) * scale[:, None]
    return unbatch(y.view_as(xb), single)


def clahe(x: Tensor, clip: float = 2.0, grid: int = 8) -> Tensor:
    """Contrast-limited adaptive histogram equalisation of the luma on a `grid` x `grid` tiling."""
    if not clip >= 0:
        raise UserError(f"clahe's clip limit must be 0 (no limit) or more, got {clip}")
    if not isinstance(grid, int) or grid < 1:
        raise UserError(f"clahe's grid must be a whole number of tiles, 1 or more, got {grid}")
    xb, single = as_batch(x)
    if min(xb.shape[-2:]) <= grid:
        raise UserError(
            f"clahe's {grid} x {grid} grid needs an image larger than {grid} pixels on each side, "
            f"got {tuple(xb.shape[-2:])}"
        )
    rgb = xb.shape[1] == 3
    ycc = kornia.color.rgb_to_ycbcr(xb) if rgb else xb
    # The luma of an 8-bit grey pixel comes out a rounding error below its level; the nudge keeps
    # it in that level's histogram bin, so a grey RGB image equalises as the grey image does.
    y = (ycc[:, :1] + 1e-6).clamp(0, 1) if rgb else ycc.clamp(0, 1)
    y = kornia.enhance.equalize_clahe(y, clip_limit=float(clip), grid_size=(grid, grid))
    out = kornia.color.ycbcr_to_rgb(torch.cat([y, ycc[:, 1:]], 1)) if rgb else y
    return unbatch(out, single)


def white_balance(x: Tensor) -> Tensor:
    """Grey-world white balance: gain each channel so all channel means equal their average."""
    xb, single = as_batch(x)
    if xb.shape[1] == 1:
        return unbatch(xb, single)
    means = xb.mean(dim=(2, 3), keepdim=True)
    # An all-black channel stays black (0 times any gain) instead of dividing by zero.
    gains = means.mean(1, keepdim=True) / means.clamp_min(1e-6)
    return unbatch(xb * gains, single)


def _auto_gamma(xb: Tensor, target: float = 0.5, steps: int = 20) -> Tensor:
    """(N,) exponents in [0.1, 10] for which each sample's mean output luma is `target`."""
    # The mean luma of x ** g falls as g grows, so bisect on log g; the closed form
    # log(0.5) / log(mean) only maps the mean itself and leaves a spread dark image below 0.5.
    lo = xb.new_full((xb.shape[0],), math.log(0.1))
    hi = xb.new_full((xb.shape[0],), math.log(10.0))
    base = xb.clamp(0, 1)
    for _ in range(steps):
        mid = (lo + hi) / 2
        bright = _luma(base ** mid.exp().view(-1, 1, 1, 1)).mean(dim=(1, 2, 3)) > target
        lo = torch.where(bright, mid, lo)
        hi = torch.where(bright, hi, mid)
    return ((lo + hi) / 2).exp()


def gamma(x: Tensor, value: float | None = None) -> Tensor:
    """Raise every channel to the power `value`; None picks the one giving mean output luma 0.5."""
    if value is not None and not value > 0:
        raise UserError(f"gamma's exponent must be above 0, got {value}")
    xb, single = as_batch(x)
    g = _auto_gamma(xb) if value is None else xb.new_full((xb.shape[0],), float(value))
    return unbatch(xb.clamp(0, 1) ** g.view(-1, 1, 1, 1), single)


def unsharp(x: Tensor, radius: float = 2.0, amount: float = 1.0, threshold: float = 0.0) -> Tensor:
    """Add `amount` times x minus its Gaussian blur (std `radius`) where above `threshold`."""
    if not radius > 0:
        raise UserError(
            f"unsharp's radius (the blur's standard deviation) must be above 0, got {radius}"
        )
    if not amount >= 0:
        raise UserError(f"unsharp's amount must be 0 or more, got {amount}")
    if not 0 <= threshold <= 1:
        raise UserError(f"unsharp's threshold is an intensity in [0, 1], got {threshold}")
    xb, single = as_batch(x)
    size = 2 * math.ceil(3 * radius) + 1
    # kornia.filters.unsharp_mask has a fixed gain of 1 and no threshold, so only its blur is used;
    # replicate borders, as Pillow's blur extends the edge pixels.
    blur = kornia.filters.gaussian_blur2d(
        xb, (size, size), (float(radius), float(radius)), border_type="replicate"
    )
    detail = xb - blur
    detail = torch.where(detail.abs() > threshold, detail, torch.zeros_like(detail))
    return unbatch(xb + amount * detail, single)


ENHANCERS: dict[str, Callable[[Tensor], Tensor]] = {
    "autocontrast": autocontrast,
    "clahe": clahe,
    "white-balance": white_balance,
    "gamma": gamma,
    "unsharp": unsharp,
}


def enhance_classical(x: Tensor, methods: Sequence[str]) -> Tensor:
    """Apply the named ENHANCERS, with their defaults, in the given order."""
    names = [methods] if isinstance(methods, str) else list(methods)
    unknown = [m for m in names if m not in ENHANCERS]
    if unknown:
        raise UserError(
            f"unknown enhance method {unknown[0]!r}; choose from {', '.join(ENHANCERS)}"
        )
    for name in names:
        x = ENHANCERS[name](x)
    return x


def telea_fill(x: Tensor, mask: Tensor, radius: int = 3) -> Tensor:
    """Fill the holes with OpenCV's Telea fast-marching inpainting (needs the `edit` extra)."""
    if not isinstance(radius, int) or radius < 1:
        raise UserError(
            f"telea_fill's radius must be a whole number of pixels, 1 or more, got {radius}"
        )
    xb, single = as_batch(x)
    holes = hole_mask(xb, mask, single)
    try:
        import cv2
    except ImportError:
        raise UserError(
            "the telea fill needs OpenCV: pip install 'pixelsmith[edit]' "
            "(or pip install opencv-python-headless)"
        ) from None
    images = (xb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    images = images.cpu().contiguous()
    masks = holes[:, 0].to(torch.uint8).cpu().numpy()
    filled = [
        cv2.inpaint(
            image.numpy().squeeze(-1) if image.shape[-1] == 1 else image.numpy(),
            m,
            radius,
            cv2.INPAINT_TELEA,
        )
        for image, m in zip(images, masks, strict=True)
    ]
    out = torch.stack([torch.from_numpy(f) for f in filled]).reshape(images.shape)
    out = out.permute(0, 3, 1, 2)
    out = out.to(device=xb.device, dtype=xb.dtype) / 255
    return unbatch(torch.where(holes, out, xb), single)


FILLS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "harmonic": harmonic_fill,
    "telea": telea_fill,
}
