"""Classifiers: pixelsmith's small CNN trained on the engine, plainly or adversarially.

Reads top to bottom: the network (the same one the metrics' shipped feature networks are made
of), the settings and presets, then the family: its train step, the attacks it trains against,
classifying images, the module it hands to attacks, and the grids it shows.

Adversarial training perturbs each batch inside an eps ball (Linf by default, on pixel values in
[0, 1]) before the optimiser step, with the attacks of `pixelsmith.nn.attacks`:

- ``pgd``: Madry et al. (2018): minimise the cross-entropy of PGD examples (random start,
  `steps` steps of size `alpha`) instead of the clean images'.
- ``trades``: Zhang et al. (2019): cross-entropy of the clean images plus `beta` times
  KL(f(x) || f(x')), x' the PGD example that maximises that KL.
- ``fgsm``: Wong et al. (2020), "fast is better than free": one signed-gradient step of size
  `alpha` (1.25 eps by default) from a uniform random start in the ball, then projected: PGD
  with a single step. Without `random_start` it is Goodfellow et al.'s FGSM training, which
  is known to overfit catastrophically to the attack.

Adversarial examples are made with the network in eval mode (BatchNorm's running statistics,
no dropout, as TRADES' reference code does), so the attack neither updates the statistics nor
sees a random network; the step then trains in train mode.

A classifier draws no images (`abilities.generates` is false): its grids show banked training
images beside what PGD at the model's eps makes of them against the averaged network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.config import require
from pixelsmith.errors import UserError
from pixelsmith.models.base import Abilities, Batch, Family, Preset, SampleConfig, StepContext

FEATURE_DIM = 128
ATTACKS = ("none", "pgd", "trades", "fgsm")
NORMS = ("linf", "l2")
ARCHS = ("small", "tanh", "scatter")
NORM_LAYERS = ("batch", "group")
OPTIMIZERS = ("adamw", "sgd")
# GroupNorm's groups in SmallCNN (every width is a multiple of 8).
GROUPS = 8
# GroupNorm's groups over a ScatterNet's 81 paths per channel (Tramer and Boneh's choice).
SCATTER_GROUPS = 27
# Training images kept for the grids (a pair of images each: clean, attacked).
BANK = 32
# The attack the grids show: PGD of this many steps at the model's eps.
GRID_STEPS = 10


# ---- the network ------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """conv32-pool-conv64-pool-conv128-fc128-fc(classes) with BatchNorm and ReLU.

    Takes images in [0, 1] and normalises them with its `mean` and `std` buffers. The defaults
    (one channel, 28x28) are the metrics' shipped networks: module names, shapes and the order
    of initialisation must stay as they are, so that their recipes re-make the same bits.
    """

    def __init__(
        self,
        classes: int = 10,
        dropout: float = 0.3,
        channels: int = 1,
        size: tuple[int, int] = (28, 28),
        norm_layer: str = "batch",
    ) -> None:
        super().__init__()

        def norm(c: int) -> nn.Module:
            # GroupNorm normalises each image on its own: what private training needs.
            return nn.BatchNorm2d(c) if norm_layer == "batch" else nn.GroupNorm(GROUPS, c)

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(channels, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            nn.MaxPool2d(2),
            *block(64, 128),
            nn.Flatten(),
            nn.Linear(128 * (size[0] // 4) * (size[1] // 4), FEATURE_DIM, bias=False),
            nn.BatchNorm1d(FEATURE_DIM)
            if norm_layer == "batch"
            else nn.GroupNorm(GROUPS, FEATURE_DIM),
            nn.ReLU(),
        )
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(FEATURE_DIM, classes)
        self.register_buffer("mean", torch.tensor(0.5), persistent=True)
        self.register_buffer("std", torch.tensor(0.5), persistent=True)

    def embed(self, x: Tensor) -> Tensor:
        """128-d penultimate features of (N, C, H, W) images in [0, 1]."""
        return self.body((x - self.mean) / self.std)

    def forward(self, x: Tensor) -> Tensor:
        """Logits."""
        return self.head(self.drop(self.embed(x)))

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both outputs from one pass (inference)."""
        f = self.embed(x)
        return f, self.head(f)


