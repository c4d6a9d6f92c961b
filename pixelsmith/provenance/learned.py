"""A learned invisible watermark (HiDDeN, Zhu et al. 2018): an encoder that adds a message to an
image as a small residual, and a decoder that reads the bits back from any crop of it, trained
together through a layer of differentiable attacks (scripts/train_learned_watermark.py).

How it differs from the paper, and why:

- Both networks work at half resolution (2x2 means in, the residual upsampled back): the mark
  then lives in the mid frequencies that survive JPEG, blur and resizing, and a megapixel costs a
  quarter of the convolutions.
- Any image size, by being fully convolutional rather than by resizing: the message enters as a
  learned 16x16 tile (at half resolution: 32 pixels of the image) repeated over the whole image,
  so every window carries the same message at the image's own scale, with no seams. Embedding on
  a resized copy would tie the mark's scale to the image's size, and a crop (which keeps the
  pixels' scale but not the image's) would then change it.
- The decoder reads its features folded onto one message tile (averaged over every period of
  the image: global pooling that keeps the position within the tile), then a linear layer to
  one logit per bit. A crop moves the tile's origin; the decoder tries all 256 cyclic offsets at
  once (a circular correlation in frequency) and keeps the one where it is most confident.
  Training tells it the true offset and penalises confidence at a wrong one. An odd offset in
  the image is half a pixel at half resolution: the decoder reads at all four parities. (A plain
  global mean, as in the paper, learned nothing in a CPU-sized budget: a sign pattern and its
  negative have the same translation-invariant statistics unless the code learns odd ones.)
- Its input is the image less its 5x5 local mean: a photo's broad shapes are ten times the
  mark's amplitude, and without this the decoder's gradient is all photo.
- The residual is scaled to a fixed root-mean-square (0.01 at strength 1, a PSNR of 40 dB before
  rounding and clipping), so the image loss only shapes where the energy goes.

Detection compares the decoded bits with an expected message: for a message drawn at random
(from a key, say), the number that match on an unmarked image is Binomial(bits, 1/2) whatever
the decoder does, so the p-value (its exact tail) fixes the false-positive rate, as in
`pixelsmith.provenance.watermark`. A chosen message (all zeros, text) has no such guarantee:
the decoder's own leanings on unmarked photos could favour it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.data import degrade
from pixelsmith.errors import UserError
from pixelsmith.provenance.watermark import binomial_tail

NAME = "learned-watermark"
MESSAGE_BITS = 64
TILE = 16  # the message tile's side at half resolution
RMS = 0.01  # the residual's root-mean-square at strength 1 (40 dB)
MIN_SIDE = 32
DEFAULT_FPR = 1e-6


def _conv(cin: int, cout: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, padding_mode="reflect")


class Encoder(nn.Module):
    """Half-resolution image + message tile -> a residual (3, H/2, W/2), not yet scaled."""

    def __init__(self, bits: int = MESSAGE_BITS, width: int = 32, message_channels: int = 8):
        super().__init__()
        self.bits, self.mc = bits, message_channels
        self.message = nn.Linear(bits, message_channels * TILE * TILE)
        self.image = nn.Sequential(_conv(3, width), nn.ReLU(), _conv(width, width), nn.ReLU())
        self.mix = nn.Sequential(
            _conv(width + message_channels, width),
            nn.ReLU(),
            _conv(width, width),
            nn.ReLU(),
            nn.Conv2d(width, 3, 1),
        )
        self.direct = nn.Conv2d(
            message_channels, 3, 1
        )  # a path that carries the code from the start

    def forward(self, half: Tensor, signs: Tensor) -> Tensor:
        """`half`: (N, 3, h, w) in [0, 1]; `signs`: (N, bits) of +-1."""
        n, _, h, w = half.shape
        tile = self.message(signs).view(n, self.mc, TILE, TILE)
        grid = tile.repeat(1, 1, math.ceil(h / TILE), math.ceil(w / TILE))[..., :h, :w]
        return self.direct(grid) + self.mix(torch.cat([self.image(half - 0.5), grid], 1))


class Decoder(nn.Module):
    """Half-resolution image of any size -> features folded onto one message tile -> logits."""

    def __init__(self, bits: int = MESSAGE_BITS, width: int = 32, features: int = 12):
        super().__init__()
        self.features = features
        self.net = nn.Sequential(
            _conv(3, width),
            nn.ReLU(),
            _conv(width, width),
            nn.ReLU(),
            _conv(width, width, 2),
            nn.ReLU(),
            nn.Conv2d(width, features, 1),
        )
        self.head = nn.Linear(features * TILE * TILE, bits)

    def fold(self, half: Tensor) -> Tensor:
        """The features averaged over every tile-sized period: (N, D, TILE, TILE)."""
        f = self.net(_high_pass(half))
        return _fold(f) / _fold(torch.ones_like(f[:1, :1])).clamp_min(1)

    def read(self, folded: Tensor, shift: tuple[int, int] = (0, 0)) -> Tensor:
        """Logits of folded features whose tile starts `shift` (half-res pixels) into the crop."""
        return self.head(torch.roll(folded, shift, (2, 3)).flatten(1))

    def search(self, folded: Tensor) -> tuple[Tensor, Tensor]:
        """For each image, the logits at the cyclic shift where they are most confident, and
        that shift: every shift at once, as a circular correlation in frequency."""
        n, d = folded.shape[:2]
        w = self.head.weight.view(-1, d, TILE, TILE)
        spec = torch.fft.fft2(folded)[:, None] * torch.fft.fft2(w).conj()[None]
        # out[s] = sum_q w[q] f[q - s]: roll(f, s) read by the head, for every s.
        corr = torch.fft.ifft2(spec.sum(2).conj()).real  # (N, bits, T, T)
        logits = corr + self.head.bias[None, :, None, None]
        conf = logits.abs().mean(1).flatten(1)  # (N, T*T)
        best = conf.argmax(1)
        picked = logits.flatten(2)[torch.arange(n), :, best]
        return picked, torch.stack([best // TILE, best % TILE], 1)

    def forward(self, half: Tensor) -> Tensor:
        """(N, 3, h, w) in [0, 1] -> (N, bits) logits, at the most confident tile offset."""
        return self.search(self.fold(half))[0]


def _high_pass(x: Tensor) -> Tensor:
    """The image less its 5x5 local mean, amplified: the photo's broad shapes, which would
    drown a 40 dB mark, are gone before the decoder looks."""
    z = F.pad(x, (2, 2, 2, 2), mode="replicate")
    return (x - F.avg_pool2d(z, 5, 1)) * 20


def _fold(f: Tensor) -> Tensor:
    """Sum (N, C, h, w) over every TILE x TILE period (zero-padded): (N, C, TILE, TILE)."""
    n, c, h, w = f.shape
    hp, wp = math.ceil(h / TILE) * TILE, math.ceil(w / TILE) * TILE
    f = F.pad(f, (0, wp - w, 0, hp - h))
    return f.view(n, c, hp // TILE, TILE, wp // TILE, TILE).sum((2, 4))


def half(x: Tensor) -> Tensor:
    """(N, C, H, W) at half resolution by 2x2 means (an odd last row or column repeated)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
    return F.avg_pool2d(x, 2)


