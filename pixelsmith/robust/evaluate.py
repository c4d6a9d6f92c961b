"""Honest robustness evaluation: the standard suite, worst case per image, with gradient-masking
checks that cannot be missed.

The suite is AutoAttack's standard one (Croce and Hein 2020): APGD with the cross-entropy loss,
targeted APGD with the DLR loss against the model's `targets` most likely wrong classes, then
Square, a black-box attack that needs no gradient. They run in that order, each on the images the
ones before could not break; an image counts as robust only if every attack fails on it.

Robust accuracy can be inflated by a model that hides its gradient rather than resisting attack
(Athalye et al. 2018). Every evaluation runs these checks and puts a WARNING in the result and
at the top of its table when one fires:
- an unbounded budget (Linf 1: any image at all) still leaves accuracy above chance;
- the black-box attack breaks images the gradient attacks could not;
- accuracy rises with the budget, or with more attack steps;
- the loss's gradient with respect to the input is zero or not finite for many images.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError
from pixelsmith.nn import attacks
from pixelsmith.version import __version__

NORMS = ("linf", "l2")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Attack:
    """One attack of a suite: its name, its settings (for the card) and how to run it on a batch
    (model, images, labels, eps -> adversarial images)."""

    name: str
    settings: dict[str, Any]
    run: Callable[[nn.Module, Tensor, Tensor, float], Tensor]
    white_box: bool = True


def _apgd_t(norm: str, steps: int, targets: int, seed: int) -> Callable:
    """Targeted APGD-DLR against each image's `targets` most likely wrong classes in turn."""

    def run(model: nn.Module, x: Tensor, y: Tensor, eps: float) -> Tensor:
        with torch.no_grad():
            logits = model(x)
        order = logits.argsort(1, descending=True)
        order = torch.stack([row[row != label] for row, label in zip(order, y, strict=True)])
        best = x.clone()
        alive = torch.ones(len(x), dtype=torch.bool)
        for k in range(min(targets, order.shape[1])):
            idx = alive.nonzero().flatten()
            if not len(idx):
                break
            adv = attacks.apgd(model, x[idx], order[idx, k], eps, norm=norm, loss="dlr",
                               steps=steps, targeted=True, seed=seed + k)  # fmt: skip
            with torch.no_grad():
                fooled = model(adv).argmax(1) != y[idx]
            best[idx[fooled]] = adv[fooled]
            alive[idx[fooled]] = False
        return best

    return run


def standard_suite(
    norm: str = "linf", steps: int = 100, targets: int = 9, queries: int = 5000, seed: int = 0
) -> list[Attack]:
    """APGD-CE, APGD-T and Square, as AutoAttack's standard version runs them."""
    check_norm(norm)
    return [
        Attack(
            "apgd-ce",
            {"norm": norm, "steps": steps, "loss": "ce", "seed": seed},
            lambda m, x, y, e: attacks.apgd(m, x, y, e, norm=norm, steps=steps, seed=seed),
        ),
        Attack(
            "apgd-t",
            {"norm": norm, "steps": steps, "loss": "dlr", "targets": targets, "seed": seed},
            _apgd_t(norm, steps, targets, seed),
        ),
        Attack(
            "square",
            {"norm": norm, "queries": queries, "seed": seed},
            lambda m, x, y, e: attacks.square(m, x, y, e, norm=norm, queries=queries, seed=seed),
            white_box=False,
        ),
    ]


def check_norm(norm: str) -> str:
    """A norm's name, or UserError."""
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
    return norm


def check_eps(eps: Sequence[float], norm: str) -> list[float]:
    """Budgets, each finite and positive (Linf at most 1), in increasing order."""
    out = []
    for e in eps:
        if not (isinstance(e, int | float) and math.isfinite(e) and e > 0):
            raise UserError(f"eps must be positive numbers, got {e!r}")
        if norm == "linf" and e > 1:
            raise UserError(f"a Linf eps is at most 1 (the whole [0, 1] range), got {e}")
        out.append(float(e))
    if not out:
        raise UserError("give at least one eps")
    return sorted(set(out))


