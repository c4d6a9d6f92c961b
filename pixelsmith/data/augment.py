"""Image augmentation: a classic geometric + colour pipeline and DiffAugment for GAN training.

All randomness comes from a BatchRandom, and every call draws the same count of numbers whatever
the data or which ops fire, so multi-process runs match single-process runs and resume is
bit-exact. Quarter turns draw one more number per sample, and only when they are on, so recipes
written before them keep their random streams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.utils.colour import luma
from pixelsmith.utils.rng import BatchRandom

PADDING_MODES = ("zeros", "border", "reflection")
DIFF_POLICIES = ("color", "translation", "cutout")

# Columns of the uniform numbers Augment draws per sample per call.
_FIRE_CROP, _FIRE_ROTATE, _FIRE_SCALE, _FIRE_FLIP, _FIRE_COLOR = range(5)
_CROP_AREA, _CROP_X, _CROP_Y, _ANGLE, _ZOOM, _BRIGHT, _CONTRAST, _SAT = range(5, 13)
_AUGMENT_DRAWS = 13
# Columns DiffAugment draws: brightness, saturation, contrast, shift y/x, cutout centre y/x.
_DIFF_DRAWS = 7


# ---------------------------------------------------------------------------------------------
# Config


@dataclass
class AugmentConfig:
    """Probabilities and ranges of the augmentation ops; the defaults turn everything off."""

    flip_p: float = 0.0
    # A quarter, half or three-quarter turn (equally likely) with this probability: exact, no
    # resampling; 0.75 with flip_p=0.5 makes the 8 symmetries of a square equally likely.
    # Images that are not square turn by half turns only.
    rot90_p: float = 0.0
    crop_p: float = 0.0
    crop_scale: tuple[float, float] = (0.8, 1.0)
    rotate_p: float = 0.0
    rotate_deg: float = 15.0
    scale_p: float = 0.0
    scale_range: tuple[float, float] = (0.9, 1.1)
    color_p: float = 0.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    padding_mode: str = "reflection"

    def __post_init__(self) -> None:
        unit = (
            "flip_p",
            "rot90_p",
            "crop_p",
            "rotate_p",
            "scale_p",
            "color_p",
            "brightness",
            "contrast",
        )
        for name in (*unit, "saturation"):
            setattr(self, name, _in_range(name, getattr(self, name), 0.0, 1.0))
        self.rotate_deg = _in_range("rotate_deg", self.rotate_deg, 0.0, 180.0)
        self.crop_scale = _as_pair("crop_scale", self.crop_scale)
        if not 0.0 < self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise UserError(
                f"crop_scale={self.crop_scale} is invalid: give (low, high) area fractions "
                "with 0 < low <= high <= 1."
            )
        self.scale_range = _as_pair("scale_range", self.scale_range)
        if not 0.0 < self.scale_range[0] <= self.scale_range[1]:
            raise UserError(
                f"scale_range={self.scale_range} is invalid: give (low, high) zoom factors "
                "with 0 < low <= high."
            )
        if self.padding_mode not in PADDING_MODES:
            raise UserError(
                f"padding_mode={self.padding_mode!r} is not supported: use one of "
                f"{', '.join(PADDING_MODES)}."
            )

    @property
    def enabled(self) -> bool:
        """Whether any op can fire."""
        probs = (self.flip_p, self.rot90_p, self.crop_p, self.rotate_p, self.scale_p, self.color_p)
        return any(p > 0 for p in probs)


def _as_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{name}={value!r} is not a number: give a number.")
    if not math.isfinite(value):
        raise UserError(f"{name}={value!r} is not finite: give a finite number.")
    return float(value)


def _in_range(name: str, value: object, low: float, high: float) -> float:
    number = _as_float(name, value)
    if not low <= number <= high:
        raise UserError(f"{name}={number} is out of range: give a value in [{low:g}, {high:g}].")
    return number


def _as_pair(name: str, value: object) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise UserError(f"{name}={value!r} is not a pair: give two numbers (low, high).")
    return (_as_float(name, value[0]), _as_float(name, value[1]))


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise ValueError(f"expected NCHW images with 1, 3 or 4 channels, got {tuple(x.shape)}")


def _split_alpha(x: Tensor) -> tuple[Tensor, Tensor | None]:
    return (x[:, :3], x[:, 3:]) if x.shape[1] == 4 else (x, None)


def _merge_alpha(color: Tensor, alpha: Tensor | None) -> Tensor:
    return color if alpha is None else torch.cat([color, alpha], dim=1)


# ---------------------------------------------------------------------------------------------
# Geometry: one affine matrix per sample, one resampling


def affine_theta(
    height: int,
    width: int,
    *,
    flip: Tensor,
    angle_deg: Tensor,
    zoom: Tensor,
    crop_side: Tensor,
    crop_shift: Tensor,
) -> Tensor:
    """The (N, 2, 3) affine_grid matrices of crop, then rotate, then zoom, then flip.

    Per sample: flip (bool) mirrors horizontally; angle_deg rotates counter-clockwise as displayed
    (90 equals torch.rot90(x, 1, (-2, -1)) on square images); zoom > 1 magnifies about the centre;
    crop_side is the crop's side as a fraction of the image's (aspect kept) and crop_shift (N, 2)
    its centre (x, y) in normalised units, where ±(1 - crop_side) touches the border.
    """
    n = flip.shape[0]
    dtype, device = torch.float32, flip.device
    eye = torch.eye(3, dtype=dtype, device=device).repeat(n, 1, 1)
    # Matrices map output coordinates to input ones, in pixels about the image centre, so
    # rotation stays a rotation on non-square images; M = crop @ rotate @ zoom @ flip.
    half = torch.tensor([width / 2, height / 2], dtype=dtype, device=device)
    crop = eye.clone()
    crop[:, 0, 0] = crop[:, 1, 1] = crop_side.to(dtype)
    crop[:, :2, 2] = crop_shift.to(dtype) * half
    rad = torch.deg2rad(angle_deg.to(torch.float64))
    cos, sin = torch.cos(rad).to(dtype), torch.sin(rad).to(dtype)
    rotate = eye.clone()
    rotate[:, 0, 0], rotate[:, 0, 1], rotate[:, 1, 0], rotate[:, 1, 1] = cos, -sin, sin, cos
    scale = eye.clone()
    scale[:, 0, 0] = scale[:, 1, 1] = 1.0 / zoom.to(dtype)
    mirror = eye.clone()
    mirror[:, 0, 0] = 1.0 - 2.0 * flip.to(dtype)
    m = crop @ rotate @ scale @ mirror
    to_pixels = torch.diag(torch.cat([half, torch.ones(1, dtype=dtype, device=device)]))
    to_norm = torch.diag(torch.cat([1.0 / half, torch.ones(1, dtype=dtype, device=device)]))
    return (to_norm @ m @ to_pixels)[:, :2, :]


def warp(x: Tensor, theta: Tensor, padding_mode: str = "reflection") -> Tensor:
    """Resample x (N, C, H, W) once through per-sample affine matrices (bilinear)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


