from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import pixelsmith
from pixelsmith.cli.main import main
from pixelsmith.data.sources import load_images
from pixelsmith.edit.translate import translate_files
from pixelsmith.errors import UserError
from pixelsmith.models.cyclegan import CycleGAN, CycleGANConfig, query_pool
from pixelsmith.train import checkpoint as ck
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils.rng import BatchRandom

FASHION = Path("/usr/share/datasets/fashion-mnist")
TINY_MODEL = {
    "g_channels": 4,
    "g_blocks": 1,
    "d_channels": 4,
    "d_layers": 1,
    "pool_size": 3,
    "bank": 4,
}
TINY_RUN = [
    "data.source=shapes",
    "data.domains=circle:square",
    "data.limit=8",  # 8 of each domain: 4 steps an epoch at batch 4
    "data.size=16",
    "train.batch=4",
    *(f"model.{k}={v}" for k, v in TINY_MODEL.items()),
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=3",
    "train.grid_size=6",
]


def _batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """n circles (A) and n squares (B), interleaved as balanced batches are."""
    s = load_images("shapes", size=16, domains="circle:square", limit=n)
    order = torch.argsort(s.labels, stable=True).view(2, n).t().flatten()
    return s.as_float()[order], s.labels[order]


def _model(shape=(3, 16, 16), **kw) -> CycleGAN:
    torch.manual_seed(0)
    fam = CycleGAN(CycleGANConfig(**{**TINY_MODEL, **kw}), shape, 2)
    fam.configure_optimizers()
    return fam


def _step(fam: CycleGAN, x, y, rng: BatchRandom, i: int = 0) -> dict[str, float]:
    return fam.train_step(x, y, rng, i, None, lambda net: None)


# ---- training ------------------------------------------------------------------------------


def test_train_step_lowers_loss_on_a_fixed_batch():
    fam, (x, y), rng = _model(lr=2e-3), _batch(), BatchRandom(0)
    logs = [_step(fam, x, y, rng, i) for i in range(25)]
    assert all(math.isfinite(v) for log in logs for v in log.values())
    cycle = [log["cycle"] for log in logs]
    assert sum(cycle[-3:]) < 0.7 * sum(cycle[:3])
    assert logs[-1]["G"] == pytest.approx(logs[-1]["G_adv"] + cycle[-1] + logs[-1]["identity"])


def test_cycle_and_identity_losses_are_zero_for_identity_generators():
    fam, (x, y) = _model(), _batch()
    a, b = (t * 2 - 1 for t in fam.split(x, y))
    losses, _, _ = fam.generator_losses(a, b)
    assert losses["cycle"].item() > 0 and losses["identity"].item() > 0
    fam.networks["G_AB"], fam.networks["G_BA"] = nn.Identity(), nn.Identity()
    losses, fake_a, fake_b = fam.generator_losses(a, b)
    assert losses["cycle"].item() == 0.0 and losses["identity"].item() == 0.0
    assert torch.equal(fake_b, a) and torch.equal(fake_a, b)
    assert losses["G_adv"].item() > 0  # the discriminators still judge


def test_batches_must_hold_both_domains_equally():
    fam, (x, _) = _model(), _batch()
    with pytest.raises(UserError, match="data.balance=true"):
        fam.split(x, torch.tensor([0, 0, 0, 1, 1, 1, 1, 1]))
    with pytest.raises(UserError, match="data.domains"):
        fam.split(x, None)


