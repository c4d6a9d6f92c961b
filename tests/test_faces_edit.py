"""Face anonymisation and restoration: only the regions change, the blend has no seam, every
method runs, boxes files and bad input are handled before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_stylegan
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.data.degrade import imresize
from pixelsmith.errors import UserError
from pixelsmith.faces.anonymise import METHODS, anonymise
from pixelsmith.faces.blend import (
    Region,
    default_feather,
    face_region,
    feather_mask,
    paste,
)
from pixelsmith.faces.restore import restore_faces
from pixelsmith.faces.types import Face
from pixelsmith.jobs.faces import read_boxes


def _image(h: int = 64, w: int = 80, c: int = 3, seed: int = 0) -> torch.Tensor:
    """A smooth random image (low-frequency noise), so edits stand out against it."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, c, h // 8, w // 8, generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic").clamp(0, 1)[0]


def _outside(image: torch.Tensor, regions: list[Region]) -> torch.Tensor:
    keep = torch.ones(image.shape[-2:], dtype=torch.bool)
    for r in regions:
        keep[r.top : r.bottom, r.left : r.right] = False
    return keep


FACE = Face((20.0, 16.0, 44.0, 44.0), 0.99)


@pytest.fixture(scope="module")
def tiny_generator():
    m = make_stylegan((1, 16, 16), mapping_layers=1)
    m.add_ema_copies()
    return m.eval()


def test_feather_mask_is_zero_outside_one_inside_and_smooth():
    m = feather_mask(20, 30, 5)[0]
    assert m.shape == (20, 30)
    assert float(m[10, 15]) == 1.0 and float(m.min()) > 0  # every region pixel gets some weight
    padded = torch.nn.functional.pad(m, (1, 1, 1, 1))  # the pixels just outside weigh 0
    step = max(padded.diff(dim=0).abs().max(), padded.diff(dim=1).abs().max())
    # the smoothstep's slope is at most 1.5 / feather per pixel
    assert float(step) <= 1.5 / 5 + 1e-6
    assert torch.equal(feather_mask(4, 6, 0)[0], torch.ones(4, 6))


def test_face_region_grows_by_the_margin_and_clips():
    r = face_region(FACE, 64, 80, margin=0.25)
    assert (r.top, r.left, r.bottom, r.right) == (9, 14, 51, 50)
    edge = face_region(Face((70.0, 50.0, 90.0, 70.0), 1.0), 64, 80, margin=0.5)
    assert edge.bottom == 64 and edge.right == 80
    with pytest.raises(UserError, match="outside"):
        face_region(Face((100.0, 100.0, 120.0, 120.0), 1.0), 64, 80)
    with pytest.raises(UserError, match="margin"):
        face_region(FACE, 64, 80, margin=-0.1)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "generate"])
def test_pixels_outside_the_regions_are_untouched(method):
    img = _image()
    faces = [FACE, Face((56.0, 4.0, 72.0, 22.0), 0.9)]
    done = anonymise(img, faces, method)
    keep = _outside(img, done.regions)
    assert torch.equal(done.image[:, keep], img[:, keep])
    inside = ~keep
    assert (done.image[:, inside] - img[:, inside]).abs().mean() > 0.01  # the faces did change
    # the detected boxes themselves are fully replaced (weight 1), not half-blended
    x0, y0, x1, y1 = (int(v) for v in FACE.box)
    assert done.feathers[0] <= (done.regions[0].height - (y1 - y0)) // 2 + 1


def test_generate_pastes_a_coloured_face_and_keeps_the_rest(tiny_generator):
    img = _image()
    done = anonymise(img, [FACE], "generate", generator=tiny_generator, seed=3)
    keep = _outside(img, done.regions)
    assert torch.equal(done.image[:, keep], img[:, keep])
    again = anonymise(img, [FACE], "generate", generator=tiny_generator, seed=3)
    other = anonymise(img, [FACE], "generate", generator=tiny_generator, seed=4)
    assert torch.equal(done.image, again.image) and not torch.equal(done.image, other.image)


def test_blend_leaves_no_seam_above_the_feather_bound():
    img = _image(seed=1)
    r = face_region(FACE, 64, 80, 0.25)
    patch = torch.zeros(3, r.height, r.width)  # a solid black patch: the worst case for a seam
    fw = default_feather(r, 0.25)
    out = paste(img, patch, r, fw)
    jump = float((patch - r.crop(img)).abs().max())
    own = max(float(img.diff(dim=1).abs().max()), float(img.diff(dim=2).abs().max()))
    # Across any pair of neighbours the output changes by the image's own step plus at most
    # the mask's slope times the difference: no hard edge where the patch meets the photo.
    steps = max(float(out.diff(dim=1).abs().max()), float(out.diff(dim=2).abs().max()))
    assert steps <= own + 1.5 / fw * jump + 1e-5
    hard = img.clone()
    hard[:, r.top : r.bottom, r.left : r.right] = 0
    assert max(float(hard.diff(dim=1).abs().max()), float(hard.diff(dim=2).abs().max())) > steps


