"""Neural style transfer (Gatys, Ecker and Bethge 2016) on the offline Inception-v3.

The image is optimised so that its Gram matrices match the style image's on several layers and
its features match the content image's on one deeper layer, with an optional total-variation
term. The network is pixelsmith's FID Inception-v3 (`pixelsmith[inception]`, BatchNorm folded),
run fully convolutionally at the working resolution: only the input scaling
x * (1 + 127/128) - 1 is applied (no resize to 299), grey is repeated to 3 channels.

Layers, chosen by trying them at 256 px on astronaut, chelsea, coffee and grace_hopper against
painting-like Debian wallpapers (Autumn, ColorfulCups, a paint-brush photo):
- style: conv1 (32 ch, stride 2), conv3 (64 ch, /2), conv5 (192 ch, /4), mixed_5b (256 ch, /8)
  and mixed_6a (768 ch, /16): one layer per resolution, as Gatys' conv1_1 .. conv5_1 span VGG.
  Adding mixed_5d and mixed_6c copied larger motifs (the cups' rims into the cat) but bent the
  content more and cost 1.5x per step, so they stay out.
- content: mixed_5d (288 ch, /8), the stride of Gatys' conv4_2 (other content layers were not
  compared).
- weights: content 0.15 against style 1; at 0.5 the style came through as palette and grain
  only. Adam lr 0.02 (0.05 ended higher in both losses); 150 steps, where the curves flatten.

Losses are relative, so one set of weights serves every image and size: each style layer's
`|G(x) - G(s)|^2 / |G(s)|^2` (Frobenius, G = F F^T / (H W)), averaged over the layers; the
content term `|F(x) - F(c)|^2 / |F(c)|^2`; TV the mean squared neighbour difference (off by
default: the shifts below already remove the stride-2 checkerboard).

Two details the stem's valid, stride-2 convolutions call for: the image is seen in a mirrored
frame of 8 pixels (else the border pixels get a few weak gradients that Adam's per-pixel
scaling turns into full steps: coloured strips along the edges), shifted by a random -1..1
pixel each step (else a 2-pixel checkerboard grows that the strided layers cannot see).

The work runs at `size` pixels on the long side (the content is resized up or down; the style
image to the same long side), pixels optimised by Adam and clamped to [0, 1] after every step,
starting from the content image. The result is resized back to the content's own size, so the
output has the content's size and its alpha is kept untouched. A style image too thin for the
layers at that long side is enlarged until its short side is enough (59 pixels by default).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError
from pixelsmith.utils.colour import luma

STYLE_LAYERS = ("conv1", "conv3", "conv5", "mixed_5b", "mixed_6a")
CONTENT_LAYER = "mixed_5d"
# name -> (part, index): the stem's ReLU outputs, then the Mixed blocks (TF names)
_TAPS = {
    "conv1": ("stem", 1),
    "conv2": ("stem", 3),
    "conv3": ("stem", 5),
    "conv4": ("stem", 8),
    "conv5": ("stem", 10),
    "mixed_5b": ("blocks", 0),
    "mixed_5c": ("blocks", 1),
    "mixed_5d": ("blocks", 2),
    "mixed_6a": ("blocks", 3),
    "mixed_6b": ("blocks", 4),
    "mixed_6c": ("blocks", 5),
    "mixed_6d": ("blocks", 6),
    "mixed_6e": ("blocks", 7),
}
LAYERS = tuple(_TAPS)
STEPS = 150
SIZE = 512
STYLE_WEIGHT = 1.0
CONTENT_WEIGHT = 0.15
TV_WEIGHT = 0.0
LR = 0.02
JITTER = 1
MARGIN = 8
_LO, _HI = -1.0, 0.9921875  # Inception's input range: x * (1 + 127/128) - 1


def gram(features: Tensor) -> Tensor:
    """Gram matrices F F^T / (H W) of (N, C, H, W) features -> (N, C, C)."""
    if features.ndim != 4:
        raise UserError(f"gram needs (N, C, H, W) features, got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last):  # (N, HW, C) without a copy
        f = features.permute(0, 2, 3, 1).reshape(n, h * w, c)
        return f.transpose(1, 2) @ f / (h * w)
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def _down(s: int) -> int:
    return (s - 3) // 2 + 1  # a 3x3 stride-2 conv or max-pool without padding


# the side after each stem module: conv/2, ReLU, conv, ReLU, conv pad 1, ReLU, pool, 1x1 conv,
# ReLU, conv, ReLU, pool; then each Mixed block (mixed_6a halves, the others keep the size)
_STEM_SIDE = (_down, None, lambda s: s - 2, None, None, None, _down, None, None,
              lambda s: s - 2, None, _down)  # fmt: skip


def _side(s: int, name: str) -> int:
    """A side length at layer `name` for an input side s."""
    part, idx = _TAPS[name]
    for i, f in enumerate(_STEM_SIDE):
        if part == "stem" and i > idx:
            return s
        s = f(s) if f is not None else s
    return _down(s) if idx >= 3 else s


def min_side(layers: Sequence[str]) -> int:
    """The smallest image side that leaves every layer at least 2x2 pixels."""
    s = 8
    while any(_side(s, n) < 2 for n in layers):
        s += 1
    return s


class InceptionTaps(nn.Module):
    """The Inception stem and Mixed blocks up to the deepest tap; returns the taps' activations."""

    def __init__(self, net: nn.Module, layers: Sequence[str]):
        super().__init__()
        unknown = [n for n in layers if n not in _TAPS]
        if unknown:
            raise UserError(f"unknown layer {unknown[0]!r}; use one of {', '.join(LAYERS)}")
        self.names = tuple(dict.fromkeys(layers))
        deepest = max(self.names, key=lambda n: (n.startswith("mixed"), _TAPS[n][1]))
        part, idx = _TAPS[deepest]
        self.stem = net.stem if part == "blocks" else net.stem[: idx + 1]
        self.blocks = net.blocks[: idx + 1] if part == "blocks" else nn.Sequential()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """(N, 1|3, H, W) in [0, 1] -> {layer: activation}."""
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        h = (x * (_HI - _LO) + _LO).contiguous(memory_format=torch.channels_last)
        want = {_TAPS[n]: n for n in self.names}
        out: dict[str, Tensor] = {}
        for part, mods in (("stem", self.stem), ("blocks", self.blocks)):
            for i, m in enumerate(mods):
                h = m(h)
                if (part, i) in want:  # no later module changes a tapped tensor in place
                    out[want[(part, i)]] = h
        return out


