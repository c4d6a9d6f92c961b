"""The operations room: each operation declared once and offered alike by the command line,
Python and HTTP; a new operation needs one declaration; the typed options; the one IN -o OUT
plan (names, formats, collisions, overwriting, unreadable files); masks by OpenAI's rule."""

from __future__ import annotations

import argparse
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_cyclegan
from PIL import Image

from pixelsmith import jobs
from pixelsmith.cli.main import build_parser, main
from pixelsmith.edit.photo import Photo, mask_of, read_photo
from pixelsmith.errors import PixelsmithWarning, UserError
from pixelsmith.jobs import catalog
from pixelsmith.jobs.operation import Operation
from pixelsmith.jobs.options import Choice, File, Number, Several, parse_all
from pixelsmith.jobs.plan import plan

COMMON_FLAGS = {"-h", "--help", "-o", "--out", "--max-pixels", "--json", "--quiet", "--mask",
                "--device", "--keep-metadata",
                # run options: the mark and the credentials of what every edit writes
                "--watermark", "--message", "--credentials", "--cert", "--key"}  # fmt: skip


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {f for a in parser._actions for f in a.option_strings} - COMMON_FLAGS


def _http_cards() -> dict[str, dict]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from pixelsmith.serve.app import Served, create_app

    cyc = make_cyclegan((3, 16, 16), d_layers=2)
    c = TestClient(create_app({"cyc": Served("cyc", cyc.eval(), "test")}))
    return {card["id"]: card for card in c.get("/v1/edits").json()["data"]}


def test_cli_python_and_http_offer_the_same_operations_with_the_same_options():
    ops = jobs.operations()
    edit = _subcommands(_subcommands(build_parser())["edit"])
    faces = _subcommands(_subcommands(build_parser())["faces"])
    cards = _http_cards()
    assert list(cards) == list(ops)  # the page's menu is this list, in this order
    for name, op in ops.items():
        assert _flags(edit[name]) == {o.flag for o in op.options}, name
        if op.alias is not None:
            assert _flags(faces[op.alias[1]]) == _flags(edit[name])
        remote = {o.name: o.card() for o in op.options if not o.local}
        assert {o["name"]: o for o in cards[name]["options"]} == remote, name
        assert cards[name]["needs_mask"] == ("mask" in op.needs)
    # what names a file on the server is offered by the CLI and Python, never over HTTP
    assert {o.name for o in ops["sr"].options if o.local} == {"model"}
    assert "boxes" in {o.name for o in ops["anonymise"].options if o.local}


def _negate(photo: Photo, options: dict, _ctx) -> Photo:
    return photo.with_pixels(1 - photo.colour if options["amount"] == 1 else photo.colour * 0.5)


NEGATE = Operation(
    "negate",
    "Negative",
    "the photographic negative",
    _negate,
    (Choice("amount", "1 = the full negative, 2 = half the brightness", choices=(1, 2)),),
)


@pytest.fixture
def with_negate(monkeypatch):
    """A module declaring one more operation, in the catalogue's list."""
    module = types.ModuleType("negate_ops")
    module.OPERATIONS = (NEGATE,)
    monkeypatch.setitem(sys.modules, "negate_ops", module)
    monkeypatch.setattr(catalog, "MODULES", (*catalog.MODULES, "negate_ops"))
    catalog.operations.cache_clear()
    yield
    catalog.operations.cache_clear()


