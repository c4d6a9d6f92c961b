"""Linf PGD on images against any objective, and the checks and measures the image attacks share
(the editors', the face detector's and the latent encoder's).

`linf_pgd` maximises a per-image objective from a seeded uniform start with a step that holds at
eps/4 for the first half and falls to eps/20, keeping per image the best iterate it saw; every
iterate stays in the eps ball and in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from pixelsmith.errors import UserError

MAX_EPS = 0.1
# The attacks run untiled with gradients: about 4 KB of memory per pixel at the peak (inpaint).
MAX_PIXELS = 2**20
Tick = Callable[[], None]


def mse_pm1(a: Tensor, b: Tensor) -> Tensor:
    """Per-image MSE on the [-1, 1] scale of two batches in [0, 1]: (N,)."""
    return 4 * (a.float() - b.float()).square().flatten(1).mean(1)


def image_psnr(a: Tensor, b: Tensor, where: Tensor | None = None) -> Tensor:
    """Per-image PSNR (dB, peak 1) of two batches in [0, 1], over the pixels where `where`
    (N or 1, 1, H, W) is 1 when given; +inf where equal."""
    d = (a.double() - b.double()).square()
    if where is None:
        mse = d.flatten(1).mean(1)
    else:
        w = where.double().to(d.device).expand(d.shape[0], 1, *d.shape[-2:])
        mse = (d * w).flatten(1).sum(1) / (w.flatten(1).sum(1) * d.shape[1]).clamp(min=1)
    return (10 * torch.log10(1 / mse)).float()


def batched(x: Tensor, what: str = "x") -> tuple[Tensor, bool]:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim not in (3, 4):
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise UserError(f"{what} must be a float (C, H, W) or (N, C, H, W) tensor, got {got}")
    xb = x[None] if x.ndim == 3 else x
    if xb.shape[1] not in (1, 3):
        raise UserError(f"{what} must be grey or RGB, got {xb.shape[1]} channels (strip alpha)")
    if xb.numel() and not (torch.isfinite(xb).all() and xb.min() >= 0 and xb.max() <= 1):
        raise UserError(f"{what} holds values outside [0, 1]; scale the images to [0, 1] first")
    return xb.detach().float(), x.ndim == 3


def check_eps(eps: float) -> float:
    """A Linf budget in [0, MAX_EPS], or UserError."""
    try:
        v = float(eps)
    except (TypeError, ValueError):
        raise UserError(f"eps must be a number such as 8/255, got {eps!r}") from None
    if not (math.isfinite(v) and 0 <= v <= MAX_EPS):
        raise UserError(f"eps must be from 0 to {MAX_EPS:g} (8/255 = 0.0314 is usual), got {eps}")
    return v


def check_size(h: int, w: int) -> None:
    """Refuse images above MAX_PIXELS (the attacks run untiled, with gradients)."""
    if h * w > MAX_PIXELS:
        raise UserError(
            f"a {w}x{h} image is over the {MAX_PIXELS:,} pixels an attack or protection runs on "
            "(untiled, with gradients, about 4 KB of memory per pixel); resize it first"
        )


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise UserError(f"steps must be a whole number, 0 or more, got {steps!r}")
    return steps


def step_sizes(eps: float, steps: int, alpha: float | None) -> list[float]:
    """alpha at every step, or eps/4 for the first half, falling linearly to eps/20."""
    if alpha is not None:
        return [float(alpha)] * steps
    half = steps // 2
    tail = [
        eps / 4 + (eps / 20 - eps / 4) * i / max(steps - half - 1, 1) for i in range(steps - half)
    ]
    return [eps / 4] * half + tail


Objective = Callable[[Tensor, int, bool], tuple[Tensor, Tensor | None]]


def value_and_grad(
    fn: Callable[[Tensor], Tensor], xa: Tensor, grad: bool
) -> tuple[Tensor, Tensor | None]:
    """fn(xa) per image, (N,), and with `grad` its sum's gradient with respect to xa."""
    if not grad:
        with torch.no_grad():
            return fn(xa), None
    xg = xa.detach().requires_grad_(True)
    with torch.enable_grad():
        value = fn(xg)
        (g,) = torch.autograd.grad(value.sum(), xg)
    return value.detach(), g


def linf_pgd(
    objective: Objective,
    x: Tensor,
    eps: float,
    steps: int,
    alpha: float | None,
    seed: int,
    tick: Tick | None,
) -> Tensor:
    """Linf PGD maximising objective(x_adv, step, grad) -> (value per image, its gradient) from
    a seeded uniform start; returns per image the best iterate seen (the last one included;
    with no steps, the start)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    noise = (torch.rand(x.shape, generator=g, device=x.device) * 2 - 1) * eps
    x_adv = torch.minimum(torch.maximum(x + noise, lo), hi)
    best, best_value = x_adv.clone(), torch.full((x.shape[0],), -math.inf, device=x.device)
    for step, a in enumerate([*step_sizes(eps, steps, alpha), None]):
        value, grad = objective(x_adv, step, a is not None)
        better = value > best_value
        best[better], best_value[better] = x_adv[better], value[better]
        if a is None or grad is None:
            break
        x_adv = torch.minimum(torch.maximum(x_adv + a * grad.sign(), lo), hi)
        if tick is not None:
            tick()
    return best


def random_signs(x: Tensor, eps: float, seed: int) -> Tensor:
    """x moved by +-eps on every value (random signs, seeded), clamped to [0, 1]."""
    g = torch.Generator(device=x.device).manual_seed(seed + 1)
    signs = torch.randint(0, 2, x.shape, generator=g, device=x.device).float() * 2 - 1
    return (x + eps * signs).clamp(0, 1)
