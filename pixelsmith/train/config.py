"""The resolved configuration of a training run: its preset, model, sampling, data and engine
settings, resolved from the preset's row, a saved run, a YAML file and --set overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelsmith import config as cfglib
from pixelsmith.config import require
from pixelsmith.data.augment import AugmentConfig
from pixelsmith.data.sources import check_domains
from pixelsmith.models import preset_name, resolve_preset
from pixelsmith.train.privacy import PrivacyConfig


@dataclass
class DataConfig:
    """Where images come from and how they are prepared."""

    source: str = "fashion-mnist"
    split: str = "train"
    channels: int | None = None
    # Unset: named sources keep their size; a folder keeps one size up to 128 pixels, and
    # anything else (large photos, mixed sizes) is resized to 64x64, as the run says.
    size: int | None = None
    limit: int | None = None
    # Two domains "A:B" of a labelled source, relabelled 0 and 1 (e.g. "sneaker:ankle boot",
    # "7:9"; each side a comma list of class names or indices), "auto" (a 2-class source as it
    # is, else the source's default pair), or null for all classes; `limit` then caps each domain.
    domains: str | None = None
    # Random data.size crops of each image at its own resolution instead of whole images
    # resized: how many (restoration models; the `photos` source always crops, 8,000 by default).
    patches: int | None = None
    # Batches with the same count of every class (per process too); see train/batches.py.
    balance: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        require(
            self.channels in (None, 1, 3, 4),
            f"data.channels must be 1, 3 or 4, got {self.channels}",
        )
        self.domains = check_domains(self.domains)
        for key in ("size", "limit", "patches"):
            v = getattr(self, key)
            require(v is None or v > 0, f"data.{key} must be a positive integer, got {v}")
        self.augment.__post_init__()


@dataclass
class TrainConfig:
    """Engine settings shared by every family."""

    seed: int = 0
    batch: int = 64
    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    # The learning rate's schedule over the budget (train/schedule.py): constant, cosine or
    # step; warmup is a fraction of the budget; floor the cosine's end factor; step multiplies
    # by lr_gamma at each fraction in lr_milestones.
    lr_schedule: str = "constant"
    warmup: float = 0.0
    lr_floor: float = 0.0
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 2000
    checkpoint_minutes: float = 5.0
    keep: int = 3
    # TensorBoard event files in <run>/tensorboard when the tensorboard extra is installed
    # (never for an encrypted run): train/events.py.
    tensorboard: bool = True
    grid_size: int = 64
    grid_seed: int = 0
    threads: int | None = None  # unset: OMP_NUM_THREADS for one process, else cores / processes
    channels_last: bool = True
    # bf16: the training steps run under torch.autocast in bfloat16 (weights, optimiser state
    # and EMA stay float32). It pays where the hardware has bf16 matrix units (AMX on recent
    # Xeons, tensor cores on GPUs) and costs where it has none (AVX2-only CPUs); auto picks bf16
    # there and fp32 elsewhere (the manifest records which).
    precision: str = "fp32"
    device: str = "auto"
    # Scores while training (every eval_every steps; 0 = never) and once at the end. "auto"
    # metrics are the family's own (FID and KID for a model that draws images, translation
    # for CycleGAN); "auto" features are the data set's shipped classifier, and a sample
    # metric with none to use is skipped at the end and refused for eval_every.
    eval_every: int = 0
    eval_at_end: bool = True
    eval_n: int = 10_000
    eval_metrics: str = "auto"
    eval_features: str = "auto"
    # Transfer learning (train/transfer.py): a new run starts from the weights of a run folder,
    # checkpoint or zoo:NAME (tensors matched by name and shape), and FreezeD keeps the
    # discriminator's first freeze_d layers fixed.
    init: str | None = None
    freeze_d: int = 0

    def validate(self) -> None:
        for key in ("batch", "log_every", "sample_every", "checkpoint_every", "grid_size"):
            v = getattr(self, key)
            require(v > 0, f"train.{key} must be a positive integer, got {v}")
        for key in ("steps", "epochs", "minutes", "threads"):
            v = getattr(self, key)
            require(v is None or v > 0, f"train.{key} must be positive, got {v}")
        require(self.eval_every >= 0, f"train.eval_every must be >= 0, got {self.eval_every}")
        require(self.freeze_d >= 0, f"train.freeze_d must be >= 0, got {self.freeze_d}")
        require(self.eval_n >= 2, f"train.eval_n must be at least 2, got {self.eval_n}")
        require(self.keep >= 1, f"train.keep must be at least 1, got {self.keep}")
        require(self.ema_kimg > 0, f"train.ema_kimg must be positive, got {self.ema_kimg}")
        require(
            self.lr_schedule in ("constant", "cosine", "step"),
            f"train.lr_schedule must be constant, cosine or step, got {self.lr_schedule!r}",
        )
        require(0 <= self.warmup < 1, f"train.warmup must lie in [0, 1), got {self.warmup}")
        require(0 <= self.lr_floor <= 1, f"train.lr_floor must lie in [0, 1], got {self.lr_floor}")
        require(0 < self.lr_gamma <= 1, f"train.lr_gamma must lie in (0, 1], got {self.lr_gamma}")
        require(
            all(0 < m < 1 for m in self.lr_milestones),
            f"train.lr_milestones are fractions of the budget in (0, 1), got {self.lr_milestones}",
        )
        require(
            self.precision in ("fp32", "bf16", "auto"),
            f"train.precision must be fp32, bf16 or auto, got {self.precision!r}",
        )
        require(
            self.device in ("auto", "cpu") or self.device.startswith("cuda"),
            f"train.device must be auto, cpu or cuda[:N], got {self.device!r}",
        )


@dataclass
class RunConfig:
    """Everything that defines a run; `model` and `sample` are the family's own dataclasses."""

    # Named on the command line (`pixelsmith train PRESET`), not settable.
    preset: str = field(metadata=cfglib.FIXED)
    family: str = field(metadata=cfglib.FIXED)
    model: Any
    sample: Any
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Differentially private training (train/privacy.py); off unless epsilon or noise is set.
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    def validate(self) -> None:
        self.model.validate()
        self.sample.check(self.model)
        self.data.validate()
        self.train.validate()
        self.privacy.validate()


