"""Attacks on the editors (pixelsmith's restoration models), and protection of photos from them.

An editor is a restoration model used as an edit of whole photos: super-resolution, denoising,
inpainting (with a mask) or enhancement, run as `pixelsmith edit` runs it (a grey photo through
a colour model goes in as three equal channels and comes back as their luma). Its differentiable
form is `Restore.restore_differentiable`: one untiled pass whose whole-image conditions (noise
estimate, harmonic fill, exposure statistics) stay in the graph. The blind denoiser's noise
estimate is a median, whose gradient reaches one value; the attacks give it the gradient of a
mean-based estimate instead (a straight-through surrogate, same forward value).

- `attack_editor`: PGD under Linf on the input that most distorts the edit (maximises the MSE
  between edit(x_adv) and edit(x); for inpainting over its holes, as its known pixels are the
  input's own), or with `target` pulls the edit toward a target image. It reports the PSNR of
  the attacked edit against the clean one beside a random-sign change of the full budget's.
- `protect`: one perturbation that makes several edits fail at once (PhotoGuard's encoder-free
  idea, Salman et al. 2023; "disrupting deepfakes", Ruiz et al. 2020). It maximises the sum of
  each editor's distortion over the disruption threshold, each term capped at `CAP` so the
  easiest editor cannot hide the others. A photo is *disrupted* for an editor when the MSE
  between edit(protected) and edit(original) is above 0.05 on the [-1, 1] scale (Ruiz et al.'s
  count), i.e. 0.0125 on [0, 1].
- Inpainting needs a mask. Given one (the holes the user would fill), it is used; otherwise the
  protection cannot know the user's holes: it optimises over `MASKS` free-form masks drawn from
  `pixelsmith.data.degrade.masks_with_coverage` (20-30% holes, seeded) and judges disruption on
  one more mask it never optimised for, so the figure is about holes it did not see.
- `evaluate_protection` repeats the judgement after each counter-measure (JPEG 75, Gaussian blur
  sigma 1, resize to half and back, the zoo denoiser as a purifier), comparing
  edit(cm(protected)) with edit(cm(original)): protection a counter-measure removes is reported
  as removed.
- The face detector's attack is in `pixelsmith.robust.faces`; the PGD all of them share, in
  `pixelsmith.robust.image_pgd`.

Images are float (N, C, H, W) or (C, H, W) tensors in [0, 1], C = 1 or 3; results come back in
the same form. Everything is seeded; the networks' weights are never changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pixelsmith.data import degrade
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family
from pixelsmith.models.restore import estimate_sigma, luminance
from pixelsmith.robust.image_pgd import (
    Tick,
    batched,
    check_eps,
    check_size,
    check_steps,
    image_psnr,
    linf_pgd,
    mse_pm1,
    random_signs,
    value_and_grad,
)
from pixelsmith.utils.rng import BatchRandom

# Ruiz et al.'s threshold: MSE 0.05 on the [-1, 1] scale, which is 4x the MSE on [0, 1].
DISRUPTED_MSE = 0.05
EDITORS = ("sr", "sr-x4", "denoise", "inpaint", "enhance")
PROTECT_AGAINST = ("inpaint", "sr", "denoise")
# Each editor's term in protect's objective: distortion / threshold, capped here.
CAP = 2.0
# Without the user's mask, protect optimises over this many random masks (cycled by step).
MASKS = 4
MASK_COVERAGE = (0.2, 0.3)
_TASKS = {"sr": ("sr", 2), "sr-x2": ("sr", 2), "sr-x4": ("sr", 4), "denoise": ("denoise", 0),
          "inpaint": ("inpaint", 3), "enhance": ("enhance", 3)}  # fmt: skip
NAMES = tuple(_TASKS)  # the shipped editors by name (denoise: the grey model for grey images)


def _sigma_surrogate(x: Tensor) -> Tensor:
    """The blind noise estimate (N,) (0-1 scale) whose gradient is that of the mean-based
    estimate: the median's own gradient reaches one Haar coefficient per channel, so a sign
    step could not move it; the mean's reaches them all (a straight-through surrogate)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    v = x[..., :h, :w]
    hh = (v[..., 0::2, 0::2] - v[..., 0::2, 1::2] - v[..., 1::2, 0::2] + v[..., 1::2, 1::2]) / 2
    smooth = (hh.abs().flatten(2).mean(2) * math.sqrt(math.pi / 2)).mean(1)
    return estimate_sigma(x).detach() + smooth - smooth.detach()


