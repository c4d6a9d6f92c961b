"""DP-MERF (Harder et al. 2021): a generator trained to match one private release of the data's
mean embedding in random Fourier features, never reading the data again.

The release (`release`, once, before the first step; the engine calls it): every training
image x with its one-hot label y contributes v = [phi(x) y^T, y], where phi holds `features`
random Fourier features of the pixels (cos and sin of x.w, w ~ N(0, I / lengthscale^2)) scaled
so |phi(x)| = 1, hence |v| = sqrt(2). The sum of v over the data plus Gaussian noise of standard
deviation noise_multiplier * sqrt(2) is kept, and nothing else: adding or removing one image
moves the sum by at most sqrt(2), so this is the Gaussian mechanism, which Opacus's accountant
counts as one step at sample rate 1 (`pixelsmith.train.privacy.PrivateRelease`). With no noise
it is plain MERF, an MMD generator with a random-feature kernel.

Training is post-processing of the release: each step draws labels from the released class
proportions and minimises |mean(phi(G(z, y)) y^T) - released mean|^2. The engine's batches are
never read; `train.batch` is the number of images generated per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import (
    Abilities,
    Batch,
    Family,
    LabelledSampleConfig,
    Preset,
    StepContext,
)

# The sensitivity of the released sum: |phi(x) y^T| = |y| = 1.
SENSITIVITY = math.sqrt(2.0)


@dataclass
class MERFConfig:
    """Settings of the DP-MERF family: the feature map and the generator."""

    # Condition on the data's classes (the release holds one mean embedding per class).
    conditional: bool = False
    z_dim: int = 32
    # The generator's width (channels of its two upsampling stages).
    channels: int = 32
    # Random frequencies (the embedding holds a cos and a sin of each).
    features: int = 2000
    # The Gaussian kernel's length scale on pixel values in [0, 1].
    lengthscale: float = 5.0
    # The frequencies' seed: part of the model, public like the architecture.
    feature_seed: int = 0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        for key in ("z_dim", "channels", "features"):
            value = getattr(self, key)
            require(value >= 1, f"model.{key} must be >= 1, got {value}")
        require(self.lengthscale > 0, f"model.lengthscale must be positive, got {self.lengthscale}")
        require(self.lr > 0, f"model.lr must be positive, got {self.lr}")


class MERFSampleConfig(LabelledSampleConfig):
    """Sampling options of DP-MERF: the class of each image for a conditional model."""


class MERFGenerator(nn.Module):
    """z (and a one-hot class) -> fc -> (width, H/4, W/4) -> two x2 upsampling convolutions ->
    images in [0, 1]."""

    def __init__(self, cfg: MERFConfig, shape: tuple[int, int, int], classes: int) -> None:
        super().__init__()
        c, h, w = shape
        self.classes, self.start = classes, (cfg.channels, h // 4, w // 4)
        self.fc = nn.Sequential(
            nn.Linear(cfg.z_dim + classes, math.prod(self.start)),
            nn.BatchNorm1d(math.prod(self.start)),
            nn.ReLU(),
        )
        width = cfg.channels
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(width, c, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.classes:
            z = torch.cat([z, F.one_hot(labels, self.classes).to(z.dtype)], 1)
        return self.up(self.fc(z).view(-1, *self.start))


class MeanEmbedding(nn.Module):
    """The random Fourier feature map (rebuilt from its seed, so not saved) and the release:
    the noisy mean embedding per class and the noisy class proportions."""

    def __init__(self, dim: int, cfg: MERFConfig, classes: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(cfg.feature_seed)
        freqs = torch.randn(dim, cfg.features, generator=g) / cfg.lengthscale
        self.register_buffer("freqs", freqs, persistent=False)
        k = max(classes, 1)
        self.register_buffer("target", torch.zeros(2 * cfg.features, k))
        self.register_buffer("proportions", torch.full((k,), 1.0 / k))
        self.register_buffer("released", torch.zeros((), dtype=torch.bool))

    def features(self, images: Tensor) -> Tensor:
        """(N, C, H, W) images in [0, 1] -> (N, 2 features) unit vectors."""
        p = images.flatten(1) @ self.freqs
        return torch.cat([p.cos(), p.sin()], 1) / math.sqrt(self.freqs.shape[1])


_TRAIN = {"batch": 400, "log_every": 50, "sample_every": 500}
PRESETS: dict[str, Preset] = {
    "merf": Preset(
        "MERF: a generator matching the data's mean embedding in random Fourier features "
        "(no privacy)", 5.0, {"train": _TRAIN},
    ),
    "merf-dp": Preset(
        "DP-MERF (Harder et al. 2021): a class-conditional generator trained on the data's mean "
        "embedding, released once by the Gaussian mechanism at epsilon 10, delta 1e-5", 5.0,
        {"model": {"conditional": True}, "train": _TRAIN,
         "privacy": {"epsilon": 10.0, "delta": 1e-5}},
    ),
}  # fmt: skip


class MERF(Family):
    """A generator trained on a (private) release of the data's random-feature mean embedding."""

    name = "merf"
    Config = MERFConfig
    SampleConfig = MERFSampleConfig
    abilities = Abilities(releases=True)
    presets = PRESETS
    ema_pairs = {"G": "G_ema"}
    not_exported = "exporting DP-MERF generators is not built yet"
    max_size = 64

    def __init__(self, cfg: MERFConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        c, h, w = self.image_shape
        if h % 4 or w % 4:
            raise UserError(
                f"DP-MERF's generator upsamples x4: {h}x{w} images need sides divisible by 4; "
                "set data.size, e.g. data.size=28"
            )
        classes = self.classes = self.require_classes(cfg.conditional, "DP-MERF generator")
        self.networks = {
            "G": MERFGenerator(cfg, self.image_shape, classes),
            "embedding": MeanEmbedding(c * h * w, cfg, classes),
        }

    def configure_optimizers(self) -> None:
        """Adam over the generator."""
        c = self.cfg
        self.optimizers = {
            "G": torch.optim.Adam(
                self.networks["G"].parameters(), c.lr, betas=c.betas, foreach=True
            )
        }

    @torch.no_grad()
    def release(
        self,
        images: Tensor,
        labels: Tensor | None,
        noise_multiplier: float,
        normal: Callable[[torch.Size], Tensor] | None,
    ) -> None:
        """Keep the noisy sum of [phi(x) y^T, y] over the uint8 training images (see the module
        doc); `normal(shape)` draws its standard normal noise (unused without noise)."""
        emb = self.networks["embedding"]
        k = max(self.classes, 1)
        total = torch.zeros(emb.target.shape, device=self.device)
        counts = torch.zeros(k, device=self.device)
        for i in range(0, len(images), 1000):
            x = images[i : i + 1000].to(self.device).float() / 255
            if self.classes:
                y = F.one_hot(labels[i : i + 1000].to(self.device), k).float()
            else:
                y = torch.ones(len(x), 1, device=self.device)
            total += emb.features(x).T @ y
            counts += y.sum(0)
        sd = noise_multiplier * SENSITIVITY
        if sd:
            total += sd * normal(total.shape).to(self.device)
            counts += sd * normal(counts.shape).to(self.device)
        counts = counts.clamp(min=1.0)  # noise can push a small class's count below zero
        emb.target.copy_(total / counts.sum())
        emb.proportions.copy_(counts / counts.sum())
        emb.released.fill_(True)

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One Adam step on |mean(phi(G(z, y)) y^T) - release|^2 for len(batch) generated
        images; the batch's real images are not read."""
        emb = self.networks["embedding"]
        if not bool(emb.released):
            raise UserError("DP-MERF trains on its release, and none was made before this step")
        m = len(batch.images)
        labels = None
        y = torch.ones(m, 1, device=self.device)
        if self.classes:  # classes drawn in the released proportions
            cdf = emb.proportions.cumsum(0)
            labels = torch.searchsorted(cdf, ctx.rng.rand(m) * cdf[-1]).clamp(max=self.classes - 1)
            y = F.one_hot(labels, self.classes).float()
        fake = self.networks["G"](ctx.rng.randn(m, self.cfg.z_dim), labels)
        mmd2 = ((emb.features(fake).T @ y / m - emb.target) ** 2).sum()
        opt = self.optimizers["G"]
        opt.zero_grad(set_to_none=True)
        mmd2.backward()
        ctx.sync(self.networks["G"])
        opt.step()
        return {"mmd2": mmd2.item()}

    def draw(self, n: int, seed: int, opts: MERFSampleConfig, labels: Tensor | None) -> Tensor:
        """n images in [0, 1] from the EMA generator, z drawn from the seed."""
        z = torch.randn(n, self.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
        out = []
        with self.inference("G") as G:
            for i in range(0, n, 500):
                yi = None if labels is None else labels[i : i + 500].to(self.device)
                out.append(G(z[i : i + 500].to(self.device), yi).float().cpu())
        return torch.cat(out)
