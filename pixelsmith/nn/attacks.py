"""Adversarial attacks on any classifier: FGSM, PGD, CW-L2, APGD (white box) and Square (scores).

A classifier is any callable mapping NCHW float images in [0, 1] to (N, K) logits: an `nn.Module`,
a TorchScript module, or, for Square alone, any callable (an ONNX Runtime session wrapped in a
function, a model under `torch.no_grad`); Square also takes numpy logits. An `nn.Module` is
attacked in eval mode, as it predicts, and every module's mode is restored on exit; parameters,
their `requires_grad` and `.grad` are never touched, nor is torch's global random state.

Every attack returns x_adv detached, on x's device, inside the eps ball around x (in its norm, up
to float rounding) and inside [0, 1]; eps = 0 returns x exactly. An image is fooled when the
model's top class is not y (untargeted) or is the target (targeted). PGD attacks every image for
all its steps (adversarial training wants the worst point of each) and returns its last iterate
unless an earlier one fooled the model; APGD and Square, made for evaluation, leave the images
the model already gets wrong as they are, as AutoAttack does, stop on an image once it is fooled,
and otherwise return the best point they found for their loss. Restarts run again from a fresh
random start on the images not yet fooled. The same call with the same seed gives the same result.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError

Classifier = Callable[[Tensor], Any]
NORMS = ("linf", "l2")
PGD_LOSSES = ("ce", "trades")
APGD_LOSSES = ("ce", "dlr")
# APGD (Croce and Hein 2020): momentum and the share of loss increases below which a checkpoint
# halves the step.
APGD_MOMENTUM = 0.75
APGD_RHO = 0.75
# Square (Andriushchenko et al. 2020): the share of the iterations (of 10,000) after which the
# window's share of the image halves.
SQUARE_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
# TRADES starts its inner maximisation this far from x, where the KL's gradient is zero.
TRADES_START = 0.001

Objective = Callable[[Tensor, Tensor], Tensor]


# --- checks of what the caller passes ----------------------------------------------------------


def _check_images(x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise UserError(f"x must be a torch tensor of images, not {type(x).__name__}")
    if x.dim() != 4 or not x.is_floating_point():
        raise UserError(
            f"x must be a float (N, C, H, W) tensor; got {x.dtype} of shape {tuple(x.shape)}"
        )
    if x.numel() and not (torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise UserError("x holds values outside [0, 1]; scale the images to [0, 1] first")
    return x.detach()


def _check_real(value: object, name: str, *, positive: bool = False) -> float:
    """A finite float >= 0 (> 0 with positive)."""
    try:
        if isinstance(value, (str, bytes, bool)):
            raise TypeError
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        bound = "> 0" if positive else ">= 0"
        raise UserError(f"{name} must be a finite number {bound}; got {value!r}")
    return v


def _check_count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be a whole number >= {minimum}; got {value!r}")
    return value


def _check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    v = value.lower() if isinstance(value, str) else value
    if v not in choices:
        raise UserError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return v  # type: ignore[return-value]


def _check_logits(out: Tensor, n: int) -> Tensor:
    if out.dim() != 2 or out.shape[0] != n or out.shape[1] < 2 or not out.is_floating_point():
        raise UserError(
            f"the model must return (N, K) float logits with K >= 2 for {n} images; it "
            f"returned {out.dtype} of shape {tuple(out.shape)}: wrap it so that it does"
        )
    if not torch.isfinite(out).all():
        raise UserError("the model returned logits that are not finite (NaN or inf)")
    return out


def _label_form(y: object, n: int, device: torch.device, targeted: bool) -> Tensor:
    """y as a long (N,) tensor on x's device; its range is checked against the model's output."""
    what = "target labels" if targeted else "labels"
    if not isinstance(y, Tensor):
        try:
            y = torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError):
            raise UserError(f"y must be a (N,) tensor of {what}; got {type(y).__name__}") from None
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise UserError(f"y must hold whole-number {what}; got dtype {y.dtype}")
    if tuple(y.shape) != (n,):
        raise UserError(
            f"y must hold one of the {what} per image, shape ({n},); got {tuple(y.shape)}"
        )
    return y.to(device=device, dtype=torch.long)


def _check_output(z: Tensor, n: int, y: Tensor | None, targeted: bool) -> None:
    """The model's first output: (N, K) finite logits, and y's labels among its K classes."""
    _check_logits(z, n)
    k = z.shape[1]
    if y is not None and n and (int(y.min()) < 0 or int(y.max()) >= k):
        what = "target labels" if targeted else "labels"
        raise UserError(f"y holds {what} outside the model's {k} classes (0 to {k - 1})")


def _step_sizes(alpha: object, eps: float, steps: int, norm: str) -> list[float]:
    """One step size per step: alpha's float repeated, its schedule, or the default."""
    if alpha is None:
        return [eps / 4 if norm == "linf" else 2.5 * eps / max(steps, 1)] * steps
    if isinstance(alpha, Sequence) and not isinstance(alpha, str):
        if len(alpha) != steps:
            raise UserError(
                f"alpha holds {len(alpha)} step sizes for {steps} steps; give one per step"
            )
        return [_check_real(a, "each step size in alpha") for a in alpha]
    return [_check_real(alpha, "alpha", positive=True)] * steps


