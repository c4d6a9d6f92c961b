"""Compression: distilled students, structured and unstructured pruning, int8 through ONNX
Runtime, and the compress CLI's refusals; tiny models, seconds each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_gan
from torch import nn

from pixelsmith.cli.compress import distill_overrides
from pixelsmith.cli.main import main
from pixelsmith.deploy.compress import magnitude_prune, structured_prune, zero_fraction
from pixelsmith.errors import UserError
from pixelsmith.generate.load import load_model
from pixelsmith.models.distill_prune import hidden_widths, prune_generator
from pixelsmith.models.gan import ClassBatchNorm, GANConfig, Generator
from pixelsmith.train.config import build_config
from pixelsmith.train.loop import Trainer, train
from pixelsmith.utils import checkpoint_file as ck

TEACHER = [
    "data.source=shapes",
    "data.limit=64",
    "data.size=16",
    "train.batch=16",
    "model.g_channels=8",
    "model.d_channels=4",
    "model.z_dim=8",
    "model.max_channels=32",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.grid_size=4",
    "train.eval_at_end=false",
]
# The tiny GAN with the widths these tests were written for (GANConfig's default d_channels).
WIDER = {"g_channels": 8, "d_channels": 16, "max_channels": 32}
STUDENT = [
    "train.batch=16",
    "train.threads=1",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.grid_size=4",
    "train.eval_at_end=false",
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny gan teacher on synthetic shapes, trained a few steps."""
    out = tmp_path_factory.mktemp("teacher")
    return train(build_config("dcgan", overrides=[*TEACHER, "train.steps=5"]), out, progress=False)


def _student_cfg(teacher: Path, *extra: str, width: float = 0.5, init: str = "prune"):
    return build_config(
        "distill", overrides=[*distill_overrides(str(teacher), width, init), *STUDENT, *extra]
    )


def _randomise(net: nn.Module, std: float = 0.2, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std + (1.0 if "norm" in name else 0.0))


@pytest.mark.parametrize("width", [0.5, 0.25])
def test_the_student_has_the_asked_fraction_of_channels(tmp_path, teacher, width):
    run = train(_student_cfg(teacher, "train.steps=2", width=width), tmp_path, progress=False)
    student, big = load_model(run), load_model(teacher)
    assert student.name == "gan"  # a distilled run loads, for inference, as the GAN it is
    want = [max(1, round(c * width)) for c in hidden_widths(big.networks["G_ema"])]
    assert hidden_widths(student.networks["G_ema"]) == want
    assert student.describe()["G_ema"] < big.describe()["G_ema"]
    assert student.sample(3, seed=1).shape == (3, *big.image_shape)
    assert torch.equal(student.sample(2, seed=4), student.sample(2, seed=4))


def test_distillation_brings_the_student_toward_the_teacher(tmp_path, teacher):
    cfg = _student_cfg(teacher, "train.steps=40", "model.adv_weight=0", init="random")
    t = Trainer(cfg, tmp_path, progress=False)
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))

    def distance() -> float:
        with torch.no_grad():
            return float(t.family.losses(z, None)["l1"])

    before = distance()
    t.run()
    after = distance()
    assert after < 0.7 * before, (before, after)


# Teachers that take a label: a class (cgan) or a cluster of the images (sc-gan).
CONDITIONED = {
    "cgan": ["model.conditional=true", "model.class_norm=true"],
    "sc-gan": ["model.clusters=3", "model.class_norm=true"],
}


@pytest.mark.parametrize("kind", sorted(CONDITIONED))
def test_a_conditioned_teacher_distils_into_a_student_of_its_kind(tmp_path, kind):
    sets = [*TEACHER, *CONDITIONED[kind], "train.steps=3"]
    teacher = train(build_config("dcgan", overrides=sets), tmp_path / "t", progress=False)
    cfg = _student_cfg(teacher, "train.steps=40", "model.adv_weight=0", init="random")
    t = Trainer(cfg, tmp_path / "s", progress=False)
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(3))
    y = torch.arange(64) % 2

    def distance() -> float:
        with torch.no_grad():
            return float(t.family.losses(z, y)["l1"])

    before = distance()
    student = load_model(t.run())
    assert distance() < 0.7 * before
    big = load_model(teacher)
    G, T = student.networks["G_ema"], big.networks["G_ema"]
    assert isinstance(G.fc_norm, ClassBatchNorm)
    if kind == "sc-gan":  # z[:, 0] picks the teacher's clusters in the student too
        assert torch.equal(G.cuts, T.cuts)
        assert torch.equal(student.networks["D"].centroids, big.networks["D"].centroids)
    assert student.sample(4, seed=1).shape == (4, *big.image_shape)
    pruned = train(_student_cfg(teacher, "train.steps=1"), tmp_path / "p", progress=False)
    assert load_model(pruned).sample(2, seed=0).shape == (2, *big.image_shape)


