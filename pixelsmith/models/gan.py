"""GANs: DCGAN-style generator and BatchNorm-free discriminator, NS/hinge/WGAN-GP losses, R1,
spectral norm, class-conditional variant (class-embedded G, projection D) and DiffAugment.

Reads top to bottom: config, shape rule, networks, losses, the family (train step + sampler).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import Family, GradSync
from pixelsmith.utils.rng import BatchRandom

LOSSES = ("ns", "hinge", "wgan-gp")
Labels = torch.Tensor | None


@dataclass
class GANConfig:
    """Settings of the GAN family (presets in pixelsmith.models.PRESETS)."""

    z_dim: int = 64
    # Defaults chosen for FID per CPU-minute on Fashion-MNIST (see bench/README.md):
    # a light discriminator and high learning rates buy more, faster generator updates.
    g_channels: int = 32
    d_channels: int = 16
    max_channels: int = 256
    g_norm: str = "batch"
    loss: str = "ns"
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    r1_every: int = 16
    spectral_norm: bool = False
    conditional: bool = False
    n_critic: int = 1
    optimizer: str = "adam"
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    diffaugment: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        for key in ("z_dim", "g_channels", "d_channels", "max_channels", "n_critic", "r1_every"):
            require(
                getattr(self, key) > 0, f"model.{key} must be positive, got {getattr(self, key)}"
            )
        for key in ("lr_g", "lr_d"):
            require(
                getattr(self, key) > 0, f"model.{key} must be positive, got {getattr(self, key)}"
            )
        require(
            self.loss in LOSSES, f"model.loss must be one of {', '.join(LOSSES)}, got {self.loss!r}"
        )
        require(
            self.optimizer in ("adam", "sgd"),
            f"model.optimizer must be adam or sgd, got {self.optimizer!r}",
        )
        require(
            self.g_norm in ("batch", "none"),
            f"model.g_norm must be batch or none, got {self.g_norm!r}",
        )
        require(
            self.gp_weight >= 0 and self.r1_gamma >= 0,
            "model.gp_weight and model.r1_gamma must be >= 0",
        )


def upsampling_depth(height: int, width: int) -> int:
    """How many 2x stages lead from a small base grid (>= 3 pixels) to height x width."""
    k = 0
    while height % (2 ** (k + 1)) == 0 and width % (2 ** (k + 1)) == 0:
        if min(height, width) // 2 ** (k + 1) < 3:
            break
        k += 1
    if k < 2:
        raise UserError(
            f"image size {height}x{width} is not supported by the GAN: height and width must be "
            "multiples of 4 and at least 12 (e.g. 28, 32, 64); resize with --set data.size=32"
        )
    return k


def _widths(base: int, k: int, cap: int) -> list[int]:
    return [min(cap, base * 2 ** (k - i)) for i in range(k + 1)]


class Generator(nn.Module):
    """z (and a class) -> image in [-1, 1]: Linear to a base grid, k transposed-conv doublings."""

    def __init__(self, cfg: GANConfig, shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        c, h, w = shape
        k = upsampling_depth(h, w)
        ch = _widths(cfg.g_channels, k, cfg.max_channels)
        self.base = (ch[0], h >> k, w >> k)
        self.embed = nn.Embedding(num_classes, cfg.z_dim) if num_classes else None
        in_dim = cfg.z_dim * (2 if num_classes else 1)
        norm = (lambda n: nn.BatchNorm2d(n)) if cfg.g_norm == "batch" else (lambda n: nn.Identity())
        self.fc = nn.Linear(in_dim, ch[0] * self.base[1] * self.base[2])
        self.fc_norm = norm(ch[0])
        blocks: list[nn.Module] = []
        for i in range(k):
            blocks += [
                nn.ConvTranspose2d(ch[i], ch[i + 1], 4, 2, 1, bias=False),
                norm(ch[i + 1]),
                nn.ReLU(True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.to_img = nn.Conv2d(ch[k], c, 3, 1, 1)
        _init_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.fc(z).view(-1, *self.base)
        x = F.relu(self.fc_norm(x))
        return torch.tanh(self.to_img(self.blocks(x)))


class Discriminator(nn.Module):
    """Image in [-1, 1] -> score; strided convs, no BatchNorm (so it works the same under DDP)."""

    def __init__(self, cfg: GANConfig, shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        c, h, w = shape
        k = upsampling_depth(h, w)
        ch = list(reversed(_widths(cfg.d_channels, k, cfg.max_channels)))
        sn = _sn if cfg.spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [sn(nn.Conv2d(c, ch[0], 3, 1, 1)), nn.LeakyReLU(0.2, True)]
        for i in range(k):
            layers += [sn(nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        feat = ch[k] * (h >> k) * (w >> k)
        self.out = sn(nn.Linear(feat, 1))
        self.embed = sn(nn.Embedding(num_classes, feat)) if num_classes else None
        _init_weights(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.out(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


def _init_weights(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# ---- losses: each takes discriminator scores and returns a scalar ---------------------------


def d_loss(loss: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator loss for real and fake scores."""
    if loss == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if loss == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    return fake.mean() - real.mean()


