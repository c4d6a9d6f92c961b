"""The invisible watermark: it reads back after real handling, its p-value holds on unmarked
photos, and bad keys, messages and images are refused in one line."""

from __future__ import annotations

import io
import json
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import binom

from pixelsmith.cli.main import main
from pixelsmith.data.photos import holdout_photos
from pixelsmith.errors import UserError
from pixelsmith.metrics.image import psnr
from pixelsmith.provenance import watermark as wm
from pixelsmith.provenance.keys import (
    WatermarkKey,
    load_key,
    new_key,
    parse_message,
    save_key,
)


def _key(seed: int = 0, message_bits: int = 32) -> WatermarkKey:
    return WatermarkKey(np.random.default_rng(seed).bytes(32), message_bits=message_bits)


def _tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255


def _image(x: torch.Tensor) -> Image.Image:
    return Image.fromarray((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.open(holdout_photos(("coffee",))["coffee"]).convert("RGB")


@pytest.fixture(scope="module")
def marked(coffee: Image.Image) -> Image.Image:
    return _image(wm.embed(_tensor(coffee), _key(), b"hi!"))


def test_binomial_tail_matches_scipy():
    for n in (8, 64):
        for k in range(n + 1):
            assert wm.binomial_tail(k, n) == pytest.approx(binom.sf(k - 1, n, 0.5), rel=1e-9)
    need = wm.matches_needed(64, 1e-6)
    assert wm.binomial_tail(need, 64) <= 1e-6 < wm.binomial_tail(need - 1, 64)


def test_marks_read_back_with_the_message_at_the_psnr(coffee, marked):
    d = wm.detect(_tensor(marked), _key(), expect=b"hi!")
    assert d.detected and d.p_value < 1e-12
    assert d.message_text == "hi!" and d.message_bit_accuracy == 1.0
    quality = float(psnr(_tensor(coffee)[None], _tensor(marked)[None])[0])
    assert 40.0 <= quality <= 41.5  # 40.5 dB asked, then rounded to 8 bits


def _jpeg(im: Image.Image, q: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=q)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


@pytest.mark.parametrize(
    "handling",
    [
        lambda im: _jpeg(im, 75),
        lambda im: im.resize((im.width // 2, im.height // 2), Image.BICUBIC).resize(im.size),
        lambda im: im.crop((37, 51, 37 + 400, 51 + 300)),  # at an offset to the tile
        lambda im: Image.eval(im, lambda v: min(255, int(v * 1.3))),
    ],
    ids=["jpeg-75", "resize-half", "crop-offset", "brighter"],
)
def test_the_mark_survives_handling(marked, handling):
    d = wm.detect(_tensor(handling(marked)), _key())
    assert d.detected, d


def test_another_key_finds_nothing(marked):
    assert not wm.detect(_tensor(marked), _key(seed=1)).detected


def test_unmarked_photos_match_key_bits_like_coin_flips():
    # The p-value's promise: on images without the mark, the matching key bits are
    # Binomial(64, 1/2), whatever the photo. 4 keys x 12 photos x 2 crops.
    photos = [_tensor(Image.open(p).convert("RGB")) for p in holdout_photos().values()]
    matched = []
    for k in range(4):
        for x in photos:
            for crop in (x[:, :256, :256], x[:, -200:, 40:]):
                matched.append(wm.detect(crop, _key(seed=100 + k)).matched)
    matched = np.array(matched)
    assert abs(matched.mean() - 32) < 2.0  # the mean of 96 draws: standard error 0.41
    assert 2.0 < matched.std() < 6.5  # a binomial's is 4
    assert (matched >= wm.matches_needed(64, 1e-3)).sum() <= 2


def test_grey_and_rgba_images_keep_their_channels(coffee):
    grey = _tensor(coffee.convert("L"))[:1]
    out = wm.embed(grey, _key())
    assert out.shape == grey.shape and wm.detect(out, _key()).detected
    rgba = torch.cat([_tensor(coffee), torch.rand(1, coffee.height, coffee.width)])
    out = wm.embed(rgba, _key())
    assert torch.equal(out[3], rgba[3]) and wm.detect(out, _key()).detected


def test_refusals():
    with pytest.raises(UserError, match="too small to mark"):
        wm.embed(torch.rand(3, 100, 300), _key())
    with pytest.raises(UserError, match="too small"):
        wm.detect(torch.rand(3, 50, 300), _key())
    with pytest.raises(UserError, match="needs 40 bits; this key carries 32"):
        parse_message("hello", _key())
    with pytest.raises(UserError, match="not hexadecimal"):
        parse_message("0xzz", _key())
    assert parse_message("0xCAFE", _key()) == b"\xca\xfe"
    with pytest.raises(UserError, match="PSNR"):
        wm.embed(torch.rand(3, 128, 128), _key(), psnr=70)
    with pytest.raises(UserError, match="multiple of 8"):
        new_key(12)


def test_key_files(tmp_path):
    key = new_key(64)
    path = save_key(key, tmp_path / "k.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path) == key
    with pytest.raises(UserError, match="exists"):
        save_key(key, path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "pixelsmith-credentials"}))
    with pytest.raises(UserError, match="not a watermark key"):
        load_key(other)
    d = json.loads(path.read_text())
    d["key_id"] = "0" * 16
    other.write_text(json.dumps(d))
    with pytest.raises(UserError, match="key_id does not match"):
        load_key(other)
    (tmp_path / "img.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match="not a watermark key"):
        load_key(tmp_path / "img.png")
    with pytest.raises(UserError, match="keys new watermark"):
        load_key(tmp_path / "missing.json")


def test_cli_embeds_and_detects_a_folder(tmp_path, coffee, capsys):
    assert main(["keys", "new", "watermark", "-o", str(tmp_path / "new.json")]) == 0
    assert load_key(tmp_path / "new.json").message_bits == 32
    key = save_key(_key(), tmp_path / "k.json")  # a fixed key: the run does not hang on a draw
    src = tmp_path / "in"
    src.mkdir()
    coffee.save(src / "a.jpg", quality=95)
    coffee.crop((0, 0, 450, 300)).save(src / "b.png")
    (src / "broken.png").write_bytes(b"not an image")
    assert main(["mark", "embed", str(src), "-o", str(tmp_path / "out"), "--key", str(key),
                 "--message", "0xbeef", "--quiet"]) == 0  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.png"]
    capsys.readouterr()
    assert main(["mark", "detect", str(tmp_path / "out"), "--key", str(key), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["detected"] for r in rows] == [True, True]
    assert {r["message_hex"] for r in rows} == {"beef0000"}
    assert main(["mark", "detect", str(src / "a.jpg"), "--key", str(key)]) == 0
    assert "no mark" in capsys.readouterr().out
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (60, 60)).save(tiny)
    assert main(["mark", "embed", str(tiny), "-o", str(tmp_path / "t.png"), "--key", str(key)]) == 2
    assert "too small to mark" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()
