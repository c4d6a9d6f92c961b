"""The service's edit, interpolation and face endpoints, its bounded queue, and a fuzz pass.

Each edit's answer must be the library's own result on the same upload (the server adds no
logic), uploads are decoded by content under the pixel cap, outputs carry no metadata, a full
queue answers 429 and a slow job 503 (both with Retry-After), and every malformed request or
image is a 4xx with a one-line message while the server keeps answering.
"""

from __future__ import annotations

import asyncio
import base64
import io
import pathlib
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from conftest import make_cyclegan, make_gan
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
pytest.importorskip("python_multipart", reason="the serve extra (python-multipart) is missing")

from fastapi.testclient import TestClient  # noqa: E402

from pixelsmith.edit.photo import encode_photo, read_photo_bytes  # noqa: E402
from pixelsmith.jobs import apply  # noqa: E402
from pixelsmith.jobs.stamp import Stamp  # noqa: E402
from pixelsmith.models.cyclegan import CycleGAN  # noqa: E402
from pixelsmith.models.gan import GAN  # noqa: E402
from pixelsmith.serve import (
    generation,  # noqa: E402
    work,  # noqa: E402
)
from pixelsmith.serve.app import ServeConfig, Served, create_app  # noqa: E402


def _gan() -> GAN:
    gan = make_gan((3, 16, 16), 3)
    gan.add_ema_copies()
    return gan.eval()


def _cyclegan() -> CycleGAN:
    return make_cyclegan((3, 16, 16), seed=1, d_layers=2).eval()


@pytest.fixture(scope="module")
def served():
    gan, cyc = _gan(), _cyclegan()
    models = {"tiny": Served("tiny", gan, "test"), "cyc": Served("cyc", cyc, "test")}
    # Unstamped (no mark, no manifest), so each answer is exactly the library's result; the
    # stamp the service puts on by default is tested in test_serve_provenance.py.
    return TestClient(create_app(models, stamp=Stamp())), gan, cyc


