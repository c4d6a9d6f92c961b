"""Tests for pixelsmith.data.degrade against independent references (numpy, Pillow, scipy)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from pixelsmith.data.degrade import (
    Blur,
    GaussianNoise,
    Jpeg,
    LowLight,
    bicubic_down,
    box_masks,
    free_form_masks,
    gaussian_blur,
    imresize,
    jpeg,
    masks_with_coverage,
    modcrop,
)
from pixelsmith.errors import UserError
from pixelsmith.utils.rng import BatchRandom


def images(n: int = 2, c: int = 3, h: int = 24, w: int = 20, seed: int = 0, dtype=torch.float32):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- a direct port of MATLAB's imresize (contributions + symmetric indices), one axis at a time


def _matlab_cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * (
        (a > 1) & (a <= 2)
    )


def _contributions(in_len: int, out_len: int, scale: float):
    width = 4.0
    if scale < 1:

        def kernel(t):
            return scale * _matlab_cubic(scale * t)

        width /= scale
    else:
        kernel = _matlab_cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    p = int(np.ceil(width)) + 2
    ind = left[:, None] + np.arange(p)[None, :]
    weights = kernel(u[:, None] - ind)
    weights = weights / weights.sum(axis=1, keepdims=True)
    aux = np.concatenate([np.arange(1, in_len + 1), np.arange(in_len, 0, -1)])
    ind = aux[np.mod(ind - 1, len(aux)).astype(int)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], ind[:, keep]


def _matlab_imresize(img: np.ndarray, scale: float | None = None, size=None) -> np.ndarray:
    """MATLAB's imresize(img, scale or size, 'bicubic') of a (C, H, W) float64 array."""
    h, w = img.shape[-2:]
    if size is None:
        size = (math.ceil(h * scale), math.ceil(w * scale))
        scales = (scale, scale)
    else:
        scales = (size[0] / h, size[1] / w)
    out = img
    for dim in np.argsort(scales, kind="stable"):
        axis = img.ndim - 2 + dim
        weights, ind = _contributions(out.shape[axis], size[dim], scales[dim])
        moved = np.moveaxis(out, axis, 0)
        rows = [
            np.tensordot(weights[i], moved[ind[i] - 1], axes=(0, 0)) for i in range(len(weights))
        ]
        out = np.moveaxis(np.stack(rows), 0, axis)
    return out


# --- imresize -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "scale"),
    [
        ((24, 20), 1 / 2),
        ((23, 17), 1 / 2),
        ((24, 21), 1 / 3),
        ((25, 19), 1 / 4),
        ((11, 9), 2),
        ((9, 10), 3),
        ((23, 17), 0.7),
        ((13, 7), 1.5),
    ],
)
def test_imresize_matches_matlab_algorithm(shape, scale):
    x = images(2, 3, *shape, seed=1, dtype=torch.float64)
    want = np.stack([_matlab_imresize(img, scale) for img in x.numpy()])
    got = imresize(x, scale)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-10)
    got32 = imresize(x.float(), scale)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, rtol=0, atol=1e-6)


def test_imresize_size_per_axis_matches_matlab():
    x = images(1, 1, 19, 26, seed=2, dtype=torch.float64)
    want = _matlab_imresize(x[0].numpy(), size=(7, 40))
    got = imresize(x[0], size=(7, 40))  # (C, H, W) input, down on one axis, up on the other
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("factor", [2, 4])
def test_imresize_matches_pillow_bicubic_in_the_interior(factor):
    img = images(1, 1, 64, 48, seed=3)[0, 0].numpy()
    pil = Image.fromarray(img).resize((48 // factor, 64 // factor), Image.Resampling.BICUBIC)
    want = np.asarray(pil, dtype=np.float32)
    got = imresize(torch.from_numpy(img)[None], 1 / factor)[0].numpy()
    assert got.shape == want.shape
    # Pillow renormalises the taps that fall outside the image; MATLAB mirrors them.
    m = 3
    np.testing.assert_allclose(got[m:-m, m:-m], want[m:-m, m:-m], rtol=0, atol=2e-5)
    assert np.abs(got - want).max() > 1e-4  # the borders do differ, so the interior test bites


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.7, 2, 3])
def test_imresize_keeps_constant_images_constant(scale):
    x = torch.full((1, 3, 17, 22), 0.3)
    np.testing.assert_allclose(imresize(x, scale).numpy(), 0.3, rtol=0, atol=1e-6)


