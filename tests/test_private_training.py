"""Differentially private training: no noise and no clip is plain training, the recorded epsilon
is the accountant's (checked against the closed form of the Gaussian mechanism's RDP), the
refusals come before any run folder, Poisson batches, exact resume, the record on manifests and
cards, and a private model that the loss attack cannot tell from chance where a memorising one
is caught."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from pixelsmith.errors import UserError
from pixelsmith.metrics import membership as mi
from pixelsmith.models.base import Batch, StepContext
from pixelsmith.models.classifier import Classifier, ClassifierConfig
from pixelsmith.train import privacy
from pixelsmith.train.batches import PoissonBatches
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer, train
from pixelsmith.utils.rng import BatchRandom

pytest.importorskip("opacus")


SHAPE = (1, 16, 16)


def _classifier(seed: int = 0, **cfg) -> Classifier:
    settings = {"arch": "tanh", "optimizer": "sgd", "lr": 0.5, "dropout": 0.0, "weight_decay": 0.0}
    settings.update(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fam = Classifier(ClassifierConfig(**settings), SHAPE, 10)
    fam.configure_optimizers()
    return fam


def _ctx(step: int = 0) -> StepContext:
    return StepContext(BatchRandom(0), step, lambda: None, lambda net: None)


def _data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *SHAPE, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_no_noise_and_no_clip_is_plain_training():
    x, y = _data(48)
    plain, private = _classifier(), _classifier()
    cfg = privacy.PrivacyConfig(noise_multiplier=0.0, max_grad_norm=math.inf)
    # expected batch = rate * n = 48: DP-SGD's sum / expected batch is the plain mean.
    privacy.PrivateTraining(cfg, private, n=480, batch=48, steps=None, seed=0)
    for step in range(3):
        plain.train_step(Batch(x, y), _ctx(step))
        private.train_step(Batch(x, y), _ctx(step))
    a, b = plain.networks["net"].state_dict(), private.networks["net"].state_dict()
    assert a.keys() == b.keys()  # the hooks leave the network's names alone
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    # and the comparison can fail: noise moves the weights
    noisy = _classifier()
    privacy.PrivateTraining(privacy.PrivacyConfig(noise_multiplier=1.0), noisy, 480, 48, None, 0)
    noisy.train_step(Batch(x, y), _ctx())
    w = noisy.networks["net"].head.weight
    assert not torch.allclose(w, _classifier().networks["net"].head.weight, atol=1e-3)


def test_clipping_bounds_each_example():
    """With no noise and a tiny clip, one example's share of the step is at most clip / batch."""
    x, y = _data(8)
    fam = _classifier()
    cfg = privacy.PrivacyConfig(noise_multiplier=0.0, max_grad_norm=1e-3)
    privacy.PrivateTraining(cfg, fam, n=80, batch=8, steps=None, seed=0)
    before = [p.detach().clone() for p in fam.networks["net"].parameters()]
    fam.train_step(Batch(x, y), _ctx())
    moved = torch.cat(
        [
            (p.detach() - b).flatten()
            for p, b in zip(fam.networks["net"].parameters(), before, strict=True)
        ]
    )
    # SGD's first step: lr * (sum of 8 clipped gradients) / 8, so its norm <= lr * clip
    assert 0 < float(moved.norm()) <= 0.5 * 1e-3 * (1 + 1e-4)


def _rdp_gaussian_epsilon(noise: float, steps: int, delta: float) -> float:
    """The Gaussian mechanism without subsampling in closed form: RDP alpha*T/(2 sigma^2) at
    each order, converted to (epsilon, delta) as Balle et al. (2020) do, over Opacus's orders."""
    orders = np.array([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)), dtype=float)
    rdp = orders * steps / (2 * noise**2)
    eps = rdp - (np.log(delta) + np.log(orders)) / (orders - 1) + np.log((orders - 1) / orders)
    return float(eps.min())


