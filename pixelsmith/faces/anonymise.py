"""Face anonymisation: every face's region replaced (blur, pixelate, solid, inpaint or a
generated face) and feathered in; pixels outside the regions are returned unchanged."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.faces.blend import Region, default_feather, face_region, paste
from pixelsmith.faces.types import Face

METHODS = ("blur", "pixelate", "solid", "inpaint", "generate")
# The face generator `generate` draws from (28x28 grey LFW faces), colourised to each region.
FACE_GENERATOR = "zoo:faces-stylegan"
# Blocks across a face for `pixelate`, and the blur's sigma as a fraction of the face's size.
# The matcher re-identified 75% of 100 LFW faces pixelated at 8 blocks and 46% blurred at
# 0.12, but 4% at 4 blocks and 3% at 0.4 (chance 1%; bench/faces_anonymise.py): the defaults.
PIXELATE_BLOCKS = 4
MAX_BLOCKS = 32
BLUR_FRACTION = 0.4


@dataclass
class Anonymised:
    """The anonymised image and, per face, its region and what was done."""

    image: Tensor
    regions: list[Region] = field(default_factory=list)
    feathers: list[int] = field(default_factory=list)

    def report(self) -> list[dict[str, Any]]:
        """JSON-ready: each region as [top, left, bottom, right] with its feather."""
        return [
            {"region": [r.top, r.left, r.bottom, r.right], "feather": f}
            for r, f in zip(self.regions, self.feathers, strict=True)
        ]


def check_method(method: str) -> None:
    """Refuse an unknown anonymisation method."""
    if method not in METHODS:
        raise UserError(f"unknown anonymisation method {method!r}; use one of {', '.join(METHODS)}")


def check_strength(blocks: int = PIXELATE_BLOCKS, blur: float = BLUR_FRACTION) -> None:
    """Refuse pixelate blocks outside 1-MAX_BLOCKS or a blur sigma fraction outside (0, 2]."""
    if not (isinstance(blocks, int) and 1 <= blocks <= MAX_BLOCKS):
        raise UserError(
            f"pixelate's blocks across a face must be a whole number from 1 to {MAX_BLOCKS} "
            f"(more leaves a face recognisable), got {blocks}"
        )
    if not 0 < blur <= 2:
        raise UserError(f"the blur's sigma is a fraction of the face's size in (0, 2], got {blur}")


def _blur(crop: Tensor, face_side: float, fraction: float) -> Tensor:
    from pixelsmith.data.degrade import gaussian_blur

    sigma = max(1.0, fraction * face_side)
    # A large sigma on a large face: blur a copy shrunk so sigma is ~4 px there, then enlarge
    # (the same look at a fraction of the cost of a 6-sigma kernel at full size).
    shrink = max(1.0, sigma / 4)
    h, w = crop.shape[-2:]
    small = F.interpolate(
        crop[None],
        size=(max(1, round(h / shrink)), max(1, round(w / shrink))),
        mode="area",
    )
    small = gaussian_blur(small, sigma / shrink)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)[0]


def _band(region: Region, margin: float) -> int:
    """The margin band's width in pixels: a feather never reaches into the face's own box, so
    the box is always replaced in full, however wide a feather is asked for."""
    return int(margin / (1 + 2 * margin) * min(region.height, region.width))


def _pixelate(crop: Tensor, face_side: float, blocks: int) -> Tensor:
    h, w = crop.shape[-2:]
    block = max(2, round(face_side / blocks))  # a block of one pixel would change nothing
    small = F.interpolate(
        crop[None], size=(max(1, math.ceil(h / block)), max(1, math.ceil(w / block))), mode="area"
    )
    return F.interpolate(small, size=(h, w), mode="nearest")[0]


def _solid(crop: Tensor, colour: Sequence[float] | None) -> Tensor:
    c = crop.shape[0]
    if colour is None:
        fill = torch.zeros(c, 1, 1)
    else:
        values = [float(v) for v in colour]
        if len(values) not in (1, c) or not all(0 <= v <= 1 for v in values):
            raise UserError(
                f"the fill colour is 1 or {c} values in [0, 1] for this image, got {values}"
            )
        fill = torch.tensor(values).reshape(-1, 1, 1).expand(c, 1, 1)
    return fill.to(crop).expand_as(crop).clone()


def _generated(crop: Tensor, seed: int, generator: Any) -> Tensor:
    """A generated grey face resized to the crop, given the crop's colour statistics."""
    from pixelsmith.edit.latent.space import latent_space

    space = latent_space(generator)  # the family's default space: a seed draws the same face
    face = space.images(space.from_seeds([seed]))[0]  # (c, h, w) in [0, 1]
    h, w = crop.shape[-2:]
    face = F.interpolate(face[None], size=(h, w), mode="bicubic", align_corners=False)[0]
    g = face.mean(0, keepdim=True)
    g = (g - g.mean()) / g.std().clamp_min(1e-3)
    mean = crop.mean((1, 2), keepdim=True)
    std = crop.std((1, 2), keepdim=True).clamp_min(0.05)
    return (mean + g * std).clamp(0, 1)


