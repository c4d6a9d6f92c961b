"""DP-MERF: the release is the data's mean embedding (checked against numpy), its noise is the
Gaussian mechanism's that the accountant counts once, and training reads the release alone."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pixelsmith.models.base import Batch, StepContext
from pixelsmith.models.merf import MERF, MERFConfig
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils.rng import BatchRandom

SHAPE = (1, 8, 8)
TINY = ["data.source=shapes", "model.conditional=true", "data.size=8", "data.limit=60",
        "data.channels=1", "model.features=64", "model.channels=4", "model.z_dim=4",
        "train.batch=32", "train.threads=1", "train.eval_at_end=false",
        "train.log_every=1"]  # fmt: skip


def _family(**cfg) -> MERF:
    torch.manual_seed(0)
    fam = MERF(MERFConfig(conditional=True, features=64, channels=4, z_dim=4, **cfg), SHAPE, 3)
    fam.configure_optimizers()
    return fam


def _data(n: int = 30):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *SHAPE), generator=g, dtype=torch.uint8)
    return images, torch.arange(n) % 3


def test_the_release_is_the_mean_embedding_and_each_image_moves_it_by_sqrt_2():
    fam = _family()
    images, labels = _data()
    fam.release(images, labels, 0.0, None)
    emb = fam.networks["embedding"]
    # numpy, from the frequencies alone: mean over images of [cos, sin](x.w) / sqrt(D) y^T
    w = emb.freqs.double().numpy()
    x = images.double().numpy().reshape(len(images), -1) / 255
    phi = np.concatenate([np.cos(x @ w), np.sin(x @ w)], 1) / math.sqrt(w.shape[1])
    y = np.eye(3)[labels.numpy()]
    np.testing.assert_allclose(emb.target.double().numpy(), phi.T @ y / len(x), atol=1e-5)
    np.testing.assert_allclose(emb.proportions.numpy(), [1 / 3] * 3, atol=1e-6)
    # |[phi(x) y^T, y]| = sqrt(2) for every image: the sensitivity the noise is scaled to
    norms = np.sqrt((phi**2).sum(1) + (y**2).sum(1))
    np.testing.assert_allclose(norms, math.sqrt(2), atol=1e-9)


def test_the_release_noise_has_the_mechanisms_scale():
    images, labels = _data()
    exact, noisy = _family(), _family()
    exact.release(images, labels, 0.0, None)
    g = torch.Generator().manual_seed(1)
    noisy.release(images, labels, 2.0, lambda shape: torch.randn(shape, generator=g))
    # target = (sum + N(0, (2 sqrt 2)^2)) / noisy count: scaled back, the noise's spread
    diff = (
        noisy.networks["embedding"].target * len(images) - exact.networks["embedding"].target * 30
    )
    assert 2.0 < float(diff.std() * math.sqrt(2) / 2) < 3.6  # about 2 sqrt 2 = 2.83


def test_training_reads_the_release_and_never_the_batch():
    images, labels = _data()
    a, b = _family(), _family()
    for fam in (a, b):
        fam.release(images, labels, 0.0, None)
    real = Batch(images[:16].float() / 255, labels[:16])
    nonsense = Batch(torch.full((16, *SHAPE), float("nan")), None)
    for step in range(5):
        ctx = StepContext(BatchRandom(step), step, lambda: None, lambda net: None)
        la = a.train_step(real, ctx)
        ctx = StepContext(BatchRandom(step), step, lambda: None, lambda net: None)
        lb = b.train_step(nonsense, ctx)
        assert la == lb and math.isfinite(la["mmd2"])
    for k, v in a.networks["G"].state_dict().items():
        assert torch.equal(v, b.networks["G"].state_dict()[k]), k


def test_a_private_run_spends_its_budget_once_and_keeps_it_on_resume(tmp_path):
    pytest.importorskip("opacus")
    from test_private_training import _rdp_gaussian_epsilon

    cfg = build_config("merf-dp", overrides=TINY + ["train.steps=30", "privacy.seeded_noise=true"])
    run = train(cfg, tmp_path, progress=False)
    rec = json.loads((run / "manifest.json").read_text())["privacy"]
    assert rec["steps"] == 1 and rec["sample_rate"] == 1.0 and rec["sensitivity"] == math.sqrt(2)
    # one Gaussian mechanism: Opacus's RDP at rate 1 is the closed form alpha / (2 sigma^2)
    closed = _rdp_gaussian_epsilon(rec["noise_multiplier"], 1, rec["delta"])
    assert rec["epsilon"] == pytest.approx(closed, rel=1e-6) and rec["epsilon"] <= 10.0
    assert rec["epsilon"] > 9.9
    from pixelsmith.utils import checkpoint_file as ck

    before, _ = ck.load_checkpoint(ck.resolve_checkpoint(run))
    more = build_config("merf-dp", overrides=TINY + ["train.steps=40", "privacy.seeded_noise=true"])
    train(more, resume=run, progress=False)
    after, man = ck.load_checkpoint(ck.resolve_checkpoint(run))
    assert torch.equal(
        before["net/embedding/target"], after["net/embedding/target"]
    )  # not re-released
    assert man["step"] == 40 and man["privacy"]["steps"] == 1


def test_a_plain_run_matches_the_embedding(tmp_path):
    run = train(build_config("merf", overrides=TINY + ["train.steps=60"]), tmp_path, progress=False)
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    first, last = stats[0]["mmd2"], np.mean([r["mmd2"] for r in stats[-5:]])
    assert last < 0.3 * first, (first, last)
