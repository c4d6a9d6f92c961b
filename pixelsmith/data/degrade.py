"""Seedable degradations for training and evaluating restoration models.

Conventions:

- Images are float tensors (N, C, H, W) with values in [0, 1]; imresize also takes (C, H, W).
- Per-sample randomness comes only from a BatchRandom, and every call draws each per-sample
  parameter for the whole batch in one call of a fixed size whatever the data, so a seed gives
  the same result and a batch split over processes gets the slices a single process would.
- imresize is MATLAB's imresize(..., 'bicubic') (Keys cubic, a = -0.5, antialiased when
  shrinking, symmetric borders); it neither clamps nor rounds, so overshoot beyond [0, 1]
  stays. bicubic_down clamps to [0, 1] and rounds to 1/255 levels like a saved 8-bit LR image,
  the usual super-resolution protocol (BasicSR's matlab_functions.imresize matches).
- GaussianNoise is additive white Gaussian noise with sigma on the 0-255 scale; like the AWGN
  denoising benchmarks it does not clip unless asked.
- Masks are 1 in the hole and 0 elsewhere; strokes and boxes follow LaMa's random_thin,
  random_medium and random_thick 256 generators, scaled with min(H, W) / 256.
- Masks are rasterised exactly: a pixel is a hole when its centre lies within half the brush
  width of a stroke segment (round caps and joints) or inside a box; strokes turn at uniform
  angles where LaMa uses a few integer radians.
- LowLight and Jpeg clamp to [0, 1] and quantise to 1/255 levels (they model 8-bit files);
  Jpeg is exactly Pillow's (libjpeg's) encode and decode. Blur neither clamps nor rounds;
  gaussian_blur matches scipy.ndimage.gaussian_filter(mode='reflect') with radius ceil(3 sigma)
  (scipy's truncate=3 rounds 3 sigma to the nearest integer instead).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.utils.rng import BatchRandom

MASK_KINDS = ("thin", "medium", "thick", "box", "mixed")


# ---------------------------------------------------------------------------------------------
# Checks


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{name}={value!r} is not a number: give a number.")
    if not math.isfinite(value):
        raise UserError(f"{name}={value!r} is not finite: give a finite number.")
    return float(value)


def _range(name: str, value: object, low: float, high: float = math.inf) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise UserError(f"{name}={value!r} is not a pair: give two numbers (low, high).")
    a, b = _number(name, value[0]), _number(name, value[1])
    if not low <= a <= b <= high:
        top = "" if math.isinf(high) else f" <= {high:g}"
        raise UserError(
            f"{name}={value!r} is invalid: give (low, high) with {low:g} <= low <= high{top}."
        )
    return (a, b)


def _check_batch(x: object, what: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise UserError(f"{what} needs a float (N, C, H, W) tensor, got {shape}.")
    return x


def _uniform(u: Tensor, low: float, high: float) -> Tensor:
    return low + (high - low) * u


def _quantize(x: Tensor) -> Tensor:
    return torch.round(x.clamp(0, 1) * 255) / 255


# ---------------------------------------------------------------------------------------------
# MATLAB-compatible bicubic resizing


def _cubic(t: Tensor) -> Tensor:
    a = t.abs()
    a2, a3 = a * a, a * a * a
    near = (1.5 * a3 - 2.5 * a2 + 1) * (a <= 1)
    far = (-0.5 * a3 + 2.5 * a2 - 4 * a + 2) * ((a > 1) & (a <= 2))
    return near + far


def _symmetric(index: Tensor, n: int) -> Tensor:
    """Map any integer index into [0, n) by mirroring that repeats the edge pixel."""
    j = torch.remainder(index, 2 * n)
    return torch.where(j >= n, 2 * n - 1 - j, j)


@functools.lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int, scale: float) -> Tensor:
    """The (n_out, n_in) float64 matrix of MATLAB's bicubic contributions along one axis."""
    kernel_scale, width = (scale, 4.0 / scale) if scale < 1 else (1.0, 4.0)
    u = torch.arange(1, n_out + 1, dtype=torch.float64) / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = left[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)
    weights = _cubic(kernel_scale * (u[:, None] - taps))
    weights = weights / weights.sum(dim=1, keepdim=True)
    columns = _symmetric(taps.long() - 1, n_in)  # MATLAB indices are 1-based
    return torch.zeros(n_out, n_in, dtype=torch.float64).scatter_add_(1, columns, weights)