# ---------------------------------------------------------------------------------------------
# Colour


def adjust_color(x: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor) -> Tensor:
    """Scale brightness, then contrast about the mean luma, then saturation, per sample.

    Factors are (N,) tensors with 1 meaning unchanged. Like torchvision's ColorJitter, each step
    clamps to [0, 1]. Alpha (channel 4) is left alone; saturation is a no-op on gray images.
    """
    color, alpha = _split_alpha(x)
    b, c, s = (f.to(x).view(-1, 1, 1, 1) for f in (brightness, contrast, saturation))
    color = (color * b).clamp(0, 1)
    mean = luma(color).mean(dim=(1, 2, 3), keepdim=True)
    color = (c * color + (1 - c) * mean).clamp(0, 1)
    if color.shape[1] == 3:
        color = (s * color + (1 - s) * luma(color)).clamp(0, 1)
    return _merge_alpha(color, alpha)


# ---------------------------------------------------------------------------------------------
# The pipeline


def _uniform(u: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * u


def _geometry(x: Tensor, u: Tensor, cfg: AugmentConfig) -> Tensor:
    fire = u[:, :4] < torch.tensor(
        [cfg.crop_p, cfg.rotate_p, cfg.scale_p, cfg.flip_p], device=u.device
    )
    fired = fire.any(dim=1).nonzero().flatten()
    if fired.numel() == 0:
        return x
    fire, u = fire[fired], u[fired]
    side = torch.sqrt(_uniform(u[:, _CROP_AREA], *cfg.crop_scale))
    side = torch.where(fire[:, _FIRE_CROP], side, torch.ones_like(side))
    shift = (2 * u[:, [_CROP_X, _CROP_Y]] - 1) * (1 - side)[:, None]
    angle = _uniform(u[:, _ANGLE], -cfg.rotate_deg, cfg.rotate_deg)
    zoom = _uniform(u[:, _ZOOM], *cfg.scale_range)
    theta = affine_theta(
        x.shape[2],
        x.shape[3],
        flip=fire[:, _FIRE_FLIP],
        angle_deg=torch.where(fire[:, _FIRE_ROTATE], angle, torch.zeros_like(angle)),
        zoom=torch.where(fire[:, _FIRE_SCALE], zoom, torch.ones_like(zoom)),
        crop_side=side,
        crop_shift=shift,
    )
    return x.index_copy(0, fired, warp(x[fired], theta, cfg.padding_mode))


def _color(x: Tensor, u: Tensor, cfg: AugmentConfig) -> Tensor:
    fired = (u[:, _FIRE_COLOR] < cfg.color_p).nonzero().flatten()
    if fired.numel() == 0:
        return x
    u = u[fired]
    b = _uniform(u[:, _BRIGHT], 1 - cfg.brightness, 1 + cfg.brightness)
    c = _uniform(u[:, _CONTRAST], 1 - cfg.contrast, 1 + cfg.contrast)
    s = _uniform(u[:, _SAT], 1 - cfg.saturation, 1 + cfg.saturation)
    return x.index_copy(0, fired, adjust_color(x[fired], b, c, s))


def augment(x: Tensor, cfg: AugmentConfig, rng: BatchRandom) -> Tensor:
    """Randomly crop, rotate, zoom and flip (one resampling), then jitter colour; x in [0, 1].

    Samples where no op fires come back bit-identical.
    """
    _check_images(x)
    u = rng.rand(x.shape[0], _AUGMENT_DRAWS).to(x.device)
    x = _color(_geometry(x, u, cfg), u, cfg).clamp(0, 1)
    if cfg.rot90_p > 0:
        x = quarter_turns(x, rng.rand(x.shape[0]).to(x.device), cfg.rot90_p)
    return x


def quarter_turns(x: Tensor, u: Tensor, p: float) -> Tensor:
    """Turn sample i by k quarter turns where u[i] < p, k in 1..3 from u[i] (2 if not square)."""
    k = torch.where(u < p, 1 + (3 * u / p).long().clamp(max=2), torch.zeros_like(u).long())
    if x.shape[-1] != x.shape[-2]:
        k = torch.where(k > 0, torch.full_like(k, 2), k)
    out = x.clone()
    for turns in (1, 2, 3):
        idx = (k == turns).nonzero().flatten()
        if idx.numel():
            out[idx] = torch.rot90(x[idx], turns, dims=(2, 3))
    return out


class Augment(torch.nn.Module):
    """Module form of augment()."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        self.cfg = cfg

    def forward(self, x: Tensor, rng: BatchRandom) -> Tensor:
        """Augment a batch of [0, 1] images with randomness from rng."""
        return augment(x, self.cfg, rng)


# ---------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020), following the reference implementation's ops


def parse_policy(policy: str) -> list[str]:
    """Split a DiffAugment policy like 'color,translation,cutout', rejecting unknown names."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in DIFF_POLICIES]
    if unknown:
        raise UserError(
            f"DiffAugment policy {policy!r} has unknown op(s) {', '.join(unknown)}: "
            f"use a comma-separated list of {', '.join(DIFF_POLICIES)}."
        )
    return names


def diff_color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor) -> Tensor:
    """Add brightness, scale about the channel mean (saturation), scale about the image mean.

    Per-sample (N,) parameters; the reference draws them from U(-0.5, 0.5), U(0, 2), U(0.5, 1.5).
    Alpha (channel 4) is left alone; saturation is a no-op on gray images.
    """
    color, alpha = _split_alpha(x)
    b, s, c = (p.to(x).view(-1, 1, 1, 1) for p in (brightness, saturation, contrast))
    # The three steps in closed form, to touch full-size tensors twice instead of six times:
    # brightness shifts both means by b, and scaling about a mean keeps that mean, so
    # out = c * s * (x - pixel_mean) + c * (pixel_mean - image_mean) + image_mean + b.
    image_mean = color.mean(dim=(1, 2, 3), keepdim=True)
    if color.shape[1] == 1:
        color = torch.addcmul(image_mean * (1 - c) + b, color, c)
    else:
        pixel_mean = color.mean(dim=1, keepdim=True)
        offset = torch.addcmul(image_mean + b, pixel_mean - image_mean, c)
        color = torch.addcmul(offset, color - pixel_mean, c * s)
    return _merge_alpha(color, alpha)


