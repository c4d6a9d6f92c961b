"""Full-reference image metrics: PSNR, SSIM and MS-SSIM on NCHW float tensors, plus a meter.

All functions take two batches `x`, `y` of shape (N, C, H, W) with values in [0, data_range] and
return one value per image (`reduction="none"`, shape (N,)) or their mean (`reduction="mean"`).

- `psnr`: 10 log10(data_range^2 / MSE) per image; identical images give +inf (no warning).
  `y_channel=True` scores the BT.601 luma of RGB images as super-resolution papers do (MATLAB
  `rgb2ycbcr`: Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255 for [0, 1] input).
- `ssim`: Wang et al. 2004 with an 11-tap Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  population covariance, averaged over the valid region (no padding) and over channels; equal to
  `skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)` to rounding.
- `ms_ssim`: 5-scale MS-SSIM (Wang, Simoncelli, Bovik 2003) as pytorch-msssim computes it: the
  contrast-structure term at the first four scales and full SSIM at the last, negatives clipped to
  0, the weighted product taken per channel, then averaged over channels. Downsampling is 2x2
  average pooling that drops an odd last row/column (pytorch-msssim zero-pads odd sizes instead;
  the two agree whenever every scale has even sides).

All arithmetic runs in float64 (see `_moments`); results come back in the input dtype, at least
float32.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from pixelsmith.errors import UserError

__all__ = ["ImageMetricMeter", "MeterResult", "ms_ssim", "psnr", "ssim"]

Reduction = Literal["none", "mean"]

WIN_SIZE = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_RANGE_TOL = 1e-6  # relative to data_range
# BT.601 luma weights for RGB in [0, 1] mapping to Y in [16, 235] / 255 (MATLAB rgb2ycbcr).
_LUMA = (65.481 / 255, 128.553 / 255, 24.966 / 255)
# Pixels filtered per step on CPU: one 256x256 plane keeps the five float64 moment maps near the
# cache, which is 2-3x faster than filtering the whole batch at once. Other devices take big steps.
_CPU_STEP_PIXELS = 1 << 16
_DEVICE_STEP_PIXELS = 1 << 24


def _gaussian_taps() -> tuple[float, ...]:
    """Normalised 1-D Gaussian taps, as scipy.ndimage builds them (truncate 3.5 gives 11 taps)."""
    r = WIN_SIZE // 2
    g = [math.exp(-0.5 * (k / SIGMA) ** 2) for k in range(-r, r + 1)]
    total = math.fsum(g)
    return tuple(v / total for v in g)


_TAPS = _gaussian_taps()


def _check_pair(x: torch.Tensor, y: torch.Tensor, data_range: float) -> float:
    """Raise UserError unless x, y are equal-shape NCHW float tensors within [0, data_range]."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise UserError(
            f"x and y must be torch tensors; got {type(x).__name__}, {type(y).__name__}."
        )
    if x.dim() != 4 or y.dim() != 4:
        raise UserError(
            f"x and y must be 4-D (N, C, H, W) tensors; got shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}."
        )
    if x.shape != y.shape:
        raise UserError(
            f"x and y must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}."
        )
    if x.device != y.device:
        raise UserError(f"x and y must be on the same device; got {x.device} and {y.device}.")
    if x.numel() == 0:
        raise UserError(f"x and y are empty (shape {tuple(x.shape)}).")
    if not x.is_floating_point() or not y.is_floating_point():
        raise UserError(
            f"x and y must be floating-point tensors; got {x.dtype} and {y.dtype} "
            "(for uint8 images use x.float() with data_range=255)."
        )
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real):
        raise UserError(f"data_range must be a number; got {data_range!r}.")
    data_range = float(data_range)
    if not (math.isfinite(data_range) and data_range > 0):
        raise UserError(f"data_range must be a positive finite number; got {data_range}.")
    tol = _RANGE_TOL * data_range
    for name, t in (("x", x), ("y", y)):
        lo, hi = (v.item() for v in torch.aminmax(t.detach()))
        if lo >= -tol and hi <= data_range + tol:
            continue  # NaN fails both comparisons, so it lands below
        if not bool(torch.isfinite(t).all()):
            raise UserError(f"{name} contains NaN or infinite values.")
        raise UserError(
            f"{name} has values in [{lo:.6g}, {hi:.6g}], outside [0, {data_range:g}]; "
            "pass the matching data_range or rescale the images."
        )
    return data_range


