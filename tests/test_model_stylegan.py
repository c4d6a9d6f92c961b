from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pixelsmith
from pixelsmith.api import sample_to
from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.imageio import load_image
from pixelsmith.models.gan import d_loss, g_loss
from pixelsmith.models.stylegan import (
    EqualConv2d,
    EqualLinear,
    StyleGAN,
    StyleGANConfig,
    downsample,
    minibatch_std,
    modulated_conv2d,
    synthesis_size,
)
from pixelsmith.train import checkpoint as ck
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils.rng import BatchRandom

TINY_MODEL = {
    "z_dim": 8,
    "w_dim": 8,
    "mapping_layers": 2,
    "g_channels": 4,
    "d_channels": 4,
    "max_channels": 8,
}
TINY_RUN = [
    "data.source=shapes",
    "data.limit=40",
    "data.size=16",
    "train.batch=8",
    *(f"model.{k}={v}" for k, v in TINY_MODEL.items()),
    "model.r1_every=2",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=3",
    "train.grid_size=4",
]


def _model(shape=(1, 16, 16), **kw) -> StyleGAN:
    torch.manual_seed(0)
    fam = StyleGAN(StyleGANConfig(**{**TINY_MODEL, **kw}), shape)
    fam.configure_optimizers()
    return fam


def _no_sync(net: torch.nn.Module) -> None:
    pass


def _shapes(n: int = 8) -> torch.Tensor:
    """Bright squares on black, in [0, 1]."""
    x = torch.zeros(n, 1, 16, 16)
    for i in range(n):
        x[i, :, 2 + i % 4 : 10 + i % 4, 3 : 11 + i % 3] = 1.0
    return x


# ---- layers --------------------------------------------------------------------------------


def _per_sample_reference(x, weight, styles, demodulate):
    """Modulated conv the slow, obvious way: build each sample's own filter and convolve."""
    out = []
    for xi, si in zip(x, styles, strict=True):
        w = weight * si[None, :, None, None]
        if demodulate:
            w = w / (w.square().sum((1, 2, 3), keepdim=True) + 1e-8).sqrt()
        out.append(F.conv2d(xi[None], w, padding=weight.shape[-1] // 2))
    return torch.cat(out)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_equals_per_sample_reference(k, demodulate, fused):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 7, 7, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 6, k, k, generator=g, dtype=torch.float64)
    styles = torch.randn(5, 6, generator=g, dtype=torch.float64) + 1
    got = modulated_conv2d(x, weight, styles, demodulate=demodulate, fused=fused)
    ref = _per_sample_reference(x, weight, styles, demodulate)
    assert got.shape == (5, 4, 7, 7)
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-10)
    if demodulate:  # unit-norm filters: unit-variance inputs give unit-variance outputs
        big = torch.randn(64, 6, 16, 16, generator=g, dtype=torch.float64)
        y = modulated_conv2d(big, weight, styles[:1].expand(64, -1), fused=fused)
        assert 0.8 < y[:, :, 2:-2, 2:-2].std().item() < 1.2


def test_equalised_learning_rate():
    torch.manual_seed(0)
    lin, conv = EqualLinear(400, 300), EqualConv2d(50, 60, 3)
    mapping = EqualLinear(400, 300, lr_mul=0.01)
    for layer, lr_mul, fan_in in ((lin, 1.0, 400), (conv, 1.0, 450), (mapping, 0.01, 400)):
        w = layer.weight * lr_mul  # stored weights are N(0, 1) / lr_mul
        assert abs(w.mean().item()) < 0.01 and abs(w.std().item() - 1) < 0.01
        assert layer.scale == pytest.approx(lr_mul / math.sqrt(fan_in))
    x = torch.randn(7, 400)
    mapping.bias.data.normal_()
    ref = x @ (mapping.weight * 0.01 / 20).t() + mapping.bias * 0.01
    assert torch.allclose(mapping(x), ref, atol=1e-5)
    # Every weight of both networks is stored at unit scale: no layer hides a small init.
    fam = _model(max_channels=64, g_channels=32, d_channels=32)
    for net in ("G", "D"):
        for name, p in fam.networks[net].named_parameters():
            if name.endswith("weight") and p.numel() >= 4096:
                lr = 0.01 if name.startswith("mapping.") else 1.0
                assert abs((p * lr).std().item() - 1) < 0.1, name


