"""Shared fixtures: tiny configs so every training test runs in seconds on 2 cores."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

TINY = [
    "data.source=shapes",
    "data.limit=128",
    "data.size=16",
    "train.batch=16",
    "model.g_channels=4",
    "model.d_channels=4",
    "model.z_dim=8",
    "model.max_channels=16",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=3",
    "train.grid_size=8",
]


@pytest.fixture
def tiny() -> list[str]:
    """Overrides that make a GAN run tiny."""
    return list(TINY)