def _reduce(values: torch.Tensor, reduction: str, dtype: torch.dtype) -> torch.Tensor:
    """Cast per-image values to the result dtype and apply the reduction."""
    out = values.to(torch.promote_types(dtype, torch.float32))
    return out.mean() if reduction == "mean" else out


def _check_reduction(reduction: str) -> None:
    """Raise UserError for an unknown reduction."""
    if reduction not in ("none", "mean"):
        raise UserError(f"reduction must be 'none' or 'mean'; got {reduction!r}.")


def psnr(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    y_channel: bool = False,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (+inf for identical images)."""
    _check_reduction(reduction)
    data_range = _check_pair(x, y, data_range)
    d = x.to(torch.float64) - y.to(torch.float64)
    if y_channel:
        if x.shape[1] != 3:
            raise UserError(f"y_channel=True needs RGB images (3 channels); got {x.shape[1]}.")
        # The +16/255 offset of Y cancels in the difference.
        d = d[:, 0] * _LUMA[0] + d[:, 1] * _LUMA[1] + d[:, 2] * _LUMA[2]
    mse = d.square().flatten(1).mean(1)
    return _reduce(10 * torch.log10(data_range**2 / mse), reduction, x.dtype)


def _filter_valid(s: torch.Tensor) -> torch.Tensor:
    """Separable 11-tap Gaussian over the last two dims, 'valid' region only (shift-and-add)."""
    w = s.shape[-1] - (WIN_SIZE - 1)
    o = s[..., :w] * _TAPS[0]
    for k in range(1, WIN_SIZE):
        o.add_(s[..., k : k + w], alpha=_TAPS[k])
    h = s.shape[-2] - (WIN_SIZE - 1)
    p = o[..., :h, :] * _TAPS[0]
    for k in range(1, WIN_SIZE):
        p.add_(o[..., k : k + h, :], alpha=_TAPS[k])
    return p


def _moments(
    x: torch.Tensor, y: torch.Tensor, data_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term per (image, channel), shape (N, C), float64.

    float64 because sigma^2 = E[x^2] - E[x]^2 cancels badly in float32: on small, bright, nearly
    flat images float32 misses skimage by ~2e-4 (1e-7 errors divided by C2 = 9e-4), and centring
    the data only helps where the whole image is flat. Filtering one plane at a time with
    shift-and-add keeps float64 ~3x faster than torchmetrics' float32 11x11 convolution on CPU.
    """
    n, c, h, w = x.shape
    xp, yp = x.reshape(n * c, h, w), y.reshape(n * c, h, w)
    budget = _CPU_STEP_PIXELS if x.device.type == "cpu" else _DEVICE_STEP_PIXELS
    step = max(1, budget // (h * w))
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    ssim_vals = torch.empty(n * c, dtype=torch.float64, device=x.device)
    cs_vals = torch.empty_like(ssim_vals)
    for i in range(0, n * c, step):
        a, b = xp[i : i + step].to(torch.float64), yp[i : i + step].to(torch.float64)
        mx, my, sxx, syy, sxy = _filter_valid(torch.stack((a, b, a * a, b * b, a * b))).unbind(0)
        mxy, mxx, myy = mx * my, mx * mx, my * my
        cs_map = (2 * (sxy - mxy) + c2) / ((sxx - mxx) + (syy - myy) + c2)
        lum = (2 * mxy + c1) / (mxx + myy + c1)
        cs_vals[i : i + step] = cs_map.mean((-2, -1))
        ssim_vals[i : i + step] = (cs_map * lum).mean((-2, -1))
    return ssim_vals.view(n, c), cs_vals.view(n, c)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Structural similarity (Gaussian 11x11, sigma 1.5, valid region) per image, channel mean."""
    _check_reduction(reduction)
    data_range = _check_pair(x, y, data_range)
    h, w = x.shape[-2:]
    if min(h, w) < WIN_SIZE:
        raise UserError(
            f"ssim needs images of at least {WIN_SIZE}x{WIN_SIZE} pixels (the Gaussian window); "
            f"got {h}x{w}."
        )
    ssim_vals, _ = _moments(x, y, data_range)
    return _reduce(ssim_vals.mean(1), reduction, x.dtype)


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    reduction: Reduction = "none",
) -> torch.Tensor:
    """Multi-scale SSIM per image (one scale per weight; 5 scales need sides of 176 pixels)."""
    _check_reduction(reduction)
    data_range = _check_pair(x, y, data_range)
    wts = [float(v) for v in weights]
    if not wts or not all(math.isfinite(v) and v >= 0 for v in wts):
        raise UserError(
            f"weights must be a non-empty sequence of non-negative numbers; got {weights}."
        )
    levels = len(wts)
    h, w = x.shape[-2:]
    min_side = WIN_SIZE * 2 ** (levels - 1)  # the coarsest scale must still hold one window
    if min(h, w) < min_side:
        raise UserError(
            f"ms_ssim with {levels} scales needs images of at least {min_side}x{min_side} pixels; "
            f"got {h}x{w}."
        )
    a, b = x.to(torch.float64), y.to(torch.float64)
    per_channel = torch.ones(x.shape[:2], dtype=torch.float64, device=x.device)
    for level, wt in enumerate(wts):
        ssim_vals, cs_vals = _moments(a, b, data_range)
        if level == levels - 1:
            per_channel *= ssim_vals.clamp_min(0) ** wt
        else:
            per_channel *= cs_vals.clamp_min(0) ** wt
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return _reduce(per_channel.mean(1), reduction, x.dtype)


_METRICS: dict[str, Callable[..., torch.Tensor]] = {"psnr": psnr, "ssim": ssim, "ms-ssim": ms_ssim}


@dataclass(frozen=True)
class MeterResult:
    """Mean of a metric over all images seen, their count, and the per-image values if kept."""

    mean: float
    count: int
    values: torch.Tensor | None = None


class ImageMetricMeter:
    """Running per-image mean of psnr, ssim or ms-ssim over the batches of an evaluation loop."""

    def __init__(self, metric: str = "psnr", keep_values: bool = False, **kwargs: object) -> None:
        """Pick the metric; kwargs (data_range, y_channel, weights) go to the metric function."""
        if metric not in _METRICS:
            raise UserError(f"metric must be one of {', '.join(_METRICS)}; got {metric!r}.")
        fn = _METRICS[metric]
        if "reduction" in kwargs:
            raise UserError("ImageMetricMeter takes no reduction; it averages per-image values.")
        try:
            inspect.signature(fn).bind_partial(None, None, **kwargs)
        except TypeError as err:
            raise UserError(f"bad keyword arguments for {metric}: {err}.") from None
        self.metric = metric
        self.keep_values = keep_values
        self._fn = fn
        self._kwargs = kwargs
        self.reset()

    def reset(self) -> None:
        """Forget all images seen."""
        self._sum: torch.Tensor | None = None
        self._count = 0
        self._values: list[torch.Tensor] = []

    def update(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score one batch and return its per-image values."""
        values = self._fn(x, y, reduction="none", **self._kwargs).detach()
        total = values.sum(dtype=torch.float64)
        self._sum = total if self._sum is None else self._sum + total
        self._count += values.numel()
        if self.keep_values:
            self._values.append(values.cpu())
        return values

    def compute(self) -> MeterResult:
        """Mean over every image since the last reset (inf for psnr if any pair was identical)."""
        if self._sum is None:
            raise UserError(f"ImageMetricMeter({self.metric!r}) has seen no images yet.")
        values = torch.cat(self._values) if self.keep_values else None
        return MeterResult(mean=self._sum.item() / self._count, count=self._count, values=values)
