"""The resolved configuration of a training run: model preset, data, and engine settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelsmith import config as cfglib
from pixelsmith.config import require
from pixelsmith.data.augment import AugmentConfig
from pixelsmith.data.sources import check_domains
from pixelsmith.errors import UserError
from pixelsmith.models import resolve_preset


@dataclass
class DataConfig:
    """Where images come from and how they are prepared."""

    source: str = "fashion-mnist"
    split: str = "train"
    channels: int | None = None
    size: int | None = None
    limit: int | None = None
    # Two domains "A:B" of a labelled source, relabelled 0 and 1 (e.g. "sneaker:ankle boot",
    # "7:9"; each side a comma list of class names or indices), "auto" (a 2-class source as it
    # is, else the source's default pair), or null for all classes; `limit` then caps each domain.
    domains: str | None = None
    # Batches with the same count of every class (per process too); see train/batches.py.
    balance: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        require(
            self.channels in (None, 1, 3, 4),
            f"data.channels must be 1, 3 or 4, got {self.channels}",
        )
        self.domains = check_domains(self.domains)
        for key in ("size", "limit"):
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
    ema_kimg: float = 10.0
    ema_rampup: float | None = 0.05
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 2000
    checkpoint_minutes: float = 5.0
    keep: int = 3
    grid_size: int = 64
    grid_seed: int = 0
    threads: int | None = None
    channels_last: bool = True
    device: str = "auto"
    # FID/KID while training (every eval_every steps; 0 = never) and once at the end; "auto"
    # features are the shipped classifier for the data set, and no evaluation where none exists.
    eval_every: int = 0
    eval_at_end: bool = True
    eval_n: int = 10_000
    eval_metrics: str = "fid,kid"
    eval_features: str = "auto"

    def validate(self) -> None:
        for key in ("batch", "log_every", "sample_every", "checkpoint_every", "grid_size"):
            v = getattr(self, key)
            require(v > 0, f"train.{key} must be a positive integer, got {v}")
        for key in ("steps", "epochs", "minutes", "threads"):
            v = getattr(self, key)
            require(v is None or v > 0, f"train.{key} must be positive, got {v}")
        require(self.eval_every >= 0, f"train.eval_every must be >= 0, got {self.eval_every}")
        require(self.eval_n >= 2, f"train.eval_n must be at least 2, got {self.eval_n}")
        require(self.keep >= 1, f"train.keep must be at least 1, got {self.keep}")
        require(self.ema_kimg > 0, f"train.ema_kimg must be positive, got {self.ema_kimg}")
        require(
            self.device in ("auto", "cpu") or self.device.startswith("cuda"),
            f"train.device must be auto, cpu or cuda[:N], got {self.device!r}",
        )


@dataclass
class RunConfig:
    """Everything that defines a run; `model` is the family's own config dataclass."""

    preset: str
    family: str
    model: Any
    # A named size/setting bundle of the family (`--preset small`), applied over the preset.
    variant: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        self.model.validate()
        self.data.validate()
        self.train.validate()


# Per-preset defaults beyond the family's: chosen for image quality per CPU-minute.
PRESET_TRAIN: dict[str, dict[str, Any]] = {
    name: {"train": {"batch": 16}} for name in ("dcgan", "gan", "hinge-gan", "cgan")
}


def build_config(
    preset: str,
    yaml_file: str | Path | None = None,
    overrides: list[str] = (),
    base: dict[str, Any] | None = None,
    variant: str = "",
) -> RunConfig:
    """Resolve preset defaults, then a saved run's config, a YAML file and --set overrides."""
    fam, settings = resolve_preset(preset)
    model_cfg = fam.Config()
    cfg = RunConfig(preset=preset, family=fam.name, model=model_cfg, variant=variant)
    cfglib.apply(cfg, {"model": settings, **PRESET_TRAIN.get(preset, {})})
    cfglib.apply(cfg, fam.PRESET_TRAIN)
    if variant:
        if variant not in fam.variants:
            known = ", ".join(fam.variants) or "none"
            raise UserError(f"{preset} has no preset {variant!r}; its presets: {known}")
        cfglib.apply(cfg, fam.variants[variant])
    if base:
        skip = ("preset", "family", "variant")
        cfglib.apply(cfg, {k: v for k, v in base.items() if k not in skip})
    if yaml_file:
        data = cfglib.load_yaml(yaml_file)
        data.pop("preset", None), data.pop("family", None)
        cfglib.apply(cfg, data)
    cfglib.apply_overrides(cfg, list(overrides))
    cfg.validate()
    return cfg


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a RunConfig saved in a manifest or config.yaml."""
    return build_config(data["preset"], base=data, variant=data.get("variant", ""))