def test_a_new_operation_is_one_declaration(with_negate, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray(np.full((4, 5, 3), 40, np.uint8)).save(src)
    assert main(["edit", "negate", str(src), "-o", str(tmp_path / "out.png"), "--quiet"]) == 0
    assert (np.asarray(Image.open(tmp_path / "out.png")) == 215).all()
    assert main(["edit", "negate", str(src), "-o", str(tmp_path / "x.png"), "--amount", "3"]) == 2
    assert "amount must be one of 1, 2, got '3'" in capsys.readouterr().err
    x = torch.full((3, 2, 2), 0.25)
    assert torch.equal(jobs.apply("negate", x), 1 - x)
    cards = _http_cards()
    assert cards["negate"]["options"][0]["choices"] == [1, 2]


# ---- options -----------------------------------------------------------------------------


def test_options_parse_text_and_python_values_and_refuse_in_one_sentence():
    scale = Choice("scale", "", choices=(2, 4))
    assert scale.parse(None) == 2 and scale.parse("4") == 4 and scale.parse(4) == 4
    with pytest.raises(UserError, match="scale must be one of 2, 4, got '3'"):
        scale.parse("3")
    sigma = Number("sigma", "", low=0, high=255, auto="estimated")
    assert sigma.parse("") is None and sigma.parse("auto") is None and sigma.parse("25") == 25.0
    for bad in ("-1", "300", "nan", "inf", "x", True, [1]):
        with pytest.raises(UserError, match="sigma must be a number from 0 to 255"):
            sigma.parse(bad)
    seed = Number("seed", "", 0, whole=True, low=0, high=2**63 - 1)
    assert seed.parse("7") == 7 and seed.parse(7.0) == 7
    for bad in ("1.5", 1.5, "-2", str(2**64)):
        with pytest.raises(UserError, match="whole number from 0 to"):
            seed.parse(bad)
    with pytest.raises(ValueError, match="needs low and high"):  # no unbounded whole numbers
        Number("steps", "", 1, whole=True, low=0)
    ops = Several("ops", "", ("a",), choices=("a", "b", "c"), repeats=False)
    assert (
        ops.parse("c, a") == ("c", "a") and ops.parse(["b"]) == ("b",) and ops.parse("") == ("a",)
    )
    with pytest.raises(UserError, match="each value once"):
        ops.parse("a,a")
    with pytest.raises(UserError, match="one or more of a, b, c"):
        ops.parse("a,z")
    given = [scale, File("model", "")]
    assert parse_all(given, {"scale": "4"}, "sr") == {"scale": 4, "model": None}
    with pytest.raises(UserError, match="sr takes no option 'colour'; its options: scale, model"):
        parse_all(given, {"colour": "red"}, "sr")
    with pytest.raises(UserError, match="takes no option 'model'"):  # a server path, over HTTP
        parse_all(given, {"model": "/etc/passwd"}, "sr", remote=True)


# ---- masks -------------------------------------------------------------------------------


def _mask_photo(arr: np.ndarray, mode: str, tmp_path: Path) -> Photo:
    Image.fromarray(arr, mode).save(tmp_path / "m.png")
    return read_photo(tmp_path / "m.png")


def test_masks_follow_openais_rule_with_transparency_and_pixelsmiths_without(tmp_path):
    hole = np.zeros((6, 8), bool)
    hole[1:4, 2:6] = True
    white = np.where(hole, 255, 0).astype(np.uint8)
    assert torch.equal(
        mask_of(_mask_photo(white, "L", tmp_path))[0, 0].bool(), torch.from_numpy(hole)
    )
    rgba = np.zeros((6, 8, 4), np.uint8)  # black everywhere; transparent where to edit
    rgba[..., 3] = np.where(hole, 0, 255)
    assert torch.equal(
        mask_of(_mask_photo(rgba, "RGBA", tmp_path))[0, 0].bool(), torch.from_numpy(hole)
    )
    opaque = np.dstack([np.repeat(white[..., None], 3, -1), np.full((6, 8), 255, np.uint8)])
    got = mask_of(_mask_photo(opaque, "RGBA", tmp_path))  # opaque: read by its colour
    assert torch.equal(got[0, 0].bool(), torch.from_numpy(hole))


# ---- the plan of IN -o OUT --------------------------------------------------------------------


def _folder(root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(root / name)
    return root


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_names_formats_and_collisions(tmp_path):
    src = _folder(tmp_path / "in", ["a.png", "a.jpg", "sub/b.png"])
    out = tmp_path / "out"
    kept = plan(src, out)
    assert _rel([i.target for i in kept.items], out) == ["a.jpg", "a.png", "sub/b.png"]
    png = plan(src, out, suffix=".png")  # one format: a.png and a.jpg keep their suffix
    assert _rel([i.target for i in png.items], out) == ["a.jpg.png", "a.png.png", "sub/b.png"]
    stems = plan(src, out, outputs="stem", suffixes=(".png", ".safetensors"))
    codes = [i.output(suffix=".safetensors") for i in stems.items]
    assert _rel(codes, out) == ["a.jpg.safetensors", "a.png.safetensors", "sub/b.safetensors"]
    crops = plan(src, out, outputs="crops", suffix=".png")
    assert _rel([i.output("_face0") for i in crops.items], out)[-1] == "sub/b_face0.png"
    one = src / "sub" / "b.png"
    assert plan(one, tmp_path / "x.webp").items[0].target == tmp_path / "x.webp"
    assert plan(one, out).items[0].target == out / "b.png"  # no suffix: a folder
    assert plan(one, f"{tmp_path}/x.webp/").items[0].target == tmp_path / "x.webp" / "b.png"
    dotted = plan(src, tmp_path / "results.v2")  # not an image's suffix: a folder
    assert dotted.items[0].target == tmp_path / "results.v2" / "a.jpg"
    (tmp_path / "noext").write_bytes((src / "a.png").read_bytes())
    assert plan(tmp_path / "noext", out).items[0].target == out / "noext.png"  # its format
    stem = plan(one, tmp_path / "shirt.png", outputs="stem", suffixes=(".png", ".safetensors"))
    assert stem.items[0].output(suffix=".safetensors") == tmp_path / "shirt.safetensors"


@pytest.mark.parametrize(
    "src, out, kwargs, message",
    [
        ("in", "in", {}, "overwrite an input"),
        ("in/a.png", "in/a.png", {}, "overwrite an input"),
        ("in", "in/results", {}, "inside the input folder"),
        ("in", "in", {"outputs": "crops", "suffix": ".png"}, "inside the input folder"),
        ("in", "x.png", {}, "needs an output folder"),
        ("in", "x.jpg", {"outputs": "crops", "suffix": ".png"}, "needs an output folder"),
        ("in/a.png", "crops.png", {"outputs": "crops", "suffix": ".png"}, "writes a folder"),
        ("in/a.png", "x.gif", {}, "cannot write"),
        ("in/a.png", "x.jpg", {"suffix": ".png"}, "must be a .png"),
        ("in/a.png", "in/mask.png", {"inputs": ["in/mask.png"]}, "overwrite an input"),
        ("nope", "out", {}, "does not exist"),
    ],
)
def test_refusals_come_before_anything_is_written(tmp_path, src, out, kwargs, message):
    _folder(tmp_path / "in", ["a.png", "mask.png"])
    kwargs = {k: [tmp_path / p for p in v] if k == "inputs" else v for k, v in kwargs.items()}
    with pytest.raises(UserError, match=message):
        plan(tmp_path / src, tmp_path / out, **kwargs)


def test_unreadable_files_are_skipped_and_said_once_and_too_large_ones_refused(tmp_path):
    src = _folder(tmp_path / "in", ["a.png", "b.png"])
    (src / "bad.png").write_bytes(b"not an image")
    (src / "mask.png").write_bytes(b"also not one")
    p = plan(src, tmp_path / "out", inputs=[src / "mask.png"])
    assert [i.source.name for i in p.items] == ["a.png", "b.png"]  # the mask is not an input
    assert len(p.skipped) == 1 and p.skipped[0].startswith("bad.png (")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        p.say_skipped()
    [w] = seen
    assert w.category is PixelsmithWarning and "skipped 1 unreadable" in str(w.message)
    with pytest.raises(UserError, match="more than pixelsmith reads"):
        plan(src, tmp_path / "out", cap=5)  # over the limit: refused, not skipped


def test_two_inputs_that_would_share_an_output_are_refused_naming_both(tmp_path):
    src = _folder(tmp_path / "in", ["x.jpg", "x.png", "x.jpg.png"])
    with pytest.raises(UserError, match=r"x\.jpg and x\.jpg\.png would both be written"):
        plan(src, tmp_path / "out", suffix=".png")


def test_a_folder_of_which_nothing_reads_is_refused_not_written_as_nothing(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(src / "a.png")
    good = (src / "a.png").read_bytes()
    (src / "a.png").write_bytes(good[: len(good) // 2])  # the header reads, the data not
    rc = main(["edit", "enhance", str(src), "-o", str(tmp_path / "out"), "--methods", "gamma"])
    err = capsys.readouterr().err
    assert rc == 2 and "no image in" in err and "a.png" in err
    assert not (tmp_path / "out").exists()


def test_apply_takes_float_images_or_photos_and_refuses_the_rest_in_one_sentence():
    x = torch.rand(3, 6, 8, generator=torch.Generator().manual_seed(0))
    out = jobs.apply("enhance", x, methods="gamma")
    assert out.shape == x.shape and not torch.equal(out, x)
    for bad, message in [
        ((x * 255).to(torch.uint8), "float image"),
        (x * 255, "divide 8-bit values by 255"),
        (x[None], r"shape \(1, 3, 6, 8\)"),
        (x.numpy(), "not a ndarray"),
    ]:
        with pytest.raises(UserError, match=message):
            jobs.apply("enhance", bad, methods="gamma")
    with pytest.raises(UserError, match="enhance takes no mask"):
        jobs.apply("enhance", x, mask=torch.ones(6, 8), methods="gamma")