def _out_length(n: int, scale: float) -> int:
    # ceil(n * scale), without the floating-point excess that turns 100 * 1.1 into 111.
    return max(1, math.ceil(n * scale - 1e-9))


def imresize(x: Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """Resize (C, H, W) or (N, C, H, W) images like MATLAB's imresize(x, scale, 'bicubic').

    Give either scale (output ceil(H * scale) x ceil(W * scale)) or size (out_h, out_w, each axis
    then scaled by out / in). Shrinking stretches the kernel by 1/scale (antialiasing); borders
    are mirrored including the edge pixel. Output values are not clamped.
    """
    if not isinstance(x, Tensor) or x.ndim not in (3, 4) or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise UserError(f"imresize needs a float (C, H, W) or (N, C, H, W) tensor, got {shape}.")
    h, w = x.shape[-2:]
    if (scale is None) == (size is None):
        raise UserError("imresize needs exactly one of scale and size.")
    if scale is not None:
        scale = _number("scale", scale)
        if scale <= 0:
            raise UserError(f"scale={scale:g} is invalid: give a positive number.")
        out_h, out_w = _out_length(h, scale), _out_length(w, scale)
        scale_h = scale_w = scale
    else:
        if (
            not isinstance(size, tuple | list)
            or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
        ):
            raise UserError(
                f"size={size!r} is invalid: give two positive integers (height, width)."
            )
        out_h, out_w = size
        scale_h, scale_w = out_h / h, out_w / w
    rows = _resize_matrix(h, out_h, scale_h).to(x.device, x.dtype)
    cols = _resize_matrix(w, out_w, scale_w).to(x.device, x.dtype).T
    # Both orders give the same result up to rounding; take the one with fewer multiplications.
    if out_h * w * (h + out_w) <= h * out_w * (w + out_h):
        return (rows @ x) @ cols
    return rows @ (x @ cols)


def modcrop(x: Tensor, scale: int) -> Tensor:
    """Crop the bottom rows and right columns so that H and W are multiples of scale."""
    h, w = x.shape[-2:]
    return x[..., : h - h % scale, : w - w % scale]


def bicubic_down(x: Tensor, scale: int, quantize: bool = True) -> Tensor:
    """The standard SR low-resolution image: modcrop, MATLAB bicubic by 1/scale, clamp, 8-bit.

    H and W are first cropped down to multiples of scale (modcrop); the result is clamped to
    [0, 1] and, with quantize, rounded to 1/255 levels as an LR image saved as 8-bit would be.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise UserError(f"scale={scale!r} is invalid: give a positive integer.")
    h, w = x.shape[-2:]
    if h < scale or w < scale:
        raise UserError(f"a {h}x{w} image is smaller than the scale {scale}: give a larger image.")
    x = modcrop(x, scale)
    lr = imresize(x, size=(x.shape[-2] // scale, x.shape[-1] // scale)).clamp(0, 1)
    return torch.round(lr * 255) / 255 if quantize else lr


# ---------------------------------------------------------------------------------------------
# Noise, blur, low light, JPEG


@dataclass
class GaussianNoise:
    """Additive white Gaussian noise with a per-sample sigma, uniform in a 0-255 scale range."""

    sigma: tuple[float, float] = (0.0, 50.0)
    clip: bool = False

    def __post_init__(self) -> None:
        self.sigma = _range("sigma", self.sigma, 0.0)

    def __call__(self, x: Tensor, rng: BatchRandom) -> tuple[Tensor, Tensor]:
        """The noisy images and each sample's sigma on the 0-255 scale, shape (N,)."""
        x = _check_batch(x, "GaussianNoise")
        n = x.shape[0]
        sigma = _uniform(rng.rand(n), *self.sigma).to(x.device, x.dtype)
        noise = rng.randn(n, *x.shape[1:]).to(x.device, x.dtype)
        noisy = x + noise * (sigma / 255).view(-1, 1, 1, 1)
        return (noisy.clamp(0, 1) if self.clip else noisy), sigma


def _gaussian_kernels(sigma: Tensor, radius: int) -> Tensor:
    """(N, 2 radius + 1) normalised kernels, each cut at its own radius ceil(3 sigma)."""
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    s = sigma.to(torch.float64)[:, None]
    own = torch.ceil(3 * s)
    k = torch.exp(-0.5 * (t / s.clamp_min(1e-300)) ** 2) * (t.abs() <= own)
    k = torch.where(s > 0, k, (t == 0).to(k))
    return k / k.sum(dim=1, keepdim=True)


def gaussian_blur(x: Tensor, sigma: float | Tensor) -> Tensor:
    """Isotropic Gaussian blur of (N, C, H, W) images; sigma in pixels, one or one per sample.

    Each kernel is cut at radius ceil(3 sigma) and normalised; borders mirror including the edge
    pixel (scipy.ndimage's 'reflect'); sigma 0 leaves a sample unchanged.
    """
    x = _check_batch(x, "gaussian_blur")
    n, c, h, w = x.shape
    sigma = torch.as_tensor(sigma, dtype=torch.float64).cpu().flatten()
    if sigma.numel() not in (1, n):
        raise UserError(f"gaussian_blur got {sigma.numel()} sigmas for {n} images: give 1 or {n}.")
    sigma = sigma.expand(n)
    if not bool(torch.isfinite(sigma).all()) or bool((sigma < 0).any()):
        raise UserError("gaussian_blur's sigma must be finite and >= 0.")
    radius = int(math.ceil(3 * float(sigma.max()))) if n else 0
    if radius == 0:
        return x.clone()
    kernels = _gaussian_kernels(sigma, radius).to(x.device, x.dtype)
    weight = kernels.repeat_interleave(c, dim=0)[:, None]  # (N * C, 1, K)
    y = x.reshape(1, n * c, h, w)
    rows = _symmetric(torch.arange(-radius, h + radius), h).to(x.device)
    y = F.conv2d(y.index_select(2, rows), weight[..., None], groups=n * c)
    cols = _symmetric(torch.arange(-radius, w + radius), w).to(x.device)
    y = F.conv2d(y.index_select(3, cols), weight[:, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


@dataclass
class Blur:
    """Isotropic Gaussian blur with a per-sample sigma (pixels), uniform in a range."""

    sigma: tuple[float, float] = (0.2, 3.0)

    def __post_init__(self) -> None:
        self.sigma = _range("sigma", self.sigma, 0.0)

    def __call__(self, x: Tensor, rng: BatchRandom) -> Tensor:
        """The blurred images (not clamped: a Gaussian blur stays within the input's range)."""
        x = _check_batch(x, "Blur")
        return gaussian_blur(x, _uniform(rng.rand(x.shape[0]), *self.sigma))


@dataclass
class LowLight:
    """A dark 8-bit photo: dark = gain * x**gamma, read and shot noise, clamp, 1/255 levels.

    gain, gamma and the read-noise sigma (noise, 0-1 scale) are uniform per sample; shot is the
    range of the Poisson-like shot noise's variance per unit of signal (variance shot * dark),
    off by default.
    """

    gain: tuple[float, float] = (0.05, 0.4)
    gamma: tuple[float, float] = (1.0, 2.5)
    noise: tuple[float, float] = (0.0, 0.03)
    shot: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        self.gain = _range("gain", self.gain, 0.0, 1.0)
        self.gamma = _range("gamma", self.gamma, 1e-3)
        self.noise = _range("noise", self.noise, 0.0)
        self.shot = _range("shot", self.shot, 0.0)

    def __call__(self, x: Tensor, rng: BatchRandom) -> Tensor:
        """The darkened, noisy, quantised images."""
        x = _check_batch(x, "LowLight")
        n = x.shape[0]
        u = rng.rand(n, 4).to(x.device, x.dtype)
        noise = rng.randn(n, *x.shape[1:]).to(x.device, x.dtype)
        gain, gamma, read, shot = (
            _uniform(u[:, i], *r).view(-1, 1, 1, 1)
            for i, r in enumerate((self.gain, self.gamma, self.noise, self.shot))
        )
        dark = gain * x.clamp(0, 1) ** gamma
        return _quantize(dark + noise * torch.sqrt(read**2 + shot * dark))


def jpeg(x: Tensor, quality: int | Tensor, subsampling: str = "4:2:0") -> Tensor:
    """Encode and decode each 8-bit-rounded sample through Pillow's JPEG at its quality.

    quality is one integer or one per sample (1-100); grey images (C = 1) are encoded as such,
    RGB ones with the given chroma subsampling. The result is on 1/255 levels in [0, 1].
    """
    x = _check_batch(x, "jpeg")
    n, c = x.shape[:2]
    if c not in (1, 3):
        raise UserError(f"jpeg needs grey (1) or RGB (3) channels, got {c}.")
    q = torch.as_tensor(quality).flatten()
    if q.numel() not in (1, n):
        raise UserError(f"jpeg got {q.numel()} qualities for {n} images: give 1 or {n}.")
    q = q.expand(n).tolist()
    if not all(float(v).is_integer() and 1 <= v <= 100 for v in q):
        raise UserError(f"JPEG quality {quality!r} is invalid: give integers in [1, 100].")
    if n == 0:
        return x.clone()
    pixels = torch.round(x.detach().clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1)
    pixels = pixels.cpu().numpy()
    out = []
    for image, qi in zip(pixels, q, strict=True):
        buffer = io.BytesIO()
        if c == 1:
            Image.fromarray(image[..., 0]).save(buffer, "JPEG", quality=int(qi))
        else:
            Image.fromarray(image).save(buffer, "JPEG", quality=int(qi), subsampling=subsampling)
        decoded = np.asarray(Image.open(buffer).convert("L" if c == 1 else "RGB"))
        out.append(torch.from_numpy(decoded.copy()).reshape(*decoded.shape[:2], c))
    return (torch.stack(out).permute(0, 3, 1, 2).to(x.device, x.dtype)) / 255


@dataclass
class Jpeg:
    """JPEG re-encoding at a per-sample integer quality, uniform in [low, high]."""

    quality: tuple[int, int] = (20, 95)
    subsampling: str = "4:2:0"

    def __post_init__(self) -> None:
        low, high = _range("quality", self.quality, 1, 100)
        if not (low.is_integer() and high.is_integer()):
            raise UserError(f"quality={self.quality!r} is invalid: give two integers.")
        self.quality = (int(low), int(high))
        if self.subsampling not in ("4:4:4", "4:2:2", "4:2:0"):
            raise UserError(
                f"subsampling={self.subsampling!r} is not supported: use 4:4:4, 4:2:2 or 4:2:0."
            )

    def __call__(self, x: Tensor, rng: BatchRandom) -> Tensor:
        """The decoded images."""
        x = _check_batch(x, "Jpeg")
        low, high = self.quality
        quality = low + rng.randint(high - low + 1, x.shape[0])
        return jpeg(x, quality, self.subsampling)


# ---------------------------------------------------------------------------------------------
# Inpainting masks

# LaMa's 256-pixel generators: stroke counts, then segment length and brush width in pixels at
# 256 (LaMa's 10 + randint(max_len) and 5 + randint(max_width), here drawn as continuous ranges).
_STROKES = {
    "thin": {"count": (4, 50), "length": (10.0, 50.0), "width": (5.0, 15.0)},
    "medium": {"count": (4, 5), "length": (10.0, 110.0), "width": (5.0, 55.0)},
    "thick": {"count": (1, 5), "length": (10.0, 210.0), "width": (5.0, 105.0)},
}
_SEGMENTS = (1, 5)
_BOXES = {"count": (1, 3), "size": (30.0, 150.0), "margin": 10.0}
# Columns of the uniform numbers one candidate mask uses: kind, stroke count, box count, then
# per stroke (start x, start y, segment count, then angle, length, width per segment), then
# per box (height, width, top, left).
_MAX_STROKES = max(p["count"][1] for p in _STROKES.values())
_STROKE_COLS = 3 + 3 * _SEGMENTS[1]
_BOX_COLS = 4
_MASK_DRAWS = 3 + _MAX_STROKES * _STROKE_COLS + _BOXES["count"][1] * _BOX_COLS


def _count(u: float, low: int, high: int) -> int:
    return min(high, low + int(u * (high - low + 1)))


def _capsule(mask: np.ndarray, p: np.ndarray, q: np.ndarray, radius: float) -> None:
    """Set the pixels whose centres lie within radius of segment p-q (x, y)."""
    h, w = mask.shape
    x0, x1 = (
        max(0, math.floor(min(p[0], q[0]) - radius)),
        min(w, math.ceil(max(p[0], q[0]) + radius) + 1),
    )
    y0, y1 = (
        max(0, math.floor(min(p[1], q[1]) - radius)),
        min(h, math.ceil(max(p[1], q[1]) + radius) + 1),
    )
    if x0 >= x1 or y0 >= y1:
        return
    gx = np.arange(x0, x1, dtype=np.float64)[None, :] - p[0]
    gy = np.arange(y0, y1, dtype=np.float64)[:, None] - p[1]
    d = q - p
    length2 = float(d @ d)
    t = np.clip((gx * d[0] + gy * d[1]) / length2, 0, 1) if length2 > 0 else 0.0
    mask[y0:y1, x0:x1] |= (gx - t * d[0]) ** 2 + (gy - t * d[1]) ** 2 <= radius * radius


def _strokes(u: np.ndarray, kind: str, h: int, w: int) -> np.ndarray:
    params, s = _STROKES[kind], min(h, w) / 256
    (len_lo, len_hi), (width_lo, width_hi) = params["length"], params["width"]
    mask = np.zeros((h, w), dtype=bool)
    rows = u[3 : 3 + _MAX_STROKES * _STROKE_COLS].reshape(_MAX_STROKES, _STROKE_COLS)
    corner = np.array([w - 1, h - 1], dtype=np.float64)
    for row in rows[: _count(u[1], *params["count"])]:
        point = row[:2] * corner
        segments = row[3:].reshape(-1, 3)[: _count(row[2], *_SEGMENTS)]
        for turn, length, width in segments:
            step = s * (len_lo + length * (len_hi - len_lo))
            angle = 2 * math.pi * turn
            end = np.clip(point + step * np.array([math.cos(angle), math.sin(angle)]), 0, corner)
            _capsule(mask, point, end, s * (width_lo + width * (width_hi - width_lo)) / 2)
            point = end
    return mask


def _side(u: float, s: float, avail: int) -> int:
    high = max(1, min(round(_BOXES["size"][1] * s), avail))
    low = max(1, min(round(_BOXES["size"][0] * s), high))
    return _count(u, low, high)


def _boxes(count: float, rows: np.ndarray, h: int, w: int, low: int, high: int) -> np.ndarray:
    s = min(h, w) / 256
    margin = min(round(_BOXES["margin"] * s), (h - 1) // 2, (w - 1) // 2)
    mask = np.zeros((h, w), dtype=bool)
    for uh, uw, ut, ul in rows.reshape(-1, _BOX_COLS)[: _count(count, low, high)]:
        bh, bw = _side(uh, s, h - 2 * margin), _side(uw, s, w - 2 * margin)
        top = margin + _count(ut, 0, h - 2 * margin - bh)
        left = margin + _count(ul, 0, w - 2 * margin - bw)
        mask[top : top + bh, left : left + bw] = True
    return mask


def _mask(u: np.ndarray, kind: str, h: int, w: int) -> np.ndarray:
    if kind == "mixed":
        kind = MASK_KINDS[_count(u[0], 0, 3)]
    if kind == "box":
        return _boxes(u[2], u[-_BOXES["count"][1] * _BOX_COLS :], h, w, *_BOXES["count"])
    return _strokes(u, kind, h, w)


def _check_mask_args(n: int, h: int, w: int, kind: str) -> None:
    for name, value in (("n", n), ("h", h), ("w", w)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name}={value!r} is invalid: give a positive integer.")
    if kind not in MASK_KINDS:
        raise UserError(f"kind={kind!r} is not a mask kind: use one of {', '.join(MASK_KINDS)}.")


def free_form_masks(n: int, h: int, w: int, rng: BatchRandom, kind: str = "mixed") -> Tensor:
    """(N, 1, H, W) LaMa-style hole masks (1 = hole) of a kind: thin, medium, thick, box, mixed.

    Strokes are random walks of 1-5 segments with uniform angles, drawn as round-capped brushes
    (every pixel whose centre is within half the width of a segment); box draws 1-3 rectangles;
    mixed picks one of the four kinds per sample. Sizes follow LaMa at 256 x 256, scaled by
    min(H, W) / 256.
    """
    _check_mask_args(n, h, w, kind)
    u = rng.rand(n, _MASK_DRAWS)
    masks = [_mask(row, kind, h, w) for row in u.cpu().double().numpy()]
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)).to(u.device)


def box_masks(n: int, h: int, w: int, rng: BatchRandom, count: tuple[int, int] = (1, 3)) -> Tensor:
    """(N, 1, H, W) masks of count = (low, high) random rectangles each, as free_form_masks' box."""
    _check_mask_args(n, h, w, "box")
    low, high = _range("count", count, 1)
    if not (low.is_integer() and high.is_integer()):
        raise UserError(f"count={count!r} is invalid: give two integers.")
    low, high = int(low), int(high)
    u = rng.rand(n, 1 + high * _BOX_COLS)
    rows = u.cpu().double().numpy()
    masks = [_boxes(row[0], row[1:], h, w, low, high) for row in rows]
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)).to(u.device)


