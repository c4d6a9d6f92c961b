"""Input-transform defences and randomised smoothing: each transform against an independent
reference, BPDA and EoT doing what they say, and the smoothing certificate against a model whose
certified radius is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pixelsmith.data.degrade import jpeg as jpeg_codec
from pixelsmith.errors import UserError
from pixelsmith.robust import defences as d
from pixelsmith.robust import smoothing as sm


def _images(n: int = 4, c: int = 1, side: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed))


class _Linear(nn.Module):
    """Two-class logits (-s, s) of s = w . x + b: a model with a closed-form geometry."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.flatten(1) @ self.w.flatten() + self.b
        return torch.stack([-s, s], 1)


def test_each_transform_matches_its_reference():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    x = _images()
    np.testing.assert_allclose(
        d.median(3).transform(x).numpy(),
        scipy_ndimage.median_filter(x.numpy(), size=(1, 1, 3, 3), mode="mirror"),
    )
    assert torch.equal(d.jpeg(60).transform(x), jpeg_codec(x, 60))
    four = d.bit_depth(4).transform(x)
    assert torch.equal(four * 15, torch.round(four * 15)) and (four - x).abs().max() <= 1 / 30
    r = d.resize_pad(1.2, seed=0)
    a, b = r.transform(x), r.transform(x)
    assert a.shape == x.shape and not torch.equal(a, b)  # random: each call draws anew
    assert torch.equal(d.resize_pad(1.2, seed=0).transform(x), a)  # and seeded
    for bad in (lambda: d.jpeg(0), lambda: d.bit_depth(9), lambda: d.median(2),
                lambda: d.resize_pad(3.0), lambda: d.defence("blur")):  # fmt: skip
        with pytest.raises(UserError):
            bad()


def test_a_naive_gradient_through_jpeg_or_rounding_is_zero_and_bpda_restores_it():
    torch.manual_seed(0)
    model = _Linear(torch.randn(1, 12, 12), 0.1)
    x = _images(1)
    for defence in (d.jpeg(75), d.bit_depth(3)):
        grads = {}
        for bpda in (False, True):
            xi = x.clone().requires_grad_(True)
            d.Defended(model, defence, bpda=bpda)(xi)[:, 1].sum().backward()
            grads[bpda] = xi.grad
        assert float(grads[False].abs().max()) == 0  # masked: what fools a naive attack
        # straight-through: the gradient of the model at the transformed image (linear: w)
        torch.testing.assert_close(grads[True], model.w[None], atol=1e-6, rtol=0)


def test_eot_averages_the_logits_over_draws():
    torch.manual_seed(0)
    model = _Linear(torch.randn(1, 12, 12), 0.0)
    x = _images(2)
    one = d.Defended(model, d.resize_pad(1.3, seed=5))
    draws = torch.stack([one(x) for _ in range(4)]).mean(0)
    averaged = d.Defended(model, d.resize_pad(1.3, seed=5), eot=4)(x)
    torch.testing.assert_close(averaged, draws)
    assert "EoT-4" in d.Defended(model, d.resize_pad(), bpda=True, eot=4).name


def test_the_clopper_pearson_bound_matches_scipys_beta_quantile():
    stats = pytest.importorskip("scipy.stats")
    for k, n, alpha in ((990, 1000, 0.001), (50, 100, 0.05), (1, 10, 0.01), (100, 100, 0.001)):
        want = stats.beta.ppf(alpha, k, n - k + 1)
        assert math.isclose(sm.lower_confidence_bound(k, n, alpha), want, abs_tol=1e-9)
    assert sm.lower_confidence_bound(0, 10, 0.01) == 0.0


def test_the_certificate_holds_against_the_closed_form_radius_of_a_linear_model():
    # Smoothing a linear classifier with N(0, s^2 I) gives p_A = Phi(|w.x + b| / (s |w|)), so
    # the exact certified radius is the distance |w.x + b| / |w| to its boundary.
    torch.manual_seed(1)
    w = torch.randn(1, 6, 6) / 6
    x = _images(8, side=6, seed=3)
    b = -float((x.flatten(1) @ w.flatten()).median())  # images on both sides of the boundary
    model = _Linear(w, b)
    sigma = 0.25
    cert = sm.certify(model, x, sigma, n0=50, n=4000, alpha=0.001, seed=0)
    s = x.flatten(1) @ w.flatten() + b
    distance = s.abs() / w.norm()
    truth = (s > 0).long()
    for i in range(len(x)):
        if cert.prediction[i] == sm.ABSTAIN:
            assert distance[i] < 0.6 * sigma  # only near the boundary may it abstain
            continue
        assert int(cert.prediction[i]) == int(truth[i])
        assert float(cert.radius[i]) <= float(distance[i]) + 1e-6  # a lower bound, never more
        assert float(cert.radius[i]) >= 0.7 * float(distance[i]) - 0.1 * sigma  # and close
    assert set(truth.tolist()) == {0, 1} and (cert.prediction >= 0).sum() >= 4
    acc = sm.certified_accuracy(cert, truth, [0.0, 10.0])
    assert acc[0] >= 0.5 and acc[1] == 0.0
    assert torch.equal(sm.predict(model, x, sigma, n=500, seed=1)[cert.prediction >= 0],
                       truth[cert.prediction >= 0])  # fmt: skip
    with pytest.raises(UserError, match="sigma"):
        sm.certify(model, x, 0.0)
