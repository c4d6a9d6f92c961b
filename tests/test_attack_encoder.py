"""The attack on inversion's start (issue 19): it moves the encoder's code far more than a random
change of the same budget, stays in the budget, is the identity at eps 0, works on the VAE's exact
encoder, and runs from the CLI with one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_stylegan, make_vae
from PIL import Image

from pixelsmith.edit.latent.encoder import encoder_for
from pixelsmith.edit.latent.space import latent_space
from pixelsmith.robust.latent import attack_encoder

ENCODER_STEPS = 100


@pytest.fixture(scope="module", autouse=True)
def _cache(isolated_cache: Path) -> Path:
    """Encoders are cached in a folder of this module's own, not the user's cache."""
    return isolated_cache


@pytest.fixture(scope="module")
def space():
    fam = make_stylegan((1, 16, 16)).eval()
    G = fam.networks["G"]
    z = torch.randn(4096, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mapping(z).mean(0))
    lat = latent_space(fam, "w+")
    encoder_for(lat, ENCODER_STEPS)
    return lat


def _images(space, n: int = 4) -> torch.Tensor:
    return space.images(space.random(n, seed=5)).clamp(0, 1)


def test_the_attack_moves_the_start_more_than_a_random_change_and_keeps_its_budget(space):
    x, eps = _images(space), 8 / 255
    a = attack_encoder(space, x, eps, 20, encoder_steps=ENCODER_STEPS)
    assert a.images.shape == x.shape
    assert (a.images - x).abs().max() <= eps + 1e-6
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert (a.shift > 2 * a.shift_random).all(), (a.shift, a.shift_random)
    rows = a.rows()
    assert len(rows) == 4 and rows[0]["code_shift"] > rows[0]["code_shift_random"]


def test_eps_zero_is_the_identity(space):
    x = _images(space, 2)
    a = attack_encoder(space, x[0], 0, 5, encoder_steps=ENCODER_STEPS)
    assert a.images.shape == x[0].shape and torch.equal(a.images, x[0])
    assert float(a.shift[0]) == 0 and torch.equal(a.start_psnr, a.start_psnr_attacked)


def test_the_vaes_exact_encoder_is_attacked():
    fam = make_vae((1, 16, 16)).eval()
    lat = latent_space(fam)
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    a = attack_encoder(lat, x, 8 / 255, 20)
    assert (a.shift > 2 * a.shift_random).all(), (a.shift, a.shift_random)


def test_cli_attacks_a_generators_encoder_and_refuses_in_one_line(tmp_path, capsys):
    from pixelsmith.cli.main import main

    src = tmp_path / "in"
    src.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        arr = (torch.rand(28, 28, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(arr, "L").save(src / f"im{i}.png")
    out = tmp_path / "out"
    argv = ["attack", "zoo:fmnist-gan", str(src), "-o", str(out), "--steps", "5",
            "--encoder-steps", "100", "--json", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["out"]).name for r in rows] == ["im0.png", "im1.png"]
    for r in rows:
        adv = torch.from_numpy(np.array(Image.open(r["out"]))).float()
        clean = torch.from_numpy(np.array(Image.open(r["file"]))).float()
        assert (adv - clean).abs().max() <= 8 + 0.5  # 8/255, rounded to 8 bits
        assert r["code_shift"] > r["code_shift_random"]
    x = str(tmp_path / "x.png")
    for bad, message in [
        (["zoo:fmnist-gan", "--data", "fashion-mnist", "-o", x], "give an IMAGE or FOLDER"),
        (["zoo:fmnist-gan", str(src / "im0.png"), "--label", "3", "-o", x], "takes no --label"),
        (["zoo:fmnist-gan", str(src / "im0.png"), "--attack", "cw", "-o", x], "pgd under linf"),
        (["fmnist", str(src / "im0.png"), "--space", "w", "-o", x], "are for generators"),
    ]:
        assert main(["attack", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err, err
    assert not (tmp_path / "x.png").exists()
