from __future__ import annotations

import math

import pytest
import torch

import pixelsmith
from pixelsmith.cli.main import main
from pixelsmith.data.sources import load_images
from pixelsmith.errors import UserError
from pixelsmith.models.vae import (
    VAE,
    VAEConfig,
    bits_per_dim,
    discretized_logistic_logp,
    kl_normal,
    log_normal,
)
from pixelsmith.train import checkpoint as ck
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils.rng import BatchRandom

TINY_MODEL = {"z_dim": 4, "channels": 4, "max_channels": 8, "blocks": 1}
TINY_RUN = [
    "data.source=shapes",
    "data.limit=48",
    "data.size=16",
    "train.batch=8",
    "model.z_dim=4",
    "model.channels=4",
    "model.max_channels=8",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=3",
    "train.grid_size=4",
]


def _images(n: int = 16) -> torch.Tensor:
    return load_images("shapes", "train", size=16, limit=n, seed=0).images


def _model(**kw) -> VAE:
    torch.manual_seed(0)
    fam = VAE(VAEConfig(**{**TINY_MODEL, **kw}), (3, 16, 16))
    fam.configure_optimizers()
    return fam


def _fit(fam: VAE, images: torch.Tensor, steps: int) -> list[float]:
    """train_step on one fixed batch, then copy the weights to the EMA copy that evaluates."""
    rng, x = BatchRandom(0), images.float() / 255
    losses = [fam.train_step(x, None, rng, i, None, lambda net: None)["loss"] for i in range(steps)]
    fam.networks["vae_ema"].load_state_dict(fam.networks["vae"].state_dict())
    return losses


@pytest.fixture(scope="module")
def fitted() -> tuple[VAE, torch.Tensor]:
    """A tiny VAE fitted a little to 8 images, so its posterior differs from the prior."""
    images = _images(8)
    fam = _model(lr=3e-3)
    _fit(fam, images, 30)
    return fam, images


# ---- training, sampling, engine ------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"likelihood": "bernoulli"},
        {"likelihood": "gaussian"},
        {"likelihood": "gaussian", "gaussian_sigma": 0.1},
    ],
)
def test_train_step_lowers_loss_on_a_fixed_batch(kw):
    losses = _fit(_model(lr=3e-3, **kw), _images(8), 20)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-3:]) < sum(losses[:3]) and losses[-1] < losses[0]


def test_logged_loss_is_negative_elbo_whatever_beta():
    fam = _model(beta=4.0)
    logs = fam.train_step(_images(8).float() / 255, None, BatchRandom(0), 0, None, lambda n: None)
    assert logs["loss"] == pytest.approx(logs["rec"] + logs["kl"]) and logs["kl"] > 0


def test_samples_shape_range_and_seeding():
    fam = _model()
    x = fam.sample(5, seed=3)
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, fam.sample(5, seed=3)) and not torch.equal(x, fam.sample(5, seed=4))


def test_reconstruct_and_interpolate(fitted):
    fam, images = fitted
    rec = fam.reconstruct(images[:4])
    assert rec.shape == (4, 3, 16, 16) and rec.min() >= 0 and rec.max() <= 1
    assert torch.allclose(rec, fam.reconstruct(images[:4].float() / 255), atol=1e-6)
    path = fam.interpolate(images[0], images[1], steps=5)
    assert path.shape == (5, 3, 16, 16)
    assert torch.allclose(path[0], rec[0], atol=1e-5) and torch.allclose(
        path[-1], rec[1], atol=1e-5
    )
    assert not torch.allclose(path[2], path[0])


