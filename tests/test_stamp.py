"""Marks and credentials at the source: `pixelsmith sample` and `pixelsmith edit` with
--watermark and --credentials write images whose mark `mark detect` finds with the right message
and whose manifest c2pa's own reader validates (created by the model with its sha256, or edited
from the input as parent, the mark as soft binding); bad inputs are refused before any work."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_cyclegan, make_gan
from PIL import Image

pytest.importorskip("c2pa", reason="the provenance extra (c2pa-python) is not installed")

from pixelsmith import config as cfglib  # noqa: E402
from pixelsmith.cli.main import main  # noqa: E402
from pixelsmith.errors import UserError  # noqa: E402
from pixelsmith.jobs import edit_files  # noqa: E402
from pixelsmith.jobs import stamp as stamp_module  # noqa: E402
from pixelsmith.jobs.stamp import UNREADABLE, Stamp, open_stamp, too_small  # noqa: E402
from pixelsmith.provenance import watermark as wm  # noqa: E402
from pixelsmith.provenance.credentials import (  # noqa: E402
    TRAINED,
    Claim,
    init_credentials,
    load_signer,
    read_credentials,
    sign_file,
)
from pixelsmith.provenance.credentials_signer import ENV  # noqa: E402
from pixelsmith.provenance.keys import WatermarkKey, load_key, save_key  # noqa: E402
from pixelsmith.utils import checkpoint_file as ckf  # noqa: E402


@pytest.fixture
def creds(tmp_path, monkeypatch) -> Path:
    """A fresh local signer in the credentials directory the environment names."""
    monkeypatch.setenv(ENV, str(tmp_path / "creds"))
    return init_credentials()


@pytest.fixture
def key_file(tmp_path) -> Path:
    """A fixed key (32 message bits), so every run marks alike."""
    return save_key(WatermarkKey(np.random.default_rng(7).bytes(32)), tmp_path / "k.json")


def _checkpoint(model, path: Path) -> Path:
    """A model's networks as a checkpoint `load_model` reads (what a run or the zoo holds)."""
    tensors = {f"net/{n}/{k}": v for n, net in model.networks.items()
               for k, v in net.state_dict().items()}  # fmt: skip
    man = {"family": model.name, "config": {"model": cfglib.to_dict(model.cfg)},
           "image_shape": list(model.image_shape), "num_classes": model.num_classes}  # fmt: skip
    return ckf.save_checkpoint(path, tensors, man)


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    """A 128x128 RGB generator's checkpoint: its images are large enough to mark."""
    gan = make_gan((3, 128, 128), 0)
    gan.add_ema_copies()
    return _checkpoint(gan, tmp_path_factory.mktemp("gen") / "gen.safetensors")


