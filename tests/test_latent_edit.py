"""Latent interpolation, directions and style mixing: closed forms, planted directions, the CLI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import TINY_STYLEGAN, make_gan, make_stylegan
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.edit.latent import latent_space
from pixelsmith.edit.latent.directions import (
    Direction,
    Labeller,
    apply,
    apply_in,
    label_direction,
    linear_normal,
    mean_difference,
    pca,
    pca_directions,
)
from pixelsmith.edit.latent.interpolate import interpolate, lerp, slerp, strip, write_animation
from pixelsmith.edit.latent.mixing import mix, mix_grid
from pixelsmith.errors import UserError
from pixelsmith.generate import load_model
from pixelsmith.imageio import load_image, to_pil
from pixelsmith.models.gan import GAN
from pixelsmith.models.stylegan import StyleGAN

TINY_RUN = [
    "data.source=shapes",
    "data.limit=16",
    "data.size=16",
    "train.batch=8",
    *(f"model.{k}={v}" for k, v in TINY_STYLEGAN.items()),
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=100",
    "train.grid_size=4",
]


@pytest.fixture(scope="module")
def style() -> StyleGAN:
    return make_stylegan((1, 16, 16))


@pytest.fixture(scope="module")
def gan() -> GAN:
    return make_gan((1, 16, 16))


def _slerp_reference(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Rotate a towards b in their plane by t times the angle between them (unit vectors)."""
    omega = math.acos(float(np.clip(a @ b, -1, 1)))
    e = b - (a @ b) * a
    e /= np.linalg.norm(e)
    return math.cos(t * omega) * a + math.sin(t * omega) * e


# ---------------------------------------------------------------- interpolation


def test_slerp_matches_the_rotation_closed_form_and_keeps_unit_norm():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 16, generator=g, dtype=torch.float64)
    a, b = a / a.norm(), b / b.norm()
    ts = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
    path = slerp(a, b, ts)
    omega = math.acos(float(a @ b))
    for t, p in zip(ts, path, strict=True):
        ref = _slerp_reference(a.numpy(), b.numpy(), t)
        np.testing.assert_allclose(p.numpy(), ref, atol=1e-12)
        assert abs(float(p.norm()) - 1) < 1e-12
        assert abs(math.acos(float((p @ a).clamp(-1, 1))) - t * omega) < 1e-6
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    # A batch (and W+ layers) interpolates row by row, each with its own angle.
    rows = torch.randn(3, 4, 16, generator=g)
    other = torch.randn(3, 4, 16, generator=g)
    mid = slerp(rows, other, 0.3)
    for i in range(3):
        for j in range(4):
            x, y = rows[i, j].double(), other[i, j].double()
            w = math.acos(float((x @ y) / (x.norm() * y.norm())))
            ref = (math.sin(0.7 * w) * x + math.sin(0.3 * w) * y) / math.sin(w)
            np.testing.assert_allclose(mid[i, j].double().numpy(), ref.numpy(), atol=1e-5)


def test_slerp_of_parallel_vectors_is_lerp():
    a = torch.tensor([1.0, 2.0, 3.0])
    path = slerp(a, 2 * a, [0.0, 0.5, 1.0])
    assert torch.isfinite(path).all()
    np.testing.assert_allclose(path[1].numpy(), 1.5 * a.numpy(), rtol=1e-6)


def test_lerp_matches_numpy_and_hits_both_ends_exactly():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 5, 7, generator=g) * 1e3  # large values: a + 1 * (b - a) != b in floats
    ts = np.linspace(0, 1, 9)
    path = lerp(a, b, ts.tolist())
    ref = (1 - ts)[:, None, None] * a.double().numpy() + ts[:, None, None] * b.double().numpy()
    np.testing.assert_allclose(path.double().numpy(), ref, rtol=1e-5, atol=1e-3)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)