def g_loss(loss: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss for fake scores."""
    return F.softplus(-fake).mean() if loss == "ns" else -fake.mean()


def gradient_penalty(
    d: Discriminator, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor, y: Labels = None
) -> torch.Tensor:
    """WGAN-GP: E[(||grad D(x_hat)|| - 1)^2], one mixing weight per sample, no augmentation."""
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x_hat, y).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def r1_penalty(d: nn.Module, real: torch.Tensor, y: Labels = None) -> torch.Tensor:
    """R1: E[||grad D(real)||^2] (Mescheder et al. 2018)."""
    real = real.detach().requires_grad_(True)
    scores = d(real) if y is None else d(real, y)
    (grad,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


# ---- the family ----------------------------------------------------------------------------


def gan_networks(G: nn.Module, D: nn.Module) -> dict[str, nn.Module]:
    """G, D and G's EMA copy (never trained directly)."""
    return {"G": G, "D": D, "G_ema": copy.deepcopy(G).requires_grad_(False).eval()}


def augmenter(policy: str) -> Callable[[torch.Tensor, BatchRandom], torch.Tensor]:
    """DiffAugment with `policy` for both D inputs, or the identity when the policy is empty."""
    if not policy:
        return lambda x, rng: x
    from pixelsmith.data.augment import DiffAugment

    return DiffAugment(policy)


class GAN(Family):
    """DCGAN / WGAN-GP / hinge / conditional GAN, chosen by GANConfig."""

    name = "gan"
    Config = GANConfig
    ema_pairs = {"G": "G_ema"}

    def __init__(self, cfg: GANConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        classes = self.classes = self.require_classes(cfg.conditional, "GAN")
        self.networks = gan_networks(
            Generator(cfg, image_shape, classes), Discriminator(cfg, image_shape, classes)
        )
        self._aug = augmenter(cfg.diffaugment)

    def configure_optimizers(self) -> None:
        """Adam (or plain SGD) for G and D with the configured learning rates."""
        c = self.cfg

        def make(net: nn.Module, lr: float) -> torch.optim.Optimizer:
            if c.optimizer == "sgd":
                return torch.optim.SGD(net.parameters(), lr)
            # foreach: one multi-tensor op per update step, not ~10 small ops per tensor
            return torch.optim.Adam(net.parameters(), lr, betas=c.betas, foreach=True)

        self.optimizers = {
            "G": make(self.networks["G"], c.lr_g),
            "D": make(self.networks["D"], c.lr_d),
        }

    def train_step(self, real, labels, rng, step, next_batch, sync: GradSync) -> dict[str, float]:
        """n_critic discriminator updates, then one generator update."""
        c, G, D = self.cfg, self.networks["G"], self.networks["D"]
        n = real.shape[0]
        y = labels if self.classes else None
        logs: dict[str, float] = {}
        # With one critic step, the fakes made for D are reused for the G step (one G forward).
        reuse = c.n_critic == 1
        for i in range(c.n_critic):
            if i > 0:
                real, labels = next_batch()
                y = labels if self.classes else None
            real = real * 2 - 1
            z = rng.randn(n, c.z_dim)
            fake = G(z, y) if reuse else G(z, y).detach()
            scores = D(
                torch.cat([self._aug(real, rng), self._aug(fake.detach(), rng)]),
                None if y is None else torch.cat([y, y]),
            )
            s_real, s_fake = scores[:n], scores[n:]
            loss = d_loss(c.loss, s_real, s_fake)
            logs["D"] = loss.item()
            eps = rng.rand(n, 1, 1, 1) if c.loss == "wgan-gp" else None
            if eps is not None:
                gp = gradient_penalty(D, real, fake.detach(), eps, y)
                loss = loss + c.gp_weight * gp
                logs["gp"] = gp.item()
            if c.r1_gamma > 0 and step % c.r1_every == 0:
                r1 = r1_penalty(D, real, y)
                loss = loss + 0.5 * c.r1_gamma * c.r1_every * r1
                logs["r1"] = r1.item()
            self.optimizers["D"].zero_grad(set_to_none=True)
            loss.backward()
            sync(D)
            self.optimizers["D"].step()
            logs["D_real"], logs["D_fake"] = s_real.mean().item(), s_fake.mean().item()
        if not reuse:
            fake = G(rng.randn(n, c.z_dim), y)
        D.requires_grad_(False)
        loss_g = g_loss(c.loss, D(self._aug(fake, rng), y))
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        D.requires_grad_(True)
        sync(G)
        self.optimizers["G"].step()
        logs["G"] = loss_g.item()
        return logs

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [0, 1] from the EMA generator; labels default to 0, 1, 2, ... cycling."""
        G = self.networks["G_ema"].eval()
        z = torch.randn(n, self.cfg.z_dim, generator=torch.Generator().manual_seed(int(seed)))
        if self.classes:
            if labels is None:
                labels = torch.arange(n) % self.classes
            labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
            if labels.numel() != n or labels.min() < 0 or labels.max() >= self.classes:
                raise UserError(f"labels must be {n} integers in [0, {self.classes - 1}]")
        out = []
        for i in range(0, n, 256):
            zi = z[i : i + 256].to(self.device)
            yi = None if not self.classes else labels[i : i + 256].to(self.device)
            out.append(((G(zi, yi) + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(out) if out else torch.empty(0, *self.image_shape)