def _detect(path: Path, key: Path, capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["mark", "detect", str(path), "--key", str(key), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return rows if isinstance(rows, list) else [rows]


def _photo(side: int = 256) -> np.ndarray:
    skimage = pytest.importorskip("skimage.data")
    return skimage.astronaut()[:side, :side].copy()


def test_sample_marks_and_signs_each_image_as_created_by_the_model(
    tmp_path, creds, key_file, generator, capsys
):
    folder = tmp_path / "images"
    argv = ["sample", str(generator), "-n", "2", "--seed", "3", "-o", str(folder)]
    assert main([*argv, "--watermark", str(key_file), "--message", "hi", "--credentials"]) == 0
    key = load_key(key_file)
    rows = _detect(folder, key_file, capsys)
    assert [r["detected"] for r in rows] == [True, True]
    assert {r["message_text"] for r in rows} == {"hi"}
    sha = hashlib.sha256(generator.read_bytes()).hexdigest()
    for path in sorted(folder.iterdir()):
        found = read_credentials(path)
        assert found.status == "trusted" and found.digital_source_type == TRAINED
        assert [a["action"] for a in found.actions] == ["c2pa.created"]
        assert found.model == str(generator) and found.model_sha256 == sha
        assert found.options["n"] == 2 and found.options["seed"] == 3
        assert found.soft_binding == {"alg": f"pixelsmith.watermark.{key.method}",
                                      "key_id": key.key_id, "message": b"hi".hex()}  # fmt: skip
    # the pixels are the model's images with the mark alone added (PSNR ~40 dB)
    plain = tmp_path / "plain"
    assert main([*argv[:-1], str(plain)]) == 0
    for a, b in zip(sorted(folder.iterdir()), sorted(plain.iterdir()), strict=True):
        x = np.asarray(Image.open(a)).astype(float)
        y = np.asarray(Image.open(b)).astype(float)
        assert 0 < np.sqrt(np.mean((x - y) ** 2)) < 4
    assert [r["detected"] for r in _detect(plain, key_file, capsys)] == [False, False]
    assert read_credentials(plain / "0000.png").status == "none"


def test_sample_gives_each_image_its_own_id_and_marks_a_grid(
    tmp_path, creds, key_file, generator, capsys
):
    folder = tmp_path / "images"
    argv = ["sample", str(generator), "-n", "3", "--watermark", str(key_file), "--credentials"]
    assert main([*argv, "-o", str(folder)]) == 0
    rows = _detect(folder, key_file, capsys)
    assert all(r["detected"] for r in rows)
    messages = [r["message_hex"] for r in rows]
    assert len(set(messages)) == 3 and all(len(m) == 8 for m in messages)  # 4 random bytes each
    bound = [read_credentials(p).soft_binding["message"] for p in sorted(folder.iterdir())]
    assert bound == messages  # each manifest names the mark of its own pixels
    grid = tmp_path / "grid.png"
    assert main([*argv, "-o", str(grid)]) == 0
    [row] = _detect(grid, key_file, capsys)
    assert row["detected"]
    assert read_credentials(grid).soft_binding["message"] == row["message_hex"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no drafts


def test_small_samples_are_signed_without_a_mark_and_said_so(tmp_path, creds, key_file, capsys):
    gan = make_gan((3, 16, 16), 0)
    gan.add_ema_copies()
    ckpt = _checkpoint(gan, tmp_path / "small.safetensors")
    out = tmp_path / "small"
    argv = ["sample", str(ckpt), "-n", "2", "-o", str(out)]
    assert main([*argv, "--watermark", str(key_file), "--credentials"]) == 0
    err = capsys.readouterr().err
    assert "too small to watermark (16x16; needs 128 px a side) (and 1 more)" in err
    found = read_credentials(out / "0000.png")
    assert found.status == "trusted" and found.soft_binding is None


def test_sample_refuses_bad_inputs_before_any_work(tmp_path, creds, key_file, capsys):
    out = tmp_path / "out"
    missing = str(tmp_path / "no-such-run")  # reached only after the refusals
    not_a_key = tmp_path / "not-a-key.json"
    not_a_key.write_text('{"kind": "pixelsmith-recipe"}')
    cases = [
        (["--watermark", str(not_a_key)], "not a watermark key"),
        (["--watermark", str(creds / "signer.pem")], "not a watermark key"),
        (["--watermark", str(key_file), "--message", "far too long"], "needs 96 bits"),
        (["--message", "hi"], "give --watermark KEYFILE"),
        (["--credentials", str(tmp_path / "empty")], "no signing credentials"),
        (["--credentials", str(creds), "--cert", str(creds / "signer.pem")], "not both"),
        (["--cert", str(creds / "signer.pem")], "give both --cert"),
    ]
    for flags, why in cases:
        assert main(["sample", missing, "-n", "1", "-o", str(out), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1 and "Traceback" not in err, flags
    assert not out.exists()


def test_edit_marks_and_signs_an_edit_of_a_credentialed_input_keeping_its_chain(
    tmp_path, creds, key_file, capsys
):
    src = tmp_path / "photo.png"
    Image.fromarray(_photo()).save(src)
    sign_file(src, Claim("created", model="a camera"), load_signer())  # the input's own manifest
    out = tmp_path / "edited.png"
    argv = ["edit", "enhance", str(src), "-o", str(out), "--methods", "autocontrast,gamma"]
    assert main([*argv, "--watermark", str(key_file), "--message", "0x0a0b", "--credentials"]) == 0
    [row] = _detect(out, key_file, capsys)
    assert row["detected"] and row["message_hex"].startswith("0a0b")
    found = read_credentials(out)
    assert found.status == "trusted" and found.operation == "enhance"
    assert "c2pa.edited" in [a["action"] for a in found.actions]
    assert found.options == {"methods": ["autocontrast", "gamma"], "model": None}
    assert found.soft_binding["key_id"] == load_key(key_file).key_id
    [parent] = found.ingredients
    assert parent["title"] == "photo.png" and parent["relationship"] == "parentOf"
    assert parent["status"] == "trusted" and parent["manifest"]["model"] == "a camera"


def test_edit_files_records_the_model_it_translated_with(tmp_path, creds, key_file):
    cyc = make_cyclegan((3, 128, 128), seed=1, d_layers=2)
    cyc.add_ema_copies()
    ckpt = _checkpoint(cyc, tmp_path / "cyc.safetensors")
    src = tmp_path / "in.jpg"
    Image.fromarray(_photo(128)).save(src, quality=95)
    out = tmp_path / "out.webp"
    result = edit_files("translate", src, out, translator=str(ckpt), direction="a2b", log=None,
                        watermark=key_file, credentials=True)  # fmt: skip
    [report] = result.reports
    assert report["key_id"] == load_key(key_file).key_id and report["signed"] == "edited"
    found = read_credentials(out)
    assert found.format == "image/webp" and found.operation == "translate"
    assert found.model == str(ckpt)
    assert found.model_sha256 == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert found.options == {"direction": "a2b"}
    assert found.soft_binding["message"] == report["message_hex"]
    [parent] = found.ingredients
    assert parent["title"] == "in.jpg" and parent["format"] == "image/jpeg"


def test_edit_refuses_an_unsignable_output_before_any_work(tmp_path, creds, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(_photo(32)).save(src)
    out = tmp_path / "out.bmp"
    argv = ["edit", "enhance", str(src), "-o", str(out), "--methods", "autocontrast"]
    assert main([*argv, "--credentials"]) == 2
    err = capsys.readouterr().err.strip()
    assert "PNG, JPEG and WebP files only" in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main(argv) == 0 and out.exists()  # without credentials a BMP is fine


def test_an_input_c2pa_cannot_name_is_recorded_by_its_pixels(tmp_path, creds, capsys):
    src = tmp_path / "in.bmp"
    Image.fromarray(_photo(40)).save(src)
    out = tmp_path / "out.png"
    argv = ["edit", "enhance", str(src), "-o", str(out), "--methods", "gamma", "--credentials"]
    assert main(argv) == 0
    assert "recorded as a PNG" in capsys.readouterr().err
    [parent] = read_credentials(out).ingredients
    assert parent["title"] == "in.bmp (as PNG)" and parent["format"] == "image/png"


def test_the_stamp_itself():
    key = WatermarkKey(np.random.default_rng(1).bytes(32), message_bits=16)
    stamp = Stamp(key)
    x = torch.full((3, 128, 130), 0.5)
    marked = stamp.mark(x)
    assert marked.note is None and len(bytes.fromhex(marked.binding["message"])) == 2
    assert wm.detect(marked.image, key).message_hex.startswith(marked.binding["message"])
    small = stamp.mark(x[:, :100])
    assert small.image is x[:, :100] or torch.equal(small.image, x[:, :100])
    assert small.binding is None and small.note == too_small(100, 130)
    assert Stamp().mark(x).image is x and not Stamp().active
    assert Stamp().sign(b"bytes", "image/png", "created") == b"bytes"  # no signer: unchanged
    with pytest.raises(UserError, match="needs 24 bits; this key carries 16"):
        open_stamp(key, "abc")
    assert open_stamp(key, b"\x01\x02").message == b"\x01\x02"
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    assert open_stamp(key).sign(buf.getvalue(), "image/png", "created") == buf.getvalue()


def test_a_mark_that_does_not_read_back_is_not_kept(monkeypatch):
    key = WatermarkKey(np.random.default_rng(1).bytes(32), message_bits=16)
    x = torch.full((3, 128, 128), 0.5)
    real = stamp_module.detect
    monkeypatch.setattr(stamp_module, "detect", lambda y, k: real(torch.zeros_like(y) + 0.5, k))
    marked = Stamp(key).mark(x)
    assert marked.image is x and marked.binding is None and marked.note == UNREADABLE


def test_an_image_id_that_does_not_read_back_is_swapped_but_a_given_message_is_not(monkeypatch):
    """A random id that this image's pixels lose (about 1 in 100 on a small grid) is replaced
    by another; a message the user chose is tried once and the image said unmarked."""
    key = WatermarkKey(np.random.default_rng(1).bytes(32), message_bits=16)
    x = torch.from_numpy(_photo(128)).permute(2, 0, 1).float() / 255
    real, calls = stamp_module.reads_back, []

    def first_fails(marked, k, message):
        calls.append(message)
        return len(calls) > 1 and real(marked, k, message)

    monkeypatch.setattr(stamp_module, "reads_back", first_fails)
    marked = Stamp(key).mark(x)
    assert len(calls) == 2 and calls[0] != calls[1]
    assert marked.binding is not None and marked.binding["message"] == calls[1].hex()
    calls.clear()
    given = Stamp(key, message=b"\x01\x02").mark(x)
    assert len(calls) == 1 and given.image is x and given.note == UNREADABLE


@pytest.mark.zoo
def test_a_zoo_grid_is_signed_with_the_zoo_hash_and_said_unmarked(
    tmp_path, creds, key_file, capsys
):
    from pixelsmith import zoo

    grid = tmp_path / "grid.png"
    argv = ["sample", "zoo:fmnist-gan", "-n", "25", "-o", str(grid), "--credentials"]
    assert main([*argv, "--watermark", str(key_file)]) == 0
    found = read_credentials(grid)
    assert found.model == "zoo:fmnist-gan" and found.model_sha256 == zoo.entry("fmnist-gan").sha256
    # the watermark does not read back from the zoo's grey, mostly black grids: no binding
    if found.soft_binding is None:
        assert "not watermarkable" in capsys.readouterr().err
    else:
        assert _detect(grid, key_file, capsys)[0]["detected"]
