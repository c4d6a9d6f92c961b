"""`pixelsmith edit sr|denoise|inpaint|enhance` on files: modes and formats round trip, every
refusal comes before the first write, unreadable files in a folder are skipped and counted,
folders keep their layout, inpainting keeps the known pixels, and the in-memory operations
(batches, grey through colour, tiles) agree.

The models are tiny runs trained for two steps on the procedural shapes, once per module.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.data.degrade import imresize
from pixelsmith.edit import ops
from pixelsmith.edit.photo import read_photo, write_photo
from pixelsmith.errors import UserError
from pixelsmith.generate import load_model
from pixelsmith.jobs import edit_files

TINY = [
    "data.source=shapes",
    "data.size=32",
    "train.steps=2",
    "train.threads=1",
    "train.eval_at_end=false",
    "model.width=8",
    "model.blocks=1",
]


def _train(preset: str, root: Path, *extra: str) -> Path:
    from pixelsmith.train.config import build_config
    from pixelsmith.train.loop import train

    with contextlib.redirect_stdout(io.StringIO()):
        run = train(build_config(preset, overrides=[*TINY, *extra]), root, progress=False)
    return Path(run)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "sr2": _train("sr-x2", root),
        "sr4": _train("sr-x4", root),
        # levels=2: the UNet needs sides that are multiples of 4 (padding on odd sizes)
        "denoise": _train("restore", root, "model.levels=2"),
        "grey": _train("denoise-grey", root, "model.levels=1", "data.channels=1"),
        "enhance": _train("enhance", root, "model.levels=1"),
    }


@pytest.fixture(scope="module")
def inpaint_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _train("inpaint", tmp_path_factory.mktemp("inpaint"), "model.levels=1")


@pytest.fixture(autouse=True)
def _max_pixels_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A default pixel limit of this test module's own (the CLI's --max-pixels overrides it)."""
    monkeypatch.setenv("PIXELSMITH_MAX_PIXELS", "50000000")


