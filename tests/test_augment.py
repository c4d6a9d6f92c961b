"""Tests for pixelsmith.data.augment: the Augment pipeline and DiffAugment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from pixelsmith.data import augment as aug
from pixelsmith.data.augment import (
    Augment,
    AugmentConfig,
    DiffAugment,
    adjust_color,
    affine_theta,
    augment,
    cutout,
    diff_augment,
    diff_color,
    translate,
    warp,
)
from pixelsmith.errors import UserError
from pixelsmith.utils.rng import BatchRandom

ALL_ON = AugmentConfig(flip_p=0.5, crop_p=0.5, rotate_p=0.5, scale_p=0.5, color_p=0.5)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def images(n: int = 8, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def theta(n: int, h: int, w: int, **kw: object) -> torch.Tensor:
    """affine_theta with identity defaults for the parameters not given."""
    params = {
        "flip": torch.zeros(n, dtype=torch.bool),
        "angle_deg": torch.zeros(n),
        "zoom": torch.ones(n),
        "crop_side": torch.ones(n),
        "crop_shift": torch.zeros(n, 2),
    }
    params.update(kw)
    return affine_theta(h, w, **params)


# --- config ------------------------------------------------------------------------------------


def test_default_config_is_off_and_identity():
    cfg = AugmentConfig()
    assert not cfg.enabled
    x = images()
    assert torch.equal(Augment(cfg)(x, BatchRandom(0)), x)
    assert AugmentConfig(scale_p=0.1).enabled


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"flip_p": 1.5}, "flip_p"),
        ({"color_p": -0.1}, "color_p"),
        ({"crop_p": "high"}, "crop_p"),
        ({"crop_scale": (0.9, 0.5)}, "crop_scale"),
        ({"crop_scale": (0.0, 0.5)}, "crop_scale"),
        ({"crop_scale": (0.5, 1.2)}, "crop_scale"),
        ({"crop_scale": 0.5}, "crop_scale"),
        ({"scale_range": (1.2, 0.8)}, "scale_range"),
        ({"scale_range": (-1.0, 1.0)}, "scale_range"),
        ({"rotate_deg": -5.0}, "rotate_deg"),
        ({"brightness": 1.5}, "brightness"),
        ({"saturation": float("nan")}, "saturation"),
        ({"padding_mode": "wrap"}, "padding_mode"),
    ],
)
def test_bad_config_raises_user_error_naming_field(kwargs, field):
    with pytest.raises(UserError, match=field):
        AugmentConfig(**kwargs)


def test_config_accepts_lists_and_ints():
    cfg = AugmentConfig(flip_p=1, crop_scale=[0.5, 1], scale_range=[1, 2])
    assert cfg.crop_scale == (0.5, 1.0) and cfg.scale_range == (1.0, 2.0)
    assert isinstance(cfg.flip_p, float)


# --- geometry ----------------------------------------------------------------------------------


def test_flip_p1_equals_torch_flip():
    x = images(c=4, h=12, w=20)
    out = augment(x, AugmentConfig(flip_p=1.0), BatchRandom(3))
    torch.testing.assert_close(out, torch.flip(x, dims=[3]), atol=1e-6, rtol=0)


def test_quarter_turns_are_exact_equally_likely_and_leave_old_streams_alone():
    x = images(n=600, h=6, w=6)
    out = augment(x, AugmentConfig(rot90_p=0.75), BatchRandom(5))
    turns = []
    for a, b in zip(x, out, strict=True):
        k = [t for t in range(4) if torch.equal(torch.rot90(a, t, (1, 2)), b)]
        assert len(k) == 1  # bit-exact: no resampling
        turns.append(k[0])
    counts = np.bincount(turns, minlength=4)
    assert all(110 < c < 190 for c in counts), counts  # 150 each expected
    # not square: half turns only
    wide = images(n=40, h=4, w=6)
    out = augment(wide, AugmentConfig(rot90_p=1.0), BatchRandom(5))
    assert torch.equal(out, torch.rot90(wide, 2, (2, 3)))
    # off (the default), a recipe's random stream is the one it had before quarter turns
    a, b = BatchRandom(9), BatchRandom(9)
    augment(x[:4], ALL_ON, a)
    b.rand(4, aug._AUGMENT_DRAWS)
    assert torch.equal(a.rand(3), b.rand(3))


def test_rotate_90_equals_rot90():
    x = images(n=2, h=9, w=9)
    out = warp(x, theta(2, 9, 9, angle_deg=torch.tensor([90.0, -90.0])), "zeros")
    torch.testing.assert_close(out[:1], torch.rot90(x[:1], 1, (2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1:], torch.rot90(x[1:], -1, (2, 3)), atol=1e-5, rtol=0)


def test_rotate_90_non_square_keeps_pixels_square():
    x = images(n=1, h=6, w=10)
    out = warp(x, theta(1, 6, 10, angle_deg=torch.tensor([90.0])), "zeros")
    centre = x[..., :, 2:8]
    torch.testing.assert_close(out[..., :, 2:8], torch.rot90(centre, 1, (2, 3)), atol=1e-5, rtol=0)


def test_rotate_30_matches_scipy():
    x = images(n=1, c=1, h=15, w=11)
    out = warp(x, theta(1, 15, 11, angle_deg=torch.tensor([30.0])), "zeros")[0, 0].numpy()
    a = np.deg2rad(30.0)
    # Output -> input map in (row, col): counter-clockwise as displayed, about the centre.
    matrix = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    c = np.array([(15 - 1) / 2, (11 - 1) / 2])
    ref = ndimage.affine_transform(
        x[0, 0].double().numpy(), matrix, offset=c - matrix @ c, order=1, mode="grid-constant"
    )
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_rotate_then_flip_composes_in_order():
    x = images(n=1, h=8, w=8)
    t = theta(1, 8, 8, angle_deg=torch.tensor([90.0]), flip=torch.tensor([True]))
    expected = torch.flip(torch.rot90(x, 1, (2, 3)), dims=[3])
    torch.testing.assert_close(warp(x, t, "zeros"), expected, atol=1e-5, rtol=0)
    assert not torch.allclose(expected, torch.rot90(torch.flip(x, dims=[3]), 1, (2, 3)))


def test_crop_top_left_quadrant_is_upsampled():
    x = images(n=1, h=8, w=8)
    t = theta(1, 8, 8, crop_side=torch.tensor([0.5]), crop_shift=torch.tensor([[-0.5, -0.5]]))
    out = warp(x, t, "border")
    ref = torch.nn.functional.interpolate(x[..., :4, :4], scale_factor=2, mode="bilinear")
    # The last row/column blends in pixels beyond the crop, which interpolate clamps instead.
    torch.testing.assert_close(out[..., :7, :7], ref[..., :7, :7], atol=1e-5, rtol=0)


def test_crop_half_at_centre_equals_zoom_two_and_crop_precedes_rotation():
    half = theta(1, 8, 12, crop_side=torch.tensor([0.5]))
    torch.testing.assert_close(half, theta(1, 8, 12, zoom=torch.tensor([2.0])))

    def square(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t[0], torch.tensor([[0.0, 0.0, 1.0]])])

    shift = torch.tensor([[0.3, -0.2]])
    crop = theta(1, 8, 12, crop_side=torch.tensor([0.7]), crop_shift=shift)
    rot = theta(1, 8, 12, angle_deg=torch.tensor([20.0]))
    both = theta(
        1, 8, 12, crop_side=torch.tensor([0.7]), crop_shift=shift, angle_deg=torch.tensor([20.0])
    )
    torch.testing.assert_close(square(both), square(crop) @ square(rot))
    assert not torch.allclose(square(both), square(rot) @ square(crop))


def fire_mask(seed: int, n: int, cfg: AugmentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Which samples' geometric and colour ops fire, read from the stream augment draws."""
    u = BatchRandom(seed).rand(n, aug._AUGMENT_DRAWS)
    probs = torch.tensor([cfg.crop_p, cfg.rotate_p, cfg.scale_p, cfg.flip_p])
    return (u[:, :4] < probs).any(1), u[:, aug._FIRE_COLOR] < cfg.color_p


