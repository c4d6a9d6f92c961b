"""Edited-region localisation: a map of the probability that each pixel of a photo was filled in
or pasted.

The network is a small fully-convolutional U-Net (`LocaliserNet`) that sees the photo and its
high-pass residual (the photo minus the mean of its 4 neighbours, where camera noise and JPEG grain
live and fills leave none). It is trained by `scripts/train_localiser.py` on synthetic edits
(`pixelsmith.forensics.edits`) and shipped in the zoo as `photo-localiser`. Photos run whole when
small and in overlapping tiles when large, so any size from `MIN_SIDE` up works in flat memory.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.errors import UserError

MIN_SIDE = 32
TILE = 512
MARGIN = 48  # context each tile sees beyond the pixels it answers for
_STRIDE = 8  # the net halves three times
ZOO_NAME = "photo-localiser"


def residual(x: Tensor) -> Tensor:
    """x minus the mean of its 4 neighbours (mirrored border), scaled to about unit range."""
    p = F.pad(x, (1, 1, 1, 1), mode="reflect")
    mean = (p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]) / 4
    return 16 * (x - mean)


def _block(c_in: int, c_out: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class LocaliserNet(nn.Module):
    """RGB + residual in, one logit per pixel out; a U-Net of 3 halvings, widths w to 4w."""

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.width = w
        self.enc1 = nn.Sequential(_block(6, w), _block(w, w))
        self.enc2 = nn.Sequential(_block(w, 2 * w, 2), _block(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_block(2 * w, 4 * w, 2), _block(4 * w, 4 * w))
        self.enc4 = nn.Sequential(
            _block(4 * w, 4 * w, 2), _block(4 * w, 4 * w, dilation=2), _block(4 * w, 4 * w)
        )
        self.dec3 = _block(8 * w, 4 * w)
        self.dec2 = _block(6 * w, 2 * w)
        self.dec1 = _block(3 * w, w)
        self.head = nn.Conv2d(w, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1], H and W multiples of 8 -> (N, 1, H, W) logits."""
        e1 = self.enc1(torch.cat([x - 0.5, residual(x)], 1))
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.dec3(torch.cat([F.interpolate(e4, scale_factor=2.0, mode="bilinear"), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, scale_factor=2.0, mode="bilinear"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear"), e1], 1))
        return self.head(d1)


def _padded_logits(net: nn.Module, x: Tensor) -> Tensor:
    """Logits for (1, 3, h, w) of any size: mirrored up to a multiple of 8, cropped back."""
    h, w = x.shape[-2:]
    ph, pw = -h % _STRIDE, -w % _STRIDE
    xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
    return net(xp)[..., :h, :w]


def _starts(n: int, inner: int) -> list[int]:
    if n <= inner:
        return [0]
    return list(range(0, n - inner, inner)) + [n - inner]


@torch.no_grad()
def localiser_map(net: nn.Module, x: Tensor, tile: int = TILE, margin: int = MARGIN) -> Tensor:
    """(H, W) edit probabilities of one (3, H, W) photo from `net`, in tiles beyond `tile`."""
    h, w = x.shape[-2:]
    xb = x[None].float().clamp(0, 1)
    if h <= tile and w <= tile:
        return torch.sigmoid(_padded_logits(net, xb))[0, 0]
    inner = tile - 2 * margin
    out = torch.empty(h, w)
    for y0 in _starts(h, inner):
        for x0 in _starts(w, inner):
            y1, x1 = min(h, y0 + inner), min(w, x0 + inner)
            ya, xa = max(0, y0 - margin), max(0, x0 - margin)
            yb, xb_ = min(h, y1 + margin), min(w, x1 + margin)
            logits = _padded_logits(net, xb[..., ya:yb, xa:xb_])[0, 0]
            out[y0:y1, x0:x1] = torch.sigmoid(logits[y0 - ya : y1 - ya, x0 - xa : x1 - xa])
    return out


_LOADED: dict[str, LocaliserNet] = {}


def localiser_from_tensors(tensors: dict[str, Tensor], manifest: dict) -> LocaliserNet:
    """The network a checkpoint's tensors and manifest describe, in eval mode."""
    net = LocaliserNet(width=int(manifest.get("width", 16)))
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in tensors.items()})
    return net.eval()


def load_localiser(name: str = ZOO_NAME, path: str | Path | None = None) -> LocaliserNet:
    """The shipped localiser (zoo entry `name`), or the checkpoint at `path`; loaded once."""
    from pixelsmith.utils.checkpoint_file import load_checkpoint
    from pixelsmith.zoo import path as zoo_path

    key = str(path) if path is not None else "zoo:" + name
    if key not in _LOADED:
        tensors, manifest = load_checkpoint(path if path is not None else zoo_path(name))
        if manifest.get("preset") != "localiser":
            raise UserError(f"{key} is not an edited-region localiser; pass a localiser checkpoint")
        _LOADED[key] = localiser_from_tensors(tensors, manifest)
    return _LOADED[key]


def localise(x: Tensor, net: nn.Module | None = None) -> Tensor:
    """(H, W) probabilities that each pixel of the photo x ((3, H, W) or grey (1, H, W), floats
    in [0, 1]) was filled in or pasted, from the shipped localiser or `net`."""
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[0] not in (1, 3):
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise UserError(f"localise needs a (3, H, W) or (1, H, W) image tensor, got {shape}")
    h, w = x.shape[-2:]
    if min(h, w) < MIN_SIDE:
        raise UserError(
            f"the image is {w}x{h} pixels, too small to localise edits in: "
            f"give one at least {MIN_SIDE} pixels a side"
        )
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    net = net if net is not None else load_localiser()
    return localiser_map(net.eval(), x)