def build_config(
    preset: str,
    yaml_file: str | Path | None = None,
    overrides: list[str] = (),
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Resolve a preset's row, then a saved run's config, a YAML file and --set overrides.

    A run given no budget (train.steps, epochs or minutes) trains for its preset's minutes.
    """
    fam, row = resolve_preset(preset)
    cfg = RunConfig(preset_name(preset), fam.name, fam.Config(), fam.SampleConfig())
    cfglib.apply(cfg, row.settings)
    if base:
        base = {k: v for k, v in base.items() if k not in ("preset", "family", "variant")}
        model, sample = fam.upgrade(dict(base.get("model", {})))
        base["model"], base["sample"] = model, {**sample, **base.get("sample", {})}
        cfglib.apply(cfg, base)
    if yaml_file:
        data = cfglib.load_yaml(yaml_file)
        data.pop("preset", None), data.pop("family", None)
        cfglib.apply(cfg, data)
    cfglib.apply_overrides(cfg, list(overrides))
    tc = cfg.train
    if not (tc.steps or tc.epochs or tc.minutes):
        tc.minutes = row.minutes
    cfg.validate()
    return cfg


# Presets of older versions: (preset, `--preset` bundle) -> today's preset.
_RENAMED = {"small": "{}-30min"}


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig saved in a manifest or config.yaml (older layouts included)."""
    preset, variant = data["preset"], data.get("variant") or ""
    if variant:
        preset = _RENAMED.get(variant, "{}-" + variant).format(preset)
    return build_config(preset, base=data)