def test_image_pool_fills_then_swaps_with_probability_one_half():
    pool, count, rng = torch.zeros(4, 1, 1, 1), torch.zeros(1, dtype=torch.long), BatchRandom(5)
    returned_fake = 0
    for step in range(40):
        fakes = torch.tensor([2.0 * step + 1, 2.0 * step + 2]).view(2, 1, 1, 1)
        before = pool.flatten().tolist()[: int(count)]
        out = query_pool(pool, count, fakes, rng).flatten().tolist()
        after, inputs = pool.flatten().tolist()[: int(count)], fakes.flatten().tolist()
        if step < 2:  # filling: fakes go in and pass through
            assert out == inputs and after == before + inputs
            continue
        # Full: images only move between the pool and the output, none appear or vanish, and
        # each output is its own input, an image the pool held, or (two draws of one slot) an
        # earlier input of the batch, as in the original's sequential loop.
        assert sorted(before + inputs) == sorted(after + out)
        assert all(o == inputs[k] or o in before + inputs[:k] for k, o in enumerate(out))
        returned_fake += sum(o == i for o, i in zip(out, inputs, strict=True))
    assert int(count) == 4
    assert 20 <= returned_fake <= 56  # 76 draws at p = 1/2: mean 38, sd 4.4


# ---- sampling and translation --------------------------------------------------------------


