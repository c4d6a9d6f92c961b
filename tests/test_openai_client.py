"""The official `openai` client against the service, over real HTTP on loopback, as a new user
would call it: images.generate with a prompt, images.edit with OpenAI's model names and its
transparent masks, and the errors it raises for what pixelsmith refuses."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

openai = pytest.importorskip("openai", reason="the openai client (a test dependency) is missing")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is missing")
pytest.importorskip("python_multipart", reason="the serve extra (python-multipart) is missing")

from pixelsmith.serve.app import create_app, load_served  # noqa: E402

KEY = "k" * 24


@pytest.fixture(scope="module")
def url():
    """pixelsmith serving zoo:fmnist-gan on a free loopback port, behind an API key."""
    app = create_app(load_served(["zoo:fmnist-gan"]), api_key=KEY)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the service did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def client(url):
    return openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=120)


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def _file(im: Image.Image, name: str = "photo.png") -> tuple[str, bytes, str]:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return (name, buf.getvalue(), "image/png")


def _photo(h: int = 40, w: int = 48) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(0).normal(0, 10, (h, w, 3))
    base = np.stack([yy * 255 / h, xx * 255 / w, (yy + xx) * 128 / (h + w)], -1)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def test_generate_with_a_prompt_answers_in_openais_shape(client):
    r = client.images.generate(
        model="fmnist-gan", prompt="a sneaker", n=2, response_format="b64_json"
    )
    assert isinstance(r, openai.types.ImagesResponse) and r.created > 0
    assert len(r.data) == 2
    images = [_image(d.b64_json) for d in r.data]
    assert all(im.size == (28, 28) and im.mode == "L" for im in images)
    assert r.size == "28x28" and r.output_format == "png"
    assert "prompt is ignored" in r.model_extra["notes"][0]
    seeds = [d.model_extra["seed"] for d in r.data]
    assert seeds == [0, 1]
    again = client.images.generate(
        model="fmnist-gan", prompt="anything", n=1, extra_body={"seed": seeds[1]}
    )
    # one image remade from its seed: the same pixels (each PNG carries its own signed manifest)
    assert np.array_equal(np.asarray(_image(again.data[0].b64_json)), np.asarray(images[1]))


def test_what_the_service_refuses_raises_openais_errors(client):
    with pytest.raises(openai.BadRequestError, match="28x28"):
        client.images.generate(model="fmnist-gan", prompt="x", size="1024x1024")
    with pytest.raises(openai.BadRequestError, match="url"):
        client.images.generate(model="fmnist-gan", prompt="x", response_format="url")
    with pytest.raises(openai.BadRequestError, match="unknown model"):
        client.images.generate(model="dall-e-3", prompt="x")
    with pytest.raises(openai.BadRequestError, match="unknown field 'style'"):
        client.images.generate(model="fmnist-gan", prompt="x", style="vivid")
    wrong = openai.OpenAI(base_url=client.base_url, api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.images.generate(model="fmnist-gan", prompt="x")


@pytest.mark.parametrize("model", ["inpaint", "inpaint-texture"])
def test_edit_inpaints_where_the_mask_is_transparent(client, model):
    arr = _photo()
    hole = np.zeros(arr.shape[:2], bool)
    hole[12:26, 10:30] = True
    mask = np.zeros((*arr.shape[:2], 4), np.uint8)  # OpenAI's rule: transparent = to edit
    mask[..., 3] = np.where(hole, 0, 255)
    r = client.images.edit(
        model=model,
        image=_file(Image.fromarray(arr)),
        mask=_file(Image.fromarray(mask, "RGBA"), "mask.png"),
        prompt="fill the hole",
    )
    out = np.asarray(_image(r.data[0].b64_json))
    assert out.shape == arr.shape
    assert np.array_equal(out[~hole], arr[~hole])  # only the transparent pixels changed
    assert np.abs(out[hole].astype(int) - arr[hole]).mean() > 1
    assert "prompt is ignored" in r.model_extra["notes"][0]
    assert r.model_extra["options"]["method"] == ("texture" if "texture" in model else "learned")


def test_edit_by_an_operations_variant_name(client):
    r = client.images.edit(
        model="sr-x4", image=_file(Image.fromarray(_photo(20, 24))), prompt="upscale"
    )
    assert _image(r.data[0].b64_json).size == (96, 80)
    assert r.model_extra["operation"] == "sr" and r.model_extra["options"]["scale"] == 4
    with pytest.raises(openai.BadRequestError, match="unknown model 'gpt-image-1': an edit"):
        client.images.edit(model="gpt-image-1", image=_file(Image.fromarray(_photo())), prompt="x")
    with pytest.raises(openai.BadRequestError, match="generator"):
        client.images.edit(model="fmnist-gan", image=_file(Image.fromarray(_photo())), prompt="x")