# --- editors ------------------------------------------------------------------------------------


@dataclass
class Editor:
    """A restoration model as an edit of whole images, differentiable when called."""

    name: str
    model: Any  # a restoration Family (Restore)
    mask: Tensor | None = None  # (1 or N, 1, H, W), 1 = hole; inpainting only
    sigma: float | None = None  # denoising: the noise sigma (0-255), else estimated

    @property
    def task(self) -> str:
        return str(self.model.cfg.task)

    def with_mask(self, mask: Tensor | None) -> Editor:
        """The same editor filling other holes."""
        return Editor(self.name, self.model, mask, self.sigma)

    def _one(self, x: Tensor, grad: bool) -> Tensor:
        m, mask = self.model, self.mask
        if mask is not None:
            mask = mask.expand(x.shape[0], -1, -1, -1)
        if not grad:
            return m.restore(x, mask=mask, sigma=self.sigma, tile=512).to(x.device)
        sigma: Tensor | float | None = self.sigma
        if self.task == "denoise" and sigma is None:
            sigma = _sigma_surrogate(x) * 255
        return m.restore_differentiable(x, mask=mask, sigma=sigma)

    def _run(self, x: Tensor, grad: bool) -> Tensor:
        """The edit in the model's channels, returned in x's (as pixelsmith.edit.ops does)."""
        if self.task == "inpaint" and self.mask is None:
            raise UserError("inpainting needs a mask (white = the pixels to fill)")
        want, have = self.model.image_shape[0], x.shape[1]
        if want == have:
            out = self._one(x, grad)
        elif want == 3:
            out = luminance(self._one(x.expand(-1, 3, -1, -1), grad))
        else:
            out = torch.cat([self._one(x[:, i : i + 1], grad) for i in range(have)], 1)
        return out.to(x.device)

    def __call__(self, x: Tensor) -> Tensor:
        """The edit of (N, C, H, W) images, with gradients back to them."""
        return self._run(x, grad=True)

    @torch.no_grad()
    def edit(self, x: Tensor) -> Tensor:
        """The edit as `pixelsmith edit` makes it (tiled, no gradients)."""
        return self._run(x, grad=False)


def _named(name: str, channels: int) -> Family:
    from pixelsmith.edit import ops

    task, key = _TASKS[name]
    return ops.restorer(task, None, key or channels)


def _name_of(model: Any) -> str:
    task = str(model.cfg.task)
    return f"sr-x{model.cfg.scale}" if task == "sr" and model.cfg.scale != 2 else task


def load_editor(
    spec: str | Path | Family | Editor,
    channels: int = 3,
    mask: Tensor | None = None,
    sigma: float | None = None,
) -> Editor:
    """The editor `spec` names: sr (x2), sr-x4, denoise, inpaint, enhance (the shipped models;
    denoise of grey images takes the grey one), a restoration run, checkpoint or zoo:NAME, or a
    loaded restoration model; `mask` for inpainting, `sigma` for denoising."""
    if isinstance(spec, Editor):
        return spec if mask is None else spec.with_mask(mask)
    if isinstance(spec, str) and spec in _TASKS:
        model = _named(spec, channels)
        name = spec if spec != "sr-x2" else "sr"
    else:
        if isinstance(spec, Family):
            model = spec
        else:
            from pixelsmith.generate import load_model

            model = load_model(str(spec))
        if not model.abilities.restores:
            raise UserError(
                f"{spec} is a {model.name} model, not an editor; attack a restoration model "
                f"({', '.join(EDITORS)}, a restoration run or zoo:NAME of one)"
            )
        name = _name_of(model)
    if sigma is not None and not 0 <= sigma <= 255:
        raise UserError(f"sigma is on the 0-255 scale, got {sigma}")
    return Editor(name, model, mask, sigma)