class TanhCNN(nn.Module):
    """Papernot et al.'s (2021) CNN for private training, as Tramer and Boneh (2021) train it:
    conv16 8x8/2, conv32 4x4/2 (each tanh and 2x2 max-pool of stride 1), fc32, fc(classes).

    26k parameters and no normalisation layer: per-sample gradients stay cheap and the tempered
    (tanh) activations keep them bounded. Same interface as SmallCNN (images in [0, 1]).
    """

    def __init__(
        self, classes: int = 10, channels: int = 1, size: tuple[int, int] = (28, 28)
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 8, stride=2, padding=2),
            nn.Tanh(),
            nn.MaxPool2d(2, 1),
            nn.Conv2d(16, 32, 4, stride=2),
            nn.Tanh(),
            nn.MaxPool2d(2, 1),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.body(torch.zeros(1, channels, *size)).shape[1]
        self.fc = nn.Sequential(nn.Linear(flat, 32), nn.Tanh())
        self.head = nn.Linear(32, classes)
        self.register_buffer("mean", torch.tensor(0.5), persistent=True)
        self.register_buffer("std", torch.tensor(0.5), persistent=True)

    def embed(self, x: Tensor) -> Tensor:
        """32-d penultimate features of (N, C, H, W) images in [0, 1]."""
        return self.fc(self.body((x - self.mean) / self.std))

    def forward(self, x: Tensor) -> Tensor:
        """Logits."""
        return self.head(self.embed(x))


