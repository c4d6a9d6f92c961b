"""Robustness evaluation: the worst case per image never exceeds clean accuracy and falls with the
budget; a defence that masks its gradient is flagged; BPDA beats the naive attack on a
JPEG-defended model; the card says what was run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixelsmith.errors import UserError
from pixelsmith.robust import defences as d
from pixelsmith.robust.evaluate import Attack, evaluate, standard_suite
from pixelsmith.robust.models import classifier

datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits():
    """scikit-learn's 8x8 digits in [0, 1], a small MLP trained on 1,500 of them (seconds), and
    the other 297 to evaluate on."""
    x, y = datasets.load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16
    y = torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for m in model:
            if isinstance(m, nn.Linear):
                m.reset_parameters()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(500):
        i = torch.randint(0, 1500, (128,), generator=g)
        loss = F.cross_entropy(model(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, x[1500:], y[1500:]


def _quick(norm: str = "linf") -> list[Attack]:
    return standard_suite(norm, steps=20, targets=3, queries=300)


def test_worst_case_accuracy_is_below_clean_and_falls_with_the_budget(digits):
    model, x, y = digits
    ev = evaluate(model, x, y, [0.3, 0.02, 0.1], suite=_quick(), card={"data": "digits"})
    assert [r.eps for r in ev.rows] == [0.02, 0.1, 0.3]
    clean = ev.rows[0].clean
    assert clean > 0.8  # the model learned the digits (chance is 0.1)
    robust = [r.robust for r in ev.rows]
    assert all(r <= clean for r in robust) and robust == sorted(robust, reverse=True)
    assert robust[-1] < 0.2 < clean  # an undefended model falls at a large budget
    for r in ev.rows:  # each attack only adds to what the ones before broke
        after = list(r.after.values())
        assert after == sorted(after, reverse=True) and after[-1] == r.robust
    assert ev.warnings == [], ev.warnings  # an honest model raises no masking warning
    card = ev.card
    assert card["n"] == len(x) and card["data"] == "digits" and card["norm"] == "linf"
    assert [a["name"] for a in card["attacks"]] == ["apgd-ce", "apgd-t", "square"]
    assert "WARNING" not in ev.table() and "0.0200" not in ev.table().split("\n")[0]


def test_a_defence_that_masks_its_gradient_is_flagged(digits):
    model, x, y = digits
    masked = d.Defended(model, d.bit_depth(3))  # rounding: zero gradient everywhere
    ev = evaluate(masked, x[:120], y[:120], [0.1], suite=_quick())
    assert ev.warnings, "a zero-gradient defence went unflagged"
    text = " ".join(ev.warnings)
    assert "gradient is zero" in text
    assert ev.table().startswith("WARNING (gradient masking?)")


def test_bpda_beats_the_naive_attack_on_a_jpeg_defended_model(digits):
    from pixelsmith.nn.attacks import pgd

    model, x, y = digits
    x, y = x[:150], y[:150]
    naive = d.Defended(model, d.jpeg(75))
    bpda = d.Defended(model, d.jpeg(75), bpda=True)

    def accuracy(attacked: nn.Module) -> float:
        adv = pgd(attacked, x, y, 0.15, steps=20, seed=0)
        with torch.no_grad():  # both judged by the same defended model
            return float((naive(adv).argmax(1) == y).float().mean())

    a_naive, a_bpda = accuracy(naive), accuracy(bpda)
    assert a_bpda < a_naive - 0.2, (a_naive, a_bpda)


def test_bad_input_is_refused_in_one_sentence(digits):
    model, x, y = digits
    for kwargs, message in [
        ({"eps": [-0.1]}, "positive"),
        ({"eps": [2.0]}, "at most 1"),
        ({"eps": [0.1], "norm": "l3"}, "unknown norm"),
    ]:
        with pytest.raises(UserError, match=message):
            evaluate(model, x[:4], y[:4], **kwargs)
    with pytest.raises(UserError, match="logits"):
        evaluate(nn.Identity(), x[:4], y[:4], [0.1])  # images, not (N, K) logits
    assert classifier(model).sha256 == classifier(model).sha256  # a stable hash for the card


@pytest.mark.zoo
@pytest.mark.fashion_mnist
def test_cli_attacks_files_and_a_test_split_and_refuses_in_one_line(tmp_path, capsys):
    import json

    from PIL import Image

    from pixelsmith.cli.main import main

    out = tmp_path / "adv"
    assert main(["attack", "fmnist", "--data", "fashion-mnist", "--n", "20", "--eps", "0.1",
                 "--steps", "10", "-o", str(out), "--quiet"]) == 0  # fmt: skip
    assert "20 misclassified" in capsys.readouterr().out  # undefended: PGD-10 at 0.1 breaks all
    assert len(list(out.glob("*.png"))) == 20
    Image.open(out / "00000.png").convert("RGB").save(tmp_path / "shirt.jpg")
    argv = ["attack", "fmnist", str(tmp_path / "shirt.jpg"), "--attack", "fgsm", "--eps", "8/255"]
    assert main([*argv, "-o", str(tmp_path / "one.png"), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["linf"] <= 8 / 255 + 1e-6 and Image.open(tmp_path / "one.png").size == (28, 28)
    shirt, x = str(tmp_path / "shirt.jpg"), str(tmp_path / "x.png")
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    quick = ["data.source=shapes", "data.limit=16", "train.batch=8", "train.steps=1",
             "train.grid_size=2", "train.eval_at_end=false", "train.threads=1"]  # fmt: skip
    pixelcnn = str(
        train(build_config("pixelcnn", overrides=quick), tmp_path / "runs", progress=False)
    )
    capsys.readouterr()
    for bad, message in [
        ([pixelcnn, shirt, "-o", x], "not a classifier"),
        (["fmnist", shirt, "--eps", "2", "-o", x], "at most 1"),
        (["fmnist", "--eps", "0.1", "-o", str(tmp_path / "x")], "IMAGE or FOLDER"),
        (["fmnist", shirt, "--attack", "magic", "-o", x], "unknown attack"),
    ]:
        assert main(["attack", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.fashion_mnist
def test_cli_certifies_with_tiny_noise_as_the_clean_accuracy_and_refuses_bad_radii(capsys):
    import json

    from pixelsmith.cli.main import main

    argv = ["robust", "certify", "fmnist", "--n", "20", "--sigma", "0.01", "--samples", "100"]
    assert main([*argv, "--radii", "0,0.01,1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    acc = out["certified_accuracy"]
    # at sigma 0.01 the smoothed model is the model: about its clean accuracy (0.94) at radius 0,
    # and no L2 radius above 0.01 * Phi^-1(0.001 ** (1/100)) = 0.015 is certified from 100 draws
    assert acc["0.0"] >= 0.8 and out["abstain"] <= 0.1 and acc["1.0"] == 0
    assert acc["0.0"] >= acc["0.01"] >= acc["1.0"]
    assert main([*argv, "--radii", "-1"]) == 2
    assert "radii" in capsys.readouterr().err
