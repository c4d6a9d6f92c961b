"""Restoration: small paired image-to-image networks for super-resolution, blind denoising,
inpainting and low-light enhancement, trained on clean patches that `prepare_batch` degrades on
the fly with the step's seeded randomness (`pixelsmith.data.degrade`).

One family, four tasks (`model.task`):

- `sr`: `SRNet`, residual blocks at the low resolution and a pixel-shuffle tail, added to a
  bicubic upsampling of the input (it learns the missing detail only). Trained on the standard
  protocol: MATLAB-compatible bicubic down-scaling, quantised to 8 bits.
- `denoise`: `UNet` on the noisy image plus a noise-level map. The map holds the noise sigma the
  user gives, else `estimate_sigma`'s wavelet estimate of the whole image, so one model serves
  blind and non-blind use; it trains on both (the estimate for half the samples, the true sigma
  for the rest), so the network learns to live with the estimator's errors.
- `inpaint`: a classical harmonic fill of the holes (Laplace's equation, `pixelsmith.nn.fill`)
  refined by a `UNet` that sees the fill and the mask; known pixels are kept exactly. L1 alone
  learns the mean, a smooth blur in the holes; with `model.adversarial` (and `feature_match`) a
  patch discriminator judges the filled photos, as LaMa does, so the holes get texture, and
  `model.context` adds dilated residual blocks at the coarsest level for a wider view.
- `enhance`: a `UNet` on the dark photo plus two whole-image statistics as constant maps (mean
  and 95th percentile of luminance), which say how under-exposed the photo is.

Every input a network sees beyond the pixels (noise level, the fill, the statistics) is computed
from the whole image before the network runs, so a tiled run (`pixelsmith.nn.tiles`) matches
an untiled one: the networks themselves are local, whose receptive-field radius is `Restore.margin`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from pixelsmith.data import degrade
from pixelsmith.errors import UserError
from pixelsmith.models.base import Abilities, Batch, Family, Preset, SampleConfig, StepContext
from pixelsmith.nn.fill import harmonic_fill
from pixelsmith.nn.tiles import run_tiled
from pixelsmith.utils.colour import luma
from pixelsmith.utils.rng import BatchRandom

TASKS = ("sr", "denoise", "inpaint", "enhance")


@dataclass
class RestoreConfig:
    """Settings of a restoration model."""

    task: str = "denoise"
    scale: int = 2  # sr only
    width: int = 32
    blocks: int = 2  # residual blocks per stage (sr: in all)
    levels: int = 2  # UNet downsamplings (denoise, inpaint, enhance)
    # denoise: training noise sigma range on the 0-255 scale
    sigma: tuple[float, ...] = (0.0, 50.0)
    # inpaint: training hole fraction range
    coverage: tuple[float, ...] = (0.05, 0.5)
    # inpaint: the dilations of extra residual blocks at the U-Net's coarsest level (each starts
    # as the identity, so `--init` from a model without them starts from that model's output)
    context: tuple[int, ...] = ()
    # inpaint: weights of the patch discriminator's non-saturating loss and of its feature
    # matching (LaMa's perceptual term, in the only features that exist offline: D's own)
    adversarial: float = 0.0
    feature_match: float = 0.0
    lr: float = 5e-4
    d_lr: float | None = None  # the discriminator's learning rate (unset: lr)

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UserError(f"model.task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task == "sr" and self.scale not in (2, 3, 4):
            raise UserError(f"model.scale must be 2, 3 or 4, got {self.scale}")
        for key in ("width", "blocks"):
            if getattr(self, key) < 1:
                raise UserError(f"model.{key} must be at least 1, got {getattr(self, key)}")
        if not 0 <= self.levels <= 4:
            raise UserError(f"model.levels must be 0 to 4, got {self.levels}")
        if len(self.sigma) != 2 or not 0 <= self.sigma[0] <= self.sigma[1] <= 255:
            raise UserError(f"model.sigma must be LOW,HIGH within 0-255, got {self.sigma}")
        if len(self.coverage) != 2 or not 0 < self.coverage[0] < self.coverage[1] < 1:
            raise UserError(f"model.coverage must be LOW,HIGH within (0, 1), got {self.coverage}")
        if self.d_lr is not None and self.d_lr <= 0:
            raise UserError(f"model.d_lr must be above 0 (or unset), got {self.d_lr}")
        if any(d < 1 for d in self.context):
            raise UserError(f"model.context holds dilations of at least 1, got {self.context}")
        for key in ("adversarial", "feature_match"):
            if getattr(self, key) < 0:
                raise UserError(f"model.{key} must be at least 0, got {getattr(self, key)}")
        if self.task != "inpaint" and (self.context or self.textured):
            raise UserError(
                "model.context, model.adversarial and model.feature_match are for "
                f"model.task=inpaint, not {self.task}"
            )

    @property
    def textured(self) -> bool:
        """Whether a discriminator trains beside the network."""
        return self.adversarial > 0 or self.feature_match > 0


class ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (dilated convolutions where asked; `identity`
    zeroes the second so the block starts as the identity)."""

    def __init__(self, width: int, dilation: int = 1, identity: bool = False):
        super().__init__()
        self.a = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.b = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        if identity:
            nn.init.zeros_(self.b.weight)
            nn.init.zeros_(self.b.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.relu(self.a(x)))


