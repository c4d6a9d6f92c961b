"""The HTTP service: generation answers in the OpenAI images shape, every image remade from its
seed byte for byte, raw PNG by Accept, no metadata in the images, and every malformed request a
4xx with a one-line message while the server keeps answering."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from conftest import make_gan, make_stylegan
from PIL import Image

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402

from pixelsmith.jobs.stamp import Stamp  # noqa: E402
from pixelsmith.serve.app import Served, create_app, load_served  # noqa: E402
from pixelsmith.serve.schemas import MAX_N  # noqa: E402


@pytest.fixture(scope="module")
def client():
    gan = make_gan((3, 16, 16), 3)
    gan.add_ema_copies()
    gan.eval()
    # Unstamped (no mark, no manifest), so each image is remade byte for byte; the stamp the
    # service puts on by default is tested in test_serve_provenance.py.
    return TestClient(create_app({"tiny": Served("tiny", gan, "test")}, stamp=Stamp())), gan


def _png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_health_readiness_and_models(client):
    c, _ = client
    assert c.get("/healthz").json() == {"status": "ok"}
    assert c.get("/readyz").json()["models"] == ["tiny"]
    [card] = c.get("/v1/models").json()["data"]
    assert card["id"] == "tiny" and card["family"] == "gan" and card["image_shape"] == [3, 16, 16]
    assert card["classes"] == 3
    assert c.get("/docs").status_code == 200


def test_generations_echo_seeds_and_each_image_is_remade_byte_for_byte(client):
    c, gan = client
    r = c.post("/v1/images/generations", json={"model": "tiny", "n": 3, "seed": 10})
    assert r.status_code == 200
    data = r.json()["data"]
    assert [d["seed"] for d in data] == [10, 11, 12]
    assert [d["label"] for d in data] == [1, 2, 0]  # without labels: seed mod classes
    assert r.json()["backend"] == "eager"
    again = c.post("/v1/images/generations", json={"n": 1, "seed": 11}).json()["data"][0]
    assert again["b64_json"] == data[1]["b64_json"]  # one image remade alone, same bytes
    im = _png(data[0]["b64_json"])
    assert im.size == (16, 16) and im.mode == "RGB" and not im.info.get("exif")
    image = gan.sample(1, seed=10, labels=[1])[0]
    want = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert (np.array(im) == want).all()
    seeds_only = c.post("/v1/images/generations", json={"n": 2, "response_format": "seed"})
    assert seeds_only.json()["data"] == [{"seed": 0, "label": 0}, {"seed": 1, "label": 1}]


def test_sampling_options_are_passed_to_the_model_and_checked_by_it(client):
    c, gan = client
    body = {"seed": 3, "labels": [2], "options": {"labels": [1]}}
    r = c.post("/v1/images/generations", json=body)
    assert r.status_code == 400 and "labels" in r.json()["error"]["message"]
    for bad in ({"truncation": 0.5}, [1], "x"):
        r = c.post("/v1/images/generations", json={"options": bad})
        assert r.status_code == 400, bad
        assert "option" in r.json()["error"]["message"]


def test_raw_image_by_accept_header_and_formats(client):
    c, _ = client
    r = c.post("/v1/images/generations", json={"seed": 5}, headers={"Accept": "image/png"})
    assert r.headers["content-type"] == "image/png" and r.headers["x-pixelsmith-seed"] == "5"
    assert Image.open(io.BytesIO(r.content)).size == (16, 16)
    for fmt, pil in (("webp", "WEBP"), ("jpeg", "JPEG")):
        d = c.post("/v1/images/generations", json={"output_format": fmt, "quality": 80}).json()
        assert _png(d["data"][0]["b64_json"]).format == pil


BAD = [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ('{"n": 0}', "n must be"),
    (f'{{"n": {MAX_N + 1}}}', "n must be"),
    ('{"n": "3"}', "n must be"),
    ('{"n": true}', "n must be"),
    ('{"seed": -1}', "seed"),
    ('{"seed": 1e30}', "seed"),
    ('{"seed": 99999999999999999999999}', "seed"),
    ('{"model": "other"}', "unknown model"),
    ('{"output_format": "bmp"}', "output_format"),
    ('{"response_format": "url"}', "response_format"),
    ('{"quality": 0}', "quality"),
    ('{"labels": [7]}', "not a class"),
    ('{"labels": "a"}', "labels"),
    ('{"size": "1024x1024"}', "size must be 16x16"),
    ('{"style": "vivid"}', "unknown field"),
    ("[" * 5000 + "]" * 5000, "not JSON"),  # too deep for the parser
    ('{"seed": ' + "9" * 5000 + "}", "not JSON"),  # past Python's integer-text limit
    ('{"n": ' + "1" * 4400 + "}", "not JSON"),
]


@pytest.mark.parametrize("body, why", BAD)
def test_malformed_requests_are_4xx_with_a_message(client, body, why):
    c, _ = client
    r = c.post("/v1/images/generations", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    message = r.json()["error"]["message"]
    assert why in message and "\n" not in message
    assert c.get("/healthz").status_code == 200  # still answering


def test_oversized_body_and_metrics(client):
    c, _ = client
    r = c.post("/v1/images/generations", content=b"{" + b" " * 300_000 + b"}")
    assert r.status_code == 413
    text = c.get("/metrics").text
    assert 'pixelsmith_requests_total{endpoint="/v1/images/generations",code="413"}' in text
    assert "pixelsmith_request_seconds_count" in text and "pixelsmith_in_flight" in text


def test_load_served_names_models_and_refuses_non_generators():
    from pixelsmith.errors import UserError

    served = load_served(["zoo:fmnist-gan"])
    assert list(served) == ["fmnist-gan"]
    with pytest.raises(UserError, match="generators and translators"):
        load_served(["zoo:sr-x2"])


def test_an_api_key_guards_everything_but_the_health_checks(client):
    _, gan = client
    c = TestClient(create_app({"tiny": Served("tiny", gan, "test")}, api_key="k" * 20))
    assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k" * 20}):
        r = c.post("/v1/images/generations", json={}, headers=headers)
        assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
        assert c.get("/v1/models", headers=headers).status_code == 401
    ok = {"Authorization": "Bearer " + "k" * 20}
    assert c.post("/v1/images/generations", json={}, headers=ok).status_code == 200
    # the page's own files hold no data and load without the key; it asks for it on a 401
    assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
    for path in ("/v1/edits", "/metrics", "/docs", "/openapi.json"):
        assert c.get(path).status_code == 401, path
    assert c.post("/", json={}).status_code == 401


def test_cli_refuses_to_bind_beyond_loopback_without_a_key(monkeypatch, capsys):
    from pixelsmith.cli.main import main

    monkeypatch.delenv("PIXELSMITH_API_KEY", raising=False)
    assert main(["serve", "zoo:fmnist-gan", "--host", "0.0.0.0"]) == 2
    assert "PIXELSMITH_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("PIXELSMITH_API_KEY", "short")
    assert main(["serve", "zoo:fmnist-gan", "--host", "0.0.0.0"]) == 2
    assert "16 characters" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["channels_last", "onnxruntime"])
def test_a_faster_backend_serves_the_same_images_and_seeds_still_remake_them(backend):
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="the deploy extra (onnxruntime) is missing")
    from pixelsmith.deploy.choice import choose_backend

    gan = make_gan((3, 16, 16), 3)
    gan.add_ema_copies()
    served = {"tiny": Served("tiny", gan.eval(), "test")}
    served["tiny"].backend = choose_backend(gan, backend, cache=False).backend
    assert served["tiny"].backend.name == backend
    c = TestClient(create_app(served, stamp=Stamp()))  # unstamped: byte for byte
    assert c.get("/v1/models").json()["data"][0]["backend"] == backend
    body = {"model": "tiny", "n": 3, "seed": 4, "labels": [2]}
    first = c.post("/v1/images/generations", json=body).json()["data"]
    again = c.post("/v1/images/generations", json=body).json()["data"]
    assert [d["b64_json"] for d in first] == [d["b64_json"] for d in again]
    for d in first:  # within one grey level of eager's own sample for the same seed and class
        got = np.asarray(_png(d["b64_json"])).astype(float)
        want = gan.sample(1, seed=d["seed"], labels=[2])[0].permute(1, 2, 0).numpy() * 255
        assert np.abs(got - want).max() <= 1.0


def test_a_stylegan_takes_its_truncation_per_request_and_the_answer_says_which():
    sg = make_stylegan((1, 16, 16), mapping_layers=4)
    sg.add_ema_copies()
    sg.eval()
    c = TestClient(create_app({"sg": Served("sg", sg, "test")}))
    r = c.post("/v1/images/generations", json={"seed": 4, "options": {"truncation": 0.5}})
    assert r.status_code == 200 and r.json()["options"]["truncation"] == 0.5
    got = np.asarray(_png(r.json()["data"][0]["b64_json"])).astype(float)
    want = sg.sample(1, seed=4, truncation=0.5)[0, 0].numpy() * 255
    plain = sg.sample(1, seed=4)[0, 0].numpy() * 255
    assert np.abs(got - want).max() <= 0.5 and np.abs(got - plain).max() > 2
    r = c.post("/v1/images/generations", json={"options": {"truncation": "lots"}})
    assert r.status_code == 400 and "truncation" in r.json()["error"]["message"]


def test_a_prompt_naming_a_class_picks_it_and_other_prompts_are_said_to_be_ignored():
    from pixelsmith.serve.generation import class_of

    names = ["Shirt", "T-shirt/top", "Ankle boot"]
    assert class_of("an ankle boot, please", names) == 2
    assert class_of("a t-shirt", names) == 1 and class_of("shirt", names) == 0
    assert class_of("a bag", names) is None
    gan = make_gan((3, 16, 16), 3)
    gan.add_ema_copies()
    gan.manifest = {"classes": names}
    c = TestClient(create_app({"tiny": Served("tiny", gan.eval(), "test")}))
    r = c.post("/v1/images/generations", json={"prompt": "Ankle boots", "n": 2, "seed": 5})
    assert [d["label"] for d in r.json()["data"]] == [2, 2]
    assert "Ankle boot" in r.json()["notes"][0]
    r = c.post("/v1/images/generations", json={"prompt": "a bag", "n": 2, "seed": 5})
    assert [d["label"] for d in r.json()["data"]] == [5 % 3, 6 % 3]  # the seeds' own classes
    assert "none of the classes" in r.json()["notes"][0]
    r = c.post("/v1/images/generations", json={"prompt": "shirt", "labels": [1]})
    assert r.json()["data"][0]["label"] == 1 and "labels name" in r.json()["notes"][0]


def test_openapi_documents_every_request_and_response_body(client):
    c, _ = client
    spec = c.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method == "post":
                body = op["requestBody"]["content"]
                schema = next(iter(body.values()))["schema"]
                assert schema.get("$ref") or schema.get("properties"), (path, body)
            ok = op["responses"]["200"]["content"]
            assert any(v.get("schema") for v in ok.values()), (method, path)
            assert "422" not in op["responses"]  # a body that fails its model is a 400
    form = spec["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]
    fields = form["multipart/form-data"]["schema"]["properties"]
    assert {"image", "mask", "model", "prompt", "operation", "scale", "methods"} <= set(fields)
    assert "boxes" not in fields  # a server path is never offered
