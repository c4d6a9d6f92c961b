"""Learning-rate schedules: a factor of the fraction of the training budget spent.

The factor multiplies each optimiser group's configured learning rate; it depends on the
fraction of the budget spent alone (steps, epochs or minutes, whichever runs out first), so a
resumed run continues on the same curve and one schedule fits any budget; with a time budget
the curve follows the clock.

- ``constant``: 1 (after the warm-up);
- ``cosine``: from 1 down to `lr_floor` along half a cosine (Loshchilov and Hutter 2017);
- ``step``: times `lr_gamma` at each fraction in `lr_milestones`.

`warmup` (a fraction of the budget) ramps the factor linearly from 0 first (Goyal et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

SCHEDULES = ("constant", "cosine", "step")


def lr_factor(
    fraction: float,
    schedule: str = "constant",
    warmup: float = 0.0,
    floor: float = 0.0,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
) -> float:
    """The learning rate's factor once `fraction` (0..1) of the budget is spent."""
    f = min(max(fraction, 0.0), 1.0)
    ramp = min(1.0, f / warmup) if warmup > 0 else 1.0
    g = (f - warmup) / (1 - warmup) if f > warmup else 0.0
    if schedule == "cosine":
        base = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * g))
    elif schedule == "step":
        base = gamma ** sum(f >= m for m in milestones)
    else:
        base = 1.0
    return ramp * base


def base_rates(optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, list[float]]:
    """Each optimiser group's configured learning rate, taken before a checkpoint's (scaled)
    rates are restored, so a resume with a changed rate follows the new one."""
    return {k: [g["lr"] for g in opt.param_groups] for k, opt in optimizers.items()}


def apply_factor(
    optimizers: dict[str, torch.optim.Optimizer], bases: dict[str, list[float]], factor: float
) -> None:
    """Set every group's learning rate to its base rate times `factor`."""
    for k, opt in optimizers.items():
        for group, base in zip(opt.param_groups, bases[k], strict=True):
            group["lr"] = base * factor


def describe(schedule: str, warmup: float, floor: float, milestones: Sequence[float],
             gamma: float) -> str | None:  # fmt: skip
    """The schedule as cards carry it, or None for a constant rate with no warm-up."""
    if schedule == "constant" and not warmup:
        return None
    text = schedule
    if schedule == "cosine" and floor:
        text += f" to {floor:g}"
    if schedule == "step":
        text += f" x{gamma:g} at {','.join(f'{m:g}' for m in milestones)}"
    return text + (f", warm-up {warmup:g}" if warmup else "")