@pytest.mark.parametrize("which,kind", [("gan", "z"), ("style", "w+"), ("style", "w")])
def test_interpolation_end_points_are_the_inputs_in_codes_and_images(request, which, kind):
    space = latent_space(request.getfixturevalue(which), kind)
    a, b = space.from_seeds([3, 4]), space.from_seeds([5, 6])
    path = interpolate(space, a, b, 7)
    assert path.shape == (2, 7, *space.shape)
    assert torch.equal(path[:, 0], a) and torch.equal(path[:, -1], b)
    # The ends render as the end points' images (the codes are exact; a second render of them
    # may round differently on AVX-512 CPUs).
    ends = space.images(torch.cat([path[:, 0], path[:, -1]]))
    torch.testing.assert_close(ends, space.images(torch.cat([a, b])), rtol=0, atol=1e-5)
    inner = space.images(path[0, 1:-1])
    start = space.images(a[:1])[0]
    assert all((x - start).abs().max() > 1e-5 for x in inner)  # the path moves (untrained: a bit)
    rule = slerp if space.interpolation == "slerp" else lerp
    assert space.interpolation == ("slerp" if kind == "z" else "lerp")
    torch.testing.assert_close(path[1, 3], rule(a[1], b[1], 0.5), rtol=1e-6, atol=1e-6)


def test_interpolate_refuses_one_step_and_unequal_batches(gan):
    space = latent_space(gan)
    with pytest.raises(UserError, match="at least 2 steps"):
        interpolate(space, space.from_seeds([1]), space.from_seeds([2]), 1)
    with pytest.raises(UserError, match="as many"):
        interpolate(space, space.from_seeds([1, 2]), space.from_seeds([3]), 4)


