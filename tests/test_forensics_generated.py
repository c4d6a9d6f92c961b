"""The generated-image detector and its frequency baseline: the DCT against scipy, training on
fakes with a known trace, the augmentation's levels, and the shipped detector on real samples."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch
from sklearn.metrics import average_precision_score

from pixelsmith.forensics import generated as gen
from pixelsmith.utils.rng import BatchRandom


def _pair(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth 'real' images and 'fakes' carrying a faint checkerboard (the upsampling trace of
    transposed convolutions, Odena et al. 2016), both on 8-bit levels."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(2 * n, 1, 7, 7, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=(28, 28), mode="bilinear")
    board = ((torch.arange(28)[:, None] + torch.arange(28)[None]) % 2).float() * 2 - 1
    real, fake = smooth[:n], smooth[n:] + 0.03 * board
    return gen.quantise(real), gen.quantise(fake)


def _ap(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> float:
    y = np.r_[np.zeros(len(real_scores)), np.ones(len(fake_scores))]
    return float(average_precision_score(y, torch.cat([real_scores, fake_scores]).numpy()))


def test_the_dct_is_scipys_orthonormal_dct_ii():
    x = torch.rand(28, 28, dtype=torch.float64)
    d = gen.dct_matrix(28)
    ours = d @ x @ d.T
    ref = scipy.fft.dctn(x.numpy(), type=2, norm="ortho")
    assert np.allclose(ours.numpy(), ref, atol=1e-10)
    assert torch.allclose(d @ d.T, torch.eye(28, dtype=torch.float64), atol=1e-12)


def test_the_frequency_baseline_finds_a_checkerboard_trace():
    real, fake = _pair(300, 0)
    test_real, test_fake = _pair(200, 1)
    base = gen.frequency_baseline().fit(real, fake)
    assert _ap(base.scores(test_real), base.scores(test_fake)) > 0.95
    # and it is no oracle: on two draws of the same distribution it is at chance
    other_real, _ = _pair(200, 2)
    assert 0.3 < _ap(base.scores(test_real), base.scores(other_real)) < 0.7


def test_the_cnn_detector_learns_the_trace_and_is_reproducible():
    real, fake = _pair(300, 0)
    test_real, test_fake = _pair(200, 1)
    net, report = gen.train_detector(real, fake, steps=60, batch=32, width=8, augment=False)
    assert report.steps == 60 and np.isfinite(report.loss)
    assert _ap(gen.scores(net, test_real), gen.scores(net, test_fake)) > 0.9
    again, _ = gen.train_detector(real, fake, steps=60, batch=32, width=8, augment=False)
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_augmentation_keeps_8_bit_levels_and_leaves_unfired_images_alone():
    x, _ = _pair(64, 0)
    y = gen.augment_blur_jpeg(x, BatchRandom(0))
    assert torch.equal(torch.round(y * 255) / 255, y)
    changed = (y - x).abs().flatten(1).amax(1) > 0
    # each op fires with probability 0.5: about a quarter of the batch stays as it was
    assert 4 <= int((~changed).sum()) <= 30
    assert gen.augment_blur_jpeg(x, BatchRandom(0)).equal(y)


def test_images_of_the_wrong_shape_are_refused():
    from pixelsmith.errors import UserError

    with pytest.raises(UserError, match="1x28x28"):
        gen.train_detector(torch.rand(4, 3, 28, 28), torch.rand(4, 1, 28, 28), steps=1)


@pytest.mark.zoo
@pytest.mark.fashion_mnist
def test_the_shipped_detector_tells_gan_samples_from_test_images():
    import pixelsmith
    from pixelsmith.data.sources import load_images

    det = gen.load_detector()
    real = load_images("fashion-mnist", split="test", limit=200).as_float()
    fake = gen.quantise(pixelsmith.load("zoo:fmnist-gan").sample(200, seed=123))
    assert _ap(gen.scores(det.net, real), gen.scores(det.net, fake)) > 0.9
    p, prepared = det.probability(torch.rand(3, 56, 56))
    assert 0 <= p <= 1 and prepared == "luma, resized from 56x56"


def test_the_probe_as_a_module_is_the_fitted_probe_and_passes_gradients():
    real, fake = _pair(200, 0)
    probe = gen.feature_probe().fit(real, fake)
    head = gen.probe_head(probe)
    x = torch.cat([real[:8], fake[:8]])
    assert torch.allclose(gen.scores(head, x), probe.scores(x), atol=1e-4)
    cnn = gen.DetectorNet(width=4).eval()
    both = gen.MeanOfProbabilities(cnn, head).eval()
    want = (gen.scores(cnn, x) + probe.scores(x)) / 2
    assert torch.allclose(gen.scores(both, x), want, atol=1e-4)
    x = x.clone().requires_grad_(True)
    both(x).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
