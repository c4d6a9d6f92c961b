"""Seeded, resumable, sharded batches from an in-memory uint8 image set."""

from __future__ import annotations

import torch

from pixelsmith.errors import UserError


class Batches:
    """Yields this rank's share of each global batch, in a per-epoch seeded order.

    The order of epoch e is a permutation seeded by (seed, e), so the position (epoch, offset)
    is the whole state: resuming there gives the same batches, bit for bit. The last partial
    batch of an epoch is dropped.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        global_batch: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
    ):
        n = images.shape[0]
        if global_batch % world:
            raise UserError(
                f"train.batch={global_batch} must be divisible by the {world} processes"
            )
        if global_batch > n:
            raise UserError(
                f"train.batch={global_batch} is larger than the data ({n} images); lower it"
            )
        self.images, self.labels = images, labels
        self.global_batch, self.local = global_batch, global_batch // world
        self.seed, self.rank, self.device = seed, rank, torch.device(device)
        self.epoch, self.offset, self.consumed = 0, 0, 0
        self._perm_epoch, self._perm = -1, None

    def _order(self) -> torch.Tensor:
        if self._perm_epoch != self.epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm, self._perm_epoch = (
                torch.randperm(self.images.shape[0], generator=g),
                self.epoch,
            )
        return self._perm

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's slice of the next global batch: float images in [0, 1] and labels."""
        if self.offset + self.global_batch > self.images.shape[0]:
            self.epoch, self.offset = self.epoch + 1, 0
        start = self.offset + self.rank * self.local
        idx = self._order()[start : start + self.local]
        self.offset += self.global_batch
        self.consumed += self.global_batch
        x = self.images[idx].to(self.device, non_blocking=True).float().div_(255.0)
        y = None if self.labels is None else self.labels[idx].to(self.device)
        return x, y

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset, "consumed": self.consumed}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.offset, self.consumed = state["epoch"], state["offset"], state["consumed"]
