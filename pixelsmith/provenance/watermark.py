"""An invisible watermark in the pixels: keyed spread spectrum on a tile, found again after
JPEG, resizing, crops, colour changes, noise and blur, with a p-value known in advance.

Why written here and not taken from invisible-watermark: its DWT-DCT methods are brittle
(bench/watermark.py shows them lost after JPEG 75 or a crop) and RivaGAN costs about 2 s a call;
none says how likely a false detection is. This is the textbook alternative (Cox et al. 1997),
arranged so each attack in the bench costs little:

- The mark is one 128x128 tile repeated over the image at its own resolution, so a crop anywhere
  still holds whole periods of it; the detector folds the image onto one tile (summing every
  period, which adds the mark coherently and the photo incoherently) and finds the crop's offset
  from a pilot pattern by a cyclic correlation.
- The tile is built from orthonormal keyed patterns confined to a mid band of frequencies
  (periods of 6.4 to 43 pixels): low enough to survive JPEG 50, blur and resizing to a quarter
  and back, high enough to stay clear of most of a photo's energy. It lies along one colour
  direction, a third luma and the rest yellow-blue: photos carry far less texture in chroma, so
  crops keep it, and the luma third survives JPEG's coarse chroma. It is scaled by local texture,
  which hides it where the eye looks least, and the embedder reads the photo first and spends
  the energy on the bits the photo itself works against (informed embedding).
- Detection weighs each frequency by the image's own spectrum (the matched filter for coloured
  noise) and reads one bit per pattern. Of the bits, `key_bits` are fixed by the key: the number
  that match under no mark is Binomial(key_bits, 1/2), so the p-value is exact and a threshold
  on it fixes the false-positive rate. The rest carry the message, whitened by the key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pixelsmith.errors import UserError
from pixelsmith.provenance.keys import WatermarkKey
from pixelsmith.utils.colour import luma

TILE = 128
BAND = (3.0, 20.0)  # radial frequency, in cycles per tile: periods of 6.4 to 43 pixels
DOWN = 2  # the detector works at half resolution, where the band still lies well below Nyquist
SMALL = TILE // DOWN
PILOT_SHARE = 0.2  # of the mark's energy, for finding a crop's offset
FLOOR = 0.5  # the least share of its plain amplitude a bit keeps after informed coding
MIN_EMBED_SIDE = TILE
MIN_DETECT_SIDE = 64
DEFAULT_PSNR = 40.5
DEFAULT_FPR = 1e-6
_TEXTURE_WINDOW = 5  # half-resolution pixels
TEXTURE_POWER = 0.5
COLOUR = (1.0, 1.0, -0.5)  # the mark's direction in RGB: a third luma, the rest yellow-blue
_STRENGTH_CELL = 8  # half-resolution pixels over which the detector measures the photo's strength


@dataclass
class Detection:
    """What the detector read from one image."""

    detected: bool
    p_value: float
    matched: int
    key_bits: int
    bit_accuracy: float
    message_hex: str
    message_text: str | None
    offset: tuple[int, int]
    message_bit_accuracy: float | None = None

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return asdict(self)


@lru_cache(maxsize=2)
def _band_mask(n: int) -> np.ndarray:
    f = np.fft.fftfreq(n) * n  # cycles per tile, whatever its sampling
    r = np.hypot(f[:, None], f[None, :])
    return (r >= BAND[0]) & (r <= BAND[1])


@lru_cache(maxsize=16)
def _patterns(secret: bytes, count: int) -> np.ndarray:
    """`count` orthonormal band-limited tiles drawn from the key (the pilot first)."""
    seed = int.from_bytes(WatermarkKey(secret).stream("patterns", 16), "big")
    noise = np.random.default_rng(seed).standard_normal((count, TILE, TILE))
    spectrum = np.fft.fft2(noise) * _band_mask(TILE)
    flat = np.fft.ifft2(spectrum).real.reshape(count, -1)
    q, _ = np.linalg.qr(flat.T)
    return np.ascontiguousarray(q.T.reshape(count, TILE, TILE))


def _bits(data: bytes, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, np.uint8))[:n].astype(bool)


def _codeword(key: WatermarkKey, message: bytes) -> np.ndarray:
    """The key's own bits, then the message XOR a key stream (so no message is all zeros)."""
    key_part = _bits(key.stream("key-bits", 64), key.key_bits)
    padded = message.ljust(key.message_bits // 8, b"\0")
    pad = _bits(key.stream("message-pad", 64), key.message_bits)
    return np.concatenate([key_part, _bits(padded, key.message_bits) ^ pad])


def _texture(small: Tensor) -> Tensor:
    """A gain from local contrast of a half-resolution luma image: above 1 in texture, below 1
    in flat areas (mean 1). Its power is a compromise: the eye forgives a mark in texture, the
    detector hears it best in flat areas."""
    k, pad = _TEXTURE_WINDOW, _TEXTURE_WINDOW // 2
    z = F.pad(small[None, None], (pad,) * 4, mode="replicate")
    mean = F.avg_pool2d(F.avg_pool2d(z, (1, k), 1), (k, 1), 1)
    sq = F.avg_pool2d(F.avg_pool2d(z * z, (1, k), 1), (k, 1), 1)
    g = ((sq - mean * mean).clamp_min(0).sqrt() + 0.01) ** TEXTURE_POWER
    return (g / g.mean()).clamp(0.25, 4.0)[0, 0]


def _check_image(x: Tensor, least: int, what: str) -> Tensor:
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
        raise UserError(
            f"a watermark needs a grey, RGB or RGBA image (C, H, W); got {tuple(x.shape)}"
        )
    h, w = x.shape[-2:]
    if min(h, w) < least:
        raise UserError(
            f"a {w}x{h} image is too small to {what}: a watermark needs at least {least} pixels "
            "on each side"
        )
    return x.float()


def embed(
    x: Tensor,
    key: WatermarkKey,
    message: bytes = b"",
    psnr: float = DEFAULT_PSNR,
    informed: bool = True,
) -> Tensor:
    """The image (C, H, W in [0, 1]) with the key's mark and `message`, at the given PSNR.
    `informed`: spend the mark's energy where the photo itself works against a bit."""
    x = _check_image(x, MIN_EMBED_SIDE, "mark")
    if len(message) * 8 > key.message_bits:
        raise UserError(
            f"the message needs {len(message) * 8} bits; the key carries {key.message_bits}"
        )
    if not 20 <= psnr <= 60:
        raise UserError(f"the watermark's PSNR must be 20 to 60 dB, got {psnr}")
    colour = x[:3] if x.shape[0] == 4 else x
    small = _half(colour)
    signs = np.where(_codeword(key, message), 1.0, -1.0)
    patterns = _patterns(key.secret, 1 + len(signs))
    gain = _texture(luma(small)[0])
    coef = np.concatenate(
        [[math.sqrt(PILOT_SHARE)], signs * math.sqrt((1 - PILOT_SHARE) / len(signs))]
    )
    scale = 10 ** (-psnr / 20) / _rms(patterns, coef, gain)
    if informed:
        coef = _informed(_carrier(small), gain, scale, key.secret, coef, signs, colour.shape[0])
        scale = 10 ** (-psnr / 20) / _rms(patterns, coef, gain)
    mark = _mark(patterns, coef, gain, colour.shape[-2:]) * scale
    out = x.clone()
    c = colour.shape[0]
    # Along the unit colour direction, times sqrt(C): each channel keeps the mark's mean square.
    for i, weight in enumerate(_direction(c).tolist()):
        out[i].add_(mark, alpha=weight * math.sqrt(c))
    return out.clamp_(0, 1)


def _direction(channels: int) -> Tensor:
    """The unit colour direction the mark lies along."""
    v = torch.tensor(COLOUR if channels == 3 else (1.0,), dtype=torch.float32)
    return v / v.norm()


def _carrier(colour: Tensor) -> Tensor:
    """The image along the mark's colour direction (H, W)."""
    return torch.tensordot(_direction(colour.shape[0]), colour, 1)


def _tile(patterns: np.ndarray, coef: np.ndarray) -> Tensor:
    return torch.from_numpy(np.tensordot(coef, patterns, 1).astype(np.float32))


def _over(tile: Tensor, h: int, w: int) -> Tensor:
    """A tile repeated over an (h, w) image."""
    t = tile.shape[-1]
    return tile.repeat(math.ceil(h / t), math.ceil(w / t))[:h, :w]


def _rms(patterns: np.ndarray, coef: np.ndarray, gain: Tensor) -> float:
    """The root-mean-square value of the full-resolution mark, from half resolution (the gain
    is constant on each 2x2 block, so the mean of the square pools exactly)."""
    h, w = gain.shape
    power = F.avg_pool2d(_tile(patterns, coef)[None, None] ** 2, DOWN)[0, 0]
    return float((_over(power, h, w) * gain * gain).mean().sqrt().clamp_min(1e-12))


def _mark(patterns: np.ndarray, coef: np.ndarray, gain: Tensor, size: torch.Size) -> Tensor:
    """The unscaled mark over a full-resolution image: the tile of weighted patterns, repeated,
    times the texture gain (an odd last row or column takes its neighbour's gain)."""
    h, w = size
    g = gain.repeat_interleave(DOWN, 0).repeat_interleave(DOWN, 1)
    g = F.pad(g[None, None], (0, w - g.shape[1], 0, h - g.shape[0]), mode="replicate")[0, 0]
    return _over(_tile(patterns, coef), h, w) * g


def _informed(
    small: Tensor,
    gain: Tensor,
    scale: float,
    secret: bytes,
    coef: np.ndarray,
    signs: np.ndarray,
    channels: int,
) -> np.ndarray:
    """Coefficients that give every bit the same margin over what the photo itself reads on it,
    at the same energy: bits the photo already helps get less (never below FLOOR of their plain
    share, so a crop that loses the photo's help still reads them), bits it fights get more.
    Worked out at half resolution, where the detector looks: pooling the mark is pooling its
    tile, the gain being constant on each 2x2 block."""
    spectra = _small_spectra(secret, len(coef))
    host = _view(small)
    r_host = _readings(host, spectra)[1:]
    tile = F.avg_pool2d(_tile(_patterns(secret, len(coef)), coef)[None, None], DOWN)[0, 0]
    mark = _over(tile, *small.shape) * gain * (scale * math.sqrt(channels))  # as embed adds it
    response = _readings(_view(mark, like=host), spectra)[1:]
    plain = coef[1:]
    gain_per_unit = np.mean(response / plain)
    if not gain_per_unit > 0:
        return coef
    helps = signs * r_host / gain_per_unit  # the photo's own reading, in units of a coefficient
    floor = FLOOR * np.abs(plain)
    budget = float(np.sum(plain**2))
    lo, hi = 0.0, float(np.max(floor - helps) + np.sqrt(budget) + np.max(np.abs(helps)))
    for _ in range(50):
        t = (lo + hi) / 2
        if np.sum(np.maximum(floor, t - helps) ** 2) > budget:
            hi = t
        else:
            lo = t
    out = coef.copy()
    out[1:] = signs * np.maximum(floor, lo - helps)
    return out


def _half(x: Tensor) -> Tensor:
    """A (C, H, W) or (H, W) image at half resolution (an odd last row and column dropped)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # DOWN = 2, by strided slices (fastest)
    z = x[..., :h, :w]
    return (z[..., 0::2, 0::2] + z[..., 1::2, 0::2] + z[..., 0::2, 1::2] + z[..., 1::2, 1::2]) / 4


@lru_cache(maxsize=8)
def _band_keep(h: int, w: int) -> Tensor:
    """Which of a half-resolution image's rfft2 bins the band keeps (a little wider than the
    patterns' band, so the filter's edge does not clip them)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    r = torch.sqrt(fy * fy + fx * fx) * SMALL
    return ((r >= BAND[0] * 0.8) & (r <= BAND[1] * 1.2)).to(torch.complex64)