def test_samples_that_do_not_fire_are_bit_identical():
    cfg = AugmentConfig(flip_p=0.3, crop_p=0.3, rotate_p=0.3, scale_p=0.3, color_p=0.3)
    x = images(n=64)
    out = augment(x, cfg, BatchRandom(5))
    geo, col = fire_mask(5, 64, cfg)
    still = ~(geo | col)
    assert 0 < still.sum() < 64
    same = (out == x).flatten(1).all(1)
    assert torch.equal(same, still)


def test_flip_half_the_time():
    x = images(n=64)
    out = augment(x, AugmentConfig(flip_p=0.5), BatchRandom(1))
    same = (out == x).flatten(1).all(1)
    flipped = (out - torch.flip(x, dims=[3])).abs().flatten(1).amax(1) < 1e-6
    assert torch.equal(same, ~flipped)
    assert 16 < same.sum() < 48


def test_output_in_unit_range_and_changed():
    cfg = AugmentConfig(
        flip_p=1, crop_p=1, rotate_p=1, scale_p=1, color_p=1, brightness=0.9, contrast=0.9,
        saturation=0.9, scale_range=(0.5, 2.0), padding_mode="zeros",
    )  # fmt: skip
    x = images(n=32)
    out = Augment(cfg)(x, BatchRandom(2))
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert not (out == x).flatten(1).all(1).any()


