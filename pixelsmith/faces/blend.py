"""Regions around faces and feathered pasting: edits land inside a region and nowhere else.

A region is a face's box grown by a margin and clipped to the image, in whole pixels. Its
feather mask is 1 in the middle and falls smoothly to 0 at the region's own edge, so pixels
outside the region are never touched and the step at the border is at most
|edit - original| / feather per pixel (no visible seam).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.faces.types import Face


@dataclass(frozen=True)
class Region:
    """Integer pixel rectangle [top, bottom) x [left, right) of an image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def crop(self, image: Tensor) -> Tensor:
        """The region of a (..., H, W) tensor."""
        return image[..., self.top : self.bottom, self.left : self.right]


def check_margin(margin: float) -> None:
    """Refuse a margin outside [0, 2] (a fraction of the face's size)."""
    if not 0 <= float(margin) <= 2:
        raise UserError(f"the margin is a fraction of the face's size in [0, 2], got {margin}")


def face_region(face: Face, height: int, width: int, margin: float = 0.25) -> Region:
    """The face's box grown by `margin` x its size on every side, clipped, in whole pixels."""
    check_margin(margin)
    x0, y0, x1, y1 = face.box
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    top, left = max(0, int(y0 - my)), max(0, int(x0 - mx))
    bottom, right = min(height, int(-(-(y1 + my) // 1))), min(width, int(-(-(x1 + mx) // 1)))
    if bottom <= top or right <= left:
        raise UserError(f"face box {face.box} lies outside the {width}x{height} image")
    return Region(top, left, bottom, right)


def default_feather(region: Region, margin: float) -> int:
    """Feather width in pixels: most of the margin band (so the face itself is replaced in
    full), at least 1, and below half the region."""
    side = min(region.height, region.width)
    band = margin / (1 + 2 * margin) * side
    return max(1, min(int(0.8 * band), (side - 1) // 2 or 1))


def feather_mask(
    height: int, width: int, feather: int, edges: tuple[bool, bool, bool, bool] = (True,) * 4
) -> Tensor:
    """(1, height, width) weights: 1 inside, a smoothstep to 0 at the rectangle's outer edge.

    Pixel i of n is (i + 0.5) from one edge and (n - i - 0.5) from the other; the weight
    ramps over `feather` pixels, so the outermost pixels get a small positive weight and
    everything beyond the rectangle gets none. `edges` (top, bottom, left, right) says which
    sides ramp: a side on the image's own border does not (there is nothing to blend with,
    and a ramp there would leave the original showing).
    """
    if feather < 0:
        raise UserError(f"the feather width must be >= 0 pixels, got {feather}")
    top, bottom, left, right = edges

    def ramp(n: int, start: bool, end: bool) -> Tensor:
        i = torch.arange(n, dtype=torch.float32) + 0.5
        inf = torch.full((n,), float("inf"))
        d = torch.minimum(i if start else inf, (n - i) if end else inf)
        if feather == 0:
            return torch.ones(n)
        t = (d / feather).clamp(0, 1)
        return t * t * (3 - 2 * t)

    return (ramp(height, top, bottom)[:, None] * ramp(width, left, right)[None, :])[None]


def paste(image: Tensor, patch: Tensor, region: Region, feather: int) -> Tensor:
    """image (C, H, W) with `patch` (C, h, w, the region's size) feathered into the region
    (no feather on the sides that lie on the image's border)."""
    if tuple(patch.shape[-2:]) != (region.height, region.width):
        raise ValueError(f"patch {tuple(patch.shape)} does not fit region {region}")
    h, w = image.shape[-2:]
    edges = (region.top > 0, region.bottom < h, region.left > 0, region.right < w)
    out = image.clone()
    m = feather_mask(region.height, region.width, feather, edges).to(image)
    base = region.crop(image)
    out[..., region.top : region.bottom, region.left : region.right] = base + m * (patch - base)
    return out


def boxes_to_faces(boxes: Sequence[Sequence[float]]) -> list[Face]:
    """Faces from plain [x0, y0, x1, y1] boxes (score 1, no landmarks), checked."""
    faces = []
    for b in boxes:
        if len(b) != 4:
            raise UserError(f"a box is [x0, y0, x1, y1], got {list(b)}")
        try:
            x0, y0, x1, y1 = (float(v) for v in b)
        except (TypeError, ValueError):
            raise UserError(f"a box is four numbers [x0, y0, x1, y1], got {list(b)}") from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
            raise UserError(f"box {list(b)} has a coordinate that is not a finite number")
        if not (x1 > x0 and y1 > y0):
            raise UserError(f"box {list(b)} is empty: x1 must exceed x0 and y1 exceed y0")
        faces.append(Face((x0, y0, x1, y1), 1.0, None, "boxes"))
    return faces