def _png(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _photo(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([yy * 255 / h, xx * 255 / w, (yy + xx) * 128 / (h + w)], -1)
    return np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)


def _decoded(r) -> bytes:
    assert r.status_code == 200, r.text
    return base64.b64decode(r.json()["data"][0]["b64_json"])


def _edit(c, data: dict, image: bytes, **files):
    parts = {"image": ("photo.png", image, "image/png")}
    parts.update({k: (f"{k}.png", v, "image/png") for k, v in files.items()})
    return c.post("/v1/images/edits", data=data, files=parts)


def test_edits_are_listed_with_their_options_and_translate_names_the_served_cyclegan(served):
    c, _, _ = served
    ops = {o["id"]: o for o in c.get("/v1/edits").json()["data"]}
    assert {
        "sr",
        "denoise",
        "inpaint",
        "enhance",
        "anonymise",
        "restore-faces",
        "translate",
    } <= set(ops)
    assert ops["inpaint"]["needs_mask"] and not ops["sr"]["needs_mask"]
    sr = {o["name"]: o for o in ops["sr"]["options"]}
    assert sr["scale"]["choices"] == [2, 4] and "model" not in sr  # no server paths offered
    assert ops["sr"]["variants"] == ["sr-x2", "sr-x4"]
    assert ops["translate"]["models"] == ["cyc"]
    only_gan = TestClient(create_app({"tiny": Served("tiny", _gan(), "test")}))
    assert "translate" not in {o["id"] for o in only_gan.get("/v1/edits").json()["data"]}


@pytest.mark.parametrize(
    "operation, fields, options",
    [
        ("sr", {"scale": "2"}, {"scale": 2}),
        ("sr-x4", {}, {"scale": 4}),
        ("denoise", {"sigma": "25"}, {"sigma": 25.0}),
        ("enhance", {"methods": "autocontrast,gamma"}, {"methods": ["autocontrast", "gamma"]}),
        ("enhance", {}, {}),
    ],
)
def test_each_edit_answers_exactly_what_the_library_makes_of_the_upload(
    served, operation, fields, options
):
    c, _, _ = served
    upload = _png(_photo())
    got = _decoded(_edit(c, {"operation": operation, **fields}, upload))
    want = apply(operation, read_photo_bytes(upload, "x"), **options)
    assert got == encode_photo(want, pathlib.Path("r.png"))
    if operation.startswith("sr"):
        s = options["scale"]
        assert Image.open(io.BytesIO(got)).size == (40 * s, 48 * s)


def test_inpaint_fills_the_painted_mask_only_and_refuses_a_missing_or_misfit_mask(served):
    c, _, _ = served
    arr = _photo()
    mask = np.zeros(arr.shape[:2], np.uint8)
    mask[10:25, 8:30] = 255
    data = {"operation": "inpaint", "method": "harmonic"}
    out = np.asarray(Image.open(io.BytesIO(_decoded(_edit(c, data, _png(arr), mask=_png(mask))))))
    keep = mask == 0
    assert np.array_equal(out[keep], arr[keep])
    assert np.abs(out[~keep].astype(int) - arr[~keep]).mean() > 1  # the hole was refilled
    r = _edit(c, data, _png(arr))
    assert r.status_code == 400 and "mask" in r.json()["error"]["message"]
    r = _edit(c, data, _png(arr), mask=_png(mask[:20]))
    assert r.status_code == 400 and "same size" in r.json()["error"]["message"]


def test_inpaint_texture_names_the_shipped_texture_model_as_the_library_does(served):
    c, _, _ = served
    arr = _photo()
    mask = np.zeros(arr.shape[:2], np.uint8)
    mask[10:25, 8:30] = 255
    got = _decoded(_edit(c, {"operation": "inpaint-texture"}, _png(arr), mask=_png(mask)))
    photo = read_photo_bytes(_png(arr), "x")
    m = torch.from_numpy(mask > 0).float()
    want = encode_photo(apply("inpaint", photo, mask=m, method="texture"), pathlib.Path("r.png"))
    default = encode_photo(apply("inpaint", photo, mask=m), pathlib.Path("r.png"))
    assert got == want != default


def test_translate_runs_the_served_cyclegan_and_raw_bytes_come_back_by_accept(served):
    c, _, cyc = served
    upload = _png(_photo(16, 16))
    r = c.post(
        "/v1/images/edits",
        data={"operation": "translate", "model": "cyc", "direction": "b2a"},
        files={"image": ("p.png", upload, "image/png")},
        headers={"Accept": "image/png"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    got = np.asarray(Image.open(io.BytesIO(r.content))).astype(float) / 255
    x = torch.from_numpy(_photo(16, 16)).permute(2, 0, 1)[None].float() / 255
    want = cyc.translate(x, "b2a")[0].permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6


def test_outputs_carry_no_exif_or_location_even_when_the_upload_does(served):
    c, _, _ = served
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    upload = _png(_photo(), "JPEG", exif=exif.tobytes(), quality=95)
    assert Image.open(io.BytesIO(upload)).getexif()
    for fmt in ("png", "jpeg", "webp"):
        im = Image.open(
            io.BytesIO(_decoded(_edit(c, {"operation": "denoise", "output_format": fmt}, upload)))
        )
        assert not im.getexif() and "exif" not in im.info and im.format.lower() == fmt


def test_interpolation_ends_are_the_seeds_own_images(served):
    c, gan, _ = served
    r = c.post("/v1/images/interpolations", json={"model": "tiny", "seeds": [3, 9], "steps": 5})
    assert r.status_code == 200
    data = r.json()["data"]
    assert [d["t"] for d in data] == [0.0, 0.25, 0.5, 0.75, 1.0]
    for d, seed in ((data[0], 3), (data[-1], 9)):
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(d["b64_json"])))).astype(float)
        want = gan.sample(1, seed=seed)[0].permute(1, 2, 0).numpy() * 255
        assert np.abs(got - want).max() <= 1.0
    bad = c.post("/v1/images/interpolations", json={"seeds": [1], "steps": 5, "model": "tiny"})
    assert bad.status_code == 400 and "two whole numbers" in bad.json()["error"]["message"]


def test_restore_faces_changes_the_face_only_and_sr_doubles_the_photo(served):
    skimage = pytest.importorskip("skimage.data")
    c, _, _ = served
    arr = skimage.astronaut()[::2, ::2].copy()  # 256x256, the face near (100, 60)
    noisy = np.clip(arr + np.random.default_rng(0).normal(0, 20, arr.shape), 0, 255)
    upload = _png(noisy.astype(np.uint8))
    out = np.asarray(
        Image.open(
            io.BytesIO(_decoded(_edit(c, {"operation": "restore-faces", "ops": "denoise"}, upload)))
        )
    )
    changed = np.abs(out.astype(int) - noisy.astype(np.uint8)).max(-1) > 0
    ys, xs = np.nonzero(changed)
    assert changed.any() and changed.mean() < 0.25  # a face region, not the whole photo
    assert 60 < xs.mean() < 160 and 10 < ys.mean() < 110
    big = _edit(c, {"operation": "restore-faces", "ops": "denoise,enhance,sr"}, upload)
    assert Image.open(io.BytesIO(_decoded(big))).size == (512, 512)


