from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

import pixelsmith
from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.models.base import Batch, StepContext
from pixelsmith.models.diffusion import (
    Diffusion,
    DiffusionConfig,
    DiffusionSampleConfig,
    alpha_bar,
    ddim_sigma,
    ddpm_posterior,
    q_sample,
    timestep_sequence,
)
from pixelsmith.models.unet import UNet, timestep_embedding
from pixelsmith.train.config import build_config, config_from_dict
from pixelsmith.train.loop import train
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils.rng import BatchRandom

TINY = [
    "data.source=shapes",
    "data.limit=48",
    "data.size=16",
    "train.batch=8",
    "model.channels=8",
    "model.channel_mult=1,2",
    "model.timesteps=50",
    "sample.steps=4",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=3",
    "train.grid_size=4",
]


def _tiny(**kw) -> DiffusionConfig:
    return DiffusionConfig(**{"channels": 8, "channel_mult": "1,2", "timesteps": 20, **kw})


def _family(cfg: DiffusionConfig, shape=(1, 8, 8), num_classes: int = 0, steps: int = 5):
    """A family built outside the engine (no EMA copy: it samples from "net"), `steps` steps."""
    fam = Diffusion(cfg, shape, num_classes)
    fam.sample_defaults = fam.sample_options(steps=steps, sampler="ddim")
    return fam


