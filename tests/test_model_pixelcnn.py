"""Gated PixelCNN: causality by autograd, fast = naive sampler, exact NLL, training, colour images
with the default width, resume, CLI. The shared discretised logistic: test_likelihood.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import pixelsmith
from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.models.base import Batch, StepContext
from pixelsmith.models.pixelcnn import (
    PixelCNN,
    PixelCNNConfig,
    _sample_fast,
    _sample_naive,
    level_log_probs,
    log_prob,
)
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import train
from pixelsmith.utils import checkpoint_file as ckf
from pixelsmith.utils.rng import BatchRandom

TINY = [
    "data.source=shapes",
    "data.limit=24",
    "data.size=8",
    "data.channels=1",
    "train.batch=8",
    "model.channels=8",
    "model.layers=2",
    "model.kernel=3",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.grid_size=2",
]


def _family(shape=(1, 8, 8), classes=0, seed=0, **cfg) -> PixelCNN:
    torch.manual_seed(seed)
    return PixelCNN(PixelCNNConfig(**{"channels": 12, "layers": 4, **cfg}), shape, classes)


def _step(fam: PixelCNN, images: torch.Tensor, rng: BatchRandom, i: int, labels=None):
    batch = Batch(images, labels)
    return fam.train_step(batch, StepContext(rng, i, lambda: batch, lambda net: None))


def _raster_before(shape: tuple[int, int, int], ch: int, r: int, c: int) -> torch.Tensor:
    """True at every (channel, row, column) that comes before (ch, r, c) in sampling order."""
    C, H, W = shape
    rows, cols, chans = torch.meshgrid(
        torch.arange(H), torch.arange(W), torch.arange(C), indexing="ij"
    )
    order = (rows * W + cols) * C + chans  # (H, W, C)
    return (order < (r * W + c) * C + ch).permute(2, 0, 1)


def _influence(fam: PixelCNN, x: torch.Tensor, y, ch: int, r: int, c: int) -> torch.Tensor:
    """Which inputs change the output parameters of sub-pixel (ch, r, c), by autograd."""
    x = x.clone().requires_grad_(True)
    out = fam.networks["net"](x, y)[:, ch, :, r, c]
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(r * 97 + c))
    (grad,) = torch.autograd.grad((out * weights).sum(), x)
    return grad.abs().sum(0) != 0


@pytest.mark.parametrize(
    "shape,kw,classes",
    [
        ((1, 8, 8), {}, 0),
        ((3, 6, 6), {"output": "logistic", "conditional": True}, 3),
        ((3, 6, 6), {"channels": None}, 0),  # RGB at the default width, 33 = 3 groups of 11
        ((4, 5, 5), {"channels": None}, 0),  # RGBA at the default width, 32 = 4 groups of 8
    ],
)
def test_receptive_field_is_exactly_the_past(shape, kw, classes):
    # 4 layers of k=5 reach 8 rows up and 8 columns either side: the whole past of these images,
    # so every earlier sub-pixel must matter (no blind spot) and nothing later may.
    fam = _family(shape, classes, **{"channels": 6 * shape[0], "kernel": 5, **kw})
    x = torch.rand(2, *shape) * 2 - 1
    y = torch.tensor([0, 2]) if classes else None
    for r in range(shape[1]):
        for c in range(shape[2]):
            for ch in range(shape[0]):
                seen = _influence(fam, x, y, ch, r, c)
                assert torch.equal(seen, _raster_before(shape, ch, r, c)), (ch, r, c)


def test_causal_with_no_blind_spot_where_the_field_is_partial():
    shape = (1, 7, 12)
    fam = _family(shape, layers=2, kernel=3)
    x = torch.rand(3, *shape) * 2 - 1
    H, W = shape[1:]
    for r, c in [
        (0, 0),
        (0, 5),
        (0, W - 1),
        (1, 0),
        (3, W - 1),
        (4, 6),
        (H - 1, 0),
        (H - 1, W - 1),
    ]:
        seen = _influence(fam, x, None, 0, r, c)[0]
        assert not (seen & ~_raster_before(shape, 0, r, c)[0]).any(), (r, c)
        if c > 0:
            assert seen[r, c - 1], (r, c)
        if r > 0:
            assert seen[r - 1, c], (r, c)
            # the classic blind spot of plain masked convolutions: up and to the right
            if c + 1 < W:
                assert seen[r - 1, c + 1], (r, c)


@pytest.mark.parametrize(
    "shape,kw,classes",
    [((1, 6, 5), {}, 0), ((3, 4, 5), {"output": "logistic", "conditional": True}, 3)],
)
def test_fast_sampler_equals_naive_sampler(shape, kw, classes):
    fam = _family(shape, classes, channels=6 * shape[0], layers=3, **kw)
    # float64: the two paths round differently (~1e-16), so a draw could only differ where a
    # uniform falls within ~1e-15 of a CDF step; comparing the drawn levels exactly is then safe
    # on any CPU (the levels are integers, not rounded floats)
    fam.networks["net"].double()
    labels = torch.tensor([2, 0, 1]) if classes else None
    fast = fam._sample(3, 5, labels, _sample_fast)
    naive = fam._sample(3, 5, labels, _sample_naive)
    assert torch.equal(fast, naive)
    assert fast.std() > 0.05  # a real draw, not a constant


def test_mixture_levels_form_a_distribution_matching_the_loss():
    # (the mixture against scipy: test_likelihood.py) the loss's log_prob at the data levels is
    # the sampler's level_log_probs at those levels, for end bins too
    torch.manual_seed(0)
    params = torch.randn(40, 15) * torch.tensor([1.0] * 5 + [0.8] * 5 + [2.0] * 5)
    logp = level_log_probs(params, "logistic")
    assert torch.allclose(logp.exp().sum(1), torch.ones(40), atol=1e-5)
    levels = torch.randint(0, 256, (40,))
    levels[:4] = torch.tensor([0, 255, 1, 254])
    at = log_prob(params.view(40, 1, 15, 1, 1), levels.view(40, 1, 1, 1), "logistic")
    assert torch.allclose(at.flatten(), logp.gather(1, levels[:, None]).flatten(), atol=1e-5)
    # softmax: log_prob is log_softmax at the level
    logits = torch.randn(40, 256)
    at = log_prob(logits.view(40, 1, 256, 1, 1), levels.view(40, 1, 1, 1), "softmax").flatten()
    ref = logits.double().log_softmax(1).gather(1, levels[:, None]).flatten()
    assert torch.allclose(at.double(), ref, atol=1e-5)


@pytest.mark.parametrize("output", ["softmax", "logistic"])
def test_nll_of_a_flat_head_is_an_independent_code_length(output):
    # with the last layer's weights zeroed the output is its bias for every pixel: a uniform
    # softmax (zero bias: exactly 8 bits/dim), or the logistic mixture the initial bias spreads
    fam = _family((1, 8, 8), output=output)
    head = fam.networks["net"].head2
    with torch.no_grad():
        head.weight.zero_()
        if output == "softmax":
            head.bias.zero_()
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    images[0, 0, :2] = torch.tensor([0, 255])[:, None]
    res = fam.nll(images)
    if output == "softmax":
        want = 64 * math.log(256)
    else:
        from scipy.special import logsumexp
        from scipy.stats import logistic

        logits, means, log_scales = head.bias.detach().double().view(3, -1).numpy()
        u = images.double().numpy().reshape(-1, 1)
        x = u * 2 / 255 - 1
        s = np.exp(np.clip(log_scales, -7, 5))
        up = np.where(u == 255, 1.0, logistic.cdf(x + 1 / 255, means, s))
        lo = np.where(u == 0, 0.0, logistic.cdf(x - 1 / 255, means, s))
        logp = logsumexp(np.log(up - lo) + logits - logsumexp(logits), axis=1)
        want = -logp.sum() / len(images)
    assert res["nats"] == pytest.approx(want, rel=1e-6)
    assert res["bits_per_dim"] == pytest.approx(want * np.log2(np.e) / 64, rel=1e-6)


@pytest.mark.parametrize("output", ["softmax", "logistic"])
def test_nll_near_8_bits_untrained_and_training_lowers_it(output):
    fam = _family((1, 8, 8), output=output)
    fam.configure_optimizers()
    noise = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    res = fam.nll(noise, batch=24)
    assert res["n"] == 64
    assert res["bits_per_dim"] == pytest.approx(res["nats"] * np.log2(np.e) / 64, rel=1e-9)
    # uniform noise costs 8 bits/dim plus KL(uniform || model): an untrained softmax sits 0.015-
    # 0.044 bits above, the logistic mixture 0.13-0.29 above (init seeds 0-9)
    assert 8 - 0.02 < res["bits_per_dim"] < 8 + (0.1 if output == "softmax" else 0.5)
    # batches of 24 and one of 64: other kernels, equal up to float32 rounding
    assert fam.nll(noise, batch=64)["nats"] == pytest.approx(res["nats"], rel=1e-5)
    g = torch.Generator().manual_seed(1)
    batch = (torch.rand(16, 1, 8, 8, generator=g) > 0.6).to(torch.uint8) * 200 + 20
    before = fam.nll(batch)["bits_per_dim"]
    rng = BatchRandom(0)
    real = batch.float() / 255
    losses = [_step(fam, real, rng, i)["bpd"] for i in range(30)]
    assert losses[0] == pytest.approx(before, rel=1e-4)  # the loss is the same exact NLL
    # 30 steps lower it by 1.1-5.0 bits/dim (softmax) and 1.1-3.3 (logistic) over init seeds
    # 0-9: a fall of 0.5 leaves twice the smallest seed-to-seed spread as slack
    assert losses[-1] < losses[0] - 0.5
    assert fam.nll(batch)["bits_per_dim"] < before - 0.5


def test_samples_shape_range_and_seeds():
    fam = _family((3, 5, 4), channels=12, layers=2)
    x = fam.sample(3, seed=1)
    assert x.shape == (3, 3, 5, 4) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x * 255, (x * 255).round())
    assert torch.equal(x, fam.sample(3, seed=1)) and not torch.equal(x, fam.sample(3, seed=2))
    assert fam.sample(0).shape == (0, 3, 5, 4)
    with pytest.raises(UserError, match="unconditional"):
        fam.sample(2, labels=(0,))
    # An unconditional model lists no options: labels mean nothing to it.
    with pytest.raises(UserError, match=r"no sampling option 'steps'; its options: none"):
        fam.sample(2, steps=3)


def test_conditional_samples_per_label():
    fam = _family((1, 6, 6), classes=4, conditional=True, layers=2)
    assert fam.classes == 4 and fam.SampleConfig().labels is None
    x = fam.sample(4, seed=0, labels=(0, 1, 2, 3))
    assert x.shape == (4, 1, 6, 6)
    assert torch.equal(fam.sample(4, seed=0), x)  # default labels cycle 0, 1, 2, 3
    # one value: every image of that class; a shorter tuple is cycled
    assert torch.equal(fam.sample(2, seed=3, labels=(2,)), fam.sample(2, seed=3, labels=(2, 2)))
    assert torch.equal(
        fam.sample(5, seed=3, labels=(1, 3)), fam.sample(5, seed=3, labels=(1, 3, 1, 3, 1))
    )
    same = [fam.sample(2, seed=3, labels=(k,)) for k in range(4)]
    assert all(not torch.equal(same[0], s) for s in same[1:])
    # the likelihood depends on the labels too
    levels = (x * 255).round().to(torch.uint8)
    a = fam.nll(levels, labels=torch.tensor([0, 1, 2, 3]))["nats"]
    assert abs(a - fam.nll(levels, labels=torch.tensor([3, 2, 1, 0]))["nats"]) > 1e-3
    with pytest.raises(UserError, match="label 4"):
        fam.sample(2, labels=(0, 4))
    with pytest.raises(UserError, match="labels"):
        fam.nll(torch.zeros(2, 1, 6, 6, dtype=torch.uint8))


# ---- colour images with the default width ---------------------------------------------------


@pytest.mark.parametrize("shape,width", [((3, 8, 8), 33), ((4, 8, 8), 32), ((1, 8, 8), 32)])
def test_default_width_builds_and_trains_on_colour_images(shape, width):
    cfg = PixelCNNConfig()
    assert cfg.channels is None and cfg.width(shape[0]) == width
    torch.manual_seed(0)
    fam = PixelCNN(cfg, shape)
    fam.configure_optimizers()
    assert fam.networks["net"].hidden == width
    images = torch.randint(0, 256, (4, *shape), generator=torch.Generator().manual_seed(0))
    images = images.to(torch.uint8)
    before = fam.nll(images)
    params = [p.detach().clone() for p in fam.networks["net"].parameters()]
    logs = _step(fam, images.float() / 255, BatchRandom(0), 0)
    # the step's loss is the exact NLL of the batch in bits/dim, near 8 for uniform noise
    assert logs["bpd"] == pytest.approx(before["bits_per_dim"], rel=1e-4)
    assert 7.9 < logs["bpd"] < 8.3
    after = fam.networks["net"].parameters()
    moved = [(p - q).abs().max().item() for p, q in zip(after, params, strict=True)]
    assert min(moved) > 0  # every parameter took a step
    x = fam.sample(2, seed=0)
    assert x.shape == (2, *shape) and torch.equal(x * 255, (x * 255).round())


def test_user_errors():
    # an explicit width must split into equal colour groups, and the message names the fix
    with pytest.raises(UserError, match=r"model\.channels=32 .*3 channels.*model\.channels=33"):
        PixelCNN(PixelCNNConfig(channels=32), (3, 8, 8))
    with pytest.raises(UserError, match=r"model\.channels=12"):
        PixelCNN(PixelCNNConfig(channels=10), (3, 8, 8))
    with pytest.raises(UserError, match="labelled"):
        PixelCNN(PixelCNNConfig(conditional=True), (1, 8, 8), 0)
    with pytest.raises(UserError, match="odd"):
        PixelCNNConfig(kernel=4)
    with pytest.raises(UserError, match="softmax"):
        PixelCNNConfig(output="gauss")
    with pytest.raises(UserError, match="model.channels"):
        PixelCNNConfig(channels=0)
    with pytest.raises(UserError, match=r"65x65.*data\.size"):
        PixelCNN(PixelCNNConfig(), (1, 65, 65))
    fam = _family((1, 4, 4), layers=1)
    with pytest.raises(UserError, match="uint8"):
        fam.nll(torch.rand(2, 1, 4, 4))
    big = build_config("pixelcnn-30min")
    assert big.model.layers > PixelCNNConfig().layers and big.model.channels is None


def _state(run) -> dict[str, torch.Tensor]:
    t, _ = ckf.load_checkpoint(ckf.resolve_checkpoint(run))
    return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}


def test_resume_is_bit_identical(tmp_path):
    # the same computation twice in one process: bit-exact is the claim
    def cfg(steps):
        return build_config("pixelcnn", overrides=TINY + [f"train.steps={steps}"])

    full = train(cfg(8), tmp_path / "a", progress=False)
    half = train(cfg(4), tmp_path / "b", progress=False)
    resumed = train(cfg(8), resume=half, progress=False)
    a, b = _state(full), _state(resumed)
    assert a.keys() == b.keys() and any(k.startswith("net/net_ema/") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_train_then_load_sample_and_nll(tmp_path):
    sets = [a for t in TINY + ["model.conditional=true", "data.channels=3"] for a in ("--set", t)]
    sets += ["--set", "model.channels=9"]
    assert (
        main(["train", "pixelcnn", "--out", str(tmp_path), "--steps", "3", "--quiet", *sets]) == 0
    )
    run = next(tmp_path.iterdir())
    model = pixelsmith.load(str(run))
    assert model.classes == 5 and model.image_shape == (3, 8, 8)
    assert model.networks["net"].hidden == 9 and "net_ema" in model.networks
    x = model.sample(3, seed=4, labels=(0, 1, 4))
    assert x.shape == (3, 3, 8, 8)
    assert torch.equal(x, model.sample(3, seed=4, labels=torch.tensor([0, 1, 4])))
    levels = (x * 255).round().to(torch.uint8)
    res = model.nll(levels, labels=torch.tensor([0, 1, 4]))
    assert res["n"] == 3
    assert res["bits_per_dim"] == pytest.approx(res["nats"] * np.log2(np.e) / 192, rel=1e-9)
    # the exact NLL is the loss the network minimises: recomputed from its own outputs
    with torch.no_grad(), model.inference("net") as net:
        lv = levels.float()
        logp = log_prob(net(lv / 127.5 - 1, torch.tensor([0, 1, 4])), lv, "softmax")
    assert res["nats"] == pytest.approx(-logp.double().sum().item() / 3, rel=1e-5)
    # per image, in batches of one: the mean of the three (a tolerance: other batch shapes)
    one = [
        model.nll(levels[i : i + 1], labels=torch.tensor([k]))["nats"]
        for i, k in enumerate([0, 1, 4])
    ]
    assert res["nats"] == pytest.approx(sum(one) / 3, rel=1e-5)


def test_eval_cli_scores_nll_on_the_labelled_test_split(tmp_path, capsys):
    from pixelsmith.data.sources import load_images

    sets = [a for t in TINY + ["model.conditional=true"] for a in ("--set", t)]
    assert (
        main(["train", "pixelcnn", "--out", str(tmp_path), "--steps", "2", "--quiet", *sets]) == 0
    )
    run = next(tmp_path.iterdir())
    capsys.readouterr()
    assert main(["eval", str(run), "--metrics", "nll", "--reference-n", "10", "--json"]) == 0
    got = {d["card"]["metric"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(got) == {"nll/bits_per_dim", "nll/nats"}
    card = got["nll/bits_per_dim"]["card"]
    assert card["n"] == 10 and card["reference"] == "shapes:test" and card["params"]["exact"]
    test = load_images("shapes", "test", channels=1, size=8, limit=10)
    direct = pixelsmith.load(str(run)).nll(test.images, labels=test.labels)
    # the same images in the same batch as the eval command: equal to rounding
    assert got["nll/bits_per_dim"]["value"] == pytest.approx(direct["bits_per_dim"], rel=1e-9)
    assert got["nll/nats"]["value"] == pytest.approx(direct["nats"], rel=1e-9)
    assert main(["eval", str(run), "--metrics", "translation"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    stored = json.loads((run / "manifest.json").read_text())["scores"]
    assert {d["card"]["metric"] for d in stored} >= {"nll/bits_per_dim", "nll/nats"}