# --- the model ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _attacking(model: object) -> Iterator[None]:
    """An nn.Module in eval mode for the attack; every module's own mode restored after."""
    if not callable(model):
        raise UserError(f"the model must be callable (an nn.Module or a function); got {model!r}")
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:  # parents first: each train() resets the modules below it
            m.train(training)


def _call(model: Classifier, x: Tensor) -> Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):
        raise UserError(
            "the model returned a tuple or list, not (N, K) logits: wrap it so that it returns "
            "the logits alone"
        )
    if not isinstance(out, Tensor):
        try:
            out = torch.as_tensor(out)
        except (TypeError, ValueError, RuntimeError):
            raise UserError(f"the model returned {type(out).__name__}, not (N, K) logits") from None
    return out.to(x.device)


def _clean_logits(model: Classifier, x: Tensor) -> Tensor:
    with torch.no_grad():
        return _call(model, x).to(x.dtype)


def _loss_and_grad(
    model: Classifier,
    x: Tensor,
    objective: Objective,
    ref: Tensor,
    check: Callable[[Tensor], None] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-image loss, logits and the loss's gradient with respect to x (the logits checked
    first by check, on an attack's first call)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = _call(model, x)
        if check is not None:
            check(logits)
        loss = objective(logits, ref)
        total = loss.sum()
    if not total.requires_grad:
        raise UserError(
            "the model's logits carry no gradient back to the images (a black box, or run under "
            "no_grad); use square, which needs only the scores"
        )
    (grad,) = torch.autograd.grad(total, x)
    return loss.detach(), logits.detach(), grad.detach()


# --- losses and success ------------------------------------------------------------------------


def _max_other(z: Tensor, label: Tensor) -> Tensor:
    """The largest logit other than the label's."""
    return z.scatter(1, label[:, None], float("-inf")).amax(1)


def _picked(z: Tensor, label: Tensor) -> Tensor:
    return z.gather(1, label[:, None])[:, 0]


def _ce(z: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(z, y, reduction="none")


def _ce_targeted(z: Tensor, t: Tensor) -> Tensor:
    return -F.cross_entropy(z, t, reduction="none")


def _dlr(z: Tensor, y: Tensor) -> Tensor:
    """Croce and Hein's difference of logits ratio: -(z_y - max_{j!=y} z_j) / (z_1 - z_3)."""
    s = z.sort(1, descending=True).values
    return -(_picked(z, y) - _max_other(z, y)) / (s[:, 0] - s[:, 2] + 1e-12)


def _dlr_targeted(z: Tensor, t: Tensor) -> Tensor:
    """Targeted DLR: -(max_{j!=t} z_j - z_t) / (z_1 - (z_3 + z_4) / 2).

    The paper's numerator takes the true class's logit where this takes the largest non-target
    one (the true class is not passed to a targeted attack); they agree while the true class
    leads, and this one keeps pushing until the target beats every class.
    """
    s = z.sort(1, descending=True).values
    return -(_max_other(z, t) - _picked(z, t)) / (s[:, 0] - 0.5 * (s[:, 2] + s[:, 3]) + 1e-12)


def _trades_kl(z: Tensor, p_clean: Tensor) -> Tensor:
    """KL(p(x) || p(x_adv)) per image, p_clean being softmax(model(x))."""
    return (p_clean * (p_clean.clamp_min(1e-30).log() - F.log_softmax(z, 1))).sum(1)


def _fooled(z: Tensor, label: Tensor, targeted: bool) -> Tensor:
    pred = z.argmax(1)
    return pred == label if targeted else pred != label


# --- geometry ----------------------------------------------------------------------------------


def _per_image(v: Tensor, like: Tensor) -> Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _l2(d: Tensor) -> Tensor:
    return d.flatten(1).norm(dim=1)


def _direction(grad: Tensor, norm: str) -> Tensor:
    """The steepest ascent direction of unit norm: sign for Linf, normalised gradient for L2."""
    if norm == "linf":
        return grad.sign()
    return grad / _per_image(_l2(grad) + 1e-12, grad)


def _project(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Into the eps ball around x, then into [0, 1] (which only shortens the perturbation)."""
    if norm == "linf":
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps)
    else:
        d = x_adv - x
        x_adv = x + d * _per_image((eps / (_l2(d) + 1e-12)).clamp(max=1), d)
    return x_adv.clamp(0, 1)


def _random_start(x: Tensor, eps: float, norm: str, g: torch.Generator) -> Tensor:
    """A point drawn uniformly from the eps ball around x, clipped to [0, 1]."""
    if norm == "linf":
        d = (torch.rand(x.shape, generator=g, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    else:
        d = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
        u = torch.rand(x.shape[0], generator=g, device=x.device, dtype=x.dtype)
        radius = eps * u ** (1 / x[0].numel())
        d = d * _per_image(radius / (_l2(d) + 1e-12), d)
    return _project(x + d, x, eps, norm)


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


class _Best:
    """Per image, the best point offered so far: fooling first, then the higher loss."""

    def __init__(self, x: Tensor, loss: Tensor, fooled: Tensor) -> None:
        self.x, self.loss, self.fooled = x.clone(), loss.clone(), fooled.clone()

    def offer(self, x: Tensor, loss: Tensor, fooled: Tensor, idx: Tensor) -> None:
        """Offer points for the images idx."""
        old_f, old_l = self.fooled[idx], self.loss[idx]
        better = (fooled & ~old_f) | ((fooled == old_f) & (loss > old_l))
        self.x[idx] = torch.where(_per_image(better, x), x, self.x[idx])
        self.loss[idx] = torch.where(better, loss, old_l)
        self.fooled[idx] = old_f | fooled

    def todo(self, everyone: bool) -> Tensor:
        """The images to attack: those not yet fooled (all of them with everyone)."""
        if everyone:
            return torch.arange(len(self.x), device=self.x.device)
        return (~self.fooled).nonzero()[:, 0]


def _start(
    model: Classifier,
    x: object,
    y: object,
    eps: object,
    targeted: bool,
    *,
    labels: bool = True,
    forward: bool = True,
) -> tuple[Tensor, Tensor | None, float, Tensor | None]:
    """The checked images, labels and eps, and (with forward) the clean logits, the model's
    output and the labels' range checked on them; without forward the attack checks its first
    output with _check_output."""
    x = _check_images(x)
    eps = _check_real(eps, "eps")
    y = _label_form(y, x.shape[0], x.device, targeted) if labels or y is not None else None
    clean = None
    if forward:
        clean = _clean_logits(model, x)
        _check_output(clean, x.shape[0], y, targeted)
    return x, y, eps, clean


# --- the attacks -------------------------------------------------------------------------------


def fgsm(model: Classifier, x: Tensor, y: Tensor, eps: float, *, targeted: bool = False) -> Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): one Linf step of size eps."""
    with _attacking(model):
        x, y, eps, _ = _start(model, x, y, eps, targeted, forward=eps == 0)
        if eps == 0 or x.shape[0] == 0:
            return x.clone()

        def check(z: Tensor) -> None:
            _check_output(z, x.shape[0], y, targeted)

        objective = _ce_targeted if targeted else _ce
        _, _, grad = _loss_and_grad(model, x, objective, y, check)
        return (x + eps * grad.sign()).clamp(0, 1)


def pgd(
    model: Classifier,
    x: Tensor,
    y: Tensor | None,
    eps: float,
    *,
    norm: str = "linf",
    alpha: float | Sequence[float] | None = None,
    steps: int = 10,
    random_start: bool = True,
    restarts: int = 1,
    targeted: bool = False,
    loss: str = "ce",
    seed: int = 0,
) -> Tensor:
    """Projected gradient descent (Madry et al. 2018) under Linf or L2.

    alpha is the step: a float, a schedule of one step size per step, or None for eps/4 (Linf)
    or 2.5 eps/steps (L2). loss "ce" maximises the cross-entropy of y (minimises that of the
    target with targeted=True); "trades" maximises KL(model(x) || model(x_adv)), TRADES' inner
    maximisation (Zhang et al. 2019), and needs no y; without random_start it starts, as TRADES
    does, 0.001 N(0, 1) away from x, where the KL's gradient vanishes.

    One run returns, per image, its last iterate (as Madry et al.), or where an earlier iterate
    fooled the model, the fooling one of highest loss: never weaker than the last iterate, and
    no model call beyond the steps. With restarts, each run's last iterate is evaluated too and
    the best point of all runs is kept.
    """
    norm = _check_choice(norm, "norm", NORMS)
    loss = _check_choice(loss, "loss", PGD_LOSSES)
    steps = _check_count(steps, "steps", 0)
    restarts = _check_count(restarts, "restarts", 1)
    seed = _check_count(seed, "seed", 0)
    trades = loss == "trades"
    if trades and targeted:
        raise UserError("loss 'trades' has no target; use loss='ce' for a targeted attack")
    with _attacking(model):
        # TRADES needs the clean prediction; otherwise the first step checks the model's output.
        checked = trades or eps == 0 or steps == 0
        x, y, eps, clean = _start(model, x, y, eps, targeted, labels=not trades, forward=checked)
        alphas = _step_sizes(alpha, eps, steps, norm)
        n = x.shape[0]
        if eps == 0 or n == 0:
            return x.clone()
        if trades:
            objective, ref = _trades_kl, F.softmax(clean, 1)
        else:
            objective, ref = (_ce_targeted if targeted else _ce), y
        never = torch.zeros(n, dtype=torch.bool, device=x.device)

        def check(z: Tensor) -> None:
            _check_output(z, n, y, targeted)

        g = _generator(seed, x.device)
        best: _Best | None = None
        for _ in range(restarts):
            idx = torch.arange(n, device=x.device) if best is None else best.todo(everyone=trades)
            if idx.numel() == 0:
                break
            xs, rs = x[idx], ref[idx]
            if random_start:
                x_adv = _random_start(xs, eps, norm, g)
            elif trades:
                noise = torch.randn(xs.shape, generator=g, device=x.device, dtype=x.dtype)
                x_adv = _project(xs + TRADES_START * noise, xs, eps, norm)
            else:
                x_adv = xs.clone()
            last = steps if restarts > 1 else steps - 1  # evaluate the last iterate too?
            for step in range(last + 1):
                if step < steps:
                    first = None if checked else check
                    value, logits, grad = _loss_and_grad(model, x_adv, objective, rs, first)
                    checked = True
                else:
                    with torch.no_grad():
                        logits = _call(model, x_adv).to(x.dtype)
                    value = objective(logits, rs)
                fooled = never[idx] if trades else _fooled(logits, rs, targeted)
                if best is None:
                    best = _Best(x_adv, value, fooled)
                else:
                    best.offer(x_adv, value, fooled, idx)
                if step < steps:
                    x_adv = _project(x_adv + alphas[step] * _direction(grad, norm), xs, eps, norm)
            if restarts == 1:
                if best is None:  # no steps: the start itself
                    return x_adv
                return torch.where(_per_image(best.fooled, x_adv), best.x, x_adv)
        assert best is not None
        return best.x


def cw_l2(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    *,
    c: float = 1.0,
    kappa: float = 0.0,
    steps: int = 100,
    lr: float = 0.01,
    targeted: bool = False,
) -> Tensor:
    """Carlini and Wagner's L2 attack (2017) at one constant c, with Adam in tanh space.

    Minimises ||x_adv - x||^2 + c max(margin, -kappa), the margin being z_y - max_{j!=y} z_j
    (max_{j!=t} z_j - z_t with targeted=True). Per image it returns the closest point found that
    fools the model by at least kappa, and x itself where none did.
    """
    c = _check_real(c, "c")
    kappa = _check_real(kappa, "kappa")
    steps = _check_count(steps, "steps", 0)
    lr = _check_real(lr, "lr", positive=True)
    with _attacking(model):
        x, y, _, _ = _start(model, x, y, 0.0, targeted, forward=steps == 0)
        best_x = x.clone()
        n = x.shape[0]
        if n == 0 or steps == 0:
            return best_x
        best_d = torch.full((n,), float("inf"), device=x.device, dtype=x.dtype)
        w = torch.atanh((2 * x - 1) * (1 - 1e-6)).requires_grad_(True)
        opt = torch.optim.Adam([w], lr=lr)
        for step in range(steps):
            with torch.enable_grad():
                x_adv = (torch.tanh(w) + 1) / 2
                z = _call(model, x_adv)
                if step == 0:
                    _check_output(z, n, y, targeted)
                d2 = (x_adv - x).pow(2).flatten(1).sum(1)
                gap = _max_other(z, y) - _picked(z, y)
                margin = gap if targeted else -gap
                total = (d2 + c * margin.clamp(min=-kappa)).sum()
            if not total.requires_grad:
                raise UserError(
                    "the model's logits carry no gradient back to the images; use square"
                )
            (w.grad,) = torch.autograd.grad(total, [w])
            with torch.no_grad():
                hit = _fooled(z, y, targeted) & (margin <= -kappa) & (d2 < best_d)
                best_x = torch.where(_per_image(hit, x), x_adv, best_x)
                best_d = torch.where(hit, d2, best_d)
            opt.step()
        return best_x.detach().clamp(0, 1)


def _checkpoints(steps: int) -> set[int]:
    """APGD's iterations w_j = ceil(p_j N) at which the step may halve: p_1 = 0.22,
    p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return {math.ceil(q * steps - 1e-9) for q in p[1:]} & set(range(1, steps))


def _apgd_run(
    model: Classifier,
    xs: Tensor,
    ref: Tensor,
    eps: float,
    norm: str,
    objective: Objective,
    targeted: bool,
    steps: int,
    g: torch.Generator,
    best: _Best,
    idx: Tensor,
) -> None:
    """One run of APGD (Croce and Hein 2020, Algorithm 1) from a random start, offering each
    point it evaluates to best and leaving each image once it is fooled."""

    def evaluate(point: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        value, logits, grad = _loss_and_grad(model, point, objective, ref)
        fooled = _fooled(logits, ref, targeted)
        best.offer(point, value, fooled, idx)
        return value, grad, fooled

    x_cur = _random_start(xs, eps, norm, g)
    f_cur, grad, fooled = evaluate(x_cur)
    x_max, f_max, grad_max = x_cur, f_cur, grad
    eta = torch.full_like(f_cur, 2 * eps)
    x_prev = x_cur
    marks, last_mark = _checkpoints(steps), 0
    rises = torch.zeros_like(f_cur)
    f_max_at_mark = f_max
    halved_at_mark = torch.zeros_like(f_cur, dtype=torch.bool)
    for k in range(steps + 1):
        if fooled.any():  # each image's path is its own: the others go on as they would have
            keep = (~fooled).nonzero()[:, 0]
            if keep.numel() == 0:
                return
            state = (xs, ref, idx, x_cur, x_prev, x_max, f_cur, f_max, grad, grad_max, eta, rises)
            xs, ref, idx, x_cur, x_prev, x_max, f_cur, f_max, grad, grad_max, eta, rises = (
                t[keep] for t in state
            )
            f_max_at_mark, halved_at_mark = f_max_at_mark[keep], halved_at_mark[keep]
        if k == steps:
            return
        z = _project(x_cur + _per_image(eta, xs) * _direction(grad, norm), xs, eps, norm)
        a = 1.0 if k == 0 else APGD_MOMENTUM
        x_next = _project(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - x_prev), xs, eps, norm)
        x_prev, x_cur = x_cur, x_next
        f_new, grad, fooled = evaluate(x_cur)
        rises += f_new > f_cur
        f_cur = f_new
        up = f_cur > f_max
        x_max = torch.where(_per_image(up, xs), x_cur, x_max)
        grad_max = torch.where(_per_image(up, xs), grad, grad_max)
        f_max = torch.where(up, f_cur, f_max)
        if k + 1 in marks:
            # Condition 1: the loss rose in fewer than rho of the steps since the last mark;
            # condition 2: the step was kept at the last mark and the best loss has not moved.
            few_rises = rises < APGD_RHO * (k + 1 - last_mark)
            stalled = ~halved_at_mark & (f_max <= f_max_at_mark)
            halve = few_rises | stalled
            eta = torch.where(halve, eta / 2, eta)
            x_cur = torch.where(_per_image(halve, xs), x_max, x_cur)
            grad = torch.where(_per_image(halve, xs), grad_max, grad)
            f_cur = torch.where(halve, f_max, f_cur)
            halved_at_mark, f_max_at_mark = halve, f_max
            rises = torch.zeros_like(rises)
            last_mark = k + 1


def apgd(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: str = "linf",
    loss: str = "ce",
    steps: int = 100,
    restarts: int = 1,
    targeted: bool = False,
    seed: int = 0,
) -> Tensor:
    """Auto-PGD (Croce and Hein 2020) under Linf or L2: step 2 eps halved at checkpoints where
    progress stalls (restarting from the best point), momentum 0.75.

    loss "ce" is the cross-entropy (of the target, minimised, with targeted=True); "dlr" is the
    difference of logits ratio (K >= 3), targeted DLR with targeted=True (K >= 4).
    """
    norm = _check_choice(norm, "norm", NORMS)
    loss = _check_choice(loss, "loss", APGD_LOSSES)
    steps = _check_count(steps, "steps", 0)
    restarts = _check_count(restarts, "restarts", 1)
    seed = _check_count(seed, "seed", 0)
    with _attacking(model):
        x, y, eps, clean = _start(model, x, y, eps, targeted)
        need = 4 if targeted else 3
        if loss == "dlr" and clean.shape[1] < need:
            raise UserError(
                f"the {'targeted ' if targeted else ''}DLR loss needs at least {need} classes; "
                f"the model has {clean.shape[1]}: use loss='ce'"
            )
        if eps == 0 or x.shape[0] == 0:
            return x.clone()
        if loss == "ce":
            objective = _ce_targeted if targeted else _ce
        else:
            objective = _dlr_targeted if targeted else _dlr
        best = _Best(x, objective(clean, y), _fooled(clean, y, targeted))
        g = _generator(seed, x.device)
        for _ in range(restarts):
            idx = best.todo(everyone=False)
            if idx.numel() == 0:
                break
            _apgd_run(model, x[idx], y[idx], eps, norm, objective, targeted, steps, g, best, idx)
        return best.x


# --- Square ------------------------------------------------------------------------------------


def _square_share(p_init: float, i: int, queries: int) -> float:
    """Square's schedule: the share of the image a window covers, halved as iterations pass."""
    at = int(i / queries * 10000)
    return p_init / 2 ** bisect.bisect_left(SQUARE_HALVINGS, at)


def _bump(s: int, g: torch.Generator) -> Tensor:
    """Square-L2's unit-norm window: two pseudo-Gaussian halves of opposite sign, randomly
    transposed."""

    def half(rows: int, cols: int) -> Tensor:
        # Rings around the centre: ring k and those inside it get 1 / (k + 1)^2 each.
        r = (torch.arange(rows)[:, None] - rows // 2).abs()
        c = (torch.arange(cols)[None, :] - cols // 2).abs()
        rings = max(rows // 2, cols // 2) + 1
        tail = (1 / torch.arange(1, rings + 1, dtype=torch.float64) ** 2).flip(0).cumsum(0).flip(0)
        d = tail[torch.maximum(r, c)]
        return d / d.norm().clamp_min(1e-12)

    d = torch.cat([half(s // 2, s), -half(s - s // 2, s)])
    d = d / d.norm()
    if torch.rand((), generator=g) > 0.5:
        d = d.T
    return d.float()


def _square_linf(model, x, y, eps, queries, p_init, g, margin_fn, loss_fn, clean):
    """Square under Linf: windows of +-eps per channel; stripes to start."""
    n, c, h, w = x.shape
    dev = x.device

    def signs(*shape: int) -> Tensor:
        return (torch.randint(0, 2, shape, generator=g) * 2 - 1).to(dev, x.dtype)

    x_best = x.clone()
    margin, loss = margin_fn(clean, y), loss_fn(clean, y)
    idx = (margin >= 0).nonzero()[:, 0]
    if idx.numel():  # vertical stripes of +-eps, as the paper starts
        x0 = (x[idx] + eps * signs(len(idx), c, 1, w)).clamp(0, 1)
        z = _call(model, x0).to(x.dtype)
        x_best[idx], margin[idx], loss[idx] = x0, margin_fn(z, y[idx]), loss_fn(z, y[idx])
    rows, cols = torch.arange(h, device=dev), torch.arange(w, device=dev)
    for i in range(queries - 1):
        idx = (margin >= 0).nonzero()[:, 0]
        if idx.numel() == 0:
            break
        m, xs, xb = len(idx), x[idx], x_best[idx]
        delta = xb - xs
        s = round(math.sqrt(_square_share(p_init, i, queries) * h * w))
        s = max(1, min(s, min(h, w) - 1))
        top = torch.randint(0, h - s + 1, (m,), generator=g).to(dev)
        left = torch.randint(0, w - s + 1, (m,), generator=g).to(dev)
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + s)
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + s)
        window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]
        sign = signs(m, c, 1, 1)
        for _ in range(100):  # redraw the signs of windows that would change nothing
            x_new = (xs + torch.where(window, eps * sign, delta)).clamp(0, 1)
            same = ((x_new - xb).abs() < 1e-7).logical_or(~window).flatten(1).all(1)
            if not same.any():
                break
            sign = torch.where(_per_image(same, sign), signs(m, c, 1, 1), sign)
        z = _call(model, x_new).to(x.dtype)
        new_margin, new_loss = margin_fn(z, y[idx]), loss_fn(z, y[idx])
        better = new_loss < loss[idx]
        x_best[idx] = torch.where(_per_image(better, xb), x_new, xb)
        margin[idx] = torch.where(better, new_margin, margin[idx])
        loss[idx] = torch.where(better, new_loss, loss[idx])
    return x_best


def _square_l2(model, x, y, eps, queries, p_init, g, margin_fn, loss_fn, clean):
    """Square under L2: a window takes a new bump and the mass of a second window, which is
    cleared; the perturbation keeps norm eps. A grid of bumps to start."""
    n, c, h, w = x.shape
    dev = x.device

    def signs(*shape: int) -> Tensor:
        return (torch.randint(0, 2, shape, generator=g) * 2 - 1).to(dev, x.dtype)

    def rescaled(xs: Tensor, delta: Tensor) -> Tensor:
        return (xs + delta * _per_image(eps / (_l2(delta) + 1e-12), delta)).clamp(0, 1)

    x_best = x.clone()
    margin, loss = margin_fn(clean, y), loss_fn(clean, y)
    idx = (margin >= 0).nonzero()[:, 0]
    if idx.numel():  # a grid of bumps of random signs, scaled to norm eps, as the paper starts
        s = max(h // 5, 1)
        delta = torch.zeros(len(idx), c, h, w, device=dev, dtype=x.dtype)
        off_h, off_w = (h - s * (h // s)) // 2, (w - s * (w // s)) // 2
        for top in range(off_h, h - s + 1, s):
            for left in range(off_w, w - s + 1, s):
                bump = _bump(s, g).to(dev, x.dtype)
                delta[:, :, top : top + s, left : left + s] += bump * signs(len(idx), c, 1, 1)
        x0 = rescaled(x[idx], delta)
        z = _call(model, x0).to(x.dtype)
        x_best[idx], margin[idx], loss[idx] = x0, margin_fn(z, y[idx]), loss_fn(z, y[idx])
    for i in range(queries - 1):
        idx = (margin >= 0).nonzero()[:, 0]
        if idx.numel() == 0:
            break
        m, xs, xb = len(idx), x[idx], x_best[idx]
        delta = xb - xs
        s = max(round(math.sqrt(_square_share(p_init, i, queries) * h * w)), 3)
        s = min(s + (s % 2 == 0), min(h, w))
        t1, t2 = (int(v) for v in torch.randint(0, h - s + 1, (2,), generator=g))
        l1, l2 = (int(v) for v in torch.randint(0, w - s + 1, (2,), generator=g))
        win1 = (slice(None), slice(None), slice(t1, t1 + s), slice(l1, l1 + s))
        win2 = (slice(None), slice(None), slice(t2, t2 + s), slice(l2, l2 + s))
        both = torch.zeros(1, 1, h, w, device=dev, dtype=torch.bool)
        both[win1] = True
        both[win2] = True
        spare = (eps**2 - _l2(delta) ** 2).clamp(min=0)[:, None, None, None] / c
        mass = (delta * both).pow(2).sum((2, 3), keepdim=True)  # per channel, both windows
        old = delta[win1]
        old = old / (old.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-10)
        new = _bump(s, g).to(dev, x.dtype) * signs(m, c, 1, 1) + old
        new = new / (new.pow(2).sum((2, 3), keepdim=True).sqrt() + 1e-12) * (spare + mass).sqrt()
        delta = delta.clone()
        delta[win2] = 0
        delta[win1] = new
        x_new = rescaled(xs, delta)
        z = _call(model, x_new).to(x.dtype)
        new_margin, new_loss = margin_fn(z, y[idx]), loss_fn(z, y[idx])
        better = new_loss < loss[idx]
        x_best[idx] = torch.where(_per_image(better, xb), x_new, xb)
        margin[idx] = torch.where(better, new_margin, margin[idx])
        loss[idx] = torch.where(better, new_loss, loss[idx])
    return x_best


def square(
    model: Classifier,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    norm: str = "linf",
    queries: int = 5000,
    p_init: float = 0.8,
    targeted: bool = False,
    seed: int = 0,
) -> Tensor:
    """Square attack (Andriushchenko et al. 2020): random square updates kept when they lower
    the loss, from scores alone (no gradients).

    Untargeted it lowers the margin z_y - max_{j!=y} z_j, targeted the target's cross-entropy;
    an image stops once fooled. queries caps the model calls per image after the clean one;
    p_init is the share of the image the first windows cover. The model may return numpy logits.
    """
    norm = _check_choice(norm, "norm", NORMS)
    queries = _check_count(queries, "queries", 1)
    p_init = _check_real(p_init, "p_init", positive=True)
    if p_init > 1:
        raise UserError(f"p_init must lie in (0, 1]; got {p_init!r}")
    seed = _check_count(seed, "seed", 0)
    with _attacking(model), torch.no_grad():
        x, y, eps, clean = _start(model, x, y, eps, targeted)
        if eps == 0 or x.shape[0] == 0:
            return x.clone()

        def margin_fn(z: Tensor, label: Tensor) -> Tensor:
            gap = _max_other(z, label) - _picked(z, label)
            return gap if targeted else -gap

        loss_fn = _ce if targeted else margin_fn
        g = torch.Generator().manual_seed(seed)
        run = _square_linf if norm == "linf" else _square_l2
        return run(model, x, y, eps, queries, p_init, g, margin_fn, loss_fn, clean)