class ScatterLinear(nn.Module):
    """Tramer and Boneh's (2021) ScatterNet + linear model: fixed scattering features (J=2,
    81 paths per channel at a quarter of the size), GroupNorm without weights (27 groups, so
    nothing about the data is learnt outside DP-SGD), then one linear layer. Images in [0, 1]."""

    def __init__(
        self, classes: int = 10, channels: int = 1, size: tuple[int, int] = (28, 28)
    ) -> None:
        super().__init__()
        from pixelsmith.nn.scattering import Scattering, scattering_paths

        k = channels * scattering_paths(2)
        self.scatter = Scattering(size, j=2)
        self.norm = nn.GroupNorm(SCATTER_GROUPS * channels, k, affine=False)
        self.head = nn.Linear(k * (size[0] // 4) * (size[1] // 4), classes)

    def embed(self, x: Tensor) -> Tensor:
        """The normalised scattering features, flattened."""
        return self.norm(self.scatter(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits."""
        return self.head(self.embed(x))


class ImageClassifier(nn.Module):
    """A trained classifier as a plain module: (N, C, H, W) float images in [0, 1] -> logits
    (N, K). Frozen and in eval mode; what attacks and other libraries take."""

    def __init__(self, net: nn.Module, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.net = net
        self.image_shape = tuple(image_shape)
        self.requires_grad_(False).eval()

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            want = ", ".join(map(str, self.image_shape))
            raise UserError(
                f"the classifier takes (N, {want}) images in [0, 1], got {tuple(x.shape)}"
            )
        return self.net(x)


class Bank(nn.Module):
    """The first training images and labels seen (uint8), for the grids."""

    def __init__(self, image_shape: tuple[int, int, int], size: int = BANK) -> None:
        super().__init__()
        self.register_buffer("images", torch.zeros(size, *image_shape, dtype=torch.uint8))
        self.register_buffer("labels", torch.zeros(size, dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def remember(self, images: Tensor, labels: Tensor) -> None:
        """Keep images (floats in [0, 1]) until the bank is full."""
        start = int(self.filled)
        k = min(self.images.shape[0] - start, len(images))
        if k > 0:
            self.images[start : start + k] = (images[:k] * 255).round().clamp(0, 255).byte()
            self.labels[start : start + k] = labels[:k]
            self.filled += k


# ---- settings and presets -----------------------------------------------------------------------


@dataclass
class ClassifierConfig:
    """Settings of the classifier family: the optimiser and the attack it trains against."""

    # small: SmallCNN (the metrics' network); tanh: Papernot et al.'s CNN for private training;
    # scatter: ScatterNet features and a linear layer (kymatio, the privacy extra).
    arch: str = "small"
    # SmallCNN's normalisation: batch, or group (private training refuses BatchNorm).
    norm_layer: str = "batch"
    dropout: float = 0.3
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    # SGD's momentum.
    momentum: float = 0.9
    # What each batch is perturbed by before the step: none, pgd, trades or fgsm (see the
    # module doc).
    attack: str = "none"
    norm: str = "linf"
    # The radius of the ball, on pixel values in [0, 1].
    eps: float = 0.1
    # Attack steps; unset: 10 for pgd and trades, 1 for fgsm (which takes no other).
    steps: int | None = None
    # Step size; unset: eps/4 (Linf) or 2.5 eps/steps (L2) for pgd and trades, 1.25 eps for fgsm.
    alpha: float | None = None
    random_start: bool = True
    # TRADES: the weight of KL(f(x) || f(x_adv)) against the clean cross-entropy.
    beta: float = 6.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise UserError on impossible settings."""
        for key, allowed in (
            ("arch", ARCHS),
            ("norm_layer", NORM_LAYERS),
            ("optimizer", OPTIMIZERS),
        ):
            value = getattr(self, key)
            require(
                value in allowed,
                f"model.{key} must be one of {', '.join(allowed)}, got {value!r}",
            )
        require(0 <= self.momentum < 1, f"model.momentum must lie in [0, 1), got {self.momentum}")
        require(0 <= self.dropout < 1, f"model.dropout must lie in [0, 1), got {self.dropout}")
        require(self.lr > 0, f"model.lr must be positive, got {self.lr}")
        require(self.weight_decay >= 0, f"model.weight_decay must be >= 0, got {self.weight_decay}")
        require(
            all(0 <= b < 1 for b in self.betas), f"model.betas must lie in [0, 1), got {self.betas}"
        )
        require(
            self.attack in ATTACKS,
            f"model.attack must be one of {', '.join(ATTACKS)}, got {self.attack!r}",
        )
        require(self.norm in NORMS, f"model.norm must be linf or l2, got {self.norm!r}")
        require(self.eps > 0, f"model.eps must be positive, got {self.eps}")
        require(
            self.norm != "linf" or self.eps <= 1,
            f"model.eps={self.eps} is wider than the [0, 1] pixel range; Linf budgets are "
            "fractions of it, e.g. 0.1",
        )
        require(
            self.steps is None or self.steps >= 1, f"model.steps must be >= 1, got {self.steps}"
        )
        require(
            self.attack != "fgsm" or self.steps in (None, 1),
            f"fgsm takes one step, but model.steps={self.steps}; use model.attack=pgd for more",
        )
        require(
            self.alpha is None or self.alpha > 0, f"model.alpha must be positive, got {self.alpha}"
        )
        require(self.beta >= 0, f"model.beta must be >= 0, got {self.beta}")

    def attack_settings(self) -> dict[str, Any]:
        """The attack trained against, its defaults resolved ({"attack": "none"} for none)."""
        if self.attack == "none":
            return {"attack": "none"}
        steps = self.steps or (1 if self.attack == "fgsm" else 10)
        alpha = self.alpha
        if alpha is None:
            if self.attack == "fgsm":
                alpha = 1.25 * self.eps
            else:
                alpha = self.eps / 4 if self.norm == "linf" else 2.5 * self.eps / steps
        out = {
            "attack": self.attack,
            "norm": self.norm,
            "eps": self.eps,
            "steps": steps,
            "alpha": alpha,
            "random_start": self.random_start,
        }
        if self.attack == "trades":
            out["beta"] = self.beta
        return out


_ROBUST = {"eps": 0.1, "alpha": 0.025, "steps": 10}
PRESETS: dict[str, Preset] = {
    "classifier": Preset(
        "standard training (clean cross-entropy): the undefended baseline", 10.0,
        {"train": {"batch": 128}},
    ),
    "classifier-pgd": Preset(
        "PGD adversarial training (Madry et al.), Linf eps 0.1, 10 steps of 0.025", 120.0,
        {"model": {"attack": "pgd", **_ROBUST}, "train": {"batch": 128}},
    ),
    "classifier-trades": Preset(
        "TRADES (Zhang et al.), beta 6, Linf eps 0.1, 10 steps of 0.025", 120.0,
        {"model": {"attack": "trades", "beta": 6.0, **_ROBUST}, "train": {"batch": 128}},
    ),
    "classifier-fast": Preset(
        "fast adversarial training (Wong et al.): FGSM from a random start, Linf eps 0.1, "
        "step 1.25 eps", 20.0,
        {
            "model": {"attack": "fgsm", "eps": 0.1, "alpha": 0.125, "steps": 1},
            "train": {"batch": 128},
        },
    ),
    "classifier-dp": Preset(
        "differentially private (DP-SGD) at epsilon 3, delta 1e-5: Tramer and Boneh's "
        "ScatterNet + linear recipe (kymatio; SGD lr 16, momentum 0.9, batch 8192, clip 0.1, "
        "40 epochs)", 10.0,
        {
            "model": {"arch": "scatter", "optimizer": "sgd", "lr": 16.0, "momentum": 0.9,
                      "weight_decay": 0.0, "dropout": 0.0},
            "train": {"batch": 8192, "epochs": 40, "log_every": 5, "sample_every": 50},
            "privacy": {"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 0.1},
        },
    ),
    "classifier-dp-cnn": Preset(
        "differentially private (DP-SGD) at epsilon 3, delta 1e-5, end to end: Tramer and "
        "Boneh's recipe for Papernot et al.'s tanh CNN (SGD lr 4, momentum 0.9, batch 2048, "
        "clip 0.1, 40 epochs)", 15.0,
        {
            "model": {"arch": "tanh", "optimizer": "sgd", "lr": 4.0, "momentum": 0.9,
                      "weight_decay": 0.0, "dropout": 0.0},
            "train": {"batch": 2048, "epochs": 40, "log_every": 10, "sample_every": 100},
            "privacy": {"epsilon": 3.0, "delta": 1e-5, "max_grad_norm": 0.1},
        },
    ),
}  # fmt: skip


# ---- the family -----------------------------------------------------------------------------


class Classifier(Family):
    """A small CNN classifier with an EMA copy, trained plainly or against an attack."""

    name = "classifier"
    Config = ClassifierConfig
    abilities = Abilities(generates=False, classifies=True)
    presets = PRESETS
    ema_pairs = {"net": "net_ema"}
    private_networks = ("net",)
    not_exported = (
        "exporting classifiers is not built yet; pixelsmith.load(RUN).classifier() is the "
        "torch module (images in [0, 1] to logits)"
    )
    max_size = 128

    def __init__(
        self, cfg: ClassifierConfig, image_shape: tuple[int, int, int], num_classes: int = 0
    ):
        super().__init__(cfg, image_shape, num_classes)
        cfg.validate()
        c, h, w = self.image_shape
        if min(h, w) < 4:
            raise UserError(f"{h}x{w} images are too small for the classifier (at least 4x4)")
        if num_classes < 2:
            raise UserError(
                "a classifier needs labelled data with at least 2 classes; use a labelled source "
                "(fashion-mnist, mnist, shapes) or a folder with one sub-folder per class"
            )
        if cfg.arch == "tanh" and min(h, w) < 16:
            raise UserError(
                f"{h}x{w} images are too small for the tanh CNN (at least 16x16); use "
                "model.arch=small with model.norm_layer=group"
            )
        if cfg.arch == "tanh":
            net: nn.Module = TanhCNN(num_classes, c, (h, w))
        elif cfg.arch == "scatter":
            net = ScatterLinear(num_classes, c, (h, w))
        else:
            net = SmallCNN(num_classes, cfg.dropout, c, (h, w), cfg.norm_layer)
        self.networks = {
            "net": net,
            "memory": Bank(self.image_shape),
        }

    def configure_optimizers(self) -> None:
        """AdamW (or SGD with momentum) over the network."""
        c = self.cfg
        params = self.networks["net"].parameters()
        if c.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, c.lr, momentum=c.momentum, weight_decay=c.weight_decay, foreach=True
            )
        else:
            # foreach, not fused: fused CPU Adam is not bit-exact across a checkpoint reload.
            opt = torch.optim.AdamW(
                params, c.lr, betas=c.betas, weight_decay=c.weight_decay, foreach=True
            )
        self.optimizers = {"net": opt}

    # ---- training -----------------------------------------------------------------------

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One AdamW step on the clean, attacked (pgd, fgsm) or TRADES loss; logs the loss and
        the batch's accuracy on its clean ("acc") and attacked ("acc_adv") images."""
        if batch.labels is None:
            raise UserError("a classifier needs labelled batches; use a labelled data source")
        x, y, c = batch.images, batch.labels, self.cfg
        self.networks["memory"].remember(x, y)
        net = self.networks["net"]
        if c.attack == "none":
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            logs = {"acc": _acc(logits, y)}
        elif c.attack == "trades":
            x_adv = self.perturb(x, y, ctx)
            logits = net(x)
            logits_adv = net(x_adv)
            ce = F.cross_entropy(logits, y)
            kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits, 1), reduction="batchmean")
            loss = ce + c.beta * kl
            logs = {"ce": ce.item(), "kl": kl.item()}
            logs |= {"acc": _acc(logits, y), "acc_adv": _acc(logits_adv, y)}
        else:
            logits = net(self.perturb(x, y, ctx))
            loss = F.cross_entropy(logits, y)
            logs = {"acc_adv": _acc(logits, y)}
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        ctx.sync(net)
        opt.step()
        return {"loss": loss.item(), **logs}

    def perturb(self, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor:
        """The batch's adversarial examples against the network (in eval mode), seeded by the
        step's random stream."""
        seed = int(ctx.rng.randint(2**31 - 1, 1)[0])
        with self.inference("net", average=False) as net:
            return self._attack(net, x, y, seed, **self.cfg.attack_settings())

    @staticmethod
    def _attack(
        net: nn.Module,
        x: Tensor,
        y: Tensor,
        seed: int,
        attack: str,
        norm: str,
        eps: float,
        steps: int,
        alpha: float,
        random_start: bool,
        beta: float | None = None,  # noqa: ARG004 - the loss's weight, not the attack's
    ) -> Tensor:
        from pixelsmith.nn.attacks import pgd

        loss = "trades" if attack == "trades" else "ce"
        # The global generator is left alone (dropout masks draw from it), whatever the attack
        # draws its random start from.
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            return pgd(
                net, x, y, eps, norm=norm, alpha=alpha, steps=steps,
                random_start=random_start, loss=loss, seed=seed,
            )  # fmt: skip

    def defence_settings(self) -> dict[str, Any]:
        """The attack the model was trained against, as cards record it."""
        return self.cfg.attack_settings()

    # ---- classifying ----------------------------------------------------------------------

    def _as_unit(self, images: Tensor) -> Tensor:
        """uint8 images or floats in [0, 1], (N, C, H, W) or (C, H, W) -> float (N, C, H, W)."""
        images = torch.as_tensor(images)
        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or tuple(images.shape[1:]) != self.image_shape:
            want = ", ".join(map(str, self.image_shape))
            raise UserError(
                f"the classifier takes (N, {want}) images like its training data, got "
                f"{tuple(images.shape)}"
            )
        return images.float() / 255 if images.dtype == torch.uint8 else images.float()

    @torch.no_grad()
    def classify(self, images: Tensor, batch: int = 1000) -> Tensor:
        """Logits (N, K) on the CPU of images (uint8, or float in [0, 1]), by the averaged
        network in eval mode."""
        x = self._as_unit(images)
        with self.inference("net") as net:
            out = [
                net(x[i : i + batch].to(self.device)).float().cpu() for i in range(0, len(x), batch)
            ]
        return torch.cat(out) if out else torch.empty(0, self.num_classes)

    def classifier(self) -> nn.Module:
        """A frozen copy of the averaged network in eval mode, as an nn.Module mapping
        (N, C, H, W) float images in [0, 1] to logits: what attacks take."""
        return ImageClassifier(copy.deepcopy(self.inference_net("net")), self.image_shape)

    # ---- grids ----------------------------------------------------------------------------

    def draw(self, n: int, seed: int, opts: SampleConfig, labels: Tensor | None) -> Tensor:
        """n images as [banked training image, its PGD example] pairs, the images chosen and
        the attack seeded by `seed`: PGD-10 at the model's eps against the averaged network."""
        bank = self.networks["memory"]
        filled = int(bank.filled)
        if filled == 0:
            raise UserError(
                "this classifier has seen no training images yet, so it has none to show; train "
                "it for a step first"
            )
        pairs = -(-n // 2)
        pick = torch.randint(filled, (pairs,), generator=torch.Generator().manual_seed(seed))
        pick = pick.to(bank.images.device)
        x = bank.images[pick].float().to(self.device) / 255
        y = bank.labels[pick].to(self.device)
        c = self.cfg
        alpha = c.eps / 4 if c.norm == "linf" else 2.5 * c.eps / GRID_STEPS
        with self.inference("net") as net:
            adv = self._attack(net, x, y, seed, "pgd", c.norm, c.eps, GRID_STEPS, alpha, True)
        return torch.stack([x, adv], 1).flatten(0, 1)[:n].float().cpu()


def _acc(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())
