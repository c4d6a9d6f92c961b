"""Shared fixtures: tiny configs so every training test runs in seconds on 2 cores."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pixelsmith

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


def _torchrun(*args: str) -> None:
    """Run `torchrun --standalone --nproc-per-node=2 ARGS` (one thread each); fail on error."""
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(pixelsmith.__file__).parents[1]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    r = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture
def torchrun():
    """A function that runs a command under torchrun with 2 processes."""
    return _torchrun
