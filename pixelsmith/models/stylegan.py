"""StyleGAN2 for small images in plain PyTorch: a mapping network with a tracked W average,
modulated/demodulated convolutions, per-layer noise, toRGB skips, equalised learning rate, style
mixing regularisation, lazy R1, the truncation trick and style-mixing grids.

No custom ops and no fp16: 2x up- and downsampling are bilinear (antialiased going down), which
is StyleGAN2's [1, 3, 3, 1] filter away from the border. Path-length regularisation is left out,
and the model is unconditional. The generator draws at the next power of two >= the data's size
(at least 8) and centre-crops to it (28 -> 32 -> 28); the discriminator sees the data's size.

Reads top to bottom: config, sizes, layers, networks, the family (sampling options, presets,
train step, samplers); the losses are `pixelsmith.models.adversarial`'s, shared with the GAN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.adversarial import AdversarialLoss, adversarial_step, augmenter
from pixelsmith.models.base import (
    Abilities,
    Batch,
    Family,
    LatentSpec,
    Preset,
    SampleConfig,
    StepContext,
)
from pixelsmith.utils.rng import BatchRandom

NOISE_MODES = ("const", "random", "none")
MAX_SIZE = 1024
SQRT2 = math.sqrt(2.0)
Noise = str | list[torch.Tensor]


@dataclass
class StyleGANConfig:
    """Settings of the StyleGAN family."""

    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 4
    mapping_lrmul: float = 0.01
    w_avg_beta: float = 0.995
    # Widths at the output size; each halving of the size doubles them, up to max_channels.
    g_channels: int = 32
    d_channels: int = 32
    max_channels: int = 256
    mbstd_group: int = 4
    style_mixing: float = 0.9
    r1_gamma: float = 0.01
    r1_every: int = 16
    lr_g: float = 0.0025
    lr_d: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    diffaugment: str = ""
    # One grouped conv per modulated layer (StyleGAN2's fused form) instead of scaling the
    # activations before and after a shared conv; the same numbers, different speed.
    fused_modconv: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        for key in (
            "z_dim",
            "w_dim",
            "mapping_layers",
            "g_channels",
            "d_channels",
            "max_channels",
            "mbstd_group",
            "r1_every",
            "mapping_lrmul",
            "lr_g",
            "lr_d",
        ):
            v = getattr(self, key)
            require(v > 0, f"model.{key} must be positive, got {v}")
        require(
            0 <= self.w_avg_beta < 1, f"model.w_avg_beta must be in [0, 1), got {self.w_avg_beta}"
        )
        require(
            0 <= self.style_mixing <= 1,
            f"model.style_mixing is a probability in [0, 1], got {self.style_mixing}",
        )
        require(self.r1_gamma >= 0, f"model.r1_gamma must be >= 0, got {self.r1_gamma}")
        require(
            all(0 <= b < 1 for b in self.betas), f"model.betas must be in [0, 1), got {self.betas}"
        )
        if self.diffaugment:
            from pixelsmith.data.augment import parse_policy

            parse_policy(self.diffaugment)


def synthesis_size(height: int, width: int) -> int:
    """The square power-of-two size (>= 8) the generator draws at before centre-cropping."""
    if min(height, width) < 4 or max(height, width) > MAX_SIZE:
        raise UserError(
            f"image size {height}x{width} is not supported by StyleGAN: height and width must be "
            f"between 4 and {MAX_SIZE} pixels; resize with --set data.size=32"
        )
    return max(8, 1 << (max(height, width) - 1).bit_length())


# ---- layers: every weight is N(0, 1) and scaled at run time (equalised learning rate) -------


class EqualLinear(nn.Module):
    """Linear layer; weight and bias scaled at run time by lr_mul / sqrt(fan_in) and lr_mul."""

    def __init__(
        self, in_f: int, out_f: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_f, in_f) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_f,), bias_init / lr_mul))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(in_f), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


class EqualConv2d(nn.Module):
    """Same-padded convolution with runtime weight scale 1 / sqrt(fan_in), then lrelu * sqrt 2."""

    def __init__(self, in_c: int, out_c: int, k: int, bias: bool = True, act: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_c, in_c, k, k))
        self.bias = nn.Parameter(torch.zeros(out_c)) if bias else None
        self.scale, self.act = 1 / math.sqrt(in_c * k * k), act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.act else x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    fused: bool = False,
) -> torch.Tensor:
    """Convolve sample i with weight * styles[i] (per input channel), demodulated per output.

    x: (N, I, H, W); weight: (O, I, k, k) at its runtime scale; styles: (N, I). Demodulation
    divides each sample's output channel by the norm of its modulated filter.
    """
    n, _, h, w = x.shape
    pad = weight.shape[-1] // 2
    # |weight[o] * s|^2 = sum_i s_i^2 |weight[o, i]|^2: a small matmul, no (N, O, I, k, k) tensor
    d = (styles.square() @ weight.square().sum((2, 3)).t() + 1e-8).rsqrt() if demodulate else None
    if fused:
        wts = weight[None] * styles[:, None, :, None, None]
        if d is not None:
            wts = wts * d[:, :, None, None, None]
        x = x.reshape(1, -1, h, w)
        x = F.conv2d(x, wts.reshape(-1, *weight.shape[1:]), padding=pad, groups=n)
        return x.reshape(n, -1, h, w)
    x = F.conv2d(x * styles[:, :, None, None], weight, padding=pad)
    return x * d[:, :, None, None] if d is not None else x


class SynthesisLayer(nn.Module):
    """(2x bilinear upsampling,) modulated 3x3 conv, scaled noise, bias, lrelu * sqrt 2."""

    def __init__(self, in_c: int, out_c: int, w_dim: int, res: int, up: bool, fused: bool):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_c, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_c, in_c, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_c))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        # The fixed noise map used when sampling with noise="const" (saved with the weights).
        self.register_buffer("noise_const", torch.randn(1, 1, res, res))
        self.scale, self.res, self.up, self.fused = 1 / math.sqrt(in_c * 9), res, up, fused

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = modulated_conv2d(x, self.weight * self.scale, self.affine(w), fused=self.fused)
        if noise is not None:
            x = x + noise * self.noise_strength
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation, plus bias."""

    def __init__(self, in_c: int, out_c: int, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_c, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_c, in_c, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_c))
        self.scale = 1 / math.sqrt(in_c)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=False)
        return x + self.bias[None, :, None, None]