def translate(x: Tensor, shift: Tensor) -> Tensor:
    """Move each image by integer (dy, dx) pixels (shift is (N, 2) long), filling with zeros.

    Equal to torch.roll(x[i], (dy, dx), (-2, -1)) with the wrapped-around pixels zeroed.
    """
    n, c, h, w = x.shape
    # Source index of each output row/column in an image padded by one zero on every side;
    # sources outside the image are clamped onto that zero border.
    rows = (torch.arange(h, device=x.device) - shift[:, :1] + 1).clamp(0, h + 1)
    cols = (torch.arange(w, device=x.device) - shift[:, 1:] + 1).clamp(0, w + 1)
    index = (rows[:, :, None] * (w + 2) + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    padded = F.pad(x, (1, 1, 1, 1)).flatten(2)
    return padded.gather(2, index).view(n, c, h, w)


def cutout(x: Tensor, center: Tensor, size: tuple[int, int]) -> Tensor:
    """Zero a (size_h, size_w) rectangle per image whose top-left is center - size // 2.

    center is (N, 2) long (y, x); the rectangle is clipped where it crosses the border.
    """
    n, _, h, w = x.shape
    top = center[:, :1] - size[0] // 2
    left = center[:, 1:] - size[1] // 2
    rows = torch.arange(h, device=x.device) - top
    cols = torch.arange(w, device=x.device) - left
    inside_rows = (rows >= 0) & (rows < size[0])
    inside_cols = (cols >= 0) & (cols < size[1])
    keep = ~(inside_rows[:, :, None] & inside_cols[:, None, :])
    return x * keep.view(n, 1, h, w).to(x.dtype)


def _to_int(u: Tensor, low: int, high: int) -> Tensor:
    """Uniform integers in [low, high] from uniforms in [0, 1)."""
    return (low + torch.floor(u * (high - low + 1))).long().clamp(low, high)


def diff_augment(
    x: Tensor, policy: str = "color,translation,cutout", rng: BatchRandom | None = None
) -> Tensor:
    """DiffAugment: random colour, translation and cutout, differentiable w.r.t. x.

    Like the reference, it assumes images in [-1, 1]: brightness adds U(-0.5, 0.5) and translation
    and cutout fill with 0 (mid-gray). Apply it to real and fake images in both D and G steps.
    Translation moves by up to 1/8 of the size; cutout zeroes a square of half the size centred
    anywhere in the image (clipped at the border). Every call draws the same numbers whatever
    the policy.
    """
    if rng is None:
        raise TypeError("diff_augment needs rng=BatchRandom(...)")
    names = parse_policy(policy)
    _check_images(x)
    n, _, h, w = x.shape
    u = rng.rand(n, _DIFF_DRAWS).to(x.device)
    for name in names:
        if name == "color":
            x = diff_color(x, u[:, 0] - 0.5, 2 * u[:, 1], u[:, 2] + 0.5)
        elif name == "translation":
            sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
            x = translate(x, torch.stack([_to_int(u[:, 3], -sy, sy), _to_int(u[:, 4], -sx, sx)], 1))
        else:
            size = (int(h * 0.5 + 0.5), int(w * 0.5 + 0.5))
            # The reference's centre range: [0, h] for even sizes, [0, h - 1] for odd ones.
            cy = _to_int(u[:, 5], 0, h - size[0] % 2)
            cx = _to_int(u[:, 6], 0, w - size[1] % 2)
            x = cutout(x, torch.stack([cy, cx], 1), size)
    return x


class DiffAugment(torch.nn.Module):
    """Module form of diff_augment()."""

    def __init__(self, policy: str = "color,translation,cutout"):
        super().__init__()
        parse_policy(policy)
        self.policy = policy

    def forward(self, x: Tensor, rng: BatchRandom) -> Tensor:
        """DiffAugment x (images in [-1, 1]) with randomness from rng."""
        return diff_augment(x, self.policy, rng)