@dataclass
class Row:
    """The results at one budget: clean accuracy, the worst-case accuracy after each attack in
    turn, and the final robust accuracy."""

    eps: float
    clean: float
    after: dict[str, float]
    robust: float
    seconds: float


@dataclass
class Evaluation:
    """A model's security curve with its card and the masking warnings."""

    card: dict[str, Any]
    rows: list[Row]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"card": self.card, "rows": [asdict(r) for r in self.rows],
                "warnings": self.warnings}  # fmt: skip

    def table(self) -> str:
        """The rows as text, the warnings first and loud."""
        lines = [f"WARNING (gradient masking?): {w}" for w in self.warnings]
        names = list(self.rows[0].after) if self.rows else []
        head = ["eps", "clean", *(f"after {n}" for n in names), "robust"]
        lines.append("  ".join(f"{h:>14}" for h in head))
        for r in self.rows:
            cells = [f"{r.eps:.4g}", f"{r.clean:.4f}", *(f"{r.after[n]:.4f}" for n in names),
                     f"{r.robust:.4f}"]  # fmt: skip
            lines.append("  ".join(f"{c:>14}" for c in cells))
        return "\n".join(lines)


def _predict(model: nn.Module, x: Tensor, batch: int) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


def _run(attack: Attack, model: nn.Module, x: Tensor, y: Tensor, eps: float, batch: int) -> Tensor:
    return torch.cat(
        [
            attack.run(model, x[i : i + batch], y[i : i + batch], eps)
            for i in range(0, len(x), batch)
        ]
    )