@functools.lru_cache(maxsize=2)
def _network(path: Path, device: str) -> nn.Module:
    from pixelsmith.metrics.inception import InceptionV3Features, load_torchscript

    return InceptionV3Features(load_torchscript(path)).to(device)


def load_network(device: str | torch.device = "cpu") -> nn.Module:
    """The hash-checked eager Inception-v3 (one-line UserError naming the extra if missing)."""
    from pixelsmith.metrics.inception import inception_weights_path

    return _network(inception_weights_path(), str(torch.device(device)))


@dataclass
class StyleLog:
    """Losses per step, as the optimisation went (for progress lines and benchmarks)."""

    steps: list[int] = field(default_factory=list)
    style: list[float] = field(default_factory=list)
    content: list[float] = field(default_factory=list)
    tv: list[float] = field(default_factory=list)
    seconds: float = 0.0


Progress = Callable[[int, int, dict[str, float], float], None]


def _image(x: Tensor, name: str) -> Tensor:
    """A checked (1, C, H, W) float image in [0, 1] from (C, H, W) or (1, C, H, W)."""
    if not isinstance(x, Tensor):
        raise UserError(f"the {name} image must be a tensor, got {type(x).__name__}")
    t = x[None] if x.ndim == 3 else x
    if t.ndim != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3) or min(t.shape[2:]) < 1:
        raise UserError(
            f"the {name} image must be (C, H, W) or (1, C, H, W) with C = 1 or 3, "
            f"got shape {tuple(x.shape)}"
        )
    if not t.is_floating_point():
        raise UserError(f"the {name} image must be float in [0, 1], got {t.dtype}")
    return t.float().clamp(0, 1)


