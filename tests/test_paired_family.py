"""A paired image-to-image family (a toy denoiser) plugs into the engine with no special case:
the engine asks the family to turn each real batch into (degraded, clean) pairs with the step's
seeded randomness, and resume, saving, loading and translating work as for any family."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixelsmith.models import _REGISTERED, register_family
from pixelsmith.models.base import Abilities, Batch, Family, Preset, SampleConfig, StepContext
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils import checkpoint_file as ck
from pixelsmith.utils.rng import BatchRandom


@dataclass
class DenoiserConfig:
    sigma: float = 0.2
    lr: float = 3e-2

    def validate(self) -> None:
        pass


class ToyDenoiser(Family):
    """One 3x3 convolution that learns to remove Gaussian noise of a fixed sigma."""

    name = "toy-denoiser"
    Config = DenoiserConfig
    abilities = Abilities(generates=False, restores=True)
    presets = {"toy-denoiser": Preset("a test family", 1.0, {"train": {"batch": 8}})}
    ema_pairs = {"net": "net_ema"}
    prepared = 0

    def __init__(self, cfg, image_shape, num_classes=0):
        super().__init__(cfg, image_shape, num_classes)
        c = self.image_shape[0]
        self.networks = {"net": nn.Conv2d(c, c, 3, padding=1)}

    def configure_optimizers(self) -> None:
        self.optimizers = {"net": torch.optim.Adam(self.networks["net"].parameters(), self.cfg.lr)}

    def prepare_batch(self, batch: Batch, rng: BatchRandom) -> Batch:
        type(self).prepared += 1
        noise = rng.randn(batch.images.shape[0], *self.image_shape) * self.cfg.sigma
        return Batch(batch.images, batch.labels, inputs=batch.images + noise)

    def train_step(self, batch: Batch, ctx: StepContext) -> dict[str, float]:
        assert batch.inputs is not None and batch.inputs.shape == batch.images.shape
        loss = F.mse_loss(self.networks["net"](batch.inputs), batch.images)
        self.optimizers["net"].zero_grad()
        loss.backward()
        ctx.sync(self.networks["net"])
        self.optimizers["net"].step()
        return {"loss": loss.item()}

    def restore(self, images: Tensor, mask: Tensor | None = None) -> Tensor:
        with torch.no_grad(), self.inference("net") as net:
            return net(images.to(self.device)).clamp(0, 1).cpu()

    def draw(self, n: int, seed: int, opts: SampleConfig, labels: Tensor | None) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        noisy = (0.5 + self.cfg.sigma * torch.randn(n, *self.image_shape, generator=g)).clamp(0, 1)
        return self.restore(noisy)


@pytest.fixture
def registered():
    register_family(ToyDenoiser)
    ToyDenoiser.prepared = 0
    yield ToyDenoiser
    _REGISTERED.pop(ToyDenoiser.name, None)


SETTINGS = [
    "data.source=shapes",
    "data.size=16",
    "data.limit=64",
    "train.threads=1",
    "train.log_every=1",
    "train.eval_at_end=false",
]


def test_a_paired_family_trains_resumes_and_loads_like_any_other(tmp_path, registered):
    from pixelsmith.generate import load_model

    full = train(build_config("toy-denoiser", overrides=[*SETTINGS, "train.steps=60"]), tmp_path)
    # Every batch the engine read went through the family's prepare_batch, and so did the final
    # grid's rows of (degraded, restored, clean) images.
    assert registered.prepared == 60 + 1
    assert (full / "grids" / "grid-final.png").exists()
    stats = (full / "stats.jsonl").read_text().splitlines()
    first, last = (float(s.split('"loss": ')[1].rstrip("}")) for s in (stats[0], stats[-1]))
    assert last < 0.5 * first  # it learns: the degradation reached the step as batch.inputs

    half = train(build_config("toy-denoiser", overrides=[*SETTINGS, "train.steps=25"]), tmp_path)
    resumed = train(
        build_config("toy-denoiser", overrides=[*SETTINGS, "train.steps=60"]), resume=half
    )
    a, _ = ck.load_checkpoint(ck.resolve_checkpoint(full))
    b, _ = ck.load_checkpoint(ck.resolve_checkpoint(resumed))
    for k in a:  # the degradations come from the seeded stream: resume is exact
        if k.startswith(("net/", "opt/", "rng/")):
            assert torch.equal(a[k], b[k]), k

    # `eval` scores it by the family's own metric (on held-out images, degraded as in training).
    from pixelsmith.metrics.evaluate import evaluate_model

    model = load_model(full)
    assert isinstance(model, ToyDenoiser) and model.abilities.restores
    scores = {s.card.metric: s.value for s in evaluate_model(model, reference_n=64)}
    assert scores["restoration/psnr"] > scores["restoration/input_psnr"] + 1  # it denoises
