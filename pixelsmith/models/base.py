"""The contract between a model family and the training engine, CLI and loader."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from pixelsmith.data.sources import ImageSet
from pixelsmith.errors import UserError
from pixelsmith.utils.rng import BatchRandom

# Called by a family on a network after backward and before its optimiser step; the engine
# averages gradients across processes there (a no-op in single-process runs).
GradSync = Callable[[nn.Module], None]
# What `score_data` returns: (named values, protocol), where the protocol may hold "features",
# "features_sha256", "resize" and "params" for the scores' cards.
Scored = tuple[dict[str, float], dict[str, Any]]


class Family(ABC):
    """A generative model family: its networks, objectives, optimisers and sampler.

    The engine owns the loop, data, EMA, checkpoints and processes; a family owns everything
    about its model. Subclasses set `name` and `Config`, build networks in `__init__` and
    optimisers in `configure_optimizers`, and implement `train_step` and `sample`.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    # Networks whose exponential moving average the engine keeps: {source: ema copy}.
    ema_pairs: ClassVar[dict[str, str]] = {}
    # Engine defaults for this family, e.g. {"train": {"batch": 64}}.
    PRESET_TRAIN: ClassVar[dict[str, Any]] = {}
    # Data settings the family cannot train without, checked before a run folder is made:
    # {"balance": (True, "why")}.
    REQUIRED_DATA: ClassVar[dict[str, tuple[Any, str]]] = {}
    # Named bundles selected with `--preset NAME`: {"small": {"model": {...}, "train": {...}}}.
    variants: ClassVar[dict[str, dict[str, Any]]] = {}
    # Metrics the family computes itself on real held-out images (`pixelsmith eval --metrics`),
    # e.g. ("nll",); each is answered by `score_data`.
    data_metrics: ClassVar[tuple[str, ...]] = ()
    # False for families whose `sample` shows translations of real images, not draws from the
    # model's distribution: sample-based metrics (FID, KID, IS, PR) mean nothing for them.
    generates: ClassVar[bool] = True

    def __init__(self, cfg: Any, image_shape: tuple[int, int, int], num_classes: int = 0):
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.num_classes = int(num_classes)
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.device = torch.device("cpu")

    @abstractmethod
    def configure_optimizers(self) -> None:
        """Create `self.optimizers` (only needed for training)."""

    @abstractmethod
    def train_step(
        self,
        real: torch.Tensor,
        labels: torch.Tensor | None,
        rng: BatchRandom,
        step: int,
        next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor | None]],
        sync: GradSync,
    ) -> dict[str, float]:
        """One optimisation step on a batch in [0, 1]; returns scalar losses to log."""

    @abstractmethod
    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images as an (n, C, H, W) float tensor in [0, 1], reproducible for a seed."""

    def score_data(self, metric: str, data: ImageSet, seed: int = 0) -> Scored:
        """A family-specific score (one of `data_metrics`) on real uint8 images (e.g. test split).

        Returns (values, protocol), e.g. ({"bits_per_dim": 3.3}, {"params": {"exact": True}}).
        """
        raise UserError(
            f"the {self.name} family has no metric {metric!r}"
            + (f"; it has: {', '.join(self.data_metrics)}" if self.data_metrics else "")
        )

    def require_classes(self, conditional: bool, what: str) -> int:
        """The class count a conditional model uses (0 when unconditional); refuses < 2 classes."""
        if not conditional:
            return 0
        if self.num_classes < 2:
            raise UserError(
                f"a conditional {what} needs labelled data with at least 2 classes; use a labelled "
                "source (fashion-mnist, mnist, shapes, or a folder with class sub-folders) or "
                "--set model.conditional=false"
            )
        return self.num_classes

    def to(self, device: str | torch.device) -> Family:
        """Move every network to `device`."""
        self.device = torch.device(device)
        for net in self.networks.values():
            net.to(self.device)
        return self

    def eval(self) -> Family:
        """Put every network in inference mode."""
        for net in self.networks.values():
            net.eval()
        return self

    def describe(self) -> dict[str, Any]:
        """Parameter counts per network."""
        return {k: sum(p.numel() for p in v.parameters()) for k, v in self.networks.items()}