def test_grey_images_and_bad_arguments():
    grey = _image(c=1)
    out = anonymise(grey, [FACE], "pixelate").image
    assert out.shape == grey.shape
    assert anonymise(grey, [], "blur").image.equal(grey)
    with pytest.raises(UserError, match="method"):
        anonymise(grey, [FACE], "erase")
    with pytest.raises(UserError, match="colour"):
        anonymise(_image(), [FACE], "solid", colour=[2.0])
    with pytest.raises(UserError, match="feather"):
        anonymise(grey, [FACE], "blur", feather=-1)
    with pytest.raises(UserError, match="blocks"):
        anonymise(grey, [FACE], "pixelate", blocks=0)
    with pytest.raises(UserError, match="sigma"):
        anonymise(grey, [FACE], "blur", blur=0)


def test_anonymised_faces_are_no_closer_to_their_originals_than_strangers():
    """The matcher tells a face from others when slightly shifted, and no longer once
    anonymised: each anonymised face is no more similar to its original than the median
    stranger is (the 100 LFW faces, x4: re-identification among 100, chance 1)."""
    from skimage.data import lfw_subset

    from pixelsmith.faces.match import FaceMatcher

    x = torch.from_numpy(lfw_subset()[:100]).float()[:, None]
    x = torch.nn.functional.interpolate(x, size=(100, 100), mode="bicubic").clamp(0, 1)
    box = Face((12.0, 12.0, 88.0, 88.0), 1.0)
    m = FaceMatcher()

    def crops(t):
        return t[..., 12:88, 12:88]

    shifted = torch.roll(x, shifts=(2, 2), dims=(2, 3))
    base = m.similarity_matrix(crops(shifted), crops(x))
    assert bool((base.argmax(1) == torch.arange(100)).all())  # the control: all re-identified
    for method in ("blur", "pixelate", "solid"):
        out = torch.stack([anonymise(im, [box], method, 0.1).image for im in x])
        sim = m.similarity_matrix(crops(out), crops(x))
        strangers = sim[~torch.eye(100, dtype=torch.bool)].median()
        assert float(sim.diagonal().median()) < float(base.diagonal().median()) - 0.2
        hits = int((sim.argmax(1) == torch.arange(100)).sum())
        assert hits <= 12, (method, hits)  # chance is 1 in 100; the control gets 100
        assert float(sim.diagonal().median()) < float(strangers) + 0.1


def test_restore_changes_only_the_faces_and_sr_enlarges_the_rest_by_bicubic():
    g = torch.Generator().manual_seed(0)
    img = (_image() + 0.08 * torch.randn(3, 64, 80, generator=g)).clamp(0, 1)
    out, regions = restore_faces(img, [FACE], ("denoise",))
    keep = _outside(img, regions)
    assert torch.equal(out[:, keep], img[:, keep])
    clean = _image()
    r = regions[0]
    before = (r.crop(img) - r.crop(clean)).abs().mean()
    after = (r.crop(out) - r.crop(clean)).abs().mean()
    assert after < 0.8 * before
    big, regions = restore_faces(img, [FACE], ("sr",), scale=2)
    assert big.shape == (3, 128, 160)
    ref = imresize(img[None], scale=2)[0].clamp(0, 1)
    keep2 = keep.repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.allclose(big[:, keep2], ref[:, keep2], atol=1e-6)
    with pytest.raises(UserError, match="unknown"):
        restore_faces(img, [FACE], ("sharpen",))
    with pytest.raises(UserError, match="x3"):
        restore_faces(img, [FACE], ("sr",), scale=3)