def test_resume_continues_exactly(tmp_path, teacher):
    full = train(_student_cfg(teacher, "train.steps=6"), tmp_path / "a", progress=False)
    half = train(_student_cfg(teacher, "train.steps=3"), tmp_path / "b", progress=False)
    resumed = train(_student_cfg(teacher, "train.steps=6"), resume=half, progress=False)

    def state(run: Path) -> dict[str, torch.Tensor]:
        t, _ = ck.load_checkpoint(ck.resolve_checkpoint(run))
        return {k: v for k, v in t.items() if k.startswith(("net/", "opt/", "rng/"))}

    a, b = state(full), state(resumed)
    assert a.keys() == b.keys() and any(k.startswith("net/adapters/") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_a_changed_teacher_is_refused_on_resume(tmp_path, teacher):
    cfg = _student_cfg(teacher, "train.steps=2")
    cfg.model.teacher_sha256 = "0" * 64
    with pytest.raises(UserError, match="teacher .* changed"):
        Trainer(cfg, tmp_path, progress=False)


def _generator(g_channels: int = 8, norm: str = "batch", classes: int = 0) -> Generator:
    cfg = GANConfig(
        z_dim=8,
        g_channels=g_channels,
        max_channels=32,
        g_norm=norm,
        conditional=bool(classes),
        class_norm=bool(classes),
    )
    g = Generator(cfg, (1, 16, 16), classes)
    _randomise(g)
    with torch.no_grad():  # running statistics far from 0 / 1, so copying them matters
        for m in g.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return g.eval()


def test_pruning_ranks_channels_by_batchnorm_scale_else_by_weight_norm():
    from pixelsmith.models.distill_prune import channel_scores

    g = _generator()
    with torch.no_grad():  # channel 0: the largest weights, but its BatchNorm scales it to 0
        g.fc.weight.view(g.base[0], g.base[1] * g.base[2], -1)[0] *= 10
        g.fc_norm.weight[0] = 0
    scores = channel_scores(g)
    assert scores[0].argmin() == 0 and torch.equal(scores[0], g.fc_norm.weight.abs())
    plain = _generator(norm="none")
    with torch.no_grad():
        plain.fc.weight.view(plain.base[0], plain.base[1] * plain.base[2], -1)[3] *= 10
    assert channel_scores(plain)[0].argmax() == 3


def test_an_unpinned_teacher_is_pinned_by_its_hash_when_the_run_starts(tmp_path, teacher):
    cfg = _student_cfg(teacher, "train.steps=1")
    cfg.model.teacher_sha256 = ""
    Trainer(cfg, tmp_path, progress=False)
    assert (
        cfg.model.teacher_sha256
        == ck.read_manifest(ck.resolve_checkpoint(teacher))["payload_sha256"]
    )


def test_distillation_refuses_gan_settings_it_would_ignore(teacher):
    for bad in (
        "model.optimizer=sgd",
        "model.n_critic=5",
        "model.loss=wgan-gp",
        "model.r1_gamma=1",
    ):
        with pytest.raises(UserError, match="distillation does not use"):
            _student_cfg(teacher, bad)
    with pytest.raises(UserError, match="needs a teacher"):
        Trainer(build_config("distill", overrides=list(STUDENT)), Path("/nonexistent"))


def _silence_every_second_channel(g: Generator) -> None:
    dead = []
    with torch.no_grad():
        hw = g.base[1] * g.base[2]
        c0 = torch.arange(0, g.base[0], 2)
        g.fc.weight.view(g.base[0], hw, -1)[c0] = 0
        dead.append(c0)
        norms = [g.fc_norm] + [
            m for m in g.blocks if isinstance(m, nn.BatchNorm2d | ClassBatchNorm)
        ]
        for m in g.blocks:
            if isinstance(m, nn.ConvTranspose2d):
                c = torch.arange(0, m.out_channels, 2)
                m.weight[:, c] = 0
                dead.append(c)
        for bn, c in zip(norms, dead, strict=True):
            if isinstance(bn, ClassBatchNorm):
                bn.scale.weight[:, c], bn.shift.weight[:, c] = 0, 0
            else:
                bn.weight[c], bn.bias[c] = 0, 0


def test_structured_pruning_of_dead_channels_keeps_the_output():
    g = _generator()
    _silence_every_second_channel(g)
    small = prune_generator(g, _generator(4))
    assert hidden_widths(small) == [w // 2 for w in hidden_widths(g)]
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in g.parameters())
    z = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(small(z), g(z), atol=1e-5, rtol=0)
        # Pruning live channels instead (the dead ones kept) changes the output.
        live = _generator()
        assert (prune_generator(live, _generator(4))(z) - live(z)).abs().max() > 1e-2


def test_pruning_a_class_conditional_generator_keeps_each_class_table():
    g = _generator(classes=3)
    _silence_every_second_channel(g)
    small = prune_generator(g, _generator(4, classes=3))
    assert hidden_widths(small) == [w // 2 for w in hidden_widths(g)]
    z = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(12) % 3
    with torch.no_grad():
        torch.testing.assert_close(small(z, y), g(z, y), atol=1e-5, rtol=0)
        assert (g(z, y) - g(z, (y + 1) % 3)).abs().max() > 1e-2  # the tables matter


def test_unstructured_masks_zero_weights_but_keep_the_network():
    model = make_gan((1, 16, 16), **WIDER)
    model.add_ema_copies()
    _randomise(model.networks["G_ema"])
    pruned = magnitude_prune(model, 0.6)
    assert abs(zero_fraction(pruned) - 0.6) < 0.02 and zero_fraction(model) < 0.01
    assert pruned.describe() == model.describe()
    thin = structured_prune(model, 0.5)
    assert thin.describe()["G_ema"] < model.describe()["G_ema"]


def test_int8_onnx_runtime_output_is_close_to_fp32(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from pixelsmith.deploy.compress import (
        calibration_inputs,
        compute_ops,
        ort_backend,
        quantize_int8,
    )
    from pixelsmith.deploy.export import export_onnx

    model = make_gan((1, 16, 16), **WIDER)
    model.add_ema_copies()
    _randomise(model.networks["G_ema"], std=0.4)
    fp32 = export_onnx(model.eval(), tmp_path / "m.onnx")
    z = {"z": torch.randn(32, 8, generator=torch.Generator().manual_seed(5))}
    want = ort_backend(fp32).run(z)
    assert want.std() > 0.05  # images that vary, so closeness means something
    for mode in ("static", "dynamic"):
        q = quantize_int8(fp32, tmp_path / f"{mode}.onnx", mode, calibration_inputs(8, n=64))
        ops = {n.op_type for n in onnx.load(str(q)).graph.node}
        assert ops & {"QuantizeLinear", "DynamicQuantizeLinear"}, ops
        runs = compute_ops(q)  # what ONNX Runtime really runs in int8, and what stays fp32
        assert runs["int8"], (mode, runs)
        assert sum(runs["int8"].values()) + sum(runs["fp32"].values()) >= 4  # fc, 2 deconvs, conv
        got = ort_backend(q).run(z)
        # Loose: int8 rounding through saturating tanh moves single pixels far, the mean little.
        assert (got - want).abs().mean() < min(0.05, 0.25 * float(want.std())), mode


@pytest.mark.parametrize("width", ["0", "1", "-0.5", "1.5"])
def test_the_cli_refuses_widths_outside_zero_to_one(capsys, width):
    assert main(["compress", "zoo:fmnist-gan", "--width", width]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--width" in err and "0 < W < 1" in err
    with pytest.raises(UserError, match="model.width"):
        build_config("distill", overrides=[f"model.width={width}"])


def test_static_int8_of_a_conditional_generator_calibrates_on_its_classes(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from pixelsmith.deploy.compress import calibration_inputs, ort_backend, quantize_int8
    from pixelsmith.deploy.export import export_onnx

    model = make_gan((1, 16, 16), 3, **WIDER)
    model.add_ema_copies()
    fp32 = export_onnx(model.eval(), tmp_path / "c.onnx")
    feeds = calibration_inputs(8, n=64, classes=3)
    assert sorted(set(torch.cat([f["labels"] for f in feeds]).tolist())) == [0, 1, 2]
    q = quantize_int8(fp32, tmp_path / "c8.onnx", "static", feeds)
    out = ort_backend(q).run({"z": torch.randn(4, 8), "labels": torch.tensor([0, 1, 2, 0])})
    assert out.shape == (4, 1, 16, 16)
    with pytest.raises(UserError, match="lack labels"):
        quantize_int8(fp32, tmp_path / "c9.onnx", "static", calibration_inputs(8, n=32))


def test_resume_refuses_a_new_width_init_or_teacher(capsys):
    for extra in (["--width", "0.25"], ["--init", "random"], ["zoo:fmnist-gan"]):
        assert main(["compress", *extra, "--resume", "runs/whatever"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--resume continues a run" in err
