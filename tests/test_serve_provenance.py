"""The service marks and signs every image it returns, on by default: its own watermark key and
local credentials are made on the first start and kept, `GET /v1/models` shows the key's public
id and the signer (never the secret), generations are signed as created and edits as edited
from the upload; `--no-watermark --no-credentials` (an empty Stamp) leave images bare."""

from __future__ import annotations

import base64
import io
import json
import logging
import stat

import numpy as np
import pytest
import torch
from conftest import make_gan
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
pytest.importorskip("python_multipart", reason="the serve extra (python-multipart) is missing")
pytest.importorskip("c2pa", reason="the provenance extra (c2pa-python) is not installed")

from fastapi.testclient import TestClient  # noqa: E402

from pixelsmith.cli.main import main  # noqa: E402
from pixelsmith.jobs.stamp import SERVICE_KEY, Stamp, service_stamp  # noqa: E402
from pixelsmith.provenance import watermark as wm  # noqa: E402
from pixelsmith.provenance.credentials import (  # noqa: E402
    TRAINED,
    Claim,
    load_signer,
    read_credentials,
    sign_bytes,
)
from pixelsmith.provenance.credentials_signer import ENV  # noqa: E402
from pixelsmith.provenance.keys import load_key, new_key, save_key  # noqa: E402
from pixelsmith.serve.app import Served, create_app  # noqa: E402


def _gan(side: int) -> object:
    gan = make_gan((3, side, side), 3)
    gan.add_ema_copies()
    return gan.eval()


@pytest.fixture(scope="module")
def first_start(tmp_path_factory):
    """A service started with its defaults where no key or credentials exist yet (that folder
    stays the credentials directory for the module), and what it logged; a 128x128 generator
    (large enough to mark) and a 16x16 one (too small)."""
    where = tmp_path_factory.mktemp("fresh-credentials")
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV, str(where))
        handler = logging.Handler()
        handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
        log = logging.getLogger("pixelsmith.serve")
        log.addHandler(handler)
        try:
            big, small = Served("big", _gan(128), "test"), Served("small", _gan(16), "test")
            app = create_app({"big": big, "small": small})
        finally:
            log.removeHandler(handler)
        yield TestClient(app), where, lines


def _b64(item: dict) -> bytes:
    return base64.b64decode(item["b64_json"])


def _tensor(data: bytes) -> torch.Tensor:
    arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255