def test_resampling_is_stylegan2s_1331_filter_away_from_the_border():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 12, 12, generator=g, dtype=torch.float64)
    k = torch.tensor([1.0, 3, 3, 1], dtype=torch.float64) / 8
    kernel = (k[:, None] * k[None, :]).expand(3, 1, 4, 4)
    down = F.conv2d(x, kernel, stride=2, padding=1, groups=3)  # blur, keep every other pixel
    assert torch.allclose(downsample(x)[..., 1:-1, 1:-1], down[..., 1:-1, 1:-1], atol=1e-12)
    # odd sizes round up, and the border is renormalised: a constant image stays constant
    assert torch.allclose(downsample(torch.ones(1, 1, 7, 9)), torch.ones(1, 1, 4, 5))
    # upsampling: zero-stuffing, then the same filter at gain 4
    up = F.conv_transpose2d(x, 4 * kernel, stride=2, padding=1, groups=3)
    bilinear = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(bilinear[..., 1:-1, 1:-1], up[..., 1:-1, 1:-1], atol=1e-12)


def test_minibatch_std_matches_explicit_groups():
    x = torch.randn(6, 3, 4, 4, dtype=torch.float64)
    out = minibatch_std(x, 3)
    assert out.shape == (6, 4, 4, 4) and torch.equal(out[:, :3], x)
    for m in range(2):  # groups are samples {m, m + 2, m + 4}
        grp = x[[m, m + 2, m + 4]]
        expect = grp.std(0, unbiased=False).mean()
        for i in (m, m + 2, m + 4):
            assert torch.allclose(out[i, 3], torch.full((4, 4), expect.item(), dtype=x.dtype))
    assert minibatch_std(torch.randn(5, 2, 3, 3), 4).shape == (5, 3, 3, 3)  # 5: groups of 1


# ---- sizes ---------------------------------------------------------------------------------


def test_sizes_generate_at_a_power_of_two_and_crop():
    assert [synthesis_size(s, s) for s in (4, 8, 9, 16, 28, 32, 33)] == [8, 8, 16, 16, 32, 32, 64]
    for shape in ((1, 28, 28), (3, 32, 32), (3, 12, 20), (4, 8, 8)):
        fam = _model(shape)
        x = fam.sample(3, seed=0)
        assert x.shape == (3, *shape)
        assert fam.networks["D"](x * 2 - 1).shape == (3,)
    fam = _model((1, 28, 28))
    G = fam.networks["G_ema"]
    ws = G.ws(torch.randn(2, 8))
    assert torch.equal(G.synthesize(ws), G.synthesis(ws)[:, :, 2:30, 2:30])
    for bad in ((1, 3, 3), (1, 2000, 16)):
        with pytest.raises(UserError, match=r"not supported.*data\.size"):
            _model(bad)


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"style_mixing": 1.5}, "style_mixing"),
        ({"mapping_lrmul": 0.0}, "mapping_lrmul"),
        ({"r1_gamma": -1.0}, "r1_gamma"),
        ({"betas": (0.0, 1.0)}, "betas"),
        ({"diffaugment": "colour"}, "DiffAugment"),
        ({"w_avg_beta": 1.0}, "w_avg_beta"),
    ],
)
def test_bad_config_is_a_user_error(kw, needle):
    with pytest.raises(UserError, match=needle):
        StyleGANConfig(**kw)


# ---- training ------------------------------------------------------------------------------


@pytest.mark.parametrize("learner", ["D", "G"])
def test_train_step_lowers_the_loss_on_a_fixed_batch(learner):
    """With the other network's lr near 0, each network's own loss falls on a fixed batch."""
    frozen = {"D": "lr_g", "G": "lr_d"}[learner]
    fam = _model(r1_gamma=0.0, style_mixing=0.0, **{frozen: 1e-12})
    x = _shapes()
    G, D = fam.networks["G"], fam.networks["D"]

    def loss_now() -> float:
        with torch.no_grad():
            fake = fam._generate(8, BatchRandom(0))
            return (
                d_loss("ns", D(x * 2 - 1), D(fake)) if learner == "D" else g_loss("ns", D(fake))
            ).item()

    before = loss_now()
    # A fresh rng each step: the same z and noise, so the fakes of step 0 are the ones scored.
    logs = [fam.train_step(x, None, BatchRandom(0), i + 1, None, _no_sync) for i in range(15)]
    assert all(math.isfinite(v) for lg in logs for v in lg.values())
    assert {"D", "G", "D_real", "D_fake"} <= set(logs[0])
    after = loss_now()
    assert after < 0.85 * before, (before, after)
    assert D.training and G.training


