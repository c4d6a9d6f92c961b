"""`pixelsmith detect` and POST /v1/images/forensics: small images go to the generated-image
detector, photos to the edited-region localiser (whose map -o writes), broken files in a folder
are skipped and counted, and an image neither can read is refused before any work."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from pixelsmith.cli.main import main
from pixelsmith.data import degrade
from pixelsmith.edit import classical
from pixelsmith.forensics import generated as gen
from pixelsmith.utils.rng import BatchRandom

pytestmark = [pytest.mark.zoo, pytest.mark.fashion_mnist]


def _save(x: torch.Tensor, path) -> None:
    arr = (x.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path)


def _filled_photo() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-image's cat (a photo no forensics model trained on) with a fifth of it filled by
    the harmonic fill, and the mask."""
    from skimage import data

    x = torch.from_numpy(data.chelsea()[:256, :256].copy()).permute(2, 0, 1).float() / 255
    mask = degrade.masks_with_coverage(1, 256, 256, BatchRandom(3), coverage=(0.2, 0.25))[0]
    return classical.harmonic_fill(x * (1 - mask), mask).clamp(0, 1), mask


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two Fashion-MNIST test images, two GAN samples, the filled photo, a broken file."""
    import pixelsmith
    from pixelsmith.data.sources import load_images

    d = tmp_path_factory.mktemp("detect-in")
    for i, x in enumerate(load_images("fashion-mnist", split="test", limit=2).as_float()):
        _save(x, d / f"real{i}.png")
    for i, x in enumerate(gen.quantise(pixelsmith.load("zoo:fmnist-gan").sample(2, seed=5))):
        _save(x, d / f"fake{i}.png")
    photo, mask = _filled_photo()
    _save(photo, d / "photo.png")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return d, mask


def test_detect_a_folder(folder, tmp_path, capsys):
    src, mask = folder
    out = tmp_path / "maps"
    assert main(["detect", str(src), "-o", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    rows = {r["file"].rsplit("/", 1)[-1]: r for r in json.loads(captured.out)}
    assert sorted(rows) == ["fake0.png", "fake1.png", "photo.png", "real0.png", "real1.png"]
    assert "broken.png" in captured.err
    for name in ("real0.png", "fake0.png"):
        r = rows[name]
        assert r["kind"] == "generated" and 0 <= r["p_generated"] <= 1
        assert r["prepared"] == "as is" and r["detector"] == "zoo:fmnist-detector"
    photo = rows["photo.png"]
    assert photo["kind"] == "edited-regions" and photo["p_generated"] is None
    drawn = np.asarray(Image.open(photo["map"]))
    assert drawn.shape == (256, 256, 3)
    # the overlay is red where the map is high: redder inside the fill than outside it
    redness = drawn[..., 0].astype(float) - drawn[..., 1]
    inside = mask[0].numpy() > 0.5
    assert redness[inside].mean() > redness[~inside].mean()


def test_detect_prints_a_line_per_image(folder, capsys):
    src, _ = folder
    assert main(["detect", str(src / "photo.png")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(src / "photo.png")) and "pixels at 0.7 or more" in out


def test_an_image_too_thin_for_either_model_is_refused(tmp_path, capsys):
    _save(torch.rand(3, 20, 300), tmp_path / "strip.png")
    assert main(["detect", str(tmp_path / "strip.png"), "-o", str(tmp_path / "m.png")]) == 2
    assert "too thin" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


def test_the_service_examines_uploads(folder):
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from conftest import make_gan
    from fastapi.testclient import TestClient

    from pixelsmith.jobs.stamp import Stamp
    from pixelsmith.serve.app import Served, create_app

    src, _ = folder
    gan = make_gan()
    gan.add_ema_copies()
    c = TestClient(create_app({"tiny": Served("tiny", gan.eval(), "test")}, stamp=Stamp()))
    photo = (src / "photo.png").read_bytes()
    r = c.post("/v1/images/forensics", files={"image": ("p.png", photo)}, data={"map": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "edited-regions" and (body["width"], body["height"]) == (256, 256)
    assert body["model"] == "zoo:photo-localiser"
    drawn = Image.open(io.BytesIO(base64.b64decode(body["map_png_b64"])))
    assert drawn.size == (256, 256)
    small = (src / "fake0.png").read_bytes()
    r = c.post("/v1/images/forensics", files={"image": ("f.png", small)})
    assert r.status_code == 200 and r.json()["kind"] == "generated"
    assert r.json()["map_png_b64"] is None and 0 <= r.json()["p_generated"] <= 1
    r = c.post("/v1/images/forensics", files={"image": ("p.png", photo)}, data={"map": "maybe"})
    assert r.status_code == 400 and "map" in r.text


def test_a_detector_is_not_a_generator(tmp_path, capsys):
    assert main(["sample", "zoo:fmnist-detector", "-n", "1", "-o", str(tmp_path / "x.png")]) == 2
    assert "pixelsmith detect" in capsys.readouterr().err
    _save(torch.rand(1, 28, 28), tmp_path / "small.png")
    assert main(["detect", str(tmp_path / "small.png"), "--detector", "photo-localiser"]) == 2
    assert "not a generated-image detector" in capsys.readouterr().err