def load_face_generator(spec: str | Path | None = None) -> Any:
    """The generator `generate` pastes faces from (default: the zoo's face StyleGAN)."""
    from pixelsmith.generate.load import load_model

    return load_model(spec or FACE_GENERATOR).eval()


def anonymise(
    image: Tensor,
    faces: Sequence[Face],
    method: str = "blur",
    margin: float = 0.25,
    feather: int | None = None,
    colour: Sequence[float] | None = None,
    seed: int = 0,
    generator: Any = None,
    blocks: int = PIXELATE_BLOCKS,
    blur: float = BLUR_FRACTION,
) -> Anonymised:
    """image (C, H, W) in [0, 1] with every face's region (box + margin) replaced by `method`.

    `inpaint` fills the regions with the shipped inpainting model (one mask for all faces),
    `generate` pastes a face drawn from `generator` (seed + face index) coloured like the
    region; `blocks` (pixelate: blocks across a face) and `blur` (the sigma as a fraction of
    a face's size) set those two methods' strength. Each region is feathered in; pixels
    outside every region are returned unchanged.
    """
    check_method(method)
    check_strength(blocks, blur)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise UserError(
            f"anonymise takes one (C, H, W) image with 1 or 3 channels, got {tuple(image.shape)}"
        )
    if feather is not None and feather < 0:
        raise UserError(f"the feather width must be >= 0 pixels, got {feather}")
    _, h, w = image.shape
    regions = [face_region(f, h, w, margin) for f in faces]
    feathers = [
        default_feather(r, margin) if feather is None else min(int(feather), _band(r, margin))
        for r in regions
    ]
    out = image.float().clone()
    if method == "inpaint" and regions:
        from pixelsmith.edit.ops import inpaint

        mask = torch.zeros(1, 1, h, w)
        for r in regions:
            mask[..., r.top : r.bottom, r.left : r.right] = 1
        filled = inpaint(out, mask)
        for r, fw in zip(regions, feathers, strict=True):
            out = paste(out, r.crop(filled), r, fw)
        return Anonymised(out, regions, feathers)
    if method == "generate" and generator is None and regions:
        generator = load_face_generator()
    for i, (face, r, fw) in enumerate(zip(faces, regions, feathers, strict=True)):
        crop = r.crop(out)
        side = max(face.width, face.height)
        if method == "blur":
            patch = _blur(crop, side, blur)
        elif method == "pixelate":
            patch = _pixelate(crop, side, blocks)
        elif method == "solid":
            patch = _solid(crop, colour)
        else:
            patch = _generated(crop, seed + i, generator)
        out = paste(out, patch, r, fw)
    return Anonymised(out, regions, feathers)
