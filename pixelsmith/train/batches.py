"""Seeded, resumable, sharded batches from an in-memory uint8 image set."""

from __future__ import annotations

import torch

from pixelsmith.errors import UserError


class Batches:
    """Yields this rank's share of each global batch, in a per-epoch seeded order.

    The order of epoch e is a permutation seeded by (seed, e), so the position (epoch, offset)
    is the whole state: resuming there gives the same batches, bit for bit. The last partial
    batch of an epoch is dropped.

    With `balance`, every batch (and every rank's slice of it) holds the same number of images
    of each class present in `labels`: an epoch draws a seeded permutation per class, cycles
    the smaller classes (fresh permutations) up to the largest class's count, and interleaves
    the classes (c0, c1, ..., c0, c1, ...). An epoch is then classes x largest count images (a
    cycled class's image can appear twice in a batch that straddles two of its permutations).
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
        balance: bool = False,
    ):
        n = images.shape[0]
        if global_batch % world:
            raise UserError(
                f"train.batch={global_batch} must be divisible by the {world} processes"
            )
        _check_batch(global_batch, n)
        self.images, self.labels = images, labels
        self.global_batch, self.local = global_batch, global_batch // world
        self.seed, self.rank, self.device = seed, rank, torch.device(device)
        self.epoch, self.offset, self.consumed = 0, 0, 0
        self._perm_epoch, self._perm = -1, None
        self._groups = _class_groups(labels, global_batch, world) if balance else None
        groups = self._groups
        self.epoch_size = n if groups is None else len(groups) * max(map(len, groups))

    def _order(self) -> torch.Tensor:
        if self._perm_epoch != self.epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            if self._groups is None:
                self._perm = torch.randperm(self.images.shape[0], generator=g)
            else:
                self._perm = _interleaved(self._groups, g)
            self._perm_epoch = self.epoch
        return self._perm

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's slice of the next global batch: float images in [0, 1] and labels."""
        if self.offset + self.global_batch > self.epoch_size:
            self.epoch, self.offset = self.epoch + 1, 0
        start = self.offset + self.rank * self.local
        idx = self._order()[start : start + self.local]
        self.offset += self.global_batch
        self.consumed += self.global_batch
        x = self.images[idx].to(self.device, non_blocking=True).float().div_(255.0)
        y = None if self.labels is None else self.labels[idx].to(self.device)
        return x, y

    @property
    def drawn(self) -> int:
        """Batches drawn so far."""
        return self.consumed // self.global_batch

    @property
    def per_epoch(self) -> float:
        """Batches in an epoch (the last partial one is dropped)."""
        return self.epoch_size // self.global_batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset, "consumed": self.consumed}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.offset, self.consumed = state["epoch"], state["offset"], state["consumed"]


class PoissonBatches:
    """Poisson-sampled batches for private training: every image joins a batch independently
    with probability global_batch/n, so batch sizes vary around global_batch (an empty one is
    possible) and an image may appear in no batch of an epoch or in several.

    That is the sampling DP-SGD's privacy amplification assumes (Opacus's accountants count
    steps at this sample rate). Batch d is drawn from a generator seeded by (seed, d), so the
    count of batches drawn is the whole state. One process only.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        global_batch: int,
        seed: int,
        device: torch.device | str = "cpu",
    ):
        n = images.shape[0]
        _check_batch(global_batch, n)
        self.images, self.labels, self.seed = images, labels, seed
        self.global_batch, self.device = global_batch, torch.device(device)
        self.rate, self.epoch_size = global_batch / n, n
        self.count, self.consumed = 0, 0

    @property
    def drawn(self) -> int:
        """Batches drawn so far."""
        return self.count

    @property
    def per_epoch(self) -> float:
        """Batches in an epoch of expected batches: n / global_batch."""
        return 1 / self.rate

    @property
    def epoch(self) -> int:
        """Epochs of expected batches (n / global_batch each) drawn so far."""
        return int(self.count * self.rate)

    def next(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The next Poisson batch: float images in [0, 1] and labels (possibly none)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7 * self.count + 1)
        idx = torch.nonzero(torch.rand(self.epoch_size, generator=g) < self.rate).flatten()
        self.count += 1
        self.consumed += len(idx)
        x = self.images[idx].to(self.device, non_blocking=True).float().div_(255.0)
        y = None if self.labels is None else self.labels[idx].to(self.device)
        return x, y

    def state(self) -> dict[str, int]:
        return {"drawn": self.count, "consumed": self.consumed, "epoch": self.epoch}

    def load_state(self, state: dict[str, int]) -> None:
        self.count, self.consumed = state["drawn"], state["consumed"]


def _check_batch(global_batch: int, n: int) -> None:
    """Refuse a batch larger than the data."""
    if global_batch > n:
        raise UserError(
            f"train.batch={global_batch} is larger than the data ({n} images); lower it"
        )


def _class_groups(labels: torch.Tensor | None, global_batch: int, world: int) -> list[torch.Tensor]:
    """The indices of each class present in labels, checked against the batch they must fill."""
    if labels is None:
        raise UserError(
            "data.balance=true needs labelled data; use a labelled source or a folder with "
            "class sub-folders, or set data.balance=false"
        )
    classes = torch.unique(labels)
    k = len(classes)
    if global_batch % (k * world):
        raise UserError(
            f"train.batch={global_batch} must be a multiple of {k * world} with data.balance=true "
            f"({k} classes x {world} processes), so every process gets as many images of each class"
        )
    groups = [torch.nonzero(labels == c).flatten() for c in classes]
    smallest = min(range(k), key=lambda i: len(groups[i]))
    if global_batch // k > len(groups[smallest]):
        raise UserError(
            f"train.batch={global_batch} asks for {global_batch // k} images of each class, but "
            f"class {int(classes[smallest])} has only {len(groups[smallest])}; lower train.batch"
        )
    return groups


def _interleaved(groups: list[torch.Tensor], g: torch.Generator) -> torch.Tensor:
    """One epoch's order: per-class permutations (smaller classes cycled), interleaved."""
    m = max(len(idx) for idx in groups)
    rows = []
    for idx in groups:
        perms = [idx[torch.randperm(len(idx), generator=g)] for _ in range(-(-m // len(idx)))]
        rows.append(torch.cat(perms)[:m])
    return torch.stack(rows, 1).flatten()