def _framed(x: Tensor, j: int, gen: torch.Generator | None) -> Tensor:
    """x in a mirrored frame of MARGIN pixels, shifted by up to j pixels each way at random.

    The frame puts the border pixels inside the valid convolutions' view: without it they get
    a few weak gradients, which Adam's per-pixel scaling turns into full steps (coloured edge
    strips). The random shift lets the stem's stride-2 layers see every phase: without it the
    optimisation paints a 2-pixel checkerboard they cannot see. gen None: centred.
    """
    m = MARGIN + j
    h, w = x.shape[-2:]
    if min(h, w) <= m:  # reflect padding needs a wider image; repeat the edge instead
        padded = F.pad(x, (m, m, m, m), mode="replicate")
    else:
        padded = F.pad(x, (m, m, m, m), mode="reflect")
    dy, dx = (j, j) if gen is None or j == 0 else torch.randint(0, 2 * j + 1, (2,), generator=gen)
    dy, dx = int(dy), int(dx)
    return padded[..., dy : dy + h + 2 * MARGIN, dx : dx + w + 2 * MARGIN]


def working_size(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) with the long side `size` and the aspect ratio kept."""
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(x: Tensor, hw: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, hw, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def _check_number(name: str, v: float, lo: float, allow_lo: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise UserError(f"{name} must be a finite number, got {v!r}")
    if v < lo or (v == lo and not allow_lo):
        raise UserError(f"{name} must be {'at least' if allow_lo else 'above'} {lo:g}, got {v:g}")
    return float(v)


def check_options(
    steps: int,
    size: int,
    style_weight: float,
    content_weight: float,
    tv_weight: float,
    lr: float,
    style_layers: Sequence[str] = STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
) -> None:
    """Refuse impossible settings before any work (one sentence each)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise UserError(f"steps must be a positive integer, got {steps!r}")
    for n in (*style_layers, content_layer):
        if n not in _TAPS:
            raise UserError(f"unknown layer {n!r}; use one of {', '.join(LAYERS)}")
    if not style_layers:
        raise UserError("style transfer needs at least one style layer")
    smallest = min_side((*style_layers, content_layer))
    if isinstance(size, bool) or not isinstance(size, int) or not smallest <= size <= 4096:
        raise UserError(
            f"size (the working long side) must be an integer from {smallest} to 4096, got {size!r}"
        )
    _check_number("style weight", style_weight, 0)
    _check_number("content weight", content_weight, 0)
    _check_number("tv weight", tv_weight, 0)
    _check_number("learning rate", lr, 0, allow_lo=False)
    if style_weight == 0 and content_weight == 0 and tv_weight == 0:
        raise UserError("the style, content and tv weights are all 0: nothing to optimise")