class SRNet(nn.Module):
    """Low-resolution residual trunk, pixel-shuffle upsampling, plus bicubic upsampling."""

    def __init__(self, channels: int, width: int, blocks: int, scale: int):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.fuse = nn.Conv2d(width, width, 3, padding=1)
        self.tail = nn.Conv2d(width, channels * scale * scale, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor) -> Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        f = self.head(x)
        f = f + self.fuse(self.body(f))
        return base + F.pixel_shuffle(self.tail(f), self.scale)


class UNet(nn.Module):
    """A small U-Net: residual stages, strided-conv downsampling, pixel-shuffle upsampling,
    skips by addition; predicts a residual over the first `out` input channels."""

    def __init__(
        self,
        cin: int,
        out: int,
        width: int,
        blocks: int,
        levels: int,
        context: tuple[int, ...] = (),
    ):
        super().__init__()
        self.out = out
        w = [width * 2**i for i in range(levels + 1)]
        self.head = nn.Conv2d(cin, w[0], 3, padding=1)
        self.enc = nn.ModuleList(
            nn.Sequential(*[ResBlock(w[i]) for _ in range(blocks)]) for i in range(levels)
        )
        self.down = nn.ModuleList(nn.Conv2d(w[i], w[i + 1], 2, stride=2) for i in range(levels))
        self.mid = nn.Sequential(*[ResBlock(w[-1]) for _ in range(blocks)])
        # Empty without context blocks: no tensors, so older checkpoints keep their keys.
        self.context = nn.Sequential(*[ResBlock(w[-1], d, identity=True) for d in context])
        self.up = nn.ModuleList(nn.Conv2d(w[i + 1], 4 * w[i], 1) for i in range(levels))
        self.dec = nn.ModuleList(
            nn.Sequential(*[ResBlock(w[i]) for _ in range(blocks)]) for i in range(levels)
        )
        self.tail = nn.Conv2d(w[0], out, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2 ** len(self.down)

    def forward(self, x: Tensor) -> Tensor:
        f = self.head(x)
        skips = []
        for enc, down in zip(self.enc, self.down, strict=True):
            f = enc(f)
            skips.append(f)
            f = down(f)
        f = self.context(self.mid(f))
        for i in reversed(range(len(self.up))):
            f = F.pixel_shuffle(self.up[i](f), 2) + skips[i]
            f = self.dec[i](f)
        return x[:, : self.out] + self.tail(f)


class PatchD(nn.Module):
    """A spectral-normalised patch discriminator (pix2pix / LaMa style) on an image in [0, 1]
    and its hole mask: a logit per 8x8 cell, and the hidden activations for feature matching."""

    def __init__(self, cin: int, width: int = 32):
        super().__init__()
        w = [cin, width, 2 * width, 4 * width]
        self.convs = nn.ModuleList(
            spectral_norm(nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1)) for i in range(3)
        )
        self.out = spectral_norm(nn.Conv2d(w[-1], 1, 3, padding=1))

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        f, feats = torch.cat([x * 2 - 1, mask], 1), []
        for conv in self.convs:
            f = F.leaky_relu(conv(f), 0.2)
            feats.append(f)
        return self.out(f), feats


