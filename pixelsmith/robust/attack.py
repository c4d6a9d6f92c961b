"""One attack by name with its settings, as `pixelsmith attack` runs it: fgsm, pgd, cw, apgd,
apgd-t (targeted DLR at each image's most likely wrong class, or at --target) and square."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pixelsmith.errors import UserError
from pixelsmith.nn import attacks

ATTACKS = ("fgsm", "pgd", "cw", "apgd", "apgd-t", "square")


def parse_eps(text: str | float) -> float:
    """A budget written as a number or a fraction ("8/255"), or UserError."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        top, _, bottom = str(text).strip().partition("/")
        try:
            value = float(top) / (float(bottom) if bottom else 1.0)
        except (ValueError, ZeroDivisionError):
            raise UserError(
                f"eps must be a number or a fraction such as 8/255, got {text!r}"
            ) from None
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"eps must be a number >= 0, got {text!r}")
    return value


@dataclass(frozen=True)
class AttackSettings:
    """What an attack is run with (the card of `pixelsmith attack`)."""

    attack: str = "pgd"
    norm: str = "linf"
    eps: float = 8 / 255
    steps: int = 50
    queries: int = 5000
    target: int | None = None
    seed: int = 0

    def check(self) -> AttackSettings:
        if self.attack not in ATTACKS:
            raise UserError(f"unknown attack {self.attack!r}; use one of {', '.join(ATTACKS)}")
        if self.norm not in attacks.NORMS:
            raise UserError(f"unknown norm {self.norm!r}; use one of {', '.join(attacks.NORMS)}")
        if self.norm == "linf" and self.eps > 1:
            raise UserError(f"a Linf eps is at most 1 (the whole [0, 1] range), got {self.eps}")
        if self.attack == "fgsm" and self.norm != "linf":
            raise UserError("fgsm is a Linf attack; use pgd for L2")
        if self.steps < 1 or self.queries < 1:
            raise UserError("--steps and --queries must be at least 1")
        return self


def run(model: nn.Module, x: Tensor, y: Tensor, s: AttackSettings) -> Tensor:
    """The adversarial images of x (true labels y) under the settings."""
    s = s.check()
    targeted = s.target is not None
    goal = torch.full_like(y, s.target) if targeted else y
    if s.attack == "fgsm":
        return attacks.fgsm(model, x, goal, s.eps, targeted=targeted)
    if s.attack == "pgd":
        return attacks.pgd(model, x, goal, s.eps, norm=s.norm, steps=s.steps, targeted=targeted,
                           seed=s.seed)  # fmt: skip
    if s.attack == "cw":
        return attacks.cw_l2(model, x, goal, steps=s.steps, targeted=targeted)
    if s.attack == "apgd":
        return attacks.apgd(model, x, goal, s.eps, norm=s.norm, steps=s.steps, targeted=targeted,
                            seed=s.seed)  # fmt: skip
    if s.attack == "apgd-t":
        if not targeted:
            with torch.no_grad():
                z = model(x)
            z[torch.arange(len(y)), y] = -torch.inf
            goal = z.argmax(1)
        return attacks.apgd(model, x, goal, s.eps, norm=s.norm, loss="dlr", steps=s.steps,
                            targeted=True, seed=s.seed)  # fmt: skip
    return attacks.square(model, x, goal, s.eps, norm=s.norm, queries=s.queries,
                          targeted=targeted, seed=s.seed)  # fmt: skip


def report(model: nn.Module, x: Tensor, adv: Tensor, y: Tensor) -> list[dict[str, Any]]:
    """Per image: the true label, the clean and adversarial predictions and the change's norms."""
    with torch.no_grad():
        clean, fooled = model(x).argmax(1), model(adv).argmax(1)
    d = (adv - x).flatten(1)
    return [
        {
            "label": int(y[i]),
            "clean": int(clean[i]),
            "adversarial": int(fooled[i]),
            "linf": round(float(d[i].abs().max()), 6),
            "l2": round(float(d[i].norm()), 6),
        }  # fmt: skip
        for i in range(len(x))
    ]
