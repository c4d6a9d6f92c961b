"""Per-sample randomness that is identical whether a batch is processed by one process or many."""

from __future__ import annotations

import torch


class BatchRandom:
    """Draws random numbers for the whole global batch and returns this rank's slice.

    Every rank holds a generator in the same state, so a run split over N processes consumes
    exactly the numbers a single process would on the same global batch, and resuming from a
    saved state continues the stream bit for bit.
    """

    def __init__(
        self, seed: int, rank: int = 0, world: int = 1, device: str | torch.device = "cpu"
    ):
        self.generator = torch.Generator().manual_seed(int(seed))
        self.rank, self.world, self.device = rank, world, torch.device(device)

    def _slice(self, full: torch.Tensor, n: int) -> torch.Tensor:
        return full[self.rank * n : (self.rank + 1) * n].to(self.device)

    def rand(self, n: int, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) numbers of shape (n, *shape) for this rank's n samples."""
        return self._slice(torch.rand((n * self.world, *shape), generator=self.generator), n)

    def randn(self, n: int, *shape: int) -> torch.Tensor:
        """Standard normal numbers of shape (n, *shape) for this rank's n samples."""
        return self._slice(torch.randn((n * self.world, *shape), generator=self.generator), n)

    def randint(self, high: int, n: int, *shape: int) -> torch.Tensor:
        """Integers in [0, high) of shape (n, *shape) for this rank's n samples."""
        full = torch.randint(high, (n * self.world, *shape), generator=self.generator)
        return self._slice(full, n)

    def get_state(self) -> torch.Tensor:
        """The generator state as a uint8 tensor (for checkpoints)."""
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        """Restore a state returned by get_state."""
        self.generator.set_state(state)