luminance = luma  # (N, 1, H, W) BT.601 luma of grey or RGB images


def estimate_sigma(x: Tensor) -> Tensor:
    """Per-image Gaussian noise sigma (0-1 scale) from the finest Haar diagonal band's median
    absolute value / 0.6745 (Donoho's estimator), averaged over channels: (N,)."""
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if not h or not w:  # a 1-pixel strip has no 2x2 block to estimate from
        return x.new_zeros(x.shape[0])
    v = x[..., :h, :w]
    hh = (v[..., 0::2, 0::2] - v[..., 0::2, 1::2] - v[..., 1::2, 0::2] + v[..., 1::2, 1::2]) / 2
    return (hh.flatten(2).abs().median(dim=2).values / 0.6745).mean(1)


def _quantile(y: Tensor, q: float) -> Tensor:
    """torch.quantile's linear interpolation along dim 1, for any size (torch.quantile refuses
    more than 2**24 values: a 17-megapixel photo)."""
    pos = q * (y.shape[1] - 1)
    lo, hi = int(pos), min(int(pos) + 1, y.shape[1] - 1)
    a = y.kthvalue(lo + 1, dim=1).values
    b = y.kthvalue(hi + 1, dim=1).values if hi != lo else a
    return a + (b - a) * (pos - lo)


def exposure_stats(x: Tensor) -> Tensor:
    """(N, 2) mean and 95th percentile of each image's luminance."""
    y = luminance(x).flatten(1)
    return torch.stack([y.mean(1), _quantile(y, 0.95)], 1)


def _weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """The mean of values under weights of the same shape (0 when the weights are all 0)."""
    return (values * weights).sum() / weights.sum().clamp(min=1e-6)


def _const_maps(values: Tensor, like: Tensor) -> Tensor:
    """(N, K) values as K constant (N, K, H, W) maps the size of `like`."""
    n, _, h, w = like.shape
    return values.to(like.dtype).view(n, -1, 1, 1).expand(n, values.shape[1], h, w)


@dataclass
class RestoreSampleConfig(SampleConfig):
    """Restoration models draw nothing, so they have no sampling options."""


def _preset(
    about: str,
    minutes: float,
    model: dict,
    size: int,
    channels: int = 3,
    patches: int | None = None,
    rot90_p: float = 0.0,
    schedule: dict | None = None,
) -> Preset:
    """A restoration preset: photo patches of `size` in batches of 16, flips (and quarter turns,
    more patches, a learning-rate schedule where given)."""
    augment = {"flip_p": 0.5, **({"rot90_p": rot90_p} if rot90_p else {})}
    data = {"source": "photos", "size": size, "channels": channels, "augment": augment}
    if patches is not None:
        data["patches"] = patches
    train = {
        "batch": 16,
        "ema_kimg": 2.0,
        "sample_every": 2000,
        "checkpoint_every": 1000,
        "channels_last": False,  # 2.3x slower on these small convolutions on CPU
        **(schedule or {}),
    }
    return Preset(about, minutes, {"model": model, "data": data, "train": train})


