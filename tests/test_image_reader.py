"""The guarded image reader: hostile files end in one clear sentence, never a traceback."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelsmith import imageio
from pixelsmith.cli.main import main
from pixelsmith.data.folder import decode_image
from pixelsmith.data.sources import load_images
from pixelsmith.errors import PixelsmithWarning, UserError, cli_warnings
from pixelsmith.imageio import ImageReadError, load_image, probe_image, read_image


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A small PNG whose (valid) IHDR declares width x height 8-bit RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def hostile_corpus(root: Path) -> dict[str, Path]:
    """Random bytes, empty and text files, truncated and bit-flipped images, odd modes, a bomb."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    blobs: dict[str, bytes] = {
        "empty.png": b"",
        "text.png": b"this is a text file, not a picture\n" * 4,
        "bomb.png": bomb_png(),
        "zero.png": bomb_png(0, 0),
    }
    for i in range(6):
        blobs[f"random{i}.png"] = rng.integers(0, 256, int(rng.integers(1, 4000))).tobytes()
    valid = {
        "png": encode(rgb, "PNG"),
        "jpg": encode(rgb, "JPEG", quality=90),
        "webp": encode(rgb, "WEBP"),
        "tif": encode(rgb, "TIFF"),
        "bmp": encode(rgb, "BMP"),
    }
    for ext, data in valid.items():
        blobs[f"valid.{ext}"] = data
        for frac in (0.05, 0.3, 0.6, 0.95):
            blobs[f"trunc{int(frac * 100)}.{ext}"] = data[: max(1, int(len(data) * frac))]
        for k in range(6):
            flipped = bytearray(data)
            for pos in rng.integers(0, len(data), 1 + 3 * k):
                flipped[pos] ^= 1 << int(rng.integers(0, 8))
            blobs[f"flip{k}.{ext}"] = bytes(flipped)
        blobs[f"header_only.{ext}"] = data[:64]
    gray = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    modes = {
        "i16.png": Image.fromarray(gray.astype(np.uint16) * 257),
        "i16.tif": Image.fromarray(gray.astype(np.uint16) * 200),
        "palette.png": rgb.quantize(16),
        "la.png": Image.fromarray(np.stack([gray, gray], -1), "LA"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "cmyk.tif": rgb.convert("CMYK"),
        "bilevel.png": Image.fromarray(gray > 128),
        "float.tif": Image.fromarray(gray.astype(np.float32)),
    }
    for name, im in modes.items():
        fmt = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF"}[name.rsplit(".", 1)[1]]
        blobs[name] = encode(im, fmt)
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees: 32x24 is read as 24x32
    rgb.save(rotated, format="JPEG", exif=exif)
    blobs["rotated.jpg"] = rotated.getvalue()
    blobs["bad_exif.jpg"] = (
        valid["jpg"][:2] + b"\xff\xe1\x00\x10Exif\x00\x00MM\x00*" + valid["jpg"][2:]
    )
    paths = {}
    for name, data in blobs.items():
        (root / name).write_bytes(data)
        paths[name] = root / name
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return hostile_corpus(tmp_path_factory.mktemp("hostile"))


def test_every_hostile_file_ends_cleanly_in_the_cli(corpus, capsys):
    outcomes = {}
    for name, path in corpus.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning of any kind may escape the CLI
            rc = main(["metrics", "psnr", str(path), str(path)])
        out, err = capsys.readouterr()
        assert rc in (0, 2), (name, rc, err)
        assert "Traceback" not in err, (name, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("pixelsmith: error:")]
        assert len(errors) == (rc == 2) and len(lines) == len(errors), (name, err)
        if rc == 2:
            assert str(path) in errors[0], (name, err)
        else:
            assert out.startswith("psnr inf"), (name, out)
        outcomes[name] = rc
    # readable files are read, broken ones refused: the corpus exercises both ends
    for name in ("valid.png", "valid.jpg", "valid.webp", "valid.tif", "valid.bmp", "i16.png"):
        assert outcomes[name] == 0, name
    for name in ("palette.png", "la.png", "cmyk.jpg", "cmyk.tif", "bilevel.png", "float.tif"):
        assert outcomes[name] == 0, name
    for name in ("empty.png", "text.png", "bomb.png", "zero.png", "trunc5.png", "trunc60.png"):
        assert outcomes[name] == 2, name


def test_bomb_is_refused_from_its_header_naming_the_pixel_count(corpus, capsys):
    assert main(["metrics", "psnr", str(corpus["bomb.png"]), str(corpus["bomb.png"])]) == 2
    err = capsys.readouterr().err
    assert "30000x30000" in err and "900 MP" in err and "178 MP" in err
    assert "PIXELSMITH_MAX_PIXELS" in err and str(corpus["bomb.png"]) in err
    with pytest.raises(ImageReadError, match="declares 30000x30000 pixels"):
        probe_image(corpus["bomb.png"])


def test_pixel_cap_applies_below_pillows_limit_and_the_env_overrides_it(tmp_path, monkeypatch):
    p = tmp_path / "mid.png"
    p.write_bytes(bomb_png(2000, 1000))  # 2 MP declared, far below Pillow's own limit
    assert probe_image(p).pixels == 2_000_000
    monkeypatch.setenv("PIXELSMITH_MAX_PIXELS", "1_000_000")
    with pytest.raises(UserError, match=r"declares 2000x1000 pixels \(2 MP\).*\(1 MP\)"):
        probe_image(p)
    with pytest.raises(UserError, match="declares 2000x1000"):
        read_image(p)  # refused before decoding (the IDAT would not even decode)
    monkeypatch.setenv("PIXELSMITH_MAX_PIXELS", "lots")
    with pytest.raises(UserError, match="PIXELSMITH_MAX_PIXELS='lots'"):
        probe_image(p)


def test_reader_reasons_name_the_file_and_say_what_to_do(corpus, tmp_path):
    with pytest.raises(ImageReadError) as e:
        read_image(tmp_path / "missing.png")
    assert str(e.value) == f"image {tmp_path / 'missing.png'} does not exist; check the path"
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="not an image pixelsmith reads") as e:
        read_image(corpus["text.png"])
    assert e.value.path == corpus["text.png"] and "\n" not in str(e.value)
    with pytest.raises(ImageReadError, match="cannot be decoded"):
        load_image(corpus["trunc60.png"])