@pytest.mark.parametrize("suffix", [".webp", ".gif"])
def test_animation_has_every_frame_at_the_right_size(tmp_path, gan, suffix):
    space = latent_space(gan)
    frames = space.images(interpolate(space, space.from_seeds([1]), space.from_seeds([2]), 6)[0])
    path = write_animation(frames, tmp_path / f"a{suffix}", fps=10, scale=2)
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (32, 32)
        im.seek(0)
        got = np.asarray(im.convert("L"))
    want = np.asarray(to_pil(frames[0]).resize((32, 32), Image.Resampling.NEAREST))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # lossless WebP, grey GIF
    bounce = write_animation(frames, tmp_path / f"b{suffix}", pingpong=True)
    with Image.open(bounce) as im:
        assert im.n_frames == 6 + 4 and im.size == (16, 16)
    with pytest.raises(UserError, match=".webp or .gif"):
        write_animation(frames, tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_strip_is_one_row_with_padding():
    images = torch.rand(5, 3, 4, 6)
    s = strip(images)
    assert s.shape == (3, 4 + 4, 5 * (6 + 2) + 2)
    assert torch.equal(s[:, 2:6, 2 + 8 : 2 + 8 + 6], images[1])
    assert strip(images, scale=3).shape == (3, 24, 3 * (5 * 8 + 2))


# ---------------------------------------------------------------- directions


def test_strength_zero_is_the_identity(style, gan):
    for space in (latent_space(style, "w+"), latent_space(style, "w"), latent_space(gan)):
        codes = space.from_seeds([1, 2, 3])
        v = torch.randn(space.dim)
        d = Direction(v / v.norm(), 1.7, "w" if space.kind != "z" else "z", "mean", "test")
        moved = apply_in(space, codes, d, 0.0)
        assert torch.equal(moved, codes)
        torch.testing.assert_close(space.images(moved), space.images(codes), rtol=0, atol=1e-5)
        assert not torch.equal(apply_in(space, codes, d, 0.5), codes)
    wplus = latent_space(style, "w+").from_seeds([1])
    step = apply(wplus, d, 2.0) - wplus  # every layer alike, by strength x scale
    assert torch.allclose(step, (d.vector * 2 * 1.7).expand_as(step), atol=1e-6)
    with pytest.raises(UserError, match="cannot move"):
        apply_in(latent_space(style, "w+"), wplus, Direction(d.vector, 1.0, "z", "pca", "x"), 1)


def _planted(n: int = 3000, dim: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(dim, generator=g, dtype=torch.float64)
    d /= d.norm()
    codes = torch.randn(n, dim, generator=g, dtype=torch.float64)
    proj = codes @ d + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
    labels = torch.full((n,), 9)  # others, ignored
    labels[proj < -0.5] = 3
    labels[proj > 0.5] = 5
    return codes.float(), labels, d.float()


def test_a_planted_direction_is_recovered_by_both_estimators():
    codes, labels, d = _planted()
    md = mean_difference(codes, labels, 3, 5)
    ln, acc = linear_normal(codes, labels, 3, 5)
    assert float(md @ d) > 0.9 and float(ln @ d) > 0.9  # pointing from class 3 to class 5
    assert abs(float(md.norm()) - 1) < 1e-5 and abs(float(ln.norm()) - 1) < 1e-5
    assert acc > 0.9
    assert float(mean_difference(codes, labels, 5, 3) @ d) < -0.9
    # Stretched coordinates: the logistic normal is still the planted one in the codes' own units.
    stretch = torch.linspace(0.3, 3, codes.shape[1])
    x = codes * stretch
    truth = d / stretch
    truth /= truth.norm()
    ln2, _ = linear_normal(x, labels, 3, 5)
    assert float(ln2 @ truth) > 0.9


def test_pca_matches_numpy_svd_for_tall_and_wide_codes():
    g = torch.Generator().manual_seed(3)
    for shape in ((200, 12), (20, 300)):
        x = torch.randn(*shape, generator=g) * torch.linspace(4, 0.2, shape[1])
        comp, var = pca(x, 4)
        xc = x.double().numpy() - x.double().numpy().mean(0)
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        np.testing.assert_allclose(np.abs((comp.double().numpy() * vt[:4]).sum(1)), 1, atol=1e-5)
        np.testing.assert_allclose(var.numpy(), s[:4] ** 2 / (shape[0] - 1), rtol=1e-4)
        big = comp.abs().argmax(1)
        assert (comp[torch.arange(4), big] > 0).all()  # the sign rule


def test_pca_directions_of_w_and_of_a_planted_first_layer(tmp_path, monkeypatch, style, gan):
    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path))
    space = latent_space(style, "w+")
    found = pca_directions(space, 3, n=500)
    w = latent_space(style, "w").random(500, 0).cpu()
    comp, var = pca(w, 3)
    for f, c, v in zip(found, comp, var, strict=True):
        assert f.space == "w" and torch.allclose(f.vector, c, atol=1e-5)
        assert abs(f.scale - math.sqrt(float(v))) < 1e-4 * max(1.0, math.sqrt(float(v)))
    # The GAN's first layer is linear in z: give it known singular values, and the z direction
    # of its top principal component is the top right-singular vector of the weight.
    G = gan.networks["G"]
    saved = G.fc.weight.detach().clone()
    try:
        gz = torch.Generator().manual_seed(4)
        u, _ = torch.linalg.qr(torch.randn(G.fc.out_features, 8, generator=gz))
        v, _ = torch.linalg.qr(torch.randn(8, 8, generator=gz))
        sv = torch.tensor([10.0, 4.0, 2.0, 1.0, 0.5, 0.4, 0.3, 0.2])
        with torch.no_grad():
            G.fc.weight.copy_(u @ torch.diag(sv) @ v.T)
        got = pca_directions(latent_space(gan), 2, n=1000, cache=False)
        assert abs(float(got[0].vector @ v[:, 0])) > 0.95
        assert abs(float(got[1].vector @ v[:, 1])) > 0.9
    finally:
        with torch.no_grad():
            G.fc.weight.copy_(saved)
    with pytest.raises(UserError, match="live in W"):
        pca_directions(latent_space(style, "z"), 2)


def _brightness_labeller() -> Labeller:
    """Class 1 'bright' when an image's mean is above 0.5-ish, class 0 'dark'; soft."""

    def classify(images: torch.Tensor) -> torch.Tensor:
        m = images.mean((1, 2, 3))
        p = torch.sigmoid((m - m.median()) * 200)
        return torch.stack([1 - p, p], 1)

    return Labeller(classify, ["dark", "bright"], "brightness-test")


