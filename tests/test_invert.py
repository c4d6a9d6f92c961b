"""Inversion: the loss falls, the encoder start beats the mean start, optimisation beats both
starts, codes round-trip, the VAE starts from its own encoder, and the CLI checks its input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_gan, make_stylegan, make_vae
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.edit.latent import latent_space
from pixelsmith.edit.latent.encoder import cache_path, encoder_for, load_encoder, save_encoder
from pixelsmith.edit.latent.invert import (
    choose_perceptual,
    invert,
    load_code,
    perceptual_net,
    read_targets,
    save_code,
)
from pixelsmith.errors import UserError
from pixelsmith.models.gan import GAN
from pixelsmith.models.stylegan import StyleGAN

ENCODER_STEPS = 300
# PSNR margins in dB; the measured gaps on these tiny models are 5-30 dB.
MARGIN = 3.0


@pytest.fixture(scope="module", autouse=True)
def _cache(isolated_cache: Path) -> Path:
    """Encoders are cached in a folder of this module's own, not the user's cache."""
    return isolated_cache


def _stylegan() -> StyleGAN:
    fam = make_stylegan((1, 16, 16)).eval()
    G = fam.networks["G"]
    z = torch.randn(4096, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # what training tracks: the average w
        G.mapping.w_avg.copy_(G.mapping(z).mean(0))
    return fam


def _gan() -> GAN:
    """A conditional GAN with weights wide enough that its images vary with z (untrained)."""
    fam = make_gan((1, 16, 16), 3, g_channels=8, g_norm="none").eval()
    g = torch.Generator().manual_seed(0)
    for m in fam.networks["G"].modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0, 0.3, generator=g)
        elif isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, 0, 0.5, generator=g)
    return fam


@pytest.fixture(scope="module")
def sg_space():
    space = latent_space(_stylegan(), "w+")
    encoder_for(space, ENCODER_STEPS)
    return space


@pytest.fixture(scope="module")
def gan_space():
    space = latent_space(_gan())
    encoder_for(space, ENCODER_STEPS)
    return space


def _targets(space, n: int = 8, seed: int = 99):
    """Images the generator itself made from known codes (and classes)."""
    labels = torch.arange(n) % space.classes if space.classes else None
    codes = space.random(n, seed=seed)
    return space.images(codes, labels), labels


def _run(space, x, labels, **kw):
    kw.setdefault("perceptual", "none")
    return invert(space, x, labels, encoder_steps=ENCODER_STEPS, **kw)


def test_inversion_lowers_its_loss(sg_space):
    x, _ = _targets(sg_space)
    r = _run(sg_space, x, None, steps=60, start="mean")
    h = r.history
    assert h.shape == (61, 8)
    assert r.codes.shape == (8, *sg_space.shape)
    assert bool((h[-1] < h[0]).all())  # every image's own loss fell
    assert float(r.loss[-1]) < 0.5 * float(r.loss[0])
    assert float(r.loss[-10:].mean()) < 0.5 * float(r.loss[:10].mean())
    # the history is the loss of the codes: the last entry is the returned codes' loss
    with torch.no_grad():
        recon = sg_space.render(r.codes)  # the loss sees the unclamped render
    pixel = (recon - x).square().flatten(1).mean(1)
    spread = r.codes - r.codes.mean(1, keepdim=True)
    assert torch.allclose(
        h[-1], pixel + 0.01 * spread.square().flatten(1).mean(1) / _var(sg_space), atol=1e-4
    )


def _var(space) -> float:
    from pixelsmith.edit.latent.invert import _code_scale

    return _code_scale(space) ** 2


@pytest.mark.parametrize("which", ["gan", "stylegan"])
def test_optimisation_from_the_encoder_beats_each_part(which, gan_space, sg_space):
    space = gan_space if which == "gan" else sg_space
    x, labels = _targets(space)
    encoder_only = _run(space, x, labels, steps=0)
    few = _run(space, x, labels, steps=5)
    full = _run(space, x, labels, steps=60)
    mean_only = _run(space, x, labels, steps=0, start="mean")
    assert not encoder_only.encoder["trained"]  # the fixture's cached encoder
    assert float(encoder_only.psnr.mean()) > float(mean_only.psnr.mean()) + MARGIN
    assert float(full.psnr.mean()) > float(encoder_only.psnr.mean()) + MARGIN
    assert float(full.psnr.mean()) > float(few.psnr.mean()) + MARGIN
    # PSNR checked against a second formula
    mse = (full.images.double() - x.double()).square().flatten(1).mean(1)
    assert torch.allclose(full.psnr.double(), -10 * torch.log10(mse), atol=1e-3)


def test_random_start_is_seeded(gan_space):
    x, labels = _targets(gan_space, 4)
    a = _run(gan_space, x, labels, steps=3, start="random", seed=5)
    b = _run(gan_space, x, labels, steps=3, start="random", seed=5)
    c = _run(gan_space, x, labels, steps=3, start="random", seed=6)
    assert torch.equal(a.codes, b.codes)
    assert (a.codes - c.codes).abs().max() > 0.1


def test_encoder_cache_is_keyed_and_reloads(sg_space, _cache):
    path = cache_path(sg_space, ENCODER_STEPS)
    assert path.is_file() and path.parent == _cache / "encoders"
    enc, info = encoder_for(sg_space, ENCODER_STEPS)
    assert info == {"trained": False, "seconds": 0.0, "path": str(path)}
    again = load_encoder(save_encoder(enc, _cache / "copy.safetensors"))
    x, _ = _targets(sg_space, 4)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in enc.state_dict().items())
    torch.testing.assert_close(enc(x), again(x), rtol=0, atol=1e-6)  # two calls: rounding only
    assert cache_path(sg_space, ENCODER_STEPS + 1) != path
    assert cache_path(latent_space(sg_space.model, "w"), ENCODER_STEPS) != path


def test_vae_starts_from_its_posterior_mean(_cache):
    vae = make_vae((3, 16, 16)).eval()
    space = latent_space(vae)
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    before = set(_cache.rglob("*.safetensors"))
    r = invert(space, x, steps=0, perceptual="none")
    with torch.no_grad():
        mu, _ = vae.networks["vae"].encode(x)
    torch.testing.assert_close(r.codes, mu, rtol=0, atol=1e-5)  # with and without grad
    assert r.start == "encoder (exact: the vae model's own)"
    assert set(_cache.rglob("*.safetensors")) == before  # no encoder trained for a VAE
    moved = invert(space, x, steps=20, perceptual="none")
    assert float(moved.loss[-1]) < float(moved.loss[0])


def test_saved_codes_round_trip_and_check_the_model(sg_space, tmp_path):
    x, _ = _targets(sg_space, 3)
    r = _run(sg_space, x, None, steps=2)
    path = save_code(tmp_path / "c.safetensors", sg_space, r.codes, steps=2, loss=[1.0, 2.0, 3.0])
    codes, meta = load_code(path, sg_space)
    assert torch.equal(codes, r.codes)
    assert meta["space"] == "w+" and meta["steps"] == 2 and meta["loss"] == [1.0, 2.0, 3.0]
    # Rendered again from the loaded codes (other memory: AVX-512 kernels round differently)
    torch.testing.assert_close(sg_space.images(codes), r.images, rtol=0, atol=1e-5)
    # a W code loads into W+ as the same w on every layer: the same image
    w = latent_space(sg_space.model, "w")
    wcode = w.random(2, seed=3)
    wpath = save_code(tmp_path / "w.safetensors", w, wcode)
    as_wplus, _ = load_code(wpath, sg_space)
    assert as_wplus.shape == (2, *sg_space.shape)
    assert torch.allclose(sg_space.images(as_wplus), w.images(wcode), atol=1e-6)
    with pytest.raises(UserError, match="holds a w\\+ code"):
        load_code(path, w)
    with pytest.raises(UserError, match="another model"):
        load_code(path, latent_space(_gan()))
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(UserError):
        load_code(tmp_path / "junk.safetensors")


def test_bad_library_input(gan_space, sg_space):
    x, labels = _targets(gan_space, 2)
    with pytest.raises(UserError, match="needs a class"):
        invert(gan_space, x, None, steps=1)
    with pytest.raises(UserError, match="steps"):
        invert(gan_space, x, labels, steps=-1)
    with pytest.raises(UserError, match="start"):
        invert(gan_space, x, labels, start="middle")
    with pytest.raises(UserError, match="images must be"):
        invert(sg_space, torch.rand(2, 3, 16, 16))
    with pytest.raises(UserError, match="\\[0, 1\\]"):
        invert(sg_space, torch.full((1, 1, 16, 16), 2.0))


def test_read_targets_converts_to_the_model(sg_space, tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, 10:30] = (255, 0, 0)  # a centred red square, luma 0.299
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    x, notes = read_targets(sg_space, [tmp_path / "wide.png"])
    assert x.shape == (1, 1, 16, 16)
    assert "grey" in notes[0] and "centre-cropped to 20x20" in notes[0] and "16x16" in notes[0]
    assert torch.allclose(x, torch.full_like(x, 0.299), atol=2e-3)


def test_auto_perceptual_choice_and_distance(sg_space):
    assert choose_perceptual(latent_space(_gan28()), "auto")[0] == "classifier"
    assert choose_perceptual(sg_space, "none")[0] == "none"
    net = perceptual_net(sg_space, "classifier")
    x, _ = _targets(sg_space, 4)
    fx = net.features(x)
    assert torch.equal(net.distance(fx, fx), torch.zeros(4))
    near = net.distance(net.features((x + 0.02).clamp(0, 1)), fx)
    far = net.distance(net.features(torch.rand_like(x)), fx)
    assert bool((near < far).all())
    xg = x.clone().requires_grad_(True)
    loss = net.distance(net.features(xg * 0.9), [f.detach() for f in fx]).sum()
    loss.backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def _gan28() -> GAN:
    return make_gan((1, 28, 28), z_dim=4, max_channels=8)


@pytest.mark.inception
def test_inception_features_are_differentiable(sg_space):
    net = perceptual_net(sg_space, "inception")
    x, _ = _targets(sg_space, 2)
    fx = [f.detach() for f in net.features(x)]
    assert [f.shape[1] for f in fx] == [64, 192, 256, 288]
    xg = torch.rand_like(x).requires_grad_(True)
    d = net.distance(net.features(xg), fx)
    d.sum().backward()
    assert bool((d > 0).all()) and xg.grad.abs().sum() > 0


# ---- the command line -------------------------------------------------------------------------


def _fmnist_images(folder: Path, n: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        arr = (torch.rand(28, 28, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr, "L").save(folder / f"im{i}.png")
    return folder


def test_cli_inverts_a_folder_and_reuses_its_encoder(tmp_path, capsys, _cache):
    src = _fmnist_images(tmp_path / "in")
    out = tmp_path / "out"
    args = [
        "edit",
        "invert",
        "zoo:fmnist-gan",
        str(src),
        "-o",
        str(out),
        "--steps",
        "3",
        "--encoder-steps",
        "5",
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "training an encoder" in captured.err and "encoder trained in" in captured.err
    assert captured.out.count("PSNR") == 3  # two images and the summary
    files = sorted(p.name for p in out.iterdir())
    assert files == ["im0.png", "im0.safetensors", "im1.png", "im1.safetensors"]
    from pixelsmith.generate import load_model

    space = latent_space(load_model("zoo:fmnist-gan"))
    codes = torch.cat([load_code(out / f"im{i}.safetensors", space)[0] for i in range(2)])
    _, meta = load_code(out / "im0.safetensors", space)
    assert (
        meta["steps"] == 3 and meta["sources"] == ["im0.png"] and meta["model"] == "zoo:fmnist-gan"
    )
    saved = torch.stack(
        [torch.from_numpy(np.array(Image.open(out / f"im{i}.png"))) for i in range(2)]
    )
    again = (space.images(codes) * 255).round().to(torch.uint8)[:, 0]
    assert (again.int() - saved.int()).abs().max() <= 1  # rendered again: rounding may flip
    # the second call finds the cached encoder
    assert (
        main(
            [
                *args[:3],
                str(src / "im0.png"),
                "-o",
                str(tmp_path / "one"),
                "--steps",
                "0",
                "--encoder-steps",
                "5",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "encoder: cached" in captured.err and "training an encoder" not in captured.err
    assert (tmp_path / "one.png").is_file() and (tmp_path / "one.safetensors").is_file()


@pytest.mark.parametrize(
    "case, want",
    [
        (["zoo:denoise", "IMG"], "no latent space"),
        (["zoo:fmnist-gan", "IMG", "--space", "w+"], "only the z space"),
        (["zoo:fmnist-gan", "MISSING"], "does not exist"),
        (["zoo:fmnist-gan", "IMG", "--steps", "-1"], "--steps must be >= 0"),
        (["zoo:fmnist-gan", "IMG", "--label", "3"], "label"),
        (["zoo:fmnist-gan", "DIR", "--out-file"], "needs an output folder"),
        (["zoo:fmnist-gan", "BAD"], "BAD"),
    ],
)
def test_cli_refuses_bad_input_before_any_work(case, want, tmp_path, capsys, _cache):
    src = _fmnist_images(tmp_path / "in", 1)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "taken.png").write_bytes(b"x")
    names = {
        "IMG": str(src / "im0.png"),
        "MISSING": str(tmp_path / "nope.png"),
        "DIR": str(src),
        "BAD": str(tmp_path / "bad.png"),
    }
    out = tmp_path / "taken.png" if "--out-file" in case else tmp_path / "out"
    argv = ["edit", "invert", *(names.get(a, a) for a in case if a != "--out-file")]
    before = set(_cache.rglob("*"))
    assert main([*argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pixelsmith: error:") and "\n" not in err
    assert want.replace("BAD", "bad.png") in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.png").exists()
    assert set(_cache.rglob("*")) == before  # no encoder was trained