# The shipped models (`pixelsmith zoo list`) are these presets' runs; widths and depths were
# picked for CPU speed. The U-Nets start at 16 channels: at 32 a denoising step of 16 patches
# of 64x64 costs about 1 s on 2 cores (most of it in the full-resolution stage), 3x the cost.
PRESETS: dict[str, Preset] = {
    "restore": _preset(
        "blind Gaussian denoising, sigma 0-50, colour (the family's default)",
        20.0,
        {"task": "denoise", "width": 16, "blocks": 2, "levels": 3},
        64,
    ),
    "denoise-grey": _preset(
        "blind Gaussian denoising, sigma 0-50, grey",
        20.0,
        {"task": "denoise", "width": 16, "blocks": 2, "levels": 3},
        64,
        channels=1,
    ),
    # zoo:sr-x2 (10,000 steps): three times the patches, the 8 exact symmetries of a square and
    # a cosine decay from 1e-3 gained 0.25 dB PSNR-Y on both hold-outs over 6,000 steps of
    # 8,000 patches, flips and a constant 5e-4 (docs/editing.md).
    "sr-x2": _preset(
        "super-resolution x2 (bicubic-degraded photos)",
        20.0,
        {"task": "sr", "scale": 2, "width": 32, "blocks": 6, "lr": 1e-3},
        96,
        patches=24_000,
        rot90_p=0.75,
        schedule={"lr_schedule": "cosine", "warmup": 0.02},
    ),
    "sr-x4": _preset(
        "super-resolution x4 (bicubic-degraded photos)",
        20.0,
        {"task": "sr", "scale": 4, "width": 32, "blocks": 6},
        128,
    ),
    "inpaint": _preset(
        "inpainting refinement over a harmonic fill (free-form and box holes, 5-50%)",
        20.0,
        {"task": "inpaint", "width": 16, "blocks": 2, "levels": 3},
        64,
    ),
    # zoo:inpaint-texture is zoo:inpaint fine-tuned (`--init zoo:inpaint --steps 1500`) with two
    # dilated blocks and the patch discriminator's losses. Adversarial 0.5 keeps more of the
    # art hold-out's PSNR than 1.0 (-0.12 dB against -0.19; docs/editing.md).
    "inpaint-texture": _preset(
        "textured inpainting: the refinement with a wider view and adversarial losses",
        20.0,
        {
            "task": "inpaint",
            "width": 16,
            "blocks": 2,
            "levels": 3,
            "context": (2, 4),
            "adversarial": 0.5,
            "feature_match": 5.0,
            "lr": 2e-4,
            "d_lr": 1e-3,
        },
        64,
    ),
    "enhance": _preset(
        "low-light / exposure correction of dark, noisy photos",
        15.0,
        {"task": "enhance", "width": 16, "blocks": 2, "levels": 2},
        64,
    ),
}