def is_editor(spec: str | Path) -> bool:
    """Whether a model name or path names a restoration model (read from its manifest)."""
    text = str(spec)
    if text in _TASKS:
        return True
    from pixelsmith.generate import load_model

    try:
        return bool(load_model(text).abilities.restores)
    except UserError:
        return False


def _mask_batch(mask: Tensor, xb: Tensor) -> Tensor:
    """A mask as (1 or N, 1, H, W) floats of 0 and 1, checked against the images."""
    from pixelsmith.edit.ops import check_mask_size

    m = mask.reshape(-1, 1, *mask.shape[-2:]) if mask.ndim in (2, 3) else mask
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] not in (1, xb.shape[0]):
        raise UserError(f"a mask must be (H, W) or (1 or N, 1, H, W), got {tuple(mask.shape)}")
    check_mask_size(tuple(m.shape[-2:]), tuple(xb.shape[-2:]))
    return (m > 0.5).float().to(xb.device)


def random_masks(n: int, h: int, w: int, seed: int) -> Tensor:
    """n free-form hole masks covering 20-30% of an h x w image (LaMa-style, seeded)."""
    rng = BatchRandom(seed)
    return degrade.masks_with_coverage(n, h, w, rng, coverage=MASK_COVERAGE, strict=False)


# --- PGD on an edit -----------------------------------------------------------------------------


@dataclass
class EditorAttack:
    """An attack on one editor: the adversarial images and what they do to its output."""

    images: Tensor  # the adversarial inputs, as x came
    editor: str
    eps: float
    # PSNRs in dB; for inpainting the input's over the known pixels (what it sees) and the
    # outputs' over the holes (what it makes: its known pixels are the input's own)
    input_psnr: Tensor  # (N,) x_adv against x
    output_psnr: Tensor  # (N,) edit(x_adv) against edit(x)
    random_psnr: Tensor  # (N,) edit(x + random signs * eps) against edit(x): the baseline
    distortion: Tensor  # (N,) MSE of edit(x_adv) against edit(x) on [-1, 1], the whole image
    target_psnr: tuple[Tensor, Tensor] | None = None  # (N,) edit(x), edit(x_adv) vs the target

    @property
    def psnr_over(self) -> str:
        """Which pixels the PSNRs are over."""
        if self.editor == "inpaint":
            return "the holes (output), the known pixels (input)"
        return "the whole image"

    @property
    def psnr_drop(self) -> Tensor:
        """(N,) dB the edit loses beyond the input's own change: input PSNR - output PSNR."""
        return self.input_psnr - self.output_psnr

    @property
    def disrupted(self) -> Tensor:
        """(N,) whether the edit is disrupted (Ruiz et al.'s threshold)."""
        return self.distortion > DISRUPTED_MSE

    def rows(self) -> list[dict[str, Any]]:
        """One JSON-ready row per image."""
        out = []
        for i in range(len(self.distortion)):
            row = {"editor": self.editor, "eps": self.eps, "psnr_over": self.psnr_over,
                   "input_psnr": float(self.input_psnr[i]),
                   "output_psnr": float(self.output_psnr[i]),
                   "random_output_psnr": float(self.random_psnr[i]),
                   "psnr_drop": float(self.psnr_drop[i]),
                   "distortion_mse_pm1": float(self.distortion[i]),
                   "disrupted": bool(self.disrupted[i])}  # fmt: skip
            if self.target_psnr is not None:
                row["target_psnr_before"] = float(self.target_psnr[0][i])
                row["target_psnr_after"] = float(self.target_psnr[1][i])
            out.append(row)
        return out


