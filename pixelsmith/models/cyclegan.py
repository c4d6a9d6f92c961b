"""CycleGAN (Zhu et al. 2017): unpaired translation between two domains A and B.

Two ResNet generators (A->B, B->A) and two PatchGAN discriminators, trained with the LSGAN loss,
a cycle-consistency loss (L1, weight 10) and an identity loss (L1, 0.5 x the cycle weight); the
discriminators see fakes through a history pool of 50 images per domain.

Data: any labelled data with exactly two classes, class 0 = domain A and class 1 = domain B, in
balanced batches (`data.domains` and `data.balance` in the training config, which this family's
defaults set). Each step splits its batch by label into equal A and B halves.

Sampling: a CycleGAN translates images; it does not draw them from noise. To still give the
engine fixed-seed grids, the model keeps a small bank of real training images per domain (the
first ones it sees) and `sample(n, seed)` returns [source, translation] pairs drawn from it.
`translate()` is the real entry point; `pixelsmith.metrics.family.translation_scores` measures it.

Instance normalisation divides by each feature map's spread, so on a flat (single-colour) image
it amplifies rounding noise: translations of blank images differ between CPUs (AVX2 vs AVX-512
kernels) by up to 0.25, where images with any texture agree to 1e-6.

The pools and the bank are buffers of the `memory` network, so checkpoints hold them and resume
is exact. Under torchrun each process keeps its own (they see different fakes); a checkpoint
holds rank 0's, which every process takes back on resume, so a multi-process resume is exact
for the weights and optimisers but not for the other ranks' pools.

Reads top to bottom: config, shape rule, networks, losses and image pool, the family.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import Abilities, Batch, Family, Preset, SampleConfig, StepContext
from pixelsmith.utils.rng import BatchRandom

DIRECTIONS = ("a2b", "b2a")


@dataclass
class CycleGANConfig:
    """Settings of the CycleGAN family."""

    # Generator: c7s1-k, d2k, d4k, `g_blocks` x R4k, u2k, uk, c7s1-C (k = g_channels).
    g_channels: int = 32
    g_blocks: int = 6
    # PatchGAN: `d_layers` stride-2 4x4 convs from d_channels wide, then two stride-1 ones;
    # 3 layers is the 70x70 PatchGAN, 2 gives 34x34 patches (for 28-32 pixel images).
    d_channels: int = 32
    d_layers: int = 2
    cycle_weight: float = 10.0
    # Identity loss weight as a fraction of cycle_weight (0 turns it off).
    identity_weight: float = 0.5
    pool_size: int = 50
    # Real images kept per domain for `sample()`.
    bank: int = 16
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        for key in ("g_channels", "d_channels", "d_layers", "bank", "lr"):
            v = getattr(self, key)
            require(v > 0, f"model.{key} must be positive, got {v}")
        for key in ("g_blocks", "pool_size", "cycle_weight", "identity_weight"):
            v = getattr(self, key)
            require(v >= 0, f"model.{key} must be >= 0, got {v}")


def check_size(shape: tuple[int, int, int], d_layers: int) -> None:
    """Refuse image sizes the generator (two 2x downsamplings) or the PatchGAN cannot take."""
    _, h, w = shape
    if h % 4 or w % 4 or min(h, w) < 8:
        raise UserError(
            f"image size {h}x{w} is not supported by the CycleGAN: height and width must be "
            "multiples of 4 and at least 8 (e.g. 28, 32, 64); resize with --set data.size=32"
        )
    if min(h, w) < 3 * 2**d_layers:
        raise UserError(
            f"model.d_layers={d_layers} needs images of at least {3 * 2**d_layers} pixels a side, "
            f"not {h}x{w}; lower model.d_layers"
        )


# ---- networks ------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """x + (pad, conv3, IN, ReLU, pad, conv3, IN)(x)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            nn.InstanceNorm2d(ch),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3, bias=False),
            nn.InstanceNorm2d(ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Image in [-1, 1] -> image in [-1, 1]: the ResNet generator of Johnson et al. / CycleGAN."""

    def __init__(self, channels: int, k: int, blocks: int):
        super().__init__()

        def norm_relu(ch: int) -> list[nn.Module]:
            return [nn.InstanceNorm2d(ch), nn.ReLU(True)]

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, k, 7, bias=False),
            *norm_relu(k),
        ]
        for m in (1, 2):
            layers += [nn.Conv2d(k * m, k * m * 2, 3, 2, 1, bias=False), *norm_relu(k * m * 2)]
        layers += [ResBlock(4 * k) for _ in range(blocks)]
        for m in (4, 2):
            up = nn.ConvTranspose2d(k * m, k * m // 2, 3, 2, 1, output_padding=1, bias=False)
            layers += [up, *norm_relu(k * m // 2)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(k, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """Image in [-1, 1] -> a map of real/fake scores, one per overlapping patch."""

    def __init__(self, channels: int, d: int, n_layers: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, d, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = d
        for i in range(1, n_layers + 1):
            out = d * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(ch, out, 4, stride, 1, bias=False),
                nn.InstanceNorm2d(out),
                nn.LeakyReLU(0.2, True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        _init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Memory(nn.Module):
    """Training state kept beside the weights (so checkpoints hold it): the discriminators'
    image pools and the bank of real images that `sample()` translates. No parameters."""

    def __init__(self, shape: tuple[int, int, int], pool_size: int, bank: int):
        super().__init__()
        for d in "ab":
            self.register_buffer(f"pool_{d}", torch.zeros(pool_size, *shape))
            self.register_buffer(f"bank_{d}", torch.zeros(bank, *shape))
        self.register_buffer("pool_n", torch.zeros(2, dtype=torch.long))
        self.register_buffer("bank_n", torch.zeros(2, dtype=torch.long))


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ---- losses and the image pool -------------------------------------------------------------


def lsgan(scores: Tensor, real: bool) -> Tensor:
    """Least-squares GAN loss: mean (D(x) - 1)^2 for real targets, mean D(x)^2 for fake ones."""
    return (scores - (1.0 if real else 0.0)).square().mean()


@torch.no_grad()
def query_pool(pool: Tensor, count: Tensor, fakes: Tensor, rng: BatchRandom) -> Tensor:
    """The image history of Shrivastava et al. 2017 as CycleGAN uses it.

    While the pool fills, each fake goes in and is returned; once full, each fake is returned
    with probability 1/2, else a random stored fake is returned and replaced by it. `count` (a
    one-element long tensor) is the fill level, updated in place.
    """
    size, n = pool.shape[0], fakes.shape[0]
    if size == 0:
        return fakes
    coin, slot = rng.rand(n).tolist(), rng.randint(size, n).tolist()  # drawn whatever the fill
    out = fakes.clone()
    for i in range(n):
        filled = int(count)
        if filled < size:
            pool[filled] = fakes[i]
            count += 1
        elif coin[i] < 0.5:
            out[i] = pool[slot[i]]
            pool[slot[i]] = fakes[i]
    return out


# ---- the family ----------------------------------------------------------------------------


@dataclass
class CycleGANSampleConfig(SampleConfig):
    """What `sample` shows: translations of banked training images."""

    # Which way each [source, translation] pair goes: a2b, b2a, or both (alternating).
    direction: str = "both"

    def check(self, model_cfg: CycleGANConfig) -> None:  # noqa: ARG002
        """Refuse an unknown direction."""
        require(
            self.direction in (*DIRECTIONS, "both"),
            f"sample.direction must be a2b, b2a or both, got {self.direction!r}",
        )


# Both presets need two balanced domains: the default pair of a named source (Fashion-MNIST:
# sneakers <-> ankle boots), a two-class source as it is, or data.domains=A:B.
_DATA = {"domains": "auto", "balance": True}
PRESETS: dict[str, Preset] = {
    "cyclegan": Preset(
        "the original's ResNet generators at half width (32 channels, 6 blocks), 34x34 PatchGAN",
        10.0,
        {"data": _DATA, "train": {"batch": 8, "eval_at_end": False}},
    ),
    # Measured on Fashion-MNIST sneakers <-> ankle boots, 1 thread on a shared 2-core machine
    # (load ~4), 1.5-minute trials: batch 8 with k=16 and 4 or 6 blocks ~17-29 img/s (block
    # count lost in the noise), batch 16 ~32-36, k=24 / 3 blocks ~21-25, k=32 / 6 blocks ~9-10.
    # What 30 minutes make: docs/results.md (bench/family_results.py).
    "cyclegan-30min": Preset(
        "narrower generators (16 channels), for 30 minutes on a CPU",
        30.0,
        {
            "model": {"g_channels": 16, "g_blocks": 6, "d_channels": 32, "d_layers": 2},
            "data": _DATA,
            "train": {"batch": 8, "eval_at_end": False},
        },
    ),
}


class CycleGAN(Family):
    """Two generators and two PatchGAN discriminators, trained on balanced A/B batches."""

    name = "cyclegan"
    Config = CycleGANConfig
    SampleConfig = CycleGANSampleConfig
    # Sample grids are [source, translation] pairs, not draws, so FID of samples means nothing.
    abilities = Abilities(generates=False, translates=True)
    presets = PRESETS
    ema_pairs = {"G_AB": "G_AB_ema", "G_BA": "G_BA_ema"}
    max_size = 512
    REQUIRED_DATA = {"balance": (True, "every batch must hold as many A as B images")}

    def __init__(
        self, cfg: CycleGANConfig, image_shape: tuple[int, int, int], num_classes: int = 0
    ):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        if num_classes != 2:
            raise UserError(
                f"cyclegan translates between two domains, but the data has {num_classes} "
                "classes; set data.domains=A:B (e.g. sneaker:ankle-boot or 7:9), or use a folder "
                "with trainA/ and trainB/ (or two class sub-folders)"
            )
        check_size(self.image_shape, cfg.d_layers)
        c = self.image_shape[0]
        self.networks = {
            "G_AB": Generator(c, cfg.g_channels, cfg.g_blocks),
            "G_BA": Generator(c, cfg.g_channels, cfg.g_blocks),
            "D_A": PatchDiscriminator(c, cfg.d_channels, cfg.d_layers),
            "D_B": PatchDiscriminator(c, cfg.d_channels, cfg.d_layers),
            "memory": Memory(self.image_shape, cfg.pool_size, cfg.bank),
        }

    def configure_optimizers(self) -> None:
        """One Adam for both generators, one for both discriminators (as the original)."""
        c, nets = self.cfg, self.networks

        def adam(*names: str) -> torch.optim.Optimizer:
            params = itertools.chain(*(nets[k].parameters() for k in names))
            return torch.optim.Adam(params, c.lr, betas=c.betas, foreach=True)

        self.optimizers = {"G": adam("G_AB", "G_BA"), "D": adam("D_A", "D_B")}

    # ---- training -----------------------------------------------------------------------

    def split(self, real: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """A batch's domain-A and domain-B images, which must be equally many."""
        if labels is None:
            raise UserError("cyclegan needs labelled batches; set data.domains=A:B")
        a, b = real[labels == 0], real[labels == 1]
        if len(a) != len(b) or len(a) == 0:
            raise UserError(
                f"cyclegan needs batches with as many A as B images, got {len(a)} and {len(b)}; "
                "set data.balance=true"
            )
        return a, b

    @torch.no_grad()
    def _remember(self, a: Tensor, b: Tensor) -> None:
        """Fill the bank of real images for `sample()` from the first batches seen."""
        mem = self.networks["memory"]
        for d, x in enumerate((a, b)):
            bank, filled = getattr(mem, f"bank_{'ab'[d]}"), int(mem.bank_n[d])
            k = min(bank.shape[0] - filled, len(x))
            if k > 0:
                bank[filled : filled + k] = x[:k]
                mem.bank_n[d] += k

    def generator_losses(self, a: Tensor, b: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """LSGAN, cycle and identity losses (weighted) for real a, b in [-1, 1]; and the fakes."""
        c, n = self.cfg, self.networks
        fake_b, fake_a = n["G_AB"](a), n["G_BA"](b)
        # One pass per generator for its reconstruction and its identity image.
        rec_b, idt_b = n["G_AB"](torch.cat([fake_a, b])).chunk(2)
        rec_a, idt_a = n["G_BA"](torch.cat([fake_b, a])).chunk(2)
        losses = {
            "G_adv": lsgan(n["D_B"](fake_b), True) + lsgan(n["D_A"](fake_a), True),
            "cycle": c.cycle_weight * (F.l1_loss(rec_a, a) + F.l1_loss(rec_b, b)),
            "identity": c.identity_weight
            * c.cycle_weight
            * (F.l1_loss(idt_b, b) + F.l1_loss(idt_a, a)),
        }
        return losses, fake_a, fake_b

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One generator update (both directions), then one update of both discriminators."""
        nets, opt, rng = self.networks, self.optimizers, ctx.rng
        a, b = self.split(batch.images, batch.labels)
        self._remember(a, b)
        a, b = a * 2 - 1, b * 2 - 1
        discs = (nets["D_A"], nets["D_B"])
        for d in discs:
            d.requires_grad_(False)
        losses, fake_a, fake_b = self.generator_losses(a, b)
        loss_g = sum(losses.values())
        opt["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        for d in discs:
            d.requires_grad_(True)
        for g in ("G_AB", "G_BA"):
            ctx.sync(nets[g])
        opt["G"].step()

        mem = nets["memory"]
        old_a = query_pool(mem.pool_a, mem.pool_n[0:1], fake_a.detach(), rng)
        old_b = query_pool(mem.pool_b, mem.pool_n[1:2], fake_b.detach(), rng)
        d_losses = {}
        for name, real_x, fake_x in (("D_A", a, old_a), ("D_B", b, old_b)):
            s_real, s_fake = nets[name](torch.cat([real_x, fake_x])).chunk(2)
            d_losses[name] = 0.5 * (lsgan(s_real, True) + lsgan(s_fake, False))
        opt["D"].zero_grad(set_to_none=True)
        sum(d_losses.values()).backward()
        for d in discs:
            ctx.sync(d)
        opt["D"].step()
        return {
            "G": loss_g.item(),
            **{k: v.item() for k, v in losses.items()},
            **{k: v.item() for k, v in d_losses.items()},
        }

    # ---- translation and sampling -------------------------------------------------------

    @torch.no_grad()
    def translate(self, images: Tensor, direction: str = "a2b", batch: int = 256) -> Tensor:
        """Images (N, C, H, W) in [0, 1] of one domain as the other, with the EMA generators."""
        if direction not in DIRECTIONS:
            raise UserError(f"direction must be a2b or b2a, got {direction!r}")
        if not isinstance(images, Tensor) or images.ndim != 4:
            raise UserError("translate takes an (N, C, H, W) tensor of images in [0, 1]")
        if tuple(images.shape[1:]) != self.image_shape:
            raise UserError(
                f"images of shape {tuple(images.shape[1:])} do not fit this model, which takes "
                f"{self.image_shape}; convert them first (pixelsmith.edit.translate does)"
            )
        out = []
        with self.inference("G_AB" if direction == "a2b" else "G_BA") as G:
            for i in range(0, len(images), batch):
                x = images[i : i + batch].to(self.device, torch.float32) * 2 - 1
                out.append(((G(x) + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(out) if out else torch.empty(0, *self.image_shape)

    def draw(self, n: int, seed: int, opts: CycleGANSampleConfig, labels: Tensor | None) -> Tensor:
        """n images as [source, translation] pairs of banked real images, chosen by the seed."""
        mem = self.networks["memory"]
        filled = [int(v) for v in mem.bank_n]
        if min(filled) == 0:
            raise UserError(
                "this cyclegan has seen no training images yet, so it has none to show; train "
                "it for a step, or translate your own images with `pixelsmith edit translate`"
            )
        pairs = -(-n // 2)
        if opts.direction == "both":
            source = torch.arange(pairs) % 2
        else:
            source = torch.full((pairs,), DIRECTIONS.index(opts.direction))
        u = torch.rand(pairs, generator=torch.Generator().manual_seed(seed))
        out = torch.empty(pairs, 2, *self.image_shape)
        for d in (0, 1):
            rows = torch.nonzero(source == d).flatten()
            bank = getattr(mem, f"bank_{'ab'[d]}")
            src = bank[(u[rows] * filled[d]).long().to(bank.device)].float().cpu()
            out[rows, 0] = src
            out[rows, 1] = self.translate(src, DIRECTIONS[d])
        return out.flatten(0, 1)[:n]