def masks_with_coverage(
    n: int,
    h: int,
    w: int,
    rng: BatchRandom,
    coverage: tuple[float, float] = (0.2, 0.3),
    kind: str = "mixed",
    max_tries: int = 100,
    strict: bool = True,
) -> Tensor:
    """free_form_masks whose hole fraction lies in coverage, the first of max_tries per sample.

    The candidates' numbers are drawn up front (max_tries per sample, one call), so the result
    and the numbers consumed depend only on the rng; no fitting candidate is a UserError, or with
    `strict=False` (training, which must not stop) the candidate closest to the range.
    """
    _check_mask_args(n, h, w, kind)
    low, high = _range("coverage", coverage, 0.0, 1.0)
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise UserError(f"max_tries={max_tries!r} is invalid: give a positive integer.")
    u = rng.rand(n, max_tries, _MASK_DRAWS)
    masks = []
    for tries in u.cpu().double().numpy():
        closest, gap = None, math.inf
        for row in tries:
            mask = _mask(row, kind, h, w)
            if low <= mask.mean() <= high:
                masks.append(mask)
                break
            miss = max(low - mask.mean(), mask.mean() - high)
            if miss < gap:
                closest, gap = mask, miss
        else:
            if not strict:
                masks.append(closest)
                continue
            raise UserError(
                f"no {kind!r} {h}x{w} mask covered {low:g}-{high:g} of the image in {max_tries} "
                "tries: widen the coverage range, pick another kind or raise max_tries."
            )
    return torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)).to(u.device)