# --- colour ------------------------------------------------------------------------------------


def test_adjust_color_matches_hand_computation():
    x = images(n=2, c=3, h=5, w=4)
    b, c, s = torch.tensor([1.2, 0.8]), torch.tensor([0.7, 1.3]), torch.tensor([1.5, 0.6])
    out = adjust_color(x, b, c, s).numpy()
    for i in range(2):
        img = x[i].double().numpy()
        img = np.clip(img * b[i].item(), 0, 1)
        gray = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
        img = np.clip(c[i].item() * img + (1 - c[i].item()) * gray.mean(), 0, 1)
        gray = 0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]
        img = np.clip(s[i].item() * img + (1 - s[i].item()) * gray, 0, 1)
        np.testing.assert_allclose(out[i], img, atol=1e-6)


def test_adjust_color_gray_and_alpha():
    gray = images(n=1, c=1, h=4, w=4)
    out = adjust_color(gray, torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]))
    expected = 0.5 * gray + 0.5 * gray.mean()
    torch.testing.assert_close(out, expected)
    rgba = images(n=2, c=4)
    out = adjust_color(rgba, torch.tensor([1.2, 0.8]), torch.ones(2) * 0.5, torch.zeros(2))
    assert torch.equal(out[:, 3], rgba[:, 3])
    assert not torch.allclose(out[:, :3], rgba[:, :3])


def test_color_factors_stay_in_configured_range():
    x = torch.full((256, 1, 2, 2), 0.5)
    cfg = AugmentConfig(color_p=1.0, brightness=0.2, contrast=0.0, saturation=0.0)
    factor = augment(x, cfg, BatchRandom(0))[:, 0, 0, 0] / 0.5
    assert factor.min() >= 0.8 - 1e-6 and factor.max() <= 1.2 + 1e-6
    assert factor.min() < 0.82 and factor.max() > 1.18


# --- randomness --------------------------------------------------------------------------------


def test_same_seed_same_output_other_seed_differs():
    x = images(n=16)
    a = augment(x, ALL_ON, BatchRandom(7))
    assert torch.equal(a, augment(x, ALL_ON, BatchRandom(7)))
    assert not torch.equal(a, augment(x, ALL_ON, BatchRandom(8)))
    d = diff_augment(x, rng=BatchRandom(7))
    assert torch.equal(d, diff_augment(x, rng=BatchRandom(7)))
    assert not torch.equal(d, diff_augment(x, rng=BatchRandom(8)))