def test_face_detections_find_the_astronaut(served):
    skimage = pytest.importorskip("skimage.data")
    c, _, _ = served
    r = c.post(
        "/v1/faces/detections",
        files={"image": ("a.png", _png(skimage.astronaut()), "image/png")},
    )
    assert r.status_code == 200
    faces = r.json()["faces"]
    assert len(faces) >= 1 and faces[0]["score"] > 0.9
    x0, y0, x1, y1 = faces[0]["box"]
    assert 150 < (x0 + x1) / 2 < 260 and 60 < (y0 + y1) / 2 < 170


def test_a_detector_fallback_is_said_in_the_answers_notes(served, monkeypatch, tmp_path):
    pytest.importorskip("cv2")
    from pixelsmith.faces import mtcnn

    skimage = pytest.importorskip("skimage.data")
    c, _, _ = served
    monkeypatch.setattr(mtcnn, "weights_dir", lambda: tmp_path)
    files = {"image": ("a.png", _png(skimage.astronaut()[::2, ::2].copy()), "image/png")}
    r = c.post("/v1/faces/detections", files=files)
    assert r.status_code == 200 and r.json()["detector"] == "haar"
    assert "fell back" in r.json()["notes"][0] and mtcnn.INSTALL_HINT in r.json()["notes"][0]
    r = c.post("/v1/images/edits", data={"operation": "anonymise"}, files=files)
    assert r.status_code == 200 and "fell back" in " ".join(r.json()["notes"])


def test_the_queue_refuses_when_full_and_gives_up_on_slow_jobs():
    q = work.WorkQueue(workers=1, depth=1, timeout_s=0.3)
    gate = threading.Event()

    async def scenario():
        slow = asyncio.ensure_future(q.run(lambda: gate.wait(5) or "slow"))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(q.run(lambda: "second"))
        await asyncio.sleep(0.05)
        with pytest.raises(work.Full) as full:
            await q.run(lambda: "third")
        assert full.value.retry_after >= 1
        with pytest.raises(work.TimedOut) as late:
            await slow
        assert late.value.retry_after >= 1
        ran = []
        with pytest.raises(work.TimedOut):
            await waiting  # timed out while waiting: it must never run
        gate.set()
        await asyncio.sleep(0.1)
        assert q.running == 0 and q.waiting == 0 and not ran
        assert await q.run(lambda: "after") == "after"

    asyncio.run(scenario())
    q.close()


def test_a_running_job_stops_at_its_next_check_once_timed_out():
    q = work.WorkQueue(workers=1, depth=0, timeout_s=0.2)
    steps = []

    def job():
        for i in range(50):
            work.check()
            steps.append(i)
            time.sleep(0.02)

    async def scenario():
        with pytest.raises(work.TimedOut):
            await q.run(job)
        await asyncio.sleep(0.2)

    asyncio.run(scenario())
    assert 3 <= len(steps) < 50
    q.close()


