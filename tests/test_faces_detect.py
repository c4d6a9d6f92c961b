"""Face detection and alignment: NMS, MTCNN (facenet-pytorch weights), Haar, LBP, align, CLI."""

from __future__ import annotations

import json
import math
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.faces import Face, align_face, detect_faces, draw_faces, iou, nms, paste_back
from pixelsmith.faces import detect as detect_mod
from pixelsmith.faces import mtcnn as mtcnn_mod
from pixelsmith.faces.align import apply_affine, template, umeyama, warp_affine
from pixelsmith.faces.nms import batched_nms

skimage_data = pytest.importorskip("skimage.data")

# Boxes read off the pictures by eye (cheek to cheek, brow to chin), in pixels (x0, y0, x1, y1).
ASTRONAUT_FACE = (183, 70, 270, 175)
GRACE_FACE = (175, 135, 350, 325)

needs_mtcnn = pytest.mark.skipif(
    not mtcnn_mod.weights_present(), reason="MTCNN weights (facenet-pytorch --no-deps) absent"
)


@pytest.fixture(scope="module")
def net():
    if not mtcnn_mod.weights_present():
        pytest.skip("MTCNN weights (facenet-pytorch --no-deps) absent")
    return detect_mod.load_mtcnn()  # the same instance detect_faces uses


def _tensor(arr: np.ndarray) -> torch.Tensor:
    arr = arr[..., None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def _grace() -> np.ndarray:
    cbook = pytest.importorskip("matplotlib.cbook")
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def _box_iou(a, b) -> float:
    return float(
        iou(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64))
    )


# ---------------------------------------------------------------- NMS against brute force


def _overlap_ref(a, b, mode):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    area = [(r[2] - r[0]) * (r[3] - r[1]) for r in (a, b)]
    return inter / (min(area) if mode == "min" else area[0] + area[1] - inter)


def _nms_ref(boxes, scores, threshold, mode):
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(_overlap_ref(boxes[i], boxes[k], mode) <= threshold for k in keep):
            keep.append(i)
    return keep