def test_train_step_tracks_w_avg_and_applies_lazy_r1():
    fam = _model(r1_every=4, r1_gamma=1.0)
    x, rng = _shapes(), BatchRandom(0)
    w_avg = fam.networks["G"].mapping.w_avg
    assert torch.equal(w_avg, torch.zeros(8))
    logs = [fam.train_step(x, None, rng, i, None, _no_sync) for i in range(5)]
    assert ["r1" in lg for lg in logs] == [True, False, False, False, True]
    assert w_avg.abs().sum() > 0 and torch.isfinite(w_avg).all()
    # after one step w_avg is (1 - beta) * the batch mean of w
    fam2 = _model()
    G = fam2.networks["G"]
    z = BatchRandom(0).randn(8, 8)
    with torch.no_grad():
        expect = (1 - 0.995) * G.mapping(z).mean(0)
    fam2.train_step(x, None, BatchRandom(0), 1, None, _no_sync)
    assert torch.allclose(G.mapping.w_avg, expect, atol=1e-6)


def test_style_mixing_regularisation_mixes_most_samples():
    fam = _model(style_mixing=0.9)
    G = fam.networks["G"]
    seen = []
    G.synthesize = lambda ws, noise: seen.append(ws) or torch.zeros(len(ws), 1, 16, 16)
    fam._generate(400, BatchRandom(3))
    ws = seen[0]
    mixed = (ws != ws[:, :1]).any(2).any(1)
    assert 0.8 < mixed.float().mean().item() < 0.97
    # a mixed code switches once, from the first code to the second, and never at layer 0
    switch = (ws != ws[:, :1]).any(2).float()
    assert torch.all(switch[:, 0] == 0) and torch.all(switch.diff(dim=1) >= 0)
    fam = _model(style_mixing=0.0)
    seen.clear()
    fam.networks["G"].synthesize = lambda ws, noise: seen.append(ws) or torch.zeros(len(ws))
    fam._generate(50, BatchRandom(3))
    assert torch.equal(seen[0], seen[0][:, :1].expand_as(seen[0]))


# ---- sampling ------------------------------------------------------------------------------


def _randomised(fam: StyleGAN) -> StyleGAN:
    """Non-zero noise strengths and a non-zero w_avg, as after training."""
    G = fam.networks["G_ema"]
    with torch.no_grad():
        for layer in G.synthesis.layers:
            layer.noise_strength.fill_(0.5)
        G.mapping.w_avg.normal_(generator=torch.Generator().manual_seed(1))
    return fam


def test_samples_shape_range_and_seeding():
    fam = _randomised(_model((3, 16, 16)))
    x = fam.sample(5, seed=3)
    assert x.shape == (5, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.01
    assert torch.equal(x, fam.sample(5, seed=3)) and not torch.equal(x, fam.sample(5, seed=4))
    assert torch.equal(fam.sample(300, seed=2)[290:], fam.sample(300, seed=2)[290:])  # chunks
    assert fam.sample(0).shape == (0, 3, 16, 16)
    r = fam.sample(3, seed=3, noise="random")
    assert torch.equal(r, fam.sample(3, seed=3, noise="random"))
    assert not torch.equal(r, x[:3]) and not torch.equal(r, fam.sample(3, seed=3, noise="none"))
    with pytest.raises(UserError, match="noise"):
        fam.sample(2, noise="fixed")
    with pytest.raises(UserError, match="truncation"):
        fam.sample(2, truncation=float("nan"))


def test_truncation_zero_gives_the_mean_w_image_for_every_seed():
    fam = _randomised(_model())
    G = fam.networks["G_ema"]
    a, b = fam.sample(4, seed=0, truncation=0.0), fam.sample(3, seed=9, truncation=0.0)
    for img in (*a, *b):
        assert torch.equal(img, a[0])
    with torch.no_grad():
        mean_w = G.mapping.w_avg.expand(1, G.num_ws, -1)
        mean_img = ((G.synthesize(mean_w) + 1) / 2).clamp(0, 1)
    assert torch.allclose(a[0], mean_img[0], atol=1e-6)
    full, half = fam.sample(4, seed=0), fam.sample(4, seed=0, truncation=0.5)
    assert not torch.allclose(full, a) and not torch.allclose(full, half)
    # psi interpolates W linearly: psi = 0.5 halves the distance to the mean
    z = fam._z(4, 0)
    with torch.no_grad():
        w1, w_half = G.mapping(z), G.mapping(z, psi=0.5)
    assert torch.allclose(w_half - G.mapping.w_avg, 0.5 * (w1 - G.mapping.w_avg), atol=1e-6)


def test_style_mix_grid_layout():
    fam = _randomised(_model())
    seeds = [3, 5, 7]
    grid = fam.style_mix(seeds, seeds, truncation=0.7)
    assert grid.shape == (16, 1, 16, 16) and grid.min() >= 0 and grid.max() <= 1
    assert torch.equal(grid[0], torch.ones(1, 16, 16))
    cells = grid.reshape(4, 4, 1, 16, 16)
    for i, s in enumerate(seeds):
        plain = fam.sample(1, seed=s, truncation=0.7)[0]
        assert torch.allclose(cells[0, i + 1], plain, atol=1e-6)  # column sources
        assert torch.allclose(cells[i + 1, 0], plain, atol=1e-6)  # row sources
        assert torch.allclose(cells[i + 1, i + 1], plain, atol=1e-6)  # diagonal
    assert not torch.allclose(cells[1, 2], cells[1, 0]) and not torch.allclose(
        cells[1, 2], cells[0, 2]
    )
    # crossover = all layers: every cell is its row source; 0: its column source
    all_row = fam.style_mix([1, 2], [4], crossover=fam.networks["G_ema"].num_ws).reshape(
        3, 2, 1, 16, 16
    )
    assert torch.allclose(all_row[1:, 1], all_row[1:, 0], atol=1e-6)
    all_col = fam.style_mix([1, 2], [4], crossover=0).reshape(3, 2, 1, 16, 16)
    assert torch.allclose(all_col[1, 1], all_col[0, 1], atol=1e-6)
    assert fam.style_mix([1], [2, 3, 4, 5]).shape == (10, 1, 16, 16)
    with pytest.raises(UserError, match="crossover"):
        fam.style_mix([1], [2], crossover=99)


# ---- through the engine and the CLI ----------------------------------------------------------


def _state(run) -> dict[str, torch.Tensor]:
    t, _ = ck.load_checkpoint(ck.resolve_checkpoint(run))
    return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}