def test_the_app_answers_429_and_503_with_retry_after(monkeypatch):
    gate = threading.Event()
    real = generation.generate

    def slow(req, served, check, *stamp):
        gate.wait(3)
        return real(req, served, check, *stamp)

    monkeypatch.setattr(generation, "generate", slow)
    c = TestClient(
        create_app(
            {"tiny": Served("tiny", _gan(), "test")},
            config=ServeConfig(workers=1, queue=0, timeout_s=0.5),
        )
    )
    codes: list = []
    t = threading.Thread(target=lambda: codes.append(c.post("/v1/images/generations", json={})))
    t.start()
    time.sleep(0.2)
    busy = c.post("/v1/images/generations", json={})
    t.join()
    gate.set()
    assert busy.status_code == 429 and int(busy.headers["Retry-After"]) >= 1
    assert codes[0].status_code == 503 and int(codes[0].headers["Retry-After"]) >= 1
    assert "retry" in busy.json()["error"]["message"]
    time.sleep(0.1)
    metrics = c.get("/metrics").text
    assert "pixelsmith_queue_refused_total 1" in metrics
    assert "pixelsmith_queue_timed_out_total 1" in metrics


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header(w: int, h: int) -> bytes:
    """A valid PNG that declares w x h pixels with almost no pixel data (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def test_fuzz_every_malformed_request_is_a_4xx_with_one_line_and_the_server_lives(served):
    c, _, _ = served
    rng = np.random.default_rng(0)
    good_png = _png(_photo())
    good_jpeg = _png(_photo(), "JPEG")
    images = {
        "random bytes": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty": b"",
        "truncated png": good_png[: len(good_png) // 2],
        "truncated jpeg": good_jpeg[: len(good_jpeg) // 2],
        "png signature only": b"\x89PNG\r\n\x1a\n",
        "20000x20000 header": _png_header(20000, 20000),
        "html posing as png": b"<html><script>alert(1)</script></html>",
        "eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
    }
    answers = []
    for name, blob in images.items():
        for op in ("denoise", "inpaint"):
            r = _edit(c, {"operation": op}, blob, mask=blob)
            answers.append((f"{op} {name}", r))
        answers.append(
            (
                f"faces {name}",
                c.post("/v1/faces/detections", files={"image": ("f.png", blob, "image/png")}),
            )
        )
    forms = {
        "no image part": ({"operation": "sr"}, None),
        "unknown operation": ({"operation": "melt"}, good_png),
        "no operation": ({}, good_png),
        "bad option value": ({"operation": "sr", "scale": "3"}, good_png),
        "unknown option": ({"operation": "sr", "colour": "red"}, good_png),
        "bad format": ({"operation": "sr", "output_format": "gif"}, good_png),
        "bad quality": ({"operation": "sr", "quality": "0"}, good_png),
        "translate unknown model": ({"operation": "translate", "model": "nope"}, good_png),
    }
    for name, (data, blob) in forms.items():
        files = {"image": ("p.png", blob, "image/png")} if blob is not None else {"x": ("x", b"1")}
        answers.append((name, c.post("/v1/images/edits", data=data, files=files)))
    raw = {
        "json to a form endpoint": ("application/json", b'{"operation": "sr"}'),
        "text to a form endpoint": ("text/plain", b"hello"),
        "multipart without boundary": ("multipart/form-data", b"--x\r\n"),
        "garbage multipart": ("multipart/form-data; boundary=zz", rng.bytes(2000)),
        "cut-off multipart": (
            "multipart/form-data; boundary=zz",
            b'--zz\r\nContent-Disposition: form-data; name="operation"\r\n\r\nsr\r\n--zz\r\n'
            b'Content-Disposition: form-data; name="image"; filename="p.png"\r\n\r\n' + good_png,
        ),
    }
    for name, (ctype, body) in raw.items():
        answers.append(
            (name, c.post("/v1/images/edits", content=body, headers={"content-type": ctype}))
        )
    gen = "/v1/images/generations"
    for body in ({"n": 10**9}, {"seed": -1}, {"seed": 2**80}, {"n": "3"}, {"zzz": 1}, [1, 2], "x"):
        answers.append((f"generation {body}", c.post(gen, json=body)))
    answers.append(
        ("not json", c.post(gen, content=b"{nope", headers={"content-type": "application/json"}))
    )
    answers.append(("huge json", c.post(gen, content=b" " * (300 * 1024))))
    answers.append(("huge upload", _edit(c, {"operation": "sr"}, b"\0" * (21 * 2**20))))
    for name, r in answers:
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:200])
        message = r.json()["error"]["message"]
        assert message and "\n" not in message and "Traceback" not in message, (name, message)
    by = {n: r for n, r in answers}
    assert by["denoise 20000x20000 header"].status_code == 400
    assert "20000x20000" in by["denoise 20000x20000 header"].json()["error"]["message"]
    assert by["huge upload"].status_code == 413 and by["huge json"].status_code == 413
    assert by["json to a form endpoint"].status_code == 415
    assert "cut short" in by["cut-off multipart"].json()["error"]["message"]
    assert c.get("/healthz").json() == {"status": "ok"}
    assert _decoded(_edit(c, {"operation": "enhance", "methods": "gamma"}, good_png))


def test_the_service_caps_upload_and_answer_pixels_before_any_work():
    c = TestClient(
        create_app(
            {"tiny": Served("tiny", _gan(), "test")},
            config=ServeConfig(max_pixels=40 * 48, max_output_pixels=4 * 40 * 48),
        )
    )
    ok = _edit(c, {"operation": "sr", "scale": "2"}, _png(_photo()))
    assert ok.status_code == 200
    r = _edit(c, {"operation": "sr", "scale": "4"}, _png(_photo()))
    assert r.status_code == 400 and "over the service's limit" in r.json()["error"]["message"]
    r = _edit(c, {"operation": "denoise"}, _png(_photo(49, 40)))
    assert r.status_code == 400 and "more than pixelsmith reads" in r.json()["error"]["message"]


def test_a_job_whose_client_went_away_stops_at_its_next_check():
    q = work.WorkQueue(workers=1, depth=0, timeout_s=30)
    steps = []

    def job():
        for i in range(100):
            work.check()
            steps.append(i)
            time.sleep(0.01)

    async def scenario():
        task = asyncio.ensure_future(q.run(job))
        await asyncio.sleep(0.1)
        task.cancel()  # what Starlette does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        assert q.running == 0 and q.waiting == 0

    asyncio.run(scenario())
    assert 2 <= len(steps) < 100
    q.close()


def test_unknown_paths_and_methods_answer_in_the_error_shape(served):
    c, _, _ = served
    r = c.get("/v2/nothing")
    assert r.status_code == 404 and "no such path" in r.json()["error"]["message"]
    r = c.get("/v1/images/generations")
    assert r.status_code == 405 and r.json()["error"]["message"]


def test_a_conditional_interpolation_keeps_the_first_seeds_class_unless_told(served):
    c, gan, _ = served
    for body, label in (({"seeds": [4, 8]}, 4 % 3), ({"seeds": [4, 8], "label": 2}, 2)):
        r = c.post("/v1/images/interpolations", json={"model": "tiny", "steps": 3, **body})
        assert r.status_code == 200 and r.json()["label"] == label
        first = r.json()["data"][0]["b64_json"]
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(first)))).astype(float)
        want = gan.sample(1, seed=4, labels=[label])[0].permute(1, 2, 0).numpy() * 255
        assert np.abs(got - want).max() <= 1.0


def test_what_the_review_broke_is_a_one_line_4xx(served):
    """Numbers past their range, two parts of one name, unknown fields, wrong model names: the
    cases a contract test and a reviewer found (each was a 500, or silently ignored)."""
    c, _, _ = served
    image = _png(_photo())
    cases = [
        ({"operation": "anonymise", "feather": "99999999999999999999"}, "feather must be"),
        ({"operation": "anonymise", "method": "generate", "seed": str(2**64)}, "seed must be"),
        ({"operation": "anonymise", "min_size": "9999999999"}, "min_size must be"),
        ({"operation": "anonymise", "blocks": "500"}, "blocks must be"),
        ({"model": "dall-e-2"}, "unknown model 'dall-e-2'"),
        ({"operation": "sr-x4", "scale": "2"}, "sr-x4 sets scale itself"),
        ({"operation": "sr", "response_format": "seed"}, "response_format must be b64_json"),
    ]
    for data, message in cases:
        r = _edit(c, data, image)
        assert r.status_code == 400 and message in r.json()["error"]["message"], (data, r.text)
    assert _edit(c, {"operation": "sr", "size": "", "model": ""}, image).status_code == 200
    two = [("image", ("a.png", image, "image/png")), ("image", ("b.png", image, "image/png"))]
    r = c.post("/v1/images/edits", data={"operation": "sr"}, files=two)
    assert r.status_code == 400 and "more than one part named 'image'" in r.text
    files = {"image": ("a.png", image, "image/png")}
    r = c.post("/v1/faces/detections", data={"colour": "red"}, files=files)
    assert r.status_code == 400 and "takes no option 'colour'" in r.json()["error"]["message"]
    r = c.post("/v1/images/generations", json={"model": "tiny", "labels": [1], "n": 1})
    assert r.status_code == 200
    unconditional = TestClient(
        create_app({"u": Served("u", make_gan((1, 16, 16), d_channels=16), "t")})
    )
    r = unconditional.post("/v1/images/generations", json={"labels": [1]})
    assert r.status_code == 400 and "--" not in r.json()["error"]["message"]  # no CLI flags


def test_a_wide_feather_or_many_blocks_still_replace_the_whole_face():
    from pixelsmith.faces.anonymise import anonymise
    from pixelsmith.faces.types import Face

    x = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(0))
    face = Face((30.0, 30.0, 66.0, 66.0), 1.0)
    for kwargs in ({"method": "blur", "feather": 1000}, {"method": "pixelate", "blocks": 32}):
        out = anonymise(x, [face], **kwargs).image
        box = (out - x)[:, 30:66, 30:66].abs().amax(0)
        assert (box > 0).float().mean() > 0.95, kwargs  # the face's own box is replaced