def _random_boxes(n, seed):
    """n boxes in clusters of 10 jittered copies (as a detector's proposals), random scores."""
    g = torch.Generator().manual_seed(seed)
    xy = (torch.rand(n // 10, 1, 2, generator=g, dtype=torch.float64) * 100).expand(-1, 10, -1)
    wh = (torch.rand(n // 10, 1, 2, generator=g, dtype=torch.float64) * 40 + 5).expand(-1, 10, -1)
    xy = (xy + torch.rand(n // 10, 10, 2, generator=g, dtype=torch.float64) * 6).reshape(-1, 2)
    wh = (wh + torch.rand(n // 10, 10, 2, generator=g, dtype=torch.float64) * 6).reshape(-1, 2)
    return torch.cat([xy, xy + wh], 1), torch.rand(len(xy), generator=g, dtype=torch.float64)


@pytest.mark.parametrize("mode", ["union", "min"])
def test_iou_matches_brute_force(mode):
    a, _ = _random_boxes(30, 1)
    b, _ = _random_boxes(20, 2)
    got = iou(a, b, mode)
    ref = [[_overlap_ref(x, y, mode) for y in b.tolist()] for x in a.tolist()]
    assert got.shape == (30, 20)
    torch.testing.assert_close(got, torch.tensor(ref, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["union", "min"])
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_matches_brute_force(mode, threshold):
    for seed in range(3):
        boxes, scores = _random_boxes(200, 10 + seed)
        got = nms(boxes, scores, threshold, mode).tolist()
        assert got == _nms_ref(boxes.tolist(), scores.tolist(), threshold, mode)
        assert len(got) < 200  # the random boxes do overlap: something was suppressed


def test_batched_nms_keeps_groups_apart():
    boxes, scores = _random_boxes(120, 5)
    groups = torch.arange(120) % 3
    got = sorted(batched_nms(boxes, scores, groups, 0.5).tolist())
    ref = []
    for g in range(3):
        idx = (groups == g).nonzero()[:, 0]
        ref += idx[_nms_ref(boxes[idx].tolist(), scores[idx].tolist(), 0.5, "union")].tolist()
    assert got == sorted(ref)
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


# ---------------------------------------------------------------- MTCNN


def _check_one_face(faces, hand_box):
    assert len(faces) == 1, [f.to_dict() for f in faces]
    f = faces[0]
    assert f.detector == "mtcnn" and f.score > 0.9
    assert _box_iou(f.box, hand_box) > 0.5
    x0, y0, x1, y1 = f.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in f.landmarks)
    left, right, nose, mouth_l, mouth_r = f.landmarks
    assert left[0] < nose[0] < right[0]  # image-left eye first
    assert mouth_l[0] < mouth_r[0]
    assert max(left[1], right[1]) < nose[1] < min(mouth_l[1], mouth_r[1])  # eyes above the mouth


def test_mtcnn_finds_the_astronaut(net):
    _check_one_face(detect_faces(skimage_data.astronaut(), "mtcnn"), ASTRONAUT_FACE)
    assert "facenet_pytorch" not in sys.modules


def test_mtcnn_finds_grace_hopper(net):
    _check_one_face(detect_faces(_tensor(_grace()), "mtcnn"), GRACE_FACE)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "brick"])
def test_mtcnn_finds_no_face_where_there_is_none(net, name):
    assert detect_faces(getattr(skimage_data, name)(), "mtcnn") == []


def test_input_forms_agree(net):
    small = np.asarray(Image.fromarray(skimage_data.astronaut()).resize((256, 256)))
    base = detect_faces(_tensor(small), "mtcnn")
    assert len(base) == 1
    rgba = torch.cat([_tensor(small), torch.ones(1, 256, 256)])
    for other in (Image.fromarray(small), small, _tensor(small)[None], rgba):
        got = detect_faces(other, "mtcnn")
        assert [f.box for f in got] == [f.box for f in base]
    grey = detect_faces(Image.fromarray(small).convert("L"), "mtcnn")
    assert len(grey) == 1 and _box_iou(grey[0].box, base[0].box) > 0.8
    with pytest.raises(UserError):
        detect_faces(torch.zeros(2, 3, 8, 8), "mtcnn")


def test_facenet_pytorch_is_never_imported(net):
    detect_faces(skimage_data.camera(), "mtcnn")
    assert "facenet_pytorch" not in sys.modules


def test_weights_are_hash_checked(tmp_path):
    src = mtcnn_mod.weights_dir()
    if not mtcnn_mod.weights_present():
        pytest.skip("MTCNN weights absent")
    for n in ("pnet", "rnet", "onet"):
        shutil.copy(src / f"{n}.pt", tmp_path / f"{n}.pt")
    raw = bytearray((tmp_path / "pnet.pt").read_bytes())
    raw[-100] ^= 1
    (tmp_path / "pnet.pt").write_bytes(bytes(raw))
    with pytest.raises(UserError, match="sha256"):
        mtcnn_mod.MTCNN(tmp_path)
    with pytest.raises(UserError, match="facenet-pytorch"):
        mtcnn_mod.MTCNN(tmp_path / "nowhere")


def test_default_detector_falls_back(monkeypatch, tmp_path):
    monkeypatch.setattr(mtcnn_mod, "weights_dir", lambda: tmp_path)
    assert detect_mod.default_detector() == "haar"
    assert "mtcnn" not in detect_mod.available_detectors()
    with pytest.raises(UserError, match="facenet-pytorch"):
        detect_faces(skimage_data.camera(), "mtcnn")
    with pytest.raises(UserError, match="unknown face detector"):
        detect_faces(skimage_data.camera(), "dlib")


def test_a_fallback_to_a_weaker_detector_is_said_in_one_line_naming_the_install(
    monkeypatch, tmp_path, capsys
):
    pytest.importorskip("cv2")
    monkeypatch.setattr(mtcnn_mod, "weights_dir", lambda: tmp_path)
    monkeypatch.setattr(detect_mod, "_noted", set())
    Image.fromarray(skimage_data.astronaut()).save(tmp_path / "a.png")
    assert main(["faces", "detect", str(tmp_path / "a.png"), "--quiet"]) == 0
    [line] = [ln for ln in capsys.readouterr().err.splitlines() if "fell back" in ln]
    assert line.startswith("pixelsmith: warning: face detection fell back to OpenCV's Haar")
    assert "MTCNN weights are not installed" in line and mtcnn_mod.INSTALL_HINT in line
    assert main(["faces", "detect", str(tmp_path / "a.png"), "--detector", "haar"]) == 0
    assert "fell back" not in capsys.readouterr().err  # asked for by name: no fallback
    assert detect_mod.fallback_note("mtcnn") is None


# ---------------------------------------------------------------- the cascades


def test_haar_finds_the_astronaut_and_her_eyes():
    pytest.importorskip("cv2")
    faces = detect_faces(skimage_data.astronaut(), "haar")
    assert len(faces) == 1 and _box_iou(faces[0].box, ASTRONAUT_FACE) > 0.5
    (lx, ly), (rx, ry) = faces[0].landmarks[:2]
    # the eyes, read off the picture: about (203, 102) and (246, 103)
    assert abs(lx - 203) < 8 and abs(rx - 246) < 8 and abs(ly - 102) < 8 and abs(ry - 103) < 8
    assert detect_faces(skimage_data.astronaut(), "haar", threshold=faces[0].score + 1) == []


def test_haar_finds_eyes_behind_glasses():
    pytest.importorskip("cv2")
    faces = detect_faces(_grace(), "haar")
    assert len(faces) == 1 and _box_iou(faces[0].box, GRACE_FACE) > 0.5
    (lx, ly), (rx, ry) = faces[0].landmarks[:2]
    # the eyes behind the glasses, read off the picture: about (222, 193) and (309, 188)
    assert abs(lx - 222) < 10 and abs(rx - 309) < 10 and abs(ly - 193) < 10 and abs(ry - 188) < 10


def test_lbp_finds_the_astronaut():
    faces = detect_faces(skimage_data.astronaut(), "lbp")
    assert max(_box_iou(f.box, ASTRONAUT_FACE) for f in faces) > 0.5
    assert all(f.landmarks is None and f.score == 1.0 for f in faces)


def test_missing_extra_names_the_install(monkeypatch):
    from pixelsmith.faces import cascades

    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(UserError, match=r"pixelsmith\[faces\]"):
        detect_faces(skimage_data.camera(), "haar")
    monkeypatch.setitem(sys.modules, "skimage.feature", None)
    cascades._lbp.cache_clear()
    try:
        with pytest.raises(UserError, match=r"pixelsmith\[faces\]"):
            detect_faces(skimage_data.camera(), "lbp")
    finally:
        cascades._lbp.cache_clear()


# ---------------------------------------------------------------- alignment


def test_umeyama_matches_scikit_image():
    tf = pytest.importorskip("skimage.transform")
    g = torch.Generator().manual_seed(0)
    src = torch.rand(5, 2, generator=g, dtype=torch.float64) * 100
    dst = template(112)
    if hasattr(tf.SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26
        ref = tf.SimilarityTransform.from_estimate(src.numpy(), dst.numpy())
    else:
        ref = tf.SimilarityTransform()
        assert ref.estimate(src.numpy(), dst.numpy())
    torch.testing.assert_close(umeyama(src, dst), torch.from_numpy(ref.params[:2]))


def test_warp_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    img = skimage_data.astronaut()[100:300, 150:350].astype(np.float32) / 255
    a = math.radians(20)
    m = torch.tensor(
        [[0.8 * math.cos(a), -0.8 * math.sin(a), 40], [0.8 * math.sin(a), 0.8 * math.cos(a), -30]],
        dtype=torch.float64,
    )
    got = warp_affine(torch.from_numpy(img).permute(2, 0, 1), m, (120, 140))
    # OpenCV puts pixel centres on integers: shift by half a pixel on both sides of the map
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    full = np.vstack([m.numpy(), [0, 0, 1]])
    m_cv = (np.linalg.inv(shift) @ full @ shift)[:2]
    ref = cv2.warpAffine(
        img, m_cv, (140, 120), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    diff = (got.permute(1, 2, 0).numpy() - ref)[2:-2, 2:-2]
    assert np.abs(diff).max() < 2e-2  # OpenCV's bilinear weights are 5-bit fixed point
    assert np.abs(diff).mean() < 2e-3


def test_align_puts_the_eyes_level_on_a_tilted_face(net):
    tf = pytest.importorskip("skimage.transform")
    img = skimage_data.astronaut()
    tilted = (tf.rotate(img, 30, center=(225, 120), mode="edge") * 255).round().astype(np.uint8)
    x = _tensor(tilted)
    face = detect_faces(x, "mtcnn")[0]
    (lx, ly), (rx, ry) = face.landmarks[:2]
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) > 15  # the input is tilted

    crop, m = align_face(x, face, 112, points="eyes")
    eyes = apply_affine(m, torch.tensor(face.landmarks[:2]))
    torch.testing.assert_close(eyes, template(112)[:2])  # exactly on the template
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-9

    crop, m = align_face(x, face, 160, padding=0.25)
    assert crop.shape == (3, 160, 160) and m.shape == (2, 3)
    again = detect_faces(crop, "mtcnn")  # re-detected on the aligned crop
    assert len(again) == 1
    (lx, ly), (rx, ry) = again[0].landmarks[:2]
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 4
    err = torch.tensor(again[0].landmarks[:2]) - template(160, 0.25)[:2]
    assert err.abs().max() < 5


def test_align_without_landmarks_and_paste_back():
    img = _tensor(skimage_data.astronaut())
    face = Face((177.0, 71.0, 262.0, 156.0), 1.0, None, "lbp")  # LBP's box of the astronaut
    crop, m = align_face(img, face, 64)
    assert crop.shape == (3, 64, 64)
    assert abs(m[0, 1]) < 1e-9 and abs(m[1, 0]) < 1e-9  # upright: scale and shift only
    eyes = apply_affine(m, torch.tensor([[203.0, 102.0], [246.0, 103.0]]))  # read off the photo
    assert (eyes - template(64)[:2]).abs().max() < 8  # near the template, from the box alone
    back = paste_back(img, crop, m)
    corners = apply_affine(
        torch.linalg.inv(torch.cat([m, torch.tensor([[0, 0, 1.0]])]))[:2],
        torch.tensor([[0.0, 0], [64, 64]]),
    )
    (x0, y0), (x1, y1) = corners.tolist()
    outside = torch.ones(512, 512, dtype=torch.bool)
    outside[int(y0) - 1 : int(y1) + 2, int(x0) - 1 : int(x1) + 2] = False
    assert torch.equal(back[:, outside], img[:, outside])  # untouched outside the crop
    inner = back[:, int(y0) + 4 : int(y1) - 4, int(x0) + 4 : int(x1) - 4]
    ref = img[:, int(y0) + 4 : int(y1) - 4, int(x0) + 4 : int(x1) - 4]
    assert (inner - ref).abs().mean() < 0.03  # the same pixels, blurred by two resamplings
    with pytest.raises(UserError, match="16"):
        align_face(img, face, 8)


def test_draw_faces_marks_the_box():
    img = torch.zeros(3, 100, 120)
    face = Face(
        (10.0, 20.0, 60.0, 80.0), 0.9, ((25, 40), (45, 40), (35, 55), (28, 68), (42, 68)), "mtcnn"
    )
    out = draw_faces(img, [face])
    assert out.shape == (3, 100, 120)
    assert out[1, 50, 10] == 1.0 and out[0, 50, 10] == 0.0  # green box edge
    assert out[0, 40, 25] == 1.0  # the first eye's dot
    assert out[:, 90:, 80:].abs().max() == 0  # nothing drawn far away


# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    Image.fromarray(skimage_data.astronaut()).resize((256, 256)).save(root / "astronaut.png")
    (root / "sub").mkdir()
    Image.fromarray(skimage_data.coffee()).resize((200, 133)).save(root / "sub" / "coffee.jpg")
    (root / "broken.png").write_bytes(b"not an image")
    return root


def test_cli_detect_json_and_drawing(net, folder, tmp_path, capsys):
    out = tmp_path / "drawn"
    assert main(["faces", "detect", str(folder), "--json", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    rows = {r["file"]: r for r in json.loads(captured.out)}
    assert set(rows) == {"astronaut.png", "sub/coffee.jpg"}
    assert "broken.png" in captured.err  # reported and skipped
    assert (rows["astronaut.png"]["width"], rows["astronaut.png"]["height"]) == (256, 256)
    [face] = rows["astronaut.png"]["faces"]
    assert Face.from_dict(face).detector == "mtcnn" and set(face["landmarks"]) >= {"nose"}
    assert rows["sub/coffee.jpg"]["faces"] == []
    assert Image.open(out / "astronaut.png").size == (256, 256)
    assert (out / "sub" / "coffee.png").exists()

    assert main(["faces", "detect", str(folder / "astronaut.png"), "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "face 0" in lines[0] and "left_eye=" in lines[0]


def test_cli_align_keeps_apart_inputs_that_share_a_stem(net, tmp_path, capsys):
    src = tmp_path / "same"
    src.mkdir()
    face = Image.fromarray(skimage_data.astronaut()).resize((256, 256))
    face.save(src / "a.png")
    face.save(src / "a.jpg", quality=95)
    out = tmp_path / "aligned"
    assert main(["faces", "align", str(src), "-o", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.glob("*.png")) == ["a.jpg_face0.png", "a.png_face0.png"]


def test_cli_align(net, folder, tmp_path, capsys):
    out = tmp_path / "aligned"
    assert main(["faces", "align", str(folder), "-o", str(out), "--size", "96", "--quiet"]) == 0
    assert sorted(p.name for p in out.rglob("*.png")) == ["astronaut_face0.png"]
    assert Image.open(out / "astronaut_face0.png").size == (96, 96)
    assert "1 aligned face" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["detect", "{folder}/missing.png"], "does not exist"),
        (["detect", "{folder}/broken.png"], "broken.png"),
        (["detect", "{folder}", "--detector", "dlib"], "detector must be one of auto, mtcnn"),
        (["align", "{folder}", "-o", "{out}", "--size", "8"], "16"),
        (["detect", "{folder}", "-o", "{out}/one.png"], "output folder"),
        (["detect", "{folder}/astronaut.png", "--min-size", "0"], "min_size must be a whole"),
        (["detect", "{folder}/astronaut.png", "--min-size", "inf"], "min_size must be a whole"),
        (["detect", "{folder}/astronaut.png", "--max-pixels", "0"], "--max-pixels must be"),
    ],
)
def test_cli_errors_are_one_line(folder, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    argv = ["faces"] + [a.format(folder=folder, out=out) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pixelsmith: error:") and message in err[0]
    assert not out.exists()


def test_cli_missing_extra(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    out = tmp_path / "out"
    assert main(["faces", "detect", str(folder), "--detector", "haar", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pixelsmith[faces]" in err[0] and not out.exists()