def test_reader_decodes_natural_modes_and_applies_exif(corpus):
    assert read_image(corpus["i16.png"]).mode == "I;16"
    assert read_image(corpus["palette.png"]).mode == "P"
    assert read_image(corpus["rotated.jpg"]).size == (24, 32)
    assert probe_image(corpus["rotated.jpg"]).width == 24  # the header path knows it too
    arr, sixteen = decode_image(corpus["i16.png"])
    assert sixteen and arr.shape == (20, 30, 1)
    ref = np.floor(np.asarray(Image.open(corpus["i16.png"]), np.float64) / 257 + 0.5)
    assert np.array_equal(arr[..., 0], ref.astype(np.uint8))
    # load_image follows the same 16-bit rule as the folder loader
    x = load_image(corpus["i16.png"], channels=1)
    assert np.array_equal((x[0, 0] * 255).round().numpy().astype(np.uint8), arr[..., 0])
    la = load_image(corpus["la.png"], channels=4)
    assert la.shape == (1, 4, 20, 30)


def test_pillow_warnings_do_not_leak_and_filters_are_restored(tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    big.write_bytes(bomb_png(10000, 9000))  # 90 MP: above Pillow's warning threshold
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert probe_image(big).pixels == 90_000_000
        warnings.warn("still heard", PixelsmithWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["still heard"]
    assert warnings.filters == before
    assert imageio._quiet_depth == 0


def test_folder_with_broken_files_prints_one_pixelsmith_warning_line(corpus, tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    for name in ("valid.png", "i16.png", "empty.png", "bomb.png", "text.png", "trunc60.png"):
        (root / name).write_bytes(corpus[name].read_bytes())
    err = io.StringIO()
    with cli_warnings(err):
        s = load_images(str(root), size=16)
    lines = err.getvalue().splitlines()
    assert len(s) == 2 and len(s.skipped) == 4
    assert len(lines) == 1 and lines[0].startswith("pixelsmith: warning: skipped 4 unreadable")
    assert "UserWarning" not in err.getvalue() and "Traceback" not in err.getvalue()
    reasons = dict(s.skipped)
    assert "declares 30000x30000" in reasons[str(root / "bomb.png")]
    assert all(str(root) not in r for r in reasons.values())  # the reason, not the whole sentence


def test_folder_skip_warning_is_a_pixelsmith_warning(tmp_path):
    root = tmp_path / "f"
    root.mkdir()
    Image.new("L", (4, 4)).save(root / "a.png")
    (root / "b.png").write_bytes(b"broken")
    with pytest.warns(PixelsmithWarning, match="skipped 1 unreadable"):
        load_images(str(root))