def test_resume_is_bit_identical(tmp_path):
    cfg = lambda steps: build_config("vae", overrides=TINY_RUN + [f"train.steps={steps}"])  # noqa: E731
    full = train(cfg(8), tmp_path / "a", progress=False)
    half = train(cfg(4), tmp_path / "b", progress=False)
    assert train(cfg(8), resume=half, progress=False) == half

    def state(run):
        t, _ = ck.load_checkpoint(ck.resolve_checkpoint(run))
        return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}

    a, b = state(full), state(half)
    assert a.keys() == b.keys() and any(k.startswith("net/vae_ema/") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_train_then_load_sample_and_nll(tmp_path, capsys):
    sets = [a for t in TINY_RUN for a in ("--set", t)]
    assert main(["train", "vae", "--steps", "3", "--out", str(tmp_path), "--quiet", *sets]) == 0
    run = next(tmp_path.iterdir())
    model = pixelsmith.load(str(run))
    assert model.name == "vae" and model.classes == 0
    x = model.sample(6, seed=1)
    assert x.shape == (6, 3, 16, 16) and torch.equal(x, model.sample(6, seed=1))
    r = model.nll(_images(4), k=8)
    assert r["n"] == 4 and r["k"] == 8 and math.isfinite(r["iwae_bits_per_dim"])
    capsys.readouterr()
    assert main(["eval", str(run), "--metrics", "nll", "--reference-n", "6", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "nll/iwae_bits_per_dim" in out and "nll/elbo_bits_per_dim" in out
    test = load_images("shapes", "test", channels=3, size=16, limit=6)
    want = model.nll(test.images, k=100, seed=0)
    scores = {s.card.metric: s for s in pixelsmith.evaluate(str(run), metrics="nll", reference_n=6)}
    assert scores["nll/iwae_bits_per_dim"].value == want["iwae_bits_per_dim"]
    assert scores["nll/elbo_bits_per_dim"].card.params["iwae_k"] == 100


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="likelihood"):
        VAEConfig(likelihood="poisson")
    with pytest.raises(UserError, match="gaussian_sigma"):
        VAEConfig(gaussian_sigma=0.0)
    with pytest.raises(UserError, match=r"15x15.*data\.size"):
        VAE(VAEConfig(), (1, 15, 15))
    with pytest.raises(UserError, match="uint8"):
        _model().nll(_images(2).float(), k=2)


# ---- likelihood bounds ---------------------------------------------------------------------


def test_iwae_bound_is_tighter_than_elbo_and_finite(fitted):
    fam, images = fitted
    r = fam.nll(images, k=100, seed=0)
    assert r["k"] == 100 and r["n"] == len(images)
    assert all(math.isfinite(r[key]) for key in r)
    assert r["iwae_nats"] <= r["elbo_nats"]
    assert r["elbo_nats"] - r["iwae_nats"] > 1e-3  # a fitted posterior leaves a real gap


def test_results_do_not_depend_on_the_batch_size(fitted):
    fam, images = fitted
    a, b = fam.nll(images, k=10, seed=5, batch=4096), fam.nll(images, k=10, seed=5, batch=3)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5), key


def test_iwae_with_one_sample_is_the_elbo(fitted):
    fam, images = fitted
    one = fam.nll(images, k=1, seed=0)
    assert one["iwae_nats"] == one["elbo_nats"]  # the same code path: log-mean-exp of one value
    # ... and in expectation: over 40 fresh draws per image, k=1 estimates average to the ELBO.
    k1 = fam.nll(images.repeat(40, 1, 1, 1), k=1, seed=1)["iwae_nats"]
    eps = torch.randn(len(images), 400, 4, generator=torch.Generator().manual_seed(0))
    w = fam.log_weights(images, eps)
    se = w.std(1).pow(2).mean().sqrt().item() / math.sqrt(len(images))  # of a mean over images
    assert abs(k1 - (-w.mean().item())) < 4 * se / math.sqrt(40) + 4 * se / math.sqrt(400)


def test_bits_per_dim_formula(fitted):
    fam, images = fitted
    r = fam.nll(images, k=4)
    dims = 3 * 16 * 16
    assert r["iwae_bits_per_dim"] == pytest.approx(r["iwae_nats"] / (dims * math.log(2)))
    assert r["elbo_bits_per_dim"] == pytest.approx(r["elbo_nats"] / (dims * math.log(2)))
    assert bits_per_dim(dims * math.log(2) * 8, dims) == pytest.approx(8.0)  # uniform over 256


# ---- the likelihood and KL formulas --------------------------------------------------------


@pytest.mark.parametrize(
    "mean,log_scale",
    [(0.0, 0.0), (-0.93, -3.0), (0.5, -7.0), (1.4, 1.5), (-1.6, -5.0), (0.2, -6.5)],
)
def test_discretized_logistic_sums_to_one_over_256_levels(mean, log_scale):
    levels = torch.arange(256)
    m = torch.full((256,), mean, dtype=torch.float64)
    s = torch.full((256,), log_scale, dtype=torch.float64)
    logp = discretized_logistic_logp(levels, m, s)
    assert torch.isfinite(logp).all()
    assert torch.logsumexp(logp, 0).item() == pytest.approx(0.0, abs=1e-9)
    # Independently: explicit CDF differences over the bins, with the end bins open.
    x = levels.double() * 2 / 255 - 1
    cdf = lambda v: torch.sigmoid((v - mean) / math.exp(log_scale))  # noqa: E731
    upper = torch.where(levels == 255, torch.ones(256, dtype=torch.float64), cdf(x + 1 / 255))
    lower = torch.where(levels == 0, torch.zeros(256, dtype=torch.float64), cdf(x - 1 / 255))
    explicit = upper - lower
    assert explicit.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(logp.exp(), explicit, rtol=1e-6, atol=1e-12)
    # float32 (what training uses) still normalises.
    logp32 = discretized_logistic_logp(levels, m.float(), s.float())
    assert torch.logsumexp(logp32.double(), 0).item() == pytest.approx(0.0, abs=1e-4)


def test_discretized_logistic_random_parameters_per_pixel():
    g = torch.Generator().manual_seed(0)
    mean = torch.rand(5, 1, generator=g, dtype=torch.float64) * 3 - 1.5
    log_scale = torch.rand(5, 1, generator=g, dtype=torch.float64) * 8 - 7
    logp = discretized_logistic_logp(torch.arange(256).expand(5, 256), mean, log_scale)
    assert torch.allclose(logp.exp().sum(1), torch.ones(5, dtype=torch.float64), atol=1e-9)


def test_discretized_logistic_gradients_stay_finite_at_extreme_scales():
    mean = torch.tensor([0.0, 0.0, 3.0, -0.5], requires_grad=True)
    log_scale = torch.tensor([15.0, -7.0, -7.0, 0.0], requires_grad=True)
    logp = discretized_logistic_logp(torch.tensor([128, 0, 17, 255]), mean, log_scale)
    logp.sum().backward()
    assert torch.isfinite(logp).all()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad).all()


def test_kl_matches_closed_form():
    mu = torch.tensor([0.0, 1.0, 0.0, -2.0, 0.3], dtype=torch.float64)
    logvar = torch.tensor([0.0, 0.0, math.log(4.0), -1.0, 2.0], dtype=torch.float64)
    expected = [0.0, 0.5, 0.5 * (4 - 1 - math.log(4)), 0.5 * (4 + math.exp(-1) - 1 + 1)]
    assert torch.allclose(kl_normal(mu, logvar)[:4], torch.tensor(expected, dtype=torch.float64))
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    ref = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(kl_normal(mu, logvar), ref)
    # The Monte Carlo form the IWAE uses, E_q[log q - log p], converges to it.
    z = q.sample((200_000,))
    mc = (log_normal(z, mu, logvar) - log_normal(z)).mean(0)
    assert torch.allclose(mc, ref, atol=0.03)