def style_transfer(
    content: Tensor,
    style: Tensor,
    steps: int = STEPS,
    size: int | None = SIZE,
    style_weight: float = STYLE_WEIGHT,
    content_weight: float = CONTENT_WEIGHT,
    tv_weight: float = TV_WEIGHT,
    lr: float = LR,
    seed: int = 0,
    init: str = "content",
    jitter: int = JITTER,
    style_layers: Sequence[str] = STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
    progress: Progress | None = None,
    log: StyleLog | None = None,
    net: nn.Module | None = None,
    device: str | torch.device | None = None,
) -> Tensor:
    """The content image (C, H, W) or (1, C, H, W) in [0, 1], restyled; same shape and size.

    `size` is the working long side (None: the content's own). A grey content gives a grey
    result (only the style's texture then transfers). `init` is "content" or "noise" (uniform
    noise from `seed`; the seed also draws the shifts). `progress(step, steps, losses,
    seconds)` is called after every step. `device`: where to compute (default: the content's).
    """
    c = _image(content, "content")
    s = _image(style, "style")
    size = max(c.shape[-2:]) if size is None else size
    check_options(steps, size, style_weight, content_weight, tv_weight, lr, style_layers,
                  content_layer)  # fmt: skip
    if init not in ("content", "noise"):
        raise UserError(f"init must be 'content' or 'noise', got {init!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, int) or not 0 <= jitter <= 8:
        raise UserError(f"jitter must be an integer from 0 to 8 pixels, got {jitter!r}")
    hw = working_size(*c.shape[-2:], size)
    need = min_side((*style_layers, content_layer))
    if min(hw) < need:
        h, w = c.shape[-2:]
        fix = math.ceil(need * max(h, w) / min(h, w))
        hint = f"raise --size to {fix} or more" if fix <= 4096 else "crop it to a wider shape"
        raise UserError(
            f"the content image ({w}x{h}) is too thin for a working long side of {size}: its "
            f"short side would be {min(hw)} pixels, under the {need} the layers need; {hint}"
        )
    shw = working_size(*s.shape[-2:], size)
    if min(shw) < need:  # a thin style image is enlarged until the deepest layer is 2 pixels
        grow = need / min(s.shape[-2:])
        shw = (max(need, math.ceil(s.shape[-2] * grow)), max(need, math.ceil(s.shape[-1] * grow)))
    dev = torch.device(device) if device is not None else content.device
    net = net if net is not None else load_network(dev)
    taps = InceptionTaps(net, [*style_layers, content_layer])
    cw = _resize(c.to(dev), hw)
    sw = _resize(s.to(dev), shw)
    if cw.shape[1] == 1 and sw.shape[1] == 3:  # a grey result: match the grey style's statistics
        sw = luma(sw)
    with torch.no_grad():
        s_feats = taps(sw)
        targets = {n: gram(s_feats[n]) for n in style_layers}
        t_norm = {n: targets[n].square().sum().clamp_min(1e-12) for n in style_layers}
        c_feat = taps(_framed(cw, 0, None))[content_layer].clone()
        c_norm = c_feat.square().sum().clamp_min(1e-12)
        del s_feats
    if init == "noise":
        gen = torch.Generator().manual_seed(seed)
        x0 = torch.rand(cw.shape, generator=gen).to(dev)
    else:
        x0 = cw.clone()
    x = x0.requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    shift = torch.Generator().manual_seed(seed + 1)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        opt.zero_grad(set_to_none=True)
        feats = taps(_framed(x, jitter, shift))
        ls = sum((gram(feats[n]) - targets[n]).square().sum() / t_norm[n] for n in style_layers)
        ls = ls / len(style_layers)
        lc = (feats[content_layer] - c_feat).square().sum() / c_norm
        ltv = (x[..., 1:, :] - x[..., :-1, :]).square().mean() + (
            x[..., :, 1:] - x[..., :, :-1]
        ).square().mean()
        loss = style_weight * ls + content_weight * lc + tv_weight * ltv
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        losses = {"style": ls.item(), "content": lc.item(), "tv": ltv.item()}
        elapsed = time.perf_counter() - t0
        if log is not None:
            log.steps.append(step)
            log.style.append(losses["style"])
            log.content.append(losses["content"])
            log.tv.append(losses["tv"])
            log.seconds = elapsed
        if progress is not None:
            progress(step, steps, losses, elapsed)
    out = _resize(x.detach(), tuple(c.shape[-2:])).to(content.device)
    return out if content.ndim == 4 else out[0]


def losses_of(
    image: Tensor,
    content: Tensor,
    style: Tensor,
    style_layers: Sequence[str] = STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
    net: nn.Module | None = None,
) -> dict[str, float]:
    """The relative style and content losses of an image, all three taken at their own sizes."""
    x, c, s = (_image(t, n) for t, n in ((image, "image"), (content, "content"), (style, "style")))
    net = net if net is not None else load_network(image.device)
    taps = InceptionTaps(net, [*style_layers, content_layer])
    c, s = c.to(x.device), s.to(x.device)
    with torch.no_grad():
        fx, fc, fs = taps(x), taps(c), taps(s)
        ls = sum(
            (gram(fx[n]) - gram(fs[n])).square().sum() / gram(fs[n]).square().sum()
            for n in style_layers
        ) / len(style_layers)
        lc = (fx[content_layer] - fc[content_layer]).square().sum() / fc[
            content_layer
        ].square().sum()
    return {"style": float(ls), "content": float(lc)}