def test_label_direction_moves_images_towards_the_target_class(tmp_path, monkeypatch, style):
    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path))
    space = latent_space(style, "w+")
    lab = _brightness_labeller()
    for method in ("mean", "linear"):
        d = label_direction(space, "Dark", 1, method, n=400, labeller=lab)
        assert d.space == "w" and d.name == "dark -> bright" and d.scale > 0
        codes = latent_space(style, "w+").random(64, seed=9)
        before = space.images(codes).mean((1, 2, 3))
        after = space.images(apply(codes, d, 2.0)).mean((1, 2, 3))
        # An untrained generator is far from linear in W: most, not all, images brighten.
        assert (after > before).float().mean() > 0.7 and after.mean() > before.mean() + 0.05
    cached = sorted((tmp_path / "directions").glob("*.safetensors"))
    assert len(cached) == 2
    again = label_direction(space, 0, "bright", "linear", n=400, labeller=lab)
    assert torch.equal(again.vector, d.vector) and again.scale == d.scale
    with pytest.raises(UserError, match="same class"):
        label_direction(space, "dark", "DARK", labeller=lab, n=400)
    with pytest.raises(UserError, match="no class 'grey'"):
        label_direction(space, "grey", "dark", labeller=lab, n=400)
    with pytest.raises(UserError, match="method"):
        label_direction(space, 0, 1, "svm", labeller=lab)


# ---------------------------------------------------------------- style mixing


def test_mixing_crossover_zero_and_all_layers_give_each_source_exactly(style, gan):
    space = latent_space(style, "w+")
    layers = space.layers
    coarse, fine = space.from_seeds([1, 2]), space.from_seeds([3, 4])
    coarse = coarse + 0.1 * torch.randn_like(coarse)  # W+ codes whose layers differ
    assert torch.equal(mix(space, coarse, fine, 0), fine)
    assert torch.equal(mix(space, coarse, fine, layers), coarse)
    mid = mix(space, coarse, fine, 3)
    assert torch.equal(mid[:, :3], coarse[:, :3]) and torch.equal(mid[:, 3:], fine[:, 3:])
    one = mix(space, coarse[0], fine[0], 3)  # a single W+ code is one image, not layers Ws
    assert one.shape == (1, layers, space.dim) and torch.equal(one[0], mid[0])
    w = latent_space(style, "w").from_seeds([5])  # a W code pairs with each W+ row
    assert torch.equal(mix(space, w, fine, layers), w[:, None].expand(2, layers, -1))
    for bad in (-1, layers + 1):
        with pytest.raises(UserError, match=f"between 0 and {layers}"):
            mix(space, coarse, fine, bad)
    with pytest.raises(UserError, match="StyleGAN"):
        mix(latent_space(gan), coarse, fine, 2)


def test_mix_grid_of_seed_codes_is_the_models_own_style_mix(style):
    space = latent_space(style, "w+")
    rows, cols = space.from_seeds([5, 6]), space.from_seeds([7, 8, 9])
    grid = mix_grid(space, rows, cols, 2)
    ref = style.style_mix([5, 6], [7, 8, 9], crossover=2)
    assert grid.shape == ref.shape == (12, 1, 16, 16)
    torch.testing.assert_close(grid, ref, atol=1e-5, rtol=0)  # batches differ: rounding only


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    sets = [a for t in TINY_RUN for a in ("--set", t)]
    assert main(["train", "stylegan", "--steps", "2", "--out", str(out), "--quiet", *sets]) == 0
    return str(next(out.iterdir()))