def test_stream_position_does_not_depend_on_data_config_or_policy():
    states = []
    for x, cfg in [
        (images(n=8, c=3, h=16, w=16), ALL_ON),
        (images(n=8, c=1, h=28, w=20, seed=1), AugmentConfig()),
        (images(n=8, c=4, h=9, w=9, seed=2), AugmentConfig(flip_p=1.0)),
    ]:
        rng = BatchRandom(11)
        augment(x, cfg, rng)
        states.append(rng.get_state())
    assert all(torch.equal(states[0], s) for s in states[1:])
    states = []
    for x, policy in [(images(n=8), "color,translation,cutout"), (images(8, 1, 28, 28), "")]:
        rng = BatchRandom(11)
        diff_augment(x, policy, rng)
        states.append(rng.get_state())
    assert torch.equal(states[0], states[1])


def test_resume_from_saved_state_is_bit_exact():
    x = images(n=8)
    rng = BatchRandom(4)
    augment(x, ALL_ON, rng)
    state = rng.get_state()
    first = augment(x, ALL_ON, rng), diff_augment(x, rng=rng)
    rng = BatchRandom(99)
    rng.set_state(state)
    second = augment(x, ALL_ON, rng), diff_augment(x, rng=rng)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


@pytest.mark.parametrize("which", ["augment", "diff"])
def test_two_ranks_match_one_process(which):
    x = images(n=16, seed=3)

    def run(batch: torch.Tensor, rng: BatchRandom) -> torch.Tensor:
        outs = []
        for _ in range(2):  # two steps, so the streams must stay aligned too
            fn = augment(batch, ALL_ON, rng) if which == "augment" else diff_augment(batch, rng=rng)
            outs.append(fn)
        return torch.cat(outs)

    whole = run(x, BatchRandom(21))
    r0 = run(x[:8], BatchRandom(21, rank=0, world=2))
    r1 = run(x[8:], BatchRandom(21, rank=1, world=2))
    # Other batch shapes may take other kernels (the affine grids are batched matrix products),
    # so the last bits may differ; a misaligned stream moves pixels by tenths.
    same = {"rtol": 0, "atol": 1e-5}
    torch.testing.assert_close(r0, torch.cat([whole[:8], whole[16:24]]), **same)
    torch.testing.assert_close(r1, torch.cat([whole[8:16], whole[24:]]), **same)


# --- DiffAugment -------------------------------------------------------------------------------