class LearnedWatermark(nn.Module):
    """The encoder and decoder together, with embedding and decoding on whole images."""

    def __init__(self, bits: int = MESSAGE_BITS, width: int = 32):
        super().__init__()
        self.bits = bits
        self.encoder = Encoder(bits, width)
        self.decoder = Decoder(bits, width)

    def residual(self, x: Tensor, bits: Tensor, strength: float | Tensor = 1.0) -> Tensor:
        """The scaled residual for (N, 3, H, W) images and (N, bits) bits (0/1)."""
        h, w = x.shape[-2:]
        r = self.encoder(half(x), bits.float() * 2 - 1)
        r = F.interpolate(r, scale_factor=2, mode="bilinear", align_corners=False)[..., :h, :w]
        rms = r.pow(2).mean((1, 2, 3), keepdim=True).add(1e-12).sqrt()
        s = torch.as_tensor(strength, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return r / rms * (RMS * s)

    def forward(self, x: Tensor, bits: Tensor, strength: float | Tensor = 1.0) -> Tensor:
        """The marked images, (N, 3, H, W) in [0, 1]."""
        return (x + self.residual(x, bits, strength)).clamp(0, 1)

    def logits(self, x: Tensor, shift: tuple[int, int] | None = None) -> Tensor:
        """(N, 3, H, W) -> (N, bits) logits; `shift`: where the tile starts, when known
        (training), else the decoder finds it."""
        if shift is not None:
            return self.decoder.read(self.decoder.fold(half(x)), shift)
        # A crop at an odd offset puts the tile half a pixel off the half-resolution grid: read
        # at each of the four parities and keep, per image, the most confident.
        best, conf = None, None
        for dy in (0, 1):
            for dx in (0, 1):
                z = x[..., dy:, dx:] if min(x.shape[-2:]) > MIN_SIDE else x
                logits = self.decoder(half(z))
                c = logits.abs().mean(1)
                if best is None:
                    best, conf = logits, c
                else:
                    better = c > conf
                    best = torch.where(better[:, None], logits, best)
                    conf = torch.maximum(c, conf)
        return best


# ---- a differentiable attack layer (the training recipe's, kept here so tests reach it) ----


class _StraightThroughJpeg(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, quality: int) -> Tensor:  # noqa: ANN001
        return degrade.jpeg(x, quality)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        return grad, None


def straight_through_jpeg(x: Tensor, quality: int) -> Tensor:
    """Real JPEG (Pillow, 4:2:0) forward, identity backward, for (N, 3, H, W) in [0, 1]."""
    return _StraightThroughJpeg.apply(x, quality)


def straight_through_round(x: Tensor) -> Tensor:
    """8-bit rounding forward, identity backward."""
    return x + ((x.clamp(0, 1) * 255).round() / 255 - x).detach()


ATTACKS = ("identity", "jpeg", "resize", "crop", "noise", "blur", "colour")


def _grey(x: Tensor) -> Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def attack(x: Tensor, kind: str, g: torch.Generator) -> tuple[Tensor, tuple[int, int]]:
    """One differentiable attack on a batch (N, 3, H, W), its strength drawn from `g`, rounded
    to 8 bits; and where the message tile now starts (half-res pixels: a crop moves it)."""
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=g))  # noqa: E731
    n, _, h, w = x.shape
    shift = (0, 0)
    if kind == "jpeg":
        x = straight_through_jpeg(x, int(round(u(40, 92))))
    elif kind == "resize":
        s = u(0.25, 0.8)
        small = F.interpolate(x, scale_factor=s, mode="bilinear", antialias=True)
        x = F.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)
    elif kind == "crop":
        a = u(0.25, 0.9) ** 0.5
        ch, cw = max(MIN_SIDE, round(h * a)), max(MIN_SIDE, round(w * a))
        y0 = int(torch.randint(0, h - ch + 1, (), generator=g))
        x0 = int(torch.randint(0, w - cw + 1, (), generator=g))
        x = x[..., y0 : y0 + ch, x0 : x0 + cw]
        shift = (y0 // 2 % TILE, x0 // 2 % TILE)
    elif kind == "noise":
        x = x + u(0.005, 0.04) * torch.randn(x.shape, generator=g)
    elif kind == "blur":
        x = degrade.gaussian_blur(x, u(0.4, 1.5))
    elif kind == "colour":
        b, c, s = u(0.6, 1.5), u(0.6, 1.5), u(0.5, 1.6)
        x = x * b
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + c * (x - mean)
        grey = _grey(x)
        x = grey + s * (x - grey)
    elif kind != "identity":
        raise UserError(f"no attack {kind!r}; they are {', '.join(ATTACKS)}")
    return straight_through_round(x.clamp(0, 1)), shift


# ---- using the shipped model -----------------------------------------------------------------


@dataclass
class LearnedDetection:
    """What the learned decoder read from one image, against an expected message."""

    detected: bool
    p_value: float
    matched: int
    bits: int
    bit_accuracy: float

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


@lru_cache(maxsize=2)
def load_learned(name: str = NAME) -> LearnedWatermark:
    """The learned watermark from the zoo, in eval mode."""
    from pixelsmith import zoo
    from pixelsmith.utils.checkpoint_file import load_checkpoint, load_networks

    tensors, manifest = load_checkpoint(zoo.path(name))
    if manifest.get("preset") != NAME:
        raise UserError(f"zoo model {name} is a {manifest.get('preset')}, not a learned watermark")
    model = LearnedWatermark(int(manifest["message_bits"]), int(manifest.get("width", 32)))
    load_networks({"encoder": model.encoder, "decoder": model.decoder}, tensors)
    return model.eval()


def _batch(x: Tensor, least: int, what: str) -> tuple[Tensor, bool]:
    """(N, 3, H, W) float from (C, H, W) or (N, C, H, W) with C = 1, 3 or 4."""
    single = x.dim() == 3
    xb = x[None] if single else x
    if xb.dim() != 4 or xb.shape[1] not in (1, 3, 4):
        raise UserError(
            f"the learned watermark needs (C, H, W) or (N, C, H, W) images with 1, 3 or 4 "
            f"channels; got {tuple(x.shape)}"
        )
    h, w = xb.shape[-2:]
    if min(h, w) < least:
        raise UserError(
            f"a {w}x{h} image is too small to {what}: the learned watermark needs at least "
            f"{least} pixels on each side"
        )
    return xb.float(), single


def _rgb(x: Tensor) -> Tensor:
    return x[:, :3] if x.shape[1] >= 3 else x.expand(-1, 3, -1, -1)


def embed(
    x: Tensor,
    bits: Tensor,
    strength: float = 1.0,
    model: LearnedWatermark | None = None,
) -> Tensor:
    """The image(s) (C, H, W) or (N, C, H, W) in [0, 1] carrying `bits` ((bits,) or (N, bits),
    0/1); strength 1 is a 40 dB residual, 2 is 34 dB. Grey images take the residual's mean,
    alpha is kept."""
    model = model or load_learned()
    xb, single = _batch(x, MIN_SIDE, "mark")
    bits = torch.as_tensor(bits)
    if bits.dim() not in (1, 2) or bits.shape[-1] != model.bits:
        raise UserError(
            f"the learned watermark carries {model.bits} bits; got bits shaped {tuple(bits.shape)}"
        )
    bits = bits.reshape(-1, model.bits)
    if not 0 < strength <= 10:
        raise UserError(f"the learned watermark's strength must be in (0, 10], got {strength}")
    bits = bits.expand(xb.shape[0], -1)
    with torch.no_grad():
        r = model.residual(_rgb(xb), bits, strength)
    out = xb.clone()
    if xb.shape[1] == 1:
        out += r.mean(1, keepdim=True)
    else:
        out[:, :3] += r
    out = out.clamp_(0, 1)
    return out[0] if single else out


def decode(x: Tensor, model: LearnedWatermark | None = None) -> Tensor:
    """The probability that each bit is 1: (bits,) for one image (C, H, W), (N, bits) for many."""
    model = model or load_learned()
    xb, single = _batch(x, MIN_SIDE, "read")
    with torch.no_grad():
        p = torch.sigmoid(model.logits(_rgb(xb)))
    return p[0] if single else p


def detect(
    x: Tensor,
    expect: Tensor,
    fpr: float = DEFAULT_FPR,
    model: LearnedWatermark | None = None,
) -> LearnedDetection:
    """Whether one image (C, H, W) carries the message `expect` (0/1 bits): the exact binomial
    tail of the bits that match, which is the false-positive rate for a random message."""
    if not 0 < fpr < 1:
        raise UserError(f"the false-positive rate must be between 0 and 1, got {fpr}")
    read = decode(x, model) > 0.5
    want = torch.as_tensor(expect).reshape(-1).bool()
    if want.numel() != read.numel():
        raise UserError(f"the learned watermark carries {read.numel()} bits, got {want.numel()}")
    n = want.numel()
    matched = int((read == want).sum())
    pv = binomial_tail(matched, n)
    return LearnedDetection(pv <= fpr, pv, matched, n, matched / n)


def random_bits(seed: int, n: int = MESSAGE_BITS) -> Tensor:
    """A message of `n` random bits (0/1) from a seed."""
    return torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(seed))
