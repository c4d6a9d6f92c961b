"""Distillation of a GAN generator into a thinner one (GAN Compression style, Li et al. 2020).

A student generator with `width` of the teacher's channels learns, on the same z, the teacher's
images (pixel L1), its hidden activations (MSE through 1x1 adapters from the student's
channels to the teacher's) and to fool the teacher's discriminator, which is fine-tuned
against the student on real images. The teacher is a trained `gan` model (a checkpoint or run
folder: `model.teacher`, its payload hash checked on every build, so a resume uses the same
one); it is loaded for training only and never saved in the student's checkpoints.

The student starts from the teacher's highest-L1 channels (`student_init=prune`, see
distill_prune.py) or from a fresh initialisation (`random`). A distilled run folder loads, for
inference, as the plain `gan` model it is (`Distill.from_checkpoint`), so sampling, evaluation,
export and the latency bench treat it as any GAN.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.config import require
from pixelsmith.errors import UserError, warn
from pixelsmith.models.adversarial import d_loss, g_loss
from pixelsmith.models.base import Batch, Family, Preset, StepContext
from pixelsmith.models.distill_prune import hidden_widths, prune_into
from pixelsmith.models.gan import GAN, Discriminator, GANConfig, Generator
from pixelsmith.utils import checkpoint_file as ckf

UNTRAINED = "untrained"  # model.teacher for smoke tests: a fresh GAN stands in for a teacher
# The teacher's settings the student's networks are built from (they must match the teacher).
ARCHITECTURE = (
    "z_dim",
    "g_channels",
    "d_channels",
    "max_channels",
    "g_norm",
    "spectral_norm",
    "conditional",
    "class_norm",
    "clusters",
)


@dataclass
class DistillConfig(GANConfig):
    """The teacher's GAN settings (ARCHITECTURE copied from it), plus the distillation's."""

    teacher: str = ""
    teacher_sha256: str = ""
    width: float = 0.5
    student_init: str = "prune"
    l1_weight: float = 10.0
    feature_weight: float = 1.0
    adv_weight: float = 1.0
    lr_d: float = 2e-4

    def validate(self) -> None:
        """Also refuse widths outside (0, 1), unknown inits and negative loss weights."""
        super().validate()
        require(
            0 < self.width < 1,
            f"model.width must be a fraction of the teacher's channels, 0 < width < 1; got "
            f"{self.width} (e.g. 0.5 for half the channels)",
        )
        require(
            self.student_init in ("prune", "random"),
            f"model.student_init must be prune or random, got {self.student_init!r}",
        )
        for key in ("l1_weight", "feature_weight", "adv_weight"):
            require(getattr(self, key) >= 0, f"model.{key} must be >= 0")
        # the student's step is one Adam update of each network with the plain adversarial
        # losses: settings of the GAN step it does not run are refused, not ignored
        unused = {
            "optimizer": self.optimizer != "adam",
            "n_critic": self.n_critic != 1,
            "r1_gamma": self.r1_gamma > 0,
            "diffaugment": bool(self.diffaugment),
            "loss": self.loss == "wgan-gp",
        }
        bad = [k for k, v in unused.items() if v]
        require(
            not bad,
            f"distillation does not use model.{bad[0] if bad else ''} (it runs Adam, one critic "
            "step per student step, ns or hinge losses, no R1 or DiffAugment); leave it unset",
        )


def _gan_fields(cfg: GANConfig) -> dict[str, Any]:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(GANConfig)}


def student_config(cfg: GANConfig, width: float) -> GANConfig:
    """The GAN settings of a generator with `width` of `cfg`'s channels (at least 1 each)."""
    fields = _gan_fields(cfg)
    fields["g_channels"] = max(1, round(cfg.g_channels * width))
    fields["max_channels"] = max(1, round(cfg.max_channels * width))
    return GANConfig(**fields)


def student_model(
    cfg: GANConfig, width: float, image_shape: tuple[int, int, int], num_classes: int = 0
) -> GAN:
    """A gan model whose generator has `width` of `cfg`'s channels and whose discriminator is
    `cfg`'s own (the teacher's, which a student run fine-tunes)."""
    model = GAN(student_config(cfg, width), image_shape, num_classes)
    model.networks["D"] = Discriminator(cfg, image_shape, model.label_count)
    return model


def teacher_settings(teacher: str | Path) -> dict[str, Any]:
    """The model settings a student of `teacher` (checkpoint or run folder) must have."""
    path = ckf.resolve_checkpoint(teacher)
    man = ckf.read_manifest(path)
    if man.get("family") != "gan":
        raise UserError(
            f"{teacher} holds a {man.get('family')} model; distillation takes a gan teacher"
        )
    saved = man["config"]["model"]
    return {
        **{k: saved[k] for k in ARCHITECTURE if k in saved},
        "teacher": str(path),
        "teacher_sha256": str(man.get("payload_sha256", "")),
    }


