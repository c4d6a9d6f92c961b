"""PSNR, SSIM and MS-SSIM against scikit-image and an independent numpy/scipy reference."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pixelsmith.errors import UserError
from pixelsmith.metrics.image import ImageMetricMeter, ms_ssim, psnr, ssim

TOL = 1e-5


def _pair(shape, kind="random", data_range=1.0, noise=0.1, seed=0, dtype=torch.float64):
    """A reference batch and a noisy copy, both clipped to [0, data_range]."""
    g = torch.Generator().manual_seed(seed)
    if kind == "random":
        x = torch.rand(shape, generator=g, dtype=torch.float64)
    else:  # smooth: sinusoids with a per-image phase, nearly flat over a window
        n, c, h, w = shape
        yy, xx = torch.meshgrid(
            torch.linspace(0, 1, h, dtype=torch.float64),
            torch.linspace(0, 1, w, dtype=torch.float64),
            indexing="ij",
        )
        phase = torch.rand(n, c, 1, 1, generator=g, dtype=torch.float64) * 6
        x = 0.5 + 0.45 * torch.sin(5 * xx + phase) * torch.cos(3 * yy + phase)
    y = (x + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return (x * data_range).to(dtype), (y * data_range).to(dtype)


def _sk_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float) -> np.ndarray:
    """skimage SSIM per image, Wang et al. settings, on float64 copies."""
    out = []
    for a, b in zip(x.double().numpy(), y.double().numpy(), strict=True):
        ch = 0 if a.shape[0] > 1 else None
        a, b = (a, b) if ch == 0 else (a[0], b[0])
        out.append(
            structural_similarity(
                a,
                b,
                gaussian_weights=True,
                sigma=1.5,
                use_sample_covariance=False,
                data_range=data_range,
                channel_axis=ch,
            )
        )
    return np.array(out)


def _ref_ssim_cs(a: np.ndarray, b: np.ndarray, data_range: float) -> tuple[float, float]:
    """Mean SSIM and contrast-structure of one plane: scipy Gaussian filter, crop 5, average."""

    def blur(im):
        return ndimage.gaussian_filter(im, 1.5, truncate=3.5, mode="reflect")

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(a), blur(b)
    vx, vy, vxy = blur(a * a) - mx * mx, blur(b * b) - my * my, blur(a * b) - mx * my
    cs = (2 * vxy + c2) / (vx + vy + c2)
    s = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    crop = (slice(5, -5), slice(5, -5))
    return float(s[crop].mean()), float(cs[crop].mean())


def _ref_ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float, weights) -> np.ndarray:
    """Straightforward MS-SSIM: per plane, cs at each scale, 2x2 mean pooling, ssim at the last."""
    out = []
    for img_a, img_b in zip(x.double().numpy(), y.double().numpy(), strict=True):
        per_channel = []
        for a, b in zip(img_a, img_b, strict=True):
            value = 1.0
            for level, wt in enumerate(weights):
                s, cs = _ref_ssim_cs(a, b, data_range)
                if level == len(weights) - 1:
                    value *= max(s, 0.0) ** wt
                else:
                    value *= max(cs, 0.0) ** wt
                    h2, w2 = a.shape[0] // 2, a.shape[1] // 2
                    a = a[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).mean((1, 3))
                    b = b[: 2 * h2, : 2 * w2].reshape(h2, 2, w2, 2).mean((1, 3))
            per_channel.append(value)
        out.append(np.mean(per_channel))
    return np.array(out)


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 0, atol: float = 1e-12) -> None:
    """Elementwise closeness via numpy (torch.testing costs a second of import on 2 cores)."""
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=rtol, atol=atol)


SHAPES = [(2, 1, 16, 16), (2, 3, 23, 37), (1, 3, 48, 31), (1, 1, 11, 11)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_psnr_matches_skimage(shape, data_range):
    x, y = _pair(shape, data_range=data_range)
    got = psnr(x, y, data_range=data_range)
    ref = [
        peak_signal_noise_ratio(a, b, data_range=data_range)
        for a, b in zip(x.numpy(), y.numpy(), strict=True)
    ]
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=TOL)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_psnr_y_channel_matches_rgb2ycbcr(data_range):
    x, y = _pair((2, 3, 20, 26), data_range=data_range, noise=0.05, seed=3)
    got = psnr(x, y, data_range=data_range, y_channel=True)
    ref = []
    for a, b in zip(x.numpy(), y.numpy(), strict=True):
        # rgb2ycbcr takes [0, 1] floats and returns Y in [16, 235], i.e. on a 255 scale.
        ya = rgb2ycbcr(a.transpose(1, 2, 0) / data_range)[..., 0] / 255 * data_range
        yb = rgb2ycbcr(b.transpose(1, 2, 0) / data_range)[..., 0] / 255 * data_range
        ref.append(peak_signal_noise_ratio(ya, yb, data_range=data_range))
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=TOL)
    assert not torch.allclose(got, psnr(x, y, data_range=data_range))


def test_psnr_identical_is_inf_without_warning():
    x, _ = _pair((2, 3, 12, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = psnr(x, x.clone())
        got_y = psnr(x, x.clone(), y_channel=True)
    assert torch.isinf(got).all() and (got > 0).all()
    assert torch.isinf(got_y).all()


@pytest.mark.parametrize("shape", SHAPES + [(1, 3, 64, 80)])
@pytest.mark.parametrize("kind", ["random", "smooth"])
@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_ssim_matches_skimage(shape, kind, data_range):
    x, y = _pair(shape, kind=kind, data_range=data_range, noise=0.05, seed=1)
    got = ssim(x, y, data_range=data_range)
    assert got.shape == (shape[0],) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _sk_ssim(x, y, data_range), rtol=0, atol=TOL)


def test_ssim_float32_input_keeps_float64_accuracy():
    # Small, bright, nearly flat images: float32 moments would miss skimage by ~1e-4 here.
    g = torch.Generator().manual_seed(7)
    x = 0.93 + 0.0005 * torch.rand(4, 3, 12, 13, generator=g)
    y = x + 0.0005 * torch.randn(x.shape, generator=g)
    got = ssim(x, y)
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.double().numpy(), _sk_ssim(x, y, 1.0), rtol=0, atol=1e-6)


def test_identical_images_score_one():
    x, _ = _pair((2, 3, 176, 180), kind="smooth")
    np.testing.assert_allclose(ssim(x, x.clone()).numpy(), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ms_ssim(x, x.clone()).numpy(), 1.0, rtol=0, atol=1e-12)


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_values_are_per_image(fn):
    x1, y1 = _pair((1, 3, 24, 24), noise=0.02, seed=4)
    x2, y2 = _pair((1, 3, 24, 24), noise=0.2, seed=5)
    both = fn(torch.cat([x1, x2]), torch.cat([y1, y2]))
    assert both.shape == (2,)
    assert abs(both[0] - both[1]) > 1e-3
    _close(both, torch.cat([fn(x1, y1), fn(x2, y2)]), rtol=0, atol=1e-12)
    _close(fn(torch.cat([x1, x2]), torch.cat([y1, y2]), reduction="mean"), both.mean())


@pytest.mark.parametrize(
    ("shape", "data_range"), [((1, 1, 176, 176), 1.0), ((2, 3, 181, 200), 255.0)]
)
def test_ms_ssim_matches_reference(shape, data_range):
    x, y = _pair(shape, kind="smooth", data_range=data_range, noise=0.05, seed=2)
    got = ms_ssim(x, y, data_range=data_range)
    ref = _ref_ms_ssim(x, y, data_range, (0.0448, 0.2856, 0.3001, 0.2363, 0.1333))
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=TOL)


def test_ms_ssim_custom_weights_match_reference():
    x, y = _pair((1, 2, 44, 50), noise=0.1, seed=6)
    weights = (0.5, 0.3, 0.2)
    np.testing.assert_allclose(
        ms_ssim(x, y, weights=weights).numpy(), _ref_ms_ssim(x, y, 1.0, weights), atol=TOL
    )


def test_ms_ssim_decreases_with_noise():
    values = [
        ms_ssim(*_pair((1, 3, 176, 176), kind="smooth", noise=s, seed=8)).item()
        for s in (0.01, 0.05, 0.1, 0.2)
    ]
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values
    assert values[0] < 1


def test_ms_ssim_matches_pytorch_msssim():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    x, y = _pair((2, 3, 192, 176), noise=0.1, seed=9)  # every scale has even sides
    ref = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False)
    _close(ms_ssim(x, y), ref, rtol=0, atol=TOL)
    ref_ssim = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)
    _close(ssim(x, y), ref_ssim, rtol=0, atol=TOL)


def test_ssim_is_differentiable():
    x, y = _pair((1, 3, 16, 16), seed=10)
    x.requires_grad_(True)
    (1 - ssim(x, y, reduction="mean")).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("metric", "kwargs", "fn"),
    [
        ("psnr", {"y_channel": True}, psnr),
        ("ssim", {"data_range": 1.0}, ssim),
        ("ms-ssim", {"weights": (0.6, 0.4)}, ms_ssim),
    ],
)
def test_meter_equals_batch_mean(metric, kwargs, fn):
    x, y = _pair((5, 3, 24, 30), noise=0.1, seed=11)
    meter = ImageMetricMeter(metric, keep_values=True, **kwargs)
    meter.update(x[:2], y[:2])
    meter.update(x[2:], y[2:])
    result = meter.compute()
    expected = fn(x, y, **kwargs)
    assert result.count == 5
    assert math.isclose(result.mean, expected.mean().item(), rel_tol=0, abs_tol=1e-12)
    _close(result.values, expected)
    meter.reset()
    meter.update(x[:1], y[:1])
    assert meter.compute().count == 1 and meter.compute().values.shape == (1,)
    assert ImageMetricMeter(metric, **kwargs).update(x, y).shape == (5,)


def test_meter_without_values():
    x, y = _pair((3, 1, 16, 16), seed=12)
    meter = ImageMetricMeter("ssim")
    meter.update(x, y)
    assert meter.compute().values is None


def test_within_tolerance_is_accepted():
    x, y = _pair((1, 1, 16, 16), seed=13)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 1 + 5e-7, -5e-7
    assert torch.isfinite(ssim(x, y)).all()


def test_numpy_scalar_data_range():
    x, y = _pair((1, 1, 16, 16), data_range=255.0, seed=16)
    assert psnr(x, y, data_range=np.float32(255)).item() == psnr(x, y, data_range=255).item()


def _bad_cases():
    x, y = _pair((1, 3, 16, 16), seed=14)
    big_x, big_y = _pair((1, 1, 175, 200), seed=15)
    nan, inf, high, low = x.clone(), x.clone(), x.clone(), x.clone()
    nan[0, 0, 3, 3] = float("nan")
    inf[0, 1, 2, 2] = float("inf")
    high[0, 0, 0, 0] = 1.01
    low[0, 2, 5, 5] = -0.01
    return [
        ("shape", lambda: ssim(x, y[:, :2]), "same shape"),
        ("3d", lambda: psnr(x[0], y[0]), "4-D"),
        ("numpy", lambda: psnr(x.numpy(), y.numpy()), "torch tensors"),
        ("int", lambda: psnr((x * 255).to(torch.uint8), (y * 255).to(torch.uint8)), "floating"),
        ("empty", lambda: psnr(x[:0], y[:0]), "empty"),
        ("nan", lambda: ssim(nan, y), "NaN"),
        ("inf", lambda: psnr(x, inf), "NaN or infinite"),
        ("high", lambda: ssim(high, y), "outside [0, 1]"),
        ("low", lambda: ms_ssim(x, low), "outside [0, 1]"),
        ("range255", lambda: psnr(x * 255, y * 255), "data_range"),
        ("device", lambda: psnr(x, y.to("meta")), "same device"),
        ("data_range_str", lambda: psnr(x, y, data_range="1"), "must be a number"),
        ("data_range0", lambda: psnr(x, y, data_range=0), "data_range"),
        ("data_range_nan", lambda: ssim(x, y, data_range=float("nan")), "data_range"),
        ("ssim_small", lambda: ssim(x[..., :10, :], y[..., :10, :]), "11x11"),
        ("ms_ssim_small", lambda: ms_ssim(big_x, big_y), "176x176"),
        ("ms_ssim_weights", lambda: ms_ssim(x, y, weights=()), "weights"),
        ("y_channel_grey", lambda: psnr(x[:, :1], y[:, :1], y_channel=True), "3 channels"),
        ("reduction", lambda: ssim(x, y, reduction="sum"), "reduction"),
        ("meter_metric", lambda: ImageMetricMeter("lpips"), "metric must be"),
        ("meter_kwarg", lambda: ImageMetricMeter("ssim", y_channel=True), "keyword"),
        ("meter_reduction", lambda: ImageMetricMeter("psnr", reduction="mean"), "reduction"),
        ("meter_empty", lambda: ImageMetricMeter("psnr").compute(), "no images"),
    ]


@pytest.mark.parametrize(
    ("call", "fragment"), [pytest.param(c, f, id=name) for name, c, f in _bad_cases()]
)
def test_bad_input_raises_user_error(call, fragment):
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert fragment in message, message
    assert message.count(". ") == 0 and message.endswith("."), message