def test_cli_interpolate_direction_and_mix(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path / "cache"))
    model = load_model(run)
    space = latent_space(model, "w+")
    out = tmp_path / "strip.png"
    assert main(["edit", "interpolate", run, "--seeds", "1,2", "--steps", "5", "-o", str(out)]) == 0
    got = load_image(out, channels=3)
    assert got.shape == (1, 3, 20, 5 * 18 + 2)
    ends = space.images(space.from_seeds([1, 2]))
    assert (got[0, :, 2:18, 2:18] - ends[0]).abs().max() <= 1 / 255 + 1e-6
    assert (got[0, :, 2:18, 4 * 18 + 2 : 4 * 18 + 18] - ends[1]).abs().max() <= 1 / 255 + 1e-6
    anim = tmp_path / "a.gif"
    argv = ["edit", "interpolate", run, "--seeds", "1,2,3", "--steps", "4", "-o", str(anim)]
    assert main([*argv, "--space", "w"]) == 0
    with Image.open(anim) as im:
        assert im.n_frames == 7 and im.size == (16, 16)  # two paths, the joint once

    grid = tmp_path / "dir.png"
    argv = ["edit", "direction", run, "--pca", "0,1", "--strengths", "-2,0,2", "--seed", "4"]
    assert main([*argv, "--samples", "200", "-o", str(grid)]) == 0
    g = load_image(grid, channels=3)
    assert g.shape == (1, 3, 2 * 18 + 2, 3 * 18 + 2)
    seed4 = space.images(space.from_seeds([4]))[0]
    for row in (0, 1):  # strength 0 is the seed's own image
        y = 2 + 18 * row
        assert (g[0, :, y : y + 16, 20:36] - seed4).abs().max() <= 1 / 255 + 1e-6
    assert (g[0, :, 2:18, 2:18] - seed4).abs().max() > 0.01

    mixed = tmp_path / "mix.png"
    argv = ["edit", "mix", run, "--coarse", "1", "--fine", "2", "--crossover", "0"]
    assert main([*argv, "-o", str(mixed)]) == 0
    assert (load_image(mixed, channels=3)[0] - ends[1]).abs().max() <= 1 / 255 + 1e-6
    argv = ["edit", "mix", run, "--coarse", "1,2", "--fine", "3,4,5", "-o", str(mixed)]
    assert main(argv) == 0
    assert load_image(mixed, channels=3).shape == (1, 3, 3 * 18 + 2, 4 * 18 + 2)
    capsys.readouterr()


def test_cli_starts_from_images_and_code_files(run, tmp_path, monkeypatch, capsys):
    from pixelsmith.edit.latent.invert import save_code
    from pixelsmith.imageio import save_image

    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path / "cache"))
    model = load_model(run)
    wplus, w = latent_space(model, "w+"), latent_space(model, "w")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    save_image(model.sample(1, seed=1)[0], a)
    save_image(model.sample(1, seed=2)[0], b)
    c1 = save_code(tmp_path / "c1.safetensors", wplus, wplus.from_seeds([1]))
    c2 = save_code(tmp_path / "c2.safetensors", w, w.from_seeds([2]))  # a W code goes to W+
    out = tmp_path / "codes.png"
    assert main(["edit", "interpolate", run, "--codes", f"{c1},{c2}", "-o", str(out)]) == 0
    got = load_image(out, channels=3)[0]
    ends = wplus.images(wplus.from_seeds([1, 2]))
    assert (got[:, 2:18, 2:18] - ends[0]).abs().max() <= 1 / 255 + 1e-6
    assert (got[:, 2:18, 7 * 18 + 2 : 7 * 18 + 18] - ends[1]).abs().max() <= 1 / 255 + 1e-6
    quick = ["--start", "mean", "--invert-steps", "2"]
    argv = ["edit", "interpolate", run, "--images", f"{a},{b}", "--steps", "3", *quick]
    assert main([*argv, "-o", str(tmp_path / "img.webp")]) == 0
    with Image.open(tmp_path / "img.webp") as im:
        assert im.n_frames == 3
    argv = [
        "edit",
        "mix",
        run,
        "--coarse",
        str(c1),
        "--fine",
        str(b),
        "--crossover",
        str(wplus.layers),
    ]
    argv += quick
    assert main([*argv, "-o", str(tmp_path / "m.png")]) == 0  # all layers from the code file
    assert (load_image(tmp_path / "m.png")[0] - ends[0]).abs().max() <= 1 / 255 + 1e-6
    argv = ["edit", "direction", run, "--pca", "0", str(a), *quick, "--samples", "100"]
    assert main([*argv, "-o", str(tmp_path / "d.png")]) == 0  # IMAGE after the options
    assert load_image(tmp_path / "d.png").shape == (1, 3, 20, 5 * 18 + 2)
    capsys.readouterr()


