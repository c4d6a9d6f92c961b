"""GANs: DCGAN-style generator and BatchNorm-free discriminator, NS/hinge/WGAN-GP losses, R1,
spectral norm, class-conditional variant (class-conditional BatchNorm in G, projection D),
MSGAN's mode seeking, self-conditioning on k-means clusters and DiffAugment.

Reads top to bottom: config, shape rule, networks, the family (presets, train step, sampler);
the losses are in `pixelsmith.models.adversarial`, shared with StyleGAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models import clusters as km
from pixelsmith.models.adversarial import LOSSES, AdversarialLoss, adversarial_step, augmenter
from pixelsmith.models.base import (
    Abilities,
    Batch,
    Family,
    LabelledSampleConfig,
    LatentSpec,
    Preset,
    StepContext,
)
from pixelsmith.utils.rng import BatchRandom


@dataclass
class GANConfig:
    """Settings of the GAN family (its presets are at the end of this module)."""

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
    # A conditional G's BatchNorm looks up its scale and shift per class (conditional BatchNorm)
    # instead of learning the class only from a code beside z.
    class_norm: bool = False
    # Self-conditioning: train as a conditional GAN on k-means clusters of the training images,
    # without labels; z's first coordinate picks the cluster at sampling (models/clusters.py).
    clusters: int = 0
    # MSGAN's mode-seeking weight: rewards G for drawing two codes of one class apart.
    mode_seeking: float = 0.0
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
            not self.class_norm or (self.conditioned and self.g_norm == "batch"),
            "model.class_norm needs labels (model.conditional=true or model.clusters) and "
            "model.g_norm=batch",
        )
        require(
            self.clusters == 0 or (self.clusters >= 2 and self.z_dim >= 2),
            f"model.clusters must be 0 (off) or at least 2 (with z_dim >= 2), got {self.clusters}",
        )
        require(
            not (self.clusters and self.conditional),
            "model.clusters stands in for labels a model does not use; a conditional model has "
            "its classes: set model.conditional=false or model.clusters=0",
        )
        require(
            self.gp_weight >= 0 and self.r1_gamma >= 0 and self.mode_seeking >= 0,
            "model.gp_weight, model.r1_gamma and model.mode_seeking must be >= 0",
        )

    @property
    def conditioned(self) -> bool:
        """Whether G and D take a label: the data's class or an image's cluster."""
        return self.conditional or self.clusters > 0


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


class ClassBatchNorm(nn.Module):
    """BatchNorm whose scale and shift are rows of per-class tables (de Vries et al. 2017)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        return (
            self.bn(x) * self.scale(labels)[..., None, None] + self.shift(labels)[..., None, None]
        )