# ---- networks ------------------------------------------------------------------------------


class MappingNetwork(nn.Module):
    """z -> w: normalise z, then an MLP at lr_mul; tracks the average w in a buffer."""

    def __init__(self, cfg: StyleGANConfig):
        super().__init__()
        dims = [cfg.z_dim] + [cfg.w_dim] * cfg.mapping_layers
        self.net = nn.Sequential(
            *(
                EqualLinear(a, b, lr_mul=cfg.mapping_lrmul, act=True)
                for a, b in zip(dims, dims[1:], strict=False)
            )
        )
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))
        self.beta = cfg.w_avg_beta

    def forward(self, z: torch.Tensor, psi: float = 1.0, track: bool = False) -> torch.Tensor:
        w = self.net(z * (z.square().mean(1, keepdim=True) + 1e-8).rsqrt())
        if track:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.beta))
        return w if psi == 1 else self.w_avg.lerp(w, psi)


class SynthesisNetwork(nn.Module):
    """W+ codes -> image: learned 4x4 constant, two modulated convs per doubling, summed toRGBs."""

    def __init__(self, cfg: StyleGANConfig, channels: int, size: int):
        super().__init__()
        sizes = [2**i for i in range(2, int(math.log2(size)) + 1)]
        ch = {r: min(cfg.max_channels, cfg.g_channels * size // r) for r in sizes}
        fused, wd = cfg.fused_modconv, cfg.w_dim
        self.const = nn.Parameter(torch.randn(ch[4], 4, 4))
        self.layers = nn.ModuleList([SynthesisLayer(ch[4], ch[4], wd, 4, False, fused)])
        self.torgbs = nn.ModuleList([ToRGB(ch[4], channels, wd)])
        for r in sizes[1:]:
            self.layers.append(SynthesisLayer(ch[r // 2], ch[r], wd, r, True, fused))
            self.layers.append(SynthesisLayer(ch[r], ch[r], wd, r, False, fused))
            self.torgbs.append(ToRGB(ch[r], channels, wd))
        # Layer j reads ws[:, j]; toRGB b reads ws[:, 2b + 1], shared with the next block's first
        # conv, as in StyleGAN2.
        self.num_ws = len(self.layers) + 1
        self.noise_sizes = [layer.res for layer in self.layers]

    def forward(self, ws: torch.Tensor, noise: Noise = "const") -> torch.Tensor:
        def nz(j: int) -> torch.Tensor | None:
            if noise == "none":
                return None
            return self.layers[j].noise_const if noise == "const" else noise[j]

        x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        x = self.layers[0](x, ws[:, 0], nz(0))
        img = self.torgbs[0](x, ws[:, 1])
        for b in range(1, len(self.torgbs)):
            x = self.layers[2 * b - 1](x, ws[:, 2 * b - 1], nz(2 * b - 1))
            x = self.layers[2 * b](x, ws[:, 2 * b], nz(2 * b))
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            img = img + self.torgbs[b](x, ws[:, 2 * b + 1])
        return img


class Generator(nn.Module):
    """Mapping + synthesis, centre-cropped to the data's size; images in about [-1, 1]."""

    def __init__(self, cfg: StyleGANConfig, shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = shape
        size = synthesis_size(h, w)
        self.crop = ((size - h) // 2, (size - w) // 2, h, w)
        self.mapping = MappingNetwork(cfg)
        self.synthesis = SynthesisNetwork(cfg, c, size)
        self.num_ws = self.synthesis.num_ws

    def ws(self, z: torch.Tensor, psi: float = 1.0, track: bool = False) -> torch.Tensor:
        """z (N, z_dim) -> one w per layer, (N, num_ws, w_dim) (a broadcast view)."""
        w = self.mapping(z, psi, track)
        return w[:, None].expand(-1, self.num_ws, -1)

    def synthesize(self, ws: torch.Tensor, noise: Noise = "const") -> torch.Tensor:
        """W+ codes -> cropped images."""
        top, left, h, w = self.crop
        return self.synthesis(ws, noise)[:, :, top : top + h, left : left + w]

    def forward(self, z: torch.Tensor, psi: float = 1.0, noise: Noise = "const") -> torch.Tensor:
        return self.synthesize(self.ws(z, psi), noise)


def downsample(x: torch.Tensor) -> torch.Tensor:
    """Halve (rounding up) through StyleGAN2's [1, 3, 3, 1] / 8 filter, renormalised at borders."""
    size = ((x.shape[2] + 1) // 2, (x.shape[3] + 1) // 2)
    # antialiased resizing has no bfloat16 kernel on the CPU (train.precision=bf16)
    y = x if x.dtype in (torch.float32, torch.float64) else x.float()
    y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=True)
    return y.to(x.dtype)


def minibatch_std(x: torch.Tensor, group: int) -> torch.Tensor:
    """Append the mean standard deviation over groups of samples as one more channel."""
    n, c, h, w = x.shape
    g = next(k for k in range(min(group, n), 0, -1) if n % k == 0)
    y = x.reshape(g, -1, c, h, w)  # groups are strided: samples m, m + n/g, m + 2n/g, ...
    y = (y - y.mean(0)).square().mean(0).add(1e-8).sqrt().mean((1, 2, 3))
    return torch.cat([x, y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)], 1)


class DBlock(nn.Module):
    """Residual block: 3x3 conv, 2x2 average pool, 3x3 conv, plus a pooled 1x1 skip."""

    def __init__(self, in_c: int, out_c: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_c, in_c, 3)
        self.conv1 = EqualConv2d(in_c, out_c, 3)
        self.skip = EqualConv2d(in_c, out_c, 1, bias=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(downsample(x))
        return (self.conv1(downsample(self.conv0(x))) + y) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """Image in [-1, 1] at the data's size -> score: residual blocks down to < 8 pixels."""

    def __init__(self, cfg: StyleGANConfig, shape: tuple[int, int, int]):
        super().__init__()
        c, h, w = shape
        synthesis_size(h, w)  # the same size rule as the generator
        blocks, ch = [], cfg.d_channels
        while min(h, w) >= 8:
            nxt = min(cfg.max_channels, ch * 2)
            blocks.append(DBlock(ch, nxt))
            ch, h, w = nxt, (h + 1) // 2, (w + 1) // 2
        self.from_rgb = EqualConv2d(c, cfg.d_channels, 1)
        self.blocks = nn.Sequential(*blocks)
        self.group = cfg.mbstd_group
        self.conv = EqualConv2d(ch + 1, ch, 3)
        self.fc = EqualLinear(ch * h * w, ch, act=True)
        self.out = EqualLinear(ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(x))
        x = self.conv(minibatch_std(x, self.group))
        return self.out(self.fc(x.flatten(1))).squeeze(1)


# ---- the family ----------------------------------------------------------------------------


@dataclass
class StyleGANSampleConfig(SampleConfig):
    """Sampling options of the StyleGAN family."""

    # The truncation trick: pull each w toward the tracked average (1 = off, 0 = the mean-W
    # image; e.g. 0.7 trades variety for typical-looking images).
    truncation: float = 1.0
    # Per-layer noise: "const" (each layer's fixed map, as StyleGAN2's generate.py, so images
    # depend on the seed only through z), "random" (drawn from the seed) or "none".
    noise: str = "const"

    def check(self, model_cfg: StyleGANConfig) -> None:  # noqa: ARG002
        """Refuse a non-finite truncation or an unknown noise mode."""
        check_style(self.truncation, self.noise)


def check_style(truncation: float, noise: str = "const") -> None:
    """Raise UserError on a non-finite truncation or an unknown noise mode."""
    if not math.isfinite(truncation):
        raise UserError(f"sample.truncation must be a finite number (1 = off), got {truncation}")
    if noise not in NOISE_MODES:
        raise UserError(f"sample.noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")


PRESETS: dict[str, Preset] = {
    "stylegan": Preset(
        "the default StyleGAN2-style networks (G 1.4M, D 1.1M parameters at 28x28)",
        10.0,
        {"train": {"batch": 32}},
    ),
    # G 0.35M, D 0.28M parameters. Side by side (1 thread, batch 32): widths 32/32 up to 256 ran
    # at 0.4x this speed, and the fused (grouped-conv) modulated conv at 0.35-0.45x the default
    # form. What 30 minutes make: docs/results.md (bench/family_results.py).
    "stylegan-30min": Preset(
        "narrower networks for the most quality in 30 minutes on a CPU",
        30.0,
        {
            "model": {
                "z_dim": 64,
                "w_dim": 64,
                "mapping_layers": 2,
                "g_channels": 16,
                "d_channels": 16,
                "max_channels": 128,
            },
            "train": {"batch": 32},
        },
    ),
}


class StyleGAN(Family):
    """StyleGAN2-style GAN: style-based generator, residual discriminator, EMA generator."""

    name = "stylegan"
    Config = StyleGANConfig
    SampleConfig = StyleGANSampleConfig
    abilities = Abilities(style_mix=True, latent=True)
    presets = PRESETS
    ema_pairs = {"G": "G_ema"}
    generator_net = "G"
    latent_spaces = ("w+", "w", "z")
    max_size = MAX_SIZE

    def __init__(
        self, cfg: StyleGANConfig, image_shape: tuple[int, int, int], num_classes: int = 0
    ):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        self.networks = {
            "G": Generator(cfg, self.image_shape),
            "D": Discriminator(cfg, self.image_shape),
        }
        # D's minibatch standard deviation mixes a batch's samples: real and fake go in apart.
        self.objective = AdversarialLoss(
            "ns",
            augmenter(cfg.diffaugment),
            r1_gamma=cfg.r1_gamma,
            r1_every=cfg.r1_every,
            joint=False,
        )

    def configure_optimizers(self) -> None:
        """Adam for G and D; D's lr and betas adjusted for lazy R1 as in StyleGAN2."""
        c = self.cfg
        mb = c.r1_every / (c.r1_every + 1) if c.r1_gamma > 0 else 1.0
        self.optimizers = {
            "G": torch.optim.Adam(
                self.networks["G"].parameters(), c.lr_g, betas=c.betas, eps=1e-8, foreach=True
            ),
            "D": torch.optim.Adam(
                self.networks["D"].parameters(),
                c.lr_d * mb,
                betas=(c.betas[0] ** mb, c.betas[1] ** mb),
                eps=1e-8,
                foreach=True,
            ),
        }

    def _generate(self, n: int, y: torch.Tensor | None, rng: BatchRandom) -> torch.Tensor:  # noqa: ARG002
        """Fakes for training: style mixing with probability style_mixing, noise from rng."""
        G, c = self.networks["G"], self.cfg
        z, z2, u = rng.randn(n, c.z_dim), rng.randn(n, c.z_dim), rng.rand(n, 2)
        ws, ws2 = G.ws(z, track=True), G.ws(z2)
        # Layers from a cutoff in [1, num_ws) on take the second code.
        cutoff = 1 + (u[:, 1] * (G.num_ws - 1)).long()
        later = torch.arange(G.num_ws, device=z.device)[None] >= cutoff[:, None]
        mix = (u[:, :1] < c.style_mixing) & later
        ws = torch.where(mix[:, :, None], ws2, ws)
        noise = [rng.randn(n, 1, r, r) for r in G.synthesis.noise_sizes]
        return G.synthesize(ws, noise)

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One discriminator update (plus lazy R1), then one generator update on the same fakes."""
        nets = self.networks
        return adversarial_step(
            self.objective, nets["G"], nets["D"], self.optimizers, self._generate, batch, ctx
        )

    # ---- sampling -------------------------------------------------------------------------

    def _z(self, n: int, seed: int) -> torch.Tensor:
        return self.latent_prior(n, seed)

    def _render(self, ws: torch.Tensor, noise: str, seed: int = 0) -> torch.Tensor:
        """Images in [0, 1] from W+ codes, 256 at a time; noise="random" draws from `seed`."""
        # A stream of its own: seeding with seed + 1 would reuse the next seed's z as noise.
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + 999_983) % 2**63)
        out = []
        with self.inference("G") as G:
            for i in range(0, len(ws), 256):
                wi = ws[i : i + 256].to(self.device)
                nz: Noise = noise
                if noise == "random":
                    sizes = G.synthesis.noise_sizes
                    nz = [torch.randn(len(wi), 1, r, r, generator=g).to(self.device) for r in sizes]
                out.append(((G.synthesize(wi, nz) + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(out) if out else torch.empty(0, *self.image_shape)

    def draw(
        self, n: int, seed: int, opts: StyleGANSampleConfig, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """n images in [0, 1] from G_ema at the options' truncation and noise."""
        with self.inference("G") as G:
            ws = G.ws(self._z(n, seed).to(self.device), opts.truncation)
        return self._render(ws, opts.noise, seed)

    @torch.no_grad()
    def style_mix(
        self,
        row_seeds: Sequence[int],
        col_seeds: Sequence[int],
        options: StyleGANSampleConfig | None = None,
        crossover: int | None = None,
        **overrides: float | str,
    ) -> torch.Tensor:
        """The style-mixing grid as (R + 1) * (C + 1) images in [0, 1], row-major (nrow=C + 1).

        Cell (0, 0) is blank (white); row 0 holds the column sources and column 0 the row
        sources, the source of seed s being sample(1, seed=s). Cell (i, j) takes the styles of
        layers [0, crossover), the coarse ones, from row source i and the rest from column
        source j. crossover defaults to 4 (the 4x4 and 8x8 layers) or half the W's if fewer.
        Every image uses the options' truncation (keyword overrides as `sample` takes them) and
        each layer's constant noise.
        """
        truncation = self.sample_options(options, **overrides).truncation
        if not row_seeds or not col_seeds:
            raise UserError("a style-mixing grid needs at least one row seed and one column seed")
        with self.inference("G") as G:
            num = G.num_ws
            crossover = min(4, num // 2) if crossover is None else int(crossover)
            if not 0 <= crossover <= num:
                raise UserError(f"crossover must be between 0 and {num} (W's), got {crossover}")
            z = torch.cat([self._z(1, s) for s in [*row_seeds, *col_seeds]]).to(self.device)
            w = G.ws(z, truncation)
        rows, cols = w[: len(row_seeds)], w[len(row_seeds) :]
        coarse = (torch.arange(num, device=w.device) < crossover)[None, :, None]
        codes = [cols]
        for i in range(len(rows)):
            codes += [rows[i : i + 1], torch.where(coarse, rows[i : i + 1], cols)]
        images = self._render(torch.cat(codes), "const")
        return torch.cat([torch.ones(1, *images.shape[1:]), images])

    # ---- the latent spaces: W+ (one w per layer), W and the Gaussian z ----------------------

    def latent_spec(self, kind: str) -> LatentSpec:
        """W+ (num_ws, w_dim) codes that style-mix, W (w_dim,) and z (z_dim,); directions live
        in W. W is not Gaussian, so W and W+ codes move along straight lines."""
        if kind == "z":
            return LatentSpec("z", (self.cfg.z_dim,), "slerp")
        if kind == "w":
            return LatentSpec("w", (self.cfg.w_dim,), "lerp", directions="w")
        layers = self.networks["G"].num_ws
        return LatentSpec("w+", (layers, self.cfg.w_dim), "lerp", "w", True, "w")

    def _as_kind(self, w: torch.Tensor, kind: str) -> torch.Tensor:
        """W codes (N, w_dim) as codes of `kind` (W+: the same w on every layer)."""
        if kind != "w+":
            return w
        return w[:, None].expand(-1, self.networks["G"].num_ws, -1).clone()

    def latent_from_z(self, z: torch.Tensor, kind: str, truncation: float = 1.0) -> torch.Tensor:
        """z itself, or z through the inference generator's mapping at the truncation."""
        if kind == "z":
            return z
        return self._as_kind(self.inference_net().mapping(z, truncation), kind)

    def latent_mean(self, kind: str) -> torch.Tensor:
        """Zeros for z; the tracked average w for W and W+."""
        if kind == "z":
            return torch.zeros(1, self.cfg.z_dim, device=self.device)
        return self._as_kind(self.inference_net().mapping.w_avg[None].clone(), kind)

    def latent_render(
        self, codes: torch.Tensor, kind: str, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Images from z (through the mapping), W or W+ codes, with each layer's constant
        noise, as `sample` draws them; StyleGAN is unconditional, so `labels` are unused."""
        G = self.inference_net()
        if kind == "z":
            return (G(codes) + 1) / 2
        ws = codes[:, None].expand(-1, G.num_ws, -1) if kind == "w" else codes
        return (G.synthesize(ws, "const") + 1) / 2
