"""Input-transform defences: a classifier behind a transform of its input, and the two ways an
honest evaluation attacks one (Athalye, Carlini and Wagner 2018).

`Defended(model, transform)` maps images in [0, 1] to `model(transform(x))`. Most transforms are
not differentiable (JPEG, bit-depth rounding) or hide their gradient (a median filter, a
denoiser), so a plain gradient attack through them finds little and the defence looks strong:
gradient masking. Two counters, each a flag of the wrapper:
- `bpda=True` (Backward Pass Differentiable Approximation): the forward pass applies the
  transform, the backward pass treats it as the identity (straight-through).
- `eot=k` (Expectation over Transformation), for random transforms: the logits are the mean over
  k draws of the transform, so a gradient attack follows the expected loss, not one draw's.

Every evaluation in pixelsmith reports a defence under the naive attack and under BPDA (and EoT
for the random ones), side by side, so the gap masking makes is shown rather than hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError

Transform = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Defence:
    """A named input transform: `random` ones draw anew on every call (EoT applies to them)."""

    name: str
    transform: Transform
    random: bool = False


class Defended(nn.Module):
    """`model(transform(x))`, with BPDA and EoT as options (see the module doc)."""

    def __init__(self, model: Callable[[Tensor], Tensor], defence: Defence, bpda: bool = False,
                 eot: int = 1) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(eot, int) or eot < 1:
            raise UserError(f"EoT draws must be a whole number >= 1, got {eot}")
        self.model, self.defence, self.bpda, self.eot = model, defence, bpda, eot

    @property
    def name(self) -> str:
        tags = [t for t, on in (("BPDA", self.bpda), (f"EoT-{self.eot}", self.eot > 1)) if on]
        return self.defence.name + (f" ({', '.join(tags)})" if tags else "")

    def _once(self, x: Tensor) -> Tensor:
        t = self.defence.transform(x)
        if self.bpda:  # the transform forward, the identity backward
            t = x + (t - x).detach()
        return self.model(t)

    def forward(self, x: Tensor) -> Tensor:
        if self.eot == 1:
            return self._once(x)
        return torch.stack([self._once(x) for _ in range(self.eot)]).mean(0)


def _check(x: Tensor) -> Tensor:
    if x.ndim != 4 or not x.is_floating_point():
        raise UserError(f"a defence takes (N, C, H, W) float images, got {tuple(x.shape)}")
    return x


def jpeg(quality: int = 75) -> Defence:
    """Re-encode through Pillow's JPEG at `quality` (not differentiable: its gradient is zero)."""
    from pixelsmith.data.degrade import jpeg as encode

    if not 1 <= quality <= 100:
        raise UserError(f"JPEG quality must be from 1 to 100, got {quality}")

    def transform(x: Tensor) -> Tensor:
        out = encode(_check(x).detach(), quality)
        return out + 0 * x  # in the graph, with no gradient: what a plain attack sees

    return Defence(f"jpeg-{quality}", transform)


def bit_depth(bits: int = 4) -> Defence:
    """Round every value to `bits` bits (Xu et al. 2018's feature squeezing)."""
    if not 1 <= bits <= 8:
        raise UserError(f"bit depth must be from 1 to 8, got {bits}")
    levels = 2**bits - 1

    def transform(x: Tensor) -> Tensor:
        return torch.round(_check(x) * levels) / levels  # round's gradient is zero

    return Defence(f"bits-{bits}", transform)


def median(size: int = 3) -> Defence:
    """A size x size median filter (reflect-padded); its gradient reaches only the medians."""
    if size < 1 or size % 2 == 0:
        raise UserError(f"the median filter's size must be odd and >= 1, got {size}")

    def transform(x: Tensor) -> Tensor:
        x = _check(x)
        r = size // 2
        padded = F.pad(x, (r, r, r, r), mode="reflect") if r else x
        patches = F.unfold(padded, size)  # (N, C*size*size, H*W)
        n, c, h, w = x.shape
        return patches.view(n, c, size * size, h * w).median(2).values.view(n, c, h, w)

    return Defence(f"median-{size}", transform)


def resize_pad(scale: float = 1.15, seed: int | None = None) -> Defence:
    """Random resizing and padding (Xie et al. 2018): each call resizes to a random side in
    [H, scale * H] and pads at a random offset back to scale * H, then returns to H (random:
    use EoT against it)."""
    if not 1 < scale <= 2:
        raise UserError(f"the resize scale must be in (1, 2], got {scale}")
    gen = torch.Generator().manual_seed(seed) if seed is not None else None

    def transform(x: Tensor) -> Tensor:
        x = _check(x)
        h, w = x.shape[-2:]
        big_h, big_w = int(round(h * scale)), int(round(w * scale))
        side = int(torch.randint(h, big_h + 1, (1,), generator=gen))
        sw = int(round(side * w / h))
        y = F.interpolate(x, size=(side, sw), mode="bilinear", align_corners=False)
        top = int(torch.randint(0, big_h - side + 1, (1,), generator=gen))
        left = int(torch.randint(0, max(big_w - sw, 0) + 1, (1,), generator=gen))
        y = F.pad(y, (left, max(big_w - sw - left, 0), top, big_h - side - top))
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)

    return Defence(f"resize-pad-{scale:g}", transform, random=True)


def purifier(model: str = "zoo:denoise", sigma: float | None = None) -> Defence:
    """The zoo's denoiser as a purifier (a learned input transform): x -> denoise(x)."""
    from pixelsmith.edit import ops

    net = ops.restorer("denoise", model, 3)

    def transform(x: Tensor) -> Tensor:
        out = ops.denoise(_check(x).detach(), sigma, model=net, tile=None)  # runs without grad
        return out + 0 * x

    return Defence("denoise", transform)


DEFENCES: dict[str, Callable[..., Defence]] = {
    "jpeg": jpeg,
    "bits": bit_depth,
    "median": median,
    "resize-pad": resize_pad,
    "denoise": purifier,
}


def defence(name: str, **settings: float) -> Defence:
    """A defence by name (jpeg, bits, median, resize-pad, denoise) with its settings."""
    if name not in DEFENCES:
        raise UserError(f"unknown defence {name!r}; the defences are {', '.join(DEFENCES)}")
    return DEFENCES[name](**settings)


_SETTING = {"jpeg": ("quality", int), "bits": ("bits", int), "median": ("size", int),
            "resize-pad": ("scale", float), "denoise": ("sigma", float)}  # fmt: skip


def parse(text: str) -> Defence:
    """A defence written as NAME or NAME:VALUE (jpeg:75, bits:4, median:3, resize-pad:1.15,
    denoise:25), or UserError."""
    name, _, value = text.strip().partition(":")
    if name not in DEFENCES:
        raise UserError(f"unknown defence {name!r}; the defences are {', '.join(DEFENCES)}")
    if not value:
        return defence(name)
    key, kind = _SETTING[name]
    try:
        number = kind(value)
    except ValueError:
        raise UserError(f"{name}'s {key} must be a {kind.__name__}, got {value!r}") from None
    return defence(name, **{key: number})