def test_the_epsilon_is_the_gaussian_mechanisms_and_rises_with_steps():
    for noise, steps in ((1.0, 10), (2.5, 100), (5.0, 3)):
        got = privacy.epsilon_of(noise, 1e-5, 1.0, steps)
        assert got == pytest.approx(_rdp_gaussian_epsilon(noise, steps, 1e-5), rel=1e-6)
    eps = [privacy.epsilon_of(1.1, 1e-5, 0.01, s) for s in (10, 100, 1000, 5000)]
    assert all(a < b for a, b in zip(eps, eps[1:], strict=False)), eps
    # the noise chosen for a budget spends it (from below), and less noise spends more
    sigma = privacy.noise_for(3.0, 1e-5, 0.034, 1170)
    assert 2.9 < privacy.epsilon_of(sigma, 1e-5, 0.034, 1170) <= 3.0
    assert privacy.epsilon_of(sigma * 0.8, 1e-5, 0.034, 1170) > 3.0
    assert privacy.epsilon_of(0.0, 1e-5, 0.1, 5) == math.inf


def test_poisson_batches_vary_around_the_batch_and_resume_where_they_stopped():
    images = torch.arange(1000, dtype=torch.uint8).view(1000, 1, 1, 1).expand(1000, 1, 2, 2)
    labels = torch.arange(1000) % 10
    b = PoissonBatches(images.contiguous(), labels, 100, seed=3)
    sizes = [len(b.next()[1]) for _ in range(200)]
    assert len(set(sizes)) > 10  # not a fixed batch
    # Binomial(1000, 0.1): mean 100, sd 9.5; the mean of 200 draws lies within 3 sd of the mean
    assert abs(np.mean(sizes) - 100) < 3 * 9.5 / math.sqrt(200)
    assert b.drawn == 200 and b.consumed == sum(sizes) and b.epoch == 20
    state = b.state()
    want = b.next()
    again = PoissonBatches(images.contiguous(), labels, 100, seed=3)
    again.load_state(state)
    got = again.next()
    assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


def _private(tmp_path, *extra: str, steps: int = 6):
    return build_config(
        "classifier-dp",
        overrides=[
            "data.source=shapes",
            "data.limit=400",
            "train.batch=40",
            f"train.steps={steps}",
            "train.epochs=null",
            "train.threads=1",
            "train.eval_at_end=false",
            "train.grid_size=4",
            "privacy.epsilon=null",
            "privacy.noise_multiplier=1.0",
            "privacy.delta=1e-4",
            *extra,
        ],
    )