def test_sample_and_translate_shape_range_and_seeding():
    fam, (x, y) = _model(), _batch()
    with pytest.raises(UserError, match="seen no training images"):
        fam.sample(4)
    _step(fam, x, y, BatchRandom(0))
    s = fam.sample(5, seed=3)
    assert s.shape == (5, 3, 16, 16) and s.dtype == torch.float32
    assert s.min() >= 0 and s.max() <= 1
    assert torch.equal(s, fam.sample(5, seed=3)) and not torch.equal(s, fam.sample(5, seed=4))
    a, b = fam.split(x, y)
    # Pairs [source, translation]: A->B, then B->A; sources are banked training images.
    assert any(torch.equal(s[0], im) for im in a) and any(torch.equal(s[2], im) for im in b)
    # (to rounding: a batch of one runs other conv kernels than a batch of several)
    torch.testing.assert_close(s[1], fam.translate(s[0:1], "a2b")[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(s[3], fam.translate(s[2:3], "b2a")[0], rtol=0, atol=1e-5)
    rev = fam.sample(4, seed=3, labels=torch.tensor([1, 1]))
    assert any(torch.equal(rev[0], im) for im in b) and any(torch.equal(rev[2], im) for im in b)
    t = fam.translate(a, "a2b")
    assert t.shape == a.shape and t.dtype == torch.float32 and 0 <= t.min() <= t.max() <= 1
    assert torch.equal(t, fam.translate(a, "a2b")) and not torch.equal(t, fam.translate(a, "b2a"))
    with pytest.raises(UserError, match="a2b or b2a"):
        fam.translate(a, "sideways")
    with pytest.raises(UserError, match=r"\(3, 16, 16\)"):
        fam.translate(torch.rand(2, 1, 16, 16))
    with pytest.raises(UserError, match="labels must be 2"):
        fam.sample(4, labels=torch.tensor([0, 2]))


def test_bad_settings_are_user_errors():
    with pytest.raises(UserError, match="data.domains=A:B"):
        CycleGAN(CycleGANConfig(), (1, 28, 28), 10)
    with pytest.raises(UserError, match="data.size"):
        CycleGAN(CycleGANConfig(), (1, 30, 30), 2)
    with pytest.raises(UserError, match="d_layers"):
        CycleGAN(CycleGANConfig(d_layers=3), (1, 16, 16), 2)
    with pytest.raises(UserError, match="g_channels"):
        CycleGANConfig(g_channels=0)


# ---- the engine: resume, CLI, edit translate -----------------------------------------------


def test_unbalanced_batches_are_refused_before_a_run_folder_exists(tmp_path):
    cfg = build_config("cyclegan", overrides=TINY_RUN + ["train.steps=1", "data.balance=false"])
    with pytest.raises(UserError, match="data.balance=true: every batch"):
        train(cfg, tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()


def test_resume_is_bit_identical_including_the_image_pool(tmp_path):
    cfg = lambda steps: build_config("cyclegan", overrides=TINY_RUN + [f"train.steps={steps}"])  # noqa: E731
    full = train(cfg(6), tmp_path / "a", progress=False)
    half = train(cfg(3), tmp_path / "b", progress=False)
    assert train(cfg(6), resume=half, progress=False) == half

    def state(run):
        t, man = ck.load_checkpoint(ck.resolve_checkpoint(run))
        assert man["batches"]["epoch"] == 1  # 6 steps of 4 images over 16: crossed an epoch
        return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}

    a, b = state(full), state(half)
    assert a.keys() == b.keys()
    assert {"net/memory/pool_a", "net/memory/pool_b", "net/memory/bank_a"} <= a.keys()
    assert a["net/memory/pool_n"].tolist() == [3, 3] and a["net/memory/pool_a"].abs().sum() > 0
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cyclegan-runs")
    sets = [a for t in TINY_RUN for a in ("--set", t)]
    assert main(["train", "cyclegan", "--steps", "2", "--out", str(out), "--quiet", *sets]) == 0
    return next(out.iterdir())


def test_cli_run_loads_and_samples(tiny_run):
    assert (tiny_run / "grids" / "grid-final.png").exists()
    model = pixelsmith.load(str(tiny_run))
    assert model.name == "cyclegan" and model.image_shape == (3, 16, 16)
    assert torch.equal(model.sample(4, seed=1), model.sample(4, seed=1))


def test_eval_cli_scores_translation_and_refuses_sample_metrics(tiny_run, capsys):
    args = ["eval", str(tiny_run), "--reference-n", "6", "--json", "--no-store", "--quiet"]
    assert main([*args, "--metrics", "translation"]) == 0
    out, err = capsys.readouterr()
    assert "no shipped classifier" in err
    got = {d["card"]["metric"]: d for d in json.loads(out)}
    assert {"translation/aba_psnr", "translation/bab_psnr"} <= got.keys()
    assert got["translation/aba_psnr"]["card"]["n"] == 12  # 6 of each domain
    assert main([*args, "--metrics", "fid"]) == 2
    assert "translates images" in capsys.readouterr().err


def test_edit_translate_file_and_folder(tiny_run, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (20, 12), (200, 30, 30)).save(src / "wide.png")
    Image.new("L", (16, 16), 90).save(src / "gray.bmp")
    (src / "sub").mkdir()
    Image.new("RGBA", (16, 16), (0, 0, 255, 100)).save(src / "sub" / "alpha.png")

    assert (
        main(
            [
                "edit",
                "translate",
                str(tiny_run),
                str(src / "wide.png"),
                "-o",
                str(tmp_path / "o.png"),
            ]
        )
        == 0
    )
    with Image.open(tmp_path / "o.png") as im:
        assert im.size == (16, 16) and im.mode == "RGB"
    assert (
        main(
            [
                "edit",
                "translate",
                str(tiny_run),
                str(src),
                "-o",
                str(tmp_path / "out"),
                "--direction",
                "b2a",
            ]
        )
        == 0
    )
    assert "3 images" in capsys.readouterr().out
    written = sorted(
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png")
    )
    assert written == ["gray.png", "sub/alpha.png", "wide.png"]

    # The library function agrees with the model's own translate on the converted input.
    model = pixelsmith.load(str(tiny_run))
    grey = torch.full((1, 3, 16, 16), 90 / 255)
    expect = (model.translate(grey, "b2a") * 255).round().to(torch.uint8)[0].permute(1, 2, 0)
    with Image.open(tmp_path / "out" / "gray.png") as im:
        assert torch.equal(torch.from_numpy(np.asarray(im).copy()), expect)
    [path] = translate_files(model, src / "gray.bmp", tmp_path / "lib", "b2a")
    assert path == tmp_path / "lib" / "gray.png"

    for args, needle in [
        ([str(src / "missing.png"), "-o", str(tmp_path / "x.png")], "does not exist"),
        ([str(src), "-o", str(tmp_path / "x.png")], "needs an output folder"),
        ([str(src / "wide.png"), "-o", str(tmp_path / "x.jpg")], "must be a .png"),
        ([str(src), "-o", str(src)], "overwrite an input"),
    ]:
        assert main(["edit", "translate", str(tiny_run), *args]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err
    (src / "broken.png").write_bytes(b"not a png")
    assert main(["edit", "translate", str(tiny_run), str(src), "-o", str(tmp_path / "o2")]) == 2
    assert "broken.png" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def test_edit_translate_refuses_other_families(tmp_path, tiny):
    run = train(build_config("dcgan", overrides=tiny + ["train.steps=1"]), tmp_path, progress=False)
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    with pytest.raises(UserError, match="not a cyclegan model"):
        translate_files(run, tmp_path / "a.png", tmp_path / "o.png")


# ---- the translation score -----------------------------------------------------------------


@pytest.mark.skipif(not FASHION.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_translation_score_with_identity_generators_is_the_classifiers_own_rate():
    from pixelsmith.metrics.classifier import WEIGHTS_DIR, load_classifier

    data = load_images("fashion-mnist", "test", domains="sneaker:ankle boot", limit=150)
    fam = _model((1, 28, 28))
    fam.networks["G_AB_ema"], fam.networks["G_BA_ema"] = nn.Identity(), nn.Identity()
    values, protocol = fam.score_data("translation", data)
    # Independently: the shipped classifier, called directly on the untranslated images.
    net, _ = load_classifier(WEIGHTS_DIR / "fmnist-cnn-v1.safetensors")
    with torch.no_grad():
        called = net(data.images.float() / 255).argmax(1)
    a, b = data.labels == 0, data.labels == 1
    assert values["a2b_success"] == pytest.approx((called[a] == 9).float().mean().item())
    assert values["b2a_success"] == pytest.approx((called[b] == 7).float().mean().item())
    assert values["a_real_accuracy"] == pytest.approx((called[a] == 7).float().mean().item())
    assert values["b_real_accuracy"] == pytest.approx((called[b] == 9).float().mean().item())
    assert values["a_real_accuracy"] > 0.9 and values["a2b_success"] < 0.1
    # Exact but for the float rounding of the [0, 1] <-> [-1, 1] round trips.
    assert values["aba_psnr"] > 100 and values["bab_psnr"] > 100
    assert protocol["features_sha256"].startswith("c3a51495")
    assert protocol["params"]["n_a"] == 150 and protocol["params"]["n_b"] == 150

    four = torch.cat([torch.nonzero(data.labels == d).flatten()[:4] for d in (0, 1)])
    _step(fam, data.as_float()[four], data.labels[four], BatchRandom(0))  # a real (tiny) model
    fam.networks["G_AB_ema"], fam.networks["G_BA_ema"] = fam.networks["G_AB"], fam.networks["G_BA"]
    values, _ = fam.score_data("translation", data)
    for k in ("a2b_success", "b2a_success", "a_real_accuracy", "b_real_accuracy"):
        assert 0 <= values[k] <= 1, k
    assert 0 < values["aba_psnr"] < 60 and 0 < values["bab_psnr"] < 60
    with pytest.raises(UserError, match="data.domains"):
        fam.score_data("translation", load_images("fashion-mnist", "test", limit=20))
    with pytest.raises(UserError, match="no metric"):
        fam.score_data("nll", data)


def test_translation_score_without_a_classifier_gives_the_psnrs_and_says_so():
    fam, (x, y) = _model(), _batch()
    _step(fam, x, y, BatchRandom(0))
    data = load_images("shapes", "test", size=16, domains="circle:square", limit=6)
    with pytest.warns(UserWarning, match="only the cycle PSNRs"):
        values, _ = fam.score_data("translation", data)
    assert set(values) == {"aba_psnr", "bab_psnr"} and all(0 < v < 60 for v in values.values())