def moved(ed: Editor, out: Tensor, ref: Tensor) -> Tensor:
    """What an attack maximises: the MSE of an edit against the clean edit (N,), on [0, 1];
    for inpainting its share from the holes alone, as the known pixels come back as they went
    in (any change of the full budget moves them alike)."""
    d = (out - ref).square()
    if ed.task == "inpaint" and ed.mask is not None:
        d = d * ed.mask.to(d.device)
    return d.flatten(1).mean(1)


def attack_editor(
    editor: str | Path | Family | Editor,
    x: Tensor,
    eps: float = 8 / 255,
    steps: int = 50,
    target: Tensor | None = None,
    *,
    mask: Tensor | None = None,
    sigma: float | None = None,
    alpha: float | None = None,
    seed: int = 0,
    tick: Tick | None = None,
) -> EditorAttack:
    """PGD (Linf, `eps`) on x that most distorts the editor's output, or with `target` (an image
    of the output's size, or resized to it) pulls the output toward it (see the module doc).
    An inpainting editor without a mask fills seeded free-form holes (20-30%)."""
    eps, steps = check_eps(eps), check_steps(steps)
    xb, single = batched(x)
    check_size(*xb.shape[-2:])
    ed = load_editor(editor, xb.shape[1], sigma=sigma)
    if ed.task == "inpaint":
        given = mask if mask is not None else ed.mask
        m = random_masks(1, *xb.shape[-2:], seed) if given is None else given
        ed = ed.with_mask(_mask_batch(m, xb))
    elif mask is not None:
        raise UserError(f"a {ed.name} editor takes no mask")
    with torch.no_grad():
        clean = ed(xb)
    goal = None
    if target is not None:
        tb, _ = batched(target, "the target")
        if tb.shape[1] != clean.shape[1]:
            tb = luminance(tb) if clean.shape[1] == 1 else tb.expand(-1, 3, -1, -1)
        if tb.shape[-2:] != clean.shape[-2:]:
            tb = degrade.imresize(tb, size=tuple(clean.shape[-2:])).clamp(0, 1)
        goal = tb.expand_as(clean).to(clean.device)

    def loss(xa: Tensor) -> Tensor:
        out = ed(xa)
        if goal is not None:
            return -(out - goal).square().flatten(1).mean(1)
        return moved(ed, out, clean)

    def objective(xa: Tensor, _step: int, grad: bool) -> tuple[Tensor, Tensor | None]:
        return value_and_grad(loss, xa, grad)

    adv = xb.clone() if eps == 0 else linf_pgd(objective, xb, eps, steps, alpha, seed, tick)
    with torch.no_grad():
        out = ed(adv)
        rand = ed(random_signs(xb, eps, seed))
    target_psnr = None if goal is None else (image_psnr(clean, goal), image_psnr(out, goal))
    made = seen = None  # inpainting: the holes it makes from the known pixels it sees
    if ed.task == "inpaint" and ed.mask is not None:
        made, seen = ed.mask, 1 - ed.mask
    return EditorAttack(
        adv[0] if single else adv, ed.name, eps, image_psnr(adv, xb, seen),
        image_psnr(out, clean, made), image_psnr(rand, clean, made), mse_pm1(out, clean),
        target_psnr,
    )  # fmt: skip


# --- protection ---------------------------------------------------------------------------------