class Restore(Family):
    """Super-resolution, denoising, inpainting or low-light enhancement (see the module doc)."""

    name: ClassVar[str] = "restore"
    Config = RestoreConfig
    SampleConfig = RestoreSampleConfig
    abilities = Abilities(generates=False, restores=True)
    ema_pairs = {"net": "net_ema"}
    max_size = 256
    presets: ClassVar[dict[str, Preset]] = PRESETS

    def __init__(self, cfg: RestoreConfig, image_shape: tuple[int, int, int], num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        c = self.image_shape[0]
        if c not in (1, 3):
            raise UserError(f"restoration models take grey or RGB images, got {c} channels")
        if cfg.task == "sr":
            net: nn.Module = SRNet(c, cfg.width, cfg.blocks, cfg.scale)
        else:
            cond = {"denoise": 1, "inpaint": 1, "enhance": 2}[cfg.task]
            net = UNet(c + cond, c, cfg.width, cfg.blocks, cfg.levels, tuple(cfg.context))
        self.networks = {"net": net}
        if cfg.textured:
            self.networks["disc"] = PatchD(c + 1)
        k = cfg.scale if cfg.task == "sr" else 2**cfg.levels
        if self.image_shape[1] % k or self.image_shape[2] % k:
            raise UserError(
                f"a {cfg.task} model trains on patches whose sides are multiples of {k}; got "
                f"{self.image_shape[2]}x{self.image_shape[1]}: set data.size, e.g. data.size=64"
            )

    @classmethod
    def upgrade(cls, model_settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The first shipped models' configs hold an unused `extra` mapping: dropped."""
        return {k: v for k, v in model_settings.items() if k != "extra"}, {}

    # ---- degradation and conditioning ------------------------------------------------------

    @property
    def multiple(self) -> int:
        """Input sides the network needs to be a multiple of (1 for SR)."""
        net = self.networks["net"]
        return net.multiple if isinstance(net, UNet) else 1

    def prepare_batch(self, batch: Batch, rng: BatchRandom) -> Batch:
        """Degrade clean patches as the task trains (seeded by the step's stream)."""
        x, t, n = batch.images, self.cfg.task, batch.images.shape[0]
        if t == "sr":
            return Batch(x, batch.labels, inputs=degrade.bicubic_down(x, self.cfg.scale))
        if t == "denoise":
            noisy, _ = degrade.GaussianNoise(tuple(self.cfg.sigma))(x, rng)
            return Batch(x, batch.labels, inputs=noisy)
        if t == "inpaint":
            h, w = x.shape[-2:]
            cover = tuple(self.cfg.coverage)
            mask = degrade.masks_with_coverage(n, h, w, rng, coverage=cover, strict=False)
            return Batch(x, batch.labels, inputs=x * (1 - mask), mask=mask)
        return Batch(x, batch.labels, inputs=degrade.LowLight()(x, rng))

    def network_input(
        self, x: Tensor, mask: Tensor | None = None, sigma: Tensor | float | None = None
    ) -> Tensor:
        """The network's whole input for degraded images x: pixels plus whole-image conditions.

        Everything here looks at the whole image, so tiles of its result can go through the
        network separately (see the module doc).
        """
        t = self.cfg.task
        if t == "sr":
            return x
        if t == "denoise":
            if sigma is None:
                s = estimate_sigma(x)
            else:
                s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).flatten()
                s = s.expand(x.shape[0]) / 255
            return torch.cat([x, _const_maps(s[:, None], x)], 1)
        if t == "inpaint":
            if mask is None:
                raise UserError("inpainting needs a mask (white = the pixels to fill)")
            return torch.cat([harmonic_fill(x, mask), mask], 1)
        return torch.cat([x, _const_maps(exposure_stats(x), x)], 1)

    def finish(self, out: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """The network output made final: clamped, known pixels kept (inpainting)."""
        out = out.clamp(0, 1)
        if mask is not None and self.cfg.task == "inpaint":
            out = torch.where(mask > 0.5, out, x)
        return out

    # ---- training --------------------------------------------------------------------------

    def configure_optimizers(self) -> None:
        net = self.networks["net"]
        self.optimizers = {"net": torch.optim.Adam(net.parameters(), self.cfg.lr)}
        if self.cfg.textured:
            disc = self.networks["disc"].parameters()
            lr = self.cfg.d_lr or self.cfg.lr
            self.optimizers["disc"] = torch.optim.Adam(disc, lr, betas=(0.5, 0.999))

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        assert batch.inputs is not None
        x, clean, net = batch.inputs, batch.images, self.networks["net"]
        sigma = None
        if self.cfg.task == "denoise":  # the first half of the global batch: the true sigma
            true = (x - clean).flatten(1).std(1) * 255
            n, rng = x.shape[0], ctx.rng
            half = rng.rank * n + torch.arange(n, device=x.device) < n * rng.world // 2
            sigma = torch.where(half, true, estimate_sigma(x) * 255)
        inp = self.network_input(x, batch.mask, sigma)
        out = net(inp)
        if batch.mask is not None:  # the known pixels are copied back: learn the holes
            loss = ((out - clean).abs() * batch.mask).sum() / batch.mask.sum().clamp(min=1)
            loss = loss / clean.shape[1]
        else:
            loss = F.l1_loss(out, clean)
        stats = {"l1": loss.item()}
        if self.cfg.textured and batch.mask is not None:
            loss = loss + self._textured_losses(out, clean, batch.mask, ctx, stats)
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ctx.sync(net)
        opt.step()
        return stats

    def _textured_losses(
        self, out: Tensor, clean: Tensor, mask: Tensor, ctx: StepContext, stats: dict
    ) -> Tensor:
        """One discriminator update on the filled photos, then the network's adversarial and
        feature-matching terms through the frozen discriminator.

        As in LaMa, a cell of the discriminator's map counts as fake in proportion to the hole
        it covers: the known pixels are the real photo's, and calling them fake would teach D
        nothing but the mask.
        """
        disc, cfg = self.networks["disc"], self.cfg
        filled = torch.where(mask > 0.5, out, clean)
        real_logit, _ = disc(clean, mask)
        fake_logit, _ = disc(filled.detach(), mask)
        cells = F.adaptive_avg_pool2d(mask, fake_logit.shape[-2:])
        d_loss = F.softplus(-real_logit).mean() + _weighted_mean(F.softplus(fake_logit), cells)
        opt = self.optimizers["disc"]
        opt.zero_grad(set_to_none=True)
        d_loss.backward()
        ctx.sync(disc)
        opt.step()
        with ctx.freeze(disc):
            logit, feats = disc(filled, mask)
            with torch.no_grad():  # the real photo's features under the same, updated D
                _, real_feats = disc(clean, mask)
        adv = _weighted_mean(F.softplus(-logit), cells)
        fm = sum((f - r).abs().mean() for f, r in zip(feats, real_feats, strict=True)) / len(feats)
        stats.update(d=d_loss.item(), adv=adv.item(), fm=fm.item())
        return cfg.adversarial * adv + cfg.feature_match * fm

    # ---- use -------------------------------------------------------------------------------

    @torch.no_grad()
    def restore(
        self,
        images: Tensor,
        mask: Tensor | None = None,
        sigma: Tensor | float | None = None,
        tile: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Tensor:
        """Degraded (N, C, H, W) images restored; `tile` (input pixels) bounds the memory of
        large images and gives the same result (pixelsmith.nn.tiles)."""
        x, m, inp = self._padded_input(images, mask, sigma)
        h, w = x.shape[-2:]
        s = self.out_scale
        with self.inference("net") as net:
            # NHWC runs these networks 1.4-1.6x faster on photos (bench latency --size 512,
            # docs/deploy.md), though 2.3x slower to train on small patches: a copy, so the
            # network the engine trains and averages keeps its layout.
            fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
            inp = inp.contiguous(memory_format=torch.channels_last)
            big = max(inp.shape[-2:])
            out = run_tiled(
                fast, inp, tile or big, self.margin, self.multiple, s, progress=progress
            )
        return self.finish(out[..., : h * s, : w * s].contiguous(), x, m).cpu()

    def _padded_input(
        self, images: Tensor, mask: Tensor | None, sigma: Tensor | float | None
    ) -> tuple[Tensor, Tensor | None, Tensor]:
        """The images and mask on the device, and the network's input padded (replicate) to a
        multiple of the network's stride."""
        x = images.to(self.device).float()
        m = None if mask is None else mask.to(self.device).float()
        inp = self.network_input(x, m, sigma)
        k = self.multiple
        ph, pw = (-x.shape[-2]) % k, (-x.shape[-1]) % k
        if ph or pw:
            inp = F.pad(inp, (0, pw, 0, ph), mode="replicate")
        return x, m, inp

    def restore_differentiable(
        self, images: Tensor, mask: Tensor | None = None, sigma: Tensor | float | None = None
    ) -> Tensor:
        """`restore` in one untiled pass whose result carries gradients back to `images` (and
        to a `sigma` tensor), on the model's device. Take them with `torch.autograd.grad` on the
        images, so the weights' `.grad` stays untouched.

        Every whole-image condition is computed from the current images inside the graph, as
        torch differentiates it: the harmonic fill (linear in the known pixels), the blind noise
        estimate (a median) and the exposure statistics (a mean and a quantile). The median and
        the quantile pass their gradient to the one value they pick (torch's subgradient), so
        through them the gradient is that of a constant almost everywhere; a caller wanting
        more passes its own differentiable `sigma` (pixelsmith.robust.editors does).
        """
        x, m, inp = self._padded_input(images, mask, sigma)
        h, w = x.shape[-2:]
        with self.inference("net") as net:
            out = net(inp)
        s = self.out_scale
        return self.finish(out[..., : h * s, : w * s], x, m)

    @property
    def margin(self) -> int:
        """The network's receptive-field radius in input pixels (a bound; tests measure it)."""
        c = self.cfg
        if c.task == "sr":
            return 3 + 2 * c.blocks + 2  # the convolutions, and bicubic's two taps
        steps = sum(2**i for i in range(c.levels))
        coarse = 2 * c.blocks + 2 * sum(c.context)  # 3x3 convolutions at the coarsest level
        return 2 + (4 * c.blocks + 2) * steps + coarse * 2**c.levels

    @property
    def out_scale(self) -> int:
        """Output side / input side."""
        return self.cfg.scale if self.cfg.task == "sr" else 1

    def draw(self, n: int, seed: int, opts: SampleConfig, labels: Tensor | None) -> Tensor:
        raise UserError(
            "a restoration model draws no images; use `pixelsmith edit` on your own images"
        )