def test_resume_is_bit_identical(tmp_path):
    extra = ["model.diffaugment=color,translation,cutout"]

    def cfg(steps: int):
        return build_config("stylegan", overrides=TINY_RUN + extra + [f"train.steps={steps}"])

    full = train(cfg(6), tmp_path / "a", progress=False)  # 40 images, 8 a batch: crosses epochs
    half = train(cfg(3), tmp_path / "b", progress=False)
    resumed = train(cfg(6), resume=half, progress=False)
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys()
    assert "net/G/mapping.w_avg" in a and "net/G_ema/mapping.w_avg" in a
    assert a["net/G_ema/mapping.w_avg"].abs().sum() > 0
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_sample_truncation_and_style_mix(tmp_path, capsys):
    sets = [a for t in TINY_RUN for a in ("--set", t)]
    rc = main(["train", "stylegan", "--steps", "2", "--out", str(tmp_path), "--quiet", *sets])
    assert rc == 0
    run = next(tmp_path.iterdir())
    model = pixelsmith.load(str(run))
    assert model.name == "stylegan"
    out = tmp_path / "t.png"
    assert main(["sample", str(run), "-n", "4", "--truncation", "0", "-o", str(out)]) == 0
    img = load_image(out, channels=3)
    tile = img[..., 2:18, 2:18]
    assert torch.equal(img[..., 2:18, 20:36], tile)  # psi = 0: every image the same
    grid = tmp_path / "mix.png"
    argv = ["sample", str(run), "--style-mix", "2,3", "--seed", "5", "-o", str(grid)]
    assert main([*argv, "--truncation", "0.5"]) == 0
    g = load_image(grid, channels=3)
    assert g.shape == (1, 3, 3 * 18 + 2, 4 * 18 + 2)
    expect = model.style_mix([5, 6], [7, 8, 9], truncation=0.5)
    assert torch.allclose(g[0, :, 20:36, 20:36], expect[5].expand(3, -1, -1), atol=1 / 255)
    capsys.readouterr()
    assert main(["sample", str(run), "--style-mix", "2x3", "-o", str(grid)]) == 2
    assert "ROWS,COLS" in capsys.readouterr().err


def test_truncation_and_style_mix_refused_by_families_without_them(tmp_path, capsys, tiny):
    sets = [a for t in tiny for a in ("--set", t)]
    assert main(["train", "dcgan", "--steps", "1", "--out", str(tmp_path), "--quiet", *sets]) == 0
    run = str(next(tmp_path.iterdir()))
    capsys.readouterr()
    out = str(tmp_path / "x.png")
    assert main(["sample", run, "--truncation", "0.7", "-o", out]) == 2
    err = capsys.readouterr().err
    assert "truncation" in err and "gan" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert main(["sample", run, "--style-mix", "2,2", "-o", out]) == 2
    err = capsys.readouterr().err
    assert "style" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(UserError, match="truncation"):
        sample_to(pixelsmith.load(run), 2, 0, out, truncation=0.5)
    assert main(["sample", run, "-n", "2", "-o", out]) == 0  # without the options it still works
