"""The GAN family's conditional sampling: labels choose each image's class for the same z, are
cycled to the number of images, and an unconditional model refuses them."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY_GAN, make_gan

from pixelsmith.errors import UserError
from pixelsmith.generate import batch_seed, parse_options, sample_batches
from pixelsmith.models.gan import GAN, GANConfig

SHAPE = (1, 16, 16)
# Images computed in batches of different sizes run different CPU kernels: equal to rounding.
ATOL = 1e-5
# Far above ATOL: what "different images" means below.
DIFFERENT = 0.05


def _gan(conditional: bool = True, classes: int = 3, class_norm: bool = False) -> GAN:
    """A tiny GAN whose generator has random weights of gain 2 instead of DCGAN's N(0, 0.02), so
    that the class embedding visibly changes the images (as after training)."""
    fam = make_gan(SHAPE, classes, conditional=conditional, class_norm=class_norm)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in fam.networks["G"].parameters():
            if p.dim() > 1:
                p.normal_(0, 2 / math.sqrt(p[0].numel()), generator=g)
    return fam


def _gaps(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The largest pixel difference of each pair of images."""
    return (a - b).abs().flatten(1).amax(1)


@pytest.mark.parametrize("class_norm", [False, True])
def test_labels_choose_the_class_of_each_image_for_the_same_z(class_norm):
    fam = _gan(class_norm=class_norm)
    assert fam.classes == 3
    by_class = [fam.sample(4, seed=0, labels=[k]) for k in range(3)]
    # The same seed, another class: every image changes ...
    for k in (1, 2):
        assert (_gaps(by_class[k], by_class[0]) > DIFFERENT).all(), k
    # ... and only the class changed: the images are G's on the seed's z with that class.
    z = torch.randn(4, TINY_GAN["z_dim"], generator=torch.Generator().manual_seed(0))
    with fam.inference("G") as G, torch.no_grad():
        for k in range(3):
            direct = (G(z, torch.full((4,), k)) + 1) / 2
            torch.testing.assert_close(by_class[k], direct.clamp(0, 1), rtol=0, atol=ATOL)
    # Labels are cycled to n; unset, they are 0, 1, 2, 0, ... (what grids and evaluations use).
    for labels, expect in (([0, 1], [0, 1, 0, 1]), (None, [0, 1, 2, 0]), ([2, 2, 1], [2, 2, 1, 2])):
        got = fam.sample(4, seed=0, **({} if labels is None else {"labels": labels}))
        for i, k in enumerate(expect):
            torch.testing.assert_close(got[i], by_class[k][i], rtol=0, atol=ATOL)
    # A model's own default labels are honoured, and a keyword overrides them.
    fam.sample_defaults = fam.sample_options(labels=(2,))
    torch.testing.assert_close(fam.sample(4, seed=0), by_class[2], rtol=0, atol=ATOL)
    torch.testing.assert_close(fam.sample(4, seed=0, labels=[1]), by_class[1], rtol=0, atol=ATOL)
    opts = parse_options(fam, labels="1,0")
    assert opts.labels == (1, 0)
    with pytest.raises(UserError, match="label 3 is not a class of this model; its 3 classes"):
        fam.sample(2, labels=[3])
    with pytest.raises(UserError, match="label -1 is not a class"):
        fam.sample(2, labels=[-1])


def test_sample_batches_carry_the_class_cycle_across_batches():
    fam = _gan()
    batches = list(sample_batches(fam, 5, seed=7, batch=2))
    assert [len(b) for b in batches] == [2, 2, 1]
    for i, labels in enumerate(([0, 1], [2, 0], [1])):  # 0, 1, 2, 0, 1 over all five
        expect = fam.sample(len(labels), seed=batch_seed(7, i), labels=labels)
        torch.testing.assert_close(batches[i], expect, rtol=0, atol=ATOL)
    restarted = fam.sample(2, seed=batch_seed(7, 1), labels=[0, 1])
    assert (_gaps(batches[1], restarted) > DIFFERENT).all()


def test_an_unconditional_gan_refuses_labels():
    fam = _gan(conditional=False)
    assert fam.classes == 0 and fam.labels_for(4, fam.sample_options()) is None
    with pytest.raises(UserError, match="unconditional, so it takes no labels"):
        fam.sample(4, seed=0, labels=[0])
    with pytest.raises(UserError, match="unconditional"):
        parse_options(fam, labels="1")
    images = fam.sample(4, seed=0)  # without labels it draws
    assert images.shape == (4, *SHAPE) and (_gaps(images[1:], images[0]) > DIFFERENT).all()


