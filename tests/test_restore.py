"""The restoration family: tiling matches one pass, degradations per task, the noise estimator
against scikit-image's, training that restores, and the photo data it learns from."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsmith.data import degrade, photos
from pixelsmith.data.patches import crop_patches
from pixelsmith.data.sources import load_images
from pixelsmith.errors import UserError
from pixelsmith.models.base import Batch
from pixelsmith.models.restore import PRESETS, Restore, RestoreConfig, estimate_sigma
from pixelsmith.nn.tiles import receptive_radius
from pixelsmith.utils.files import sha256_file
from pixelsmith.utils.rng import BatchRandom


def _model(**kw) -> Restore:
    torch.manual_seed(0)
    m = Restore(RestoreConfig(**kw), (3, 64, 64))
    for p in m.networks["net"].parameters():  # the zero-initialised tails would hide the field
        if not p.abs().sum():
            torch.nn.init.normal_(p, std=0.05)
    m.add_ema_copies()
    return m.eval()


PRESET_MODELS = {name: p.settings["model"] for name, p in PRESETS.items()}


@pytest.mark.parametrize("name", sorted(PRESET_MODELS))
def test_the_tiling_margin_covers_the_measured_receptive_field(name):
    m = _model(**PRESET_MODELS[name])
    cin = m.network_input(torch.rand(1, 3, 64, 64), mask=torch.zeros(1, 1, 64, 64)).shape[1]
    measured = receptive_radius(m.networks["net"], cin, size=160 if m.margin < 60 else 256)
    assert 0 < measured <= m.margin


@pytest.mark.parametrize(
    "kw",
    [
        {"task": "sr", "scale": 2, "width": 8, "blocks": 2},
        {"task": "sr", "scale": 4, "width": 8, "blocks": 2},
        {"task": "denoise", "width": 8, "blocks": 1, "levels": 2},
        {"task": "inpaint", "width": 8, "blocks": 1, "levels": 2},
        {"task": "enhance", "width": 8, "blocks": 1, "levels": 1},
    ],
)
def test_a_tiled_run_equals_one_pass(kw):
    m = _model(**kw)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, 45, 77, generator=g)  # odd sides: the UNets pad to a multiple
    mask = (torch.rand(1, 1, 45, 77, generator=g) > 0.7).float()
    whole = m.restore(x, mask=mask)
    seen = []
    tiled = m.restore(x, mask=mask, tile=16, progress=lambda d, t: seen.append((d, t)))
    s = m.out_scale
    assert whole.shape == (1, 3, 45 * s, 77 * s)
    assert len(seen) > 4 and seen[-1][0] == seen[-1][1]  # it did run in tiles
    assert (whole - tiled).abs().max() < 1e-5
    if kw["task"] == "inpaint":  # known pixels are kept exactly
        keep = mask.expand_as(x) < 0.5
        assert torch.equal(whole[keep], x[keep])


@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_the_noise_estimate_agrees_with_scikit_image(sigma):
    from skimage import data
    from skimage.restoration import estimate_sigma as sk_estimate

    clean = torch.from_numpy(data.astronaut()[100:356, 100:356].copy()).permute(2, 0, 1) / 255
    g = torch.Generator().manual_seed(0)
    noisy = clean + sigma / 255 * torch.randn(clean.shape, generator=g)
    ours = float(estimate_sigma(noisy[None])[0]) * 255
    theirs = sk_estimate(noisy.permute(1, 2, 0).numpy(), channel_axis=-1, average_sigmas=True)
    assert abs(ours - sigma) < 0.12 * sigma + 1.5
    assert abs(ours - theirs * 255) < 0.1 * sigma + 1.5


def test_each_task_degrades_as_it_trains_and_seeds_decide():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    sr = _model(task="sr", scale=2, width=8, blocks=1)
    b = sr.prepare_batch(Batch(x), BatchRandom(0))
    assert torch.equal(b.inputs, degrade.bicubic_down(x, 2))
    dn = _model(task="denoise", width=8, blocks=1, levels=1, sigma=(20.0, 30.0))
    a, a2 = (dn.prepare_batch(Batch(x), BatchRandom(s)).inputs for s in (3, 3))
    other = dn.prepare_batch(Batch(x), BatchRandom(4)).inputs
    assert torch.equal(a, a2) and not torch.equal(a, other)
    est = (a - x).flatten(1).std(1) * 255
    assert ((est > 18) & (est < 32)).all()
    ip = _model(task="inpaint", width=8, blocks=1, levels=1, coverage=(0.1, 0.3))
    b = ip.prepare_batch(Batch(x), BatchRandom(0))
    cover = b.mask.flatten(1).mean(1)
    assert ((cover >= 0.1) & (cover <= 0.3)).all()
    assert torch.equal(b.inputs, x * (1 - b.mask))
    en = _model(task="enhance", width=8, blocks=1, levels=1)
    assert en.prepare_batch(Batch(x), BatchRandom(0)).inputs.mean() < 0.6 * x.mean()


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="model.task"):
        RestoreConfig(task="colourise").validate()
    with pytest.raises(UserError, match="model.scale"):
        RestoreConfig(task="sr", scale=5).validate()
    with pytest.raises(UserError, match="needs a mask"):
        _model(task="inpaint", width=8, blocks=1, levels=1).restore(torch.rand(1, 3, 16, 16))


@pytest.mark.slow
def test_a_short_run_learns_to_denoise(tmp_path):
    from pixelsmith.metrics.evaluate import evaluate_model
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    sets = ["data.source=shapes", "data.size=32", "train.steps=150", "train.threads=2"]
    sets += ["model.width=16", "model.levels=1", "model.sigma=25,25", "train.eval_at_end=false"]
    sets += ["data.augment.flip_p=0", "train.batch=16"]
    run = train(build_config("restore", overrides=sets), tmp_path, progress=False)
    from pixelsmith.generate import load_model

    model = load_model(run)
    scores = {s.card.metric: s.value for s in evaluate_model(model, reference_n=64)}
    # sigma 25 noise is ~20.2 dB; a few hundred steps on flat shapes clean much of it.
    assert scores["restoration/input_psnr"] < 21
    assert scores["restoration/psnr"] > scores["restoration/input_psnr"] + 4
    assert (run / "grids" / "grid-final.png").exists()  # rows of noisy | restored | clean


def test_missing_training_photos_name_the_install_command(monkeypatch):
    monkeypatch.setattr(photos, "TRAIN_FILES", ("/nonexistent/mate/x.jpg",))
    monkeypatch.setattr(photos, "_package_of", lambda f: "mate-backgrounds")
    with pytest.raises(UserError, match="apt-get install -y mate-backgrounds"):
        photos.training_photos(install=False)


def test_the_hold_out_photos_are_found_and_never_trained_on():
    found = photos.holdout_photos()
    assert set(found) == set(photos.HOLDOUT) and all(p.is_file() for p in found.values())
    held = {sha256_file(p) for p in found.values()}
    train = [f for f in photos.TRAIN_FILES if __import__("os").path.isfile(f)]
    assert not held & {sha256_file(f) for f in train}
    assert photos.BUTTERFLY not in photos.TRAIN_FILES
    test = load_images("photos", "test", size=48, patches=24)
    assert tuple(test.images.shape) == (24, 3, 48, 48)


def test_patches_are_crops_of_the_photo_and_seeded(tmp_path):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.warns(match="unreadable"):
        p = crop_patches([tmp_path / "a.png", tmp_path / "broken.png"], 5, 16, seed=3)
    with pytest.warns(match="unreadable"):
        q = crop_patches([tmp_path / "a.png", tmp_path / "broken.png"], 5, 16, seed=3)
    assert p.shape == (5, 3, 16, 16) and np.array_equal(p, q)
    for patch in p.transpose(0, 2, 3, 1):
        hits = [
            (y, x)
            for y in range(60 - 15)
            for x in range(90 - 15)
            if np.array_equal(arr[y : y + 16, x : x + 16], patch)
        ]
        assert hits
    grey = crop_patches([tmp_path / "a.png"], 2, 16, seed=3, channels=1)
    assert grey.shape == (2, 1, 16, 16)


def test_whole_image_statistics_work_on_any_photo_size():
    from pixelsmith.models.restore import _quantile, exposure_stats

    y = torch.rand(3, 1001, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_quantile(y, 0.95), torch.quantile(y, 0.95, dim=1))
    big = torch.rand(1, 1, 4097, 4097)  # more values than torch.quantile takes (2**24)
    mean, p95 = exposure_stats(big)[0]
    assert abs(float(mean) - 0.5) < 0.01 and abs(float(p95) - 0.95) < 0.01
    assert float(estimate_sigma(torch.rand(1, 3, 1, 50))[0]) == 0  # a strip: nothing to go on


def test_patch_sizes_the_networks_cannot_take_are_refused():
    with pytest.raises(UserError, match="multiples of 8"):
        Restore(RestoreConfig(task="denoise", levels=3), (3, 60, 60))
    with pytest.raises(UserError, match="multiples of 4"):
        Restore(RestoreConfig(task="sr", scale=4), (3, 126, 126))


def test_training_masks_never_stop_a_run():
    tight = {"coverage": (0.98, 0.99), "max_tries": 3}
    with pytest.raises(UserError, match="tries"):
        degrade.masks_with_coverage(2, 32, 32, BatchRandom(0), **tight)
    m = degrade.masks_with_coverage(2, 32, 32, BatchRandom(0), strict=False, **tight)
    assert m.shape == (2, 1, 32, 32) and ((m == 0) | (m == 1)).all()


@pytest.mark.zoo
def test_init_from_another_family_is_refused():
    from pixelsmith.train.transfer import init_from

    with pytest.raises(UserError, match="gan model"):
        init_from(_model(task="denoise", width=8, blocks=1, levels=1), "zoo:fmnist-gan")


def test_context_blocks_start_as_the_identity_so_init_keeps_the_output():
    plain = _model(task="inpaint", width=8, blocks=1, levels=2)
    wide = Restore(
        RestoreConfig(task="inpaint", width=8, blocks=1, levels=2, context=(2, 4)), (3, 64, 64)
    )
    missing = wide.networks["net"].load_state_dict(plain.networks["net"].state_dict(), strict=False)
    assert missing.missing_keys and all(k.startswith("context.") for k in missing.missing_keys)
    wide.add_ema_copies()
    g = torch.Generator().manual_seed(2)
    x, mask = (
        torch.rand(1, 3, 40, 48, generator=g),
        (torch.rand(1, 1, 40, 48, generator=g) > 0.6).float(),
    )
    assert torch.allclose(plain.restore(x, mask=mask), wide.eval().restore(x, mask=mask), atol=1e-6)
    assert wide.margin > plain.margin  # the dilations widen what the tiling must cover


def _textured_batch(n: int, g: torch.Generator) -> Batch:
    """Smooth ramps plus fine noise, whose holes a harmonic fill leaves smooth."""
    ramp = torch.linspace(0.2, 0.8, 32).view(1, 1, 1, 32).expand(n, 3, 32, 32)
    clean = (ramp + 0.15 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)
    mask = torch.zeros(n, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    return Batch(clean, inputs=clean * (1 - mask), mask=mask)


def test_the_discriminator_learns_that_filled_holes_are_too_smooth():
    from pixelsmith.models.base import StepContext
    from pixelsmith.nn.fill import harmonic_fill

    torch.manual_seed(0)  # the networks' initialisation
    m = Restore(
        RestoreConfig(
            task="inpaint", width=8, blocks=1, levels=1, adversarial=0.1, feature_match=1.0
        ),
        (3, 32, 32),
    )
    m.configure_optimizers()
    disc, net = m.networks["disc"], m.networks["net"]
    net_before = [p.detach().clone() for p in net.parameters()]
    g = torch.Generator().manual_seed(0)
    for step in range(60):
        batch = _textured_batch(8, g)
        stats = m.train_step(
            batch, StepContext(BatchRandom(step), step, lambda b=batch: b, lambda n: None)
        )
    assert {"l1", "d", "adv", "fm"} <= set(stats)
    assert any(not torch.equal(a, b) for a, b in zip(net_before, net.parameters(), strict=True))
    test = _textured_batch(16, torch.Generator().manual_seed(9))
    filled = harmonic_fill(test.inputs, test.mask)
    with torch.no_grad():
        real, _ = disc(test.images, test.mask)
        fake, _ = disc(filled, test.mask)
    hole = slice(1, 3)  # the 8x8 cells over the hole (a 4x4 map of 32 pixels)
    # untrained, the gap is about 0.01; after 60 steps 0.8-1.0 over four seeds
    assert real[..., hole, hole].mean() > fake[..., hole, hole].mean() + 0.3


def test_texture_settings_are_for_inpainting_only():
    with pytest.raises(UserError, match="model.task=inpaint"):
        RestoreConfig(task="denoise", adversarial=0.1).validate()
    with pytest.raises(UserError, match="model.context"):
        RestoreConfig(task="inpaint", context=(0,)).validate()
    with pytest.raises(UserError, match="model.d_lr"):
        RestoreConfig(task="inpaint", d_lr=0.0).validate()
    with pytest.raises(UserError, match="model.feature_match"):
        RestoreConfig(task="inpaint", feature_match=-1.0).validate()
