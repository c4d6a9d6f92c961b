"""Paths between latent codes (slerp for Gaussian z, lerp for W / W+), strips and animations.

Every path starts and ends exactly at its end points: t = 0 gives `a` and t = 1 gives `b` bit
for bit, whatever the floats in between do.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from pixelsmith.edit.latent.space import LatentSpace
from pixelsmith.errors import UserError
from pixelsmith.imageio import make_grid, to_pil
from pixelsmith.utils.files import atomic_write_bytes

ANIMATION_SUFFIXES = {".webp": "WEBP", ".gif": "GIF"}
# Below this sine of the angle the two vectors are (anti)parallel and slerp's weights are 0 / 0.
_PARALLEL = 1e-6


def _weights(t: float | Sequence[float] | Tensor, like: Tensor) -> Tensor:
    """t as a float tensor shaped to broadcast against `like` from the front: (T, 1, ..., 1)."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    return t.reshape(*t.shape, *([1] * like.dim()))


def _pin_ends(path: Tensor, t: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """The path with its t == 0 and t == 1 points replaced by a and b exactly."""
    path = torch.where(t == 0, a.expand_as(path), path)
    return torch.where(t == 1, b.expand_as(path), path)


def lerp(a: Tensor, b: Tensor, t: float | Sequence[float] | Tensor) -> Tensor:
    """(1 - t) a + t b; a scalar t gives a's shape, a list of T values (T, *a.shape)."""
    if a.shape != b.shape:
        raise UserError(f"cannot interpolate codes of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    w = _weights(t, a)
    return _pin_ends(a + w * (b - a), w, a, b)


def slerp(a: Tensor, b: Tensor, t: float | Sequence[float] | Tensor) -> Tensor:
    """Spherical interpolation along the last dimension (Shoemake):
    sin((1 - t) w) / sin w * a + sin(t w) / sin w * b, w the angle between a and b.

    The angle to a grows linearly with t; unit vectors stay unit. Where a and b are (anti)parallel
    the weights are undefined and the path is lerp's, their limit. Each row of a batch (and each
    layer of W+ codes) has its own angle.
    """
    if a.shape != b.shape:
        raise UserError(f"cannot interpolate codes of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    w = _weights(t, a)
    an = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    bn = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cos = (an * bn).sum(-1, keepdim=True).clamp(-1, 1)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    flat = sin < _PARALLEL
    safe = torch.where(flat, torch.ones_like(sin), sin)
    wa = torch.where(flat, 1 - w, torch.sin((1 - w) * omega) / safe)
    wb = torch.where(flat, w, torch.sin(w * omega) / safe)
    return _pin_ends(wa * a + wb * b, w, a, b)


def interpolate(space: LatentSpace, a_codes: Tensor, b_codes: Tensor, steps: int) -> Tensor:
    """Paths of `steps` codes from each a to each b by the space's rule: (N, steps, *space.shape).

    a_codes and b_codes are (N, *shape) or one code (*shape); W+ codes move layer by layer. The
    first and last codes of each path are a and b exactly.
    """
    if not isinstance(steps, int) or steps < 2:
        raise UserError(f"an interpolation needs at least 2 steps (its two ends), got {steps}")
    a, b = space.check(a_codes), space.check(b_codes)
    if len(a) != len(b):
        raise UserError(f"got {len(a)} start codes but {len(b)} end codes; give as many of each")
    t = torch.linspace(0, 1, steps, dtype=a.dtype, device=a.device)
    t[0], t[-1] = 0.0, 1.0
    rule = slerp if space.interpolation == "slerp" else lerp
    return rule(a, b, t).transpose(0, 1).contiguous()


def tour(space: LatentSpace, codes: Tensor, steps: int) -> Tensor:
    """The codes of a path through codes[0], codes[1], ... in turn, `steps` per leg (both ends
    included) by the space's rule, each joint once: ((len(codes) - 1) * (steps - 1) + 1, *shape).
    """
    codes = space.check(codes)
    if len(codes) < 2:
        raise UserError(f"an interpolation needs at least two end points, got {len(codes)}")
    legs = [interpolate(space, codes[i], codes[i + 1], steps)[0] for i in range(len(codes) - 1)]
    return torch.cat([legs[0], *(p[1:] for p in legs[1:])])


def strip(images: Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1) -> Tensor:
    """A batch (N, C, H, W) as one image (C, H', W'): one row, or rows of `nrow`; `scale` enlarges
    it with nearest neighbours."""
    if images.dim() != 4 or not len(images):
        raise UserError(f"a strip needs a batch of images (N, C, H, W), got {tuple(images.shape)}")
    grid = make_grid(images.float().clamp(0, 1).cpu(), nrow=nrow or len(images), pad=pad)
    if scale != 1:
        grid = grid.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)
    return grid


def check_animation_path(path: str | Path) -> str:
    """The Pillow format of an animation file name (.webp or .gif), or UserError."""
    fmt = ANIMATION_SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"an animation is written as .webp or .gif, not {Path(path).name}")
    return fmt


def write_animation(
    images: Tensor,
    path: str | Path,
    fps: float = 12.0,
    loop: int = 0,
    pingpong: bool = False,
    scale: int = 1,
) -> Path:
    """Write frames (N, C, H, W) as an animated WebP (lossless) or GIF, chosen by the suffix.

    loop = 0 repeats forever; pingpong plays the frames forward then back (without repeating the
    two ends); `scale` enlarges each frame with nearest neighbours. Written atomically. Both
    formats merge consecutive frames that are identical in 8 bits into one longer frame: the
    file then holds fewer frames and plays the same.
    """
    fmt = check_animation_path(path)
    if images.dim() != 4 or not len(images):
        raise UserError(f"an animation needs frames (N, C, H, W), got {tuple(images.shape)}")
    if not fps > 0:
        raise UserError(f"frames per second must be positive, got {fps}")
    if not isinstance(loop, int) or loop < 0:
        raise UserError(f"loop is a repeat count (0 = forever), got {loop}")
    frames = list(images)
    if pingpong and len(frames) > 2:
        frames += frames[-2:0:-1]
    pil = [to_pil(f) for f in frames]
    if scale != 1:
        pil = [im.resize((im.width * scale, im.height * scale), 0) for im in pil]  # 0: NEAREST
    if fmt == "GIF":  # GIF holds palette frames; grey stays exact, colour is quantised
        pil = [im.convert("RGB") if im.mode not in ("L", "RGB") else im for im in pil]
    else:
        pil = [im.convert("RGB") if im.mode == "L" else im for im in pil]
    duration = max(1, round(1000 / fps))
    buf = io.BytesIO()
    options = {"lossless": True, "quality": 100, "method": 4} if fmt == "WEBP" else {}
    if fmt == "GIF":
        options["disposal"] = 1
    pil[0].save(
        buf,
        format=fmt,
        save_all=True,
        append_images=pil[1:],
        duration=duration,
        loop=loop,
        **options,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
