"""The default size for image folders loaded without data.size: headers only, no decoding."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from pixelsmith import imageio
from pixelsmith.data import sources
from pixelsmith.data.sources import folder_default_size, load_images


def photo_folder(root: Path, n: int = 6, size: tuple[int, int] = (1200, 1600)) -> Path:
    """n phone-sized JPEGs (width x height)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (size[1] // 40, size[0] // 40, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize(size)
    for i in range(n):
        im.save(root / f"IMG_{i:04d}.jpg", quality=70)
    return root


def test_phone_photos_get_64_and_a_note(tmp_path):
    root = photo_folder(tmp_path / "photos")
    size, note = folder_default_size(str(root))
    assert size == (64, 64)
    assert "64x64" in note and "data.size=64" in note and "set data.size" in note
    assert str(root) in note and "6 images of 1200x1600" in note and "\n" not in note
    # the size it gives is one load_images accepts, and loading is then small
    s = load_images(str(root), size=size)
    assert s.images.shape == (6, 3, 64, 64)


def test_identical_small_images_are_kept_as_they_are(tmp_path):
    root = tmp_path / "digits"
    for cls in ("0", "1"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (28, 28), i).save(root / cls / f"{i}.png")
    assert folder_default_size(root) == (None, "")
    assert folder_default_size(root, keep_up_to=27)[0] == (64, 64)  # the bound is on each side


def test_mixed_small_sizes_get_the_default_and_name_the_largest(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    for i, wh in enumerate([(20, 30), (32, 32), (40, 12), (32, 32)]):
        Image.new("RGB", wh).save(root / f"{i}.png")
    (root / "broken.png").write_bytes(b"not an image")  # left to load_images to report
    size, note = folder_default_size(root, default=48)
    assert size == (48, 48)
    assert "4 images of 3 sizes up to 32x32" in note and "data.size=48" in note


def test_layouts_follow_load_images_and_named_sources_are_left_alone(tmp_path):
    ds = tmp_path / "ds"
    for split, wh in (("train", (28, 28)), ("test", (300, 200))):
        (ds / split).mkdir(parents=True)
        Image.new("L", wh).save(ds / split / "a.png")
    assert folder_default_size(ds) == (None, "")
    assert folder_default_size(ds, "test")[0] == (64, 64)
    cyc = tmp_path / "cyc"
    for d, wh in (("trainA", (16, 16)), ("trainB", (16, 20))):
        (cyc / d).mkdir(parents=True)
        Image.new("RGB", wh).save(cyc / d / "x.png")
    assert folder_default_size(cyc)[0] == (64, 64)  # the two domains together differ in size
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("L", (500, 500)).save(flat / "a.png")
    assert folder_default_size(flat, "test") == (None, "")  # load_images reports the split
    for named in ("shapes", "fashion-mnist", "MNIST"):
        assert folder_default_size(named) == (None, "")
    assert folder_default_size(tmp_path / "missing") == (None, "")
    assert folder_default_size(flat / "a.png") == (None, "")


def test_idx_folders_are_left_alone(tmp_path, monkeypatch):
    idx = tmp_path / "idx"
    idx.mkdir()
    (idx / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03" + b"\0" * 12)
    Image.new("L", (999, 999)).save(idx / "stray.png")
    assert folder_default_size(idx) == (None, "")


def test_header_probe_is_fast_and_decodes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "many"
    root.mkdir()
    big = Image.new("RGB", (800, 600), (10, 20, 30))
    big.save(root / "template.png")
    data = (root / "template.png").read_bytes()
    (root / "template.png").unlink()
    for i in range(500):
        (root / f"{i:04d}.png").write_bytes(data)

    def no_decode(*args, **kwargs):
        raise AssertionError("folder_default_size decoded an image")

    Image.init()  # import Pillow's plugins first: one builds a prototype image as it loads
    monkeypatch.setattr(imageio, "read_image", no_decode)
    monkeypatch.setattr(Image.Image, "load", no_decode)
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    monkeypatch.setattr(sources, "load_folder", no_decode)
    t0 = time.perf_counter()
    size, note = folder_default_size(root)
    elapsed = time.perf_counter() - t0
    assert size == (64, 64) and "500 images of 800x600" in note
    assert elapsed < 2.0, f"header probe of 500 files took {elapsed:.2f} s"


@pytest.mark.parametrize("orientation,expect", [(1, (None, "")), (6, (64, 64))])
def test_exif_rotation_counts_as_read(tmp_path, orientation, expect):
    root = tmp_path / f"rot{orientation}"
    root.mkdir()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (40, 30)).save(root / "a.jpg", exif=exif)
    Image.new("RGB", (40, 30)).save(root / "b.jpg")
    got = folder_default_size(root)
    assert (got[0] if expect[0] else got) == expect