def test_imresize_output_sizes():
    x = torch.zeros(2, 3, 37, 29)
    assert imresize(x, 1 / 2).shape == (2, 3, 19, 15)
    assert imresize(x, 1 / 3).shape == (2, 3, 13, 10)
    assert imresize(x, 3).shape == (2, 3, 111, 87)
    assert imresize(x, size=(10, 40)).shape == (2, 3, 10, 40)
    assert imresize(torch.zeros(1, 100, 100), 1.1).shape == (1, 110, 110)  # not 111
    assert imresize(torch.zeros(5, 8, 8), 0.5).shape == (5, 4, 4)  # any C, (C, H, W)


def test_imresize_refuses_bad_arguments():
    x = torch.zeros(1, 3, 8, 8)
    for kwargs in ({}, {"scale": 0.5, "size": (4, 4)}, {"scale": 0}, {"size": (4, 0)}):
        with pytest.raises(UserError):
            imresize(x, **kwargs)
    with pytest.raises(UserError):
        imresize(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(UserError):
        imresize(torch.zeros(8, 8), 0.5)


# --- bicubic_down and modcrop ---------------------------------------------------------------------


def test_modcrop_keeps_the_top_left_multiple():
    x = images(1, 3, 37, 29)
    y = modcrop(x, 4)
    assert y.shape == (1, 3, 36, 28)
    assert torch.equal(y, x[:, :, :36, :28])
    assert modcrop(x, 1).shape == x.shape


def test_bicubic_down_is_matlab_then_8bit():
    x = images(2, 3, 37, 29, seed=4, dtype=torch.float64)
    lr = bicubic_down(x, 4)
    assert lr.shape == (2, 3, 9, 7)
    ref = np.stack([_matlab_imresize(img[:, :36, :28], 1 / 4) for img in x.numpy()])
    np.testing.assert_array_equal(lr.numpy(), np.round(np.clip(ref, 0, 1) * 255) / 255)
    levels = lr * 255
    assert torch.equal(levels, levels.round())


def test_bicubic_down_without_quantize_only_clamps():
    i = torch.arange(24)
    blocks = ((i[:, None] // 6 + i[None, :] // 6) % 2).float()
    x = blocks.expand(1, 3, 24, 24)
    # the kernel's negative lobes overshoot the 0/1 steps
    raw = imresize(x, 1 / 2)
    assert raw.max() > 1 and raw.min() < 0
    lr = bicubic_down(x, 2, quantize=False)
    torch.testing.assert_close(lr, raw.clamp(0, 1))
    assert not torch.equal(lr * 255, (lr * 255).round())


def test_bicubic_down_refuses_bad_scales():
    for scale in (0, 2.0, True):
        with pytest.raises(UserError):
            bicubic_down(torch.zeros(1, 3, 8, 8), scale)
    with pytest.raises(UserError):
        bicubic_down(torch.zeros(1, 3, 3, 8), 4)


# --- Gaussian noise -------------------------------------------------------------------------------


def test_gaussian_noise_is_seeded():
    x = images(4, 3, 16, 16)
    noise = GaussianNoise()
    a, sa = noise(x, BatchRandom(7))
    b, sb = noise(x, BatchRandom(7))
    c, _ = noise(x, BatchRandom(8))
    assert torch.equal(a, b) and torch.equal(sa, sb)
    assert not torch.allclose(a, c)


def test_gaussian_noise_std_matches_each_sigma():
    x = torch.full((4, 3, 128, 128), 0.5)
    noisy, sigma = GaussianNoise(sigma=(5.0, 50.0))(x, BatchRandom(0))
    assert sigma.shape == (4,)
    assert bool(((sigma >= 5) & (sigma <= 50)).all())
    assert float(sigma.max() - sigma.min()) > 5  # per sample, not one sigma for the batch
    residual = (noisy - x).double() * 255
    std = residual.std(dim=(1, 2, 3))
    np.testing.assert_allclose(std.numpy(), sigma.double().numpy(), rtol=0.03)
    assert float(residual.mean(dim=(1, 2, 3)).abs().max()) < 0.02 * float(sigma.max())


def test_gaussian_noise_clips_only_when_asked():
    x = torch.zeros(2, 1, 32, 32)
    raw, _ = GaussianNoise(sigma=(20.0, 20.0))(x, BatchRandom(1))
    assert raw.min() < 0
    clipped, _ = GaussianNoise(sigma=(20.0, 20.0), clip=True)(x, BatchRandom(1))
    assert clipped.min() >= 0 and clipped.max() <= 1
    torch.testing.assert_close(clipped, raw.clamp(0, 1))


# --- masks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["thin", "medium", "thick", "box", "mixed"])
def test_masks_are_binary_and_seeded(kind):
    a = free_form_masks(4, 48, 40, BatchRandom(3), kind=kind)
    b = free_form_masks(4, 48, 40, BatchRandom(3), kind=kind)
    c = free_form_masks(4, 48, 40, BatchRandom(4), kind=kind)
    assert a.shape == (4, 1, 48, 40) and a.dtype == torch.float32
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert bool((a.mean(dim=(1, 2, 3)) > 0).all())
    assert bool((a.mean(dim=(1, 2, 3)) < 1).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_thick_strokes_cover_more_than_medium_and_thin():
    cover = {
        kind: np.mean([free_form_masks(8, 64, 64, BatchRandom(s), kind).mean() for s in range(3)])
        for kind in ("thin", "medium", "thick")
    }
    assert cover["thin"] < cover["thick"] and cover["medium"] < cover["thick"]


def test_single_boxes_are_rectangles_inside_the_margin():
    masks = box_masks(12, 64, 48, BatchRandom(5), count=(1, 1))[:, 0].numpy()
    sides = set()
    for m in masks:
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        box = np.zeros_like(m)
        box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 1
        np.testing.assert_array_equal(m, box)
        sides.add((len(rows), len(cols)))
        # LaMa's 10-pixel margin at 256, scaled to 48 / 256: 2 pixels.
        assert rows[0] >= 2 and cols[0] >= 2 and rows[-1] <= 61 and cols[-1] <= 45
    assert len(sides) > 6  # random sizes


def test_box_masks_union_of_up_to_count_boxes_changes_with_count():
    one = box_masks(16, 64, 64, BatchRandom(6), count=(1, 1)).mean()
    three = box_masks(16, 64, 64, BatchRandom(6), count=(3, 3)).mean()
    assert three > 1.5 * one


@pytest.mark.parametrize(("kind", "coverage"), [("mixed", (0.2, 0.3)), ("thin", (0.1, 0.2))])
def test_masks_with_coverage_stay_in_range(kind, coverage):
    masks = masks_with_coverage(6, 48, 48, BatchRandom(0), coverage=coverage, kind=kind)
    again = masks_with_coverage(6, 48, 48, BatchRandom(0), coverage=coverage, kind=kind)
    assert torch.equal(masks, again)
    fraction = masks.mean(dim=(1, 2, 3))
    assert bool(((fraction >= coverage[0]) & (fraction <= coverage[1])).all())


def test_masks_with_impossible_coverage_fail_clearly():
    with pytest.raises(UserError, match="tries"):
        masks_with_coverage(
            2, 32, 32, BatchRandom(0), coverage=(0.97, 1.0), kind="box", max_tries=5
        )


def test_mask_arguments_are_checked():
    for kwargs in ({"kind": "round"}, {"h": 0}, {"n": 2.5}):
        args = {"n": 2, "h": 8, "w": 8, "rng": BatchRandom(0), **kwargs}
        with pytest.raises(UserError):
            free_form_masks(**args)
    with pytest.raises(UserError):
        masks_with_coverage(2, 8, 8, BatchRandom(0), coverage=(0.5, 0.2))


# --- low light ------------------------------------------------------------------------------------


def test_low_light_is_darker_quantised_and_seeded():
    x = images(4, 3, 32, 32)
    dark = LowLight()(x, BatchRandom(0))
    assert bool((dark.mean(dim=(1, 2, 3)) < x.mean(dim=(1, 2, 3))).all())
    assert dark.min() >= 0 and dark.max() <= 1
    levels = dark.double() * 255
    assert float((levels - levels.round()).abs().max()) < 1e-4
    assert torch.equal(dark, LowLight()(x, BatchRandom(0)))
    assert not torch.equal(dark, LowLight()(x, BatchRandom(1)))


def test_low_light_exposure_curve_without_noise():
    x = images(2, 3, 16, 16, seed=2, dtype=torch.float64)
    out = LowLight(gain=(0.3, 0.3), gamma=(2.2, 2.2), noise=(0.0, 0.0))(x, BatchRandom(0))
    np.testing.assert_array_equal(out.numpy(), np.round(0.3 * x.numpy() ** 2.2 * 255) / 255)


def test_low_light_read_and_shot_noise_levels():
    x = torch.full((1, 1, 128, 128), 0.5)
    # dark = 0.1; read sigma 0.02; quantisation adds (1/255)^2 / 12 of variance.
    read = LowLight(gain=(0.2, 0.2), gamma=(1.0, 1.0), noise=(0.02, 0.02))(x, BatchRandom(0))
    expect = math.sqrt(0.02**2 + (1 / 255) ** 2 / 12)
    assert abs(read.std().item() / expect - 1) < 0.05
    assert abs(read.mean().item() - 0.1) < 0.002
    shot = LowLight(gain=(0.2, 0.2), gamma=(1.0, 1.0), noise=(0.0, 0.0), shot=(0.01, 0.01))
    expect = math.sqrt(0.01 * 0.1 + (1 / 255) ** 2 / 12)
    assert abs(shot(x, BatchRandom(0)).std().item() / expect - 1) < 0.05


# --- blur -----------------------------------------------------------------------------------------


def _scipy_blur(x: torch.Tensor, sigma: float, **kw) -> np.ndarray:
    a = x.double().numpy()
    return ndimage.gaussian_filter(a, sigma=(0, 0, sigma, sigma), mode="reflect", **kw)


@pytest.mark.parametrize("sigma", [0.5, 1.5, 2.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = images(2, 3, 24, 20, seed=6)
    want = _scipy_blur(x, sigma, truncate=3.0)  # scipy's radius int(3 sigma + 0.5) = ceil here
    np.testing.assert_allclose(gaussian_blur(x, sigma).numpy(), want, rtol=0, atol=1e-5)


def test_gaussian_blur_per_sample_sigmas_radius_and_tiny_images():
    x = images(3, 1, 6, 5, seed=7)  # radius 9 > the image: mirroring repeats
    sigmas = [1.1, 0.7, 3.0]
    got = gaussian_blur(x, torch.tensor(sigmas)).numpy()
    for i, s in enumerate(sigmas):
        want = _scipy_blur(x[i : i + 1], s, radius=math.ceil(3 * s))
        np.testing.assert_allclose(got[i : i + 1], want, rtol=0, atol=1e-5)


def test_blur_with_fixed_sigma_is_scipy_and_seeded():
    x = images(2, 3, 20, 20, seed=8)
    fixed = Blur(sigma=(1.5, 1.5))(x, BatchRandom(0))
    want = _scipy_blur(x, 1.5, truncate=3.0)
    np.testing.assert_allclose(fixed.numpy(), want, rtol=0, atol=1e-5)
    blur = Blur()
    a, b, c = blur(x, BatchRandom(1)), blur(x, BatchRandom(1)), blur(x, BatchRandom(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.equal(gaussian_blur(x, 0.0), x)


# --- JPEG -----------------------------------------------------------------------------------------


def _pillow_jpeg(u8: np.ndarray, quality: int, **kw) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(u8).save(buffer, "JPEG", quality=quality, **kw)
    return np.asarray(Image.open(buffer))


def _u8_images(n: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, 32)[None, :, None] + np.linspace(0, 40, 24)[:, None, None]
    return np.clip(ramp + rng.normal(0, 25, (n, 24, 32, c)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("c", [1, 3])
def test_jpeg_equals_pillow_encode_decode(c):
    u8 = _u8_images(2, c)
    x = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    got = jpeg(x, torch.tensor([30, 80]))
    assert got.shape == x.shape
    for i, q in enumerate((30, 80)):
        want = _pillow_jpeg(u8[i, ..., 0] if c == 1 else u8[i], q)
        want = want[..., None] if c == 1 else want
        np.testing.assert_array_equal((got[i] * 255).round().byte().permute(1, 2, 0).numpy(), want)
    assert not torch.equal(got, x)


def test_jpeg_class_default_is_pillows_420():
    u8 = _u8_images(2, 3, seed=1)
    x = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255
    got = Jpeg(quality=(50, 50))(x, BatchRandom(0))
    full = Jpeg(quality=(50, 50), subsampling="4:4:4")(x, BatchRandom(0))
    for i in range(2):
        out = (got[i] * 255).round().byte().permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(out, _pillow_jpeg(u8[i], 50))
        np.testing.assert_array_equal(out, _pillow_jpeg(u8[i], 50, subsampling="4:2:0"))
        out = (full[i] * 255).round().byte().permute(1, 2, 0).numpy()
        np.testing.assert_array_equal(out, _pillow_jpeg(u8[i], 50, subsampling="4:4:4"))


def test_jpeg_is_seeded():
    x = torch.from_numpy(_u8_images(4, 3)).permute(0, 3, 1, 2).float() / 255
    a, b = Jpeg()(x, BatchRandom(3)), Jpeg()(x, BatchRandom(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, Jpeg()(x, BatchRandom(4)))


# --- all of them ----------------------------------------------------------------------------------


DEGRADATIONS = {
    "noise": lambda x, rng: GaussianNoise()(x, rng)[0],
    "blur": Blur(),
    "low_light": LowLight(shot=(0.0, 0.01)),
    "jpeg": Jpeg(),
    "masks": lambda x, rng: masks_with_coverage(x.shape[0], 24, 24, rng, (0.1, 0.4)),
}


@pytest.mark.parametrize("name", DEGRADATIONS)
def test_two_processes_get_the_single_process_slices(name):
    degrade = DEGRADATIONS[name]
    x = images(4, 3, 24, 24, seed=9)
    whole = degrade(x, BatchRandom(11))
    halves = [degrade(x[2 * r : 2 * r + 2], BatchRandom(11, rank=r, world=2)) for r in range(2)]
    torch.testing.assert_close(torch.cat(halves), whole, rtol=0, atol=1e-6)


def test_bad_ranges_are_user_errors():
    bad = [
        lambda: GaussianNoise(sigma=(10.0, 5.0)),
        lambda: GaussianNoise(sigma=(-1.0, 5.0)),
        lambda: Blur(sigma=(0.5,)),
        lambda: LowLight(gain=(0.1, 2.0)),
        lambda: Jpeg(quality=(0, 50)),
        lambda: Jpeg(quality=(20.5, 50)),
        lambda: Jpeg(subsampling="4:1:1"),
        lambda: Jpeg()(torch.zeros(1, 2, 8, 8), BatchRandom(0)),
        lambda: Blur()(torch.zeros(3, 8, 8), BatchRandom(0)),
    ]
    for make in bad:
        with pytest.raises(UserError):
            make()
