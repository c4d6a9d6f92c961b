"""Face restoration: the shipped denoise / enhance / super-resolution models run on each face's
region alone and feathered back; with `sr` the rest of the photo is enlarged by bicubic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.faces.blend import Region, default_feather, face_region, paste
from pixelsmith.faces.types import Face

OPS = ("denoise", "enhance", "sr")


def check_ops(ops: Sequence[str], scale: int) -> None:
    """Refuse unknown or repeated operations, and a scale other than 2 or 4 with sr."""
    if not ops:
        raise UserError(f"give at least one operation of {', '.join(OPS)}")
    for op in ops:
        if op not in OPS:
            raise UserError(f"unknown face restoration {op!r}; use {', '.join(OPS)}")
    if len(set(ops)) != len(ops):
        raise UserError(f"each operation once, got {', '.join(ops)}")
    if "sr" in ops and scale not in (2, 4):
        raise UserError(f"sr enlarges x2 or x4 (the shipped models), got x{scale}")


def _scaled(r: Region, s: int) -> Region:
    return Region(r.top * s, r.left * s, r.bottom * s, r.right * s)


def restore_faces(
    image: Tensor,
    faces: Sequence[Face],
    ops: Sequence[str] = ("denoise", "enhance"),
    scale: int = 2,
    margin: float = 0.25,
    sigma: float | None = None,
) -> tuple[Tensor, list[Region]]:
    """image (C, H, W) with each face's region restored by `ops` in order; returns the image
    (enlarged `scale` times when "sr" is among ops) and the regions (in input pixels)."""
    from pixelsmith.data.degrade import imresize
    from pixelsmith.edit import ops as edit_ops

    check_ops(ops, scale)
    _, h, w = image.shape
    s = scale if "sr" in ops else 1
    out = image.float()
    if s > 1:
        out = imresize(out[None], scale=s)[0].clamp(0, 1)
    regions = [face_region(f, h, w, margin) for f in faces]
    for r in regions:
        crop = r.crop(image.float())
        for op in ops:
            if op == "denoise":
                crop = edit_ops.denoise(crop, sigma=sigma)
            elif op == "enhance":
                crop = edit_ops.enhance(crop)
            else:
                crop = edit_ops.super_resolve(crop, scale=s)
        crop = crop.clamp(0, 1)
        target = _scaled(r, s)
        if tuple(crop.shape[-2:]) != (target.height, target.width):  # SR of an odd crop
            target = replace(target, bottom=target.top + crop.shape[-2])
            target = replace(target, right=target.left + crop.shape[-1])
        out = paste(out, crop, target, default_feather(target, margin))
    return out, regions
