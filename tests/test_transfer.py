"""Transfer learning: `--init` copies a source's tensors by name and shape before the first step
(the generator's moving average into both copies), reports the rest and records its source;
FreezeD keeps the discriminator's first layers bit-identical while the rest train."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY

from pixelsmith import zoo
from pixelsmith.cli.main import main
from pixelsmith.errors import UserError
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer, train
from pixelsmith.train.transfer import freeze_layers, init_from, layers
from pixelsmith.utils import checkpoint_file as ckf

QUIET = ["train.eval_at_end=false"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny GAN trained a few steps: (run folder, its newest checkpoint's tensors, manifest)."""
    cfg = build_config("dcgan", overrides=[*TINY, *QUIET, "train.steps=3"])
    run = train(cfg, tmp_path_factory.mktemp("src"), progress=False)
    return (run, *ckf.load_checkpoint(ckf.resolve_checkpoint(run)))


def _trainer(tmp_path, *overrides: str, resume=None) -> Trainer:
    cfg = build_config("dcgan", overrides=[*TINY, *QUIET, "train.steps=2", *overrides])
    return Trainer(cfg, tmp_path / "runs", resume=resume, progress=False)


def _net(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    prefix = f"net/{name}/"
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def test_init_copies_every_matching_tensor_before_the_first_step(source, tmp_path, capsys):
    run, tensors, man = source
    t = _trainer(tmp_path, f"train.init={run}", "train.seed=5")
    # The source's averaged generator goes into both G and G_ema; D is D.
    for name, src in (("G", "G_ema"), ("G_ema", "G_ema"), ("D", "D")):
        state = t.family.networks[name].state_dict()
        assert state.keys() == _net(tensors, src).keys()
        for k, v in _net(tensors, src).items():
            assert torch.equal(state[k], v), (name, k)
    assert not torch.equal(_net(tensors, "G")["fc.weight"], _net(tensors, "G_ema")["fc.weight"])
    assert "init: from " in capsys.readouterr().err
    t.run()
    # The run says where its weights came from: config, checkpoint manifest, run manifest.
    ckpt_man = ckf.read_manifest(ckf.resolve_checkpoint(t.run_dir))
    record = json.loads((t.run_dir / "manifest.json").read_text())["init"]
    assert ckpt_man["init"] == record and ckpt_man["config"]["train"]["init"] == str(run)
    assert record["payload_sha256"] == man["payload_sha256"]
    n = sum(len(net.state_dict()) for net in t.family.networks.values())
    assert (record["copied"], record["shape_mismatch"], record["missing"]) == (n, 0, 0)
    assert "fine-tuned from" in (t.run_dir / "report.md").read_text()


def test_another_width_reports_the_mismatched_tensors_and_still_trains(source, tmp_path, tiny_gan):
    run, tensors, _ = source
    fam = tiny_gan((3, 16, 16), d_channels=8)  # the source's TINY run, with a wider D
    fam.add_ema_copies()
    report = init_from(fam, run)
    assert "D/features.0.weight" in {m[0] for m in report.mismatched}
    shapes = {m[0]: m[1:] for m in report.mismatched}
    assert shapes["D/features.0.weight"] == ((4, 3, 3, 3), (8, 3, 3, 3))
    assert "G/fc.weight" in report.copied and not report.missing_networks
    assert "  D/features.0.weight: (4, 3, 3, 3) in the source, (8, 3, 3, 3) here" in report.lines()
    # The engine does the same and the run trains.
    t = _trainer(tmp_path, f"train.init={run}", "model.d_channels=8")
    assert t.init_record["shape_mismatch"] == len(report.mismatched) > 0
    assert ckf.list_checkpoints(t.run().joinpath("checkpoints"))


def test_freeze_d_keeps_the_first_layers_bit_identical_while_the_rest_train(tmp_path, capsys):
    t = _trainer(tmp_path, "train.freeze_d=2", "train.steps=3")
    assert "D's first 2 of 4 layers frozen (features.0, features.2)" in capsys.readouterr().err
    before = {k: v.clone() for k, v in t.family.networks["D"].state_dict().items()}
    t.run()
    after = t.family.networks["D"].state_dict()
    assert after.keys() == before.keys()
    frozen = ("features.0.", "features.2.")
    for k in before:
        same = torch.equal(before[k], after[k])
        assert same == k.startswith(frozen), k
    # A resumed run freezes the same layers again.
    again = _trainer(tmp_path, "train.freeze_d=2", "train.steps=4", resume=t.run_dir)
    again.run()
    for k, v in again.family.networks["D"].state_dict().items():
        assert torch.equal(v, before[k]) == k.startswith(frozen), k


def test_layers_run_in_forward_order_and_frozen_ones_leave_the_optimiser(tiny_stylegan, tiny_gan):
    sg = tiny_stylegan((3, 16, 16))
    assert [n for n, _ in layers(sg)] == ["from_rgb", "blocks.0", "blocks.1", "conv", "fc", "out"]
    gan = tiny_gan((1, 16, 16), classes=3, spectral_norm=True)
    assert [n for n, _ in layers(gan)] == ["features.0", "features.2", "features.4", "out", "embed"]
    keys = gan.networks["D"].state_dict().keys()
    assert freeze_layers(gan, "D", 1) == (["features.0"], 5)
    D = gan.networks["D"]
    assert D.state_dict().keys() == keys  # checkpoints keep their names
    D.requires_grad_(True)  # what the adversarial step does after each G step
    names = [n for n, _ in D.named_parameters()]
    assert names and not any(n.startswith("features.0.") for n in names)


def test_freeze_d_is_refused_without_a_discriminator_or_beyond_its_layers(tmp_path):
    vae = build_config("vae", overrides=["data.source=shapes", "data.size=16", "train.freeze_d=1"])
    with pytest.raises(UserError, match="the vae family has no discriminator D"):
        Trainer(vae, tmp_path / "runs", progress=False)
    with pytest.raises(UserError, match="freeze_d=9 asks for more layers .* has \\(4: features"):
        _trainer(tmp_path, "train.freeze_d=9")
    assert not (tmp_path / "runs").exists()


def test_init_with_resume_is_refused(source, tmp_path, capsys):
    run = source[0]
    assert main(["train", "--resume", str(run), "--init", str(run)]) == 2
    assert "--init starts a new run" in capsys.readouterr().err
    with pytest.raises(UserError, match="train.init starts a new run"):
        _trainer(tmp_path, f"train.init={run}", resume=run)


def test_init_from_a_zoo_name(source, tmp_path, monkeypatch):
    run, tensors, _ = source
    monkeypatch.setenv(zoo.ENV, str(tmp_path / "zoo"))
    recipe = {"command": "pixelsmith train dcgan", "data": "shapes"}
    zoo.export_run(run, "tiny-gan", recipe, {"command": "-", "metrics": {"fid": 1.0}})
    t = _trainer(tmp_path, "train.init=zoo:tiny-gan")
    assert t.init_record["source"] == "zoo:tiny-gan"
    assert t.init_record["payload_sha256"] == zoo.entry("tiny-gan").payload_sha256
    for k, v in _net(tensors, "D").items():
        assert torch.equal(t.family.networks["D"].state_dict()[k], v), k
    with pytest.raises(UserError, match="no zoo model is named 'tiny-gn'"):
        _trainer(tmp_path, "train.init=zoo:tiny-gn")