def roll_zero(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Shift (C, H, W) by (dy, dx) with torch.roll and zero what wrapped around."""
    out = torch.roll(img, (dy, dx), (-2, -1))
    h, w = img.shape[-2:]
    if dy > 0:
        out[:, :dy] = 0
    elif dy < 0:
        out[:, h + dy :] = 0
    if dx > 0:
        out[:, :, :dx] = 0
    elif dx < 0:
        out[:, :, w + dx :] = 0
    return out


def test_translate_is_exact_integer_shift():
    shifts = [(0, 0), (1, 0), (0, -1), (3, -2), (-4, 4), (-5, 2), (20, 0)]
    x = images(n=len(shifts), c=3, h=12, w=10) * 2 - 1
    out = translate(x, torch.tensor(shifts))
    for i, (dy, dx) in enumerate(shifts):
        assert torch.equal(out[i], roll_zero(x[i], dy, dx)), (dy, dx)


def test_diff_translation_shifts_up_to_an_eighth():
    x = images(n=128, c=1, h=28, w=28) * 2 - 1
    out = diff_augment(x, "translation", BatchRandom(0))
    seen = set()
    for i in range(x.shape[0]):
        found = [
            (dy, dx)
            for dy in range(-4, 5)
            for dx in range(-4, 5)
            if torch.equal(out[i], roll_zero(x[i], dy, dx))
        ]
        assert len(found) == 1, i
        seen.add(found[0])
    ys, xs = {s[0] for s in seen}, {s[1] for s in seen}
    assert ys == set(range(-4, 5)) and xs == set(range(-4, 5))


def test_cutout_zeroes_exactly_a_half_size_square():
    x = images(n=2, c=3, h=12, w=12) + 1  # no zeros of its own
    out = cutout(x, torch.tensor([[6, 6], [1, 10]]), (6, 6))
    mask = torch.ones(2, 1, 12, 12)
    mask[0, :, 3:9, 3:9] = 0
    mask[1, :, 0:4, 7:12] = 0  # the square clipped at the top and right borders
    assert torch.equal(out, x * mask)


def test_diff_cutout_square_is_half_the_size():
    x = torch.ones(256, 3, 28, 28)
    out = diff_augment(x, "cutout", BatchRandom(1))
    full = 0
    for img in out[:, 0]:
        rows, cols = (img == 0).any(1).nonzero().flatten(), (img == 0).any(0).nonzero().flatten()
        top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
        box = img[top : bottom + 1, left : right + 1]
        assert torch.equal(box, torch.zeros_like(box))
        assert (img == 0).sum() == box.numel()
        # A smaller box is the half-size square clipped where it crosses a border.
        assert box.shape[0] == 14 or top == 0 or bottom == 27
        assert box.shape[1] == 14 or left == 0 or right == 27
        assert box.shape[0] <= 14 and box.shape[1] <= 14
        full += box.shape == (14, 14)
    # The reference centres the square anywhere in [0, 28]: whole about (15 / 29) ** 2 of the time.
    assert 40 < full < 100
    assert torch.equal(out[:, 0], out[:, 2])


def test_diff_color_matches_hand_computation():
    x = images(n=2, c=3, h=5, w=6) * 2 - 1
    b, s, c = torch.tensor([0.3, -0.4]), torch.tensor([1.7, 0.2]), torch.tensor([0.6, 1.4])
    out = diff_color(x, b, s, c).numpy()
    for i in range(2):
        img = x[i].double().numpy() + b[i].item()
        img = (img - img.mean(0)) * s[i].item() + img.mean(0)
        img = (img - img.mean()) * c[i].item() + img.mean()
        np.testing.assert_allclose(out[i], img, atol=1e-5)


def test_diff_color_gray_skips_saturation_and_keeps_alpha():
    gray = images(n=1, c=1, h=4, w=4) * 2 - 1
    out = diff_color(gray, torch.tensor([0.25]), torch.tensor([0.0]), torch.tensor([2.0]))
    y = gray + 0.25
    torch.testing.assert_close(out, (y - y.mean()) * 2 + y.mean())
    rgba = images(n=2, c=4) * 2 - 1
    out = diff_color(rgba, torch.tensor([0.3, 0.1]), torch.ones(2) * 0.5, torch.ones(2) * 1.2)
    assert torch.equal(out[:, 3], rgba[:, 3])


def test_diff_color_draws_reference_ranges(monkeypatch):
    drawn = {}

    def spy(x, brightness, saturation, contrast):
        drawn.update(brightness=brightness, saturation=saturation, contrast=contrast)
        return diff_color(x, brightness, saturation, contrast)

    monkeypatch.setattr(aug, "diff_color", spy)
    x = torch.zeros(1024, 1, 2, 2)
    shift = diff_augment(x, "color", BatchRandom(0))[:, 0, 0, 0]
    torch.testing.assert_close(shift, drawn["brightness"])
    for name, low, high in [
        ("brightness", -0.5, 0.5),
        ("saturation", 0, 2),
        ("contrast", 0.5, 1.5),
    ]:
        values, margin = drawn[name], 0.02 * (high - low)
        assert low <= values.min() < low + margin and high - margin < values.max() < high, name


def test_diff_augment_is_differentiable():
    x = (images(n=4, c=3, h=16, w=16) * 2 - 1).requires_grad_(True)
    weights = images(n=4, c=3, h=16, w=16, seed=9)
    out = DiffAugment()(x, BatchRandom(0))
    (out * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad.abs().flatten(1).amax(1) > 0).all()


def test_diff_augment_policies_and_errors():
    x = images(n=4)
    assert torch.equal(diff_augment(x, "", BatchRandom(0)), x)
    assert torch.equal(
        DiffAugment("color")(x, BatchRandom(0)), diff_augment(x, "color", rng=BatchRandom(0))
    )
    with pytest.raises(UserError, match="cutout"):
        diff_augment(x, "color,zoom", BatchRandom(0))
    with pytest.raises(UserError, match="zoom"):
        DiffAugment("zoom")
    with pytest.raises(TypeError):
        diff_augment(x, "color")
