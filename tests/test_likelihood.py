"""The shared likelihood of 8-bit images (pixelsmith.nn.likelihood) against scipy, and the two
families that use it (VAE's logistic decoder, PixelCNN's logistic mixture) going through it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import logistic

import pixelsmith.models.pixelcnn as pcnn
import pixelsmith.models.vae as vae
from pixelsmith.nn import likelihood
from pixelsmith.nn.likelihood import bits_per_dim, discretized_logistic_logp

LEVELS = np.arange(256)


def scipy_logp(levels: np.ndarray, mean: float, log_scale: float) -> np.ndarray:
    """log P(level) from scipy's logistic, in float64, as a difference of CDFs.

    Bin u is [2u/255 - 1 - 1/255, 2u/255 - 1 + 1/255], the end bins open to -inf / +inf. Left of
    the mean the difference is taken between CDFs, right of it between survival functions, each
    as log(big) + log(1 - small/big): no cancellation where both round to 0 or 1.
    """
    s = math.exp(log_scale)
    x = levels * 2 / 255 - 1
    upper = np.where(levels == 255, np.inf, x + 1 / 255)
    lower = np.where(levels == 0, -np.inf, x - 1 / 255)
    with np.errstate(divide="ignore"):
        sf_lo, sf_up = logistic.logsf(lower, mean, s), logistic.logsf(upper, mean, s)
        cdf_lo, cdf_up = logistic.logcdf(lower, mean, s), logistic.logcdf(upper, mean, s)
        right = sf_lo + np.log(-np.expm1(sf_up - sf_lo))
        left = cdf_up + np.log(-np.expm1(cdf_lo - cdf_up))
    return np.where(lower > mean, right, left)


def ours(mean: float, log_scale: float, dtype=torch.float64, levels=None) -> np.ndarray:
    levels = torch.arange(256) if levels is None else levels
    m = torch.full((256,), mean, dtype=dtype)
    s = torch.full((256,), log_scale, dtype=dtype)
    return discretized_logistic_logp(levels, m, s).double().numpy()


# Means inside, at the edge of and far outside [-1, 1] (one exactly on a bin edge); log-scales from
# the clamp floor (-7, below one level's width), past PixelCNN's ceiling (5) to a nearly flat 15.
MEANS = [0.0, -0.93, 1 / 255, 1.0, 3.0, -5.0]
LOG_SCALES = [-7.0, -5.0, -2.0, 0.0, 5.0, 15.0]
GRID = [(m, s) for m in MEANS for s in LOG_SCALES]


# ---- bits per dimension --------------------------------------------------------------------


def test_bits_per_dim_is_nats_over_dims_ln2():
    # log2(e) / dims, computed without the library's formula
    for nats, dims in [(1234.5, 784), (0.0, 3), (-7.0, 12), (5e4, 3 * 32 * 32)]:
        assert bits_per_dim(nats, dims) == pytest.approx(nats * np.log2(np.e) / dims, rel=1e-12)
    # a uniform distribution over 256 levels costs exactly 8 bits per sub-pixel
    assert bits_per_dim(784 * math.log(256), 784) == pytest.approx(8.0, rel=1e-12)
    assert bits_per_dim(3 * 16 * 16 * math.log(2), 3 * 16 * 16) == pytest.approx(1.0, rel=1e-12)


# ---- the discretised logistic against scipy ------------------------------------------------


@pytest.mark.parametrize("mean,log_scale", GRID)
def test_discretized_logistic_matches_scipy_and_sums_to_one(mean, log_scale):
    ref = scipy_logp(LEVELS, mean, log_scale)
    assert np.isfinite(ref).all()
    # the reference itself: 256 probabilities that sum to 1 (end bins open)
    assert logsumexp(ref) == pytest.approx(0.0, abs=1e-12)
    got = ours(mean, log_scale)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-6)
    assert logsumexp(got) == pytest.approx(0.0, abs=1e-12)
    # float32, as training uses it: the level -> x mapping itself rounds at ~6e-8, which a scale of
    # e^-7 magnifies to ~1e-4 in the log-probability of a central bin
    got32 = ours(mean, log_scale, torch.float32)
    assert np.isfinite(got32).all()
    np.testing.assert_allclose(got32, ref, rtol=2e-6, atol=3e-4)
    assert logsumexp(got32) == pytest.approx(0.0, abs=1e-5)


@pytest.mark.parametrize("mean,log_scale", [(0.0, -7.0), (0.3, 0.0), (3.0, -7.0), (-5.0, 5.0)])
def test_end_bins_take_the_tails(mean, log_scale):
    s = math.exp(log_scale)
    got = ours(mean, log_scale)
    # level 0 is (-inf, -1 + 1/255], level 255 is [1 - 1/255, +inf)
    assert got[0] == pytest.approx(logistic.logcdf(-1 + 1 / 255, mean, s), rel=1e-9, abs=1e-12)
    assert got[255] == pytest.approx(logistic.logsf(1 - 1 / 255, mean, s), rel=1e-9, abs=1e-12)
    # an open end bin holds more than its closed neighbour would when the mean lies beyond it
    if mean >= 1:
        assert got[255] == pytest.approx(0.0, abs=1e-6) and got[254] < -100
    if mean <= -1:
        assert got[0] > got[1]


def test_level_dtypes_and_broadcasting():
    g = torch.Generator().manual_seed(0)
    mean = torch.rand(5, 1, generator=g, dtype=torch.float64) * 3 - 1.5
    log_scale = torch.rand(5, 1, generator=g, dtype=torch.float64) * 8 - 7
    base = discretized_logistic_logp(torch.arange(256), mean, log_scale)  # broadcast to (5, 256)
    assert base.shape == (5, 256)
    for levels in (torch.arange(256, dtype=torch.uint8), torch.arange(256.0, dtype=torch.float64)):
        assert torch.equal(discretized_logistic_logp(levels, mean, log_scale), base)
    for i in range(5):
        ref = scipy_logp(LEVELS, mean[i].item(), log_scale[i].item())
        np.testing.assert_allclose(base[i].numpy(), ref, rtol=1e-9, atol=1e-6)


# ---- gradients -------------------------------------------------------------------------------


def test_gradients_are_correct_in_float64():
    # finite differences (gradcheck) at every level, end bins included, for moderate scales
    levels = torch.arange(0, 256, 5).repeat_interleave(2)
    levels[-2:] = torch.tensor([0, 255])
    n = len(levels)
    g = torch.Generator().manual_seed(1)
    mean = (torch.rand(n, generator=g, dtype=torch.float64) * 2.4 - 1.2).requires_grad_(True)
    log_scale = (torch.rand(n, generator=g, dtype=torch.float64) * 4 - 4).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda m, s: discretized_logistic_logp(levels, m, s), (mean, log_scale)
    )


@pytest.mark.parametrize("log_scale", LOG_SCALES)
def test_gradients_stay_finite_and_accurate_in_float32_at_extreme_scales(log_scale):
    # every level, means in and far outside the range: float32 gradients are finite and match the
    # float64 ones (which gradcheck verifies) up to float32's input rounding
    grads = {}
    for dtype in (torch.float32, torch.float64):
        m = torch.tensor(MEANS, dtype=dtype)[:, None].expand(-1, 256).clone().requires_grad_(True)
        s = torch.full((len(MEANS), 256), log_scale, dtype=dtype, requires_grad=True)
        lp = discretized_logistic_logp(torch.arange(256), m, s)
        lp.sum().backward()
        assert torch.isfinite(lp).all()
        grads[dtype] = (m.grad.double(), s.grad.double())
    for g32, g64 in zip(grads[torch.float32], grads[torch.float64], strict=True):
        assert torch.isfinite(g32).all()
        assert ((g32 - g64).abs() / (1 + g64.abs())).max() < 1e-2


# ---- both families go through it -------------------------------------------------------------


def test_the_families_use_the_shared_functions():
    assert vae.discretized_logistic_logp is likelihood.discretized_logistic_logp
    assert pcnn.discretized_logistic_logp is likelihood.discretized_logistic_logp
    assert vae.bits_per_dim is likelihood.bits_per_dim
    assert pcnn.bits_per_dim is likelihood.bits_per_dim


def _vae_params(n=3, shape=(3, 6, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    mean = torch.rand(n, *shape, generator=g, dtype=torch.float64) * 2.4 - 1.2
    log_scale = torch.rand(n, *shape, generator=g, dtype=torch.float64) * 9 - 8  # some below -7
    levels = torch.randint(0, 256, (n, *shape), generator=g)
    levels[0, 0, 0, :2] = torch.tensor([0, 255])
    return mean, log_scale, levels


def test_vae_logistic_likelihood_and_pixelcnn_single_component_agree_with_scipy(
    monkeypatch, tiny_vae
):
    calls = []
    shared = likelihood.discretized_logistic_logp

    def spy(*args):
        calls.append(args[0].shape)
        return shared(*args)

    monkeypatch.setattr(vae, "discretized_logistic_logp", spy)
    monkeypatch.setattr(pcnn, "discretized_logistic_logp", spy)
    mean, log_scale, levels = _vae_params()
    n, c, h, w = levels.shape
    model = tiny_vae((c, h, w))
    v = model.log_likelihood(torch.stack([mean, log_scale], 1), levels)  # (N,)
    assert len(calls) == 1
    # PixelCNN, one mixture component (any logit: its weight is 1), parameters (N, C, 3, H, W)
    logit = torch.randn(n, c, h, w, dtype=torch.float64)
    params = torch.stack([logit, mean, log_scale], 2)
    p = pcnn.log_prob(params, levels, "logistic").flatten(1).sum(1)
    assert len(calls) == 2
    np.testing.assert_allclose(v.numpy(), p.numpy(), rtol=1e-12)
    # both clamp the log-scale at -7 from below (PixelCNN also at 5 above; none here exceed it)
    ref = np.zeros(n)
    for idx in np.ndindex(*levels.shape):
        s = max(log_scale[idx].item(), -7.0)
        ref[idx[0]] += scipy_logp(levels[idx].numpy(), mean[idx].item(), s)
    np.testing.assert_allclose(v.numpy(), ref, rtol=1e-9)


def test_pixelcnn_clamps_log_scales_to_its_range():
    levels = torch.arange(256)
    mean = torch.full((256,), 0.2, dtype=torch.float64)
    for raw, kept in [(-30.0, -7.0), (12.0, 5.0), (-3.0, -3.0)]:
        got = pcnn.logistic_bin_logp(levels, mean, torch.full((256,), raw, dtype=torch.float64))
        np.testing.assert_allclose(got.numpy(), scipy_logp(LEVELS, 0.2, kept), rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize(
    "dtype,rtol,atol", [(torch.float64, 1e-9, 1e-6), (torch.float32, 1e-5, 1e-3)]
)
def test_pixelcnn_mixture_matches_a_scipy_mixture(dtype, rtol, atol):
    k = 5
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, k, generator=g, dtype=torch.float64) * 2
    means = torch.rand(12, k, generator=g, dtype=torch.float64) * 3 - 1.5
    log_scales = torch.rand(12, k, generator=g, dtype=torch.float64) * 14 - 8  # some clamped
    params = torch.cat([logits, means, log_scales], 1)
    got = pcnn.level_log_probs(params.to(dtype), "logistic").double().numpy()  # (12, 256)
    for i in range(12):
        log_w = logits[i].numpy() - logsumexp(logits[i].numpy())
        comps = [
            log_w[j]
            + scipy_logp(LEVELS, means[i, j].item(), min(max(log_scales[i, j].item(), -7), 5))
            for j in range(k)
        ]
        ref = logsumexp(np.stack(comps), axis=0)
        assert logsumexp(ref) == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(got[i], ref, rtol=rtol, atol=atol)
        assert logsumexp(got[i]) == pytest.approx(0.0, abs=10 * atol)