def _bad(run: str, out: str) -> list[tuple[list[str], str]]:
    i = ["edit", "interpolate", run]
    d = ["edit", "direction", run, "--seed", "1"]
    m = ["edit", "mix", run]
    return [
        ([*i, "--seeds", "1", "-o", out], "two end points"),
        ([*i, "--seeds", "1,x", "-o", out], "--seeds"),
        ([*i, "--seeds", "1,2", "--steps", "1", "-o", out], "--steps"),
        ([*i, "--seeds", "1,2", "--fps", "abc", "-o", out.replace(".png", ".gif")], "--fps"),
        ([*i, "--seeds", "1,2", "-o", out.replace(".png", ".jpg")], ".webp"),
        ([*i, "--seeds", "1,2", "--codes", "a.safetensors", "-o", out], "exactly one"),
        ([*i, "--images", "missing.png,other.png", "-o", out], "missing.png"),
        ([*i, "--codes", "a.npy,b.npy", "-o", out], "code file"),
        ([*d, "--from", "1", "--to", "1", "-o", out], "same class"),
        ([*d, "--from", "1", "-o", out], "both --from"),
        ([*d, "--pca", "0", "--from", "1", "--to", "2", "-o", out], "not both"),
        ([*d, "-o", out], "name a direction"),
        ([*d, "--pca", "0", "--strengths", "1,a", "-o", out], "strengths"),
        ([*d, "--pca", "0", "--strength", "1", "--strengths", "1,2", "-o", out], "not both"),
        ([*d, "--pca", "99", "-o", out], "--pca takes components"),
        ([*d, "--pca", "0", "-o", out.replace(".png", ".webp")], ".png"),
        ([*d, "--from", "Sneaker", "--to", "Bag", "-o", out], "classifier"),
        ([*d, "--pca", "0", "--method", "svm", "-o", out], "method"),
        ([*m, "--coarse", "1", "--fine", "2", "--crossover", "99", "-o", out], "between 0 and"),
        ([*m, "--coarse", "1", "--fine", "2", "--crossover", "x", "-o", out], "whole number"),
        ([*m, "--coarse", "1,a.png", "--fine", "2", "-o", out], "one kind"),
        (["edit", "interpolate", "zoo:sr-x2", "--seeds", "1,2", "-o", out], "no latent space"),
    ]


def test_cli_bad_inputs_are_one_line_errors_and_write_nothing(run, tmp_path, capsys):
    out = str(tmp_path / "out" / "x.png")
    for argv, needle in _bad(run, out):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, (argv, err)
        assert "Traceback" not in err
        assert not (tmp_path / "out").exists(), argv


def test_cli_mixing_and_label_directions_refused_for_a_gan(tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert main(["edit", "mix", "zoo:fmnist-gan", "--coarse", "1", "--fine", "2", "-o", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "StyleGAN" in err and len(err.splitlines()) == 1
    argv = ["edit", "direction", "zoo:fmnist-gan", "--from", "sneaker", "--to", "purse"]
    assert main([*argv, "--seed", "1", "-o", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "no class 'purse'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_cli_label_direction_on_the_shipped_gan_raises_the_target(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELSMITH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "d.png"
    argv = ["edit", "direction", "zoo:fmnist-gan", "--from", "7", "--to", "ankle boot"]
    argv += ["--strengths", "0,3", "--seed", "1,2,3,4,5,6", "--samples", "1000", "-o", str(out)]
    capsys.readouterr()
    assert main(argv) == 0
    target, source = capsys.readouterr().out.strip().splitlines()[-2:]
    assert target.startswith("p(Ankle boot) by strength")
    assert source.startswith("p(Sneaker) by strength")
    t0, t3 = (float(x.split(": ")[1]) for x in target.split("  ")[1:])
    assert t3 > t0 + 0.1