def _png(path, h=64, w=80, mode="RGB"):
    arr = (_image(h, w).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    im = Image.fromarray(arr)
    if mode == "RGBA":
        im.putalpha(200)
    im.save(path)
    return path


def test_boxes_files_in_both_formats(tmp_path):
    plain = tmp_path / "b.json"
    plain.write_text(json.dumps([[20, 16, 44, 44]]))
    assert read_boxes(plain)[0].box == (20.0, 16.0, 44.0, 44.0)
    det = tmp_path / "d.json"
    entry = {"file": "x/a.png", "width": 80, "height": 64, "faces": [FACE.to_dict()]}
    det.write_text(json.dumps([entry]))
    got = read_boxes(det)
    assert list(got) == ["x/a.png"] and got["x/a.png"][0].box == FACE.box
    bad_cases = [
        ("{", "not JSON"),
        ("[[1, 2, 3]]", r"\[x0"),
        ("[[5, 5, 1, 1]]", "empty"),
        ("[[0, 0, 1e999, 5]]", "finite"),
        ('[["a", 0, 5, 5]]', "four numbers"),
    ]
    for bad, why in bad_cases:
        plain.write_text(bad)
        with pytest.raises(UserError, match=why):
            read_boxes(plain)
    with pytest.raises(UserError, match="does not exist"):
        read_boxes(tmp_path / "nope.json")


def test_cli_anonymise_with_boxes_keeps_alpha_and_reports(tmp_path, capsys):
    src = _png(tmp_path / "in.png", mode="RGBA")
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps([[20, 16, 44, 44]]))
    out = tmp_path / "out.png"
    args = ["faces", "anonymise", str(src), "-o", str(out), "--boxes", str(boxes)]
    assert main([*args, "--method", "pixelate", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[0]["faces"] == 1 and report[0]["regions"][0]["region"] == [9, 14, 51, 50]
    a, b = np.asarray(Image.open(src)), np.asarray(Image.open(out))
    assert b.shape == a.shape and (b[..., 3] == a[..., 3]).all()
    assert (a[:9] == b[:9]).all() and (a[..., :14, :] == b[..., :14, :]).all()
    assert not (a[20:40, 24:40] == b[20:40, 24:40]).all()


@pytest.mark.parametrize(
    "extra, why",
    [
        (["--margin", "5"], "margin"),
        (["--feather", "-2"], "feather"),
        (["--boxes", "MISSING"], "does not exist"),
    ],
)
def test_cli_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, capsys, extra, why):
    src = _png(tmp_path / "in.png")
    out = tmp_path / "out" / "o.png"
    extra = [str(tmp_path / "missing.json") if e == "MISSING" else e for e in extra]
    code = main(["faces", "anonymise", str(src), "-o", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and why in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_refuses_to_overwrite_its_input(tmp_path, capsys):
    src = _png(tmp_path / "in.png")
    boxes = tmp_path / "b.json"
    boxes.write_text("[[20, 16, 44, 44]]")
    before = src.read_bytes()
    code = main(["faces", "anonymise", str(src), "-o", str(src), "--boxes", str(boxes)])
    assert code == 2 and "overwrite" in capsys.readouterr().err
    assert src.read_bytes() == before


def test_a_face_on_the_image_border_is_replaced_up_to_the_border():
    """No feather on the sides that lie on the image's edge: the face there is fully gone."""
    img = torch.ones(3, 100, 100)
    for box in [(-20.0, 20.0, 40.0, 80.0), (0.0, 0.0, 100.0, 100.0)]:
        out = anonymise(img, [Face(box, 1.0)], "solid").image
        x0, y0, x1, y1 = (max(0, int(v)) for v in box)
        face = out[:, y0 : min(100, y1), x0 : min(100, x1)]
        assert float(face.max()) == 0.0, box  # black up to the image's edge, corners included


def test_a_folder_with_a_broken_file_and_boxes_by_relative_path(tmp_path, capsys):
    src = tmp_path / "in"
    (src / "x").mkdir(parents=True)
    (src / "y").mkdir()
    _png(src / "x" / "a.png")
    _png(src / "y" / "a.png")
    good = (src / "x" / "a.png").read_bytes()
    (src / "y" / "b.png").write_bytes(good[: len(good) // 2])  # the header reads, the data not
    entry = {"file": "x/a.png", "faces": [FACE.to_dict()]}
    boxes = tmp_path / "b.json"
    boxes.write_text(json.dumps([entry]))
    out = tmp_path / "out"
    code = main(["faces", "anonymise", str(src), "-o", str(out), "--boxes", str(boxes), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "skipped" in captured.err and "b.png" in captured.err
    assert "no boxes" in captured.err  # y/a.png is not in the boxes file
    report = {Path(e["file"]).relative_to(src).as_posix(): e for e in json.loads(captured.out)}
    assert report["x/a.png"]["faces"] == 1 and report["y/a.png"]["faces"] == 0
    same = np.asarray(Image.open(out / "y" / "a.png"))
    assert (same == np.asarray(Image.open(src / "y" / "a.png"))).all()
    assert not (out / "y" / "b.png").exists()


def test_a_box_outside_a_later_image_is_refused_before_anything_is_written(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _png(src / "a.png", 64, 80)
    _png(src / "b.png", 8, 8)
    boxes = tmp_path / "b.json"
    boxes.write_text("[[20, 16, 44, 44]]")
    out = tmp_path / "out"
    code = main(["faces", "anonymise", str(src), "-o", str(out), "--boxes", str(boxes)])
    err = capsys.readouterr().err
    assert code == 2 and "b.png" in err and "outside" in err
    assert not out.exists()