@dataclass
class Protection:
    """A protected photo: the image, its PSNR against the original, each editor's distortion."""

    image: Tensor  # as x came
    psnr: Tensor  # (N,) protected against original, dB
    distortion: dict[str, Tensor]  # editor -> (N,) MSE of the edits on the [-1, 1] scale
    editors: dict[str, Editor] = field(repr=False, default_factory=dict)  # as judged

    @property
    def disrupted(self) -> dict[str, Tensor]:
        """editor -> (N,) whether its edit is disrupted (MSE > 0.05 on [-1, 1])."""
        return {k: v > DISRUPTED_MSE for k, v in self.distortion.items()}

    def report(self, i: int = 0) -> dict[str, Any]:
        """What the operation says of image i (JSON-ready)."""
        return {
            "psnr": round(float(self.psnr[i]), 2),
            "disrupted": {k: bool(v[i]) for k, v in self.disrupted.items()},
            "distortion_mse_pm1": {k: round(float(v[i]), 5) for k, v in self.distortion.items()},
        }


def _editors(
    against: str | Sequence[str | Family | Editor], xb: Tensor, mask: Tensor | None, seed: int
) -> tuple[dict[str, list[Editor]], dict[str, Editor]]:
    """Per editor name, the editors to optimise against (one per mask) and the one to judge."""
    specs = against.split(",") if isinstance(against, str) else list(against)
    bad = [s for s in specs if isinstance(s, str) and s.strip() not in _TASKS]
    if bad or not specs:
        raise UserError(
            f"protect against one or more of {', '.join(EDITORS)}, got {', '.join(map(str, bad))}"
        )
    attack: dict[str, list[Editor]] = {}
    judge: dict[str, Editor] = {}
    for spec in specs:
        ed = load_editor(spec.strip() if isinstance(spec, str) else spec, xb.shape[1])
        given = mask if mask is not None else ed.mask
        if ed.name in attack:
            continue
        if ed.task != "inpaint":
            attack[ed.name], judge[ed.name] = [ed], ed
        elif given is not None:
            m = _mask_batch(given, xb)
            attack[ed.name], judge[ed.name] = [ed.with_mask(m)], ed.with_mask(m)
        else:
            h, w = xb.shape[-2:]
            masks = random_masks(xb.shape[0] * (MASKS + 1), h, w, seed)
            masks = masks.view(MASKS + 1, -1, 1, h, w).to(xb.device)
            attack[ed.name] = [ed.with_mask(masks[k]) for k in range(MASKS)]
            judge[ed.name] = ed.with_mask(masks[MASKS])
    return attack, judge


def protect(
    x: Tensor,
    against: str | Sequence[str | Family | Editor] = PROTECT_AGAINST,
    eps: float = 8 / 255,
    steps: int = 50,
    *,
    mask: Tensor | None = None,
    alpha: float | None = None,
    seed: int = 0,
    tick: Tick | None = None,
) -> Protection:
    """One Linf perturbation of x (at most `eps`) that disrupts every editor in `against` at
    once: names (inpaint, sr, sr-x4, denoise, enhance), models or Editors; `mask` is the holes
    an inpainting user would fill (see the module doc for the objective, the masks and the
    threshold)."""
    eps, steps = check_eps(eps), check_steps(steps)
    xb, single = batched(x)
    check_size(*xb.shape[-2:])
    attack, judge = _editors(against, xb, mask, seed)
    threshold = DISRUPTED_MSE / 4  # on [0, 1]
    with torch.no_grad():
        clean = {k: [ed(xb) for ed in eds] for k, eds in attack.items()}

    def objective(xa: Tensor, step: int, grad: bool) -> tuple[Tensor, Tensor | None]:
        """The capped sum, each editor's graph freed before the next (memory)."""
        total, grads = xa.new_zeros(xa.shape[0]), xa.new_zeros(xa.shape) if grad else None
        for k, eds in attack.items():
            ed, ref = eds[step % len(eds)], clean[k][step % len(eds)]

            def term(v: Tensor, ed: Editor = ed, ref: Tensor = ref) -> Tensor:
                d = moved(ed, ed(v), ref) / threshold
                return d.clamp(max=CAP)

            value, g = value_and_grad(term, xa, grad)
            total = total + value
            if grads is not None and g is not None:
                grads += g
        return total, grads

    adv = xb.clone() if eps == 0 else linf_pgd(objective, xb, eps, steps, alpha, seed, tick)
    distortion = {}
    with torch.no_grad():
        for k, ed in judge.items():
            distortion[k] = mse_pm1(ed.edit(adv), ed.edit(xb))
    return Protection(adv[0] if single else adv, image_psnr(adv, xb), distortion, judge)