def test_the_first_start_makes_a_key_and_credentials_and_models_shows_them(first_start):
    c, where, lines = first_start
    key_file = where / SERVICE_KEY
    key = load_key(key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (where / "signer.pem").is_file() and (where / "ca.pem").is_file()
    assert any(key.key_id in line and "watermark key" in line for line in lines)
    [made] = [line for line in lines if "signing CA" in line]
    assert "trusted only where it is installed" in made
    r = c.get("/v1/models")
    said = r.json()["provenance"]
    assert said["watermark"]["key_id"] == key.key_id and said["watermark"]["method"] == "ss1"
    assert said["watermark"]["message_bits"] == key.message_bits == 32
    assert said["credentials"]["subject"] == "pixelsmith service"
    assert key.secret.hex() not in r.text and "secret" not in r.text
    # a second start keeps them: the same key, the same signer, nothing made
    again: list[str] = []
    stamp = service_stamp(log=again.append)
    assert again == [] and stamp.key == key and stamp.signer.subject == "pixelsmith service"


def test_a_generation_is_marked_with_the_service_key_and_signed_as_created(first_start):
    c, where, _ = first_start
    key = load_key(where / SERVICE_KEY)
    r = c.post("/v1/images/generations", json={"model": "big", "n": 2, "seed": 5})
    assert r.status_code == 200 and r.json()["notes"] == []
    items = r.json()["data"]
    assert items[0]["watermark"]["message"] != items[1]["watermark"]["message"]  # one id each
    for item in items:
        data = _b64(item)
        found = wm.detect(_tensor(data), key)
        assert found.detected and found.message_hex == item["watermark"]["message"]
        creds = read_credentials(data, trust=[where / "ca.pem"])
        assert creds.status == "trusted" and creds.digital_source_type == TRAINED
        assert creds.model == "big" and creds.model_sha256.startswith("tensors:")
        assert creds.options == {"seed": item["seed"], "label": item["label"]}
        assert creds.soft_binding == {"alg": "pixelsmith.watermark.ss1", "key_id": key.key_id,
                                      "message": item["watermark"]["message"]}  # fmt: skip
    # remade from its seed to within the mark (PSNR ~40 dB), not byte for byte
    again = c.post("/v1/images/generations", json={"model": "big", "n": 1, "seed": 6})
    a, b = _tensor(_b64(items[1])), _tensor(_b64(again.json()["data"][0]))
    assert 0 < (a - b).pow(2).mean().sqrt() < 0.02  # the same image, each with its own id
    body = {"model": "big", "output_format": "jpeg", "quality": 95}
    raw = c.post("/v1/images/generations", json=body, headers={"Accept": "image/jpeg"})
    assert raw.headers["content-type"] == "image/jpeg"
    assert read_credentials(raw.content).status == "trusted"
    assert wm.detect(_tensor(raw.content), key).detected


def test_an_image_too_small_to_mark_is_signed_without_a_soft_binding(first_start):
    c, _, _ = first_start
    r = c.post("/v1/images/generations", json={"model": "small", "n": 2})
    [note] = r.json()["notes"]
    assert "too small to watermark (16x16; needs 128 px a side)" in note
    assert "no soft binding" in note
    item = r.json()["data"][0]
    assert "watermark" not in item
    creds = read_credentials(_b64(item))
    assert creds.status == "trusted" and creds.soft_binding is None and creds.model == "small"


def test_interpolations_are_marked_and_signed(first_start):
    c, where, _ = first_start
    key = load_key(where / SERVICE_KEY)
    body = {"model": "big", "seeds": [1, 2], "steps": 3}
    items = c.post("/v1/images/interpolations", json=body).json()["data"]
    assert len(items) == 3
    for item in items:
        assert wm.detect(_tensor(_b64(item)), key).detected
        creds = read_credentials(_b64(item))
        assert creds.status == "trusted" and creds.options["seeds"] == [1, 2]
        assert creds.options["t"] == item["t"]


def _photo() -> np.ndarray:
    skimage = pytest.importorskip("skimage.data")
    return skimage.astronaut()[:384, :384].copy()  # at 256 about 1 mark in 10 does not hold


def test_an_edit_is_signed_as_edited_from_the_upload_keeping_its_chain(first_start):
    c, where, _ = first_start
    key = load_key(where / SERVICE_KEY)
    buf = io.BytesIO()
    Image.fromarray(_photo()).save(buf, "PNG")
    upload = sign_bytes(buf.getvalue(), "image/png", Claim("created", model="a camera"),
                        load_signer())  # fmt: skip
    fields = {"operation": "enhance", "methods": "autocontrast,gamma"}
    files = {"image": ("astronaut.png", upload, "image/png")}
    r = c.post("/v1/images/edits", data=fields, files=files)
    assert r.status_code == 200, r.text
    [item] = r.json()["data"]
    data = _b64(item)
    found = wm.detect(_tensor(data), key)
    assert found.detected and found.message_hex == item["watermark"]["message"]
    creds = read_credentials(data, trust=[where / "ca.pem"])
    assert creds.status == "trusted" and creds.operation == "enhance"
    assert "c2pa.edited" in [a["action"] for a in creds.actions]
    assert creds.options == {"methods": ["autocontrast", "gamma"]}
    [parent] = creds.ingredients
    assert parent["title"] == "astronaut.png" and parent["relationship"] == "parentOf"
    assert parent["manifest"]["model"] == "a camera"  # the upload's own manifest kept
    plain = Image.open(io.BytesIO(data))
    assert plain.format == "PNG" and plain.size == (384, 384)


def test_no_watermark_no_credentials_leave_images_bare(first_start, tmp_path):
    _, where, _ = first_start
    key = load_key(where / SERVICE_KEY)
    stamp = service_stamp(watermark=False, credentials=False)
    assert stamp == Stamp() and not stamp.active
    c = TestClient(create_app({"big": Served("big", _gan(128), "test")}, stamp=stamp))
    said = c.get("/v1/models").json()["provenance"]
    assert said == {"watermark": None, "credentials": None}
    first = c.post("/v1/images/generations", json={"n": 1, "seed": 5}).json()["data"][0]
    again = c.post("/v1/images/generations", json={"n": 1, "seed": 5}).json()["data"][0]
    assert first["b64_json"] == again["b64_json"] and "watermark" not in first  # byte for byte
    assert not wm.detect(_tensor(_b64(first)), key).detected
    assert read_credentials(_b64(first)).status == "none"
    # a key of one's own marks instead of the service's
    own = save_key(new_key(), tmp_path / "own.json")
    stamp = service_stamp(watermark=own, credentials=False)
    assert stamp.key == load_key(own) and stamp.signer is None


def test_the_cli_refuses_bad_provenance_options_before_loading_anything(tmp_path, capsys):
    not_a_key = tmp_path / "x.json"
    not_a_key.write_text(json.dumps({"kind": "pixelsmith-recipe"}))
    missing = str(tmp_path / "no-such-run")  # loading it would fail with another message
    cases = [
        (["--no-watermark", "--watermark", str(not_a_key)], "--no-watermark turns marking off"),
        (["--watermark", str(not_a_key)], "not a watermark key"),
        (["--no-credentials", "--cert", "c.pem", "--key", "k.pem"], "leave out --cert"),
        (["--credentials", str(tmp_path / "empty")], "no signing credentials"),
    ]
    for flags, why in cases:
        assert main(["serve", missing, *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1, flags


def test_provenance_traces_an_image_back_to_the_service(first_start):
    c, where, _ = first_start
    key = load_key(where / SERVICE_KEY)
    buf = io.BytesIO()
    Image.fromarray(_photo()).save(buf, "PNG")
    files = {"image": ("a.png", buf.getvalue(), "image/png")}
    r = c.post("/v1/images/edits", data={"operation": "enhance", "methods": "gamma"}, files=files)
    [item] = r.json()["data"]
    ours = {"image": ("ours.png", _b64(item), "image/png")}
    said = c.post("/v1/images/provenance", files=ours).json()
    assert said["watermark"]["detected"] and said["watermark"]["key_id"] == key.key_id
    assert said["watermark"]["message_hex"] == item["watermark"]["message"]
    assert said["credentials"]["status"] == "trusted"  # the local CA, installed here
    assert said["credentials"]["soft_binding"]["message"] == item["watermark"]["message"]
    said = c.post("/v1/images/provenance", files={"image": ("a.png", buf.getvalue())}).json()
    assert not said["watermark"]["detected"] and said["watermark"]["p_value"] > 1e-6
    assert said["credentials"]["status"] == "none"
    gif = io.BytesIO()
    Image.fromarray(_photo()[:40, :40]).save(gif, "GIF")
    said = c.post("/v1/images/provenance", files={"image": ("a.gif", gif.getvalue())}).json()
    assert "too small" in said["watermark"]["note"]
    assert said["credentials"]["status"] == "unreadable"
    r = c.post("/v1/images/provenance", files={"image": ("x.png", b"not an image")})
    assert r.status_code in (400, 415) and "error" in r.json()