def _band(y: Tensor) -> Tensor:
    """The mark's frequency band of a half-resolution image."""
    h, w = y.shape
    return torch.fft.irfft2(torch.fft.rfft2(y) * _band_keep(h, w), s=(h, w))


def _strength(band: Tensor) -> Tensor:
    """The photo's local strength in the band: textured areas, where the photo drowns the mark,
    are divided down so they weigh no more than flat ones."""
    h, w = band.shape
    c = _STRENGTH_CELL
    pooled = F.avg_pool2d((band * band)[None, None], c, ceil_mode=True)
    up = F.interpolate(pooled, scale_factor=c, mode="bilinear", align_corners=False)
    return up[0, 0, :h, :w].sqrt() + 1e-3


def _fold(y: Tensor) -> Tensor:
    """Sum every tile-sized period of a half-resolution image onto one tile."""
    h, w = y.shape
    hp, wp = math.ceil(h / SMALL) * SMALL, math.ceil(w / SMALL) * SMALL
    y = F.pad(y, (0, wp - w, 0, hp - h))
    return y.reshape(hp // SMALL, SMALL, wp // SMALL, SMALL).sum((0, 2))


def _radius() -> np.ndarray:
    f = np.fft.fftfreq(SMALL) * SMALL
    return np.rint(np.hypot(f[:, None], f[None, :])).astype(int)


def _power(spec: np.ndarray) -> np.ndarray:
    """The folded spectrum's mean power at each radius, spread back over the tile."""
    r = _radius()
    power = np.bincount(r.ravel(), (np.abs(spec) ** 2).ravel()) / np.bincount(r.ravel())
    return np.maximum(power[r], 1e-30)


@dataclass
class _View:
    """What the detector makes of an image: the folded band, and the weights it used."""

    spectrum: np.ndarray  # the folded image's spectrum, divided by its power (matched filter)
    strength: Tensor
    power: np.ndarray


def _view(y: Tensor, like: _View | None = None) -> _View:
    """The detector's view of a half-resolution image along the mark's colour; `like` reuses
    another view's weights (which makes it linear)."""
    band = _band(y)
    strength = like.strength if like is not None else _strength(band)
    spec = np.fft.fft2(_fold(band / strength).double().numpy())
    power = like.power if like is not None else _power(spec)
    return _View(np.where(_band_mask(SMALL), spec / power, 0), strength, power)


@lru_cache(maxsize=16)
def _small_spectra(secret: bytes, count: int) -> np.ndarray:
    """The patterns as the detector sees them (half resolution), as spectra."""
    p = torch.from_numpy(_patterns(secret, count)).float()
    return np.fft.fft2(F.avg_pool2d(p[:, None], DOWN)[:, 0].double().numpy())


def _readings(view: _View, spectra: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Correlation of the view with each pattern, shifted by `offset` (Parseval, in frequency)."""
    dy, dx = offset
    f = np.fft.fftfreq(SMALL)
    phase = np.exp(2j * np.pi * (f[:, None] * dy + f[None, :] * dx))
    return np.real(np.tensordot(np.conj(spectra), view.spectrum * phase, 2))


def _refine(view: _View, pilot: np.ndarray, peak: tuple[int, int]) -> tuple[float, float]:
    """The pilot's peak to a quarter of a half-resolution pixel: a crop at an odd offset falls
    between the detector's samples, and half a sample off costs a fifth of the bits' margin."""
    steps = np.arange(-0.5, 0.51, 0.25)
    best, where = -np.inf, (float(peak[0]), float(peak[1]))
    for fy in steps:
        for fx in steps:
            at = (peak[0] + fy, peak[1] + fx)
            value = float(_readings(view, pilot[None], at)[0])
            if value > best:
                best, where = value, at
    return where


def binomial_tail(matched: int, n: int) -> float:
    """P(at least `matched` of `n` fair coin flips come up heads), exactly."""
    return sum(math.comb(n, j) for j in range(matched, n + 1)) / 2**n


def matches_needed(n: int, fpr: float) -> int:
    """The fewest matching key bits whose p-value is at most `fpr`."""
    return next((k for k in range(n + 1) if binomial_tail(k, n) <= fpr), n + 1)


def detect(
    x: Tensor, key: WatermarkKey, fpr: float = DEFAULT_FPR, expect: bytes | None = None
) -> Detection:
    """Look for the key's mark in an image (C, H, W in [0, 1]); `expect`: the message it should
    carry, to report the message's bit accuracy as well."""
    x = _check_image(x, MIN_DETECT_SIDE, "hold a readable mark")
    if not 0 < fpr < 1:
        raise UserError(f"the false-positive rate must be between 0 and 1, got {fpr}")
    colour = x[:3] if x.shape[0] == 4 else x
    view = _view(_carrier(_half(colour)))
    bits = _codeword(key, b"")
    spectra = _small_spectra(key.secret, 1 + len(bits))
    pilot = np.fft.ifft2(view.spectrum * np.conj(spectra[0])).real
    dy, dx = _refine(view, spectra[0], np.unravel_index(int(np.argmax(pilot)), pilot.shape))
    read = _readings(view, spectra[1:], (dy, dx)) > 0
    n = key.key_bits
    matched = int(np.sum(read[:n] == bits[:n]))
    pad = _bits(key.stream("message-pad", 64), key.message_bits)
    message = np.packbits(read[n:] ^ pad).tobytes()
    pv = binomial_tail(matched, n)
    mba = None
    if expect is not None:
        want = _codeword(key, expect)[n:]
        mba = float(np.mean(read[n:] == want)) if key.message_bits else 1.0
    return Detection(
        detected=pv <= fpr,
        p_value=pv,
        matched=matched,
        key_bits=n,
        bit_accuracy=matched / n,
        message_hex=message.hex(),
        message_text=_text(message),
        offset=(round(dy * DOWN) % TILE, round(dx * DOWN) % TILE),
        message_bit_accuracy=mba,
    )


def _text(message: bytes) -> str | None:
    """The message as text when it is printable UTF-8 (trailing zero bytes dropped)."""
    try:
        text = message.rstrip(b"\0").decode()
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None