class Distill(GAN):
    """A thinner GAN generator trained against a frozen teacher and its fine-tuned critic."""

    name = "distill"
    Config = DistillConfig
    presets = {
        "distill": Preset(
            "a generator with model.width of a gan teacher's channels, distilled from it "
            "(pixelsmith compress RUN --width W sets the teacher)",
            15.0,
            {"train": {"batch": 32}},
        )
    }
    ema_pairs = {"G": "G_ema"}

    def __init__(self, cfg: DistillConfig, image_shape: tuple[int, int, int], num_classes: int = 0):
        Family.__init__(self, cfg, image_shape, num_classes)
        cfg.validate()
        self.classes = self.require_classes(cfg.conditional, "GAN")
        if cfg.teacher == UNTRAINED:  # the contract's smoke runs: every preset trains on any data
            warn("model.teacher=untrained: the student learns an untrained teacher (for tests)")
            teacher = GAN(GANConfig(**_gan_fields(cfg)), image_shape, num_classes)
            teacher.add_ema_copies()
        elif cfg.teacher:
            teacher = self._load_teacher(cfg, image_shape)
        else:
            raise UserError(
                "distillation needs a teacher: pixelsmith compress RUN --width W (or --set "
                "model.teacher=RUN with the teacher's architecture)"
            )
        self.teacher = teacher.networks["G_ema"].eval().requires_grad_(False)
        labels = self.label_count
        student = Generator(student_config(cfg, cfg.width), image_shape, labels)
        if cfg.student_init == "prune":
            prune_into(self.teacher, student)
        critic = Discriminator(cfg, image_shape, labels)
        critic.load_state_dict(teacher.networks["D"].state_dict())
        adapters = nn.ModuleList(
            nn.Conv2d(s, t, 1)
            for s, t in zip(hidden_widths(student), hidden_widths(self.teacher), strict=True)
        )
        self.networks = {"G": student, "D": critic, "adapters": adapters}

    def _load_teacher(self, cfg: DistillConfig, shape: tuple[int, int, int]) -> GAN:
        try:
            teacher = GAN.from_checkpoint(cfg.teacher)
        except FileNotFoundError:
            raise UserError(f"model.teacher {cfg.teacher} does not exist") from None
        sha = str(teacher.manifest.get("payload_sha256", ""))
        if not cfg.teacher_sha256:  # pinned now: the run's config records it, so a resume checks
            cfg.teacher_sha256 = sha
        elif sha != cfg.teacher_sha256:
            raise UserError(
                f"the teacher {cfg.teacher} changed since this run began (payload {sha[:12]}, "
                f"not {cfg.teacher_sha256[:12]}); distil from the same teacher or start anew"
            )
        mismatch = [k for k in ARCHITECTURE if getattr(teacher.cfg, k) != getattr(cfg, k)]
        if mismatch or tuple(teacher.image_shape) != tuple(shape):
            what = ", ".join(f"model.{k}" for k in mismatch) or "the image shape"
            raise UserError(
                f"{what} of this run differ from the teacher {cfg.teacher}'s; take them from it "
                "(pixelsmith compress does) and train on its data"
            )
        return teacher

    @classmethod
    def inference_model(
        cls, cfg: DistillConfig, image_shape: tuple[int, int, int], num_classes: int
    ) -> Family:
        """The student for inference: a plain `gan` model of the student's widths (no teacher
        needed); from_checkpoint loads the run's weights and manifest into it."""
        return student_model(cfg, cfg.width, image_shape, num_classes)

    def to(self, device: str | torch.device) -> Family:
        """Move the networks and the teacher to `device`."""
        super().to(device)
        self.teacher.to(self.device)
        return self

    def configure_optimizers(self) -> None:
        """Adam for the student with its adapters, and for the critic."""
        c, nets = self.cfg, self.networks
        g_params = [*nets["G"].parameters(), *nets["adapters"].parameters()]
        self.optimizers = {
            "G": torch.optim.Adam(g_params, c.lr_g, betas=c.betas, foreach=True),
            "D": torch.optim.Adam(nets["D"].parameters(), c.lr_d, betas=c.betas, foreach=True),
        }

    def losses(self, z: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
        """The student's distillation losses on z (no adversarial term): l1 and feature."""
        with torch.no_grad():
            t_feats, t_img = self.teacher.run(z, labels)
        s_feats, s_img = self.networks["G"].run(z, labels)
        adapters = self.networks["adapters"]
        feat = sum(
            F.mse_loss(a(s), t) for a, s, t in zip(adapters, s_feats, t_feats, strict=True)
        ) / len(t_feats)
        return {"l1": (s_img - t_img).abs().mean(), "feature": feat, "image": s_img}

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        """One critic update on real vs student images, then one student update."""
        c, nets, opt = self.cfg, self.networks, self.optimizers
        G, D = nets["G"], nets["D"]
        # a self-conditioned pair draws in the real images' clusters, as GAN training does
        y = batch.labels if c.conditioned else None
        z = ctx.rng.randn(len(batch.images), c.z_dim)
        parts = self.losses(z, y)
        fake = parts.pop("image")
        score = (lambda x: D(x)) if y is None else (lambda x: D(x, y))
        D.requires_grad_(True)
        loss_d = d_loss(c.loss, score(batch.images * 2 - 1), score(fake.detach()))
        opt["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        ctx.sync(D)
        opt["D"].step()
        D.requires_grad_(False)
        adv = g_loss(c.loss, score(fake))
        loss_g = (
            c.l1_weight * parts["l1"] + c.feature_weight * parts["feature"] + c.adv_weight * adv
        )
        opt["G"].zero_grad(set_to_none=True)
        loss_g.backward()
        ctx.sync(G)
        ctx.sync(nets["adapters"])
        opt["G"].step()
        return {
            "loss_d": float(loss_d.detach()),
            "loss_g": float(loss_g.detach()),
            "l1": float(parts["l1"].detach()),
            "feature": float(parts["feature"].detach()),
            "adv": float(adv.detach()),
        }