# --- counter-measures ---------------------------------------------------------------------------


def _jpeg(x: Tensor) -> Tensor:
    return degrade.jpeg(x, 75)


def _blur(x: Tensor) -> Tensor:
    return degrade.gaussian_blur(x, 1.0).clamp(0, 1)


def _resize(x: Tensor) -> Tensor:
    small = degrade.imresize(x, scale=0.5)
    return degrade.imresize(small, size=tuple(x.shape[-2:])).clamp(0, 1)


def _purify(x: Tensor) -> Tensor:
    from pixelsmith.edit import ops

    return ops.denoise(x)


COUNTER_MEASURES: dict[str, Callable[[Tensor], Tensor]] = {
    "jpeg-75": _jpeg,
    "blur-1": _blur,
    "resize-half": _resize,
    "denoise": _purify,
}


@dataclass
class ProtectionReport:
    """Per counter-measure ("none" first) and editor: (N,) distortion; what was removed."""

    distortion: dict[str, dict[str, Tensor]]

    @property
    def disrupted(self) -> dict[str, dict[str, Tensor]]:
        return {c: {k: v > DISRUPTED_MSE for k, v in d.items()} for c, d in self.distortion.items()}

    def removed(self) -> dict[str, dict[str, Tensor]]:
        """Per counter-measure and editor: (N,) images disrupted without it and not after it."""
        before = self.disrupted["none"]
        return {c: {k: before[k] & ~v for k, v in d.items()}
                for c, d in self.disrupted.items() if c != "none"}  # fmt: skip

    def table(self) -> str:
        """Share disrupted per counter-measure and editor, and how many were removed."""
        names = list(self.distortion["none"])
        lines = ["counter-measure  " + "  ".join(f"{k:>16}" for k in names)]
        removed = self.removed()
        for c, d in self.disrupted.items():
            cells = []
            for k in names:
                cell = f"{d[k].float().mean():.0%}"
                if c != "none":
                    cell += f" (-{int(removed[c][k].sum())})"
                cells.append(f"{cell:>16}")
            lines.append(f"{c:<15}  " + "  ".join(cells))
        return "\n".join(lines)


def evaluate_protection(
    original: Tensor,
    protected: Tensor | Protection,
    editors: dict[str, Editor] | str | Sequence[str | Family | Editor] = PROTECT_AGAINST,
    counter_measures: dict[str, Callable[[Tensor], Tensor]] | None = None,
    mask: Tensor | None = None,
) -> ProtectionReport:
    """Each editor's distortion on protected photos, plainly and after each counter-measure:
    edit(cm(protected)) against edit(cm(original)). `editors` are a Protection's judges (its
    masks) or names (inpainting then takes `mask`, else seeded random holes)."""
    xb, _ = batched(original, "original")
    if isinstance(protected, Protection):
        editors = protected.editors if not isinstance(editors, dict) else editors
        protected = protected.image
    pb, _ = batched(protected, "protected")
    if pb.shape != xb.shape:
        raise UserError(f"protected {tuple(pb.shape)} and original {tuple(xb.shape)} differ")
    if not isinstance(editors, dict):
        editors = _editors(editors, xb, mask, 0)[1]
    cms = {
        "none": lambda v: v,
        **(COUNTER_MEASURES if counter_measures is None else counter_measures),
    }
    out: dict[str, dict[str, Tensor]] = {}
    with torch.no_grad():
        for c, fn in cms.items():
            a, b = fn(xb), fn(pb)
            out[c] = {k: mse_pm1(ed.edit(b), ed.edit(a)) for k, ed in editors.items()}
    return ProtectionReport(out)