def test_a_conditional_gan_needs_labelled_data_with_two_classes():
    for classes in (0, 1):
        with pytest.raises(UserError, match="at least 2 classes"):
            GAN(GANConfig(**TINY_GAN, conditional=True), SHAPE, classes)
    for bad in ({"conditional": False}, {"conditional": True, "g_norm": "none"}):
        with pytest.raises(UserError, match="class_norm needs labels"):
            GANConfig(**{**TINY_GAN, **bad, "class_norm": True})


@pytest.mark.fashion_mnist
def test_a_trained_conditional_gan_draws_varied_images_within_a_class(tmp_path):
    """200 steps of the cgan preset: images of one class still differ with z. With class codes
    as large as z, G had collapsed to one image per class by then (within 0.19 of the spread
    across classes; 0.53 with small codes; real test images: 0.18 / 0.27 = 0.67)."""
    from pixelsmith.generate import load_model
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    cfg = build_config(
        "cgan",
        overrides=[
            "train.steps=200",
            "train.threads=1",
            "train.eval_at_end=false",
            "train.tensorboard=false",
            "train.sample_every=100000",
        ],
    )
    model = load_model(train(cfg, tmp_path, progress=False))
    x = torch.cat(list(sample_batches(model, 200, seed=0))).view(20, 10, -1)  # (z, class, pixel)
    within, across = x.std(0).mean(), x.std(1).mean()
    assert within > 0.35 * across, (float(within), float(across))


def test_mode_seeking_adds_a_per_pair_msgan_term_on_pairs_of_one_class():
    """G's loss gains weight * mean over pairs of 1 / (|G(z1) - G(z2)| / E|dz| + 0.1) (MSGAN's
    ratio per pair, E|dz| = 2 / sqrt(pi)), the fakes come in pairs of one class, and a negative
    weight is refused."""
    from pixelsmith.models.adversarial import AdversarialLoss, paired

    y = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    assert paired(y).tolist() == [3, 1, 4, 3, 1, 4, 2]
    fake = torch.linspace(-1, 1, 6 * 16).view(6, 1, 4, 4)
    fake[5] = fake[2] + 0.01  # one nearly collapsed pair
    fake.requires_grad_(True)
    zero_d = lambda x, y=None: x.flatten(1).sum(1) * 0  # noqa: E731
    plain, _ = AdversarialLoss("ns").g_phase(zero_d, fake.detach(), None, None)
    loss, logs = AdversarialLoss("ns", mode_seeking=0.5).g_phase(zero_d, fake, None, None)
    gaps = [float((fake[i] - fake[i + 3]).detach().abs().mean()) for i in range(3)]
    seek = sum(1 / (g / (2 / math.sqrt(math.pi)) + 0.1) for g in gaps) / 3
    assert gaps[2] == pytest.approx(0.01) and float(plain) == pytest.approx(math.log(2))
    assert float(loss) == pytest.approx(math.log(2) + 0.5 * seek, rel=1e-5)
    assert logs["mode_seeking"] == pytest.approx(seek, rel=1e-5)
    loss.backward()
    # The collapsed pair is pushed apart hardest, and every pair moves apart.
    pull = (fake.grad[:3] - fake.grad[3:]).abs().flatten(1).sum(1)
    assert int(pull.argmax()) == 2
    step = fake.detach() - fake.grad
    assert all((step[i] - step[i + 3]).abs().mean() > g for i, g in enumerate(gaps))
    with pytest.raises(UserError, match="mode_seeking must be >= 0"):
        GANConfig(mode_seeking=-1.0)


def test_a_mode_seeking_step_draws_its_fakes_in_pairs_of_one_class():
    from pixelsmith.models.base import Batch, StepContext
    from pixelsmith.utils.rng import BatchRandom

    fam = make_gan(SHAPE, classes=3, mode_seeking=1.0)
    fam.configure_optimizers()
    seen = []
    fakes = fam._fakes
    fam._fakes = lambda n, y, rng: seen.append(y) or fakes(n, y, rng)
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 1, 1])
    batch = Batch(torch.rand(8, *SHAPE), labels)
    ctx = StepContext(BatchRandom(0), 1, lambda: batch, lambda net: None)
    logs = fam.train_step(batch, ctx)
    assert seen[0].tolist() == [0, 1, 2, 2, 0, 1, 2, 2]
    assert logs["mode_seeking"] > 0