def worst_case(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    suite: Sequence[Attack],
    batch: int = 250,
    log: Log | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Which images stay correct under every attack in turn (the mask), and the mask after each."""
    robust = _predict(model, x, batch) == y
    after = {}
    for attack in suite:
        idx = robust.nonzero().flatten()
        t0 = time.monotonic()
        if len(idx):
            adv = _run(attack, model, x[idx], y[idx], eps, batch)
            robust[idx] = _predict(model, adv, batch) == y[idx]
        after[attack.name] = robust.clone()
        if log:
            log(f"  eps {eps:g} {attack.name}: {float(robust.float().mean()):.4f} robust "
                f"({time.monotonic() - t0:.0f} s)")  # fmt: skip
    return robust, after


def _input_gradients(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    x = x.clone().requires_grad_(True)
    with torch.enable_grad():
        F.cross_entropy(model(x), y, reduction="sum").backward()
    return x.grad if x.grad is not None else torch.zeros_like(x)


def masking_checks(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    rows: list[Row],
    norm: str,
    classes: int,
    steps: int,
    seed: int = 0,
    sample: int = 200,
) -> list[str]:
    """The warnings of the module doc, each one sentence (empty when none fires)."""
    warn: list[str] = []
    xs, ys = x[:sample], y[:sample]
    chance = 1 / classes
    grads = _input_gradients(model, xs, ys).flatten(1)
    bad = (~torch.isfinite(grads).all(1)) | (grads.abs().amax(1) == 0)
    if float(bad.float().mean()) >= 0.1:
        warn.append(f"the input gradient is zero or not finite for {int(bad.sum())} of "
                    f"{len(xs)} images: gradient attacks are blind here")  # fmt: skip
    unbounded = 1.0 if norm == "linf" else float(math.sqrt(x[0].numel()))
    adv = attacks.pgd(model, xs, ys, unbounded, norm=norm, steps=max(20, steps // 5), seed=seed)
    acc = float((_predict(model, adv, len(xs)) == ys).float().mean())
    if acc > chance:
        warn.append(f"with an unbounded budget ({norm} {unbounded:g}) accuracy is still "
                    f"{acc:.3f}, above chance ({chance:.3f}): the attack cannot reach images "
                    "any image could become")  # fmt: skip
    for r0, r1 in zip(rows, rows[1:], strict=False):
        if r1.robust > r0.robust + 1.5 / len(x):
            warn.append(f"accuracy rises with the budget: {r0.robust:.4f} at eps {r0.eps:g}, "
                        f"{r1.robust:.4f} at eps {r1.eps:g}")  # fmt: skip
    for r in rows:
        names = list(r.after)
        white = [n for n in names if n != "square"]
        if "square" in r.after and white and r.after[white[-1]] - r.robust > 1.5 / len(x):
            warn.append(f"at eps {r.eps:g} the black-box Square attack broke "
                        f"{r.after[white[-1]] - r.robust:.4f} of the images the gradient attacks "
                        "could not")  # fmt: skip
    mid = rows[len(rows) // 2].eps
    few = attacks.pgd(model, xs, ys, mid, norm=norm, steps=max(5, steps // 10), seed=seed)
    many = attacks.pgd(model, xs, ys, mid, norm=norm, steps=max(20, steps // 2), seed=seed)
    a_few = float((_predict(model, few, len(xs)) == ys).float().mean())
    a_many = float((_predict(model, many, len(xs)) == ys).float().mean())
    if a_many > a_few + 1.5 / len(xs):
        warn.append(f"accuracy rises with more attack steps at eps {mid:g}: {a_few:.3f} with "
                    f"fewer, {a_many:.3f} with more")  # fmt: skip
    return warn


def evaluate(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    eps: Sequence[float],
    norm: str = "linf",
    suite: Sequence[Attack] | None = None,
    steps: int = 100,
    queries: int = 5000,
    seed: int = 0,
    batch: int = 250,
    card: dict[str, Any] | None = None,
    log: Log | None = None,
    masking: bool = True,
) -> Evaluation:
    """The security curve of `model` on images (N, C, H, W) in [0, 1] with their labels: the
    standard suite (or `suite`) at each eps, worst case per image, with a card and the masking
    checks (see the module doc)."""
    from pixelsmith.robust.models import check_logits

    norm = check_norm(norm)
    budgets = check_eps(eps, norm)
    if images.ndim != 4 or len(images) != len(labels) or not len(images):
        raise UserError(f"give (N, C, H, W) images with one label each, got {tuple(images.shape)}")
    classes = check_logits(model, images)
    suite = list(suite) if suite is not None else standard_suite(norm, steps, queries=queries,
                                                                 seed=seed)  # fmt: skip
    clean = float((_predict(model, images, batch) == labels).float().mean())
    rows = []
    for e in budgets:
        t0 = time.monotonic()
        robust, after = worst_case(model, images, labels, e, suite, batch, log)
        rows.append(Row(e, clean, {k: float(v.float().mean()) for k, v in after.items()},
                        float(robust.float().mean()), round(time.monotonic() - t0, 1)))  # fmt: skip
    full_card = {
        **(card or {}),
        "n": len(images),
        "norm": norm,
        "eps": budgets,
        "attacks": [{"name": a.name, **a.settings} for a in suite],
        "seed": seed,
        "classes": classes,
        "pixelsmith_version": __version__,
        "torch": torch.__version__,
    }
    warnings = (
        masking_checks(model, images, labels, rows, norm, classes, steps, seed) if masking else []
    )
    return Evaluation(full_card, rows, warnings)


def plot_curves(curves: dict[str, Evaluation], path: str, title: str = "") -> str:
    """Robust accuracy against eps, one line per evaluation (clean accuracy at eps 0)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(
            "the security curve needs matplotlib: pip install 'pixelsmith[plot]'"
        ) from None
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    for name, ev in curves.items():
        xs = [0.0] + [r.eps for r in ev.rows]
        ys = [ev.rows[0].clean if ev.rows else 0.0] + [r.robust for r in ev.rows]
        ax.plot(xs, ys, marker="o", label=name + (" (masking warning)" if ev.warnings else ""))
    norm = next(iter(curves.values())).card.get("norm", "") if curves else ""
    ax.set_xlabel(f"eps ({norm})")
    ax.set_ylabel("accuracy (worst case)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