def cli(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["edit", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def files_under(folder: Path) -> list[Path]:
    """Every file (hidden ones too: a leftover temporary file counts) under folder."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ---- images in every mode -----------------------------------------------------------------


def make_image(mode: str, h: int = 9, w: int = 13, seed: int = 0) -> Image.Image:
    """A random image in `mode`; "Pt" is a palette image with a transparent index."""
    rng = np.random.default_rng(seed)
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, (h, w)).astype(bool))
    if mode == "I;16":
        arr = rng.integers(0, 65536, (h, w)).astype(np.uint16)
        arr[0, :4] = [1, 258, 65534, 12345]  # not multiples of 257: an 8-bit pass loses them
        return Image.fromarray(arr)
    if mode in ("P", "Pt"):
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).quantize(16)
        im.putpixel((0, 0), 3)
        return im
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)


def save(im: Image.Image, path: Path, mode: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    options: dict = {}
    if mode == "Pt":
        options["transparency"] = 3
    if path.suffix == ".webp":
        options["lossless"] = True
    im.save(path, **options)
    return path


# what read_photo -> write_photo gives back for each input mode (the module doc's rules)
OUT_MODE = {
    "L": "L",
    "LA": "LA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "1": "L",
    "I;16": "I;16",
    "P": "RGB",
    "Pt": "RGBA",
}


def expected_pixels(im: Image.Image, mode: str) -> np.ndarray:
    """The input's pixels as the output mode holds them."""
    if mode in ("1", "P", "Pt"):
        return np.asarray(im.convert(OUT_MODE[mode]))
    return np.asarray(im)


@pytest.mark.parametrize("mode", list(OUT_MODE))
def test_png_round_trip_is_lossless_in_every_mode(tmp_path: Path, mode: str) -> None:
    src = save(make_image(mode), tmp_path / "in.png", mode)
    with Image.open(src) as im:
        want = expected_pixels(im, mode)
    out = write_photo(read_photo(src), tmp_path / "out.png")
    with Image.open(out) as got:
        assert got.mode == OUT_MODE[mode]
        assert np.array_equal(np.asarray(got), want)
    if mode == "Pt":  # the transparent index is transparent
        assert want[0, 0, 3] == 0
    if mode == "I;16":
        assert (want.astype(np.int64) % 257 != 0).any()


def test_sixteen_bit_tiff_round_trip_and_eight_bit_formats(tmp_path: Path) -> None:
    src = save(make_image("I;16"), tmp_path / "in.tif", "I;16")
    with Image.open(src) as im:
        want = np.asarray(im).astype(np.int64)
    photo = read_photo(src)
    assert photo.sixteen_bit
    with Image.open(write_photo(photo, tmp_path / "out.tif")) as got:
        assert got.mode == "I;16" and got.format == "TIFF"
        assert np.array_equal(np.asarray(got).astype(np.int64), want)
    # BMP holds 8 bits: the grey comes back as L, rounded from 16 bits
    with Image.open(write_photo(photo, tmp_path / "out.bmp")) as got:
        assert got.mode == "L"
        assert np.array_equal(np.asarray(got), np.round(want / 257).astype(np.uint8))


# (suffix, mode) cases a folder can hold: the formats that can store each mode
CASES = [(".png", m) for m in OUT_MODE] + [
    (".tif", "L"),
    (".tif", "LA"),
    (".tif", "RGB"),
    (".tif", "RGBA"),
    (".tif", "I;16"),
    (".webp", "RGB"),
    (".webp", "RGBA"),
    (".bmp", "L"),
    (".bmp", "RGB"),
    (".bmp", "1"),
    (".jpg", "L"),
    (".jpg", "RGB"),
]
FORMAT = {".png": "PNG", ".tif": "TIFF", ".webp": "WEBP", ".bmp": "BMP", ".jpg": "JPEG"}


def mode_folder(root: Path) -> dict[str, tuple[str, np.ndarray]]:
    """A folder with one image per case; name -> (mode, the input's pixels in output form)."""
    made = {}
    for i, (suffix, mode) in enumerate(CASES):
        name = f"{i:02d}-{mode.replace(';', '')}{suffix}"
        path = save(make_image(mode, seed=i), root / name, mode)
        with Image.open(path) as im:
            made[name] = (mode, expected_pixels(im, mode))
    return made


@pytest.mark.parametrize("op", ["sr", "denoise"])
def test_every_mode_and_format_keeps_its_mode_and_format(
    tmp_path: Path, runs: dict[str, Path], op: str
) -> None:
    made = mode_folder(tmp_path / "in")
    model = runs["sr2"] if op == "sr" else runs["denoise"]
    written = edit_files(op, tmp_path / "in", tmp_path / "out", log=None, model=model).written
    assert sorted(p.name for p in written) == sorted(made)
    factor = 2 if op == "sr" else 1
    for name, (mode, pixels) in made.items():
        with Image.open(tmp_path / "out" / name) as got:
            assert got.format == FORMAT[Path(name).suffix], name
            assert got.mode == OUT_MODE[mode], name
            assert got.size == (13 * factor, 9 * factor), name
            arr = np.asarray(got)
        if mode == "I;16":  # still 16 bits: values off the 8-bit grid survive
            assert (arr.astype(np.int64) % 257 != 0).mean() > 0.5, name
        if op == "denoise" and OUT_MODE[mode] in ("LA", "RGBA"):
            assert np.array_equal(arr[..., -1], pixels[..., -1]), f"{name}: alpha changed"


def test_sr_x4_size_and_alpha_resized_with_the_pixels(tmp_path: Path, runs: dict) -> None:
    rgba = make_image("RGBA", 12, 16)
    arr = np.asarray(rgba).copy()
    arr[..., 3] = 0
    arr[:, 8:, 3] = 255  # opaque right half
    src = tmp_path / "in.png"
    Image.fromarray(arr, "RGBA").save(src)
    rc = main(
        [
            "edit",
            "sr",
            str(src),
            "-o",
            str(tmp_path / "out.png"),
            "--scale",
            "4",
            "--model",
            str(runs["sr4"]),
            "--quiet",
        ]
    )
    assert rc == 0
    with Image.open(tmp_path / "out.png") as got:
        assert got.mode == "RGBA" and got.size == (64, 48)
        alpha = np.asarray(got)[..., 3]
    a = torch.from_numpy(arr[..., 3].astype(np.float32) / 255)[None, None]
    want = (imresize(a, scale=4)[0, 0].clamp(0, 1) * 255).round().numpy().astype(np.uint8)
    assert np.array_equal(alpha, want)
    assert (alpha[:, :24] == 0).all() and (alpha[:, 40:] == 255).all()


def test_a_model_of_your_own_upscales_by_its_own_factor_and_x2_of_it_is_refused(
    tmp_path: Path, runs: dict, capsys
) -> None:
    src = save(make_image("RGB"), tmp_path / "in.png", "RGB")
    rc, _, err = cli(capsys, "sr", src, "-o", tmp_path / "out", "--model", runs["sr4"],
                     "--scale", 2)  # fmt: skip
    assert rc == 2 and "x4" in err
    assert files_under(tmp_path / "out") == []
    rc, _, err = cli(capsys, "sr", src, "-o", tmp_path / "own", "--model", runs["sr4"])
    assert rc == 0, err
    with Image.open(tmp_path / "own" / "in.png") as got:
        assert got.size == (13 * 4, 9 * 4)


@pytest.mark.parametrize("op", ["denoise", "enhance", "inpaint"])
@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_same_size_edits_keep_alpha_bit_exact(
    tmp_path: Path, runs: dict, inpaint_run: Path, op: str, mode: str
) -> None:
    im = make_image(mode, 16, 20, seed=3)
    src = save(im, tmp_path / "in.png", mode)
    mask = tmp_path / "mask.png"
    m = np.zeros((16, 20), np.uint8)
    m[4:10, 5:12] = 255
    Image.fromarray(m).save(mask)
    model = {"denoise": runs["denoise"], "enhance": runs["enhance"], "inpaint": inpaint_run}[op]
    edit_files(
        op,
        src,
        tmp_path / "out.png",
        mask=mask if op == "inpaint" else None,
        log=None,
        model=model,
    )
    with Image.open(tmp_path / "out.png") as got:
        assert got.mode == mode
        assert np.array_equal(np.asarray(got)[..., -1], np.asarray(im)[..., -1])


# ---- refusals: exit 2, one sentence, nothing written ------------------------------------------


def good_folder(root: Path, n: int = 3, size: tuple[int, int] = (9, 13)) -> Path:
    for i in range(n):
        save(make_image("RGB", *size, seed=i), root / f"a{i}.png", "RGB")
    return root


def assert_refused(rc: int, err: str, out_dir: Path, *words: str) -> None:
    assert rc == 2
    assert files_under(out_dir) == [], "something was written"
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"stderr is not one line: {lines}"
    assert lines[0].startswith("pixelsmith: error: ")
    for w in words:
        assert w in lines[0], lines[0]


def test_unreadable_files_in_a_folder_are_skipped_counted_and_said_in_one_line(
    tmp_path: Path, runs, capsys
) -> None:
    src = good_folder(tmp_path / "in")
    (src / "zz.png").write_bytes(b"this is not a png at all" * 10)
    good = (src / "a0.png").read_bytes()
    (src / "half.png").write_bytes(good[: len(good) // 2])  # the header reads, the data not
    rc, out, err = cli(capsys, "sr", src, "-o", tmp_path / "out", "--model", runs["sr2"])
    assert rc == 0, err
    assert sorted(p.name for p in files_under(tmp_path / "out")) == ["a0.png", "a1.png", "a2.png"]
    [line] = [ln for ln in err.splitlines() if "skipped" in ln]
    assert line.startswith("pixelsmith: warning: skipped 2 unreadable")
    assert "zz.png" in line and "half.png" in line
    assert "skipped 2 unreadable" in out
    # a folder of nothing readable, or one unreadable file given alone, is refused
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"nope")
    rc, _, err = cli(capsys, "sr", bad, "-o", tmp_path / "o2", "--model", runs["sr2"])
    assert_refused(rc, err, tmp_path / "o2", "no readable images", "x.png")
    rc, _, err = cli(capsys, "sr", src / "zz.png", "-o", tmp_path / "o3", "--model", runs["sr2"])
    assert_refused(rc, err, tmp_path / "o3", "zz.png")


def test_missing_input_refused(tmp_path: Path, runs, capsys) -> None:
    rc, _, err = cli(
        capsys, "denoise", tmp_path / "nope.png", "-o", tmp_path / "out", "--model", runs["denoise"]
    )
    assert_refused(rc, err, tmp_path / "out", "nope.png")


def test_mask_of_another_size_refused_for_the_last_file(tmp_path: Path, capsys) -> None:
    src = good_folder(tmp_path / "in")
    save(make_image("RGB", 10, 13), src / "zz.png", "RGB")  # one row more than the mask
    mask = tmp_path / "mask.png"
    Image.fromarray(np.full((9, 13), 255, np.uint8)).save(mask)
    rc, _, err = cli(
        capsys, "inpaint", src, "-o", tmp_path / "out", "--mask", mask, "--method", "harmonic"
    )
    assert_refused(rc, err, tmp_path / "out", "mask.png", "13x10")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "Pt"])
def test_alpha_into_jpeg_refused(tmp_path: Path, runs, capsys, mode: str) -> None:
    src = save(make_image(mode), tmp_path / "in.png", mode)
    rc, _, err = cli(
        capsys, "denoise", src, "-o", tmp_path / "out" / "x.jpg", "--model", runs["denoise"]
    )
    assert_refused(rc, err, tmp_path / "out", "alpha")


def test_transparent_palette_into_jpeg_refused_before_any_editing(
    tmp_path: Path, runs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks come before the work: a palette image's transparency too, not only an
    alpha channel the header names (a large photo would run the whole model first)."""
    src = save(make_image("Pt"), tmp_path / "in.png", "Pt")
    calls = []
    real = ops.denoise
    monkeypatch.setattr(ops, "denoise", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(UserError, match="alpha"):
        edit_files("denoise", src, tmp_path / "x.jpg", log=None, model=runs["denoise"])
    assert calls == [], "the image was edited before its output was refused"
    assert not (tmp_path / "x.jpg").exists()


def test_over_max_pixels_refused_for_the_last_file(tmp_path: Path, runs, capsys) -> None:
    src = good_folder(tmp_path / "in")  # 117 pixels each
    save(make_image("RGB", 20, 20), src / "zz.png", "RGB")  # 400
    rc, _, err = cli(
        capsys,
        "denoise",
        src,
        "-o",
        tmp_path / "out",
        "--max-pixels",
        300,
        "--model",
        runs["denoise"],
    )
    assert_refused(rc, err, tmp_path / "out", "zz.png")


def test_sr_output_over_max_pixels_refused_for_the_last_file(tmp_path: Path, runs, capsys) -> None:
    src = good_folder(tmp_path / "in")  # 117 pixels each: x2 makes 468
    save(make_image("RGB", 20, 20), src / "zz.png", "RGB")  # 400, x2 makes 1,600
    rc, _, err = cli(
        capsys, "sr", src, "-o", tmp_path / "out", "--max-pixels", 1000, "--model", runs["sr2"]
    )
    assert_refused(rc, err, tmp_path / "out", "zz.png", "1,600")
    # the same folder within the limit is written
    rc, _, _ = cli(
        capsys,
        "sr",
        src,
        "-o",
        tmp_path / "ok",
        "--max-pixels",
        2000,
        "--model",
        runs["sr2"],
        "--quiet",
    )
    assert rc == 0 and len(files_under(tmp_path / "ok")) == 4


def test_model_of_another_task_refused(tmp_path: Path, runs, capsys) -> None:
    src = good_folder(tmp_path / "in")
    rc, _, err = cli(capsys, "sr", src, "-o", tmp_path / "out", "--model", runs["denoise"])
    assert_refused(rc, err, tmp_path / "out", "denoise model")


def test_unknown_enhance_method_refused(tmp_path: Path, runs, capsys) -> None:
    src = good_folder(tmp_path / "in")
    rc, _, err = cli(
        capsys,
        "enhance",
        src,
        "-o",
        tmp_path / "out",
        "--methods",
        "autocontrast,sparkle",
        "--model",
        runs["enhance"],
    )
    assert_refused(rc, err, tmp_path / "out", "sparkle")


def test_denoise_sigma_25_runs_and_300_is_refused(tmp_path: Path, runs, capsys) -> None:
    src = good_folder(tmp_path / "in")
    rc, _, err = cli(
        capsys, "denoise", src, "-o", tmp_path / "out", "--sigma", 300, "--model", runs["denoise"]
    )
    assert_refused(rc, err, tmp_path / "out", "300")
    rc, _, _ = cli(
        capsys,
        "denoise",
        src,
        "-o",
        tmp_path / "ok",
        "--sigma",
        25,
        "--model",
        runs["denoise"],
        "--quiet",
    )
    assert rc == 0 and len(files_under(tmp_path / "ok")) == 3


def test_sigma_reaches_the_network(runs: dict) -> None:
    """--sigma is not ignored: the noise map it sets changes the result."""
    model = randomised(load_model(runs["denoise"]))
    x = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(0))
    a, b = ops.denoise(x, 0, model=model), ops.denoise(x, 25, model=model)
    assert (a - b).abs().max() > 1e-3


def test_max_pixels_travels_as_an_argument_not_through_the_environment(
    tmp_path: Path, runs, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = good_folder(tmp_path / "in", n=1)  # 117 pixels
    seen = []
    monkeypatch.setattr(os, "environ", _Watched(os.environ, seen))
    rc, _, err = cli(capsys, "denoise", src, "-o", tmp_path / "out", "--max-pixels", 100,
                     "--model", runs["denoise"])  # fmt: skip
    assert_refused(rc, err, tmp_path / "out", "a0.png")
    assert seen == [], f"the command wrote the environment: {seen}"
    with pytest.raises(UserError, match="a0.png"):
        edit_files("denoise", src, tmp_path / "o2", max_pixels=100, model=runs["denoise"])


class _Watched(dict):
    """os.environ that records every write."""

    def __init__(self, env: os._Environ, seen: list) -> None:
        super().__init__(env)
        self.seen = seen

    def __setitem__(self, key: str, value: str) -> None:
        self.seen.append(key)
        super().__setitem__(key, value)

    def pop(self, key: str, *default: object) -> object:
        self.seen.append(key)
        return super().pop(key, *default)


# ---- folders, progress, overwriting ---------------------------------------------------------


def test_folder_keeps_relative_paths_and_reports_progress(tmp_path: Path, runs, capsys) -> None:
    src = tmp_path / "in"
    names = ["a.png", "sub/b.jpg", "sub/deeper/c.tif"]
    for i, name in enumerate(names):
        save(make_image("RGB", seed=i), src / name, "RGB")
    rc, out, err = cli(capsys, "sr", src, "-o", tmp_path / "out", "--model", runs["sr2"])
    assert rc == 0
    got = [p.relative_to(tmp_path / "out").as_posix() for p in files_under(tmp_path / "out")]
    assert got == names
    lines = [ln for ln in err.splitlines() if ln.startswith("[")]
    assert lines == [f"[{i}/3] {src / n}" for i, n in enumerate(names, 1)]
    assert "3 images" in out
    rc, out, err = cli(
        capsys, "sr", src, "-o", tmp_path / "quiet", "--model", runs["sr2"], "--quiet"
    )
    assert rc == 0 and err == ""
    assert len(files_under(tmp_path / "quiet")) == 3


def test_output_folder_with_a_dot_in_its_name(tmp_path: Path, runs, capsys) -> None:
    src = good_folder(tmp_path / "in", n=2)
    (tmp_path / "out.v2").mkdir()
    rc, _, err = cli(
        capsys, "sr", src, "-o", tmp_path / "out.v2", "--model", runs["sr2"], "--quiet"
    )
    assert rc == 0, err
    assert len(files_under(tmp_path / "out.v2")) == 2
    (tmp_path / "one.v2").mkdir()  # one image into an existing folder: out.v2/a0.png
    rc, _, err = cli(
        capsys, "sr", src / "a0.png", "-o", tmp_path / "one.v2", "--quiet", "--model", runs["sr2"]
    )
    assert rc == 0, err
    assert files_under(tmp_path / "one.v2") == [tmp_path / "one.v2" / "a0.png"]


def test_writing_over_an_input_is_refused(tmp_path: Path, runs, capsys) -> None:
    src = good_folder(tmp_path / "in")
    before = {p: p.read_bytes() for p in files_under(src)}
    rc, _, err = cli(capsys, "denoise", src, "-o", src, "--model", runs["denoise"])
    assert rc == 2 and "overwrite" in err and len(err.strip().splitlines()) == 1
    one = src / "a0.png"
    rc, _, err = cli(capsys, "denoise", one, "-o", one, "--model", runs["denoise"])
    assert rc == 2 and "overwrite" in err
    assert {p: p.read_bytes() for p in files_under(src)} == before


# ---- inpainting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "image_mode", "mask_mode"),
    [
        ("harmonic", "RGB", "L"),
        ("telea", "RGB", "RGB"),
        ("learned", "RGB", "RGB"),
        ("learned", "L", "L"),
    ],
)
def test_inpaint_changes_only_the_holes(
    tmp_path: Path, inpaint_run: Path, capsys, method: str, image_mode: str, mask_mode: str
) -> None:
    im = make_image(image_mode, 24, 30, seed=5)
    src = save(im, tmp_path / "in.png", image_mode)
    holes = np.zeros((24, 30), bool)
    holes[6:14, 8:20] = True
    holes[18:21, 2:28] = True
    m = np.where(holes, 255, 0).astype(np.uint8)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.stack([m] * 3, -1) if mask_mode == "RGB" else m, mask_mode).save(mask)
    rc, _, err = cli(
        capsys,
        "inpaint",
        src,
        "-o",
        tmp_path / "out.png",
        "--mask",
        mask,
        "--method",
        method,
        "--model",
        inpaint_run,
        "--quiet",
    )
    assert rc == 0, err
    before = np.asarray(im).astype(int)
    with Image.open(tmp_path / "out.png") as got:
        assert got.mode == image_mode
        after = np.asarray(got).astype(int)
    assert np.array_equal(after[~holes], before[~holes])
    changed = after[holes] != before[holes]
    assert changed.mean() > 0.5  # random noise in the holes is replaced by a smooth fill


# ---- the operations on tensors ---------------------------------------------------------------


def randomised(model, seed: int = 0):
    """The model with fresh random weights everywhere (the two-step tails are nearly zero,
    which would hide a tiling mistake)."""
    torch.manual_seed(seed)
    for net in model.networks.values():
        for module in net.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
        for p in net.parameters():  # tails start at zero; reset_parameters is not enough
            p.data.add_(torch.randn_like(p) * 0.02)
    first = next(iter(model.networks.values()))
    for net in model.networks.values():
        net.load_state_dict(first.state_dict())
    return model


def test_super_resolve_single_and_batch(runs: dict) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 11, 14, generator=g)
    one = ops.super_resolve(x[1], 2, model=runs["sr2"])
    assert one.shape == (3, 22, 28)
    batch = ops.super_resolve(x, 2, model=runs["sr2"])
    assert batch.shape == (3, 3, 22, 28)
    assert torch.allclose(batch[1], one, atol=1e-6)
    assert not torch.allclose(batch[0], batch[1])


def test_grey_through_a_colour_model_comes_back_grey(runs: dict) -> None:
    model = randomised(load_model(runs["sr2"]), seed=2)
    grey = torch.rand(1, 10, 12, generator=torch.Generator().manual_seed(2))
    out = ops.super_resolve(grey, 2, model=model)
    assert out.shape == (1, 20, 24)
    colour = ops.super_resolve(grey.expand(3, -1, -1), 2, model=model)
    luma = (colour * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    assert torch.allclose(out, luma, atol=1e-5)
    den = ops.denoise(grey, 10, model=randomised(load_model(runs["denoise"])))
    assert den.shape == (1, 10, 12)


def test_colour_through_a_grey_model_goes_channel_by_channel(runs: dict) -> None:
    model = randomised(load_model(runs["grey"]), seed=4)
    x = torch.rand(3, 12, 16, generator=torch.Generator().manual_seed(4))
    out = ops.denoise(x, 15, model=model)
    assert out.shape == (3, 12, 16)
    for c in range(3):
        assert torch.allclose(out[c : c + 1], ops.denoise(x[c : c + 1], 15, model=model))


@pytest.mark.parametrize("task", ["sr2", "denoise"])
def test_tiled_equals_untiled_on_an_odd_size(runs: dict, task: str) -> None:
    model = randomised(load_model(runs[task]), seed=7)
    x = torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(7))
    run = ops.super_resolve if task == "sr2" else ops.denoise
    seen: list[tuple[int, int]] = []
    whole = run(x, model=model, tile=None)
    tiled = run(x, model=model, tile=16, progress=lambda d, t: seen.append((d, t)))
    assert seen and seen[-1][1] > 1, "the image was not cut into tiles"
    s = 2 if task == "sr2" else 1
    assert whole.shape == tiled.shape == (3, 37 * s, 53 * s)
    assert (whole - tiled).abs().max() <= 1e-5
    # the network does something (else any tiling would agree)
    plain = torch.nn.functional.interpolate(x[None], scale_factor=s, mode="bicubic")[0]
    assert (whole - plain.clamp(0, 1)).abs().mean() > 1e-2


def test_the_mask_is_neither_edited_nor_overwritten(tmp_path: Path, capsys) -> None:
    folder = good_folder(tmp_path / "in", n=2, size=(12, 16))
    mask = folder / "mask.png"
    Image.fromarray(
        np.where(np.arange(16 * 12).reshape(12, 16) % 5 == 0, 255, 0).astype(np.uint8)
    ).save(mask)
    before = mask.read_bytes()
    out = tmp_path / "out"
    rc, _, err = cli(
        capsys, "inpaint", folder, "-o", out, "--mask", mask, "--method", "harmonic", "--quiet"
    )
    assert rc == 0, err
    written = {p.name for p in files_under(out)}
    assert "mask.png" not in written and len(written) == 2  # the mask is not an image to edit
    single = next(p for p in folder.iterdir() if p.name != "mask.png")
    rc, _, err = cli(capsys, "inpaint", single, "-o", mask, "--mask", mask, "--method", "harmonic")
    assert rc == 2 and "overwrite an input" in err and mask.read_bytes() == before