def _randomised(fam: Diffusion, seed: int = 0) -> Diffusion:
    """Random weights everywhere (zero-initialised layers would make eps identically 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in fam.networks["net"].parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return fam.eval()


# ---- the schedule and the forward process ----------------------------------------------------


def _nichol_alpha_bar(T: int, s: float = 0.008) -> np.ndarray:
    f = np.array([math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)])
    betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    return np.cumprod(1 - betas)


def test_schedules_match_closed_forms():
    for T in (1000, 50):
        lin = alpha_bar("linear", T).numpy()
        scale = 1000 / T
        ref = np.cumprod(1 - np.linspace(scale * 1e-4, scale * 0.02, T))
        np.testing.assert_allclose(lin, ref, rtol=1e-12)
        cos = alpha_bar("cosine", T).numpy()
        np.testing.assert_allclose(cos, _nichol_alpha_bar(T), rtol=1e-12)
        # away from the 0.999 clip at the very end, alpha_bar[t] is f(t + 1) / f(0) itself
        f = lambda t, T=T: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        for t in (0, T // 4, T // 2, 3 * T // 4):
            assert cos[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
        for ab in (lin, cos):
            assert np.all(np.diff(ab) < 0) and ab[0] < 1 and ab[-1] > 0
            assert ab[0] > 0.99 and ab[-1] < 1e-3


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_forward_process_matches_closed_form(schedule):
    ab = alpha_bar(schedule, 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.tensor([-0.8, 0.3, 1.0]).view(1, 3, 1, 1).expand(20_000, 3, 1, 1)
    for t in (0, 100, 500, 900, 999):
        ts = torch.full((20_000,), t)
        x = q_sample(x0, ts, torch.randn(x0.shape, generator=g), ab.float()).double()
        a = float(ab[t])
        mean, var = x.mean(0).flatten(), x.var(0).flatten()
        expect = math.sqrt(a) * torch.tensor([-0.8, 0.3, 1.0], dtype=torch.float64)
        sd = math.sqrt((1 - a) / 20_000)
        assert torch.all((mean - expect).abs() < 5 * sd + 1e-6), (t, mean, expect)
        assert torch.allclose(var, torch.full_like(var, 1 - a), rtol=0.05, atol=1e-6), (t, var)


def test_ddim_at_eta_one_on_full_schedule_has_ddpm_posterior_variance():
    for schedule in ("linear", "cosine"):
        ab = alpha_bar(schedule, 100).numpy()
        betas = 1 - ab / np.concatenate([[1.0], ab[:-1]])
        assert timestep_sequence(100, 100) == list(range(99, -1, -1))
        for t in range(1, 100):
            posterior_std = math.sqrt(betas[t] * (1 - ab[t - 1]) / (1 - ab[t]))
            assert ddim_sigma(ab[t], ab[t - 1], 1.0) == pytest.approx(posterior_std, rel=1e-9)
            assert ddpm_posterior(ab[t], ab[t - 1])[2] == pytest.approx(posterior_std**2, 1e-9)
            assert ddim_sigma(ab[t], ab[t - 1], 0.0) == 0
    # and the whole chain: DDIM(eta=1, all steps) draws the same samples as DDPM
    fam = _randomised(_family(_tiny()))
    a = fam.sample(3, seed=5, sampler="ddim", eta=1.0, steps=20)
    b = fam.sample(3, seed=5, sampler="ddpm", steps=20)
    # (two formulas for one chain: equal up to rounding, 4e-7 here; another seed moves it by ~1)
    assert torch.allclose(a, b, atol=1e-4)
    assert (a - fam.sample(3, seed=6)).abs().max() > 1e-2


def test_timestep_sequence():
    seq = timestep_sequence(50, 1000)
    assert len(seq) == 50 and seq[0] == 999 and seq[-1] == 0
    assert all(a > b for a, b in zip(seq, seq[1:], strict=False))
    assert timestep_sequence(1, 1000) == [999] and timestep_sequence(2, 10) == [9, 0]


def test_timestep_embedding():
    t = torch.tensor([0, 1, 7, 999])
    e = timestep_embedding(t, 32)
    assert e.shape == (4, 32) and e.dtype == torch.float32
    assert torch.equal(e[0], torch.cat([torch.zeros(16), torch.ones(16)]))
    assert torch.allclose(e.norm(dim=1), torch.full((4,), 4.0))  # sin^2 + cos^2 per frequency
    freqs = 10_000.0 ** (-torch.arange(16, dtype=torch.float64) / 16)
    ref = torch.cat([torch.sin(999 * freqs), torch.cos(999 * freqs)]).float()
    assert torch.allclose(e[3], ref, atol=2e-3)  # float32 argument rounding at t = 999
    assert e[1, 0] == pytest.approx(math.sin(1)) and e[1, 15] == pytest.approx(
        math.sin(10_000 ** (-15 / 16)), rel=1e-5
    )
    assert timestep_embedding(t, 7).shape == (4, 7)


# ---- the U-Net -------------------------------------------------------------------------------


def test_unet_sizes():
    for size, mult in ((28, (1, 2, 2)), (32, (1, 2, 2)), (16, (1, 2))):
        net = UNet(1, (size, size), 8, mult, num_classes=3)
        out = net(torch.randn(2, 1, size, size), torch.tensor([0, 9]), torch.tensor([0, 3]))
        assert out.shape == (2, 1, size, size)
    with pytest.raises(UserError, match=r"30x30.*multiples of 4.*data\.size"):
        Diffusion(DiffusionConfig(), (1, 30, 30))
    with pytest.raises(UserError, match="4x4"):
        Diffusion(DiffusionConfig(channel_mult="1,2,2"), (1, 4, 4))
    with pytest.raises(UserError, match="conditional"):
        Diffusion(DiffusionConfig(conditional=True), (1, 28, 28), num_classes=0)


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"schedule": "quadratic"}, "model.schedule"),
        ({"channel_mult": "1,x"}, "model.channel_mult"),
        ({"p_uncond": 1.0}, "p_uncond"),
        ({"timesteps": 1}, "model.timesteps"),
        ({"grad_clip": -1.0}, "model.grad_clip"),
    ],
)
def test_bad_config_is_a_user_error(kw, needle):
    with pytest.raises(UserError, match=needle):
        DiffusionConfig(**kw)


def test_sampling_settings_left_the_model_config():
    fields = {f.name for f in dataclasses.fields(DiffusionConfig)}
    assert not fields & {"sampler", "sample_steps", "steps", "eta", "guidance"}
    with pytest.raises(TypeError):
        DiffusionConfig(sample_steps=5)  # type: ignore[call-arg]
    opts = {f.name: f.default for f in dataclasses.fields(DiffusionSampleConfig)}
    assert opts == {
        "labels": None,
        "sampler": "dpm-solver++",
        "steps": None,
        "eta": 0.0,
        "guidance": 2.0,
    }


def test_default_steps_fit_a_model_trained_with_few_timesteps():
    # Unset steps are 15 for the default solver (50 for DDIM), or every timestep when there are
    # fewer: model.timesteps=10 just works.
    calls = []
    for timesteps, taken in ((10, 10), (100, 15)):
        cfg = DiffusionConfig(channels=8, channel_mult="1,2", attention=False, timesteps=timesteps)
        fam = Diffusion(cfg, (1, 8, 8))
        fam.networks["net"].register_forward_hook(lambda *_: calls.append(1))
        calls.clear()
        fam.sample(1)
        assert len(calls) == taken
        assert fam.sample_settings()["steps"] == taken  # the card records the steps taken
        calls.clear()
        fam.sample(1, sampler="ddim")
        assert len(calls) == min(timesteps, 50)
    assert Diffusion.SampleConfig is DiffusionSampleConfig


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"sampler": "euler"}, r"sample\.sampler must be one of ddpm, ddim"),
        ({"steps": 21}, r"sample\.steps must be between 1 and the model's 20 timesteps"),
        ({"steps": 0}, r"sample\.steps"),
        ({"eta": -0.1}, r"sample\.eta"),
        ({"guidance": -1.0}, r"sample\.guidance"),
        ({"sample_steps": 5}, r"no sampling option 'sample_steps'.*sample\.steps"),
        ({"labels": (0,)}, "unconditional"),
    ],
)
def test_bad_sample_options_are_user_errors(kw, needle):
    fam = _family(_tiny())
    with pytest.raises(UserError, match=needle):
        fam.sample(2, **kw)
    with pytest.raises(UserError, match=needle):
        fam.sample_options(**kw)


# ---- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("conditional", [False, True])
def test_training_lowers_the_loss_on_a_fixed_batch(conditional):
    torch.manual_seed(0)
    fam = _family(_tiny(conditional=conditional, lr=3e-3), num_classes=2)
    fam.configure_optimizers()
    x = torch.zeros(16, 1, 8, 8)
    x[:8, :, 2:6, 2:6] = 1.0
    y = (torch.arange(16) >= 8).long()

    def held_out() -> float:
        with torch.no_grad():
            return sum(fam.loss(x, y, BatchRandom(100 + i)).item() for i in range(4)) / 4

    before, rng = held_out(), BatchRandom(0)
    batch = Batch(x, y)
    ctx = lambda i: StepContext(rng, i, lambda: batch, lambda net: None)  # noqa: E731
    logs = [fam.train_step(batch, ctx(i)) for i in range(15)]
    assert set(logs[0]) == {"loss"} and all(math.isfinite(v["loss"]) for v in logs)
    # the untrained net predicts eps ~ 0, so the loss starts near E[noise^2] = 1
    assert 0.8 < before < 1.2
    # 15 steps leave 0.34-0.40 of it over init seeds 0-7 (either mode): 0.6 is 1.5x slack
    assert held_out() < 0.6 * before


def test_label_dropout_uses_rng_and_null_class():
    fam = _family(_tiny(conditional=True, p_uncond=0.5), num_classes=3)
    seen = []
    fam.networks["net"].forward = lambda x, t, y: seen.append(y) or x  # type: ignore[method-assign]
    x, y = torch.rand(64, 1, 8, 8), torch.arange(64) % 3
    fam.loss(x, y, BatchRandom(1))
    fam.loss(x, y, BatchRandom(1))
    assert torch.equal(seen[0], seen[1])
    null = seen[0] == 3
    # Binomial(64, 0.5): 10..54 is more than 5 standard deviations either side
    assert 10 < null.sum() < 54 and torch.equal(seen[0][~null], y[~null])


# ---- sampling --------------------------------------------------------------------------------


def test_ddim_eta_zero_depends_only_on_initial_noise():
    fam = _randomised(_family(_tiny()))
    a = fam.sample(4, seed=1, sampler="ddim", eta=0.0, steps=5)
    assert torch.equal(a, fam.sample(4, seed=1, sampler="ddim", eta=0.0, steps=5))
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    ddim0 = fam.sample_options(steps=5, eta=0.0, sampler="ddim")
    ddim1 = fam.sample_options(steps=5, eta=1.0, sampler="ddim")
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    out1 = fam.denoise(x_T, g1, opts=ddim0)
    out2 = fam.denoise(x_T, g2, opts=ddim0)
    assert torch.equal(out1, out2)  # the same computation: no noise drawn
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    noisy1 = fam.denoise(x_T, g1, opts=ddim1)
    noisy2 = fam.denoise(x_T, g2, opts=ddim1)
    assert (noisy1 - noisy2).abs().max() > 1e-2
    assert out1.min() >= -1 and out1.max() <= 1
    # sample() is denoise() from x_T drawn first from the seed's generator
    gen = torch.Generator().manual_seed(1)
    x_T = torch.randn(4, 1, 8, 8, generator=gen)
    assert torch.equal(a, ((fam.denoise(x_T, gen, opts=ddim0) + 1) / 2).clamp(0, 1))


def test_sample_options_and_overrides():
    fam = _randomised(_family(_tiny()))
    assert fam.sample_defaults.steps == 5 and fam.sample_defaults.sampler == "ddim"
    base = fam.sample(3, seed=0)
    assert base.shape == (3, 1, 8, 8) and base.dtype == torch.float32
    assert base.min() >= 0 and base.max() <= 1
    assert (base - fam.sample(3, seed=1)).abs().max() > 1e-2
    # the model's defaults are what sample() uses; overrides and an options object change them
    opts5 = DiffusionSampleConfig(steps=5, sampler="ddim")
    assert torch.equal(base, fam.sample(3, seed=0, options=opts5))
    solver = fam.sample(3, seed=0, options=DiffusionSampleConfig(steps=5))  # the default sampler
    assert (solver - base).abs().max() > 1e-3
    seven = fam.sample(3, seed=0, steps=7)
    assert (base - seven).abs().max() > 1e-3
    assert torch.equal(seven, fam.sample(3, seed=0, options=fam.sample_options(steps=7)))
    ddpm = fam.sample(3, seed=0, sampler="ddpm")
    assert torch.equal(ddpm, fam.sample(3, seed=0, sampler="ddpm"))
    assert (ddpm - base).abs().max() > 1e-2
    assert (fam.sample(3, seed=0, eta=1.0) - base).abs().max() > 1e-2
    # guidance means nothing to an unconditional model: the same draws
    assert torch.equal(fam.sample(3, seed=0, guidance=5.0), base)
    # sample_options copies: the defaults stay as they were
    opts = fam.sample_options(steps=9)
    assert opts.steps == 9 and fam.sample_defaults.steps == 5
    fam.sample_defaults = opts
    assert torch.equal(fam.sample(3, seed=0), fam.sample(3, seed=0, steps=9))
    assert fam.sample(0).shape == (0, 1, 8, 8)
    # the card records the options (an unconditional model has no labels to record)
    card = fam.sample_settings(fam.sample_options(steps=7))
    assert card == {
        "sampler": "ddim",
        "steps": 7,
        "eta": 0.0,
        "guidance": 2.0,
    }
    with pytest.raises(UserError, match="sample.sampler"):
        fam.sample(2, sampler="plms")
    with pytest.raises(UserError, match=r"sample\.steps must be between 1 and the model's 20"):
        fam.sample(2, steps=21)
    assert fam.sample(1, seed=0, steps=20).shape == (1, 1, 8, 8)  # all timesteps is allowed


def test_classifier_free_guidance():
    fam = _randomised(_family(_tiny(conditional=True), num_classes=3))
    net = fam.networks["net"]
    g = torch.Generator().manual_seed(0)
    x, t, y = (
        torch.randn(4, 1, 8, 8, generator=g),
        torch.tensor([0, 5, 10, 19]),
        torch.arange(4) % 3,
    )
    with torch.no_grad():
        cond, uncond = net(x, t, y), net(x, t, torch.full_like(y, 3))
        assert (cond - uncond).abs().max() > 1e-2
        # eps runs both in one batch of 8: other kernels than these batches of 4, so a tolerance
        assert torch.allclose(fam.eps(net, x, t, y, guidance=1.0), cond, rtol=1e-4, atol=1e-5)
        assert torch.allclose(fam.eps(net, x, t, y, guidance=0.0), uncond, rtol=1e-4, atol=1e-5)
        w3 = fam.eps(net, x, t, y, guidance=3.0)
        assert torch.allclose(w3, uncond + 3 * (cond - uncond), rtol=1e-4, atol=1e-4)
    assert fam.classes == 3
    a = fam.sample(3, seed=0, labels=(0,), guidance=2.0)
    assert torch.equal(a, fam.sample(3, seed=0, labels=(0, 0, 0), guidance=2.0))
    b = fam.sample(3, seed=0, labels=(1,), guidance=2.0)
    assert (a - b).abs().max() > 1e-3
    assert (fam.sample(3, seed=0, labels=(0,), guidance=1.0) - a).abs().max() > 1e-3
    # default labels cycle 0, 1, 2
    assert torch.equal(fam.sample(3, seed=0), fam.sample(3, seed=0, labels=(0, 1, 2)))
    with pytest.raises(UserError, match="label 3"):
        fam.sample(2, labels=(0, 3))


# ---- old configs, the engine and the CLI -------------------------------------------------------


OLD_MODEL = {
    "channels": 8,
    "channel_mult": "1,2",
    "timesteps": 50,
    "sampler": "ddpm",
    "sample_steps": 7,
    "eta": 0.5,
    "guidance": 3.0,
}


def test_old_model_config_with_sampling_keys_is_upgraded():
    old = dict(OLD_MODEL)
    model, sample = Diffusion.upgrade(old)
    assert model == {"channels": 8, "channel_mult": "1,2", "timesteps": 50}
    assert sample == {"sampler": "ddpm", "steps": 7, "eta": 0.5, "guidance": 3.0}
    assert old == OLD_MODEL  # the caller's mapping is left alone
    assert Diffusion.upgrade(model) == (model, {})  # a new layout passes through
    cfg = Diffusion.config_from(OLD_MODEL)
    assert (cfg.channels, cfg.channel_mult, cfg.timesteps) == (8, "1,2", 50)
    # a saved run config of the old layout: the keys land in the sample section, and a sample
    # section saved beside them wins
    saved = {"preset": "diffusion", "family": "diffusion", "model": dict(OLD_MODEL)}
    run = config_from_dict(saved)
    assert (run.sample.sampler, run.sample.steps, run.sample.eta, run.sample.guidance) == (
        "ddpm",
        7,
        0.5,
        3.0,
    )
    assert run.model.timesteps == 50 and not hasattr(run.model, "sample_steps")
    run = build_config("diffusion", base={**saved, "sample": {"eta": 0.25}})
    assert run.sample.eta == 0.25 and run.sample.steps == 7


def _state(run) -> dict[str, torch.Tensor]:
    t, _ = ckf.load_checkpoint(ckf.resolve_checkpoint(run))
    return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}


def test_resume_is_bit_identical(tmp_path):
    # the same computation twice in one process: bit-exact is the claim
    extra = ["model.conditional=true", "data.limit=20"]  # crosses epoch boundaries

    def cfg(steps: int):
        return build_config("diffusion", overrides=TINY + extra + [f"train.steps={steps}"])

    full = train(cfg(8), tmp_path / "a", progress=False)
    half = train(cfg(4), tmp_path / "b", progress=False)
    resumed = train(cfg(8), resume=half, progress=False)
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys() and any(k.startswith("net/net_ema/") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_train_then_load_and_sample(tmp_path, capsys):
    sets = [a for t in TINY for a in ("--set", t)]
    rc = main(["train", "diffusion", "--steps", "3", "--out", str(tmp_path), "--quiet", *sets])
    assert rc == 0
    run = next(tmp_path.iterdir())
    model = pixelsmith.load(str(run))
    assert model.classes == 0 and "net_ema" in model.networks
    # the run's sample section is the loaded model's default
    assert model.sample_defaults == DiffusionSampleConfig(steps=4)
    x = model.sample(5, seed=3)
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x, model.sample(5, seed=3)) and not torch.equal(x, model.sample(5, seed=4))
    assert model.sample(2, seed=3, sampler="ddpm", steps=50).shape == (2, 3, 16, 16)

    # a checkpoint written by an older pixelsmith: sampling settings in the model section
    tensors, man = ckf.load_checkpoint(ckf.resolve_checkpoint(run))
    man["config"].pop("sample", None)
    man["config"]["model"] = {**man["config"]["model"], "sampler": "ddpm", "sample_steps": 7}
    old = ckf.save_checkpoint(tmp_path / "old.safetensors", tensors, man)
    upgraded = pixelsmith.load(str(old))
    assert upgraded.sample_defaults == DiffusionSampleConfig(sampler="ddpm", steps=7)
    assert torch.equal(upgraded.sample(2, seed=3), model.sample(2, seed=3, sampler="ddpm", steps=7))
    # ... and one whose old steps exceed its timesteps is refused, naming sample.steps
    man["config"]["model"]["sample_steps"] = 60
    bad_old = ckf.save_checkpoint(tmp_path / "bad-old.safetensors", tensors, man)
    with pytest.raises(UserError, match=r"sample\.steps must be between 1 and the model's 50"):
        pixelsmith.load(str(bad_old))

    assert main(["train", "diffusion-30min", "--dry-run"]) == 0
    capsys.readouterr()
    bad = ["train", "diffusion", "--steps", "1", "--out", str(tmp_path / "bad"), "--quiet"]
    assert main([*bad, *sets, "--set", "data.size=30", "--set", "model.channel_mult=1,2,2"]) == 2
    err = capsys.readouterr().err
    assert "30x30" in err and "data.size" in err and "Traceback" not in err
    # steps above the model's timesteps: refused before a run folder exists
    assert main([*bad, *sets, "--set", "sample.steps=60"]) == 2
    err = capsys.readouterr().err
    assert "sample.steps" in err and "50 timesteps" in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
