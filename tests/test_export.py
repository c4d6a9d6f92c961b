"""ONNX export: ONNX Runtime's output equals eager PyTorch to 1e-4 for every exportable family
(tiny models), restoration networks at sizes the export never saw and with their whole-image
conditions computed outside, the metadata says what the file is, and what does not export says
why."""

from __future__ import annotations

import pytest
import torch
from conftest import make_cyclegan, make_gan, make_stylegan

from pixelsmith.cli.main import main
from pixelsmith.deploy import check_onnx, export_onnx, read_metadata
from pixelsmith.errors import UserError
from pixelsmith.models.diffusion import Diffusion, DiffusionConfig
from pixelsmith.models.restore import Restore, RestoreConfig
from pixelsmith.models.vae import VAE, VAEConfig

pytest.importorskip("onnxruntime", reason="the deploy extra (onnxruntime) is not installed")


def _clustered():
    """A self-conditioned GAN with its clusters fitted to random images: z alone draws it."""
    model = make_gan((1, 16, 16), clusters=3, class_norm=True)
    model.add_ema_copies()
    g = torch.Generator().manual_seed(0)
    model.fit_data((torch.rand(40, 1, 16, 16, generator=g) * 255).to(torch.uint8), seed=0)
    return model


def _ready(model):
    torch.manual_seed(0)
    model.add_ema_copies()
    return model.eval()


MODELS = {
    "dcgan": lambda: make_gan((1, 16, 16)),
    "cgan": lambda: make_gan((3, 16, 16), 3),
    "cgan-class-norm": lambda: make_gan((3, 16, 16), 3, class_norm=True),
    "sc-gan": lambda: _clustered(),
    "stylegan": lambda: make_stylegan((1, 16, 16), mapping_layers=1),
    "vae": lambda: VAE(VAEConfig(), (1, 16, 16)),
    "cyclegan": lambda: make_cyclegan((1, 16, 16), d_layers=2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_runtime_equals_eager_pytorch(name, tmp_path):
    model = _ready(MODELS[name]())
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    got = check_onnx(model, path, n=5)  # a batch size the export never saw
    assert got["shape"][0] == 5 and got["max_abs_diff"] < 1e-4, got
    meta = read_metadata(path)
    assert meta["family"] == model.name and meta["image_shape"] == str(list(model.image_shape))
    if name == "cyclegan":
        assert meta["direction"] == "a2b" and got["inputs"] == ["images"]
    else:
        assert int(meta["latent_dim"]) == 8 or name == "vae"
        assert got["inputs"] == (["z", "labels"] if name.startswith("cgan") else ["z"])


def test_the_exported_generator_draws_what_sample_draws(tmp_path):
    import onnxruntime as ort

    from pixelsmith.edit.latent.space import latent_space

    model = _ready(MODELS["stylegan"]())
    path = export_onnx(model, tmp_path / "g.onnx")
    z = latent_space(model, "z").from_seeds([4, 9])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
    want = torch.cat([model.sample(1, seed=4), model.sample(1, seed=9)])
    assert (images - want).abs().max() < 1e-4


def _restorer(task: str) -> Restore:
    torch.manual_seed(0)
    kw = {"sr": {"scale": 2, "blocks": 2}, "denoise": {}, "inpaint": {}, "enhance": {}}[task]
    m = Restore(RestoreConfig(task=task, width=8, levels=2, **kw), (3, 16, 16))
    for p in m.networks["net"].parameters():  # the zero-initialised tails would hide the net
        if not p.abs().sum():
            torch.nn.init.normal_(p, std=0.05)
    return _ready(m)


@pytest.mark.parametrize("task", ["sr", "denoise", "inpaint", "enhance"])
def test_a_restoration_network_exports_and_restores_like_the_model(task, tmp_path):
    from pixelsmith.deploy.backends import onnx_runner

    model = _restorer(task)
    path = export_onnx(model, tmp_path / f"{task}.onnx")
    meta = read_metadata(path)
    assert meta["task"] == task and int(meta["multiple"]) == model.multiple
    run = onnx_runner(path)
    # an image of a size the export never saw: conditions outside, network in ONNX Runtime
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 20, 28, generator=g)
    mask = (torch.rand(3, 1, 20, 28, generator=g) > 0.6).float() if task == "inpaint" else None
    inputs = model.network_input(x, mask)
    out = model.finish(run({"inputs": inputs}), x, mask)
    want = model.restore(x, mask)
    assert out.shape == want.shape == (3, 3, 20 * model.out_scale, 28 * model.out_scale)
    assert (out - want).abs().max() < 1e-4


def test_what_does_not_export_says_why(tmp_path):
    diffusion = _ready(Diffusion(DiffusionConfig(), (1, 16, 16)))
    with pytest.raises(UserError, match="loop"):
        export_onnx(diffusion, tmp_path / "d.onnx")
    with pytest.raises(UserError, match=r"\.onnx"):
        export_onnx(_ready(MODELS["dcgan"]()), tmp_path / "d.pt")
    assert not list(tmp_path.iterdir())


def test_cli_exports_the_shipped_generator_and_checks_it(tmp_path, capsys):
    out = tmp_path / "gan.onnx"
    assert main(["export", "zoo:fmnist-gan", "-o", str(out), "--check"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "max |difference|" in text
    assert read_metadata(out)["source_payload_sha256"]
    assert main(["export", "zoo:sr-x2", "-o", str(tmp_path / "sr.onnx"), "--check"]) == 0
    assert "max |difference|" in capsys.readouterr().out
    assert main(["export", "zoo:fmnist-robust", "-o", str(tmp_path / "c.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not export" in err[0]