@pytest.mark.parametrize(
    "extra, words",
    [
        (["model.arch=small"], "GroupNorm"),
        (["privacy.delta=0.01"], "above 1/n"),
        (["data.balance=true"], "data.balance"),
        (["train.precision=bf16"], "train.precision=bf16"),
        (["privacy.noise_multiplier=null", "privacy.epsilon=3", "train.steps=null",
          "train.minutes=1"], "step budget"),
    ],
)  # fmt: skip
def test_what_breaks_the_accounting_is_refused_before_the_run_folder(tmp_path, extra, words):
    with pytest.raises(UserError, match=words):
        Trainer(_private(tmp_path, *extra), out_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


def test_auto_precision_trains_privately_in_float32(tmp_path):
    t = Trainer(_private(tmp_path, "train.precision=auto"), out_root=tmp_path, progress=False)
    assert t.precision == "fp32"


def test_a_family_without_private_training_is_refused(tmp_path):
    cfg = build_config(
        "pixelcnn",
        overrides=["data.source=shapes", "data.limit=64", "privacy.noise_multiplier=1"],
    )
    with pytest.raises(UserError, match="no private training"):
        Trainer(cfg, out_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())
    with pytest.raises(UserError, match="both set"):
        build_config("classifier", overrides=["privacy.epsilon=3", "privacy.noise_multiplier=1"])


def test_a_private_run_records_its_budget_and_resumes_exactly(tmp_path):
    straight = train(
        _private(tmp_path / "a", "privacy.seeded_noise=true"), tmp_path / "a", progress=False
    )
    half = train(
        _private(tmp_path / "b", "privacy.seeded_noise=true", steps=3),
        tmp_path / "b",
        progress=False,
    )
    man_half = json.loads((half / "manifest.json").read_text())
    cfg = _private(tmp_path / "b", "privacy.seeded_noise=true")
    resumed = train(cfg, resume=half, progress=False)
    man = json.loads((straight / "manifest.json").read_text())
    rec = man["privacy"]
    assert rec["steps"] == 6 and rec["sample_rate"] == pytest.approx(0.1)
    assert rec["noise_multiplier"] == 1.0 and rec["max_grad_norm"] == 0.1
    # the accountant's epsilon for the recorded settings, and it rises with the steps
    assert rec["epsilon"] == pytest.approx(privacy.epsilon_of(1.0, 1e-4, 0.1, 6), rel=1e-9)
    assert man_half["privacy"]["epsilon"] < rec["epsilon"]
    assert "NOT private" in rec["noise"]
    assert "privacy: DP-SGD epsilon=" in (straight / "report.md").read_text()
    from pixelsmith.utils import checkpoint_file as ckf

    a, _ = ckf.load_checkpoint(ckf.resolve_checkpoint(straight))
    b, man_b = ckf.load_checkpoint(ckf.resolve_checkpoint(resumed))
    assert man_b["privacy"]["steps"] == 6
    for k in a:
        if k.startswith("net/"):
            assert torch.equal(a[k], b[k]), k


def test_the_cards_of_a_private_model_carry_its_budget(tmp_path):
    from pixelsmith.generate import load_model
    from pixelsmith.metrics.evaluate import evaluate_model

    run = train(_private(tmp_path, steps=2), tmp_path, progress=False)
    model = load_model(str(run))
    (score,) = evaluate_model(model, "accuracy", data={"source": "shapes", "limit": 100})
    assert score.card.params["privacy"].startswith("DP-SGD epsilon=")
    # secure noise: drawn from the operating system, so a second run differs
    again = train(_private(tmp_path, steps=2), tmp_path, progress=False)
    w1 = load_model(str(run)).networks["net"].head.weight
    assert not torch.equal(w1, load_model(str(again)).networks["net"].head.weight)


def _fit(fam: Classifier, x, y, steps: int, batch: int) -> Classifier:
    batches = PoissonBatches((x * 255).round().byte(), y, batch, seed=1)
    for step in range(steps):
        bx, by = batches.next()
        if len(bx):
            fam.train_step(Batch(bx, by), _ctx(step))
    return fam


@pytest.mark.slow
def test_a_private_model_resists_the_loss_attack_that_catches_a_memoriser():
    x, y = _data(256, seed=5)  # random labels: only memory fits them
    members, fresh = slice(0, 128), slice(128, 256)
    aucs = {}
    for name in ("memoriser", "private"):
        fam = _classifier(seed=1, optimizer="adamw", lr=1e-2, weight_decay=0.0)
        if name == "private":
            cfg = privacy.PrivacyConfig(noise_multiplier=8.0, max_grad_norm=0.5, seeded_noise=True)
            privacy.PrivateTraining(cfg, fam, n=128, batch=32, steps=None, seed=0)
        _fit(fam, x[members], y[members], 300, 32)
        net = copy.deepcopy(fam.networks["net"]).eval()
        aucs[name] = mi.membership_report(
            mi.loss_scores(net, x[members], y[members]), mi.loss_scores(net, x[fresh], y[fresh])
        )["auc"]
    assert aucs["memoriser"] > 0.85, aucs
    # epsilon 2.4 (noise 8, rate 0.25, 300 steps); 0.55-0.61 over six noise seeds here
    assert aucs["private"] < 0.7 and aucs["private"] < aucs["memoriser"] - 0.25, aucs


def _gan_ctx(step: int, private: privacy.PrivateTraining | None, n: int) -> StepContext:
    extra = {"private_batch": n, "freeze": private.freeze} if private else {}
    return StepContext(BatchRandom(step), step, lambda: None, lambda net: None, **extra)


def test_a_private_discriminator_with_no_noise_and_no_clip_is_plain_training(tiny_gan):
    x = torch.rand(6, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    plain, private = tiny_gan(), tiny_gan()
    for fam in (plain, private):
        fam.configure_optimizers()
    cfg = privacy.PrivacyConfig(noise_multiplier=0.0, max_grad_norm=math.inf)
    dp = privacy.PrivateTraining(cfg, private, n=60, batch=6, steps=None, seed=0)
    for step in range(2):
        plain.train_step(Batch(x, None), _gan_ctx(step, None, 6))
        private.train_step(Batch(x, None), _gan_ctx(step, dp, 6))
    for name in ("D", "G"):  # G learns through the private D alone
        a, b = plain.networks[name].state_dict(), private.networks[name].state_dict()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    assert dp.steps == 2  # D's steps are counted, G's are not


@pytest.mark.parametrize(
    "extra, words",
    [(["model.loss=wgan-gp", "model.n_critic=1"], "gradient penalty"),
     (["model.spectral_norm=true"], "spectral"),
     (["train.batch=16"], "too small")],
)  # fmt: skip
def test_a_gan_whose_discriminator_cannot_be_clipped_is_refused(tmp_path, extra, words):
    cfg = build_config(
        "cgan",
        overrides=[
            "data.source=shapes",
            "data.limit=64",
            "train.batch=64",
            "privacy.noise_multiplier=1",
            *extra,
        ],  # fmt: skip
    )
    with pytest.raises(UserError, match=words):
        Trainer(cfg, out_root=tmp_path, progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("preset", ["cgan", "vae"])
def test_a_private_generator_trains_and_records_its_budget(tmp_path, preset):
    from conftest import TINY_GAN, TINY_VAE

    tiny = TINY_GAN if preset == "cgan" else TINY_VAE
    cfg = build_config(
        preset,
        overrides=[
            "data.source=shapes",
            "data.size=16",
            "data.limit=200",
            "train.batch=40",
            "train.steps=3",
            "train.threads=1",
            "train.eval_at_end=false",
            "train.grid_size=4",
            "privacy.noise_multiplier=1.0",
            "privacy.delta=1e-3",
            *(f"model.{k}={v}" for k, v in tiny.items()),
        ],
    )
    run = train(cfg, tmp_path, progress=False)
    rec = json.loads((run / "manifest.json").read_text())["privacy"]
    assert rec["steps"] == 3 and rec["networks"] == (["D"] if preset == "cgan" else ["vae"])
    assert rec["epsilon"] == pytest.approx(privacy.epsilon_of(1.0, 1e-3, 0.2, 3), rel=1e-9)


def test_the_budget_verb_and_the_audit_card_say_what_the_accountant_says(tmp_path, capsys):
    from pixelsmith.cli.main import main

    assert main(["privacy", "budget", "--noise", "1.5", "--steps", "500", "--n", "1000",
                 "--batch", "10", "--delta", "1e-5"]) == 0  # fmt: skip
    want = privacy.epsilon_of(1.5, 1e-5, 0.01, 500)
    assert f"epsilon {want:.4g} at delta 1e-05 after 500 steps" in capsys.readouterr().out
    assert main(["privacy", "budget", "--epsilon", "2", "--epochs", "5", "--n", "1000",
                 "--batch", "10"]) == 0  # fmt: skip
    noise = float(capsys.readouterr().out.split()[2].rstrip(":"))
    assert noise == pytest.approx(privacy.noise_for(2.0, 1e-5, 0.01, 500), rel=1e-3)
    run = train(_private(tmp_path, steps=2), tmp_path, progress=False)
    args = ["privacy", "audit", str(run), "--members", "shapes:train", "--non-members",
            "shapes:test", "--n", "40", "--json"]  # fmt: skip
    assert main(args) == 0
    card = json.loads(capsys.readouterr().out)["card"]
    assert card["privacy"].startswith("DP-SGD epsilon=")


def test_scatternet_features_are_cached_exactly_and_stay_out_of_the_weights():
    pytest.importorskip("kymatio")
    from pixelsmith.nn.scattering import Scattering

    fam = _classifier(arch="scatter")
    net = fam.networks["net"]
    assert set(net.state_dict()) == {"head.weight", "head.bias"}  # the transform has no weights
    x, y = _data(24)
    direct = net.scatter._scatter(x)
    assert direct.shape == (24, 81, 4, 4)
    first = net.scatter(x)  # fills the cache
    again = net.scatter(torch.cat([x[:5], torch.rand(3, *SHAPE)]))  # 5 cached, 3 new
    torch.testing.assert_close(first, direct, rtol=0, atol=0)
    torch.testing.assert_close(again[:5], direct[:5], rtol=0, atol=0)
    assert len(net.scatter._cache) == 27
    assert len(copy.deepcopy(net).scatter._cache) == 0  # the EMA copy does not double it
    small = Scattering((16, 16), cache_bytes=81 * 16 * 4 * 10)  # room for 10 images
    small(x)
    assert len(small._cache) == 10
    # attacks differentiate through the transform
    xg = x[:2].clone().requires_grad_(True)
    net(xg).sum().backward()
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0
    # a private step trains the linear layer only
    privacy.PrivateTraining(privacy.PrivacyConfig(noise_multiplier=0.5), fam, 240, 24, None, 0)
    before = net.head.weight.detach().clone()
    fam.train_step(Batch(x, y), _ctx())
    assert not torch.equal(before, net.head.weight)