class Generator(nn.Module):
    """z (and a class) -> image in [-1, 1]: Linear to a base grid, k transposed-conv doublings."""

    cuts: Tensor | None
    prior: Tensor | None

    def __init__(self, cfg: GANConfig, shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        c, h, w = shape
        k = upsampling_depth(h, w)
        ch = _widths(cfg.g_channels, k, cfg.max_channels)
        self.base = (ch[0], h >> k, w >> k)
        self.embed = nn.Embedding(num_classes, cfg.z_dim) if num_classes else None
        in_dim = cfg.z_dim * (2 if num_classes else 1)
        # z[:, 0] picks a self-conditioned model's cluster (GAN.fit_data sets the cuts); the
        # rest of z is the code
        clusters = cfg.clusters
        self.register_buffer("cuts", torch.zeros(clusters - 1) if clusters else None)
        self.register_buffer("prior", torch.zeros(clusters) if clusters else None)
        in_dim -= 1 if clusters else 0

        def norm(n: int) -> nn.Module:
            if cfg.class_norm and num_classes:
                return ClassBatchNorm(n, num_classes)
            return nn.BatchNorm2d(n) if cfg.g_norm == "batch" else nn.Identity()

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
        if self.embed is not None:
            # Class codes as large as z (nn.Embedding's N(0, 1)) are ten fixed points G learns
            # from instead of z: it collapsed to one image per class in minutes (within-class
            # spread under 1/20 of the data's), even against a D that ignored the labels.
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.run(z, labels)[1]

    def run(self, z: Tensor, labels: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        """(hidden activations: the base grid's and each doubling's, image in [-1, 1])."""
        if self.cuts is not None:
            if labels is None:
                labels = km.cluster_of(z[:, 0], self.cuts)
            z = z[:, 1:]
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.fc(z).view(-1, *self.base)
        x = F.relu(_normed(self.fc_norm, x, labels))
        hidden = [x]
        for i, m in enumerate(self.blocks):  # (deconv, norm, ReLU) per doubling
            x = _normed(m, x, labels)
            if i % 3 == 2:
                hidden.append(x)
        return hidden, torch.tanh(self.to_img(x))


def _normed(m: nn.Module, x: Tensor, labels: Tensor | None) -> Tensor:
    return m(x, labels) if isinstance(m, ClassBatchNorm) else m(x)


class Discriminator(nn.Module):
    """Image in [-1, 1] -> score; strided convs, no BatchNorm (so it works the same under DDP)."""

    centroids: Tensor | None

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
        view = km.cluster_view(torch.zeros(1, c, h, w)).shape[1] if cfg.clusters else 0
        # a self-conditioned model's cluster centres in km.cluster_view's pixels (GAN.fit_data)
        self.register_buffer("centroids", torch.zeros(cfg.clusters, view) if view else None)
        _init_weights(self)

    def cluster_of(self, images: Tensor) -> Tensor:
        """The cluster of each image in [0, 1]: its nearest centroid."""
        assert self.centroids is not None
        return km.assign(km.cluster_view(images), self.centroids)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.centroids is not None and labels is None:
            labels = self.cluster_of((x + 1) / 2)
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


# ---- the family ----------------------------------------------------------------------------


@dataclass
class GANSampleConfig(LabelledSampleConfig):
    """Sampling options of the GAN family: the class of each image for a conditional model."""


# Batch 16 with these light networks buys the most FID per CPU-minute (bench/README.md).
_TRAIN = {"batch": 16}
_SC_GAN = {"clusters": 20, "class_norm": True, "mode_seeking": 0.25}
# The GAN family's presets: the default DCGAN and its well-known variants.
PRESETS: dict[str, Preset] = {
    "dcgan": Preset(
        "the default: non-saturating loss, EMA generator; the demo (10 minutes on 2 cores)",
        10.0,
        {"train": _TRAIN},
    ),
    "hinge-gan": Preset(
        "hinge loss with a spectrally normalised discriminator",
        10.0,
        {"model": {"loss": "hinge", "spectral_norm": True}, "train": _TRAIN},
    ),
    "wgan-gp": Preset(
        "Wasserstein loss with gradient penalty, 5 critic steps per generator step",
        10.0,
        {
            "model": {
                "loss": "wgan-gp",
                "n_critic": 5,
                "lr_g": 1e-4,
                "lr_d": 1e-4,
                "betas": (0.0, 0.9),
                "g_norm": "batch",
            },
            "train": _TRAIN,
        },
    ),
    # A short EMA: averaging the generator over 10k images (the default) averages drawings of a
    # class that flicker from step to step, and the average drew no sandals. Mode seeking: without
    # it G draws one sandal and one sneaker whatever z is (docs/gan_quality.md measured both).
    "cgan": Preset(
        "class-conditional: class-conditional BatchNorm in G, projection discriminator, "
        "mode seeking",
        10.0,
        {
            "model": {"conditional": True, "class_norm": True, "mode_seeking": 0.25},
            "train": {**_TRAIN, "ema_kimg": 0.5},
        },
    ),
    # The cgan's recipe without labels: 20 k-means clusters of the pixels stand in for classes.
    "sc-gan": Preset(
        "self-conditioned: the cgan's recipe on k-means clusters of the images (no labels)",
        10.0,
        {
            "model": _SC_GAN,
            "train": {**_TRAIN, "ema_kimg": 0.5},
        },
    ),
    # The best 2-CPU-hour recipe measured (docs/gan_quality.md): sc-gan with D at 32 channels in
    # batches of 64, bf16 where the hardware multiplies it, one thread (this small network gains
    # little from more), and the engine's 10 kimg average, which after two hours at a constant
    # rate draws better than the short one the 30-minute presets need. The rate drops to 0.3x
    # for the last 4% of the budget, and 50 clusters beat 20 (Inception FID 9.91 against 10.12).
    "sc-gan-2h": Preset(
        "sc-gan for 2 CPU-hours: 50 clusters, wider discriminator, batch 64, bf16 where fast, "
        "10 kimg EMA, 0.3x rate for the last 4%",
        120.0,
        {
            "model": {**_SC_GAN, "clusters": 50, "d_channels": 32, "lr_g": 2e-4, "lr_d": 2e-4},
            "train": {
                "batch": 64,
                "ema_kimg": 10.0,
                "precision": "auto",
                "threads": 1,
                "lr_schedule": "step",
                "lr_milestones": (0.96,),
                "lr_gamma": 0.3,
            },
        },
    ),
}


class GAN(Family):
    """DCGAN / WGAN-GP / hinge / conditional GAN, chosen by GANConfig."""

    name = "gan"
    Config = GANConfig
    SampleConfig = GANSampleConfig
    abilities = Abilities(latent=True, discriminates=True)
    presets = PRESETS
    ema_pairs = {"G": "G_ema"}
    private_networks = ("D",)
    private_examples = 2
    generator_net = "G"
    latent_spaces = ("z",)

    def __init__(self, cfg: GANConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        self.classes = self.require_classes(cfg.conditional, "GAN")
        self.networks = {
            "G": Generator(cfg, image_shape, self.label_count),
            "D": Discriminator(cfg, image_shape, self.label_count),
        }
        self.objective = AdversarialLoss(
            cfg.loss,
            augmenter(cfg.diffaugment),
            cfg.gp_weight,
            cfg.r1_gamma,
            cfg.r1_every,
            mode_seeking=cfg.mode_seeking,
        )

    @property
    def label_count(self) -> int:
        """How many labels G and D take: the data's classes, or the clusters (0: none)."""
        return self.classes or self.cfg.clusters

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

    def _fakes(self, n: int, y: Tensor | None, rng: BatchRandom) -> Tensor:
        return self.networks["G"](rng.randn(n, self.cfg.z_dim), y)

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """n_critic discriminator updates, then one generator update."""
        nets = self.networks
        return adversarial_step(
            self.objective,
            nets["G"],
            nets["D"],
            self.optimizers,
            self._fakes,
            batch,
            ctx,
            conditional=self.cfg.conditioned,
            n_critic=self.cfg.n_critic,
            classes=self.label_count,
        )

    def fit_data(self, images: Tensor, seed: int) -> None:
        """Fit the clusters of a self-conditioned model; centroids an --init brought are kept,
        and their shares counted on these images."""
        k = self.cfg.clusters
        if not k:
            return
        if len(images) < k:
            raise UserError(
                f"model.clusters={k} needs at least {k} training images, got {len(images)}"
            )
        centroids = self.networks["D"].centroids.cpu()
        if float(centroids.abs().sum()) == 0:
            centroids, prior = km.fit(images, k, seed)
        else:
            prior = km.shares(images, centroids)
        for net in self.networks.values():  # G, its moving average and D
            if isinstance(net, Generator):
                net.prior.copy_(prior)
                net.cuts.copy_(km.normal_cuts(prior))
            elif isinstance(net, Discriminator):
                net.centroids.copy_(centroids)

    def prepare_batch(self, batch: Batch, rng: BatchRandom) -> Batch:  # noqa: ARG002
        """A self-conditioned model labels each real image with its cluster."""
        if not self.cfg.clusters:
            return batch
        return Batch(batch.images, self.networks["D"].cluster_of(batch.images))

    @torch.no_grad()
    def discriminate(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        """D's logits of images in [0, 1] (a conditional D scores them with their labels)."""
        if self.classes and labels is None:
            raise UserError("a conditional discriminator scores images with their labels")
        D = self.networks["D"].eval()
        out = []
        for i in range(0, len(images), 500):
            y = None if not self.classes else labels[i : i + 500].to(self.device)
            out.append(D(images[i : i + 500].to(self.device) * 2 - 1, y).float().cpu())
        D.train()
        return torch.cat(out)

    def check_private(self) -> None:
        """Only D sees the data; its penalties need a double backward Opacus has no rule for."""
        c = self.cfg
        if c.clusters:
            raise UserError(
                "model.clusters fits k-means centroids to the training images outside DP-SGD's "
                "accounting, and D keeps them; set model.clusters=0 to train privately"
            )
        if c.loss == "wgan-gp" or c.r1_gamma > 0:
            what = "WGAN-GP's gradient penalty" if c.loss == "wgan-gp" else "R1"
            raise UserError(
                f"{what} differentiates D's gradient, which per-sample clipping cannot bound; "
                "train privately with model.loss=ns or hinge and model.r1_gamma=0"
            )
        if c.spectral_norm:
            raise UserError(
                "spectral normalisation is a power iteration over D's weights that Opacus has no "
                "per-sample rule for; set model.spectral_norm=false to train privately"
            )

    def draw(self, n: int, seed: int, opts: GANSampleConfig, labels: Tensor | None) -> Tensor:
        """n images in [0, 1] from the EMA generator, z drawn from the seed."""
        z = self.latent_prior(n, seed)
        out = []
        with self.inference("G") as G:
            for i in range(0, n, 256):
                zi = z[i : i + 256].to(self.device)
                yi = None if labels is None else labels[i : i + 256].to(self.device)
                out.append(((G(zi, yi) + 1) / 2).clamp(0, 1).cpu())
        return torch.cat(out)

    # ---- the latent space: z, Gaussian (with the class for a conditional model) -------------

    def latent_spec(self, kind: str) -> LatentSpec:
        """z: (z_dim,) Gaussian codes, moved along great circles (slerp)."""
        return LatentSpec("z", (self.cfg.z_dim,), "slerp", directions="z")

    @torch.no_grad()
    def latent_start(self, codes: Tensor, images: Tensor, kind: str) -> Tensor:
        """A self-conditioned model's z0 (its cluster, which has no gradient) moved to the
        middle of the cluster D puts each image in, as training labelled real images."""
        G, D = self.inference_net(), self.networks.get("D")
        if kind != "z" or G.prior is None or D is None:
            return codes
        labels = D.cluster_of(images.to(self.device))
        codes = codes.clone()
        codes[:, 0] = km.middle_z0(labels, G.prior).to(codes)
        return codes

    def latent_render(self, codes: Tensor, kind: str, labels: Tensor | None = None) -> Tensor:
        """(G(z, labels) + 1) / 2 through the inference generator."""
        return (self.inference_net()(codes, labels) + 1) / 2
